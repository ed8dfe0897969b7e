/*
 * batch_v1.c - reading format-1 batches into format 2 (batch_v1.h).
 *
 * Pure functions over bytes: the old header and records are checked as the
 * old server did (magic, lengths, CRC of everything after byte 20), then
 * every record is added to a format-2 builder.
 */
#include "batch_v1.h"

#include <errno.h>

#include "batch.h"
#include "base/crc32c.h"
#include "base/error.h"

#define V1_REC_HEADER 16
#define V1_FLAG_HEADERS 1u

/* One format-1 record, borrowed from the batch. */
struct v1_record {
	int64_t ts;            /* event time, ms */
	const char *key;       /* NULL: no key */
	uint32_t key_len;      /* bytes of key */
	const char *headers;   /* NULL: none */
	uint32_t headers_len;  /* bytes of headers */
	const char *value;     /* msgpack bytes */
	uint32_t value_len;    /* bytes of value */
};

/* Decodes the record at *pos of a batch of len bytes; advances *pos. */
static int v1_record(const char *b, uint32_t len, uint32_t flags,
		     size_t *pos, struct v1_record *r)
{
	size_t p = *pos;
	uint32_t body, hlen;
	int32_t key_len;

	if (len - p < V1_REC_HEADER)
		return KP_ECORRUPT;
	body = kp_get_le32(b + p);
	if (body < 12 || body > len - p - 4)
		return KP_ECORRUPT;
	key_len = (int32_t)kp_get_le32(b + p + 12);
	if (key_len < -1 || (key_len > 0 && (uint32_t)key_len > body - 12))
		return KP_ECORRUPT;
	r->ts = (int64_t)kp_get_le64(b + p + 4);
	r->key = key_len < 0 ? NULL : b + p + V1_REC_HEADER;
	r->key_len = key_len < 0 ? 0 : (uint32_t)key_len;
	r->value = b + p + V1_REC_HEADER + r->key_len;
	r->value_len = body - 12 - r->key_len;
	r->headers = NULL;
	r->headers_len = 0;
	if (flags & V1_FLAG_HEADERS) {
		if (r->value_len < 4)
			return KP_ECORRUPT;
		hlen = kp_get_le32(r->value);
		if (hlen > r->value_len - 4)
			return KP_ECORRUPT;
		r->headers = hlen > 0 ? r->value + 4 : NULL;
		r->headers_len = hlen;
		r->value += 4 + hlen;
		r->value_len -= 4 + hlen;
	}
	*pos = p + 4 + body;
	return 0;
}

int kp_batch_v1_convert(const char *buf, size_t len, struct kp_buf *out,
			struct kp_batch_v1_info *info)
{
	struct kp_batch_builder b;
	struct v1_record r;
	size_t start = out->len, pos = KP_BATCH_V1_HEADER_SIZE;
	uint32_t blen, count, flags;
	int rc = 0;

	if (len < KP_BATCH_V1_HEADER_SIZE)
		return -EAGAIN;
	blen = kp_get_le32(buf + 8);
	count = kp_get_le32(buf + 20);
	flags = kp_get_le32(buf + 52);
	if (kp_get_le32(buf + 12) != KP_BATCH_V1_MAGIC ||
	    (flags & ~V1_FLAG_HEADERS) != 0 ||
	    blen < KP_BATCH_V1_HEADER_SIZE + V1_REC_HEADER || count == 0 ||
	    count > (blen - KP_BATCH_V1_HEADER_SIZE) / V1_REC_HEADER)
		return KP_ECORRUPT;
	if (len < blen)
		return -EAGAIN;
	if (kp_crc32c(0, buf + 20, blen - 20) != kp_get_le32(buf + 16))
		return KP_ECORRUPT;
	rc = kp_batch_begin_flags(&b, out, kp_get_le64(buf + 40),
				  kp_get_le32(buf + 48),
				  flags ? KP_BATCH_FLAG_HEADERS : 0);
	for (uint32_t i = 0; rc == 0 && i < count; i++) {
		rc = v1_record(buf, blen, flags, &pos, &r);
		if (rc == 0)
			rc = kp_batch_add_headers(&b, r.ts, r.key, r.key_len,
						  r.headers, r.headers_len,
						  r.value, r.value_len);
	}
	if (rc == 0 && pos != blen)
		rc = KP_ECORRUPT;
	if (rc != 0) {
		out->len = start;
		return rc == -ENOMEM ? rc : KP_ECORRUPT;
	}
	kp_batch_finish_at(&b, kp_get_le64(buf));
	info->base_offset = kp_get_le64(buf);
	info->batch_len = blen;
	info->count = count;
	return 0;
}
