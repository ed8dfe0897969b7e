/*
 * test_batch.c - batch format 2: building, decoding, checksumming and
 * iterating batches, offset deltas, finding a batch in garbage, and
 * reading format-1 batches into format 2.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/crc32c.h"
#include "base/error.h"
#include "log/batch.h"
#include "log/batch_v1.h"

/* Builds a 3-record batch: keyed, unkeyed, empty key. Returns its length. */
static size_t build(struct kp_buf *out)
{
	struct kp_batch_builder b;

	assert_int_equal(kp_batch_begin(&b, out, 77, 9), 0);
	assert_int_equal(kp_batch_add(&b, 1000, "user-1", 6, "\xa3" "abc", 4),
			 0);
	assert_int_equal(kp_batch_add(&b, 900, NULL, 0, "\x2a", 1), 0);
	assert_int_equal(kp_batch_add(&b, 1200, "", 0, "\xc0", 1), 0);
	return kp_batch_finish(&b);
}

/* true when the batch in buf would be served: header and records pass. */
static bool servable(const char *buf, size_t len)
{
	struct kp_batch_header h;

	return kp_batch_header_decode(buf, len, &h) == 0 &&
	       h.batch_len == len && kp_batch_verify(buf, &h) == 0;
}

/* Recomputes both CRCs after a test edited a batch on purpose. */
static void reseal(char *batch, size_t len)
{
	kp_put_le32(batch + 16, kp_crc32c(0, batch + KP_BATCH_HEADER_SIZE,
					  len - KP_BATCH_HEADER_SIZE));
	kp_put_le32(batch + 60, kp_crc32c(0, batch, 60));
}

static void test_build_decode_iterate(void **state)
{
	struct kp_batch_header h;
	struct kp_record rec;
	struct kp_buf out;
	size_t len, pos = 0;
	uint32_t index;

	(void)state;
	kp_buf_init(&out);
	assert_int_equal(kp_buf_append(&out, "xx", 2), 0);
	len = build(&out);
	assert_int_equal(out.len, 2 + len);
	assert_int_equal(kp_get_le32(out.data + 2 + 12), KP_BATCH_MAGIC);
	assert_memory_equal(out.data + 2 + 12, "KPB2", 4);
	/* Finished with base 0, the batch is already whole and valid. */
	assert_true(servable(out.data + 2, len));
	kp_batch_set_base_offset(out.data + 2, 500);
	assert_int_equal(kp_batch_header_decode(out.data + 2, len, &h), 0);
	assert_int_equal(h.batch_len, len);
	assert_int_equal(h.base_offset, 500);
	assert_int_equal(h.count, 3);
	assert_int_equal(h.last_offset_delta, 2);
	assert_int_equal(kp_batch_next_offset(&h), 503);
	assert_int_equal(h.first_ts, 1000);
	assert_int_equal(h.max_ts, 1200);
	assert_int_equal(h.producer_id, 77);
	assert_int_equal(h.producer_seq, 9);
	assert_int_equal(h.flags, 0);
	assert_true(kp_batch_crc_ok(out.data + 2, &h));
	assert_int_equal(kp_batch_verify(out.data + 2, &h), 0);

	assert_int_equal(kp_batch_next(out.data + 2, &h, &pos, &index, &rec), 1);
	assert_int_equal(rec.offset, 500);
	assert_int_equal(rec.ts, 1000);
	assert_int_equal(rec.key_len, 6);
	assert_memory_equal(rec.key, "user-1", 6);
	assert_int_equal(rec.value_len, 4);
	assert_memory_equal(rec.value, "\xa3" "abc", 4);
	assert_null(rec.headers);

	assert_int_equal(kp_batch_next(out.data + 2, &h, &pos, &index, &rec), 1);
	assert_int_equal(rec.offset, 501);
	assert_null(rec.key);
	assert_int_equal(rec.value_len, 1);
	assert_int_equal((unsigned char)rec.value[0], 0x2a);

	assert_int_equal(kp_batch_next(out.data + 2, &h, &pos, &index, &rec), 1);
	assert_int_equal(rec.offset, 502);
	assert_non_null(rec.key);
	assert_int_equal(rec.key_len, 0);
	assert_int_equal(rec.ts, 1200);

	assert_int_equal(kp_batch_next(out.data + 2, &h, &pos, &index, &rec), 0);
	assert_int_equal(index, 3);
	/* Setting the base again keeps the batch valid (a retried append). */
	kp_batch_set_base_offset(out.data + 2, 900);
	assert_true(servable(out.data + 2, len));
	kp_buf_destroy(&out);
}

/*
 * Every single flipped bit anywhere, base_offset, batch_len, magic and both
 * CRCs included, keeps the batch from being served.
 */
static void test_every_flipped_bit_is_caught(void **state)
{
	struct kp_buf out;
	size_t len;

	(void)state;
	kp_buf_init(&out);
	len = build(&out);
	kp_batch_set_base_offset(out.data, 123456789);
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			out.data[i] ^= (char)(1 << bit);
			if (servable(out.data, len))
				fail_msg("flip of bit %d of byte %zu served",
					 bit, i);
			out.data[i] ^= (char)(1 << bit);
		}
	}
	assert_true(servable(out.data, len));
	kp_buf_destroy(&out);
}

/* A flipped header bit is caught from the header alone. */
static void test_header_checks_alone(void **state)
{
	struct kp_batch_header h;
	struct kp_buf out;
	size_t len;

	(void)state;
	kp_buf_init(&out);
	len = build(&out);
	for (size_t i = 0; i < KP_BATCH_HEADER_SIZE; i++) {
		for (int bit = 0; bit < 8; bit++) {
			out.data[i] ^= (char)(1 << bit);
			assert_int_equal(kp_batch_header_read(out.data, &h),
					 KP_ECORRUPT);
			out.data[i] ^= (char)(1 << bit);
		}
	}
	assert_int_equal(kp_batch_header_read(out.data, &h), 0);
	assert_int_equal(h.batch_len, len);
	kp_buf_destroy(&out);
}

static void test_offset_deltas_with_gaps(void **state)
{
	struct kp_batch_builder b;
	struct kp_batch_header h;
	struct kp_record rec;
	struct kp_buf out;
	size_t len, pos = 0, before;
	uint32_t index;
	const uint64_t want[3] = { 1003, 1010, 1044 };

	(void)state;
	kp_buf_init(&out);
	assert_int_equal(kp_batch_begin_flags(&b, &out, 0, 0,
					      KP_BATCH_FLAG_HEADERS), 0);
	assert_int_equal(kp_batch_add_at(&b, 3, 5, "a", 1, "\x80", 1, "\x01",
					 1), 0);
	assert_int_equal(kp_batch_add_at(&b, 10, 6, NULL, 0, NULL, 0, "\x02",
					 1), 0);
	/* Deltas must increase: the batch is left as it was. */
	before = out.len;
	assert_int_equal(kp_batch_add_at(&b, 10, 7, NULL, 0, NULL, 0, "\x03",
					 1), -EINVAL);
	assert_int_equal(kp_batch_add_at(&b, 4, 7, NULL, 0, NULL, 0, "\x03",
					 1), -EINVAL);
	assert_int_equal(out.len, before);
	assert_int_equal(b.count, 2);
	assert_int_equal(kp_batch_add_at(&b, 44, 4, "c", 1, "\x81\xa1p\x01", 4,
					 "\x03", 1), 0);
	len = kp_batch_finish_at(&b, 1000);
	assert_int_equal(kp_batch_header_decode(out.data, len, &h), 0);
	assert_int_equal(h.base_offset, 1000);
	assert_int_equal(h.count, 3);
	assert_int_equal(h.last_offset_delta, 44);
	assert_int_equal(kp_batch_next_offset(&h), 1045);
	assert_int_equal(h.first_ts, 5);
	assert_int_equal(h.max_ts, 6);
	assert_int_equal(kp_batch_verify(out.data, &h), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(kp_batch_next(out.data, &h, &pos, &index,
					       &rec), 1);
		assert_int_equal(rec.offset, want[i]);
	}
	assert_int_equal(rec.headers_len, 4);
	assert_memory_equal(rec.headers, "\x81\xa1p\x01", 4);
	assert_int_equal(kp_batch_next(out.data, &h, &pos, &index, &rec), 0);
	/* A plain add continues after the last delta. */
	kp_buf_reset(&out);
	assert_int_equal(kp_batch_begin(&b, &out, 0, 0), 0);
	assert_int_equal(kp_batch_add_at(&b, 7, 1, NULL, 0, NULL, 0, "\x01",
					 1), 0);
	assert_int_equal(kp_batch_add(&b, 2, NULL, 0, "\x02", 1), 0);
	/* Headers need the flag. */
	assert_int_equal(kp_batch_add_at(&b, 20, 1, NULL, 0, "\x80", 1, "\x01",
					 1), -EINVAL);
	len = kp_batch_finish(&b);
	assert_int_equal(kp_batch_header_decode(out.data, len, &h), 0);
	assert_int_equal(h.last_offset_delta, 8);
	assert_int_equal(kp_batch_verify(out.data, &h), 0);
	kp_buf_destroy(&out);
}

static void test_bad_lengths_and_fields(void **state)
{
	struct kp_batch_header h;
	struct kp_record rec;
	struct kp_buf out;
	size_t len, pos;
	uint32_t index;
	char copy[512];

	(void)state;
	kp_buf_init(&out);
	len = build(&out);
	assert_true(len < sizeof(copy));
	/* Torn: shorter than the header, or than batch_len (header valid). */
	for (size_t cut = 0; cut < len; cut++) {
		memset(&h, 0, sizeof(h));
		assert_int_equal(kp_batch_header_decode(out.data, cut, &h),
				 -EAGAIN);
		if (cut >= KP_BATCH_HEADER_SIZE)
			assert_int_equal(h.batch_len, len);
	}
	/* The old magic is not this format's. */
	memcpy(copy, out.data, len);
	memcpy(copy + 12, "KPB1", 4);
	reseal(copy, len);
	assert_int_equal(kp_batch_header_decode(copy, len, &h), KP_ECORRUPT);
	/* Fields a valid CRC cannot excuse. */
	{
		static const struct {
			size_t at;
			uint32_t value;
		} bad[] = {
			{ 8, 40 },        /* batch_len below header + record */
			{ 20, 0 },        /* count 0 */
			{ 20, 1000 },     /* more records than fit */
			{ 24, 1 },        /* last delta < count - 1 */
			{ 28, 2 },        /* unknown flag */
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			memcpy(copy, out.data, len);
			kp_put_le32(copy + bad[i].at, bad[i].value);
			reseal(copy, len);
			assert_int_equal(kp_batch_header_decode(copy, len, &h),
					 KP_ECORRUPT);
		}
	}
	memcpy(copy, out.data, len);
	kp_put_le64(copy + 40, 10); /* max_ts below first_ts */
	reseal(copy, len);
	assert_int_equal(kp_batch_header_decode(copy, len, &h), KP_ECORRUPT);
	/* A record whose length overruns the batch. */
	memcpy(copy, out.data, len);
	kp_put_le32(copy + KP_BATCH_HEADER_SIZE, 4000);
	reseal(copy, len);
	assert_int_equal(kp_batch_header_decode(copy, len, &h), 0);
	assert_int_equal(kp_batch_verify(copy, &h), KP_ECORRUPT);
	pos = 0;
	assert_int_equal(kp_batch_next(copy, &h, &pos, &index, &rec),
			 KP_ECORRUPT);
	/* A key longer than its record. */
	memcpy(copy, out.data, len);
	kp_put_le32(copy + KP_BATCH_HEADER_SIZE + 16, 200);
	reseal(copy, len);
	assert_int_equal(kp_batch_header_decode(copy, len, &h), 0);
	assert_int_equal(kp_batch_verify(copy, &h), KP_ECORRUPT);
	/* Deltas that do not increase, or do not end at last_offset_delta. */
	memcpy(copy, out.data, len);
	kp_put_le32(copy + KP_BATCH_HEADER_SIZE + 4, 1);
	reseal(copy, len);
	assert_int_equal(kp_batch_header_decode(copy, len, &h), 0);
	assert_int_equal(kp_batch_verify(copy, &h), KP_ECORRUPT);
	memcpy(copy, out.data, len);
	kp_put_le32(copy + 24, 5);
	reseal(copy, len);
	assert_int_equal(kp_batch_header_decode(copy, len, &h), 0);
	assert_int_equal(kp_batch_verify(copy, &h), KP_ECORRUPT);
	kp_buf_destroy(&out);
}

static void test_find_a_batch_in_garbage(void **state)
{
	struct kp_batch_header h;
	struct kp_buf out;
	size_t len, at;

	(void)state;
	kp_buf_init(&out);
	/* Garbage with a lone magic, then a real batch. */
	for (int i = 0; i < 100; i++)
		assert_int_equal(kp_buf_append(&out, "\x55", 1), 0);
	memcpy(out.data + 40, "KPB2", 4);
	len = build(&out);
	kp_batch_set_base_offset(out.data + 100, 42);
	at = kp_batch_find(out.data, out.len, &h);
	assert_int_equal(at, 100);
	assert_int_equal(h.base_offset, 42);
	assert_int_equal(h.batch_len, len);
	/* Not found: len returned. */
	assert_int_equal(kp_batch_find(out.data, 99, &h), 99);
	assert_int_equal(kp_batch_find(out.data + 101, out.len - 101, &h),
			 out.len - 101);
	assert_int_equal(kp_batch_find(out.data, 10, &h), 10);
	kp_buf_destroy(&out);
}

/* Writes a format-1 batch as the old server did (batch_v1.h). */
static size_t build_v1(char *p, uint64_t base, uint32_t flags)
{
	static const struct {
		int64_t ts;
		const char *key;
		const char *value;
	} recs[] = { { 10, "k1", "\xa1x" }, { 30, NULL, "\x05" },
		     { 20, "", "\xc3" } };
	size_t at = KP_BATCH_V1_HEADER_SIZE;

	memset(p, 0, KP_BATCH_V1_HEADER_SIZE);
	for (int i = 0; i < 3; i++) {
		size_t klen = recs[i].key ? strlen(recs[i].key) : 0;
		size_t vlen = strlen(recs[i].value) ? strlen(recs[i].value) : 1;
		size_t body = 12 + klen + (flags ? 4 + 1 : 0) + vlen;

		kp_put_le32(p + at, (uint32_t)body);
		kp_put_le64(p + at + 4, (uint64_t)recs[i].ts);
		kp_put_le32(p + at + 12, recs[i].key ? (uint32_t)klen
						     : (uint32_t)-1);
		at += 16;
		memcpy(p + at, recs[i].key ? recs[i].key : "", klen);
		at += klen;
		if (flags) {
			kp_put_le32(p + at, 1);
			p[at + 4] = (char)0x80;
			at += 5;
		}
		memcpy(p + at, recs[i].value, vlen);
		at += vlen;
	}
	kp_put_le64(p, base);
	kp_put_le32(p + 8, (uint32_t)at);
	kp_put_le32(p + 12, KP_BATCH_V1_MAGIC);
	kp_put_le32(p + 20, 3);
	kp_put_le64(p + 24, 10);
	kp_put_le64(p + 32, 30);
	kp_put_le64(p + 40, 5);
	kp_put_le32(p + 48, 6);
	kp_put_le32(p + 52, flags);
	kp_put_le32(p + 16, kp_crc32c(0, p + 20, at - 20));
	return at;
}

static void test_format_1_converts(void **state)
{
	struct kp_batch_v1_info info;
	struct kp_batch_header h;
	struct kp_record rec;
	struct kp_buf out;
	char v1[512];
	size_t len, pos = 0;
	uint32_t index;

	(void)state;
	kp_buf_init(&out);
	for (uint32_t flags = 0; flags < 2; flags++) {
		kp_buf_reset(&out);
		len = build_v1(v1, 700, flags);
		for (size_t cut = 0; cut < len; cut++)
			assert_int_equal(kp_batch_v1_convert(v1, cut, &out,
							     &info), -EAGAIN);
		assert_int_equal(out.len, 0);
		assert_int_equal(kp_batch_v1_convert(v1, len, &out, &info), 0);
		assert_int_equal(info.base_offset, 700);
		assert_int_equal(info.batch_len, len);
		assert_int_equal(info.count, 3);
		assert_true(servable(out.data, out.len));
		assert_int_equal(kp_batch_header_decode(out.data, out.len, &h),
				 0);
		assert_int_equal(h.base_offset, 700);
		assert_int_equal(h.count, 3);
		assert_int_equal(h.last_offset_delta, 2);
		assert_int_equal(h.first_ts, 10);
		assert_int_equal(h.max_ts, 30);
		assert_int_equal(h.producer_id, 5);
		assert_int_equal(h.producer_seq, 6);
		assert_int_equal(h.flags, flags);
		pos = 0;
		assert_int_equal(kp_batch_next(out.data, &h, &pos, &index,
					       &rec), 1);
		assert_int_equal(rec.offset, 700);
		assert_int_equal(rec.key_len, 2);
		assert_memory_equal(rec.key, "k1", 2);
		assert_int_equal(rec.value_len, 2);
		assert_memory_equal(rec.value, "\xa1x", 2);
		if (flags)
			assert_int_equal(rec.headers_len, 1);
		assert_int_equal(kp_batch_next(out.data, &h, &pos, &index,
					       &rec), 1);
		assert_int_equal(rec.offset, 701);
		assert_null(rec.key);
		assert_int_equal(rec.ts, 30);
		assert_int_equal(kp_batch_next(out.data, &h, &pos, &index,
					       &rec), 1);
		assert_int_equal(rec.offset, 702);
		assert_non_null(rec.key);
		assert_int_equal(rec.key_len, 0);
	}
	/* Any flip after the (unchecked) base offset fails format 1's checks. */
	len = build_v1(v1, 700, 0);
	for (size_t i = 8; i < len; i++) {
		v1[i] ^= 0x04;
		kp_buf_reset(&out);
		assert_int_not_equal(kp_batch_v1_convert(v1, len, &out, &info),
				     0);
		assert_int_equal(out.len, 0);
		v1[i] ^= 0x04;
	}
	kp_buf_destroy(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_decode_iterate),
		cmocka_unit_test(test_every_flipped_bit_is_caught),
		cmocka_unit_test(test_header_checks_alone),
		cmocka_unit_test(test_offset_deltas_with_gaps),
		cmocka_unit_test(test_bad_lengths_and_fields),
		cmocka_unit_test(test_find_a_batch_in_garbage),
		cmocka_unit_test(test_format_1_converts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
