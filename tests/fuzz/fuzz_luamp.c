/*
 * fuzz_luamp.c - libFuzzer target for msgpack <-> Lua conversion
 * (server/luahost/lua_mp.c) and the lazy record value path
 * (kp_lua_host_lazy_ok, kp_luahost_field in server/luahost/lua_host.c).
 *
 * The input, as one msgpack object, is pushed into a LuaJIT state with
 * kp_luamp_push. Checked: it is accepted exactly when the kp_mp walker
 * validates it and it holds no ext (and no NaN or nil map key); the stack
 * is balanced either way; an accepted value always encodes, to valid
 * msgpack, and after two rounds of decoding and encoding the bytes are a
 * fixed point (one round is not enough by the integer rule: a float with
 * an integral value beyond 2^53 encodes as an int, which decodes to its
 * digits as a string, which encodes as a str). When the value qualifies
 * for the lazy path, every field lookup stays inside the bytes and agrees
 * with the decoded table, and a lazy proxy of the bytes encodes to the same bytes
 * as the decoded value. One state serves many inputs and is replaced every
 * STATE_RUNS inputs or when it holds more than STATE_MAX_KB.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/mp.h"
#include "luahost/lua_host.h"
#include "luahost/lua_mp.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STATE_RUNS 2000
#define STATE_MAX_KB (64 * 1024)
#define FUZZ_MAX_INPUT (1u << 20)

/* One input's work, run under lua_cpcall. */
struct job {
	const char *buf;      /* exact-size heap copy of the input */
	size_t len;           /* its bytes */
	bool valid;           /* the kp_mp walker accepts it */
	bool lazy;            /* it qualifies for the lazy path */
};

/* Encodes the value at the top; the encoding must succeed. */
static void encode_top(lua_State *L, struct kp_buf *out)
{
	char err[128];
	int top = lua_gettop(L);
	int rc;

	kp_buf_reset(out);
	rc = kp_luamp_encode(L, -1, out, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "encode failed (%d): %s\n", rc, err);
	CHECK(rc == 0);
	CHECK(lua_gettop(L) == top);
	CHECK(kp_mp_validate_one(out->data, out->len, NULL) == 0);
}

/* Decodes bytes that an encoding produced: must succeed. */
static void push_ok(lua_State *L, const char *buf, size_t len)
{
	char err[128];
	int rc = kp_luamp_push(L, buf, len, err, sizeof(err));

	if (rc != 0)
		fprintf(stderr, "re-decode failed (%d): %s\n", rc, err);
	CHECK(rc == 0);
}

static bool has_nan_or_ext(struct kp_mp_view v)
{
	struct kp_mp_iter it;
	struct kp_mp_view a, b;
	double d;

	switch (kp_mp_type(v)) {
	case KP_MP_EXT:
		return true;
	case KP_MP_ARRAY:
		CHECK(kp_mp_array_begin(v, &it) == 0);
		while (kp_mp_array_next(&it, &a)) {
			if (has_nan_or_ext(a))
				return true;
		}
		return false;
	case KP_MP_MAP:
		CHECK(kp_mp_map_begin(v, &it) == 0);
		while (kp_mp_map_next(&it, &a, &b)) {
			if (kp_mp_is_nil(a) ||
			    (kp_mp_type(a) == KP_MP_FLOAT &&
			     kp_mp_read_double(a, &d) == 0 && d != d))
				return true;
			if (has_nan_or_ext(a) || has_nan_or_ext(b))
				return true;
		}
		return false;
	default:
		return false;
	}
}

/*
 * The lazy field lookup of every key of the map at buf agrees with the
 * decoded table at index t (keys unique, so the first pair is the one).
 */
static void check_fields(lua_State *L, int t, const char *buf, size_t len)
{
	struct kp_mp_view map = { buf, len }, k, v, s;
	struct kp_mp_iter it;
	double out[2];
	int kind;

	CHECK(kp_mp_map_begin(map, &it) == 0);
	while (kp_mp_map_next(&it, &k, &v)) {
		CHECK(kp_mp_read_str(k, &s) == 0 || kp_mp_read_bin(k, &s) == 0);
		kind = kp_luahost_field(buf, len, s.ptr, s.len, out);
		lua_pushlstring(L, s.ptr, s.len);
		lua_rawget(L, t);
		switch (kind) {
		case KP_LUAHOST_NUM:
			CHECK(lua_type(L, -1) == LUA_TNUMBER);
			CHECK(lua_tonumber(L, -1) == out[0] ||
			      (lua_tonumber(L, -1) != lua_tonumber(L, -1) &&
			       out[0] != out[0]));
			break;
		case KP_LUAHOST_STR: {
			size_t n;
			const char *p = lua_tolstring(L, -1, &n);

			CHECK(out[0] >= 0 && out[1] >= 0 &&
			      out[0] + out[1] <= (double)len);
			CHECK(p != NULL && n == (size_t)out[1] &&
			      memcmp(p, buf + (size_t)out[0], n) == 0);
			break;
		}
		case KP_LUAHOST_TRUE:
		case KP_LUAHOST_FALSE:
			CHECK(lua_type(L, -1) == LUA_TBOOLEAN);
			CHECK(lua_toboolean(L, -1) == (kind == KP_LUAHOST_TRUE));
			break;
		case KP_LUAHOST_NIL:
			CHECK(lua_type(L, -1) == LUA_TLIGHTUSERDATA);
			break;
		case KP_LUAHOST_OTHER:
			CHECK(out[0] >= 0 && out[0] < (double)len);
			CHECK(lua_type(L, -1) != LUA_TNIL);
			break;
		default:
			CHECK(false);
		}
		lua_pop(L, 1);
	}
}

/* true when the map at buf has no key twice. */
static bool unique_keys(lua_State *L, const char *buf, size_t len)
{
	struct kp_mp_view map = { buf, len }, k, v, s;
	struct kp_mp_iter it;
	bool unique = true;
	int top = lua_gettop(L);

	lua_newtable(L);
	CHECK(kp_mp_map_begin(map, &it) == 0);
	while (unique && kp_mp_map_next(&it, &k, &v)) {
		CHECK(kp_mp_read_str(k, &s) == 0 || kp_mp_read_bin(k, &s) == 0);
		lua_pushlstring(L, s.ptr, s.len);
		lua_rawget(L, -2);
		unique = lua_isnil(L, -1);
		lua_pop(L, 1);
		lua_pushlstring(L, s.ptr, s.len);
		lua_pushboolean(L, 1);
		lua_rawset(L, -3);
	}
	lua_settop(L, top);
	return unique;
}

/* A lazy proxy of the bytes (what the prelude builds for rec.value). */
static void push_proxy(lua_State *L, const char *buf, size_t len)
{
	lua_newtable(L);                     /* +1: proxy */
	kp_luamp_push_lazy(L);               /* +2..+4: keys, +5: metatable */
	lua_setmetatable(L, -5);
	lua_pop(L, 2);                       /* a record's own copy: no */
	lua_pushlstring(L, buf, len);        /* offset or length needed */
	lua_rawset(L, -3);                   /* proxy[anchor key] = bytes */
}

static int run(lua_State *L)
{
	struct job *j = lua_touserdata(L, 1);
	struct kp_buf one, two, three;
	char err[128];
	int base, rc;

	lua_settop(L, 0);
	base = lua_gettop(L);
	rc = kp_luamp_push(L, j->buf, j->len, err, sizeof(err));
	CHECK(rc == 0 || rc == KP_EBADMSGPACK);
	CHECK(lua_gettop(L) == base + (rc == 0 ? 1 : 0));
	CHECK(strlen(err) < sizeof(err));
	if (!j->valid)
		CHECK(rc != 0);
	if (j->valid) {
		struct kp_mp_view v = { j->buf, j->len };

		CHECK((rc == 0) == !has_nan_or_ext(v));
	}
	if (rc != 0)
		return 0;
	kp_buf_init(&one);
	kp_buf_init(&two);
	kp_buf_init(&three);
	encode_top(L, &one);                 /* 1: the value */
	push_ok(L, one.data, one.len);       /* 2: decoded again */
	encode_top(L, &two);
	push_ok(L, two.data, two.len);       /* 3: and again */
	encode_top(L, &three);
	lua_pop(L, 1);
	CHECK(two.len == three.len &&
	      memcmp(two.data, three.data, two.len) == 0);
	if (j->lazy) {
		if (unique_keys(L, j->buf, j->len))
			check_fields(L, 1, j->buf, j->len);
		push_proxy(L, j->buf, j->len); /* 3: proxy */
		encode_top(L, &two);
		CHECK(one.len == two.len &&
		      memcmp(one.data, two.data, one.len) == 0);
		kp_luamp_materialize(L, 3);
		encode_top(L, &two);
		CHECK(one.len == two.len &&
		      memcmp(one.data, two.data, one.len) == 0);
	}
	kp_buf_destroy(&one);
	kp_buf_destroy(&two);
	kp_buf_destroy(&three);
	lua_settop(L, 0);
	return 0;
}

static lua_State *new_state(void)
{
	lua_State *L = luaL_newstate();

	CHECK(L != NULL);
	kp_luamp_open(L);
	lua_setglobal(L, "kappa");
	return L;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static lua_State *L;
	static unsigned runs;
	struct job j;
	char *copy;
	int rc;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	if (L != NULL && (++runs % STATE_RUNS == 0 ||
			  lua_gc(L, LUA_GCCOUNT, 0) > STATE_MAX_KB)) {
		lua_close(L);
		L = NULL;
	}
	if (L == NULL)
		L = new_state();
	copy = malloc(size ? size : 1);
	CHECK(copy != NULL);
	memcpy(copy, data, size);
	j.buf = copy;
	j.len = size;
	j.valid = kp_mp_validate_one(copy, size, NULL) == 0;
	j.lazy = kp_lua_host_lazy_ok(copy, size);
	CHECK(j.valid || !j.lazy);     /* lazy_ok validates as it walks */
	rc = lua_cpcall(L, run, &j);
	if (rc != 0)
		fprintf(stderr, "lua error: %s\n", lua_tostring(L, -1));
	CHECK(rc == 0);
	lua_settop(L, 0);
	free(copy);
	return 0;
}
