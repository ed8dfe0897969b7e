/*
 * recovery.h - bringing a partition directory back to a clean state at
 * open, and the recovery point that bounds that work.
 *
 * The recovery point (recovery.ckpt) records how far the last segment is
 * known clean and carries the producer-id snapshot at that point; it is
 * written as a temporary file renamed over the old one, with a CRC. At open
 * the sealed segments are trusted (their indexes checked cheaply and
 * rebuilt when damaged) and only the last segment beyond the recovery point
 * is scanned: every batch's header, offset and CRC is checked, and the file
 * is cut at the first bad or short batch. So start-up time is bounded by
 * the segment size, not by the size of the log. Before any of that,
 * segments still in batch format 1 are rewritten in format 2 (migrate.h)
 * and a recovery point inside one moves with it.
 */
#ifndef KP_RECOVERY_H
#define KP_RECOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "producer.h"
#include "segment.h"
#include "base/error.h"

#define KP_RECOVERY_CKPT "recovery.ckpt"

/* A recovery point: the last segment is clean up to position. */
struct kp_ckpt {
	uint64_t segment_base;  /* base offset of the segment it describes */
	uint64_t position;      /* bytes of that segment known clean */
	uint64_t next_offset;   /* offset following the batch ending there */
	int64_t max_ts;         /* largest record ts in the segment below */
	int64_t created_ms;     /* the segment's first append time */
	uint32_t index_entries; /* offset index entries written for it */
	uint32_t time_entries;  /* time index entries written for it */
};

/*
 * Writes dir/recovery.ckpt with ck and the producer snapshot (tmp file
 * renamed into place). With sync the file and directory are fsynced too
 * (shutdown only). Returns 0 or -errno.
 */
int kp_recovery_ckpt_write(const char *dir, const struct kp_ckpt *ck,
			   const struct kp_producer_table *producers,
			   bool sync);

/*
 * Reads dir/recovery.ckpt into ck and producers. Returns 0; -ENOENT when
 * there is none; KP_ECORRUPT when it fails its checks (producers left
 * empty); -errno.
 */
int kp_recovery_ckpt_read(const char *dir, struct kp_ckpt *ck,
			  struct kp_producer_table *producers);

/* What recovery hands to the partition. */
struct kp_recovered {
	struct kp_segment **segs;  /* owned array, oldest first, n >= 1 */
	size_t n;                  /* segments */
	size_t cap;                /* array capacity */
	bool created;              /* new files were created: fsync the dir */
	uint64_t scanned;          /* bytes of tail scanned */
	uint64_t cut;              /* bytes cut from a torn or bad tail */
	size_t unclean_from;       /* segments from this index on were not
				      known to be on disk: fsync them */
};

/*
 * Opens dir (creating it if needed), opens its segments and recovers the
 * last one as described above; fills out and producers (snapshot plus the
 * scanned tail, minus batches that were cut). Logs what it did. Returns 0,
 * or an error with err set (out is then empty).
 */
int kp_recovery_run(const char *dir, uint32_t interval,
		    struct kp_recovered *out,
		    struct kp_producer_table *producers, struct kp_error *err);

/* Closes the segments held by r and frees its array. */
void kp_recovery_release(struct kp_recovered *r);

#endif
