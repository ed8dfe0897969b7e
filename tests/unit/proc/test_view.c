/*
 * test_view.c - the view store: get/put/incr/del, growth and deletion over
 * many keys, ordered prefix scans that may re-enter the view, snapshots
 * (deterministic bytes, every corruption and truncation refused with the
 * view unchanged), failed allocations and concurrent use.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <msgpack.h>
#include <pthread.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/crc32c.h"
#include "base/error.h"
#include "proc/view.h"
#include "wire/proto.h"

static struct kp_view *new_view(void)
{
	struct kp_view *v = NULL;

	assert_int_equal(kp_view_new(&v), 0);
	assert_non_null(v);
	return v;
}

static void put_str(struct kp_view *v, const char *key, const char *value)
{
	assert_int_equal(kp_view_put(v, key, strlen(key), value, strlen(value)),
			 0);
}

/* Asserts key holds exactly the bytes value (NULL: absent). */
static void expect(struct kp_view *v, const char *key, const char *value,
		   size_t value_len)
{
	struct kp_buf b;
	int rc;

	kp_buf_init(&b);
	rc = kp_view_get(v, key, strlen(key), &b);
	if (value == NULL) {
		assert_int_equal(rc, 0);
	} else {
		assert_int_equal(rc, 1);
		assert_int_equal(b.len, value_len);
		assert_memory_equal(b.data, value, value_len);
	}
	kp_buf_destroy(&b);
}

/* msgpack-c's encoding of an int64, the reference for incr's output. */
static size_t pack_int(int64_t x, char *out)
{
	struct kp_buf b;
	msgpack_packer pk;
	size_t n;

	kp_buf_init(&b);
	msgpack_packer_init(&pk, &b, kp_buf_msgpack_write);
	msgpack_pack_int64(&pk, x);
	n = b.len;
	memcpy(out, b.data, n);
	kp_buf_destroy(&b);
	return n;
}

static void test_put_get_del(void **state)
{
	struct kp_view *v = new_view();
	struct kp_buf b;

	kp_buf_init(&b);
	assert_int_equal(kp_view_get(v, "a", 1, &b), 0);
	put_str(v, "a", "\xa1x");
	put_str(v, "b", "\x01");
	expect(v, "a", "\xa1x", 2);
	assert_int_equal(kp_view_count(v), 2);
	assert_int_equal(kp_view_bytes(v), 1 + 2 + 1 + 1);
	put_str(v, "a", "\xaf" "0123456789abcde");
	expect(v, "a", "\xaf" "0123456789abcde", 16);
	assert_int_equal(kp_view_bytes(v), 1 + 16 + 1 + 1);
	put_str(v, "a", "\xc0");
	expect(v, "a", "\xc0", 1);
	assert_int_equal(kp_view_count(v), 2);
	assert_int_equal(kp_view_del(v, "a", 1), 1);
	assert_int_equal(kp_view_del(v, "a", 1), 0);
	expect(v, "a", NULL, 0);
	assert_int_equal(kp_view_count(v), 1);
	assert_int_equal(kp_view_bytes(v), 2);
	assert_int_equal(kp_view_put(v, "", 0, "\x07", 1), 0);
	assert_int_equal(kp_view_get(v, "", 0, &b), 1);
	assert_int_equal(b.data[0], 7);
	assert_int_equal(kp_view_put(v, "k\0z", 3, "\x08", 1), 0);
	assert_int_equal(kp_view_get(v, "k\0y", 3, &b), 0);
	assert_int_equal(kp_view_get(v, "k\0z", 3, &b), 1);
	kp_view_clear(v);
	assert_int_equal(kp_view_count(v), 0);
	assert_int_equal(kp_view_bytes(v), 0);
	expect(v, "b", NULL, 0);
	kp_buf_destroy(&b);
	kp_view_delete(v);
	kp_view_delete(NULL);
}

static void test_incr(void **state)
{
	static const int64_t steps[] = {
		1, 126, 1, 127, 1, 65000, 1, 1LL << 32, -(1LL << 33), -120,
		-100000, INT64_MAX / 2, -(INT64_MAX / 2) - 5,
	};
	struct kp_view *v = new_view();
	int64_t r = 0, sum = 0;
	char want[16];
	size_t n;

	assert_int_equal(kp_view_incr(v, "c", 1, 5, &r), 0);
	assert_int_equal(r, 5);
	expect(v, "c", "\x05", 1);
	assert_int_equal(kp_view_incr(v, "c", 1, -10, &r), 0);
	assert_int_equal(r, -5);
	expect(v, "c", "\xfb", 1);
	assert_int_equal(kp_view_del(v, "c", 1), 1);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		sum += steps[i];
		assert_int_equal(kp_view_incr(v, "c", 1, steps[i], &r), 0);
		assert_int_equal(r, sum);
		n = pack_int(sum, want);
		expect(v, "c", want, n);
	}
	/* Any msgpack integer encoding is accepted as the starting value. */
	assert_int_equal(kp_view_put(v, "w", 1, "\xd3\0\0\0\0\0\0\0\x05", 9), 0);
	assert_int_equal(kp_view_incr(v, "w", 1, 1, &r), 0);
	assert_int_equal(r, 6);
	expect(v, "w", "\x06", 1);
	assert_int_equal(kp_view_put(v, "w", 1, "\xd0\x80", 2), 0);
	assert_int_equal(kp_view_incr(v, "w", 1, 0, &r), 0);
	assert_int_equal(r, -128);
	/* Not integers: the value stays. */
	put_str(v, "s", "\xa1x");
	assert_int_equal(kp_view_incr(v, "s", 1, 1, &r), KP_EBADREQUEST);
	expect(v, "s", "\xa1x", 2);
	put_str(v, "f", "\xca\x3f\x80\0\0");
	assert_int_equal(kp_view_incr(v, "f", 1, 1, &r), KP_EBADREQUEST);
	assert_int_equal(kp_view_put(v, "u", 1,
				     "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9),
			 0);
	assert_int_equal(kp_view_incr(v, "u", 1, -1, &r), KP_EBADREQUEST);
	/* Overflow is refused and leaves the value. */
	assert_int_equal(kp_view_incr(v, "o", 1, INT64_MAX, &r), 0);
	assert_int_equal(kp_view_incr(v, "o", 1, 1, &r), KP_EBADREQUEST);
	n = pack_int(INT64_MAX, want);
	expect(v, "o", want, n);
	assert_int_equal(kp_view_incr(v, "m", 1, INT64_MIN, &r), 0);
	assert_int_equal(kp_view_incr(v, "m", 1, -1, &r), KP_EBADREQUEST);
	assert_int_equal(r, INT64_MIN);
	kp_view_delete(v);
}

static void test_many_keys(void **state)
{
	enum { N = 20000 };
	struct kp_view *v = new_view();
	char key[32];
	int64_t r;

	for (int i = 0; i < N; i++) {
		int n = snprintf(key, sizeof(key), "key-%d", i);

		assert_int_equal(kp_view_incr(v, key, (size_t)n, i, &r), 0);
	}
	assert_int_equal(kp_view_count(v), N);
	for (int i = 0; i < N; i += 2) {
		int n = snprintf(key, sizeof(key), "key-%d", i);

		assert_int_equal(kp_view_del(v, key, (size_t)n), 1);
	}
	assert_int_equal(kp_view_count(v), N / 2);
	for (int i = 0; i < N; i++) {
		int n = snprintf(key, sizeof(key), "key-%d", i);
		int rc = kp_view_incr(v, key, (size_t)n, 0, &r);

		assert_int_equal(rc, 0);
		assert_int_equal(r, i % 2 ? i : 0);
	}
	assert_int_equal(kp_view_count(v), N);
	kp_view_delete(v);
}

struct seen {
	char keys[16][16];
	int count;
	int stop_at;
	struct kp_view *v;
};

static int on_visit(void *arg, const char *key, size_t key_len,
		    const char *value, size_t value_len)
{
	struct seen *s = arg;

	assert_true(key_len < 16);
	memcpy(s->keys[s->count], key, key_len);
	s->keys[s->count][key_len] = '\0';
	assert_int_equal(value_len, 1);
	s->count++;
	if (s->v != NULL) {
		/* Visits run without the lock: the view may be used here. */
		assert_int_equal(kp_view_put(s->v, "zz-added", 8, "\x01", 1), 0);
		assert_int_equal(kp_view_del(s->v, "user:b", 6), s->count == 1);
	}
	return s->count == s->stop_at;
}

static void test_scan(void **state)
{
	static const char *const keys[] = { "user:c", "user:a", "other",
					    "user:b", "user", "user:aa",
					    "usea" };
	struct kp_view *v = new_view();
	struct seen s;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		put_str(v, keys[i], "\x01");
	memset(&s, 0, sizeof(s));
	assert_int_equal(kp_view_scan(v, "user:", 5, 0, on_visit, &s), 4);
	assert_string_equal(s.keys[0], "user:a");
	assert_string_equal(s.keys[1], "user:aa");
	assert_string_equal(s.keys[2], "user:b");
	assert_string_equal(s.keys[3], "user:c");
	memset(&s, 0, sizeof(s));
	assert_int_equal(kp_view_scan(v, "", 0, 0, on_visit, &s), 7);
	assert_string_equal(s.keys[0], "other");
	assert_string_equal(s.keys[1], "usea");
	assert_string_equal(s.keys[2], "user");
	memset(&s, 0, sizeof(s));
	assert_int_equal(kp_view_scan(v, "user", 4, 2, on_visit, &s), 2);
	assert_string_equal(s.keys[1], "user:a");
	memset(&s, 0, sizeof(s));
	s.stop_at = 3;
	assert_int_equal(kp_view_scan(v, "user", 4, 0, on_visit, &s), 3);
	memset(&s, 0, sizeof(s));
	assert_int_equal(kp_view_scan(v, "nope", 4, 0, on_visit, &s), 0);
	/* The visit changes the view; it still sees the copy it was given. */
	memset(&s, 0, sizeof(s));
	s.v = v;
	assert_int_equal(kp_view_scan(v, "user:", 5, 0, on_visit, &s), 4);
	assert_string_equal(s.keys[2], "user:b");
	expect(v, "user:b", NULL, 0);
	expect(v, "zz-added", "\x01", 1);
	kp_view_delete(v);
}

static void test_prev_variants(void **state)
{
	struct kp_view *v = new_view();
	struct kp_buf prev;
	int64_t r;

	kp_buf_init(&prev);
	assert_int_equal(kp_view_put_prev(v, "k", 1, "\xa1x", 2, &prev), 0);
	assert_int_equal(prev.len, 0);
	assert_int_equal(kp_view_put_prev(v, "k", 1, "\x05", 1, &prev), 1);
	assert_int_equal(prev.len, 2);
	assert_memory_equal(prev.data, "\xa1x", 2);
	assert_true(prev.cap - prev.len >= KP_VIEW_PREV_SPARE);
	assert_int_equal(kp_view_incr_prev(v, "k", 1, 2, &r, &prev), 1);
	assert_int_equal(r, 7);
	assert_int_equal(prev.len, 3);
	assert_int_equal(prev.data[2], 5);
	assert_int_equal(kp_view_incr_prev(v, "n", 1, 2, &r, &prev), 0);
	assert_int_equal(kp_view_del_prev(v, "k", 1, &prev), 1);
	assert_int_equal(prev.len, 4);
	assert_int_equal(prev.data[3], 7);
	assert_int_equal(kp_view_del_prev(v, "k", 1, &prev), 0);
	assert_int_equal(prev.len, 4);
	kp_buf_destroy(&prev);
	kp_view_delete(v);
}

/* A view with the same keys inserted in a different order. */
static struct kp_view *filled(int reverse)
{
	struct kp_view *v = new_view();
	char key[32], value[8];

	for (int j = 0; j < 300; j++) {
		int i = reverse ? 299 - j : j;
		int n = snprintf(key, sizeof(key), "k%03d", i);
		size_t m = pack_int(i * 1000, value);

		assert_int_equal(kp_view_put(v, key, (size_t)n, value, m), 0);
	}
	return v;
}

static void test_snapshot_roundtrip(void **state)
{
	struct kp_view *a = filled(0), *b = filled(1), *c = new_view();
	struct kp_buf sa, sb, sc;
	struct kp_error err;

	kp_buf_init(&sa);
	kp_buf_init(&sb);
	kp_buf_init(&sc);
	assert_int_equal(kp_view_serialize(a, &sa), 0);
	assert_int_equal(kp_view_serialize(b, &sb), 0);
	assert_int_equal(sa.len, sb.len);
	assert_memory_equal(sa.data, sb.data, sa.len);
	put_str(c, "old", "\x01");
	assert_int_equal(kp_view_load(c, sa.data, sa.len, &err), 0);
	assert_int_equal(kp_view_count(c), 300);
	assert_int_equal(kp_view_bytes(c), kp_view_bytes(a));
	expect(c, "old", NULL, 0);
	expect(c, "k002", "\xcd\x07\xd0", 3);
	assert_int_equal(kp_view_serialize(c, &sc), 0);
	assert_int_equal(sc.len, sa.len);
	assert_memory_equal(sc.data, sa.data, sa.len);
	/* Serialize appends; an empty view round-trips too. */
	kp_view_clear(c);
	kp_buf_reset(&sc);
	kp_buf_append(&sc, "xyz", 3);
	assert_int_equal(kp_view_serialize(c, &sc), 0);
	assert_int_equal(kp_view_load(a, sc.data + 3, sc.len - 3, &err), 0);
	assert_int_equal(kp_view_count(a), 0);
	kp_buf_destroy(&sa);
	kp_buf_destroy(&sb);
	kp_buf_destroy(&sc);
	kp_view_delete(a);
	kp_view_delete(b);
	kp_view_delete(c);
}

static void expect_corrupt(struct kp_view *v, const char *data, size_t len)
{
	struct kp_error err;

	kp_error_clear(&err);
	assert_int_equal(kp_view_load(v, data, len, &err), KP_ECORRUPT);
	assert_int_equal(err.code, KP_ECORRUPT);
	assert_non_null(strstr(err.msg, "view snapshot"));
	assert_int_equal(kp_view_count(v), 1);
	expect(v, "keep", "\x2a", 1);
}

/* Rewrites the trailing CRC so that only the structure is wrong. */
static void fix_crc(char *data, size_t len)
{
	kp_put_le32(data + len - 4, kp_crc32c(0, data, len - 4));
}

static void test_snapshot_corrupt(void **state)
{
	struct kp_view *src = new_view(), *v = new_view();
	struct kp_buf s;
	char *copy;

	put_str(src, "a", "\xa3" "abc");
	put_str(src, "b", "\x92\x01\x02");
	put_str(v, "keep", "\x2a");
	kp_buf_init(&s);
	assert_int_equal(kp_view_serialize(src, &s), 0);
	copy = malloc(s.len + 16);
	for (size_t n = 0; n < s.len; n++) {
		memcpy(copy, s.data, n);
		expect_corrupt(v, copy, n);
	}
	for (size_t i = 0; i < s.len; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			memcpy(copy, s.data, s.len);
			copy[i] ^= (char)(1 << bit);
			expect_corrupt(v, copy, s.len);
		}
	}
	/* Valid CRC over invalid structure. */
	memcpy(copy, s.data, s.len);
	kp_put_le64(copy + 8, 3);
	fix_crc(copy, s.len);
	expect_corrupt(v, copy, s.len);
	memcpy(copy, s.data, s.len);
	kp_put_le64(copy + 8, 1);
	fix_crc(copy, s.len);
	expect_corrupt(v, copy, s.len);
	memcpy(copy, s.data, s.len);
	copy[16 + 4 + 1 + 4] = (char)0xc1;  /* a's value: reserved byte */
	fix_crc(copy, s.len);
	expect_corrupt(v, copy, s.len);
	memcpy(copy, s.data, s.len);
	copy[16 + 4 + 1 + 4 + 4 + 4] = 'a';  /* "b" -> "a": a duplicate */
	fix_crc(copy, s.len);
	expect_corrupt(v, copy, s.len);
	memcpy(copy, s.data, s.len - 4);  /* bytes after the last entry */
	memset(copy + s.len - 4, 0, 4);
	fix_crc(copy, s.len + 4);
	expect_corrupt(v, copy, s.len + 4);
	free(copy);
	kp_buf_destroy(&s);
	kp_view_delete(src);
	kp_view_delete(v);
}

static void test_alloc_failures(void **state)
{
	struct kp_view *v = new_view();
	struct kp_buf s;
	struct kp_error err;
	int64_t r;
	char key[16];

	kp_buf_init(&s);
	for (int i = 0; i < 10; i++) {
		int n = snprintf(key, sizeof(key), "k%d", i);

		assert_int_equal(kp_view_incr(v, key, (size_t)n, i, &r), 0);
	}
	kp_alloc_fail_after(0);
	assert_int_equal(kp_view_put(v, "new", 3, "\x01", 1), -ENOMEM);
	assert_int_equal(kp_view_incr(v, "k1", 2, 1000, &r), 0);  /* in place */
	assert_int_equal(kp_view_put(v, "k2", 2, "\xa9" "123456789", 10),
			 -ENOMEM);
	assert_int_equal(kp_view_serialize(v, &s), -ENOMEM);
	kp_alloc_fail_after(-1);
	expect(v, "new", NULL, 0);
	expect(v, "k2", "\x02", 1);
	assert_int_equal(kp_view_count(v), 10);
	assert_int_equal(kp_view_serialize(v, &s), 0);
	kp_view_clear(v);
	for (long n = 0; n < 64; n++) {
		kp_alloc_fail_after(n);
		int rc = kp_view_load(v, s.data, s.len, &err);
		kp_alloc_fail_after(-1);
		if (rc == 0)
			break;
		assert_int_equal(rc, -ENOMEM);
		assert_int_equal(kp_view_count(v), 0);
	}
	assert_int_equal(kp_view_count(v), 10);
	kp_buf_destroy(&s);
	kp_view_delete(v);
}

struct worker {
	struct kp_view *v;
	int id;
};

static void *run_worker(void *arg)
{
	struct worker *w = arg;
	struct kp_buf b;
	int64_t r;

	kp_buf_init(&b);
	for (int i = 0; i < 20000; i++) {
		kp_view_incr(w->v, "shared", 6, 1, &r);
		kp_view_get(w->v, "shared", 6, &b);
		if (i % 100 == 0) {
			char key[16];
			int n = snprintf(key, sizeof(key), "w%d-%d", w->id, i);

			kp_view_put(w->v, key, (size_t)n, "\x01", 1);
		}
	}
	kp_buf_destroy(&b);
	return NULL;
}

static void test_threads(void **state)
{
	struct kp_view *v = new_view();
	struct worker w[2] = { { v, 0 }, { v, 1 } };
	pthread_t t[2];
	int64_t r;

	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, run_worker, &w[i]),
				 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(kp_view_incr(v, "shared", 6, 0, &r), 0);
	assert_int_equal(r, 40000);
	assert_int_equal(kp_view_count(v), 1 + 2 * 200);
	kp_view_delete(v);
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Not a benchmark gate: prints the hot path's cost for the record. */
static void test_hot_path_cost(void **state)
{
	enum { KEYS = 1000, OPS = 1000000 };
	struct kp_view *v = new_view();
	char keys[KEYS][16];
	size_t lens[KEYS];
	double t0, t1;
	int64_t r;

	for (int i = 0; i < KEYS; i++)
		lens[i] = (size_t)snprintf(keys[i], 16, "user-%d", i);
	t0 = now_ns();
	for (int i = 0; i < OPS; i++)
		kp_view_incr(v, keys[i % KEYS], lens[i % KEYS], 1, &r);
	t1 = now_ns();
	assert_int_equal(r, OPS / KEYS);
	print_message("kp_view_incr: %.1f ns per call over %d keys\n",
		      (t1 - t0) / OPS, KEYS);
	kp_view_delete(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get_del),
		cmocka_unit_test(test_incr),
		cmocka_unit_test(test_many_keys),
		cmocka_unit_test(test_scan),
		cmocka_unit_test(test_prev_variants),
		cmocka_unit_test(test_snapshot_roundtrip),
		cmocka_unit_test(test_snapshot_corrupt),
		cmocka_unit_test(test_alloc_failures),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_hot_path_cost),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
