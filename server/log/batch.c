/*
 * batch.c - encode, decode, checksum and iterate record batches (batch.h).
 *
 * Pure functions over bytes. The builder writes straight into a kp_buf so a
 * batch is built in place, with no copy between building and writing; the
 * records' CRC grows with each record added, while its bytes are hot.
 */
#include "batch.h"

#include <errno.h>
#include <string.h>

#include "base/crc32c.h"
#include "base/error.h"

#define OFF_BASE 0
#define OFF_LEN 8
#define OFF_MAGIC 12
#define OFF_BODY_CRC 16
#define OFF_COUNT 20
#define OFF_LAST_DELTA 24
#define OFF_FLAGS 28
#define OFF_FIRST_TS 32
#define OFF_MAX_TS 40
#define OFF_PID 48
#define OFF_SEQ 56
#define OFF_HEADER_CRC 60

/* Bytes of a record after rec_len without key, headers and value. */
#define REC_FIXED (KP_RECORD_HEADER_SIZE - 4)

int kp_batch_begin(struct kp_batch_builder *b, struct kp_buf *out,
		   uint64_t producer_id, uint32_t producer_seq)
{
	return kp_batch_begin_flags(b, out, producer_id, producer_seq, 0);
}

int kp_batch_begin_flags(struct kp_batch_builder *b, struct kp_buf *out,
			 uint64_t producer_id, uint32_t producer_seq,
			 uint32_t flags)
{
	char *h;
	int rc = kp_buf_reserve(out, KP_BATCH_HEADER_SIZE);

	if (rc != 0)
		return rc;
	b->out = out;
	b->start = out->len;
	b->count = 0;
	b->last_delta = 0;
	b->body_crc = 0;
	b->first_ts = 0;
	b->max_ts = 0;
	b->flags = flags;
	h = out->data + out->len;
	memset(h, 0, KP_BATCH_HEADER_SIZE);
	kp_put_le64(h + OFF_PID, producer_id);
	kp_put_le32(h + OFF_SEQ, producer_seq);
	out->len += KP_BATCH_HEADER_SIZE;
	return 0;
}

int kp_batch_add(struct kp_batch_builder *b, int64_t ts, const char *key,
		 uint32_t key_len, const char *value, uint32_t value_len)
{
	return kp_batch_add_headers(b, ts, key, key_len, NULL, 0, value,
				    value_len);
}

int kp_batch_add_headers(struct kp_batch_builder *b, int64_t ts,
			 const char *key, uint32_t key_len,
			 const char *headers, uint32_t headers_len,
			 const char *value, uint32_t value_len)
{
	if (b->count > 0 && b->last_delta == UINT32_MAX)
		return -EINVAL;
	return kp_batch_add_at(b, b->count == 0 ? 0 : b->last_delta + 1, ts,
			       key, key_len, headers, headers_len, value,
			       value_len);
}

int kp_batch_add_at(struct kp_batch_builder *b, uint32_t offset_delta,
		    int64_t ts, const char *key, uint32_t key_len,
		    const char *headers, uint32_t headers_len,
		    const char *value, uint32_t value_len)
{
	bool with_headers = (b->flags & KP_BATCH_FLAG_HEADERS) != 0;
	size_t body = (size_t)REC_FIXED + (key ? key_len : 0) + value_len +
		      (with_headers ? 4 + (size_t)headers_len : 0);
	char *rec, *p;
	int rc;

	if ((b->count > 0 && offset_delta <= b->last_delta) ||
	    body > UINT32_MAX - KP_BATCH_HEADER_SIZE - 4 ||
	    (key != NULL && key_len > INT32_MAX) ||
	    (!with_headers && headers != NULL) ||
	    b->out->len - b->start + 4 + body > UINT32_MAX)
		return -EINVAL;
	rc = kp_buf_reserve(b->out, 4 + body);
	if (rc != 0)
		return rc;
	rec = p = b->out->data + b->out->len;
	kp_put_le32(p, (uint32_t)body);
	kp_put_le32(p + 4, offset_delta);
	kp_put_le64(p + 8, (uint64_t)ts);
	kp_put_le32(p + 16, key ? key_len : (uint32_t)-1);
	p += KP_RECORD_HEADER_SIZE;
	if (key != NULL && key_len > 0) {
		memcpy(p, key, key_len);
		p += key_len;
	}
	if (with_headers) {
		kp_put_le32(p, headers ? headers_len : 0);
		p += 4;
		if (headers != NULL && headers_len > 0) {
			memcpy(p, headers, headers_len);
			p += headers_len;
		}
	}
	if (value_len > 0)
		memcpy(p, value, value_len);
	b->out->len += 4 + body;
	b->body_crc = kp_crc32c(b->body_crc, rec, 4 + body);
	if (b->count == 0) {
		b->first_ts = ts;
		b->max_ts = ts;
	} else if (ts > b->max_ts) {
		b->max_ts = ts;
	}
	b->last_delta = offset_delta;
	b->count++;
	return 0;
}

size_t kp_batch_finish_at(struct kp_batch_builder *b, uint64_t base_offset)
{
	char *h = b->out->data + b->start;
	size_t len = b->out->len - b->start;

	kp_put_le32(h + OFF_LEN, (uint32_t)len);
	kp_put_le32(h + OFF_MAGIC, KP_BATCH_MAGIC);
	kp_put_le32(h + OFF_BODY_CRC, b->body_crc);
	kp_put_le32(h + OFF_COUNT, b->count);
	kp_put_le32(h + OFF_LAST_DELTA, b->last_delta);
	kp_put_le32(h + OFF_FLAGS, b->flags);
	kp_put_le64(h + OFF_FIRST_TS, (uint64_t)b->first_ts);
	kp_put_le64(h + OFF_MAX_TS, (uint64_t)b->max_ts);
	kp_batch_set_base_offset(h, base_offset);
	return len;
}

size_t kp_batch_finish(struct kp_batch_builder *b)
{
	return kp_batch_finish_at(b, 0);
}

void kp_batch_set_base_offset(char *batch, uint64_t base_offset)
{
	kp_put_le64(batch + OFF_BASE, base_offset);
	kp_put_le32(batch + OFF_HEADER_CRC,
		    kp_crc32c(0, batch, OFF_HEADER_CRC));
}

uint64_t kp_batch_next_offset(const struct kp_batch_header *h)
{
	return h->base_offset + h->last_offset_delta + 1;
}

int kp_batch_header_read(const char *hdr, struct kp_batch_header *h)
{
	if (kp_get_le32(hdr + OFF_MAGIC) != KP_BATCH_MAGIC ||
	    kp_get_le32(hdr + OFF_HEADER_CRC) !=
		    kp_crc32c(0, hdr, OFF_HEADER_CRC))
		return KP_ECORRUPT;
	h->base_offset = kp_get_le64(hdr + OFF_BASE);
	h->batch_len = kp_get_le32(hdr + OFF_LEN);
	h->body_crc = kp_get_le32(hdr + OFF_BODY_CRC);
	h->count = kp_get_le32(hdr + OFF_COUNT);
	h->last_offset_delta = kp_get_le32(hdr + OFF_LAST_DELTA);
	h->flags = kp_get_le32(hdr + OFF_FLAGS);
	h->first_ts = (int64_t)kp_get_le64(hdr + OFF_FIRST_TS);
	h->max_ts = (int64_t)kp_get_le64(hdr + OFF_MAX_TS);
	h->producer_id = kp_get_le64(hdr + OFF_PID);
	h->producer_seq = kp_get_le32(hdr + OFF_SEQ);
	if ((h->flags & ~KP_BATCH_FLAG_HEADERS) != 0 ||
	    h->batch_len < KP_BATCH_HEADER_SIZE + KP_RECORD_HEADER_SIZE ||
	    h->count == 0 ||
	    h->count > (h->batch_len - KP_BATCH_HEADER_SIZE) /
				KP_RECORD_HEADER_SIZE ||
	    h->last_offset_delta < h->count - 1 ||
	    h->base_offset > UINT64_MAX - 1 - h->last_offset_delta ||
	    h->max_ts < h->first_ts)
		return KP_ECORRUPT;
	return 0;
}

int kp_batch_header_decode(const char *buf, size_t len,
			   struct kp_batch_header *h)
{
	int rc;

	if (len < KP_BATCH_HEADER_SIZE)
		return -EAGAIN;
	rc = kp_batch_header_read(buf, h);
	if (rc != 0)
		return rc;
	return len < h->batch_len ? -EAGAIN : 0;
}

bool kp_batch_crc_ok(const char *batch, const struct kp_batch_header *h)
{
	return kp_crc32c(0, batch + KP_BATCH_HEADER_SIZE,
			 h->batch_len - KP_BATCH_HEADER_SIZE) == h->body_crc;
}

int kp_batch_verify(const char *batch, const struct kp_batch_header *h)
{
	size_t p = KP_BATCH_HEADER_SIZE, len = h->batch_len;
	bool with_headers = (h->flags & KP_BATCH_FLAG_HEADERS) != 0;
	uint32_t n = 0, prev = 0;
	int32_t key_len;

	if (!kp_batch_crc_ok(batch, h))
		return KP_ECORRUPT;
	while (p < len) {
		uint32_t body, delta;

		if (len - p < KP_RECORD_HEADER_SIZE)
			return KP_ECORRUPT;
		body = kp_get_le32(batch + p);
		delta = kp_get_le32(batch + p + 4);
		key_len = (int32_t)kp_get_le32(batch + p + 16);
		if (body < REC_FIXED || body > len - p - 4 ||
		    (n > 0 && delta <= prev) || key_len < -1 ||
		    (key_len > 0 && (uint32_t)key_len > body - REC_FIXED))
			return KP_ECORRUPT;
		if (with_headers) {
			uint32_t rest = body - REC_FIXED -
					(key_len > 0 ? (uint32_t)key_len : 0);

			if (rest < 4 ||
			    kp_get_le32(batch + p + KP_RECORD_HEADER_SIZE +
					(key_len > 0 ? (size_t)key_len : 0)) >
				    rest - 4)
				return KP_ECORRUPT;
		}
		prev = delta;
		n++;
		p += 4 + (size_t)body;
	}
	return n == h->count && prev == h->last_offset_delta ? 0
							     : KP_ECORRUPT;
}

size_t kp_batch_find(const char *buf, size_t len, struct kp_batch_header *h)
{
	static const char magic[4] = { 'K', 'P', 'B', '2' };
	size_t i = 0;

	while (len >= KP_BATCH_HEADER_SIZE && i <= len - KP_BATCH_HEADER_SIZE) {
		const char *m = memmem(buf + i + OFF_MAGIC,
				       len - KP_BATCH_HEADER_SIZE - i + 4,
				       magic, sizeof(magic));

		if (m == NULL)
			break;
		i = (size_t)(m - buf) - OFF_MAGIC;
		if (kp_batch_header_read(buf + i, h) == 0)
			return i;
		i++;
	}
	return len;
}

int kp_batch_next(const char *batch, const struct kp_batch_header *h,
		  size_t *pos, uint32_t *index, struct kp_record *rec)
{
	size_t p = *pos;
	uint32_t body, delta;
	int32_t key_len;

	if (p == 0) {
		p = KP_BATCH_HEADER_SIZE;
		*index = 0;
	}
	if (*index >= h->count || p >= h->batch_len)
		return 0;
	if (h->batch_len - p < KP_RECORD_HEADER_SIZE)
		return KP_ECORRUPT;
	body = kp_get_le32(batch + p);
	if (body < REC_FIXED || body > h->batch_len - p - 4)
		return KP_ECORRUPT;
	delta = kp_get_le32(batch + p + 4);
	key_len = (int32_t)kp_get_le32(batch + p + 16);
	if (delta > h->last_offset_delta || key_len < -1 ||
	    (key_len > 0 && (uint32_t)key_len > body - REC_FIXED))
		return KP_ECORRUPT;
	rec->offset = h->base_offset + delta;
	rec->ts = (int64_t)kp_get_le64(batch + p + 8);
	if (key_len < 0) {
		rec->key = NULL;
		rec->key_len = 0;
	} else {
		rec->key = batch + p + KP_RECORD_HEADER_SIZE;
		rec->key_len = (uint32_t)key_len;
	}
	rec->headers = NULL;
	rec->headers_len = 0;
	rec->value = batch + p + KP_RECORD_HEADER_SIZE + rec->key_len;
	rec->value_len = body - REC_FIXED - rec->key_len;
	if (h->flags & KP_BATCH_FLAG_HEADERS) {
		uint32_t hlen;

		if (rec->value_len < 4)
			return KP_ECORRUPT;
		hlen = kp_get_le32(rec->value);
		if (hlen > rec->value_len - 4)
			return KP_ECORRUPT;
		rec->headers = hlen > 0 ? rec->value + 4 : NULL;
		rec->headers_len = hlen;
		rec->value += 4 + hlen;
		rec->value_len -= 4 + hlen;
	}
	*pos = p + 4 + body;
	(*index)++;
	return 1;
}
