/*
 * test_wk_msg.c - the frames between kappad and a worker process
 * (proc/wk_msg.h): fields read back as written, a frame is whole only with
 * all its bytes, an impossible length is refused, and a reader never runs
 * past its frame (a worker writing garbage fails, kappad does not crash).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proc/wk_msg.h"

static void test_fields_round_trip(void **state)
{
	struct kp_buf b;
	struct kp_wm_reader r;
	size_t start, len, blen;
	char s[8];
	const char *p;

	(void)state;
	kp_buf_init(&b);
	start = kp_wm_begin(&b, KP_WM_BATCH, 77);
	kp_wm_put_u8(&b, 5);
	kp_wm_put_u32(&b, 0xdeadbeef);
	kp_wm_put_u64(&b, UINT64_MAX - 1);
	kp_wm_put_f64(&b, 0.25);
	kp_wm_put_bytes(&b, "raw\0bytes", 9);
	kp_wm_put_str(&b, "a longer string");
	kp_wm_finish(&b, start);
	assert_int_equal(kp_wm_frame(b.data, b.len, &len), 1);
	assert_int_equal(len, b.len);
	kp_wm_read(&r, b.data, len);
	assert_int_equal(r.type, KP_WM_BATCH);
	assert_int_equal(r.tag, 77);
	assert_int_equal(kp_wm_get_u8(&r), 5);
	assert_int_equal(kp_wm_get_u32(&r), 0xdeadbeef);
	assert_true(kp_wm_get_u64(&r) == UINT64_MAX - 1);
	assert_true(kp_wm_get_f64(&r) == 0.25);
	p = kp_wm_get_bytes(&r, &blen);
	assert_int_equal(blen, 9);
	assert_memory_equal(p, "raw\0bytes", 9);
	/* A string longer than its buffer is cut, still terminated. */
	kp_wm_get_str(&r, s, sizeof(s));
	assert_string_equal(s, "a longe");
	assert_false(r.bad);
	assert_int_equal(r.left, 0);
	kp_buf_destroy(&b);
}

static void test_frame_needs_all_its_bytes(void **state)
{
	struct kp_buf b;
	size_t start, len;

	(void)state;
	kp_buf_init(&b);
	start = kp_wm_begin(&b, KP_WM_RESULT, 1);
	kp_wm_put_str(&b, "hello");
	kp_wm_finish(&b, start);
	/* Two frames back to back: the first is found alone. */
	start = kp_wm_begin(&b, KP_WM_RESULT, 2);
	kp_wm_finish(&b, start);
	for (size_t n = 0; n < 9 + 4 + 5; n++)
		assert_int_equal(kp_wm_frame(b.data, n, &len), 0);
	assert_int_equal(kp_wm_frame(b.data, b.len, &len), 1);
	assert_int_equal(len, 9 + 4 + 5);
	assert_int_equal(kp_wm_frame(b.data + len, b.len - len, &len), 1);
	assert_int_equal(len, KP_WM_HEADER);
	kp_buf_destroy(&b);
}

static void test_impossible_length_refused(void **state)
{
	char h[KP_WM_HEADER];
	size_t len;

	(void)state;
	memset(h, 0, sizeof(h));
	kp_put_le32(h, 2);                       /* shorter than a header */
	assert_int_equal(kp_wm_frame(h, sizeof(h), &len), -1);
	kp_put_le32(h, KP_WM_MAX_FRAME + 1);     /* larger than allowed */
	assert_int_equal(kp_wm_frame(h, sizeof(h), &len), -1);
}

static void test_reader_stays_in_its_frame(void **state)
{
	struct kp_buf b;
	struct kp_wm_reader r;
	size_t start, len;
	const char *p;

	(void)state;
	kp_buf_init(&b);
	start = kp_wm_begin(&b, KP_WM_QUERY_RESULT, 3);
	kp_wm_put_u32(&b, 1000000);   /* a byte string's length, no bytes */
	kp_wm_finish(&b, start);
	kp_wm_read(&r, b.data, b.len);
	p = kp_wm_get_bytes(&r, &len);
	assert_true(r.bad);
	assert_int_equal(len, 0);
	assert_string_equal(p, "");
	/* Once bad, every field reads as zero. */
	assert_int_equal(kp_wm_get_u32(&r), 0);
	assert_true(kp_wm_get_u64(&r) == 0);
	kp_buf_destroy(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fields_round_trip),
		cmocka_unit_test(test_frame_needs_all_its_bytes),
		cmocka_unit_test(test_impossible_length_refused),
		cmocka_unit_test(test_reader_stays_in_its_frame),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
