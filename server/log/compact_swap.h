/*
 * compact_swap.h - the files of a compaction's swap (compact.h): the
 * manifest that commits new segments, moving them into place, and, when a
 * partition is opened, completing a swap a crash interrupted or removing
 * what an unfinished run left.
 *
 * In a partition directory:
 *   compact.tmp/<base>.{log,index,timeindex}  new segments, each replacing
 *                                             the segments in [base, end)
 *   compact.swap                              the manifest: magic "KPCS",
 *                                             u32 version, u32 count, then
 *                                             count times (u64 base, u64
 *                                             end, u64 size of the new
 *                                             .log), u32 CRC32C of all
 *                                             before it; little-endian
 *
 * Every step after the manifest is on disk is idempotent: renaming what is
 * still in compact.tmp over the old names, deleting the replaced segments
 * (bases in (base, end)), then the manifest. Blocking file work; callers
 * choose the thread.
 */
#ifndef KP_COMPACT_SWAP_H
#define KP_COMPACT_SWAP_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define KP_COMPACT_TMP_DIR "compact.tmp"
#define KP_COMPACT_MANIFEST "compact.swap"

/* One new segment of a swap. */
struct kp_compact_swap_entry {
	uint64_t base;  /* its base offset, the first replaced segment's */
	uint64_t end;   /* it replaces the segments in [base, end) */
	uint64_t size;  /* bytes of its .log */
};

/*
 * Writes dir's manifest for the n entries atomically (tmp, fsync, rename,
 * fsync of dir): the commit point of a swap. Returns 0 or -errno.
 */
int kp_compact_manifest_write(const char *dir,
			      const struct kp_compact_swap_entry *e, size_t n);

/*
 * Renames the files of the new segment at base still in dir/compact.tmp
 * over dir's names. Returns 0 or -errno.
 */
int kp_compact_move_into_place(const char *dir, uint64_t base);

/* Deletes dir's three files of the segment at base (absent is fine). */
void kp_compact_remove_segment(const char *dir, uint64_t base);

/*
 * Ends a swap whose renames and deletions are done: fsyncs dir, removes
 * the manifest and compact.tmp. Returns 0 or -errno (the manifest stays
 * then, for kp_compact_recover).
 */
int kp_compact_finish_dir(const char *dir);

/*
 * Brings the partition directory dir to a whole segment set before it is
 * opened: completes a swap whose manifest is on disk, or removes what an
 * unfinished run left. Returns 0, or an error with err (a manifest that is
 * damaged or does not match the files: nothing is deleted then).
 */
int kp_compact_recover(const char *dir, struct kp_error *err);

#endif
