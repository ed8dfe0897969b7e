/*
 * partition.h - one partition of a topic: a directory of segments.
 *
 * Files in the partition directory:
 *   <20-digit base offset>.log        batches (batch.h), appended
 *   <20-digit base offset>.index      sparse offset index: (u32 relative
 *                                     offset, u32 position, u32 crc) every
 *                                     index_interval_bytes of log
 *   <20-digit base offset>.timeindex  sparse time index: (i64 max ts so far,
 *                                     u32 relative offset, u32 crc)
 *   recovery.ckpt                     recovery point: how far the log is
 *                                     known clean (written after an fsync),
 *                                     plus the producer-id snapshot, CRC'd
 *
 * Access pattern: the loop thread appends, reads and rolls; fsync runs on a
 * worker thread through a sync job (begin on the loop, run on a worker, done
 * on the loop), so the loop never waits for the disk. Reads see only whole
 * batches below the visible end: with fsync=always that is the durable end,
 * otherwise the written end.
 *
 * Recovery at open scans only the tail of the last segment beyond the
 * recovery point: it truncates a torn tail and rebuilds a missing or damaged
 * index; segments of batch format 1 are first rewritten in format 2
 * (migrate.h). Sealed segments are trusted at open and checked on every
 * read: a batch whose header or records fail their CRC is never served
 * (KP_ECORRUPT, logged, with the offset where reading goes on: reader.h).
 */
#ifndef KP_PARTITION_H
#define KP_PARTITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/error.h"
#include "reader.h"

enum kp_fsync_mode {
	KP_FSYNC_ALWAYS,    /* acknowledge after fsync (group commit) */
	KP_FSYNC_INTERVAL,  /* fsync every fsync_interval_ms; ack when written */
	KP_FSYNC_NEVER      /* leave it to the OS; ack when written */
};

/* Parses "always|interval|never". Returns 0 or -1. */
int kp_fsync_mode_parse(const char *s, enum kp_fsync_mode *mode);

/* The name of a fsync mode. */
const char *kp_fsync_mode_name(enum kp_fsync_mode mode);

struct kp_partition_config {
	uint64_t segment_bytes;          /* roll the active segment at this size */
	int64_t segment_ms;              /* ... or when its first record is older */
	int64_t retention_ms;            /* delete older segments; -1 = never */
	int64_t retention_bytes;         /* keep at most this; -1 = no limit */
	uint32_t index_interval_bytes;   /* index entry every this many bytes */
	enum kp_fsync_mode fsync;        /* decides the visible end */
};

/* Fills cfg with the defaults (128 MiB, 7 days, keep all, 4 KiB, always). */
void kp_partition_config_default(struct kp_partition_config *cfg);

struct kp_partition_stats {
	uint64_t start_offset;   /* first retained offset */
	uint64_t end_offset;     /* next offset to assign (written end) */
	uint64_t durable_end;    /* everything below is fsynced */
	uint64_t visible_end;    /* readers see [start_offset, visible_end) */
	uint64_t size_bytes;     /* bytes of .log files */
	uint32_t segments;       /* number of segments */
	uint64_t duplicates;     /* idempotent batches dropped as duplicates */
	bool failed;             /* writes stopped after a storage error */
	bool full;               /* the last write found no space (ENOSPC);
				    the next one that fits clears it */
};

struct kp_partition;
struct kp_segment;
struct kp_sync_job;

/*
 * Opens (creating if needed) the partition in dir and recovers it. Logs what
 * recovery did. Returns 0 and *out, or an error with err set.
 */
int kp_partition_open(const char *dir, const struct kp_partition_config *cfg,
		      struct kp_partition **out, struct kp_error *err);

/*
 * Closes the partition: fsyncs what is written, writes a clean recovery
 * point, frees everything. No sync job may be in flight. NULL is a no-op.
 */
void kp_partition_close(struct kp_partition *p);

/*
 * Closes a partition whose files are about to be removed: no fsync, no
 * recovery point. NULL is a no-op; no sync job may be in flight.
 */
void kp_partition_discard(struct kp_partition *p);

/* Changes retention and roll settings of an open partition. */
void kp_partition_configure(struct kp_partition *p,
			    const struct kp_partition_config *cfg);

/*
 * Idempotence check before appending a batch of producer pid with sequence
 * seq. Returns 0 when the batch is new and must be appended; 1 when it
 * duplicates one of the producer's last five batches (then *dup_base and
 * *dup_count describe the original, and the duplicate is counted);
 * KP_ESEQUENCE when seq is neither.
 */
int kp_partition_producer_check(struct kp_partition *p, uint64_t pid,
				uint32_t seq, uint64_t *dup_base,
				uint32_t *dup_count);

/*
 * Appends a finished batch (kp_batch_finish): assigns its base offset
 * (written into the bytes), rolls the segment first if it is full or older
 * than segment_ms at now_ms, writes it to the page cache, updates the
 * indexes and the producer state. Returns 0 and *base_offset; KP_ESTORAGE
 * once the partition has failed, or when the file system has no space
 * (ENOSPC, EDQUOT: the partial write is cut back and the partition stays
 * writable, so a later append succeeds once space is freed; stats say
 * full meanwhile); -errno on another write error (which fails the
 * partition for good, after truncating back to the last whole batch).
 */
int kp_partition_append(struct kp_partition *p, char *batch, size_t len,
			int64_t now_ms, uint64_t *base_offset,
			struct kp_error *err);

/*
 * Starts a sync job covering everything written so far, or returns NULL
 * when durable_end == end_offset or a job is already in flight (at most
 * one per partition). Loop thread.
 */
struct kp_sync_job *kp_partition_sync_begin(struct kp_partition *p);

/* Runs the job's fdatasyncs. Worker thread; touches only the job. */
void kp_sync_job_run(struct kp_sync_job *job);

/*
 * Completes a job on the loop thread and frees it. On success advances the
 * durable (and, with fsync=always, visible) end and returns 0. If any fsync
 * failed the partition is failed for good (nothing more is acknowledged or
 * written) and the error is returned with err set.
 */
int kp_partition_sync_done(struct kp_partition *p, struct kp_sync_job *job,
			   struct kp_error *err);

/* true while a sync job is in flight. */
bool kp_partition_syncing(const struct kp_partition *p);

/*
 * Reads whole visible batches starting with the one that holds offset (or
 * the first after it: offsets may have gaps), appending their bytes to out,
 * until max_bytes is reached (at least one batch when any is visible).
 * Every batch is checked (header CRC, records' CRC, layout): when the one
 * holding offset is damaged, returns KP_ECORRUPT with *skip_to set to the
 * first offset of the next readable batch after it, or the visible end
 * when none follows (always > offset, and itself readable); a damaged
 * later batch ends the read before it. A batch cut by the end of a read
 * window is not damage. Returns 0 (out unchanged when offset == visible
 * end), KP_EOFFSET when offset is below the start or above the visible end.
 */
int kp_partition_read(struct kp_partition *p, uint64_t offset,
		      size_t max_bytes, struct kp_buf *out, uint64_t *skip_to,
		      struct kp_error *err);

/*
 * Like kp_partition_read, without reading the batches: where their bytes
 * are (kp_reader_locate), for a reader that reads and checks them itself.
 * span->len is 0 when offset == visible end. Returns 0, KP_ECORRUPT (with
 * *skip_to) or KP_EOFFSET as kp_partition_read; span borrows the segment
 * until the partition next changes (an append, a roll, retention).
 */
int kp_partition_locate(struct kp_partition *p, uint64_t offset,
			size_t max_bytes, struct kp_read_span *span,
			uint64_t *skip_to, struct kp_error *err);

/*
 * The first offset whose record has ts >= ts, or the visible end when none
 * has. Returns 0 and *offset.
 */
int kp_partition_offset_for_time(struct kp_partition *p, int64_t ts,
				 uint64_t *offset, struct kp_error *err);

/*
 * Deletes whole segments beyond the retention limits at now_ms, never the
 * active one. Returns the number of segments removed, or an error.
 */
int kp_partition_enforce_retention(struct kp_partition *p, int64_t now_ms);

/* Current counters. */
void kp_partition_stats(const struct kp_partition *p,
			struct kp_partition_stats *st);

/*
 * Test hook: makes kp_sync_job_run report error (a negative errno) as if
 * an fdatasync of the job had failed. Tests only.
 */
void kp_sync_job_inject_error(struct kp_sync_job *job, int error);

/*
 * For compaction (compact.h, run by store.c), loop thread: the segments,
 * oldest first (the last is the active one; segment.h's fields are read
 * only), valid until the next append, retention or replacement.
 */
size_t kp_partition_segment_count(const struct kp_partition *p);
struct kp_segment *kp_partition_segment_at(const struct kp_partition *p,
					   size_t i);

/*
 * Replaces the count sealed segments starting with the one at base by seg
 * (which starts at base too and holds what they held, minus what
 * compaction removed), taking ownership of seg and closing (not deleting:
 * the compactor owns the files) the old ones. The active segment is never
 * replaced. Returns 0, or -EINVAL (nothing changed) when the segments are
 * not there.
 */
int kp_partition_replace_segments(struct kp_partition *p, uint64_t base,
				  size_t count, struct kp_segment *seg);

/*
 * Writes a recovery point for the active segment now, so that the sealed
 * segments before it count as clean at the next open (compaction rewrites
 * only those: recovery checks the segments from the recovery point's on for
 * contiguous offsets). With fsync=never it says nothing of the active
 * segment's contents (position 0, as at a roll). Returns 0, or -EAGAIN
 * when not everything written is durable yet, a sync job is in flight or
 * the partition has failed.
 */
int kp_partition_write_recovery_point(struct kp_partition *p);

#endif
