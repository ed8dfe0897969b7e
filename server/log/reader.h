/*
 * reader.h - reading a partition's segments: the batch that holds an
 * offset, windows of whole checked batches, damaged batches and where
 * reading goes on after them, the offset for a time.
 *
 * Access pattern: loop thread, forward preads from an index lookup. Every
 * batch served has passed its header CRC, its records' CRC and the checks
 * of kp_batch_verify; a damaged one is never served. A read that meets
 * damage first is answered KP_ECORRUPT with the first offset of the next
 * readable batch (found by stepping over the damage: a valid header's
 * length, else a scan for the next valid header), or the visible end when
 * none follows, so that fetching from it never meets the same damage. A
 * batch cut by the end of a read window is not damage: the read stops
 * before it and the next read takes it whole.
 */
#ifndef KP_READER_H
#define KP_READER_H

#include <stddef.h>
#include <stdint.h>

#include "segment.h"
#include "base/buf.h"
#include "base/error.h"

/* The segments of a partition as a reader sees them; all borrowed. */
struct kp_log_view {
	struct kp_segment **segs;  /* oldest first */
	size_t n;                  /* segments, >= 1 */
	uint64_t visible_end;      /* readers see offsets below this */
	struct kp_buf *scratch;    /* scratch for scans (reset at will) */
};

/*
 * Reads whole visible batches starting with the one that holds offset (or
 * the first after it), appending their bytes to out, until max_bytes is
 * reached (at least one batch when any is visible at or after offset).
 * offset must be within [start, visible_end). Returns 0 (out unchanged when
 * no batch at or after offset is visible); KP_ECORRUPT when the batch that
 * holds offset is damaged, with *skip_to (when not NULL) the offset where
 * reading goes on (> offset) and the damage logged once; -errno with err.
 * A damaged batch after the first ends the read before it.
 */
int kp_reader_read(const struct kp_log_view *lv, uint64_t offset,
		   size_t max_bytes, struct kp_buf *out, uint64_t *skip_to,
		   struct kp_error *err);

/*
 * Where a read of whole batches would find its bytes, for a reader that
 * reads (and checks) them itself: one segment's file (path without ".log",
 * its fd for an identity check), the position of the batch that holds
 * offset (or the first after it), how many bytes from there may be read
 * (max_bytes, at least that batch, not past the segment's end) and
 * end_offset, the first offset of the segment not to serve (its end, or the
 * visible end). Batches from pos that start below end_offset, each checked
 * as kp_reader_read checks them, are what kp_reader_read would return.
 */
struct kp_read_span {
	const char *path;          /* borrowed from the segment */
	int fd;                    /* the segment's .log */
	uint64_t pos;              /* position of the first batch */
	size_t len;                /* bytes that may be read from pos */
	uint64_t end_offset;       /* do not serve from here */
};

/*
 * Finds the span of a read at offset (kp_read_span) reading only batch
 * headers. Returns 0 (span->len 0 when no batch at or after offset is
 * visible), KP_ECORRUPT as kp_reader_read (the batch or header that holds
 * offset is damaged: *skip_to, the damage logged once), or -errno with err.
 */
int kp_reader_locate(const struct kp_log_view *lv, uint64_t offset,
		     size_t max_bytes, struct kp_read_span *span,
		     uint64_t *skip_to, struct kp_error *err);

/*
 * The first offset whose record has ts >= ts, or the visible end when none
 * has. A damaged stretch where that record may lie answers its first
 * offset (reading it then says where to go on). Returns 0 and *offset, or
 * -errno with err.
 */
int kp_reader_offset_for_time(const struct kp_log_view *lv, int64_t ts,
			      uint64_t *offset, struct kp_error *err);

#endif
