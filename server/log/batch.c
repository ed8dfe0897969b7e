/*
 * batch.c - encode, decode, checksum and iterate record batches (batch.h).
 *
 * Pure functions over bytes. The builder writes straight into a kp_buf so a
 * batch is built in place, with no copy between building and writing.
 */
#include "batch.h"

#include <errno.h>
#include <string.h>

#include "base/crc32c.h"
#include "base/error.h"

#define OFF_BASE 0
#define OFF_LEN 8
#define OFF_MAGIC 12
#define OFF_CRC 16
#define OFF_COUNT 20
#define OFF_FIRST_TS 24
#define OFF_MAX_TS 32
#define OFF_PID 40
#define OFF_SEQ 48
#define OFF_FLAGS 52
#define CRC_START OFF_COUNT

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
	bool with_headers = (b->flags & KP_BATCH_FLAG_HEADERS) != 0;
	size_t body = (size_t)12 + (key ? key_len : 0) + value_len +
		      (with_headers ? 4 + (size_t)headers_len : 0);
	char *p;
	int rc;

	if (body > UINT32_MAX || (key != NULL && key_len > INT32_MAX) ||
	    (!with_headers && headers != NULL))
		return -ENOMEM;
	rc = kp_buf_reserve(b->out, 4 + body);
	if (rc != 0)
		return rc;
	p = b->out->data + b->out->len;
	kp_put_le32(p, (uint32_t)body);
	kp_put_le64(p + 4, (uint64_t)ts);
	kp_put_le32(p + 12, key ? key_len : (uint32_t)-1);
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
	if (b->count == 0) {
		b->first_ts = ts;
		b->max_ts = ts;
	} else if (ts > b->max_ts) {
		b->max_ts = ts;
	}
	b->count++;
	return 0;
}

size_t kp_batch_finish(struct kp_batch_builder *b)
{
	char *h = b->out->data + b->start;
	size_t len = b->out->len - b->start;

	kp_put_le64(h + OFF_BASE, 0);
	kp_put_le32(h + OFF_LEN, (uint32_t)len);
	kp_put_le32(h + OFF_MAGIC, KP_BATCH_MAGIC);
	kp_put_le32(h + OFF_COUNT, b->count);
	kp_put_le64(h + OFF_FIRST_TS, (uint64_t)b->first_ts);
	kp_put_le64(h + OFF_MAX_TS, (uint64_t)b->max_ts);
	kp_put_le32(h + OFF_FLAGS, b->flags);
	kp_put_le32(h + OFF_CRC,
		    kp_crc32c(0, h + CRC_START, len - CRC_START));
	return len;
}

int kp_batch_header_decode(const char *buf, size_t len,
			   struct kp_batch_header *h)
{
	if (len >= OFF_MAGIC + 4 &&
	    kp_get_le32(buf + OFF_MAGIC) != KP_BATCH_MAGIC)
		return KP_ECORRUPT;
	if (len < KP_BATCH_HEADER_SIZE)
		return -EAGAIN;
	h->base_offset = kp_get_le64(buf + OFF_BASE);
	h->batch_len = kp_get_le32(buf + OFF_LEN);
	h->crc = kp_get_le32(buf + OFF_CRC);
	h->count = kp_get_le32(buf + OFF_COUNT);
	h->first_ts = (int64_t)kp_get_le64(buf + OFF_FIRST_TS);
	h->max_ts = (int64_t)kp_get_le64(buf + OFF_MAX_TS);
	h->producer_id = kp_get_le64(buf + OFF_PID);
	h->producer_seq = kp_get_le32(buf + OFF_SEQ);
	h->flags = kp_get_le32(buf + OFF_FLAGS);
	if ((h->flags & ~KP_BATCH_FLAG_HEADERS) != 0)
		return KP_ECORRUPT;
	if (h->batch_len < KP_BATCH_HEADER_SIZE + KP_RECORD_HEADER_SIZE)
		return KP_ECORRUPT;
	if (h->count == 0 ||
	    h->count > (h->batch_len - KP_BATCH_HEADER_SIZE) /
				KP_RECORD_HEADER_SIZE)
		return KP_ECORRUPT;
	if (len < h->batch_len)
		return -EAGAIN;
	return 0;
}

bool kp_batch_crc_ok(const char *batch, const struct kp_batch_header *h)
{
	return kp_crc32c(0, batch + CRC_START, h->batch_len - CRC_START) ==
	       h->crc;
}

void kp_batch_set_base_offset(char *batch, uint64_t base_offset)
{
	kp_put_le64(batch + OFF_BASE, base_offset);
}

int kp_batch_next(const char *batch, const struct kp_batch_header *h,
		  size_t *pos, uint32_t *index, struct kp_record *rec)
{
	size_t p = *pos;
	uint32_t body;
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
	if (body < 12 || body > h->batch_len - p - 4)
		return KP_ECORRUPT;
	key_len = (int32_t)kp_get_le32(batch + p + 12);
	if (key_len < -1 || (key_len > 0 && (uint32_t)key_len > body - 12))
		return KP_ECORRUPT;
	rec->offset = h->base_offset + *index;
	rec->ts = (int64_t)kp_get_le64(batch + p + 4);
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
	rec->value_len = body - 12 - rec->key_len;
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
