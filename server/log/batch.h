/*
 * batch.h - the on-disk record batch format (format 2, magic "KPB2"). Pure
 * bytes: no files, no loop.
 *
 * A batch is the unit of writing, checksumming and visibility. Every byte of
 * it is covered by a CRC32C: the header by header_crc, the records by
 * body_crc (itself part of the header). So a damaged header is known without
 * reading the records, a valid header's batch_len can be trusted to find the
 * next batch, and no single flipped bit anywhere passes both checks. Layout,
 * all integers little-endian:
 *
 *   off  size  field
 *     0     8  base_offset        offset that record deltas count from
 *     8     4  batch_len          total bytes of the batch, header included
 *    12     4  magic              KP_BATCH_MAGIC "KPB2" (format 1 was "KPB1",
 *                                 same place: batch_v1.h)
 *    16     4  body_crc           CRC32C of bytes [64, batch_len)
 *    20     4  count              records in the batch, >= 1
 *    24     4  last_offset_delta  offset of the last record - base_offset
 *    28     4  flags              KP_BATCH_FLAG_* bits, others 0
 *    32     8  first_ts           ts of the first record
 *    40     8  max_ts             largest ts in the batch (>= first_ts)
 *    48     8  producer_id        0 when not idempotent
 *    56     4  producer_seq       the producer's batch sequence number
 *    60     4  header_crc         CRC32C of bytes [0, 60)
 *    64        records, `count` times:
 *                u32 rec_len       bytes that follow in this record
 *                u32 offset_delta  record offset - base_offset; strictly
 *                                  increasing, the last one equals
 *                                  last_offset_delta (a compacted batch has
 *                                  gaps)
 *                i64 ts
 *                i32 key_len       -1 for no key
 *                key bytes
 *                with KP_BATCH_FLAG_HEADERS: u32 hdr_len, then hdr_len
 *                bytes of headers (one msgpack map, or nothing)
 *                then the value (one msgpack object) to rec_len
 *
 * The body CRC is computed once, while records are added; the header CRC,
 * 60 bytes, whenever the base offset is set (kp_batch_set_base_offset at
 * append), so assigning offsets late costs no pass over the records.
 */
#ifndef KP_BATCH_H
#define KP_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define KP_BATCH_MAGIC 0x3242504bu /* "KPB2" */
#define KP_BATCH_FORMAT 2
#define KP_BATCH_HEADER_SIZE 64
#define KP_RECORD_HEADER_SIZE 20

/* Records carry headers (provenance of processor outputs). */
#define KP_BATCH_FLAG_HEADERS 1u

/* A batch header, decoded. */
struct kp_batch_header {
	uint64_t base_offset;        /* offset the record deltas count from */
	uint32_t batch_len;          /* bytes, header included */
	uint32_t body_crc;           /* stored CRC32C of the records */
	uint32_t count;              /* records */
	uint32_t last_offset_delta;  /* last record's offset - base_offset */
	uint32_t flags;              /* KP_BATCH_FLAG_* */
	int64_t first_ts;            /* first record's ts */
	int64_t max_ts;              /* largest ts */
	uint64_t producer_id;        /* 0 = not idempotent */
	uint32_t producer_seq;       /* producer batch sequence */
};

/* One record inside a batch; pointers are borrowed from the batch bytes. */
struct kp_record {
	uint64_t offset;        /* base_offset + the record's offset delta */
	int64_t ts;             /* event time, ms */
	const char *key;        /* NULL when the record has no key */
	uint32_t key_len;       /* 0 when key is NULL */
	const char *value;      /* msgpack bytes */
	uint32_t value_len;     /* bytes of value */
	const char *headers;    /* msgpack map, NULL when none */
	uint32_t headers_len;   /* bytes of headers, 0 when none */
};

/* Builds a batch in a kp_buf. */
struct kp_batch_builder {
	struct kp_buf *out;     /* borrowed; the batch is appended at start */
	size_t start;           /* position of the header in out */
	uint32_t count;         /* records added */
	uint32_t last_delta;    /* offset delta of the last record added */
	uint32_t body_crc;      /* CRC32C of the records added so far */
	int64_t first_ts;       /* ts of the first record */
	int64_t max_ts;         /* largest ts so far */
	uint32_t flags;         /* KP_BATCH_FLAG_* of this batch */
};

/*
 * Starts a batch at the end of out, reserving the header. producer_id 0
 * means not idempotent. Returns 0 or -ENOMEM.
 */
int kp_batch_begin(struct kp_batch_builder *b, struct kp_buf *out,
		   uint64_t producer_id, uint32_t producer_seq);

/* Like kp_batch_begin, with KP_BATCH_FLAG_* flags. */
int kp_batch_begin_flags(struct kp_batch_builder *b, struct kp_buf *out,
			 uint64_t producer_id, uint32_t producer_seq,
			 uint32_t flags);

/*
 * Appends a record at the offset after the previous one (delta 0 for the
 * first: with only kp_batch_add, delta = index). key may be NULL (no key).
 * Returns 0, -ENOMEM, or -EINVAL when the lengths cannot be encoded.
 */
int kp_batch_add(struct kp_batch_builder *b, int64_t ts, const char *key,
		 uint32_t key_len, const char *value, uint32_t value_len);

/*
 * Appends a record with headers (a msgpack map; NULL for none) to a batch
 * begun with KP_BATCH_FLAG_HEADERS, at the offset after the previous one.
 * Returns 0, -ENOMEM or -EINVAL (headers without the flag).
 */
int kp_batch_add_headers(struct kp_batch_builder *b, int64_t ts,
			 const char *key, uint32_t key_len,
			 const char *headers, uint32_t headers_len,
			 const char *value, uint32_t value_len);

/*
 * Appends a record at base_offset + offset_delta (for batches with gaps,
 * e.g. compacted ones). offset_delta must be greater than the previous
 * record's (any value for the first); headers (NULL for none) only in a
 * batch begun with KP_BATCH_FLAG_HEADERS; key may be NULL. Returns 0,
 * -ENOMEM, or -EINVAL (delta not increasing, headers without the flag,
 * lengths that cannot be encoded); on error the batch is unchanged.
 */
int kp_batch_add_at(struct kp_batch_builder *b, uint32_t offset_delta,
		    int64_t ts, const char *key, uint32_t key_len,
		    const char *headers, uint32_t headers_len,
		    const char *value, uint32_t value_len);

/*
 * Writes the header and both CRCs with base_offset 0 (kp_partition_append
 * assigns the real one). At least one record must have been added. Returns
 * the batch length in bytes.
 */
size_t kp_batch_finish(struct kp_batch_builder *b);

/*
 * Finishes a batch whose base offset is already known: header, base_offset
 * and both CRCs written, the batch complete as it goes to disk. At least
 * one record must have been added. Returns the batch length in bytes.
 */
size_t kp_batch_finish_at(struct kp_batch_builder *b, uint64_t base_offset);

/*
 * Decodes and checks the KP_BATCH_HEADER_SIZE bytes of a batch header at
 * hdr: magic, header CRC and the fields' consistency (lengths, count,
 * deltas, flags, timestamps). Returns 0 with *h filled, or KP_ECORRUPT.
 * Does not read past the header, so does not check the records.
 */
int kp_batch_header_read(const char *hdr, struct kp_batch_header *h);

/*
 * Decodes the header of the batch at buf (len bytes available), as
 * kp_batch_header_read. Returns 0 when the header is valid and the whole
 * batch lies in buf; -EAGAIN when len is shorter than the header (*h not
 * filled) or than batch_len (*h filled: the header is valid, the batch
 * runs past len); KP_ECORRUPT for a header that fails its checks. Does not
 * check the records (kp_batch_verify).
 */
int kp_batch_header_decode(const char *buf, size_t len,
			   struct kp_batch_header *h);

/*
 * Computes the CRC of the records of a complete batch with decoded header
 * h and compares it with body_crc. true when they match.
 */
bool kp_batch_crc_ok(const char *batch, const struct kp_batch_header *h);

/*
 * Checks a complete batch with decoded header h before it is served: the
 * records' CRC, then their layout (every record within batch_len, its key
 * and headers within the record, the records filling the batch exactly,
 * count records, offset deltas strictly increasing up to
 * last_offset_delta), so that kp_batch_next cannot fail on it. Returns 0
 * or KP_ECORRUPT.
 */
int kp_batch_verify(const char *batch, const struct kp_batch_header *h);

/*
 * Sets base_offset in a finished batch and recomputes its header CRC (60
 * bytes; the records' CRC is unchanged). May be called again on the same
 * batch.
 */
void kp_batch_set_base_offset(char *batch, uint64_t base_offset);

/* The offset after the batch's last record: base + last delta + 1. */
uint64_t kp_batch_next_offset(const struct kp_batch_header *h);

/*
 * Finds the first position i in buf[0, len) at which a batch header that
 * passes kp_batch_header_read starts (the magic at i + 12 and the
 * KP_BATCH_HEADER_SIZE bytes from i in buf). Returns i with *h filled, or
 * len when there is none.
 */
size_t kp_batch_find(const char *buf, size_t len, struct kp_batch_header *h);

/*
 * Iterates the records of a verified batch: *pos starts at 0; each call
 * fills rec (rec->offset = base_offset + its delta) and advances; *index
 * counts the records returned. Returns 1 for a record, 0 at the end,
 * KP_ECORRUPT when a record's lengths overrun the batch or its delta is
 * beyond last_offset_delta.
 */
int kp_batch_next(const char *batch, const struct kp_batch_header *h,
		  size_t *pos, uint32_t *index, struct kp_record *rec);

#endif
