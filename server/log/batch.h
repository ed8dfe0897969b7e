/*
 * batch.h - the on-disk record batch format. Pure bytes: no files, no loop.
 *
 * A batch is the unit of writing, checksumming and visibility. Layout, all
 * integers little-endian:
 *
 *   off  size  field
 *     0     8  base_offset   offset of the first record (set at append;
 *                            outside the CRC so it can be assigned late)
 *     8     4  batch_len     total bytes of the batch, header included
 *    12     4  magic         KP_BATCH_MAGIC
 *    16     4  crc           CRC32C of bytes [20, batch_len)
 *    20     4  count         records in the batch, >= 1
 *    24     8  first_ts      ts of the first record
 *    32     8  max_ts        largest ts in the batch
 *    40     8  producer_id   0 when not idempotent
 *    48     4  producer_seq  the producer's batch sequence number
 *    52     4  flags         KP_BATCH_FLAG_* bits, others 0
 *    56        records, `count` times:
 *                u32 rec_len  bytes that follow in this record
 *                i64 ts
 *                i32 key_len  -1 for no key
 *                key bytes
 *                with KP_BATCH_FLAG_HEADERS: u32 hdr_len, then hdr_len
 *                bytes of headers (one msgpack map, or nothing)
 *                then the value (one msgpack object) to rec_len
 */
#ifndef KP_BATCH_H
#define KP_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define KP_BATCH_MAGIC 0x3142504bu /* "KPB1" */
#define KP_BATCH_HEADER_SIZE 56
#define KP_RECORD_HEADER_SIZE 16

/* Records carry headers (provenance of processor outputs). */
#define KP_BATCH_FLAG_HEADERS 1u

/* A batch header, decoded. */
struct kp_batch_header {
	uint64_t base_offset;   /* first record's offset */
	uint32_t batch_len;     /* bytes, header included */
	uint32_t crc;           /* stored CRC32C */
	uint32_t count;         /* records */
	int64_t first_ts;       /* first record's ts */
	int64_t max_ts;         /* largest ts */
	uint64_t producer_id;   /* 0 = not idempotent */
	uint32_t producer_seq;  /* producer batch sequence */
	uint32_t flags;         /* KP_BATCH_FLAG_* */
};

/* One record inside a batch; pointers are borrowed from the batch bytes. */
struct kp_record {
	uint64_t offset;        /* base_offset + index */
	int64_t ts;             /* event time, ms */
	const char *key;        /* NULL when the record has no key */
	uint32_t key_len;       /* 0 when key is NULL */
	const char *value;      /* msgpack bytes */
	uint32_t value_len;     /* bytes of value */
	const char *headers;    /* msgpack map, NULL when none */
	uint32_t headers_len;
};

/* Builds a batch in a kp_buf. */
struct kp_batch_builder {
	struct kp_buf *out;     /* borrowed; the batch is appended at start */
	size_t start;           /* position of the header in out */
	uint32_t count;         /* records added */
	int64_t first_ts;
	int64_t max_ts;
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

/* Appends a record. key may be NULL (no key). Returns 0 or -ENOMEM. */
int kp_batch_add(struct kp_batch_builder *b, int64_t ts, const char *key,
		 uint32_t key_len, const char *value, uint32_t value_len);

/*
 * Appends a record with headers (a msgpack map; NULL for none) to a batch
 * begun with KP_BATCH_FLAG_HEADERS. Returns 0 or -ENOMEM.
 */
int kp_batch_add_headers(struct kp_batch_builder *b, int64_t ts,
			 const char *key, uint32_t key_len,
			 const char *headers, uint32_t headers_len,
			 const char *value, uint32_t value_len);

/* Writes the header and CRC. Returns the batch length in bytes. */
size_t kp_batch_finish(struct kp_batch_builder *b);

/*
 * Decodes the header of the batch at buf (len bytes available).
 * Returns 0; KP_ECORRUPT when the magic or length is impossible; -EAGAIN
 * when len is shorter than the header or than batch_len (a torn tail).
 * Does not check the CRC.
 */
int kp_batch_header_decode(const char *buf, size_t len,
			   struct kp_batch_header *h);

/* Computes the CRC of a complete batch and compares it. true when valid. */
bool kp_batch_crc_ok(const char *batch, const struct kp_batch_header *h);

/*
 * Sets base_offset in a finished batch (outside the CRC, so no recompute).
 */
void kp_batch_set_base_offset(char *batch, uint64_t base_offset);

/*
 * Iterates the records of a verified batch: *pos starts at 0; each call
 * fills rec and advances. Returns 1 for a record, 0 at the end, KP_ECORRUPT
 * when a record's lengths overrun the batch.
 */
int kp_batch_next(const char *batch, const struct kp_batch_header *h,
		  size_t *pos, uint32_t *index, struct kp_record *rec);

#endif
