/*
 * test_lua_mp.c - msgpack <-> Lua conversion rules (server/luahost/lua_mp.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lualib.h>
#include <msgpack.h>

#include "base/buf.h"
#include "base/error.h"
#include "luahost/lua_mp.h"

static lua_State *new_state(void)
{
	lua_State *L = luaL_newstate();

	assert_non_null(L);
	luaL_openlibs(L);
	kp_luamp_open(L);
	lua_setglobal(L, "kappa");
	return L;
}

/* Runs Lua code that must return true (given global v). */
static void check_lua(lua_State *L, const char *code)
{
	if (luaL_dostring(L, code) != 0)
		fail_msg("%s: %s", code, lua_tostring(L, -1));
	if (!lua_toboolean(L, -1))
		fail_msg("false: %s", code);
	lua_pop(L, 1);
}

/* Decodes bytes into global v (must succeed). */
static void decode_to_v(lua_State *L, const char *buf, size_t len)
{
	char err[128];

	assert_int_equal(kp_luamp_push(L, buf, len, err, sizeof(err)), 0);
	lua_setglobal(L, "v");
}

/* Encodes the result of a Lua expression; returns 0 or the error. */
static int encode_expr(lua_State *L, const char *expr, struct kp_buf *out,
		       char *err, size_t err_len)
{
	char code[512];
	int rc;

	snprintf(code, sizeof(code), "return %s", expr);
	if (luaL_dostring(L, code) != 0)
		fail_msg("%s: %s", expr, lua_tostring(L, -1));
	kp_buf_reset(out);
	rc = kp_luamp_encode(L, -1, out, err, err_len);
	lua_pop(L, 1);
	return rc;
}

/* Decodes in, re-encodes, and asserts the bytes are identical. */
static void round_trip(lua_State *L, const char *in, size_t len)
{
	struct kp_buf out;
	char err[128];
	int top = lua_gettop(L);

	kp_buf_init(&out);
	assert_int_equal(kp_luamp_push(L, in, len, err, sizeof(err)), 0);
	assert_int_equal(lua_gettop(L), top + 1);
	if (kp_luamp_encode(L, -1, &out, err, sizeof(err)) != 0)
		fail_msg("encode: %s", err);
	assert_int_equal(out.len, len);
	assert_memory_equal(out.data, in, len);
	lua_pop(L, 1);
	assert_int_equal(lua_gettop(L), top);
	kp_buf_destroy(&out);
}

static void test_scalars_round_trip(void **state)
{
	lua_State *L = new_state();
	static const char *const cases[] = {
		"\xc0", "\xc2", "\xc3", "\x00", "\x7f", "\xff", "\xe0",
		"\xcc\x80", "\xcd\x01\x00", "\xce\x00\x01\x00\x00",
		"\xcf\x00\x00\x00\x01\x00\x00\x00\x00",
		"\xd0\xdf", "\xd1\xff\x00", "\xd2\xff\xff\x00\x00",
		"\xd3\xff\xff\xff\xfe\xff\xff\xff\xff",
		"\xa0", ("\xa3" "abc"),
		"\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00",     /* 1.5 */
	};
	static const size_t lens[] = {
		1, 1, 1, 1, 1, 1, 1, 2, 3, 5, 9, 2, 3, 5, 9, 1, 4, 9
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		round_trip(L, cases[i], lens[i]);
	lua_close(L);
}

static void test_integer_edges(void **state)
{
	lua_State *L = new_state();
	struct kp_buf out;
	char err[128];
	/* 2^53, 2^53 + 1, -2^53, -2^53 - 1, INT64_MIN, UINT64_MAX */
	static const char p53[] = "\xcf\x00\x20\x00\x00\x00\x00\x00\x00";
	static const char p53p1[] = "\xcf\x00\x20\x00\x00\x00\x00\x00\x01";
	static const char m53[] = "\xd3\xff\xe0\x00\x00\x00\x00\x00\x00";
	static const char m53m1[] = "\xd3\xff\xdf\xff\xff\xff\xff\xff\xff";
	static const char imin[] = "\xd3\x80\x00\x00\x00\x00\x00\x00\x00";
	static const char umax[] = "\xcf\xff\xff\xff\xff\xff\xff\xff\xff";

	(void)state;
	kp_buf_init(&out);
	round_trip(L, p53, 9);
	round_trip(L, m53, 9);
	decode_to_v(L, p53, 9);
	check_lua(L, "return type(v) == 'number' and v == 2^53");
	decode_to_v(L, p53p1, 9);
	check_lua(L, "return v == '9007199254740993'");
	decode_to_v(L, m53m1, 9);
	check_lua(L, "return v == '-9007199254740993'");
	decode_to_v(L, imin, 9);
	check_lua(L, "return v == '-9223372036854775808'");
	decode_to_v(L, umax, 9);
	check_lua(L, "return v == '18446744073709551615'");

	/* integral numbers pack as ints, the smallest form */
	assert_int_equal(encode_expr(L, "3.0", &out, err, sizeof(err)), 0);
	assert_int_equal(out.len, 1);
	assert_int_equal((unsigned char)out.data[0], 3);
	assert_int_equal(encode_expr(L, "-0.0", &out, err, sizeof(err)), 0);
	assert_int_equal(out.len, 1);
	assert_int_equal((unsigned char)out.data[0], 0);
	assert_int_equal(encode_expr(L, "-2^63", &out, err, sizeof(err)), 0);
	assert_memory_equal(out.data, imin, 9);
	assert_int_equal(encode_expr(L, "1e18", &out, err, sizeof(err)), 0);
	assert_int_equal((unsigned char)out.data[0], 0xcf);
	/* 2^63, fractions, inf and NaN pack as float64 */
	assert_int_equal(encode_expr(L, "2^63", &out, err, sizeof(err)), 0);
	assert_int_equal((unsigned char)out.data[0], 0xcb);
	assert_int_equal(encode_expr(L, "0.25", &out, err, sizeof(err)), 0);
	assert_int_equal((unsigned char)out.data[0], 0xcb);
	assert_int_equal(encode_expr(L, "1/0", &out, err, sizeof(err)), 0);
	assert_int_equal((unsigned char)out.data[0], 0xcb);
	assert_int_equal(encode_expr(L, "0/0", &out, err, sizeof(err)), 0);
	assert_int_equal((unsigned char)out.data[0], 0xcb);
	/* a float32 decodes to its number */
	decode_to_v(L, "\xca\x3f\xc0\x00\x00", 5);
	check_lua(L, "return v == 1.5");
	/* push_int follows the same rule */
	kp_luamp_push_int(L, INT64_MAX);
	lua_setglobal(L, "v");
	check_lua(L, "return v == '9223372036854775807'");
	kp_luamp_push_int(L, -42);
	lua_setglobal(L, "v");
	check_lua(L, "return v == -42");
	kp_buf_destroy(&out);
	lua_close(L);
}

static void test_strings_and_bin(void **state)
{
	lua_State *L = new_state();
	char in[300];
	struct kp_buf out;
	char err[64];

	(void)state;
	kp_buf_init(&out);
	in[0] = (char)0xd9;
	in[1] = (char)200;
	memset(in + 2, 'z', 200);
	round_trip(L, in, 202);
	in[0] = (char)0xda;
	in[1] = 0x01;
	in[2] = 0x00;
	memset(in + 3, '\0', 256);
	round_trip(L, in, 259);
	/* bin decodes to a string, which encodes as str */
	decode_to_v(L, "\xc4\x03\x00\x01\x02", 5);
	check_lua(L, "return v == '\\0\\1\\2'");
	assert_int_equal(encode_expr(L, "v", &out, err, sizeof(err)), 0);
	assert_int_equal(out.len, 4);
	assert_memory_equal(out.data, "\xa3\x00\x01\x02", 4);
	kp_buf_destroy(&out);
	lua_close(L);
}

static void test_containers(void **state)
{
	lua_State *L = new_state();
	struct kp_buf out;
	char err[128];

	(void)state;
	kp_buf_init(&out);
	/* empty array and empty map keep their kinds */
	round_trip(L, "\x90", 1);
	round_trip(L, "\x80", 1);
	decode_to_v(L, "\x90", 1);
	check_lua(L, "return next(v) == nil and "
		     "getmetatable(v) == getmetatable(kappa.array())");
	/* nested, keys already in canonical order */
	round_trip(L, "\x82\xa1" "a\x93\x01\xa1x\x80\xa1" "b\x81\xa1" "c\x90",
		   14);
	/* a map with keys 1..n stays a map */
	round_trip(L, "\x82\x01\xa1" "a\x02\xa1" "b", 7);
	/* nil in an array and as a map value: kappa.null, kept */
	round_trip(L, "\x93\x01\xc0\x03", 4);
	decode_to_v(L, "\x93\x01\xc0\x03", 4);
	check_lua(L, "return #v == 3 and v[2] == kappa.null");
	round_trip(L, "\x81\xa1k\xc0", 4);
	decode_to_v(L, "\x81\xa1k\xc0", 4);
	check_lua(L, "return v.k == kappa.null");
	decode_to_v(L, "\x82\xa1" "a\x01\xa1" "b\x92\xc3\xc2", 9);
	check_lua(L, "return v.a == 1 and v.b[1] == true and v.b[2] == false");

	/* unmarked tables: {} is a map, 1..n an array, holes a map */
	assert_int_equal(encode_expr(L, "{}", &out, err, sizeof(err)), 0);
	assert_memory_equal(out.data, "\x80", 1);
	assert_int_equal(encode_expr(L, "kappa.array()", &out, err,
				     sizeof(err)), 0);
	assert_memory_equal(out.data, "\x90", 1);
	assert_int_equal(encode_expr(L, "kappa.map({1, 2})", &out, err,
				     sizeof(err)), 0);
	assert_int_equal(out.len, 5);
	assert_memory_equal(out.data, "\x82\x01\x01\x02\x02", 5);
	assert_int_equal(encode_expr(L, "{1, 2, 3}", &out, err, sizeof(err)),
			 0);
	assert_memory_equal(out.data, "\x93\x01\x02\x03", 4);
	assert_int_equal(encode_expr(L, "{[1] = 1, [3] = 3}", &out, err,
				     sizeof(err)), 0);
	assert_memory_equal(out.data, "\x82\x01\x01\x03\x03", 5);
	/* a marked array encodes holes as nil */
	assert_int_equal(encode_expr(L, "kappa.array({[1] = 1, [3] = 3})", &out,
				     err, sizeof(err)), 0);
	assert_memory_equal(out.data, "\x93\x01\xc0\x03", 4);
	assert_int_equal(encode_expr(L, "{1, kappa.null, 3}", &out, err,
				     sizeof(err)), 0);
	assert_memory_equal(out.data, "\x93\x01\xc0\x03", 4);
	/* canonical order: string keys by bytes, then other keys */
	assert_int_equal(encode_expr(L, "{zz = 1, a = 2, b = 3, [5] = 4, "
				     "[true] = 5, ab = 6}", &out, err,
				     sizeof(err)), 0);
	assert_int_equal(out.len, 19);
	assert_memory_equal(out.data,
			    "\x86\xa1" "a\x02\xa2" "ab\x06\xa1" "b\x03\xa2" "zz\x01"
			    "\x05\x04\xc3\x05", 19);
	/* a big map (past the on-stack pair array) sorts too */
	assert_int_equal(encode_expr(L, "(function() local t = {} for i = 1, 40 "
				     "do t['k' .. string.format('%02d', 41 - i)] "
				     "= i end return t end)()", &out, err,
				     sizeof(err)), 0);
	assert_memory_equal(out.data, "\xde\x00\x28\xa3k01\x28\xa3k02\x27", 13);
	kp_buf_destroy(&out);
	lua_close(L);
}

static void test_encode_errors(void **state)
{
	lua_State *L = new_state();
	struct kp_buf out;
	char err[128];
	int top;

	(void)state;
	kp_buf_init(&out);
	kp_buf_append(&out, "xy", 2);
	top = lua_gettop(L);
	luaL_dostring(L, "local t = {a = 1} t.self = t return t");
	assert_int_equal(kp_luamp_encode(L, -1, &out, err, sizeof(err)),
			 KP_EBADREQUEST);
	assert_non_null(strstr(err, "cycle"));
	assert_int_equal(out.len, 2);
	lua_pop(L, 1);
	assert_int_equal(lua_gettop(L), top);
	assert_int_equal(encode_expr(L, "{f = print}", &out, err, sizeof(err)),
			 KP_EBADREQUEST);
	assert_non_null(strstr(err, "function"));
	assert_int_equal(encode_expr(L, "{coroutine.create(print)}", &out, err,
				     sizeof(err)), KP_EBADREQUEST);
	assert_int_equal(encode_expr(L, "kappa.array({a = 1})", &out, err,
				     sizeof(err)), KP_EBADREQUEST);
	assert_int_equal(encode_expr(L, "kappa.array({[1e6] = 1})", &out, err,
				     sizeof(err)), KP_EBADREQUEST);
	assert_int_equal(lua_gettop(L), top);
	kp_buf_destroy(&out);
	lua_close(L);
}

static void test_decode_errors(void **state)
{
	lua_State *L = new_state();
	char err[128];
	char deep[100];
	int top = lua_gettop(L);

	(void)state;
	assert_int_equal(kp_luamp_push(L, "\x92\x01", 2, err, sizeof(err)),
			 KP_EBADMSGPACK);
	assert_int_equal(kp_luamp_push(L, "\x01\x02", 2, err, sizeof(err)),
			 KP_EBADMSGPACK);
	assert_int_equal(kp_luamp_push(L, "\xc1", 1, err, sizeof(err)),
			 KP_EBADMSGPACK);
	assert_int_equal(kp_luamp_push(L, "\x91\xd4\x01\x00", 4, err,
				       sizeof(err)), KP_EBADMSGPACK);
	assert_non_null(strstr(err, "ext"));
	assert_int_equal(kp_luamp_push(L, "\x81\xc0\x01", 3, err, sizeof(err)),
			 KP_EBADMSGPACK);
	assert_non_null(strstr(err, "nil key"));
	assert_int_equal(kp_luamp_push(L,
				       "\x81\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00\x01",
				       11, err, sizeof(err)), KP_EBADMSGPACK);
	memset(deep, 0x91, sizeof(deep));
	deep[sizeof(deep) - 1] = 0x01;
	assert_int_equal(kp_luamp_push(L, deep, sizeof(deep), err, sizeof(err)),
			 KP_EBADMSGPACK);
	assert_int_equal(lua_gettop(L), top);
	/* 60 levels decode and re-encode */
	round_trip(L, deep + 40, 60);
	lua_close(L);
}

/*
 * Keys that pack alike (distinct empty tables) are ordered by their values:
 * the bytes do not depend on where the tables happen to be in memory
 * (found by tests/fuzz/fuzz_luamp.c).
 */
static void test_alike_keys_canonical(void **state)
{
	lua_State *L = new_state();
	struct kp_buf out, expect;
	char err[128];

	(void)state;
	kp_buf_init(&out);
	kp_buf_init(&expect);
	kp_buf_append(&expect, "\xde\x00\x14", 3);   /* a map of 20 */
	for (char v = 1; v <= 20; v++) {                 /* {}: v */
		kp_buf_append(&expect, "\x80", 1);
		kp_buf_append(&expect, &v, 1);
	}
	assert_int_equal(encode_expr(L, "(function() local t = {} "
				     "for i = 20, 1, -1 do t[kappa.map()] = i "
				     "end return t end)()", &out, err,
				     sizeof(err)), 0);
	assert_int_equal(out.len, expect.len);
	assert_memory_equal(out.data, expect.data, out.len);
	kp_buf_destroy(&out);
	kp_buf_destroy(&expect);
	lua_close(L);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_scalars_round_trip),
		cmocka_unit_test(test_integer_edges),
		cmocka_unit_test(test_strings_and_bin),
		cmocka_unit_test(test_containers),
		cmocka_unit_test(test_encode_errors),
		cmocka_unit_test(test_decode_errors),
		cmocka_unit_test(test_alike_keys_canonical),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
