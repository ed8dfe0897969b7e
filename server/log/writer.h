/*
 * writer.h - the write path of a partition: appends, group commit and the
 * requests that wait on them.
 *
 * After an append, a partition with fsync=always starts a sync job on a
 * worker thread unless one is in flight; appends that arrive meanwhile ride
 * on the next job (group commit across connections). Produce requests wait
 * for the durable end to pass their last offset; long-polling fetches wait
 * for the visible end to move. The loop thread never fsyncs.
 */
#ifndef KP_WRITER_H
#define KP_WRITER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "topic.h"
#include "base/error.h"
#include "base/histogram.h"

struct kp_slot;

/*
 * The write path shared by every partition of a store (store.h), on the
 * loop thread. Its owner fills loop and the hooks; the counters are its own.
 */
struct kp_writer {
	uv_loop_t *loop;             /* borrowed */
	int jobs_in_flight;          /* sync jobs not yet done */
	uint64_t fsyncs;             /* sync jobs completed */
	/* A partition's visible end moved (the processor runtime wakes). */
	void (*on_visible)(void *arg, struct kp_topic_partition *tp);
	void *on_visible_arg;
	/* The last job on a partition of a deleted topic has finished. */
	void (*on_deleted_idle)(void *arg);
	void *on_deleted_idle_arg;
};

/* A long-polling fetch, parked until data arrives or it times out. */
struct kp_fetch_wait;

/* Called when a parked fetch should answer now (data or timeout). */
typedef void (*kp_fetch_wake_fn)(void *arg,
				 struct kp_topic_partition *tp,
				 struct kp_slot *slot, uint64_t offset,
				 uint64_t max_bytes);

/* Creates the writer state of tp (tp->writer_state). Returns 0 or -ENOMEM. */
int kp_writer_attach(struct kp_topic_partition *tp);

/* Frees tp's writer state; there must be no job in flight. */
void kp_writer_detach(struct kp_topic_partition *tp);

/*
 * Appends a finished batch to tp at now_ms. Returns 0 and *base_offset,
 * or an error with err. Wakes parked fetches when the batch is visible
 * right away (fsync != always) and starts a sync job when fsync=always.
 */
int kp_writer_append(struct kp_writer *w, struct kp_topic_partition *tp,
		     char *batch, size_t len, int64_t now_ms,
		     uint64_t *base_offset, struct kp_error *err);

/*
 * Makes slot wait until tp's durable end reaches end (exclusive); does
 * nothing when it already has. Takes a reference on the slot and increments
 * slot->waits; the slot is made ready when its last wait completes.
 * Returns 0; KP_ESTORAGE when the partition has failed and end will never
 * be durable; -ENOMEM.
 */
int kp_writer_wait_durable(struct kp_writer *w, struct kp_topic_partition *tp,
			    struct kp_slot *slot, uint64_t end);

/*
 * Parks a fetch of tp at offset for up to wait_ms; wake(wake_arg, ...) is
 * called once, when data is visible at offset or the time is up (or the
 * topic goes).
 */
int kp_writer_park_fetch(struct kp_writer *w, struct kp_topic_partition *tp,
			 struct kp_slot *slot, uint64_t offset,
			 uint64_t max_bytes, uint64_t wait_ms,
			 kp_fetch_wake_fn wake, void *wake_arg);

/* Starts a sync job on tp if there is unsynced data and none in flight. */
void kp_writer_sync(struct kp_writer *w, struct kp_topic_partition *tp);

/*
 * Periodic: starts a sync for produces still waiting on tp when none is in
 * flight (a sync that could not start, e.g. out of descriptors, is retried).
 */
void kp_writer_retry(struct kp_writer *w, struct kp_topic_partition *tp);

/* true while tp has a sync job in flight. */
bool kp_writer_busy(const struct kp_topic_partition *tp);

/*
 * Answers parked fetches on tp now, through their wake function; when code
 * is not 0, also fails every produce waiting for durability with it.
 */
void kp_writer_flush_waits(struct kp_writer *w, struct kp_topic_partition *tp,
			   int code, const char *message);

/*
 * Latency histograms of tp's write path, kept by writer.c on the loop
 * thread: the time to append one batch (kp_partition_append: page cache
 * and indexes), and the time of one sync job's fdatasyncs (on a worker).
 * NULL when tp has no writer state.
 */
const struct kp_histogram *
kp_writer_append_latency(const struct kp_topic_partition *tp);
const struct kp_histogram *
kp_writer_fsync_latency(const struct kp_topic_partition *tp);

#endif
