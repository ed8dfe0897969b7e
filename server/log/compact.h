/*
 * compact.h - log compaction of a partition's sealed segments: the rewrite
 * that keeps the latest record of each key, the crash-safe swap of the new
 * segment files, and the policy of when a partition is due (pure: it takes
 * now as an argument).
 *
 * Knows segment files and batches, nothing of the event loop or of struct
 * kp_partition: the store (store.c) takes the sealed segments out of the
 * partition on the loop, runs a job on a worker thread, and puts the result
 * back into the partition on the loop.
 *
 * What a run keeps, over the sealed segments it is given (never the active
 * one): every record without a key; of the records with a key (compared as
 * bytes), the one with the highest offset; a tombstone (a record whose
 * value is msgpack nil, the one byte 0xc0) only until both its ts and its
 * segment's last write are older than delete_retention_ms. Records keep
 * their offsets, timestamps, keys, headers and values, so compacted
 * segments have gaps; the batches they are rewritten into carry no
 * producer id (producer dedup lives in the recovery point and the active
 * segment, which compaction never touches).
 *
 * A run is incremental: sources below clean_end were compacted by an
 * earlier run and already hold one record per key among themselves, so
 * only the keys of the newer ("dirty") sources are collected in memory,
 * and clean records go only when a dirty record of the same key supersedes
 * them. Adjacent small results are merged into one segment (up to
 * segment_bytes); a source that would come out unchanged is not rewritten.
 *
 * Files in the partition directory while a run is in progress: the new
 * segments in compact.tmp/ and the manifest compact.swap (compact_swap.h).
 *
 * Crash safety: the new files are written and fsynced, then their
 * directory, then the manifest is written atomically (tmp, fsync, rename,
 * fsync of the directory): that is the commit point. Before it, a restart
 * finds no manifest and removes compact.tmp (the old segments are intact);
 * after it, kp_compact_recover (compact_swap.h) completes the swap (renames
 * what is still in compact.tmp over the old names, deletes the replaced
 * segments) before the partition opens. Every step of that is idempotent.
 * On a running server the loop renames the new files into place and swaps
 * them into the partition in one callback (kp_compact_install), then a
 * worker deletes the replaced files, fsyncs the directory and only then
 * removes the manifest (kp_compact_finish). Only segments below the
 * on-disk recovery point (made durable first) are ever compacted, so
 * recovery never checks a segment with gaps for contiguous offsets.
 */
#ifndef KP_COMPACT_H
#define KP_COMPACT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compact_swap.h"
#include "base/error.h"

struct kp_segment;

/* A partition's cleanup policy (topic setting `cleanup`). */
enum kp_cleanup {
	KP_CLEANUP_DELETE = 0,      /* retention by time and size only */
	KP_CLEANUP_COMPACT,         /* compaction only */
	KP_CLEANUP_COMPACT_DELETE   /* compaction, then retention */
};

/* Parses "delete", "compact" or "compact,delete" (also "delete,compact"). */
int kp_cleanup_parse(const char *s, size_t len, enum kp_cleanup *out);

/* The name of a cleanup policy, as kp_cleanup_parse reads it. */
const char *kp_cleanup_name(enum kp_cleanup c);

/* true when the policy compacts. */
bool kp_cleanup_compacts(enum kp_cleanup c);

/* Default of the topic setting delete_retention_ms: one day. */
#define KP_DELETE_RETENTION_DEFAULT_MS 86400000LL

/* true when the msgpack value is nil: the record is a tombstone. */
bool kp_compact_is_tombstone(const char *value, uint32_t value_len);

/* ---- policy ------------------------------------------------------------ */

/*
 * A partition's compaction bookkeeping, kept by the store on the loop
 * thread. Zeroed is a valid start (nothing compacted since start).
 */
struct kp_compact_state {
	uint64_t clean_end;        /* sources below were compacted by a run */
	int64_t last_run_ms;       /* when the last run ended; 0 = never */
	int64_t retry_ms;          /* no run before this (after a failure or
				      while held back by the recovery point) */
	int64_t tombstone_due_ms;  /* a kept tombstone may go then; 0 = none */
	bool running;              /* a job is in flight */
	uint32_t failures;         /* runs failed in a row (back-off) */
	bool needs_ckpt;           /* the last run left segments to the
				      recovery point, and none could be
				      written yet (retried by the store) */
	uint64_t seen_end;         /* the partition's end offset ... */
	int64_t seen_end_ms;       /* ... first seen then (0 = not yet) */
	uint64_t runs;             /* runs completed since start (metrics) */
	uint64_t records_removed;  /* records they removed (metrics) */
	uint64_t bytes_removed;    /* bytes they freed */
};

/* Runs of one partition are at least this far apart. */
#define KP_COMPACT_MIN_INTERVAL_MS 1000
/* After a failed run, the partition waits this long. */
#define KP_COMPACT_RETRY_MS 10000
/* A run starts once the dirty bytes are this fraction of all sealed ones, */
#define KP_COMPACT_MIN_DIRTY_RATIO 0.5
/* ... or once nothing was appended for this long and anything is dirty. */
#define KP_COMPACT_QUIET_MS 5000

/*
 * Whether a partition is due for a run at now_ms, given the bytes of its
 * compactable sealed segments at or beyond s->clean_end (dirty) and of all
 * of them (total): not while one runs or before retry_ms, at most once per
 * KP_COMPACT_MIN_INTERVAL_MS, and then when the dirty part is at least
 * KP_COMPACT_MIN_DIRTY_RATIO of the total (so a steady stream rewrites the
 * compacted part only as often as it doubles), when the partition has been
 * quiet (seen_end unchanged) for KP_COMPACT_QUIET_MS with anything dirty
 * (so a table that stopped changing ends up wholly compacted), or when a
 * kept tombstone is due.
 */
bool kp_compact_due(const struct kp_compact_state *s, uint64_t dirty_bytes,
		    uint64_t total_bytes, int64_t now_ms);

/* ---- a run --------------------------------------------------------------- */

/* What a run is asked to do. */
struct kp_compact_settings {
	int64_t now_ms;               /* wall clock: the tombstone horizon */
	int64_t delete_retention_ms;  /* tombstones older than this go */
	uint64_t segment_bytes;       /* merged segments stay within this */
	uint32_t index_interval;      /* index entry every this many bytes */
	uint64_t clean_end;           /* sources below it are clean */
	size_t map_bytes;             /* memory for the dirty keys; 0: 256 MiB */
	uint32_t delay_ms;            /* tests: sleep this long per 1000
					 records read */
	const char *stall;            /* tests: "written", "manifest" or
				         "swapped": sleep 60 s there (borrowed) */
};

/* One sealed segment a run reads. */
struct kp_compact_source {
	uint64_t base;          /* its base offset (file name) */
	uint64_t end;           /* the next segment's base: it holds [base, end) */
	uint64_t size;          /* bytes of whole batches */
	int64_t mtime_ms;       /* its last write, wall clock */
	int fd;                 /* dup of its .log, owned by the job */
	/* counting pass */
	uint64_t keep_bytes;    /* bytes of the records it keeps */
	uint64_t keep_records;  /* records it keeps */
	uint64_t drop_records;  /* records it drops */
};

/* One new segment, replacing the sources [first, first + count). */
struct kp_compact_output {
	size_t first;              /* index of its first source */
	size_t count;              /* sources it replaces, >= 1 */
	uint64_t base;             /* its base offset: the first source's */
	uint64_t end;              /* the last source's end */
	uint64_t size;             /* bytes of its .log */
	struct kp_segment *seg;    /* opened sealed from compact.tmp; owned by
				      the job until kp_compact_install */
	bool installed;            /* renamed into place and handed over */
};

struct kp_compact_job {
	char dir[4096];                    /* the partition directory */
	struct kp_compact_settings set;    /* copied at kp_compact_job_new */
	struct kp_compact_source *src;     /* owned, oldest first, contiguous */
	size_t nsrc;                       /* sources */
	size_t src_cap;                    /* capacity of src */
	struct kp_compact_output *out;     /* owned: the new segments */
	size_t nout;                       /* new segments */
	atomic_bool cancel;                /* set on the loop: stop soon */
	/* results of kp_compact_run */
	int rc;                            /* 0, -ECANCELED or an error */
	struct kp_error err;               /* why, when rc != 0 */
	bool blocked;                      /* sources were held back by the
					      recovery point */
	bool manifest;                     /* the manifest is on disk */
	uint64_t scanned_end;              /* sources below it were compacted:
					      the next clean_end */
	uint64_t records_removed;          /* dropped by the new segments */
	uint64_t bytes_before;             /* of the sources they replace */
	uint64_t bytes_after;              /* of the new segments */
	int64_t tombstone_due_ms;          /* earliest time a kept tombstone
					      may go; 0 = none */
};

/*
 * A new job for the partition in dir with settings set (stall borrowed).
 * NULL when out of memory.
 */
struct kp_compact_job *kp_compact_job_new(const char *dir,
					  const struct kp_compact_settings *set);

/*
 * Adds the sealed segment seg, whose successor starts at end, as the next
 * source (sources must be contiguous, oldest first). Duplicates its
 * descriptor, so the job reads it whatever happens to the segment. Loop
 * thread. Returns 0 or -errno.
 */
int kp_compact_job_add(struct kp_compact_job *job,
		       const struct kp_segment *seg, uint64_t end);

/*
 * Runs the job: reads the sources, writes the new segments into
 * compact.tmp, fsyncs them and writes the manifest (nothing when no source
 * changes). Worker thread; touches only the job and the files. Sets rc (and
 * err), blocked, scanned_end and the counters; on failure or cancel it
 * removes what it wrote.
 */
void kp_compact_run(struct kp_compact_job *job);

/*
 * Moves new segment i into place (its files renamed over the first
 * source's names) and hands it over in *seg, its path updated: the caller
 * puts it into the partition in place of the sources [first, first +
 * count) in the same loop turn. Loop thread (a few renames). Returns 0 or
 * -errno (a rename failed: the files stay for kp_compact_recover).
 */
int kp_compact_install(struct kp_compact_job *job, size_t i,
		       struct kp_segment **seg);

/*
 * Completes an installed job: deletes the replaced segments' files, fsyncs
 * the directory, removes the manifest and compact.tmp. Worker thread.
 */
void kp_compact_finish(struct kp_compact_job *job);

/*
 * Frees the job: closes its descriptors and the new segments not handed
 * over. NULL is a no-op.
 */
void kp_compact_job_delete(struct kp_compact_job *job);

#endif
