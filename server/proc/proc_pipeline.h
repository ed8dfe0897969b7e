/*
 * proc_pipeline.h - pipelines: processors whose inputs are other
 * processors' logical outputs (their downstream).
 *
 * A logical output resolves to the physical topic of its processor's live
 * version; a cut-over or a rollback repoints it. Each repoint is recorded
 * as a switch point: the logical name, its new generation and physical
 * topic, and that topic's end offset per partition at that moment. A
 * downstream version whose cursor still names an older physical topic of
 * one of its logical inputs follows the name: once it has read what that
 * topic holds (and nothing writes it any more) the cursor moves to the new
 * physical topic at the switch point. It does not see the rebuilt history
 * before that point; every record after it is processed exactly once (the
 * move is recomputed from the switch point after a crash, and outputs
 * already written are recognised by their provenance).
 *
 * A cascade replays a processor and everything downstream of it
 * (transitively) into new versions, the downstream ones reading the new
 * versions' physical outputs from their start, and cuts them all over in
 * one step once every one has caught up; a cascade rollback takes the
 * chain back to the versions live before, together.
 *
 * Switch points and cascades in progress are persisted in
 * <data>/procs/.pipeline (one msgpack map, tmp + fsync + rename), written
 * before the change they describe. Loop thread only.
 */
#ifndef KP_PROC_PIPELINE_H
#define KP_PROC_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proc_def.h"
#include "base/error.h"
#include "wire/proto.h"

struct kp_metrics_writer;
struct kp_proc;
struct kp_procs;
struct proc_version;

/* Processors in one cascade at most. */
#define KP_CASCADE_MAX 64

/* A processor of a cascade and the version it went to. */
struct kp_cascade_step {
	const char *name;        /* borrowed from the processor */
	uint32_t version;
};

/* ---- for the protocol server and the dashboard ------------------------ */

/*
 * Packs the pipeline of ps as one map (PROTOCOL.md, proc_graph):
 * processors (with their versions), topics (physical topic, generation,
 * producer, consumers, switch point) and the edges between processors.
 */
void kp_procs_pack_graph(struct kp_procs *ps, struct kp_response *r);

/*
 * proc_replay with cascade: replays p (file, from, value and rate as
 * kp_proc_replay) and every processor downstream of it into new versions,
 * cut over together. Fills steps (KP_CASCADE_MAX entries) with the
 * processors in start order, p first, and their new versions; *count is
 * their number. On an error nothing was started.
 */
int kp_proc_replay_cascade(struct kp_proc *p, const char *file,
			   enum kp_proc_from from, int64_t value,
			   uint64_t rate, struct kp_cascade_step *steps,
			   uint32_t *count, struct kp_error *err);

/*
 * proc_rollback with cascade: p and every processor downstream of it go
 * back to the version that was live before their live one, in one step.
 * Fills steps as kp_proc_replay_cascade does. On an error (one of them
 * cannot roll back) nothing changed.
 */
int kp_proc_rollback_cascade(struct kp_proc *p, struct kp_cascade_step *steps,
			     uint32_t *count, struct kp_error *err);

/*
 * true when p's live version reads nothing any more while its input moved
 * on: an input topic was deleted, or it has read all of a topic that its
 * producer no longer writes (writing another one) and it cannot follow
 * (its input names that version's topic). why gets the reason.
 */
bool kp_proc_stalled(struct kp_proc *p, char *why, size_t cap);

/* Appends kappa_processor_stalled (per live version) to w. */
void kp_pipeline_metrics_render(struct kp_procs *ps,
				struct kp_metrics_writer *w);

/* ---- inside the runtime (proc_topics.c, proc_cascade.c, proc_graph.c) -- */

/* Where a logical topic switched to a new physical topic. */
struct kp_switch {
	char topic[201];          /* the logical name */
	char physical[201];       /* what it resolves to since */
	uint32_t generation;      /* the version of that physical topic */
	uint32_t partitions;
	uint64_t *offsets;        /* owned: end offsets then, per partition */
};

/* A processor of a cascade in progress and the version it builds. */
struct kp_cascade_member {
	char name[201];
	uint32_t version;
};

/* A cascade replay in progress: its processors in start order. */
struct kp_cascade {
	char root[201];           /* the processor it was asked for */
	bool cutting;             /* the cut-over of all of them has begun */
	uint32_t count;
	struct kp_cascade_member members[KP_CASCADE_MAX];
};

/* The runtime's pipeline state (ps->pipeline). */
struct kp_pipeline {
	char path[4200];          /* <data>/procs/.pipeline */
	struct kp_switch *switches;  /* owned; one per logical topic */
	size_t switch_count;
	struct kp_cascade *cascades; /* owned */
	size_t cascade_count;
};

/* The last switch point of logical topic name, or NULL. */
const struct kp_switch *kp_pipeline_switch(struct kp_procs *ps,
					   const char *name);

/* Forgets cascade i of ps (not saved). */
void kp_pipeline_cascade_remove(struct kp_procs *ps, size_t i);

/* Cascades: resumed after a restart, watched every tick (proc_cascade.c). */
void kp_cascade_resume(struct kp_procs *ps);
void kp_cascade_watch(struct kp_procs *ps);

/*
 * The runtime's hooks into this (open, close, started, tick, caught_up)
 * are declared in proc_internal.h: proc.c does not include this header.
 */

/*
 * Notes that logical topic name now resolves to physical (generation),
 * from that topic's current end offsets on (not yet saved).
 */
int kp_pipeline_switching(struct kp_procs *ps, const char *name,
			  uint32_t generation, const char *physical);

/* Writes the switch points and cascades. Returns 0 or -errno. */
int kp_pipeline_save(struct kp_procs *ps);

/*
 * The input of p (as named in its definition) that physical topic belongs
 * to: an input L when physical is L or L.v<N>; NULL when none.
 */
const char *kp_pipeline_input_of(const struct kp_proc *p,
				 const char *physical);

/* The processor that writes logical or physical topic name, or NULL. */
struct kp_proc *kp_pipeline_producer(struct kp_procs *ps, const char *name);

/* The name of the cascade p's replay belongs to (its root), or NULL. */
const char *kp_pipeline_cascade_of(struct kp_procs *ps,
				   const struct kp_proc *p);

#endif
