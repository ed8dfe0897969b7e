/*
 * test_ctl_batches.c - the records of a "batches" fetch as kappactl walks
 * them (ctl/batches.h): every record of every batch in order, keys and
 * headers as stored, gaps of compacted batches, and no record of a batch
 * whose header or records fail their CRC, or that is cut short.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ctl/batches.h"
#include "base/buf.h"

/* Three batches: offsets 0-2; 3, 7 (a gap) with headers; 8. */
static void build(struct kp_buf *out)
{
	struct kp_batch_builder b;

	kp_buf_init(out);
	assert_int_equal(kp_batch_begin(&b, out, 0, 0), 0);
	assert_int_equal(kp_batch_add(&b, 10, "k0", 2, "\x01", 1), 0);
	assert_int_equal(kp_batch_add(&b, 11, NULL, 0, "\x02", 1), 0);
	assert_int_equal(kp_batch_add(&b, 12, "", 0, "\xc0", 1), 0);
	kp_batch_finish_at(&b, 0);
	assert_int_equal(kp_batch_begin_flags(&b, out, 0, 0,
					      KP_BATCH_FLAG_HEADERS), 0);
	assert_int_equal(kp_batch_add_at(&b, 0, 20, "a", 1, "\x81\xa1x\x01", 4,
					 "\x03", 1), 0);
	assert_int_equal(kp_batch_add_at(&b, 4, 21, "b", 1, NULL, 0, "\x04", 1),
			 0);
	kp_batch_finish_at(&b, 3);
	assert_int_equal(kp_batch_begin(&b, out, 0, 0), 0);
	assert_int_equal(kp_batch_add(&b, 30, NULL, 0, "\x05", 1), 0);
	kp_batch_finish_at(&b, 8);
}

static void test_every_record_in_order(void **state)
{
	static const uint64_t offsets[] = { 0, 1, 2, 3, 7, 8 };
	struct kp_ctl_batches it;
	struct kp_record rec;
	struct kp_error err;
	struct kp_buf buf;
	int n = 0;

	(void)state;
	build(&buf);
	kp_ctl_batches_init(&it, buf.data, buf.len);
	while (kp_ctl_batches_next(&it, &rec, &err) == 1) {
		assert_true(n < 6);
		assert_int_equal(rec.offset, offsets[n]);
		assert_int_equal(rec.value_len, 1);
		assert_int_equal((unsigned char)rec.value[0],
				 n == 2 ? 0xc0 : n < 2 ? n + 1 : n);
		n++;
		if (rec.offset == 0)
			assert_memory_equal(rec.key, "k0", 2);
		if (rec.offset == 1)
			assert_null(rec.key);
		if (rec.offset == 2) {
			assert_non_null(rec.key);
			assert_int_equal(rec.key_len, 0);
		}
		if (rec.offset == 3) {
			assert_int_equal(rec.headers_len, 4);
			assert_memory_equal(rec.headers, "\x81\xa1x\x01", 4);
		}
		if (rec.offset == 7)
			assert_null(rec.headers);
	}
	assert_int_equal(n, 6);
	assert_int_equal(it.batches, 3);
	assert_int_equal(kp_ctl_batches_next(&it, &rec, &err), 0);
	kp_ctl_batches_init(&it, buf.data, 0);
	assert_int_equal(kp_ctl_batches_next(&it, &rec, &err), 0);
	kp_buf_destroy(&buf);
}

/* With byte `at` damaged: `want` records (those before its batch), then KP_ECORRUPT. */
static void check_flip(const struct kp_buf *good, size_t at, int want)
{
	struct kp_ctl_batches it;
	struct kp_record rec;
	struct kp_error err;
	char copy[1024];
	int n = 0, rc;

	assert_true(good->len <= sizeof(copy));
	memcpy(copy, good->data, good->len);
	copy[at] ^= 0x20;
	kp_ctl_batches_init(&it, copy, good->len);
	while ((rc = kp_ctl_batches_next(&it, &rec, &err)) == 1)
		n++;
	assert_int_equal(rc, KP_ECORRUPT);
	assert_int_equal(n, want);
	assert_non_null(strstr(err.msg, "batch"));
}

static void test_no_record_of_a_damaged_batch(void **state)
{
	struct kp_batch_header h1, h2;
	struct kp_buf buf;

	(void)state;
	build(&buf);
	assert_int_equal(kp_batch_header_decode(buf.data, buf.len, &h1), 0);
	assert_int_equal(kp_batch_header_decode(buf.data + h1.batch_len,
						buf.len - h1.batch_len, &h2),
			 0);
	/* Every byte of every batch: its records never come out. */
	for (size_t i = 0; i < buf.len; i++) {
		int before = i < h1.batch_len ? 0
			     : i < h1.batch_len + h2.batch_len ? 3 : 5;

		check_flip(&buf, i, before);
	}
	kp_buf_destroy(&buf);
}

static void test_a_batch_cut_short(void **state)
{
	struct kp_ctl_batches it;
	struct kp_record rec;
	struct kp_error err;
	struct kp_buf buf;
	int n = 0, rc;

	(void)state;
	build(&buf);
	for (size_t cut = 1; cut < 80; cut++) {
		kp_ctl_batches_init(&it, buf.data, buf.len - cut);
		n = 0;
		while ((rc = kp_ctl_batches_next(&it, &rec, &err)) == 1)
			n++;
		assert_int_equal(rc, KP_ECORRUPT);
		assert_int_equal(n, 5);
		assert_non_null(strstr(err.msg, "cut short"));
	}
	kp_buf_destroy(&buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_record_in_order),
		cmocka_unit_test(test_no_record_of_a_damaged_batch),
		cmocka_unit_test(test_a_batch_cut_short),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
