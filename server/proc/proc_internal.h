/*
 * proc_internal.h - what proc.c, proc_ops.c, proc_revision.c and
 * proc_status.c share about a processor: its definition file, its
 * versions and their revisions, its output topics and aliases, and the
 * requests it answers later; and the hooks of the pipelines
 * (proc_pipeline.h) in the runtime. Internal to the processor runtime;
 * loop thread only.
 */
#ifndef KP_PROC_INTERNAL_H
#define KP_PROC_INTERNAL_H

#include <stdint.h>

#include "proc_def.h"
#include "base/error.h"
#include "wire/proto.h"

struct kp_proc;
struct kp_procs;
struct kp_slot;
struct proc_version;

/* Writes p's definition (logs a failure). Returns 0 or -errno. */
int kp_proc_save_def(struct kp_proc *p);

/* Sets the persisted role of version n ("building", "live", "retired"). */
void kp_proc_def_set_role(struct kp_proc *p, uint32_t n, const char *role);

/* Adds v to p's definition, started from (from, value) in role. */
void kp_proc_def_add_version(struct kp_proc *p, struct proc_version *v,
			     enum kp_proc_from from, int64_t value,
			     const char *role);

/* Adds v to / removes v from p's versions (and its definition). */
void kp_proc_add_version(struct kp_proc *p, struct proc_version *v);
void kp_proc_remove_version(struct kp_proc *p, struct proc_version *v);

/* Loads file into v (its code, source and hash). Returns 0 or an error. */
int kp_proc_load_code(struct kp_proc *p, struct proc_version *v,
		      const char *file, struct kp_error *err);

/* The logical name of output i of p (the DLQ is the last one). */
void kp_proc_logical_name(struct kp_proc *p, uint32_t i, char *out,
			  size_t cap);

/* Creates v's physical output topics, shaped like the logical ones. */
int kp_proc_ensure_outputs(struct kp_proc *p, struct proc_version *v,
			   struct kp_error *err);

/*
 * Points p's logical outputs at v's physical topics (generation v). A
 * repoint (a cut-over, a rollback) first records, durably, where each
 * output's new physical topic ended at that moment: the point from which
 * its downstream processors follow it (proc_pipeline.h).
 */
int kp_proc_point_aliases(struct kp_proc *p, struct proc_version *v);

/*
 * An emit of p named topic name, not one of its outputs yet: with open
 * outputs it becomes one (created when missing). Returns 0, or -1 when it
 * may not.
 */
int kp_proc_open_output(struct kp_proc *p, const char *name, size_t len);

/* Undoes a create: the aliases it set and the output topics it made. */
void kp_proc_undo_create(struct kp_proc *p, struct proc_version *v);

/* Answers parked fetches on v's outputs so their readers come back. */
void kp_proc_wake_readers(struct kp_proc *p, struct proc_version *v);

/* Deletes the output topics of a version that is not live. */
void kp_proc_drop_outputs(struct kp_proc *p, struct proc_version *v);

/* Retires v: checkpoint, stop its instance (once it is between batches). */
void kp_proc_retire(struct kp_proc *p, struct proc_version *v);

/*
 * The cut-over: p's building version becomes live (definition saved,
 * aliases repointed), the live one is retired. p->building must be set.
 */
void kp_proc_cut_over(struct kp_proc *p);

/* Frees v now (a busy worker is killed: nothing of v runs on). */
void kp_proc_free_version(struct kp_proc *p, struct proc_version *v);

/* Keeps slot for a later answer (a reference and a wait). */
void kp_proc_hold(struct kp_slot **pslot, struct kp_slot *slot);

/*
 * Drops the hold *pslot has on its slot without answering it (another
 * hold answers it, or already did; the slot is ready once no hold is
 * left). NULL *pslot: no-op.
 */
void kp_proc_release(struct kp_slot **pslot);

/*
 * A rollback that waited for a busy version (kp_proc_rollback): tried
 * again; answered when it is done, fails, or waited past its deadline.
 */
void kp_proc_rollback_retry(struct kp_proc *p, int64_t now_mono_ms);

/* Answers a held slot with p's status, or with the error rc / message. */
void kp_proc_answer(struct kp_slot **pslot, struct kp_proc *p, int rc,
		    const char *message);

/* Runs the reset or verify that waited for the live version to be idle. */
void kp_proc_run_pending(struct kp_proc *p);

/* Hands a loaded reload to the live version if it is between batches. */
void kp_proc_launch_reload(struct kp_proc *p);

/* --watch: reloads when the live version's file changed (at most 2/s). */
void kp_proc_watch_check(struct kp_proc *p, int64_t mono_ms);

/*
 * Updates the smoothed records/s of a replay in progress (never above its
 * rate limit: what it measures over a second's edge is not faster).
 */
void kp_proc_replay_rate(struct kp_proc *p, int64_t mono_ms);

/* rps, but at most limit when there is one (limit 0: no limit). */
uint64_t kp_proc_rate_capped(uint64_t rps, uint64_t limit);

/* ---- pipelines (proc_pipeline.c, proc_cascade.c; proc_pipeline.h) ----- */

/* Loads <data>/procs/.pipeline into ps->pipeline. Returns 0 or an error. */
int kp_pipeline_open(struct kp_procs *ps, struct kp_error *err);

/* Frees ps->pipeline. */
void kp_pipeline_close(struct kp_procs *ps);

/*
 * Every processor was opened: finishes a cascade cut-over a crash
 * interrupted, and lets downstream versions follow their inputs.
 */
void kp_pipeline_started(struct kp_procs *ps);

/* Periodic: downstream versions follow switches; cascades are watched. */
void kp_pipeline_tick(struct kp_procs *ps);

/*
 * A building version caught up. true when it belongs to a cascade, which
 * then cuts over once all its versions have (the caller does nothing).
 */
bool kp_pipeline_caught_up(struct proc_version *v);

/* ---- revisions and rollback (proc_revision.c) ------------------------- */

/* Records dv's code as its first revision (logs a failure). */
void kp_proc_revision_first(struct kp_proc *p, struct kp_proc_def_version *dv);

/*
 * A reload of v ended (rc 0: the code in v->code now runs): v takes the
 * next revision number, or for a rollback (p->reload_revision) the number
 * of the revision it went back to; the definition records it and is saved.
 */
void kp_proc_revision_reloaded(struct kp_proc *p, struct proc_version *v,
			       int rc);

/* Packs v's "previous_version" and "revisions" pairs (proc_versions). */
void kp_proc_pack_revisions(struct kp_proc *p, struct proc_version *v,
			    struct kp_response *r);

/*
 * The hash --watch compares v's file with at first: the newest revision of
 * v loaded from that file (so a rollback is not undone by the watcher).
 */
void kp_proc_revision_watch_hash(struct kp_proc *p, struct proc_version *v,
				 char hash[17]);

#endif
