/*
 * batch_v1.h - the retired batch format 1 (magic "KPB1"), read-only: what
 * data directories written before format 2 (batch.h) hold. Pure bytes;
 * migrate.c rewrites such segments with it.
 *
 * Layout, little-endian: u64 base_offset (outside the CRC), u32 batch_len,
 * u32 magic "KPB1", u32 crc (CRC32C of bytes [20, batch_len)), u32 count,
 * i64 first_ts, i64 max_ts, u64 producer_id, u32 producer_seq, u32 flags;
 * then `count` records: u32 rec_len, i64 ts, i32 key_len (-1: no key), key,
 * with flag 1 u32 hdr_len and the headers, then the value. A record's
 * offset is base_offset + its index; batches follow each other densely.
 */
#ifndef KP_BATCH_V1_H
#define KP_BATCH_V1_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define KP_BATCH_V1_MAGIC 0x3142504bu /* "KPB1" */
#define KP_BATCH_V1_HEADER_SIZE 56

/* What kp_batch_v1_convert found. */
struct kp_batch_v1_info {
	uint64_t base_offset;  /* as its header says (not covered by its CRC) */
	uint32_t batch_len;    /* bytes of the format-1 batch */
	uint32_t count;        /* records */
};

/*
 * Checks the format-1 batch at buf (len bytes available) and appends it to
 * out as a format-2 batch: same base offset, timestamps, keys, headers,
 * values, producer id and sequence, records at deltas 0..count-1, both
 * CRCs computed. Returns 0 with *info; -EAGAIN when buf holds fewer bytes
 * than its header or its batch_len; KP_ECORRUPT when its magic, lengths,
 * CRC or records are wrong; -ENOMEM. On error out is unchanged.
 */
int kp_batch_v1_convert(const char *buf, size_t len, struct kp_buf *out,
			struct kp_batch_v1_info *info);

#endif
