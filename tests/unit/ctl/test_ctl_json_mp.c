/*
 * test_ctl_json_mp.c - kappactl's JSON <-> msgpack rules (json_mp.h): what a
 * user produces as JSON is what the server stores as msgpack, and what
 * consume prints is the JSON a user expects; plus RFC 3339 parsing for
 * --ts-field, --from @TIME and --to @TIME, and invalid-JSON detection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpack.h>

#include "base/alloc.h"
#include "ctl/json_mp.h"
#include "ctl/mpget.h"

/* JSON text -> msgpack bytes in sbuf (msgpack-c's own buffer). */
static void pack_text(const char *text, msgpack_sbuffer *sbuf)
{
	msgpack_packer pk;
	char msg[200];
	json_t *v;

	v = kp_ctl_json_parse(text, strlen(text), msg, sizeof(msg));
	assert_non_null(v);
	msgpack_sbuffer_init(sbuf);
	msgpack_packer_init(&pk, sbuf, msgpack_sbuffer_write);
	assert_int_equal(kp_ctl_json_pack(&pk, v), 0);
	json_decref(v);
}

/* Unpacks sbuf into up, asserting it is exactly one object. */
static const msgpack_object *unpack(const msgpack_sbuffer *sbuf,
				    msgpack_unpacked *up)
{
	size_t off = 0;

	msgpack_unpacked_init(up);
	assert_int_equal(msgpack_unpack_next(up, sbuf->data, sbuf->size, &off),
			 MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, sbuf->size);
	return &up->data;
}

/* The compact JSON text of v as kappactl prints it (caller frees). */
static char *dump(const json_t *v)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	assert_int_equal(kp_ctl_json_dump(f, v), 0);
	fclose(f);
	return text;
}

/* msgpack bytes in sbuf -> printed JSON text, compared with want. */
static void assert_prints(const msgpack_sbuffer *sbuf, const char *want)
{
	msgpack_unpacked up;
	json_t *j;
	char *text;

	j = kp_ctl_mp_to_json(unpack(sbuf, &up));
	assert_non_null(j);
	text = dump(j);
	assert_string_equal(text, want);
	free(text);
	json_decref(j);
	msgpack_unpacked_destroy(&up);
}

static void test_integers_stay_integers(void **state)
{
	msgpack_sbuffer sbuf;
	msgpack_unpacked up;
	const msgpack_object *o;
	int64_t i;
	uint64_t u;

	(void)state;
	pack_text("{\"a\":1,\"b\":-5,\"c\":9223372036854775807,"
		  "\"d\":-9223372036854775808,\"e\":0}", &sbuf);
	o = unpack(&sbuf, &up);
	assert_int_equal(kp_ctl_mp_get(o, "a")->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_int_equal(kp_ctl_mp_get(o, "b")->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
	assert_int_equal(kp_ctl_mp_get(o, "e")->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_int_equal(kp_ctl_mp_get_u64(o, "a", &u), 0);
	assert_int_equal(u, 1);
	assert_int_equal(kp_ctl_mp_get_i64(o, "b", &i), 0);
	assert_int_equal(i, -5);
	assert_int_equal(kp_ctl_mp_get_u64(o, "c", &u), 0);
	assert_true(u == (uint64_t)INT64_MAX);
	assert_int_equal(kp_ctl_mp_get_i64(o, "d", &i), 0);
	assert_true(i == INT64_MIN);
	msgpack_unpacked_destroy(&up);
	/* one byte for a small integer: the smallest encoding is used */
	msgpack_sbuffer_destroy(&sbuf);
	pack_text("7", &sbuf);
	assert_int_equal(sbuf.size, 1);
	assert_prints(&sbuf, "7");
	msgpack_sbuffer_destroy(&sbuf);
	pack_text("{\"a\":1,\"b\":-5,\"c\":9223372036854775807}", &sbuf);
	assert_prints(&sbuf, "{\"a\":1,\"b\":-5,\"c\":9223372036854775807}");
	msgpack_sbuffer_destroy(&sbuf);
}

static void test_big_uint(void **state)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;

	(void)state;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_uint64(&pk, UINT64_MAX);
	assert_prints(&sbuf, "1.8446744073709552e+19");
	msgpack_sbuffer_clear(&sbuf);
	msgpack_pack_uint64(&pk, (uint64_t)INT64_MAX + 1);
	assert_prints(&sbuf, "9.223372036854776e+18");
	msgpack_sbuffer_clear(&sbuf);
	msgpack_pack_uint64(&pk, (uint64_t)INT64_MAX);
	assert_prints(&sbuf, "9223372036854775807");
	msgpack_sbuffer_destroy(&sbuf);
}

static void test_floats(void **state)
{
	msgpack_sbuffer sbuf;
	msgpack_unpacked up;
	msgpack_packer pk;
	const msgpack_object *o;

	(void)state;
	pack_text("[0.1,1.0,-2.5e-300,1e20]", &sbuf);
	o = unpack(&sbuf, &up);
	assert_int_equal(o->via.array.ptr[0].type, MSGPACK_OBJECT_FLOAT64);
	assert_true(o->via.array.ptr[0].via.f64 == 0.1);
	assert_int_equal(o->via.array.ptr[1].type, MSGPACK_OBJECT_FLOAT64);
	msgpack_unpacked_destroy(&up);
	assert_prints(&sbuf, "[0.1,1.0,-2.5e-300,1e+20]");
	msgpack_sbuffer_destroy(&sbuf);

	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_float(&pk, 1.5f);
	msgpack_pack_double(&pk, 0.1 + 0.2);
	msgpack_pack_double(&pk, NAN);
	msgpack_pack_double(&pk, -INFINITY);
	assert_prints(&sbuf, "[1.5,0.30000000000000004,null,null]");
	msgpack_sbuffer_destroy(&sbuf);
}

static void test_nested_round_trip(void **state)
{
	static const char *const texts[] = {
		("{\"user\":\"ana\",\"tags\":[\"a\",\"b\"],\"geo\":{\"lat\":1.25,"
		 "\"lon\":-3,\"ok\":true,\"none\":null,\"f\":false},\"e\":{},\"l\":[]}"),
		"[[[[1]]],{\"a\":{\"b\":{\"c\":[null]}}}]",
		"\"caf\xc3\xa9 \xe2\x82\xac\"",
		"\"quote\\\" back\\\\ nl\\n tab\\t ctl\\u0001 nul\\u0000\"",
		"null",
		"-1",
	};
	msgpack_sbuffer sbuf;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		pack_text(texts[i], &sbuf);
		assert_prints(&sbuf, texts[i]);
		msgpack_sbuffer_destroy(&sbuf);
	}
}

static void test_keys_and_bin(void **state)
{
	msgpack_sbuffer sbuf;
	msgpack_packer pk;

	(void)state;
	msgpack_sbuffer_init(&sbuf);
	msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 7);
	msgpack_pack_str_with_body(&pk, "s", 1);
	msgpack_pack_bin_with_body(&pk, "text", 4);
	msgpack_pack_int(&pk, 5);
	msgpack_pack_bin_with_body(&pk, "\xff\x00\x01", 3);
	msgpack_pack_int(&pk, -7);
	msgpack_pack_nil(&pk);
	msgpack_pack_bin_with_body(&pk, "k", 1);
	msgpack_pack_true(&pk);
	msgpack_pack_bin_with_body(&pk, "\xfe", 1);
	msgpack_pack_false(&pk);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_int(&pk, 2);
	msgpack_pack_ext_with_body(&pk, "abcd", 4, 3);
	msgpack_pack_true(&pk);
	msgpack_pack_str_with_body(&pk, "bad\xc0\xaf", 5);
	assert_prints(&sbuf, "{\"s\":\"text\",\"5\":\"base64:/wAB\",\"-7\":null,"
			     "\"k\":true,\"base64:/g==\":false,\"[1,2]\":null,"
			     "\"true\":\"base64:YmFkwK8=\"}");
	msgpack_sbuffer_destroy(&sbuf);
}

static void test_bytes_and_utf8(void **state)
{
	json_t *j;

	(void)state;
	assert_true(kp_ctl_utf8_valid("", 0));
	assert_true(kp_ctl_utf8_valid("a\0b", 3));
	assert_true(kp_ctl_utf8_valid("\xf0\x9f\x98\x80", 4));
	assert_false(kp_ctl_utf8_valid("\xc0\x80", 2));          /* overlong */
	assert_false(kp_ctl_utf8_valid("\xed\xa0\x80", 3));      /* surrogate */
	assert_false(kp_ctl_utf8_valid("\xf4\x90\x80\x80", 4));  /* > U+10FFFF */
	assert_false(kp_ctl_utf8_valid("\xe2\x82", 2));          /* truncated */
	j = kp_ctl_bytes_to_json("ab", 2);
	assert_string_equal(json_string_value(j), "ab");
	json_decref(j);
	j = kp_ctl_bytes_to_json("\x80", 1);
	assert_string_equal(json_string_value(j), "base64:gA==");
	json_decref(j);
	j = kp_ctl_bytes_to_json("\x80\x81", 2);
	assert_string_equal(json_string_value(j), "base64:gIE=");
	json_decref(j);
	j = kp_ctl_bytes_to_json("\x80\x81\x82", 3);
	assert_string_equal(json_string_value(j), "base64:gIGC");
	json_decref(j);
	j = kp_ctl_bytes_to_json(NULL, 0);
	assert_string_equal(json_string_value(j), "");
	json_decref(j);
}

static void test_key_bytes(void **state)
{
	static const struct {
		const char *json;
		const char *key;
	} cases[] = {
		{ "\"user-1\"", "user-1" },
		{ "42", "42" },
		{ "-1.5", "-1.5" },
		{ "true", "true" },
		{ "{\"a\":[1,\"x\"]}", "{\"a\":[1,\"x\"]}" },
	};
	char msg[200], *bytes;
	size_t i, len;
	json_t *v;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		v = kp_ctl_json_parse(cases[i].json, strlen(cases[i].json), msg,
				      sizeof(msg));
		assert_non_null(v);
		assert_int_equal(kp_ctl_json_key_bytes(v, &bytes, &len), 0);
		assert_int_equal(len, strlen(cases[i].key));
		assert_memory_equal(bytes, cases[i].key, len);
		kp_free(bytes);
		json_decref(v);
	}
}

static void test_invalid_json(void **state)
{
	static const char *const bad[] = {
		"{\"a\":", "{\"a\" 1}", "1 2", "", "   ", "{'a':1}", "[1,]",
		"tru", "\"unterminated", "{\"a\":1}}", "99999999999999999999",
		"\"\xff\"",
	};
	char msg[200];
	size_t i;
	json_t *v;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		msg[0] = '\0';
		v = kp_ctl_json_parse(bad[i], strlen(bad[i]), msg, sizeof(msg));
		if (v != NULL)
			fail_msg("accepted invalid JSON: %s", bad[i]);
		assert_true(strlen(msg) > 0);
		assert_null(strchr(msg, '\n'));
	}
	v = kp_ctl_json_parse("  {\"a\":1}  ", 11, msg, sizeof(msg));
	assert_non_null(v);
	json_decref(v);
	v = kp_ctl_json_parse("\"a\\u0000b\"", 10, msg, sizeof(msg));
	assert_non_null(v);
	assert_int_equal(json_string_length(v), 3);
	json_decref(v);
	/* only len bytes are read: the rest of the buffer is not JSON */
	v = kp_ctl_json_parse("[1]garbage", 3, msg, sizeof(msg));
	assert_non_null(v);
	json_decref(v);
}

static void test_rfc3339(void **state)
{
	static const struct {
		const char *text;
		int64_t ms;
	} good[] = {
		{ "1970-01-01T00:00:00Z", 0 },
		{ "2026-11-25T07:00:00Z", 1795590000000LL },
		{ "2026-11-25T08:00:00+01:00", 1795590000000LL },
		{ "2026-11-25T02:30:00-04:30", 1795590000000LL },
		{ "2026-11-25t07:00:00z", 1795590000000LL },
		{ "2026-11-25 07:00:00Z", 1795590000000LL },
		{ "2026-11-25T07:00:00.5Z", 1795590000500LL },
		{ "2026-11-25T07:00:00.123456789Z", 1795590000123LL },
		{ "2026-11-25T07:00:00.07+00:00", 1795590000070LL },
		{ "2024-02-29T23:59:59Z", 1709251199000LL },
		{ "1969-12-31T23:59:59Z", -1000 },
		{ "1900-03-01T00:00:00Z", -2203891200000LL },
		{ "2016-12-31T23:59:60Z", 1483228800000LL },
	};
	static const char *const bad[] = {
		"2026-11-25T07:00:00",       /* no zone */
		"2026-11-25",                /* no time */
		"2026-13-01T00:00:00Z",      /* month */
		"2023-02-29T00:00:00Z",      /* not a leap year */
		"2026-04-31T00:00:00Z",      /* day */
		"2026-11-25T24:00:00Z",      /* hour */
		"2026-11-25T07:60:00Z",      /* minute */
		"2026-11-25T07:00:61Z",      /* second */
		"2026-11-25T07:00:00.Z",     /* empty fraction */
		"2026-11-25T07:00:00+0100",  /* zone without colon */
		"2026-11-25T07:00:00Zjunk",  /* trailing */
		"26-11-25T07:00:00Z",        /* short year */
		"",
	};
	int64_t ms;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ms = 42;
		if (kp_ctl_rfc3339_parse(good[i].text, &ms) != 0)
			fail_msg("rejected %s", good[i].text);
		if (ms != good[i].ms)
			fail_msg("%s: got %lld, want %lld", good[i].text,
				 (long long)ms, (long long)good[i].ms);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (kp_ctl_rfc3339_parse(bad[i], &ms) == 0)
			fail_msg("accepted %s", bad[i]);
	}
}

static void test_time_parse(void **state)
{
	int64_t ms;

	(void)state;
	assert_int_equal(kp_ctl_time_parse("1795590000000", &ms), 0);
	assert_true(ms == 1795590000000LL);
	assert_int_equal(kp_ctl_time_parse("-5", &ms), 0);
	assert_true(ms == -5);
	assert_int_equal(kp_ctl_time_parse("2026-11-25T07:00:00Z", &ms), 0);
	assert_true(ms == 1795590000000LL);
	assert_int_not_equal(kp_ctl_time_parse("12abc", &ms), 0);
	assert_int_not_equal(kp_ctl_time_parse("-", &ms), 0);
	assert_int_not_equal(kp_ctl_time_parse("99999999999999999999", &ms), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_integers_stay_integers),
		cmocka_unit_test(test_big_uint),
		cmocka_unit_test(test_floats),
		cmocka_unit_test(test_nested_round_trip),
		cmocka_unit_test(test_keys_and_bin),
		cmocka_unit_test(test_bytes_and_utf8),
		cmocka_unit_test(test_key_bytes),
		cmocka_unit_test(test_invalid_json),
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_time_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
