/*
 * lua_mp.c - msgpack <-> Lua conversion (rules in lua_mp.h).
 *
 * Decoding trusts bytes that kp_mp_validate_one accepted, so the reader
 * below does no bounds checks of its own. Encoding never raises: it uses
 * only raw, non-allocating Lua accessors and reports errors by code.
 */
#include "lua_mp.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "base/alloc.h"
#include "base/error.h"

/* Registry keys of the marker metatables (their addresses). */
static const char array_marker_key;
static const char map_marker_key;
static const char lazy_marker_key;   /* the lazy proxies' metatable */
static const char lazy_bytes_key;    /* a proxy's raw key of its anchor */
static const char lazy_off_key;      /* ... of its bytes' offset in it */
static const char lazy_len_key;      /* ... of their length */

/* The registry holds the marker metatables under these lightuserdata keys. */
static void push_marker(lua_State *L, const char *key)
{
	lua_pushlightuserdata(L, (void *)key);
	lua_rawget(L, LUA_REGISTRYINDEX);
}

static int mark(lua_State *L, const char *key)
{
	if (lua_isnoneornil(L, 1)) {
		lua_settop(L, 0);
		lua_newtable(L);
	} else {
		luaL_checktype(L, 1, LUA_TTABLE);
		lua_settop(L, 1);
		kp_luamp_materialize(L, 1);
	}
	push_marker(L, key);
	lua_setmetatable(L, 1);
	return 1;
}

static int l_array(lua_State *L)
{
	return mark(L, &array_marker_key);
}

static int l_map(lua_State *L)
{
	return mark(L, &map_marker_key);
}

void kp_luamp_open(lua_State *L)
{
	lua_pushlightuserdata(L, (void *)&array_marker_key);
	lua_createtable(L, 0, 1);
	lua_pushliteral(L, "kappa.array");
	lua_setfield(L, -2, "__name");
	lua_rawset(L, LUA_REGISTRYINDEX);
	lua_pushlightuserdata(L, (void *)&map_marker_key);
	lua_createtable(L, 0, 1);
	lua_pushliteral(L, "kappa.map");
	lua_setfield(L, -2, "__name");
	lua_rawset(L, LUA_REGISTRYINDEX);

	lua_pushlightuserdata(L, (void *)&lazy_marker_key);
	lua_createtable(L, 0, 3);
	lua_pushlightuserdata(L, (void *)&map_marker_key);
	lua_rawget(L, LUA_REGISTRYINDEX);
	lua_setfield(L, -2, "__metatable");
	lua_rawset(L, LUA_REGISTRYINDEX);

	lua_createtable(L, 0, 3);
	kp_luamp_push_null(L);
	lua_setfield(L, -2, "null");
	lua_pushcfunction(L, l_array);
	lua_setfield(L, -2, "array");
	lua_pushcfunction(L, l_map);
	lua_setfield(L, -2, "map");
}

void kp_luamp_push_lazy(lua_State *L)
{
	lua_pushlightuserdata(L, (void *)&lazy_bytes_key);
	lua_pushlightuserdata(L, (void *)&lazy_off_key);
	lua_pushlightuserdata(L, (void *)&lazy_len_key);
	push_marker(L, &lazy_marker_key);
}

/* Pushes t[key] (raw) for one of the proxies' keys. */
static void raw_field(lua_State *L, int idx, const char *key)
{
	lua_pushlightuserdata(L, (void *)key);
	lua_rawget(L, idx);
}

int kp_luamp_lazy_bytes(lua_State *L, int idx, const char **p, size_t *len)
{
	const char *anchor;
	size_t size;
	double off, n;

	if (idx < 0 && idx > LUA_REGISTRYINDEX)
		idx = lua_gettop(L) + idx + 1;
	if (lua_type(L, idx) != LUA_TTABLE || !lua_checkstack(L, 3))
		return 0;
	raw_field(L, idx, &lazy_bytes_key);
	raw_field(L, idx, &lazy_off_key);
	raw_field(L, idx, &lazy_len_key);
	anchor = lua_type(L, -3) == LUA_TSTRING ? lua_tolstring(L, -3, &size)
						 : NULL;
	/* A proxy of a record's own copy may hold the string alone. */
	off = lua_isnil(L, -2) ? 0 : lua_tonumber(L, -2);
	n = lua_isnil(L, -1) ? (double)size : lua_tonumber(L, -1);
	lua_pop(L, 3);
	/* (the anchor stays referenced by the proxy, so the bytes live on) */
	if (anchor == NULL || !(off >= 0 && n >= 0 && off + n <= (double)size))
		return 0;
	*p = anchor + (size_t)off;
	*len = (size_t)n;
	return 1;
}

void kp_luamp_lazy_detach(lua_State *L, int idx, int anchor_idx)
{
	const char *b;
	size_t len;
	int shared;

	if (idx < 0 && idx > LUA_REGISTRYINDEX)
		idx = lua_gettop(L) + idx + 1;
	if (anchor_idx < 0 && anchor_idx > LUA_REGISTRYINDEX)
		anchor_idx = lua_gettop(L) + anchor_idx + 1;
	if (!kp_luamp_lazy_bytes(L, idx, &b, &len))
		return;
	raw_field(L, idx, &lazy_bytes_key);
	shared = lua_rawequal(L, -1, anchor_idx);
	lua_pop(L, 1);
	if (!shared)
		return;
	lua_pushlightuserdata(L, (void *)&lazy_bytes_key);
	lua_pushlstring(L, b, len);
	lua_rawset(L, idx);
	lua_pushlightuserdata(L, (void *)&lazy_off_key);
	lua_pushnumber(L, 0);
	lua_rawset(L, idx);
}

void kp_luamp_materialize(lua_State *L, int idx)
{
	const char *b;
	size_t len;
	char msg[80];

	if (idx < 0 && idx > LUA_REGISTRYINDEX)
		idx = lua_gettop(L) + idx + 1;
	luaL_checkstack(L, 8, "materializing a record value");
	if (!kp_luamp_lazy_bytes(L, idx, &b, &len))
		return;
	lua_pushlightuserdata(L, (void *)&lazy_bytes_key);
	lua_rawget(L, idx);                          /* +1: the anchor */
	if (kp_luamp_push(L, b, len, msg, sizeof(msg)) != 0) /* +2: T */
		luaL_error(L, "record value: %s", msg);
	lua_pushnil(L);                              /* +3: key */
	while (lua_next(L, -2) != 0) {               /* +3: k, +4: v */
		lua_pushvalue(L, -2);
		lua_rawget(L, idx);                  /* +5: the raw one */
		if (lua_isnil(L, -1)) {
			lua_pop(L, 1);
			lua_pushvalue(L, -2);        /* +5: k, +6: v */
			lua_pushvalue(L, -2);
			lua_rawset(L, idx);
			lua_pop(L, 1);
		} else {
			lua_pop(L, 2);
		}
	}
	lua_pop(L, 2);
	lua_pushlightuserdata(L, (void *)&lazy_bytes_key);
	lua_pushnil(L);
	lua_rawset(L, idx);
	lua_pushlightuserdata(L, (void *)&lazy_off_key);
	lua_pushnil(L);
	lua_rawset(L, idx);
	lua_pushlightuserdata(L, (void *)&lazy_len_key);
	lua_pushnil(L);
	lua_rawset(L, idx);
	push_marker(L, &map_marker_key);
	lua_setmetatable(L, idx);
}

void kp_luamp_push_null(lua_State *L)
{
	lua_pushlightuserdata(L, NULL);
}

void kp_luamp_push_int(lua_State *L, int64_t v)
{
	char digits[24];
	int n;

	if (v >= -KP_LUAMP_EXACT_INT && v <= KP_LUAMP_EXACT_INT) {
		lua_pushnumber(L, (lua_Number)v);
		return;
	}
	n = snprintf(digits, sizeof(digits), "%lld", (long long)v);
	lua_pushlstring(L, digits, (size_t)n);
}

static void push_uint(lua_State *L, uint64_t v)
{
	char digits[24];
	int n;

	if (v <= (uint64_t)KP_LUAMP_EXACT_INT) {
		lua_pushnumber(L, (lua_Number)v);
		return;
	}
	n = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)v);
	lua_pushlstring(L, digits, (size_t)n);
}

int kp_luamp_to_int(lua_State *L, int idx, int64_t *out)
{
	double d;

	if (lua_type(L, idx) != LUA_TNUMBER)
		return 0;
	d = lua_tonumber(L, idx);
	if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
		return 0;
	if (d != (double)(int64_t)d)
		return 0;
	*out = (int64_t)d;
	return 1;
}

/* ------------------------------------------------------------------------
 * Decoding
 */

struct dec {
	lua_State *L;
	const unsigned char *p;  /* next byte; input already validated */
	int mt_array;            /* stack index of kappa.array's metatable */
	int mt_map;              /* stack index of kappa.map's metatable */
	char *err;
	size_t err_len;
};

static uint64_t rd_be(const unsigned char *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

static int dec_fail(struct dec *d, const char *msg)
{
	if (d->err_len > 0)
		snprintf(d->err, d->err_len, "%s", msg);
	return KP_EBADMSGPACK;
}

static int dec_value(struct dec *d, int nested);

static void dec_str(struct dec *d, int hdr, size_t len)
{
	lua_pushlstring(d->L, (const char *)d->p + hdr, len);
	d->p += hdr + len;
}

static int dec_array(struct dec *d, int hdr, uint32_t n)
{
	lua_State *L = d->L;
	uint32_t i;
	int rc;

	d->p += hdr;
	lua_createtable(L, (int)(n > 1u << 20 ? 1u << 20 : n), 0);
	for (i = 1; i <= n; i++) {
		rc = dec_value(d, 1);
		if (rc != 0)
			return rc;
		lua_rawseti(L, -2, (int)i);
	}
	lua_pushvalue(L, d->mt_array);
	lua_setmetatable(L, -2);
	return 0;
}

static int dec_map(struct dec *d, int hdr, uint32_t n)
{
	lua_State *L = d->L;
	uint32_t i;
	int rc;

	d->p += hdr;
	lua_createtable(L, 0, (int)(n > 1u << 20 ? 1u << 20 : n));
	for (i = 0; i < n; i++) {
		rc = dec_value(d, 0);
		if (rc != 0)
			return rc;
		if (lua_isnil(L, -1))
			return dec_fail(d, "msgpack map has a nil key");
		if (lua_type(L, -1) == LUA_TNUMBER && isnan(lua_tonumber(L, -1)))
			return dec_fail(d, "msgpack map has a NaN key");
		rc = dec_value(d, 1);
		if (rc != 0)
			return rc;
		lua_rawset(L, -3);
	}
	lua_pushvalue(L, d->mt_map);
	lua_setmetatable(L, -2);
	return 0;
}

static int dec_float(struct dec *d)
{
	const unsigned char *p = d->p;

	if (p[0] == 0xca) {
		uint32_t bits = (uint32_t)rd_be(p + 1, 4);
		float f;

		memcpy(&f, &bits, sizeof(f));
		lua_pushnumber(d->L, f);
		d->p += 5;
	} else {
		uint64_t bits = rd_be(p + 1, 8);
		double v;

		memcpy(&v, &bits, sizeof(v));
		lua_pushnumber(d->L, v);
		d->p += 9;
	}
	return 0;
}

/* Pushes one value; nested says whether a nil becomes kappa.null. */
static int dec_value(struct dec *d, int nested)
{
	lua_State *L = d->L;
	const unsigned char *p = d->p;
	unsigned b = p[0];

	if (!lua_checkstack(L, 4))
		return dec_fail(d, "msgpack value nested too deeply");
	if (b <= 0x7f) {
		lua_pushnumber(L, b);
		d->p++;
		return 0;
	}
	if (b >= 0xe0) {
		lua_pushnumber(L, (int8_t)b);
		d->p++;
		return 0;
	}
	if (b >= 0xa0 && b <= 0xbf) {
		dec_str(d, 1, b & 0x1f);
		return 0;
	}
	if (b >= 0x90 && b <= 0x9f)
		return dec_array(d, 1, b & 0x0f);
	if (b >= 0x80 && b <= 0x8f)
		return dec_map(d, 1, b & 0x0f);
	switch (b) {
	case 0xc0:
		if (nested)
			kp_luamp_push_null(L);
		else
			lua_pushnil(L);
		d->p++;
		return 0;
	case 0xc2:
	case 0xc3:
		lua_pushboolean(L, b == 0xc3);
		d->p++;
		return 0;
	case 0xc4: case 0xd9: dec_str(d, 2, (size_t)p[1]); return 0;
	case 0xc5: case 0xda: dec_str(d, 3, (size_t)rd_be(p + 1, 2)); return 0;
	case 0xc6: case 0xdb: dec_str(d, 5, (size_t)rd_be(p + 1, 4)); return 0;
	case 0xca: case 0xcb: return dec_float(d);
	case 0xcc: lua_pushnumber(L, p[1]); d->p += 2; return 0;
	case 0xcd: lua_pushnumber(L, (double)rd_be(p + 1, 2)); d->p += 3; return 0;
	case 0xce: lua_pushnumber(L, (double)rd_be(p + 1, 4)); d->p += 5; return 0;
	case 0xcf: push_uint(L, rd_be(p + 1, 8)); d->p += 9; return 0;
	case 0xd0: lua_pushnumber(L, (int8_t)p[1]); d->p += 2; return 0;
	case 0xd1:
		lua_pushnumber(L, (int16_t)(uint16_t)rd_be(p + 1, 2));
		d->p += 3;
		return 0;
	case 0xd2:
		lua_pushnumber(L, (int32_t)(uint32_t)rd_be(p + 1, 4));
		d->p += 5;
		return 0;
	case 0xd3:
		kp_luamp_push_int(L, (int64_t)rd_be(p + 1, 8));
		d->p += 9;
		return 0;
	case 0xdc: return dec_array(d, 3, (uint32_t)rd_be(p + 1, 2));
	case 0xdd: return dec_array(d, 5, (uint32_t)rd_be(p + 1, 4));
	case 0xde: return dec_map(d, 3, (uint32_t)rd_be(p + 1, 2));
	case 0xdf: return dec_map(d, 5, (uint32_t)rd_be(p + 1, 4));
	default:
		return dec_fail(d, "msgpack ext values are not supported");
	}
}

int kp_luamp_push(lua_State *L, const char *buf, size_t len, char *err,
		  size_t err_len)
{
	struct kp_mp_view obj;
	struct dec d;
	int top = lua_gettop(L);
	int rc;

	if (kp_mp_validate_one(buf, len, &obj) != 0) {
		if (err_len > 0)
			snprintf(err, err_len, "malformed msgpack");
		return KP_EBADMSGPACK;
	}
	if (!lua_checkstack(L, 8)) {
		if (err_len > 0)
			snprintf(err, err_len, "Lua stack exhausted");
		return KP_EBADMSGPACK;
	}
	push_marker(L, &array_marker_key);       /* top+1: array marker */
	push_marker(L, &map_marker_key);         /* top+2: map marker */
	d.L = L;
	d.p = (const unsigned char *)obj.ptr;
	d.mt_array = top + 1;
	d.mt_map = top + 2;
	d.err = err;
	d.err_len = err_len;
	rc = dec_value(&d, 0);                   /* top+3: the value */
	if (rc != 0) {
		lua_settop(L, top);
		return rc;
	}
	lua_replace(L, top + 1);
	lua_settop(L, top + 1);
	return 0;
}

/* ------------------------------------------------------------------------
 * Encoding
 */

struct enc {
	lua_State *L;
	struct kp_buf *buf;
	char *err;
	size_t err_len;
};

/* One packed pair of a map being sorted: offsets into buf. */
struct pair {
	size_t start;      /* first byte of the key */
	size_t kpay;       /* first byte compared (a str key's payload) */
	size_t kend;       /* end of the key = first byte of the value */
	size_t end;        /* end of the value */
	int cls;           /* 0 for str keys, 1 for others */
	const char *base;  /* buf->data once all pairs are packed */
};

static int enc_fail(struct enc *e, int code, const char *msg)
{
	if (e->err_len > 0)
		snprintf(e->err, e->err_len, "%s", msg);
	return code;
}

static int enc_nomem(struct enc *e)
{
	return enc_fail(e, -ENOMEM, "out of memory while encoding");
}

static int enc_value(struct enc *e, int idx, int depth);

/*
 * The packer: writes straight into the buffer, in msgpack's smallest
 * forms (the bytes msgpack-c's packer gives: the canonical encoding).
 * Each returns 0, or -1 when the buffer cannot grow.
 */
static unsigned char *enc_room(struct enc *e, size_t n)
{
	if (e->buf->cap - e->buf->len < n && kp_buf_reserve(e->buf, n) != 0)
		return NULL;
	return (unsigned char *)e->buf->data + e->buf->len;
}

static void put_be(unsigned char *p, uint64_t v, int n)
{
	int i;

	for (i = n - 1; i >= 0; i--) {
		p[i] = (unsigned char)v;
		v >>= 8;
	}
}

static int pack_byte(struct enc *e, unsigned char b)
{
	unsigned char *p = enc_room(e, 1);

	if (p == NULL)
		return -1;
	p[0] = b;
	e->buf->len++;
	return 0;
}

static int pack_int(struct enc *e, int64_t d)
{
	unsigned char *p = enc_room(e, 9);
	size_t n;

	if (p == NULL)
		return -1;
	if (d < -(1LL << 5)) {
		if (d < -(1LL << 31)) {
			p[0] = 0xd3;
			put_be(p + 1, (uint64_t)d, 8);
			n = 9;
		} else if (d < -(1LL << 15)) {
			p[0] = 0xd2;
			put_be(p + 1, (uint64_t)d, 4);
			n = 5;
		} else if (d < -(1LL << 7)) {
			p[0] = 0xd1;
			put_be(p + 1, (uint64_t)d, 2);
			n = 3;
		} else {
			p[0] = 0xd0;
			p[1] = (unsigned char)d;
			n = 2;
		}
	} else if (d < (1LL << 7)) {
		p[0] = (unsigned char)d;
		n = 1;
	} else if (d < (1LL << 8)) {
		p[0] = 0xcc;
		p[1] = (unsigned char)d;
		n = 2;
	} else if (d < (1LL << 16)) {
		p[0] = 0xcd;
		put_be(p + 1, (uint64_t)d, 2);
		n = 3;
	} else if (d < (1LL << 32)) {
		p[0] = 0xce;
		put_be(p + 1, (uint64_t)d, 4);
		n = 5;
	} else {
		p[0] = 0xcf;
		put_be(p + 1, (uint64_t)d, 8);
		n = 9;
	}
	e->buf->len += n;
	return 0;
}

static int pack_double(struct enc *e, double v)
{
	unsigned char *p = enc_room(e, 9);
	uint64_t bits;

	if (p == NULL)
		return -1;
	memcpy(&bits, &v, sizeof(bits));
	p[0] = 0xcb;
	put_be(p + 1, bits, 8);
	e->buf->len += 9;
	return 0;
}

/* A str, map or array header: fix form below fix_max, then 8/16/32-bit. */
static int pack_header(struct enc *e, unsigned fix, uint32_t fix_max,
		       unsigned c8, unsigned c16, uint32_t n)
{
	unsigned char *p = enc_room(e, 5);
	size_t len;

	if (p == NULL)
		return -1;
	if (n < fix_max) {
		p[0] = (unsigned char)(fix | n);
		len = 1;
	} else if (c8 != 0 && n < 256) {
		p[0] = (unsigned char)c8;
		p[1] = (unsigned char)n;
		len = 2;
	} else if (n < 65536) {
		p[0] = (unsigned char)c16;
		put_be(p + 1, n, 2);
		len = 3;
	} else {
		p[0] = (unsigned char)(c16 + 1);
		put_be(p + 1, n, 4);
		len = 5;
	}
	e->buf->len += len;
	return 0;
}

static int pack_map(struct enc *e, uint32_t n)
{
	return pack_header(e, 0x80, 16, 0, 0xde, n);
}

static int pack_array(struct enc *e, uint32_t n)
{
	return pack_header(e, 0x90, 16, 0, 0xdc, n);
}

/* 1 with *out when d is integral and within [-2^63, 2^63). */
static int double_to_int(double d, int64_t *out)
{
	if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
		return 0;
	if (d != (double)(int64_t)d)
		return 0;
	*out = (int64_t)d;
	return 1;
}

static int pack_number(struct enc *e, double d)
{
	int64_t i;

	if (double_to_int(d, &i))
		return pack_int(e, i);
	return pack_double(e, d);
}

static int enc_number(struct enc *e, int idx)
{
	return pack_number(e, lua_tonumber(e->L, idx));
}

static int pack_str(struct enc *e, const char *s, size_t len)
{
	if (len > UINT32_MAX)
		return -1;
	if (pack_header(e, 0xa0, 32, 0xd9, 0xda, (uint32_t)len) != 0 ||
	    enc_room(e, len) == NULL)
		return -1;
	if (len != 0)
		memcpy(e->buf->data + e->buf->len, s, len);
	e->buf->len += len;
	return 0;
}

static int enc_string(struct enc *e, int idx)
{
	size_t len;
	const char *s = lua_tolstring(e->L, idx, &len);

	return pack_str(e, s, len);
}

int kp_luamp_pack_number(struct kp_buf *out, double v)
{
	struct enc e = { NULL, out, NULL, 0 };

	return pack_number(&e, v) == 0 ? 0 : -ENOMEM;
}

int kp_luamp_pack_string(struct kp_buf *out, const char *s, size_t len)
{
	struct enc e = { NULL, out, NULL, 0 };

	return pack_str(&e, s, len) == 0 ? 0 : -ENOMEM;
}

static int cmp_pair(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;
	size_t xl, yl;
	int c;

	if (x->cls != y->cls)
		return x->cls - y->cls;
	xl = x->kend - x->kpay;
	yl = y->kend - y->kpay;
	c = memcmp(x->base + x->kpay, y->base + y->kpay, xl < yl ? xl : yl);
	if (c != 0 || xl != yl)
		return c != 0 ? c : xl < yl ? -1 : 1;
	/*
	 * Distinct keys that pack alike (tables with the same contents) are
	 * ordered by their values, so that Lua's pairs order never shows.
	 */
	xl = x->end - x->kend;
	yl = y->end - y->kend;
	c = memcmp(x->base + x->kend, y->base + y->kend, xl < yl ? xl : yl);
	if (c != 0)
		return c;
	return xl < yl ? -1 : xl > yl;
}

/*
 * Reorders the packed pairs [pairs[0].start, pairs[n-1].end) canonically,
 * using the buffer's tail as scratch.
 */
static int sort_pairs(struct enc *e, struct pair *pairs, size_t n)
{
	struct kp_buf *b = e->buf;
	size_t start = pairs[0].start, end = pairs[n - 1].end;
	size_t i, at;

	if (kp_buf_reserve(b, end - start) != 0)
		return enc_nomem(e);
	for (i = 0; i < n; i++)
		pairs[i].base = b->data;
	if (n <= 8) {                            /* small maps: insertion */
		for (i = 1; i < n; i++) {
			struct pair x = pairs[i];
			size_t j = i;

			for (; j > 0 && cmp_pair(&pairs[j - 1], &x) > 0; j--)
				pairs[j] = pairs[j - 1];
			pairs[j] = x;
		}
	} else {
		qsort(pairs, n, sizeof(*pairs), cmp_pair);
	}
	at = end;
	for (i = 0; i < n; i++) {
		size_t len = pairs[i].end - pairs[i].start;

		memcpy(b->data + at, b->data + pairs[i].start, len);
		at += len;
	}
	memmove(b->data + start, b->data + end, end - start);
	return 0;
}

static int enc_map(struct enc *e, int idx, size_t n, int depth)
{
	lua_State *L = e->L;
	struct pair local[16];
	struct pair *pairs = local;
	size_t i = 0;
	int rc = 0;

	if (pack_map(e, (uint32_t)n) != 0)
		return enc_nomem(e);
	if (n > sizeof(local) / sizeof(local[0])) {
		pairs = kp_malloc(n * sizeof(*pairs));
		if (pairs == NULL)
			return enc_nomem(e);
	}
	lua_pushnil(L);                          /* -1: key */
	while (lua_next(L, idx) != 0) {          /* -2: key, -1: value */
		int key = lua_gettop(L) - 1;

		if (i == n) {
			lua_pop(L, 2);
			break;
		}
		pairs[i].start = e->buf->len;
		rc = enc_value(e, key, depth + 1);
		if (rc != 0) {
			lua_pop(L, 2);
			break;
		}
		pairs[i].kend = e->buf->len;
		pairs[i].cls = lua_type(L, key) == LUA_TSTRING ? 0 : 1;
		pairs[i].kpay = pairs[i].start;
		if (pairs[i].cls == 0)
			pairs[i].kpay = pairs[i].kend - lua_objlen(L, key);
		rc = enc_value(e, key + 1, depth + 1);
		if (rc != 0) {
			lua_pop(L, 2);
			break;
		}
		pairs[i].end = e->buf->len;
		lua_pop(L, 1);                   /* -1: key */
		i++;
	}
	if (rc == 0 && i > 1)
		rc = sort_pairs(e, pairs, i);
	if (pairs != local)
		kp_free(pairs);
	return rc;
}

static int enc_array(struct enc *e, int idx, size_t n, int depth)
{
	lua_State *L = e->L;
	size_t i;
	int rc;

	if (pack_array(e, (uint32_t)n) != 0)
		return enc_nomem(e);
	for (i = 1; i <= n; i++) {
		lua_rawgeti(L, idx, (int)i);
		rc = enc_value(e, lua_gettop(L), depth + 1);
		lua_pop(L, 1);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* 1 when the key at -2 is an integer in [1, 2^31), with *i. */
static int index_key(lua_State *L, size_t *i)
{
	double d;

	if (lua_type(L, -2) != LUA_TNUMBER)
		return 0;
	d = lua_tonumber(L, -2);
	if (!(d >= 1 && d < 2147483648.0) || d != (double)(size_t)d)
		return 0;
	*i = (size_t)d;
	return 1;
}

static int enc_table(struct enc *e, int idx, int depth)
{
	lua_State *L = e->L;
	size_t n = 0, max = 0, k;
	int all_index = 1, marked = 0;

	if (depth >= KP_LUAMP_MAX_DEPTH)
		return enc_fail(e, KP_EBADREQUEST,
				"table nested too deeply (or a cycle)");
	if (!lua_checkstack(L, 6))
		return enc_fail(e, KP_EBADREQUEST, "Lua stack exhausted");
	/* (a lazy proxy always has its metatable: the sandbox keeps it) */
	if (lua_getmetatable(L, idx)) {
		lua_pop(L, 1);
		kp_luamp_materialize(L, idx);
	}
	if (lua_getmetatable(L, idx)) {          /* -1: metatable */
		push_marker(L, &array_marker_key);   /* -1: kappa.array's */
		if (lua_rawequal(L, -1, -2))
			marked = 1;
		lua_pop(L, 1);
		if (!marked) {
			push_marker(L, &map_marker_key);
			if (lua_rawequal(L, -1, -2))
				marked = 2;
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
	lua_pushnil(L);                          /* -1: key */
	while (lua_next(L, idx) != 0) {          /* -2: key, -1: value */
		n++;
		if (all_index && index_key(L, &k)) {
			if (k > max)
				max = k;
		} else {
			all_index = 0;
		}
		lua_pop(L, 1);
	}
	if (n > UINT32_MAX)
		return enc_fail(e, KP_EBADREQUEST, "table too large");
	if (marked == 1) {
		if (!all_index)
			return enc_fail(e, KP_EBADREQUEST,
					"table marked kappa.array has a key "
					"that is not an index 1..n");
		if (max > 2 * n + 64)
			return enc_fail(e, KP_EBADREQUEST,
					"table marked kappa.array is too "
					"sparse");
		return enc_array(e, idx, max, depth);
	}
	if (marked == 0 && n > 0 && all_index && max == n)
		return enc_array(e, idx, n, depth);
	return enc_map(e, idx, n, depth);
}

static int enc_value(struct enc *e, int idx, int depth)
{
	lua_State *L = e->L;
	int rc;

	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		rc = pack_byte(e, 0xc0);
		break;
	case LUA_TBOOLEAN:
		rc = pack_byte(e, lua_toboolean(L, idx) ? 0xc3 : 0xc2);
		break;
	case LUA_TNUMBER:
		rc = enc_number(e, idx);
		break;
	case LUA_TSTRING:
		rc = enc_string(e, idx);
		break;
	case LUA_TLIGHTUSERDATA:
		if (lua_touserdata(L, idx) != NULL)
			return enc_fail(e, KP_EBADREQUEST,
					"cannot encode a lightuserdata");
		rc = pack_byte(e, 0xc0);
		break;
	case LUA_TTABLE:
		return enc_table(e, idx, depth);
	default:
		if (e->err_len > 0)
			snprintf(e->err, e->err_len, "cannot encode a %s value",
				 lua_typename(L, lua_type(L, idx)));
		return KP_EBADREQUEST;
	}
	return rc == 0 ? 0 : enc_nomem(e);
}

int kp_luamp_encode(lua_State *L, int idx, struct kp_buf *out, char *err,
		    size_t err_len)
{
	struct enc e;
	size_t len0 = out->len;
	int top = lua_gettop(L);
	int rc;

	if (idx < 0 && idx > LUA_REGISTRYINDEX)
		idx = top + idx + 1;
	if (!lua_checkstack(L, 4)) {
		if (err_len > 0)
			snprintf(err, err_len, "Lua stack exhausted");
		return KP_EBADREQUEST;
	}
	e.L = L;
	e.buf = out;
	e.err = err;
	e.err_len = err_len;
	rc = enc_value(&e, idx, 0);
	lua_settop(L, top);
	if (rc != 0)
		out->len = len0;
	return rc;
}
