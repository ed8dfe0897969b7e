/*
 * proc.h - the processor runtime of the server: the durable catalog of
 * processors, their scheduling over the log on worker threads, checkpoints,
 * dead-lettering and status.
 *
 * A processor instance is a cursor per input partition, a version of code
 * (kp_instance) and a view. The loop thread reads input batches and hands
 * them to a worker job; the worker runs the code record by record (each
 * record atomic); back on the loop, the emits are appended to the output
 * topics through the same write path as produced records, and the cursor
 * advances. Checkpoints commit the view and the cursors together; after a
 * crash the tail is replayed and the outputs it had already written are
 * recognised by count and not written again.
 */
#ifndef KP_PROC_H
#define KP_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "proc_def.h"
#include "proto.h"
#include "topic.h"
#include "view.h"

struct kp_server;
struct kp_slot;
struct kp_procs;
struct kp_proc;

/*
 * Loads every processor under <data>/procs, restores its checkpoint and
 * starts it (init runs on a worker). Returns 0 and *out or an error.
 */
int kp_procs_open(struct kp_server *s, int workers, struct kp_procs **out,
		  struct kp_error *err);

/*
 * Stops scheduling new work (shutdown). Jobs in flight finish; their
 * results are applied.
 */
void kp_procs_quiesce(struct kp_procs *ps);

/* true when no processor job is queued or running. */
bool kp_procs_idle(const struct kp_procs *ps);

/* Writes final checkpoints, stops every instance, frees. NULL: no-op. */
void kp_procs_close(struct kp_procs *ps);

/* Input grew: wakes the processors that read tp. */
void kp_procs_notify(struct kp_procs *ps, struct kp_topic_partition *tp);

/* Periodic work: checkpoints and the time-budget watchdog. */
void kp_procs_tick(struct kp_procs *ps, int64_t now_ms);

/*
 * Creates a processor from def (name, source, inputs, outputs, from,
 * config and limits set by the caller). Loads the code, creates missing
 * output topics and the dead-letter topic, persists the definition and
 * runs init on a worker; slot is answered with the status, or with the
 * init error (file:line), after which nothing of the processor remains.
 */
int kp_procs_create(struct kp_procs *ps, struct kp_proc_def *def,
		    struct kp_slot *slot, struct kp_error *err);

/* The processor called name, or NULL. */
struct kp_proc *kp_procs_find(struct kp_procs *ps, const char *name,
			      size_t len);

/* Number of processors and the i-th (by name). */
size_t kp_procs_count(const struct kp_procs *ps);
struct kp_proc *kp_procs_at(struct kp_procs *ps, size_t i);

/* Pauses / resumes (persisted). */
int kp_proc_pause(struct kp_proc *p, const char *reason, struct kp_error *err);
int kp_proc_resume(struct kp_proc *p, struct kp_error *err);

/* Deletes a processor, its view and checkpoint (outputs stay). */
int kp_proc_delete(struct kp_proc *p, struct kp_error *err);

/* The processor's view (for queries). */
struct kp_view *kp_proc_view(struct kp_proc *p);

/* Packs the status map of p (PROTOCOL.md, proc_status). */
void kp_proc_pack_status(struct kp_proc *p, struct kp_response *r);

#endif
