/*
 * migrate.h - rewriting a partition's segments of batch format 1 ("KPB1",
 * batch_v1.h) in format 2 (batch.h) when the partition is opened, before
 * recovery reads them.
 *
 * A segment's format is the magic of its first batch (or, if that one is
 * damaged, of the first magic found in its first MiB). Each format-1
 * segment is converted batch by batch into <base>.log.migrate, which is
 * fsynced; then its index files are removed, the new file renamed over
 * <base>.log (the commit point) and the directory fsynced; then its indexes
 * are rebuilt in their format-2 form. A crash part way leaves every
 * segment whole in one format or the other, and the next start goes on.
 * Offsets, timestamps, keys, values, headers and producer ids do not
 * change. A format-1 batch whose base offset disagrees with the dense
 * offsets before it (format 1 did not checksum it) is given the offset it
 * must have; a batch that fails format 1's other checks cannot be vouched
 * for: its bytes are copied as they are, so that format 2's readers report
 * them as damaged and step over them. Every migrated segment is logged.
 */
#ifndef KP_MIGRATE_H
#define KP_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* A position in a segment that must follow the segment's migration. */
struct kp_migrate_mark {
	bool valid;            /* in: there is a mark (a recovery point) */
	uint64_t segment_base; /* in: the segment it is in */
	uint64_t position;     /* in/out: a batch boundary in that segment */
	uint64_t next_offset;  /* in/out: the offset of the batch there */
	bool moved;            /* out: position rewritten for format 2 (when
				  it was not at a convertible batch's start:
				  0, with next_offset the segment's base) */
};

/* Leftovers of a migration the suffix of whose name this is are removed. */
#define KP_MIGRATE_SUFFIX ".migrate"

/*
 * Migrates the format-1 segments among the n segments of dir whose base
 * offsets are bases (sorted), rebuilding their indexes every interval
 * bytes, and moves mark along with its segment. Removes leftover
 * <base>.log.migrate files. Returns 0 (nothing to do is 0), or an error
 * with err set (the segment that failed is left as it was).
 */
int kp_migrate_segments(const char *dir, const uint64_t *bases, size_t n,
			uint32_t interval, struct kp_migrate_mark *mark,
			struct kp_error *err);

#endif
