/*
 * store.h - the log as one service on the loop thread: the catalog of
 * topics with a write path for each partition (writer.h), the consumer
 * groups and their saving, topic deletion, and the periodic work of the
 * log (fsync=interval, retried syncs, retention, retried group saves).
 *
 * Disk work runs on libuv's worker threads and reports back to the loop;
 * kp_store_busy says whether any is still in flight (a graceful stop waits
 * for it). Upper layers (the processor runtime, the protocol server) are
 * handed the store; the store knows nothing of them and tells them of new
 * data only through writer.on_visible.
 */
#ifndef KP_STORE_H
#define KP_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "groups.h"
#include "topic.h"
#include "writer.h"
#include "base/error.h"

struct kp_slot;

/* A commit of group offsets waiting for groups.db to reach the disk. */
struct kp_group_waiter {
	struct kp_group_waiter *next;
	struct kp_slot *slot;         /* completed when saved */
	uint64_t generation;          /* table version it needs on disk */
};

struct kp_store {
	uv_loop_t *loop;              /* borrowed */
	struct kp_catalog *catalog;   /* owned */
	struct kp_groups *groups;     /* owned */
	struct kp_writer writer;      /* the write path of every partition */
	int jobs_in_flight;           /* group saves, removals in flight */
	int64_t last_retention_ms;    /* when retention last ran */
	uint32_t retention_check_ms;  /* how often retention runs */
	/* group offsets persistence */
	uint64_t groups_generation;   /* bumped by every change */
	uint64_t groups_saved;        /* generation known on disk */
	bool groups_saving;           /* a save job is in flight */
	int64_t last_groups_retry_ms; /* when a failed save was last retried */
	struct kp_group_waiter *group_waiters;
	struct kp_topic **doomed;     /* deleted topics awaiting release */
	size_t doomed_count;
	/* compaction (compact.h): one run at a time in the whole store */
	struct kp_compact_job *compact_job; /* the run in flight, or NULL */
	size_t compact_next;          /* where the next search for a due
					 partition starts (round robin) */
	int64_t last_compact_check_ms; /* when partitions were last checked */
	bool stopping;                /* a stop began: no new runs */
	uint32_t compact_delay_ms;    /* test knob: KAPPA_TEST_COMPACT_DELAY_MS */
	char compact_stall[16];       /* test knob: KAPPA_TEST_COMPACT_STALL */
};

/*
 * Opens the topics and groups under data_dir on loop, with a write path
 * for every partition. now_ms is the wall clock at open (retention's first
 * period starts there). Returns 0, or an error with err (nothing open).
 */
int kp_store_open(struct kp_store *st, uv_loop_t *loop, const char *data_dir,
		  uint32_t retention_check_ms, int64_t now_ms,
		  struct kp_error *err);

/*
 * Closes everything open (the loop must be done: deleted topics still set
 * aside are removed in place). Safe on a store that failed to open.
 */
void kp_store_close(struct kp_store *st);

/*
 * Creates a topic (kp_catalog_create) and its partitions' write paths.
 * Returns 0 and *out, or an error with err.
 */
int kp_store_create_topic(struct kp_store *st, const char *name, size_t len,
			  const struct kp_topic_config *cfg,
			  struct kp_topic **out, struct kp_error *err);

/*
 * Deletes a topic: takes it out of the catalog now, fails its waiters,
 * forgets its group offsets, and releases its files once no sync job is in
 * flight on it.
 */
int kp_store_delete_topic(struct kp_store *st, struct kp_topic *t,
			  struct kp_error *err);

/*
 * Asks for groups.db to be saved (the caller bumps groups_generation for
 * each change to the table); slot (may be NULL) waits until a save that
 * includes the current generation is on disk, and gets the error when it
 * fails.
 */
void kp_store_save_groups(struct kp_store *st, struct kp_slot *slot);

/*
 * Periodic work at now_ms (wall clock): fsync=interval syncs, syncs that
 * could not start, group saves that failed (once a second), retention, and
 * the start of a compaction run for a partition that is due (one run at a
 * time: its rewrite on a worker thread, the swap on the loop).
 */
void kp_store_tick(struct kp_store *st, int64_t now_ms);

/*
 * Starts a sync of every partition with unsynced data (a stop): also
 * cancels a compaction run in progress and starts no more.
 */
void kp_store_sync_all(struct kp_store *st);

/* Answers every parked fetch now (a stop). */
void kp_store_answer_fetches(struct kp_store *st);

/* true while a worker-thread job of the store is in flight. */
bool kp_store_busy(const struct kp_store *st);

#endif
