/*
 * test_batch.c - building, decoding, checksumming and iterating batches.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/error.h"
#include "log/batch.h"

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
	kp_batch_set_base_offset(out.data + 2, 500);
	assert_int_equal(kp_batch_header_decode(out.data + 2, len, &h), 0);
	assert_int_equal(h.batch_len, len);
	assert_int_equal(h.base_offset, 500);
	assert_int_equal(h.count, 3);
	assert_int_equal(h.first_ts, 1000);
	assert_int_equal(h.max_ts, 1200);
	assert_int_equal(h.producer_id, 77);
	assert_int_equal(h.producer_seq, 9);
	assert_true(kp_batch_crc_ok(out.data + 2, &h));

	assert_int_equal(kp_batch_next(out.data + 2, &h, &pos, &index, &rec), 1);
	assert_int_equal(rec.offset, 500);
	assert_int_equal(rec.ts, 1000);
	assert_int_equal(rec.key_len, 6);
	assert_memory_equal(rec.key, "user-1", 6);
	assert_int_equal(rec.value_len, 4);
	assert_memory_equal(rec.value, "\xa3" "abc", 4);

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
	kp_buf_destroy(&out);
}

static void test_crc_detects_every_flipped_bit(void **state)
{
	struct kp_batch_header h;
	struct kp_buf out;
	size_t len;

	(void)state;
	kp_buf_init(&out);
	len = build(&out);
	for (size_t i = 20; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			out.data[i] ^= (char)(1 << bit);
			if (kp_batch_header_decode(out.data, len, &h) == 0)
				assert_false(kp_batch_crc_ok(out.data, &h));
			out.data[i] ^= (char)(1 << bit);
		}
	}
	assert_int_equal(kp_batch_header_decode(out.data, len, &h), 0);
	assert_true(kp_batch_crc_ok(out.data, &h));
	kp_buf_destroy(&out);
}

static void test_bad_lengths(void **state)
{
	struct kp_batch_header h;
	struct kp_buf out;
	size_t len;
	char copy[512];

	(void)state;
	kp_buf_init(&out);
	len = build(&out);
	assert_true(len < sizeof(copy));
	/* Torn: shorter than the header or than batch_len. */
	for (size_t cut = 0; cut < len; cut++)
		assert_int_equal(kp_batch_header_decode(out.data, cut, &h),
				 -EAGAIN);
	/* Wrong magic. */
	memcpy(copy, out.data, len);
	copy[12] ^= 1;
	assert_int_equal(kp_batch_header_decode(copy, len, &h), KP_ECORRUPT);
	/* batch_len smaller than a header plus one record. */
	memcpy(copy, out.data, len);
	kp_put_le32(copy + 8, 40);
	assert_int_equal(kp_batch_header_decode(copy, len, &h), KP_ECORRUPT);
	/* count 0, or more records than can fit. */
	memcpy(copy, out.data, len);
	kp_put_le32(copy + 20, 0);
	assert_int_equal(kp_batch_header_decode(copy, len, &h), KP_ECORRUPT);
	kp_put_le32(copy + 20, 1000);
	assert_int_equal(kp_batch_header_decode(copy, len, &h), KP_ECORRUPT);
	/* A record whose length overruns the batch. */
	memcpy(copy, out.data, len);
	kp_put_le32(copy + KP_BATCH_HEADER_SIZE, 4000);
	assert_int_equal(kp_batch_header_decode(copy, len, &h), 0);
	{
		struct kp_record rec;
		size_t pos = 0;
		uint32_t index;

		assert_int_equal(kp_batch_next(copy, &h, &pos, &index, &rec),
				 KP_ECORRUPT);
	}
	/* A key longer than its record. */
	memcpy(copy, out.data, len);
	kp_put_le32(copy + KP_BATCH_HEADER_SIZE + 12, 200);
	assert_int_equal(kp_batch_header_decode(copy, len, &h), 0);
	{
		struct kp_record rec;
		size_t pos = 0;
		uint32_t index;

		assert_int_equal(kp_batch_next(copy, &h, &pos, &index, &rec),
				 KP_ECORRUPT);
	}
	kp_buf_destroy(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build_decode_iterate),
		cmocka_unit_test(test_crc_detects_every_flipped_bit),
		cmocka_unit_test(test_bad_lengths),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
