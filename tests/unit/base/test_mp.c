/*
 * test_mp.c - the zero-allocation msgpack walker: every format round-trips
 * from msgpack-c's packer, and hostile input (truncation, huge declared
 * lengths, deep nesting, reserved bytes, trailing garbage) is rejected
 * without overrun or allocation.
 */
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

#include "base/alloc.h"
#include "base/buf.h"
#include "base/error.h"
#include "base/mp.h"
#include "wire/proto.h"

/* A packer writing into a kp_buf, as the server's code does. */
struct packed {
	struct kp_buf buf;
	msgpack_packer pk;
};

static void packed_init(struct packed *p)
{
	kp_buf_init(&p->buf);
	msgpack_packer_init(&p->pk, &p->buf, kp_buf_msgpack_write);
}

/* Validates the packed bytes as one object of type t and returns its view. */
static struct kp_mp_view check_one(struct packed *p, enum kp_mp_type t)
{
	struct kp_mp_view v;
	size_t size = 0;

	assert_int_equal(kp_mp_skip(p->buf.data, p->buf.len, &size), 0);
	assert_int_equal(size, p->buf.len);
	assert_int_equal(kp_mp_validate_one(p->buf.data, p->buf.len, &v), 0);
	assert_ptr_equal(v.ptr, p->buf.data);
	assert_int_equal(v.len, p->buf.len);
	assert_int_equal(kp_mp_type(v), t);
	return v;
}

/* Every strict prefix of the packed bytes, in an exact-size heap copy. */
static void check_truncations(const char *data, size_t len)
{
	size_t n, size;

	for (n = 0; n < len; n++) {
		char *copy = malloc(n ? n : 1);

		assert_non_null(copy);
		memcpy(copy, data, n);
		assert_int_equal(kp_mp_skip(copy, n, &size), KP_EBADMSGPACK);
		assert_int_equal(kp_mp_validate_one(copy, n, NULL),
				 KP_EBADMSGPACK);
		free(copy);
	}
}

static void test_nil_bool(void **state)
{
	struct packed p;
	struct kp_mp_view v;
	bool b;
	uint64_t u;

	(void)state;
	packed_init(&p);
	msgpack_pack_nil(&p.pk);
	v = check_one(&p, KP_MP_NIL);
	assert_int_equal(kp_mp_is_nil(v), 1);
	assert_int_equal(kp_mp_read_bool(v, &b), KP_EBADREQUEST);
	assert_int_equal(kp_mp_read_uint(v, &u), KP_EBADREQUEST);

	kp_buf_reset(&p.buf);
	msgpack_pack_true(&p.pk);
	v = check_one(&p, KP_MP_BOOL);
	assert_int_equal(kp_mp_is_nil(v), 0);
	assert_int_equal(kp_mp_read_bool(v, &b), 0);
	assert_true(b);

	kp_buf_reset(&p.buf);
	msgpack_pack_false(&p.pk);
	v = check_one(&p, KP_MP_BOOL);
	assert_int_equal(kp_mp_read_bool(v, &b), 0);
	assert_false(b);
	kp_buf_destroy(&p.buf);
}

static void check_uint(struct packed *p, uint64_t want, unsigned char format)
{
	struct kp_mp_view v = check_one(p, KP_MP_UINT);
	uint64_t u;
	int64_t i;
	double d;

	assert_int_equal((unsigned char)p->buf.data[0], format);
	assert_int_equal(kp_mp_read_uint(v, &u), 0);
	assert_true(u == want);
	if (want <= (uint64_t)INT64_MAX) {
		assert_int_equal(kp_mp_read_int(v, &i), 0);
		assert_true(i == (int64_t)want);
	} else {
		assert_int_equal(kp_mp_read_int(v, &i), KP_EBADREQUEST);
	}
	assert_int_equal(kp_mp_read_double(v, &d), 0);
	assert_true(d == (double)want);
	check_truncations(p->buf.data, p->buf.len);
}

static void test_uints(void **state)
{
	static const struct {
		uint64_t v;
		unsigned char format;
	} cases[] = {
		{ 0, 0x00 }, { 127, 0x7f }, { 128, 0xcc }, { 255, 0xcc },
		{ 256, 0xcd }, { 65535, 0xcd }, { 65536, 0xce },
		{ UINT32_MAX, 0xce }, { (uint64_t)UINT32_MAX + 1, 0xcf },
		{ (uint64_t)INT64_MAX, 0xcf }, { (uint64_t)INT64_MAX + 1, 0xcf },
		{ UINT64_MAX, 0xcf },
	};
	struct packed p;
	size_t i;

	(void)state;
	packed_init(&p);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kp_buf_reset(&p.buf);
		msgpack_pack_uint64(&p.pk, cases[i].v);
		check_uint(&p, cases[i].v, cases[i].format);
	}
	kp_buf_destroy(&p.buf);
}

static void check_int(struct packed *p, int64_t want, unsigned char format)
{
	enum kp_mp_type t = want < 0 ? KP_MP_INT : KP_MP_UINT;
	struct kp_mp_view v = check_one(p, t);
	uint64_t u;
	int64_t i;
	double d;

	assert_int_equal((unsigned char)p->buf.data[0], format);
	assert_int_equal(kp_mp_read_int(v, &i), 0);
	assert_true(i == want);
	if (want < 0) {
		assert_int_equal(kp_mp_read_uint(v, &u), KP_EBADREQUEST);
	} else {
		assert_int_equal(kp_mp_read_uint(v, &u), 0);
		assert_true(u == (uint64_t)want);
	}
	assert_int_equal(kp_mp_read_double(v, &d), 0);
	assert_true(d == (double)want);
	check_truncations(p->buf.data, p->buf.len);
}

static void test_ints(void **state)
{
	static const struct {
		int64_t v;
		unsigned char format;
	} cases[] = {
		{ -1, 0xff }, { -32, 0xe0 }, { -33, 0xd0 }, { -128, 0xd0 },
		{ -129, 0xd1 }, { INT16_MIN, 0xd1 }, { INT16_MIN - 1, 0xd2 },
		{ INT32_MIN, 0xd2 }, { (int64_t)INT32_MIN - 1, 0xd3 },
		{ INT64_MIN, 0xd3 },
	};
	struct packed p;
	size_t i;

	(void)state;
	packed_init(&p);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		kp_buf_reset(&p.buf);
		msgpack_pack_int64(&p.pk, cases[i].v);
		check_int(&p, cases[i].v, cases[i].format);
	}
	/* Signed formats holding non-negative values read as uint. */
	kp_buf_reset(&p.buf);
	msgpack_pack_fix_int8(&p.pk, 5);
	check_int(&p, 5, 0xd0);
	kp_buf_reset(&p.buf);
	msgpack_pack_fix_int16(&p.pk, 1000);
	check_int(&p, 1000, 0xd1);
	kp_buf_reset(&p.buf);
	msgpack_pack_fix_int32(&p.pk, 100000);
	check_int(&p, 100000, 0xd2);
	kp_buf_reset(&p.buf);
	msgpack_pack_fix_int64(&p.pk, INT64_MAX);
	check_int(&p, INT64_MAX, 0xd3);
	kp_buf_reset(&p.buf);
	msgpack_pack_fix_int8(&p.pk, -5);
	check_int(&p, -5, 0xd0);
	kp_buf_destroy(&p.buf);
}

static void test_floats(void **state)
{
	struct packed p;
	struct kp_mp_view v;
	double d;
	uint64_t u;
	int64_t i;

	(void)state;
	packed_init(&p);
	msgpack_pack_float(&p.pk, 1.5f);
	v = check_one(&p, KP_MP_FLOAT);
	assert_int_equal((unsigned char)p.buf.data[0], 0xca);
	assert_int_equal(kp_mp_read_double(v, &d), 0);
	assert_true(d == 1.5);
	assert_int_equal(kp_mp_read_uint(v, &u), KP_EBADREQUEST);
	assert_int_equal(kp_mp_read_int(v, &i), KP_EBADREQUEST);
	check_truncations(p.buf.data, p.buf.len);

	kp_buf_reset(&p.buf);
	msgpack_pack_double(&p.pk, -2.25e300);
	v = check_one(&p, KP_MP_FLOAT);
	assert_int_equal((unsigned char)p.buf.data[0], 0xcb);
	assert_int_equal(kp_mp_read_double(v, &d), 0);
	assert_true(d == -2.25e300);
	check_truncations(p.buf.data, p.buf.len);
	kp_buf_destroy(&p.buf);
}

static void check_bytes(size_t n, bool bin, unsigned char format)
{
	struct packed p;
	struct kp_mp_view v, payload;
	char *data = malloc(n ? n : 1);
	size_t i;

	assert_non_null(data);
	for (i = 0; i < n; i++)
		data[i] = (char)('a' + i % 26);
	packed_init(&p);
	if (bin)
		msgpack_pack_bin_with_body(&p.pk, data, n);
	else
		msgpack_pack_str_with_body(&p.pk, data, n);
	v = check_one(&p, bin ? KP_MP_BIN : KP_MP_STR);
	assert_int_equal((unsigned char)p.buf.data[0], format);
	if (bin) {
		assert_int_equal(kp_mp_read_bin(v, &payload), 0);
		assert_int_equal(kp_mp_read_str(v, &payload), KP_EBADREQUEST);
		assert_int_equal(kp_mp_read_bin(v, &payload), 0);
	} else {
		assert_int_equal(kp_mp_read_str(v, &payload), 0);
		assert_int_equal(kp_mp_read_bin(v, &payload), KP_EBADREQUEST);
		assert_int_equal(kp_mp_read_str(v, &payload), 0);
	}
	assert_int_equal(payload.len, n);
	assert_ptr_equal(payload.ptr + n, p.buf.data + p.buf.len);
	assert_memory_equal(payload.ptr, data, n);
	if (n < 300)
		check_truncations(p.buf.data, p.buf.len);
	else
		assert_int_equal(kp_mp_skip(p.buf.data, p.buf.len - 1, NULL),
				 KP_EBADMSGPACK);
	free(data);
	kp_buf_destroy(&p.buf);
}

static void test_str_bin(void **state)
{
	(void)state;
	check_bytes(0, false, 0xa0);
	check_bytes(31, false, 0xbf);
	check_bytes(32, false, 0xd9);
	check_bytes(255, false, 0xd9);
	check_bytes(256, false, 0xda);
	check_bytes(65535, false, 0xda);
	check_bytes(65536, false, 0xdb);
	check_bytes(0, true, 0xc4);
	check_bytes(255, true, 0xc4);
	check_bytes(256, true, 0xc5);
	check_bytes(65536, true, 0xc6);
}

static void check_ext(size_t n, unsigned char format)
{
	struct packed p;
	struct kp_mp_view v;
	char data[70000];

	memset(data, 0x5a, sizeof(data));
	packed_init(&p);
	msgpack_pack_ext_with_body(&p.pk, data, n, 7);
	v = check_one(&p, KP_MP_EXT);
	assert_int_equal((unsigned char)p.buf.data[0], format);
	assert_int_equal(kp_mp_is_nil(v), 0);
	if (n < 300)
		check_truncations(p.buf.data, p.buf.len);
	else
		assert_int_equal(kp_mp_skip(p.buf.data, p.buf.len - 1, NULL),
				 KP_EBADMSGPACK);
	kp_buf_destroy(&p.buf);
}

static void test_ext(void **state)
{
	(void)state;
	check_ext(1, 0xd4);
	check_ext(2, 0xd5);
	check_ext(4, 0xd6);
	check_ext(8, 0xd7);
	check_ext(16, 0xd8);
	check_ext(0, 0xc7);
	check_ext(3, 0xc7);
	check_ext(255, 0xc7);
	check_ext(256, 0xc8);
	check_ext(65536, 0xc9);
}

static void check_array(uint32_t n, unsigned char format)
{
	struct packed p;
	struct kp_mp_view v, item;
	struct kp_mp_iter it;
	uint32_t i;
	uint64_t u;

	packed_init(&p);
	msgpack_pack_array(&p.pk, n);
	for (i = 0; i < n; i++)
		msgpack_pack_uint32(&p.pk, i * 1000);
	v = check_one(&p, KP_MP_ARRAY);
	assert_int_equal((unsigned char)p.buf.data[0], format);
	assert_int_equal(kp_mp_map_begin(v, &it), KP_EBADREQUEST);
	assert_int_equal(kp_mp_array_begin(v, &it), 0);
	assert_int_equal(it.left, n);
	for (i = 0; i < n; i++) {
		assert_int_equal(kp_mp_array_next(&it, &item), 1);
		assert_int_equal(kp_mp_read_uint(item, &u), 0);
		assert_true(u == (uint64_t)i * 1000);
	}
	assert_int_equal(kp_mp_array_next(&it, &item), 0);
	assert_ptr_equal(it.pos, p.buf.data + p.buf.len);
	if (p.buf.len < 2000)
		check_truncations(p.buf.data, p.buf.len);
	kp_buf_destroy(&p.buf);
}

static void test_arrays(void **state)
{
	(void)state;
	check_array(0, 0x90);
	check_array(15, 0x9f);
	check_array(16, 0xdc);
	check_array(65535, 0xdc);
	check_array(65536, 0xdd);
}

static void check_map(uint32_t n, unsigned char format)
{
	struct packed p;
	struct kp_mp_view v, key, val, payload;
	struct kp_mp_iter it;
	char name[16];
	uint32_t i;
	uint64_t u;

	packed_init(&p);
	msgpack_pack_map(&p.pk, n);
	for (i = 0; i < n; i++) {
		int len = snprintf(name, sizeof(name), "k%u", i);

		msgpack_pack_str_with_body(&p.pk, name, (size_t)len);
		msgpack_pack_uint32(&p.pk, i);
	}
	v = check_one(&p, KP_MP_MAP);
	assert_int_equal((unsigned char)p.buf.data[0], format);
	assert_int_equal(kp_mp_array_begin(v, &it), KP_EBADREQUEST);
	assert_int_equal(kp_mp_map_begin(v, &it), 0);
	assert_int_equal(it.left, n);
	for (i = 0; i < n; i++) {
		assert_int_equal(kp_mp_map_next(&it, &key, &val), 1);
		assert_int_equal(kp_mp_read_str(key, &payload), 0);
		snprintf(name, sizeof(name), "k%u", i);
		assert_true(kp_mp_str_eq(payload, name));
		assert_int_equal(kp_mp_read_uint(val, &u), 0);
		assert_true(u == i);
	}
	assert_int_equal(kp_mp_map_next(&it, &key, &val), 0);
	if (n > 0) {
		snprintf(name, sizeof(name), "k%u", n - 1);
		assert_int_equal(kp_mp_map_get(v, name, &val), 1);
		assert_int_equal(kp_mp_read_uint(val, &u), 0);
		assert_true(u == n - 1);
	}
	assert_int_equal(kp_mp_map_get(v, "absent", &val), 0);
	if (p.buf.len < 2000)
		check_truncations(p.buf.data, p.buf.len);
	kp_buf_destroy(&p.buf);
}

static void test_maps(void **state)
{
	(void)state;
	check_map(0, 0x80);
	check_map(15, 0x8f);
	check_map(16, 0xde);
	check_map(65535, 0xde);
	check_map(65536, 0xdf);
}

/* A nested document with every family, truncated at every byte. */
static void test_nested_truncation(void **state)
{
	struct packed p;
	struct kp_mp_view v, val, payload;
	char blob[300];

	(void)state;
	memset(blob, 7, sizeof(blob));
	packed_init(&p);
	msgpack_pack_map(&p.pk, 4);
	msgpack_pack_str_with_body(&p.pk, "a", 1);
	msgpack_pack_array(&p.pk, 9);
	msgpack_pack_nil(&p.pk);
	msgpack_pack_true(&p.pk);
	msgpack_pack_int64(&p.pk, -100000);
	msgpack_pack_uint64(&p.pk, UINT64_MAX);
	msgpack_pack_double(&p.pk, 3.0);
	msgpack_pack_float(&p.pk, 3.0f);
	msgpack_pack_bin_with_body(&p.pk, blob, 40);
	msgpack_pack_ext_with_body(&p.pk, blob, 16, 1);
	msgpack_pack_ext_with_body(&p.pk, blob, 300, 2);
	msgpack_pack_uint8(&p.pk, 1);
	msgpack_pack_map(&p.pk, 1);
	msgpack_pack_str_with_body(&p.pk, blob, 40);
	msgpack_pack_array(&p.pk, 0);
	msgpack_pack_str_with_body(&p.pk, "b", 1);
	msgpack_pack_str_with_body(&p.pk, blob, 300);
	msgpack_pack_str_with_body(&p.pk, "a", 1);
	msgpack_pack_str_with_body(&p.pk, "second", 6);
	v = check_one(&p, KP_MP_MAP);
	check_truncations(p.buf.data, p.buf.len);

	/* map_get returns the first pair with the key; non-str keys skipped. */
	assert_int_equal(kp_mp_map_get(v, "a", &val), 1);
	assert_int_equal(kp_mp_type(val), KP_MP_ARRAY);
	assert_int_equal(kp_mp_map_get(v, "b", &val), 1);
	assert_int_equal(kp_mp_read_str(val, &payload), 0);
	assert_int_equal(payload.len, 300);
	assert_int_equal(kp_mp_map_get(val, "a", &val), KP_EBADREQUEST);
	kp_buf_destroy(&p.buf);
}

static void test_reserved_byte(void **state)
{
	static const char alone[] = { (char)0xc1 };
	static const char inside[] = { (char)0x92, 0x01, (char)0xc1 };
	static const char as_key[] = { (char)0x81, (char)0xc1, 0x01 };

	(void)state;
	assert_int_equal(kp_mp_skip(alone, sizeof(alone), NULL), KP_EBADMSGPACK);
	assert_int_equal(kp_mp_skip(inside, sizeof(inside), NULL),
			 KP_EBADMSGPACK);
	assert_int_equal(kp_mp_skip(as_key, sizeof(as_key), NULL),
			 KP_EBADMSGPACK);
	assert_int_equal(kp_mp_skip(alone, 0, NULL), KP_EBADMSGPACK);
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_huge_declared_lengths(void **state)
{
	static const char array32[] = { (char)0xdd, (char)0xff, (char)0xff,
					(char)0xff, (char)0xff };
	static const char map32[] = { (char)0xdf, (char)0xff, (char)0xff,
				      (char)0xff, (char)0xff };
	static const char str32[] = { (char)0xdb, (char)0xff, (char)0xff,
				      (char)0xff, (char)0xff, 'x' };
	static const char bin32[] = { (char)0xc6, (char)0x7f, (char)0xff,
				      (char)0xff, (char)0xff, 'x' };
	static const char ext32[] = { (char)0xc9, (char)0xff, (char)0xff,
				      (char)0xff, (char)0xff, 1 };
	/* 2 pairs need at least 4 bytes; only 3 follow. */
	static const char map_short[] = { (char)0x82, 1, 2, 3 };
	/* 3 items need 3 bytes; 2 follow. */
	static const char array_short[] = { (char)0x93, 1, 2 };
	size_t big = 1u << 20;
	char *tail = calloc(1, big);
	double t0;

	(void)state;
	assert_non_null(tail);
	memcpy(tail, array32, sizeof(array32));
	kp_alloc_fail_after(0);
	t0 = now_seconds();
	assert_int_equal(kp_mp_skip(array32, sizeof(array32), NULL),
			 KP_EBADMSGPACK);
	/* A MiB of valid zero items behind the header is still far too few. */
	assert_int_equal(kp_mp_skip(tail, big, NULL), KP_EBADMSGPACK);
	assert_int_equal(kp_mp_skip(map32, sizeof(map32), NULL),
			 KP_EBADMSGPACK);
	assert_int_equal(kp_mp_skip(str32, sizeof(str32), NULL),
			 KP_EBADMSGPACK);
	assert_int_equal(kp_mp_skip(bin32, sizeof(bin32), NULL),
			 KP_EBADMSGPACK);
	assert_int_equal(kp_mp_skip(ext32, sizeof(ext32), NULL),
			 KP_EBADMSGPACK);
	assert_int_equal(kp_mp_skip(map_short, sizeof(map_short), NULL),
			 KP_EBADMSGPACK);
	assert_int_equal(kp_mp_skip(array_short, sizeof(array_short), NULL),
			 KP_EBADMSGPACK);
	assert_true(now_seconds() - t0 < 0.05);
	kp_alloc_fail_after(-1);
	free(tail);
}

static void check_nesting(unsigned char open, size_t levels, int want)
{
	char *doc = malloc(levels * 2 + 1);
	size_t n = 0, i;

	assert_non_null(doc);
	for (i = 0; i < levels; i++) {
		doc[n++] = (char)open;
		if (open == 0x81)
			doc[n++] = 0x00;  /* the key */
	}
	doc[n++] = 0x01;
	assert_int_equal(kp_mp_skip(doc, n, NULL), want);
	free(doc);
}

static void test_depth(void **state)
{
	static const char empty_deep_enough[] = { (char)0x91, (char)0x90 };

	(void)state;
	check_nesting(0x91, KP_MP_MAX_DEPTH, 0);
	check_nesting(0x91, KP_MP_MAX_DEPTH + 1, KP_EBADMSGPACK);
	check_nesting(0x81, KP_MP_MAX_DEPTH, 0);
	check_nesting(0x81, KP_MP_MAX_DEPTH + 1, KP_EBADMSGPACK);
	check_nesting(0x91, 1000000, KP_EBADMSGPACK);
	check_nesting(0x81, 1000000, KP_EBADMSGPACK);
	assert_int_equal(kp_mp_skip(empty_deep_enough, 2, NULL), 0);
}

static void test_trailing_garbage(void **state)
{
	static const char two[] = { (char)0x81, (char)0xa1, 'a', 0x01, 0x02 };
	static const char bad_tail[] = { 0x01, (char)0xc1 };
	struct kp_mp_view v = { NULL, 0 };
	size_t size = 0;

	(void)state;
	assert_int_equal(kp_mp_skip(two, sizeof(two), &size), 0);
	assert_int_equal(size, 4);
	assert_int_equal(kp_mp_validate_one(two, sizeof(two), &v),
			 KP_EBADMSGPACK);
	assert_null(v.ptr);
	assert_int_equal(kp_mp_validate_one(two, 4, &v), 0);
	assert_int_equal(kp_mp_validate_one(bad_tail, 2, NULL), KP_EBADMSGPACK);
	assert_int_equal(kp_mp_validate_one(bad_tail, 0, NULL), KP_EBADMSGPACK);
}

static void test_type_names_and_str_eq(void **state)
{
	struct kp_mp_view s = { "topic", 5 };
	struct kp_mp_view empty = { "", 0 };

	(void)state;
	assert_string_equal(kp_mp_type_name(KP_MP_NIL), "nil");
	assert_string_equal(kp_mp_type_name(KP_MP_BOOL), "bool");
	assert_string_equal(kp_mp_type_name(KP_MP_UINT), "uint");
	assert_string_equal(kp_mp_type_name(KP_MP_INT), "int");
	assert_string_equal(kp_mp_type_name(KP_MP_FLOAT), "float");
	assert_string_equal(kp_mp_type_name(KP_MP_STR), "str");
	assert_string_equal(kp_mp_type_name(KP_MP_BIN), "bin");
	assert_string_equal(kp_mp_type_name(KP_MP_ARRAY), "array");
	assert_string_equal(kp_mp_type_name(KP_MP_MAP), "map");
	assert_string_equal(kp_mp_type_name(KP_MP_EXT), "ext");
	assert_true(kp_mp_str_eq(s, "topic"));
	assert_false(kp_mp_str_eq(s, "topics"));
	assert_false(kp_mp_str_eq(s, "topi"));
	assert_false(kp_mp_str_eq(s, "Topic"));
	assert_true(kp_mp_str_eq(empty, ""));
	assert_false(kp_mp_str_eq(empty, "x"));
}

/* Pieces of a value walked at their depth accept what the whole walk does. */
static void test_skip_at_and_container_header(void **state)
{
	char buf[80];
	size_t size, h;
	uint32_t n;

	(void)state;
	memset(buf, 0x91, sizeof(buf));
	buf[70] = (char)0xc0;
	/* 70 nested arrays: too deep at any depth. */
	assert_int_equal(kp_mp_skip_at(buf, 71, 0, &size), KP_EBADMSGPACK);
	/* 60 nested arrays: fine at depth 4, not at depth 5. */
	assert_int_equal(kp_mp_skip_at(buf + 10, 61, 4, &size), 0);
	assert_int_equal(size, 61);
	assert_int_equal(kp_mp_skip_at(buf + 10, 61, 5, &size),
			 KP_EBADMSGPACK);
	/* A scalar needs no depth left. */
	assert_int_equal(kp_mp_skip_at(buf + 70, 1, KP_MP_MAX_DEPTH, &size), 0);
	assert_int_equal(kp_mp_skip_at(buf + 69, 2, KP_MP_MAX_DEPTH, &size),
			 KP_EBADMSGPACK);

	assert_int_equal(kp_mp_container_header("\x93\x01\x02\x03", 4,
						KP_MP_ARRAY, &n, &h), 0);
	assert_int_equal(n, 3);
	assert_int_equal(h, 1);
	assert_int_equal(kp_mp_container_header("\x93\x01\x02\x03", 4,
						KP_MP_MAP, &n, &h),
			 KP_EBADREQUEST);
	assert_int_equal(kp_mp_container_header("\xde\x00\x01\xc0\xc0", 5,
						KP_MP_MAP, &n, &h), 0);
	assert_int_equal(n, 1);
	assert_int_equal(h, 3);
	/* More pairs than bytes, or a cut header. */
	assert_int_equal(kp_mp_container_header("\xde\x00\x02\xc0\xc0", 5,
						KP_MP_MAP, &n, &h),
			 KP_EBADMSGPACK);
	assert_int_equal(kp_mp_container_header("\xdd\x00", 2, KP_MP_ARRAY,
						&n, &h), KP_EBADMSGPACK);
	assert_int_equal(kp_mp_container_header("\xa1x", 2, KP_MP_ARRAY, &n,
						&h), KP_EBADREQUEST);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nil_bool),
		cmocka_unit_test(test_uints),
		cmocka_unit_test(test_ints),
		cmocka_unit_test(test_floats),
		cmocka_unit_test(test_str_bin),
		cmocka_unit_test(test_ext),
		cmocka_unit_test(test_arrays),
		cmocka_unit_test(test_maps),
		cmocka_unit_test(test_nested_truncation),
		cmocka_unit_test(test_reserved_byte),
		cmocka_unit_test(test_huge_declared_lengths),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_trailing_garbage),
		cmocka_unit_test(test_type_names_and_str_eq),
		cmocka_unit_test(test_skip_at_and_container_header),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
