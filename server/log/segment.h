/*
 * segment.h - one segment of a partition: the files <base>.log, <base>.index
 * and <base>.timeindex, named by the 20-digit base offset.
 *
 * Knows bytes on disk and positions, nothing of the event loop, sync jobs
 * or retention. The active segment is appended with one pwrite per batch;
 * its sparse indexes are kept in memory and written to their files in one
 * write per flush. A sealed segment's indexes are mapped from their files
 * lazily, on the first lookup, and rebuilt by scanning the log when they
 * are missing or damaged.
 *
 * Index entry formats, little-endian, each entry ending in the CRC32C of
 * the bytes before it in the entry:
 *   .index      u32 relative offset, u32 position of the batch with that
 *               base offset, u32 crc
 *   .timeindex  i64 largest ts up to and including the batch at rel,
 *               u32 relative offset, u32 crc
 * An index is damaged when an entry fails its CRC, entries are out of
 * order, point past the log, or (checked on each lookup) an offset entry's
 * position does not hold a batch with that offset; a damaged index is
 * rebuilt from the log, with a log line saying why.
 */
#ifndef KP_SEGMENT_H
#define KP_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "base/buf.h"

#define KP_INDEX_ENTRY 12
#define KP_TIMEINDEX_ENTRY 16

/* One sparse index, held as the bytes of its file. */
struct kp_index {
	char *data;       /* entries; heap (owned) or a mapping of the file */
	size_t n;         /* entries in data */
	size_t cap;       /* entries allocated when on the heap */
	size_t flushed;   /* leading entries already in the file */
	bool mapped;      /* data is a read-only mmap of the file */
};

struct kp_segment {
	uint64_t base;            /* offset of its first record (file name) */
	uint64_t next_offset;     /* offset after its last batch */
	uint64_t size;            /* bytes of whole batches in .log */
	uint64_t last_batch;      /* base offset of its last batch */
	uint64_t last_index_pos;  /* position of the newest index entry */
	int64_t max_ts;           /* largest record ts; INT64_MIN when empty */
	int64_t created_ms;       /* append time of its first record; 0 unknown */
	int64_t last_write_ms;    /* newest append time (or file mtime) */
	uint32_t interval;        /* index entry every this many bytes */
	int fd;                   /* .log, read-write while active */
	int index_fd;             /* .index, -1 unless written by us */
	int time_fd;              /* .timeindex, -1 unless written by us */
	bool indexes_loaded;      /* index and time hold the whole index */
	bool sealed;              /* no more appends */
	bool unsynced;            /* sealed since the last sync job began */
	uint64_t warned_pos;      /* 1 + position of the last bad batch logged */
	struct kp_index index;    /* offset index */
	struct kp_index time;     /* time index */
	char *path;               /* "<dir>/<20-digit base>", owned */
};

/*
 * Creates a new empty active segment at base in dir, truncating leftovers
 * of the same name. Returns 0 and *out, or -errno.
 */
int kp_segment_create(const char *dir, uint64_t base, uint32_t interval,
		      struct kp_segment **out);

/*
 * Opens the last segment of a partition for appending: loads its index
 * files into memory (missing ones are created empty). Its size is the file
 * size; the caller then trims it with kp_segment_reset and scans the tail.
 * Returns 0 and *out, or -errno.
 */
int kp_segment_open_active(const char *dir, uint64_t base, uint32_t interval,
			   struct kp_segment **out);

/*
 * Opens a sealed segment whose successor starts at next_offset. Checks its
 * index files cheaply (sizes, last entries) and rebuilds them by scanning
 * the log when missing or damaged. Returns 0 and *out, or -errno.
 */
int kp_segment_open_sealed(const char *dir, uint64_t base,
			   uint64_t next_offset, uint32_t interval,
			   struct kp_segment **out);

/* Closes the files and frees seg. NULL is a no-op. */
void kp_segment_close(struct kp_segment *seg);

/* Deletes the segment's three files, then closes it. */
void kp_segment_remove(struct kp_segment *seg);

/*
 * Sets the end of the active segment to pos (whole batches below it), at
 * offset next_offset with largest ts max_ts: drops the index entries at or
 * beyond pos, trims the index files, and when cut truncates the log file to
 * pos. Returns 0 or -errno.
 */
int kp_segment_reset(struct kp_segment *seg, uint64_t pos,
		     uint64_t next_offset, int64_t max_ts, bool cut);

/*
 * Accounts for the batch h that now lies at position pos (written by
 * kp_segment_append or found by a scan): advances size and next_offset,
 * adds index entries every interval bytes. Returns 0 or -ENOMEM.
 */
int kp_segment_note_batch(struct kp_segment *seg, uint64_t pos,
			  const struct kp_batch_header *h);

/*
 * Appends the len bytes of batch h at the end of the active segment with
 * one pwrite and notes it. On a write error the file is cut back to its
 * previous size and -errno returned.
 */
int kp_segment_append(struct kp_segment *seg, const char *batch, size_t len,
		      const struct kp_batch_header *h, int64_t now_ms);

/* Writes the index entries not yet in the files. Returns 0 or -errno. */
int kp_segment_flush_index(struct kp_segment *seg);

/*
 * Seals the active segment: a last time-index entry for its largest ts,
 * indexes flushed, marked unsynced. Returns 0 or -errno.
 */
int kp_segment_seal(struct kp_segment *seg);

/*
 * Position of the indexed batch nearest at or below offset (0 when none):
 * scanning from there finds offset. Maps a sealed segment's index on first
 * use and rebuilds it if the full check fails. The entry used is checked
 * against the log: when its position does not start a valid batch with
 * its offset (a wrong index, or a batch damaged since), the index is
 * rebuilt from the log (damaged batches left out) and used again.
 */
uint64_t kp_segment_lookup(struct kp_segment *seg, uint64_t offset);

/*
 * An offset at or below the first record with ts >= ts in this segment:
 * scanning from there finds it (base when unknown).
 */
uint64_t kp_segment_time_lookup(struct kp_segment *seg, int64_t ts);

/*
 * Finds the first position at or after from where a batch with a valid
 * header starts (kp_batch_header_read) that is plausible here: base offset
 * at least min_offset and at least seg->base, its offsets below
 * seg->next_offset, its bytes within seg->size. Scans for the magic through
 * buf (scratch, reset). Returns 0 with *pos and *h; 1 when there is none;
 * -errno.
 */
int kp_segment_resync(struct kp_segment *seg, uint64_t from,
		      uint64_t min_offset, struct kp_buf *buf, uint64_t *pos,
		      struct kp_batch_header *h);

/* pread of exactly len bytes at pos. Returns 0, -EIO on a short file, -errno. */
int kp_segment_pread(const struct kp_segment *seg, void *buf, size_t len,
		     uint64_t pos);

/* Buffered forward scan over the batches of one segment. */
struct kp_segment_reader {
	struct kp_segment *seg;   /* borrowed */
	uint64_t pos;             /* position of the current batch */
	uint64_t limit;           /* scanning stops here */
	struct kp_buf *buf;       /* borrowed scratch holding file bytes */
	uint64_t buf_pos;         /* file position of buf->data[0] */
	size_t chunk;             /* bytes per pread */
};

/*
 * Starts reading seg at pos up to limit, through buf, chunk bytes per
 * pread.
 */
void kp_segment_reader_init(struct kp_segment_reader *r,
			    struct kp_segment *seg, uint64_t pos,
			    uint64_t limit, struct kp_buf *buf, size_t chunk);

/*
 * Decodes the header of the batch at r->pos. Returns 0; 1 at the limit;
 * -EAGAIN when the batch runs past the limit (a torn tail); KP_ECORRUPT
 * for an impossible header; -errno.
 */
int kp_segment_reader_next(struct kp_segment_reader *r,
			   struct kp_batch_header *h);

/*
 * Makes the whole batch h (just returned by next) readable at *bytes,
 * valid until the next reader call. Returns 0 or -errno.
 */
int kp_segment_reader_bytes(struct kp_segment_reader *r,
			    const struct kp_batch_header *h,
			    const char **bytes);

/* Moves past batch h. */
void kp_segment_reader_advance(struct kp_segment_reader *r,
			       const struct kp_batch_header *h);

#endif
