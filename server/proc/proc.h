/*
 * proc.h - the processor runtime of the server: the durable catalog of
 * processors, their versions, and the admin operations on them.
 *
 * A processor is a name, inputs, logical outputs and settings, plus
 * versions (proc_version.h). Its live version runs at the tail of its
 * inputs and answers view queries; a replay is a new version that runs
 * beside it from an earlier position into its own view and output topics
 * and, once caught up, takes over atomically (cut-over): the view name and
 * the logical output topics (catalog aliases) now resolve to it, and the
 * old version is retired and kept for rollback until gc.
 *
 * Effectively once: a version's checkpoint commits its view, its input
 * cursors and its output end offsets together; after a crash the tail is
 * replayed and the outputs it had already written are counted off instead
 * of written again.
 */
#ifndef KP_PROC_H
#define KP_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proc_def.h"
#include "view.h"
#include "view_query.h"
#include "base/error.h"
#include "log/store.h"
#include "log/topic.h"
#include "wire/proto.h"

struct kp_slot;
struct kp_procs;
struct kp_proc;

/* What the runtime is given by the server that runs it (copied at open). */
struct kp_proc_env {
	struct kp_store *store;       /* borrowed: topics, writes, deletion */
	const char *data_dir;         /* <data>: procs/ and code/ go under it */
	struct kp_topic_config topic_defaults; /* for the topics it creates */
	int64_t (*now_ms)(void);      /* the wall clock, epoch ms */
	size_t view_cache_bytes;      /* per view's table (0: the default) */
	uint64_t view_max_bytes;      /* per view's store (0: the default) */
	bool native_plugins;          /* .so processors may be loaded */
	uint32_t max_value_bytes;     /* largest emit (key + value) or state
					 value (max_frame_bytes; 0: none) */
	const char *processors_dir;   /* code clients name must lie here
					 (created if missing); NULL: any */
};

/*
 * Loads every processor under <data>/procs with all its versions, restores
 * checkpoints and starts them (init runs on a worker). Returns 0 and *out.
 */
int kp_procs_open(const struct kp_proc_env *env, struct kp_procs **out,
		  struct kp_error *err);

/* Stops scheduling new work (shutdown). Jobs in flight finish. */
void kp_procs_quiesce(struct kp_procs *ps);

/*
 * Draining (after kp_procs_quiesce): starts the last checkpoint of every
 * version that is between jobs and has something to commit; true when no
 * job runs any more.
 */
bool kp_procs_idle(struct kp_procs *ps);

/* Writes final checkpoints, stops every instance, frees. NULL: no-op. */
void kp_procs_close(struct kp_procs *ps);

/* Input grew: wakes the versions that read tp. */
void kp_procs_notify(struct kp_procs *ps, struct kp_topic_partition *tp);

/* Periodic work: checkpoints, watchdogs, replay rates, --watch. */
void kp_procs_tick(struct kp_procs *ps, int64_t now_ms);

/*
 * Creates a processor from def (name, source, inputs, outputs, from,
 * config, limits, watch set by the caller). Loads the code, creates missing
 * output topics and the dead-letter topic, persists the definition and runs
 * init on a worker; slot is answered with the status, or with the init
 * error (file:line), after which nothing of the processor remains.
 */
int kp_procs_create(struct kp_procs *ps, struct kp_proc_def *def,
		    struct kp_slot *slot, struct kp_error *err);

/* The processor called name, or NULL. */
struct kp_proc *kp_procs_find(struct kp_procs *ps, const char *name,
			      size_t len);

/*
 * The name of a processor that writes topic name (an output, its dead-letter
 * topic, any version's physical output, or a name a future version's would
 * take: OUTPUT.vN, NAME.dlq.vN), or with writers_only false also one that
 * reads it; NULL when none does. ps may be NULL.
 */
const char *kp_procs_topic_user(struct kp_procs *ps, const char *name,
				size_t len, bool writers_only);

/* Number of processors and the i-th (by name). */
size_t kp_procs_count(const struct kp_procs *ps);
struct kp_proc *kp_procs_at(struct kp_procs *ps, size_t i);

/* Pauses / resumes the live version (persisted). */
int kp_proc_pause(struct kp_proc *p, const char *reason, struct kp_error *err);
int kp_proc_resume(struct kp_proc *p, struct kp_error *err);

/* Deletes a processor, its versions' views and topics of versions >= 2. */
int kp_proc_delete(struct kp_proc *p, struct kp_error *err);

struct kp_slot;

/*
 * Answers a view_get of keys (n >= 1; many: the request gave `keys`) into
 * slot from the live version's view: at once when kappad holds the view
 * (the version has no worker; its last checkpoint), else when the
 * version's worker process answers (a wait on slot; live state). Returns
 * 0 or an error with err.
 */
int kp_proc_view_get(struct kp_proc *p, struct kp_slot *slot,
		     const struct kp_vq_key *keys, uint32_t n, bool many,
		     struct kp_error *err);

/* A page of view_scan (docs/PROTOCOL.md), answered as kp_proc_view_get. */
int kp_proc_view_scan(struct kp_proc *p, struct kp_slot *slot,
		      const char *prefix, size_t prefix_len, const char *after,
		      size_t after_len, uint32_t limit, struct kp_error *err);

/* Packs the status map of p (PROTOCOL.md, proc_status). */
void kp_proc_pack_status(struct kp_proc *p, struct kp_response *r);

/* Packs the versions array of p (PROTOCOL.md, proc_versions). */
void kp_proc_pack_versions(struct kp_proc *p, struct kp_response *r);

/*
 * Hot reload: loads file (NULL: the live version's source again), runs its
 * init beside the old code and swaps at a batch boundary; slot is answered
 * with the status, or with the error while the old code keeps running.
 */
int kp_proc_reload(struct kp_proc *p, const char *file, struct kp_slot *slot,
		   struct kp_error *err);

/* Turns reloading on source changes on or off (persisted). */
int kp_proc_set_watch(struct kp_proc *p, bool on, struct kp_error *err);

/*
 * Starts a replay: a new version from file (NULL: the live source) reading
 * from (from, value), at most rate records/s (0: no limit). Returns 0 with
 * the new version number in *number.
 */
int kp_proc_replay(struct kp_proc *p, const char *file, enum kp_proc_from from,
		   int64_t value, uint64_t rate, uint32_t *number,
		   struct kp_error *err);

/*
 * Rollback. With to_version 0 it undoes the last change of the live code:
 * back to the revision the live one was loaded over, or from a version's
 * first revision to the version that was live when its replay began, at
 * the revision that version ran last. Otherwise to version to_version at
 * revision to_revision (0: the one it ran last). Within the live version
 * the code is swapped between two batches as a reload does (the view
 * carries over) and slot is answered then; another version becomes live
 * with its own view, catching up from its checkpoint, and slot is answered
 * now. Either way slot gets the status. The revision gone back to is
 * recorded as the version's current one (persisted). While the target
 * version is still finishing its last batch (retiring, or starting its
 * worker) or a reload is in progress, the rollback waits for that, up to
 * KP_PROC_ROLLBACK_WAIT_MS, and slot is answered when it is done. Errors:
 * KP_ENOTFOUND (no such version or revision), KP_ESTATE (nothing to roll
 * back, already live, a replay in progress, another rollback waiting, or
 * still busy after the wait).
 */
#define KP_PROC_ROLLBACK_WAIT_MS 10000
int kp_proc_rollback(struct kp_proc *p, uint32_t to_version,
		     uint32_t to_revision, struct kp_slot *slot,
		     struct kp_error *err);

/* Removes retired and failed versions; returns how many (or an error). */
int kp_proc_gc(struct kp_proc *p, struct kp_error *err);

/*
 * In-place reset of the live version to (to, value): with execute, clears
 * the view and rewinds the inputs (once the version is between batches);
 * slot is answered with the plan {topic, partition, current, new} either
 * way.
 */
int kp_proc_reset(struct kp_proc *p, enum kp_proc_from to, int64_t value,
		  bool execute, struct kp_slot *slot, struct kp_error *err);

/*
 * Determinism check: replays the live version's code over its inputs from
 * (from, value) up to its current position (or to_ts when to_set) in a
 * scratch instance and compares outputs and view; slot is answered with the
 * verdict.
 */
int kp_proc_verify(struct kp_proc *p, enum kp_proc_from from, int64_t value,
		   bool to_set, int64_t to_ts, struct kp_slot *slot,
		   struct kp_error *err);

#endif
