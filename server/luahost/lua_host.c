/*
 * lua_host.c - the lean host path of Lua processors (contract in
 * lua_host.h): the FFI functions, the C helpers the prelude falls back to,
 * and the prelude, a trusted Lua chunk that holds ffi and the function
 * pointers in its locals and hands user code only plain Lua functions.
 *
 * Access pattern: the prelude is loaded once per instance before the
 * user's module runs (so the standard functions it captures are the
 * sandbox's originals); per record, C pushes the record's fields and calls
 * the entry function it returned. With the JIT on, state:get/incr/del,
 * state:put of a number or string and the lazy field lookup are one FFI
 * call each, and ctx:emit of a scalar or flat table is packed by the
 * prelude into a reused FFI buffer (scalars by lua_mp.c's packers, called
 * through the FFI) and handed over in one FFI call: the JIT compiles all
 * of it into the processor's trace; with it
 * off (FFI calls are slow in the interpreter) they are the adapter's
 * classic C bindings and a C __index.
 */
#include "lua_host.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "lua_mp.h"
#include "base/buf.h"
#include "base/error.h"
#include "base/mp.h"

/* Maps with more pairs than this are decoded eagerly (lookups are linear). */
#define LAZY_MAX_PAIRS 16

static struct kp_lua_host *host_of(double self)
{
	return (struct kp_lua_host *)(uintptr_t)self;
}

static int interrupted(const struct kp_lua_host *h)
{
	return atomic_load_explicit(&h->sb->interrupted, memory_order_relaxed);
}

int kp_luahost_incr(double self, const char *key, size_t key_len,
		    double delta, double *out)
{
	struct kp_lua_host *h = host_of(self);
	const struct kp_proc_host *ph = h->ctx->host;
	int64_t d, result = 0;
	int rc;

	if (interrupted(h))
		return KP_LUAHOST_INTR;
	if (!(delta >= -9223372036854775808.0 && delta < 9223372036854775808.0)
	    || delta != (double)(int64_t)delta)
		return KP_LUAHOST_DELTA;
	d = (int64_t)delta;
	rc = ph->state_incr(h->ctx->host_data, key, key_len, d, &result);
	if (rc < 0)
		return rc;
	if (result >= -KP_LUAMP_EXACT_INT && result <= KP_LUAMP_EXACT_INT) {
		out[0] = (double)result;
		return 0;
	}
	snprintf(h->digits, sizeof(h->digits), "%lld", (long long)result);
	return KP_LUAHOST_BIG;
}

/* The kind of the msgpack value at p (validated), with out[0] filled. */
static int value_kind(const unsigned char *p, double *out)
{
	unsigned b = p[0];
	struct kp_mp_view v = { (const char *)p, 9 };
	int64_t i;
	double d;

	if (b <= 0x7f) {
		out[0] = b;
		return KP_LUAHOST_NUM;
	}
	if (b >= 0xe0) {
		out[0] = (int8_t)b;
		return KP_LUAHOST_NUM;
	}
	switch (b) {
	case 0xc0: return KP_LUAHOST_NIL;
	case 0xc2: return KP_LUAHOST_FALSE;
	case 0xc3: return KP_LUAHOST_TRUE;
	case 0xca: case 0xcb:
		if (kp_mp_read_double(v, &d) != 0)
			return KP_LUAHOST_OTHER;
		out[0] = d;
		return KP_LUAHOST_NUM;
	case 0xcc: case 0xcd: case 0xce: case 0xcf:
	case 0xd0: case 0xd1: case 0xd2: case 0xd3:
		if (kp_mp_read_int(v, &i) != 0 || i < -KP_LUAMP_EXACT_INT ||
		    i > KP_LUAMP_EXACT_INT)
			return KP_LUAHOST_OTHER;
		out[0] = (double)i;
		return KP_LUAHOST_NUM;
	default:
		return KP_LUAHOST_OTHER;
	}
}

int kp_luahost_get(double self, const char *key, size_t key_len,
		   double *out)
{
	struct kp_lua_host *h = host_of(self);
	const struct kp_proc_host *ph = h->ctx->host;
	const char *value = NULL;
	size_t len = 0;
	int rc;

	if (interrupted(h))
		return KP_LUAHOST_INTR;
	rc = ph->state_get(h->ctx->host_data, key, key_len, &value, &len);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return KP_LUAHOST_ABSENT;
	h->val = value;
	h->val_len = len;
	if (len == 0 || len > 9)
		return KP_LUAHOST_OTHER;
	rc = value_kind((const unsigned char *)value, out);
	if (rc == KP_LUAHOST_NUM) {
		struct kp_mp_view v;

		if (kp_mp_validate_one(value, len, &v) != 0)
			return KP_LUAHOST_OTHER;
	}
	return rc;
}

int kp_luahost_del(double self, const char *key, size_t key_len)
{
	struct kp_lua_host *h = host_of(self);
	int rc;

	if (interrupted(h))
		return KP_LUAHOST_INTR;
	rc = h->ctx->host->state_del(h->ctx->host_data, key, key_len);
	return rc < 0 ? rc : 0;
}

/* Puts the packed value of h->pack. */
static int put_packed(struct kp_lua_host *h, const char *key, size_t key_len,
		      const char *value, size_t len)
{
	int rc = h->ctx->host->state_put(h->ctx->host_data, key, key_len,
					 value, len);

	return rc < 0 ? rc : 0;
}

int kp_luahost_put_num(double self, const char *key, size_t key_len,
		       double v)
{
	struct kp_lua_host *h = host_of(self);
	char mem[16];
	struct kp_buf b = { mem, 0, sizeof(mem) };

	if (interrupted(h))
		return KP_LUAHOST_INTR;
	kp_luamp_pack_number(&b, v);
	return put_packed(h, key, key_len, b.data, b.len);
}

int kp_luahost_put_str(double self, const char *key, size_t key_len,
		       const char *s, size_t len)
{
	struct kp_lua_host *h = host_of(self);
	char mem[64];
	struct kp_buf b = { mem, 0, sizeof(mem) };
	int rc;

	if (interrupted(h))
		return KP_LUAHOST_INTR;
	if (len + 5 > sizeof(mem))
		kp_buf_init(&b);
	if (kp_luamp_pack_string(&b, s, len) != 0)
		return -ENOMEM;
	rc = put_packed(h, key, key_len, b.data, b.len);
	if (b.data != mem)
		kp_buf_destroy(&b);
	return rc;
}

/* The header of a str or bin at p: 1 with *hdr and *len, else 0. */
static int str_header(const unsigned char *p, size_t *hdr, size_t *len)
{
	unsigned b = p[0];

	if (b >= 0xa0 && b <= 0xbf) {
		*hdr = 1;
		*len = b & 0x1f;
		return 1;
	}
	switch (b) {
	case 0xc4: case 0xd9:
		*hdr = 2;
		*len = p[1];
		return 1;
	case 0xc5: case 0xda:
		*hdr = 3;
		*len = ((size_t)p[1] << 8) | p[2];
		return 1;
	case 0xc6: case 0xdb:
		*hdr = 5;
		*len = ((size_t)p[1] << 24) | ((size_t)p[2] << 16) |
		       ((size_t)p[3] << 8) | p[4];
		return 1;
	default:
		return 0;
	}
}

/* The pair count of the map at p, or -1 when it is not a map. */
static long map_header(const unsigned char *p, size_t *hdr)
{
	if (p[0] >= 0x80 && p[0] <= 0x8f) {
		*hdr = 1;
		return p[0] & 0x0f;
	}
	if (p[0] == 0xde) {
		*hdr = 3;
		return ((long)p[1] << 8) | p[2];
	}
	if (p[0] == 0xdf) {
		*hdr = 5;
		return ((long)p[1] << 24) | ((long)p[2] << 16) |
		       ((long)p[3] << 8) | p[4];
	}
	return -1;
}

/* The first byte of a str or bin (what a lazy map's keys may be). */
static int str_byte(unsigned b)
{
	return (b >= 0xa0 && b <= 0xbf) || (b >= 0xc4 && b <= 0xc6) ||
	       (b >= 0xd9 && b <= 0xdb);
}

int kp_lua_host_lazy_ok(const char *buf, size_t len)
{
	const unsigned char *p = (const unsigned char *)buf;
	size_t hdr, off, size;
	long n, i;

	if (len == 0 || (p[0] == 0xde && len < 3) || (p[0] == 0xdf && len < 5))
		return 0;
	n = map_header(p, &hdr);
	if (n < 0 || n > LAZY_MAX_PAIRS)
		return 0;
	off = hdr;
	/* One walk validates too: every key and value is skipped in bounds. */
	for (i = 0; i < n; i++) {
		if (off >= len || !str_byte(p[off]) ||
		    kp_mp_skip(buf + off, len - off, &size) != 0)
			return 0;
		off += size;
		/* (the value sits in the map: one level less to nest) */
		if (kp_mp_skip_at(buf + off, len - off, 1, &size) != 0)
			return 0;
		off += size;
	}
	return off == len;
}

int kp_luahost_field(const char *buf, size_t len, const char *key,
		     size_t key_len, double *out)
{
	const unsigned char *p = (const unsigned char *)buf;
	size_t hdr, off, size, slen;
	long n, i;
	int kind;

	n = map_header(p, &hdr);
	off = hdr;
	for (i = 0; i < n; i++) {
		if (!str_header(p + off, &hdr, &slen))
			return KP_LUAHOST_ABSENT;
		off += hdr;
		if (slen == key_len && memcmp(buf + off, key, key_len) == 0) {
			off += slen;
			if (str_header(p + off, &hdr, &slen)) {
				out[0] = (double)(off + hdr);
				out[1] = (double)slen;
				return KP_LUAHOST_STR;
			}
			kind = value_kind(p + off, out);
			if (kind == KP_LUAHOST_OTHER)
				out[0] = (double)off;
			return kind;
		}
		off += slen;
		if (kp_mp_skip(buf + off, len - off, &size) != 0)
			return KP_LUAHOST_ABSENT;
		off += size;
	}
	return KP_LUAHOST_ABSENT;
}

const char *kp_luahost_error_text(int rc)
{
	return kp_error_text(rc);
}

int kp_luahost_field_at(const char *base, double off, double len,
			const char *key, size_t key_len, double *out)
{
	return kp_luahost_field(base + (size_t)off, (size_t)len, key, key_len,
				out);
}

int kp_luahost_next(double self)
{
	struct kp_lua_host *h = host_of(self);

	return h->next != NULL ? h->next(h) : KP_LUAHOST_END;
}

int kp_luahost_emit(double self, const char *topic, size_t topic_len,
		    const char *key, size_t key_len, const char *value,
		    size_t value_len)
{
	struct kp_lua_host *h = host_of(self);
	void *hd = h->ctx->host_data;
	int rc;

	if (interrupted(h))
		return KP_LUAHOST_INTR;
	if (h->emit != NULL)
		rc = h->emit(hd, topic, topic_len, key, key_len, value,
			     value_len);
	else
		rc = h->ctx->host->emit(hd, topic, topic_len, key, key_len,
					value, value_len);
	return rc < 0 ? rc : 0;
}

int kp_luahost_pack_str(char *dst, const char *s, size_t len)
{
	struct kp_buf b = { dst, 0, len + 5 };

	(void)kp_luamp_pack_string(&b, s, len);
	return (int)b.len;
}

int kp_luahost_pack_num(char *dst, double v)
{
	struct kp_buf b = { dst, 0, 9 };

	(void)kp_luamp_pack_number(&b, v);
	return (int)b.len;
}

/* ------------------------------------------------------------------------
 * C helpers of the prelude: upvalue 1 is the struct kp_lua_host.
 */

static void push_decoded(lua_State *L, const char *p, size_t len,
			 const char *what)
{
	char msg[160];

	if (kp_luamp_push(L, p, len, msg, sizeof(msg)) != 0)
		luaL_error(L, "%s: %s", what, msg);
}

/* decode_get() -> the value state_get left in the host */
static int l_decode_get(lua_State *L)
{
	struct kp_lua_host *h = lua_touserdata(L, lua_upvalueindex(1));

	push_decoded(L, h->val, h->val_len, "state:get");
	return 1;
}

/* decode_at(bytes, offset) -> the (nested) value at offset */
static int l_decode_at(lua_State *L)
{
	size_t len, size;
	const char *b = luaL_checklstring(L, 1, &len);
	size_t off = (size_t)luaL_checknumber(L, 2);

	if (off >= len || kp_mp_skip(b + off, len - off, &size) != 0)
		return luaL_error(L, "record value: malformed msgpack");
	push_decoded(L, b + off, size, "record value");
	return 1;
}

/* materialize(proxy) */
static int l_materialize(lua_State *L)
{
	kp_luamp_materialize(L, 1);
	return 0;
}

/* __index(proxy, k) of lazy proxies in the interpreter */
static int l_lazy_index(lua_State *L)
{
	size_t len, klen;
	const char *b, *k;
	double out[2];
	int kind;

	if (lua_type(L, 2) != LUA_TSTRING)
		return 0;
	k = lua_tolstring(L, 2, &klen);
	if (!kp_luamp_lazy_bytes(L, 1, &b, &len))
		return 0;
	kind = kp_luahost_field(b, len, k, klen, out);
	switch (kind) {
	case KP_LUAHOST_ABSENT: return 0;
	case KP_LUAHOST_NUM: lua_pushnumber(L, out[0]); return 1;
	case KP_LUAHOST_STR:
		lua_pushlstring(L, b + (size_t)out[0], (size_t)out[1]);
		return 1;
	case KP_LUAHOST_TRUE: lua_pushboolean(L, 1); return 1;
	case KP_LUAHOST_FALSE: lua_pushboolean(L, 0); return 1;
	case KP_LUAHOST_NIL: kp_luamp_push_null(L); return 1;
	default:
		if (kp_mp_skip(b + (size_t)out[0], len - (size_t)out[0],
			       &klen) != 0)
			return luaL_error(L, "record value: malformed msgpack");
		push_decoded(L, b + (size_t)out[0], klen, "record value");
		return 1;
	}
}

/* decode_rec() -> the current batch record's value (raises if malformed) */
static int l_decode_rec(lua_State *L)
{
	struct kp_lua_host *h = lua_touserdata(L, lua_upvalueindex(1));

	h->decode(h, L);
	return 1;
}

/* failed(message): the current batch record raised message */
static int l_failed(lua_State *L)
{
	struct kp_lua_host *h = lua_touserdata(L, lua_upvalueindex(1));

	lua_settop(L, 1);
	h->fail(h, L);
	return 0;
}

/* topic_now() -> the current batch record's topic */
static int l_topic_now(lua_State *L)
{
	struct kp_lua_host *h = lua_touserdata(L, lua_upvalueindex(1));

	h->topic(h, L);
	return 1;
}

/*
 * The proxies a batch run made share one anchor, the run's bytes. Once a
 * run is over, guard(made, n, anchor) leaves a garbage object whose
 * finalizer runs at the end of the next collection: by then `made` (weak)
 * holds only the proxies that are still referenced, and each gets its own
 * copy of its bytes. So the anchor is freed one collection later, and a
 * value kept past its record holds its own bytes, not its whole batch.
 */
static int detach_all(lua_State *L)
{
	int n = (int)lua_tonumber(L, 2);

	for (int i = 1; i <= n; i++) {
		lua_rawgeti(L, 1, i);
		kp_luamp_lazy_detach(L, -1, 3);
		lua_pop(L, 1);
	}
	return 0;
}

/* __gc of a guard: its env is { made, n, anchor }. */
static int l_guard_gc(lua_State *L)
{
	lua_getfenv(L, 1);                           /* 2: env */
	if (!lua_istable(L, 2))
		return 0;
	lua_pushcfunction(L, detach_all);
	for (int i = 1; i <= 3; i++)
		lua_rawgeti(L, 2, i);
	/* Out of memory: the proxies keep the anchor, as during the run. */
	(void)lua_pcall(L, 3, 0, 0);
	return 0;
}

static const char guard_mt_key;

/* guard(made, n, anchor) */
static int l_guard(lua_State *L)
{
	lua_settop(L, 3);
	lua_newuserdata(L, 1);                       /* 4: the guard */
	lua_pushlightuserdata(L, (void *)&guard_mt_key);
	lua_rawget(L, LUA_REGISTRYINDEX);            /* 5: its metatable */
	if (lua_isnil(L, 5)) {
		lua_pop(L, 1);
		lua_createtable(L, 0, 1);
		lua_pushcfunction(L, l_guard_gc);
		lua_setfield(L, -2, "__gc");
		lua_pushlightuserdata(L, (void *)&guard_mt_key);
		lua_pushvalue(L, -2);
		lua_rawset(L, LUA_REGISTRYINDEX);
	}
	lua_setmetatable(L, 4);
	lua_createtable(L, 3, 0);                    /* 5: env */
	for (int i = 1; i <= 3; i++) {
		lua_pushvalue(L, i);
		lua_rawseti(L, 5, i);
	}
	lua_setfenv(L, 4);
	return 0;
}

/* bigint() -> the decimal digits of the last incr result */
static int l_bigint(lua_State *L)
{
	struct kp_lua_host *h = lua_touserdata(L, lua_upvalueindex(1));

	lua_pushstring(L, h->digits);
	return 1;
}

/*
 * The prelude. Arguments: ffi, the host's address, the table of function
 * addresses (and of the batch record), the table of C helpers (and
 * bindings), the lazy key and metatable, kappa.null and the sandbox
 * environment. Returns bind(process, ctx, handler) -> entry, run.
 */
static const char prelude[] =
"local ffi, H, fp, c, KEY, OFF, LEN, LAZY, NULL, env = ...\n"
"local type, tostring, error, rawget, rawset, setmetatable, next, pairs =\n"
"  type, tostring, error, rawget, rawset, setmetatable, next, pairs\n"
"local getmetatable = getmetatable\n"
"local sub, fstring = string.sub, ffi.string\n"
"local K = 'double, const char *, size_t'\n"
"local incr = ffi.cast('int (*)(' .. K .. ', double, double *)', fp.incr)\n"
"local get = ffi.cast('int (*)(' .. K .. ', double *)', fp.get)\n"
"local del = ffi.cast('int (*)(' .. K .. ')', fp.del)\n"
"local put_num = ffi.cast('int (*)(' .. K .. ', double)', fp.put_num)\n"
"local put_str = ffi.cast('int (*)(' .. K .. ', const char *, size_t)',\n"
"  fp.put_str)\n"
"local field = ffi.cast('int (*)(const char *, double, double, '\n"
"  .. 'const char *, size_t, double *)', fp.field_at)\n"
"local errtext = ffi.cast('const char *(*)(int)', fp.errtext)\n"
"local next_rec = ffi.cast('int (*)(double)', fp.next)\n"
"local R = ffi.cast('struct { double partition, offset, ts; '\n"
"  .. 'const char *key; double key_len; const char *value; '\n"
"  .. 'double value_off, value_len, new_topic; const char *base; '\n"
"  .. 'double base_len; } *', fp.rec)\n"
"local out = ffi.new('double[2]')\n"
"local INTR = 'interrupted: time budget exceeded'\n"
"local c_put, decode_get, decode_at, materialize, bigint =\n"
"  c.put, c.decode_get, c.decode_at, c.materialize, c.bigint\n"
"local decode_rec, failed, topic_now, guard, xpcall, pcall =\n"
"  c.decode_rec, c.failed, c.topic_now, c.guard, xpcall, pcall\n"
"local WEAK = { __mode = 'v' }\n"
"local function fail(what, rc)\n"
"  if rc == 1 then error(INTR, 0) end\n"
"  error(what .. ' failed: ' .. fstring(errtext(rc)), 3)\n"
"end\n"
"local function key_arg(k)\n"
"  local t = type(k)\n"
"  if t == 'string' then return k end\n"
"  if t == 'number' then return tostring(k) end\n"
"  error('bad argument #1 (key must be a string or a number, got ' ..\n"
"    t .. ')', 3)\n"
"end\n"
"local fcopy = ffi.copy\n"
"local emit_fn = ffi.cast('int (*)(double, const char *, size_t, '\n"
"  .. 'const char *, size_t, const uint8_t *, size_t)', fp.emit)\n"
"local pstr = ffi.cast('int (*)(uint8_t *, const char *, size_t)',\n"
"  fp.pack_str)\n"
"local pnum = ffi.cast('int (*)(uint8_t *, double)', fp.pack_num)\n"
"local c_emit, MAXK = c.emit, 32\n"
"local buf, cap, keys = ffi.new('uint8_t[?]', 256), 256, {}\n"
"local SCALAR = { string = true, number = true, boolean = true }\n"
"local function room(n)\n"
"  if n > cap then\n"
"    local nc = cap * 2\n"
"    while nc < n do nc = nc * 2 end\n"
"    buf, cap = ffi.new('uint8_t[?]', nc), nc\n"
"  end\n"
"  return buf\n"
"end\n"
"local function pack_scalar(v, t)\n"
"  if t == 'string' then return pstr(room(#v + 5), v, #v) end\n"
"  if t == 'number' then return pnum(room(9), v) end\n"
"  if t ~= 'boolean' then return -1 end\n"
"  if v then room(1)[0] = 0xc3 else room(1)[0] = 0xc2 end\n"
"  return 1\n"
"end\n"
"local function pack_big(t)\n"
"  local n, size, k, v = 0, 3, next(t)\n"
"  while k ~= nil do\n"
"    local tv = type(v)\n"
"    if type(k) ~= 'string' or n == MAXK or not SCALAR[tv] then\n"
"      return -1\n"
"    end\n"
"    local j = n\n"
"    while j > 0 and keys[j] > k do keys[j + 1] = keys[j] j = j - 1 end\n"
"    keys[j + 1] = k\n"
"    n = n + 1\n"
"    size = size + #k + 14\n"
"    if tv == 'string' then size = size + #v end\n"
"    k, v = next(t, k)\n"
"  end\n"
"  local b, p = room(size), 3\n"
"  if n < 16 then b[0] = 0x80 + n p = 1\n"
"  else b[0] = 0xde b[1] = 0 b[2] = n end\n"
"  for i = 1, n do\n"
"    k = keys[i] v = t[k]\n"
"    p = p + pstr(b + p, k, #k)\n"
"    local tv = type(v)\n"
"    if tv == 'string' then p = p + pstr(b + p, v, #v)\n"
"    elseif tv == 'number' then p = p + pnum(b + p, v)\n"
"    elseif v then b[p] = 0xc3 p = p + 1 else b[p] = 0xc2 p = p + 1 end\n"
"  end\n"
"  return p\n"
"end\n"
"local function pack_map(t)\n"
"  if getmetatable(t) ~= nil then return -1 end\n"
"  local k1, v1 = next(t)\n"
"  if k1 == nil then room(1)[0] = 0x80 return 1 end\n"
"  local k2, v2 = next(t, k1)\n"
"  local k3, v3, k4, v4\n"
"  if k2 ~= nil then k3, v3 = next(t, k2) end\n"
"  if k3 ~= nil then k4, v4 = next(t, k3) end\n"
"  if k4 ~= nil and next(t, k4) ~= nil then return pack_big(t) end\n"
"  local tv, n, size = type(v1), 1, 15\n"
"  if type(k1) ~= 'string' or not SCALAR[tv] then return -1 end\n"
"  size = size + #k1\n"
"  if tv == 'string' then size = size + #v1 end\n"
"  if k2 ~= nil then\n"
"    tv, n = type(v2), 2\n"
"    if type(k2) ~= 'string' or not SCALAR[tv] then return -1 end\n"
"    size = size + 14 + #k2\n"
"    if tv == 'string' then size = size + #v2 end\n"
"    if k2 < k1 then k1, k2 = k2, k1 end\n"
"  end\n"
"  if k3 ~= nil then\n"
"    tv, n = type(v3), 3\n"
"    if type(k3) ~= 'string' or not SCALAR[tv] then return -1 end\n"
"    size = size + 14 + #k3\n"
"    if tv == 'string' then size = size + #v3 end\n"
"    if k3 < k2 then k2, k3 = k3, k2 end\n"
"    if k2 < k1 then k1, k2 = k2, k1 end\n"
"  end\n"
"  if k4 ~= nil then\n"
"    tv, n = type(v4), 4\n"
"    if type(k4) ~= 'string' or not SCALAR[tv] then return -1 end\n"
"    size = size + 14 + #k4\n"
"    if tv == 'string' then size = size + #v4 end\n"
"    if k4 < k3 then k3, k4 = k4, k3 end\n"
"    if k3 < k2 then k2, k3 = k3, k2 end\n"
"    if k2 < k1 then k1, k2 = k2, k1 end\n"
"  end\n"
"  local b, p, v = room(size), 1, t[k1]\n"
"  b[0] = 0x80 + n\n"
"  p = p + pstr(b + p, k1, #k1) tv = type(v)\n"
"  if tv == 'string' then p = p + pstr(b + p, v, #v)\n"
"  elseif tv == 'number' then p = p + pnum(b + p, v)\n"
"  elseif v then b[p] = 0xc3 p = p + 1 else b[p] = 0xc2 p = p + 1 end\n"
"  if n == 1 then return p end\n"
"  v = t[k2] p = p + pstr(b + p, k2, #k2) tv = type(v)\n"
"  if tv == 'string' then p = p + pstr(b + p, v, #v)\n"
"  elseif tv == 'number' then p = p + pnum(b + p, v)\n"
"  elseif v then b[p] = 0xc3 p = p + 1 else b[p] = 0xc2 p = p + 1 end\n"
"  if n == 2 then return p end\n"
"  v = t[k3] p = p + pstr(b + p, k3, #k3) tv = type(v)\n"
"  if tv == 'string' then p = p + pstr(b + p, v, #v)\n"
"  elseif tv == 'number' then p = p + pnum(b + p, v)\n"
"  elseif v then b[p] = 0xc3 p = p + 1 else b[p] = 0xc2 p = p + 1 end\n"
"  if n == 3 then return p end\n"
"  v = t[k4] p = p + pstr(b + p, k4, #k4) tv = type(v)\n"
"  if tv == 'string' then p = p + pstr(b + p, v, #v)\n"
"  elseif tv == 'number' then p = p + pnum(b + p, v)\n"
"  elseif v then b[p] = 0xc3 p = p + 1 else b[p] = 0xc2 p = p + 1 end\n"
"  return p\n"
"end\n"
"local function emit(self, topic, v, k)\n"
"  local t, p = type(v)\n"
"  if t == 'table' then p = pack_map(v) else p = pack_scalar(v, t) end\n"
"  if p < 0 or type(topic) ~= 'string' then\n"
"    return c_emit(self, topic, v, k)\n"
"  end\n"
"  local key, kl, tk = k, 0, type(k)\n"
"  if tk == 'string' then kl = #k\n"
"  elseif tk == 'number' then key = tostring(k) kl = #key\n"
"  elseif tk ~= 'nil' then return c_emit(self, topic, v, k) end\n"
"  if emit_fn(H, topic, #topic, key, kl, buf, p) ~= 0 then\n"
"    return c_emit(self, topic, v, k)\n"
"  end\n"
"end\n"
"local state = { scan = c.scan }\n"
"function state.incr(self, k, n)\n"
"  k = key_arg(k)\n"
"  if n == nil then n = 1 elseif type(n) ~= 'number' then\n"
"    error('state:incr: delta must be an integer', 2) end\n"
"  local rc = incr(H, k, #k, n, out)\n"
"  if rc == 0 then return out[0] end\n"
"  if rc == 2 then return bigint() end\n"
"  if rc == 3 then error('state:incr: delta must be an integer', 2) end\n"
"  fail('state:incr', rc)\n"
"end\n"
"function state.get(self, k)\n"
"  k = key_arg(k)\n"
"  local kind = get(H, k, #k, out)\n"
"  if kind == 10 then return out[0] end\n"
"  if kind == 0 or kind == 14 then return nil end\n"
"  if kind == 12 then return true end\n"
"  if kind == 13 then return false end\n"
"  if kind == 15 then return decode_get() end\n"
"  fail('state:get', kind)\n"
"end\n"
"function state.put(self, k, v)\n"
"  k = key_arg(k)\n"
"  local t, rc = type(v)\n"
"  if t == 'number' then rc = put_num(H, k, #k, v)\n"
"  elseif t == 'string' then rc = put_str(H, k, #k, v, #v)\n"
"  else return c_put(self, k, v) end\n"
"  if rc ~= 0 then fail('state:put', rc) end\n"
"end\n"
"function state.del(self, k)\n"
"  k = key_arg(k)\n"
"  local rc = del(H, k, #k)\n"
"  if rc ~= 0 then fail('state:del', rc) end\n"
"end\n"
"LAZY.__index = function(p, k)\n"
"  if type(k) ~= 'string' then return nil end\n"
"  local b, o = rawget(p, KEY), rawget(p, OFF) or 0\n"
"  local kind = field(b, o, rawget(p, LEN) or #b, k, #k, out)\n"
"  if kind == 11 then o = o + out[0] return sub(b, o + 1, o + out[1]) end\n"
"  if kind == 10 then return out[0] end\n"
"  if kind == 0 then return nil end\n"
"  if kind == 12 then return true end\n"
"  if kind == 13 then return false end\n"
"  if kind == 14 then return NULL end\n"
"  return decode_at(b, o + out[0])\n"
"end\n"
"LAZY.__newindex = function(p, k, v)\n"
"  materialize(p)\n"
"  p[k] = v\n"
"end\n"
"local function lazy(t) return type(t) == 'table' and rawget(t, KEY) ~= nil end\n"
"env.pairs = function(t) if lazy(t) then materialize(t) end return pairs(t) end\n"
"env.next = function(t, k)\n"
"  if lazy(t) then materialize(t) end return next(t, k) end\n"
"env.rawget = function(t, k)\n"
"  if lazy(t) then materialize(t) end return rawget(t, k) end\n"
"env.rawset = function(t, k, v)\n"
"  if lazy(t) then materialize(t) end return rawset(t, k, v) end\n"
"env.setmetatable = function(t, m)\n"
"  if lazy(t) then materialize(t) end return setmetatable(t, m) end\n"
"if not c.jit then\n"
"  state = { get = c.get, put = c.put, incr = c.incr, del = c.del,\n"
"            scan = c.scan }\n"
"  LAZY.__index = c.lazy_index\n"
"  emit = c_emit\n"
"end\n"
"return function(process, ctx, handler)\n"
"  ctx.state, ctx.emit = state, emit\n"
"  local function entry(topic, partition, offset, ts, key, value, lz)\n"
"    if lz then value = setmetatable({ [KEY] = value }, LAZY) end\n"
"    local rec = { topic = false, partition = false, offset = false,\n"
"                  ts = false, key = false, value = false }\n"
"    rec.topic = topic rec.partition = partition rec.offset = offset\n"
"    rec.ts = ts rec.key = key rec.value = value\n"
"    return process(ctx, rec)\n"
"  end\n"
"  local topic, anchor, made, n_made\n"
"  local function one(kind)\n"
"    local key, value = nil, nil\n"
"    if R.key ~= nil then key = fstring(R.key, R.key_len) end\n"
"    if kind == 1 and anchor and R.value_off >= 0 then\n"
"      value = setmetatable({ [KEY] = anchor, [OFF] = R.value_off,\n"
"                             [LEN] = R.value_len }, LAZY)\n"
"      n_made = n_made + 1 made[n_made] = value\n"
"    elseif kind == 1 then\n"
"      value = setmetatable({ [KEY] = fstring(R.value, R.value_len) }, LAZY)\n"
"    elseif kind == 2 then value = decode_rec() end\n"
"    local rec = { topic = false, partition = false, offset = false,\n"
"                  ts = false, key = false, value = false }\n"
"    rec.topic = topic rec.partition = R.partition rec.offset = R.offset\n"
"    rec.ts = R.ts rec.key = key rec.value = value\n"
"    return process(ctx, rec)\n"
"  end\n"
"  local function start()\n"
"    anchor = nil\n"
"    if R.base ~= nil then\n"
"      local ok, a = pcall(fstring, R.base, R.base_len)\n"
"      if ok then anchor = a end\n"
"    end\n"
"    made, n_made = setmetatable({}, WEAK), 0\n"
"  end\n"
"  local function finish()\n"
"    if n_made > 0 then guard(made, n_made, anchor) end\n"
"    anchor, made, n_made = nil, nil, 0\n"
"  end\n"
"  local function run(first)\n"
"    if first then start() end\n"
"    while true do\n"
"      local kind = next_rec(H)\n"
"      if kind == 0 then return end\n"
"      if R.new_topic ~= 0 then topic = topic_now() end\n"
"      local ok, e = xpcall(one, handler, kind)\n"
"      if not ok then failed(e) end\n"
"    end\n"
"  end\n"
"  return entry, run, finish\n"
"end\n";

static void set_addr(lua_State *L, const char *name, void (*fn)(void))
{
	lua_pushnumber(L, (lua_Number)(uintptr_t)fn);
	lua_setfield(L, -2, name);
}

static void set_helper(lua_State *L, struct kp_lua_host *h, const char *name,
		       lua_CFunction fn)
{
	lua_pushlightuserdata(L, h);
	lua_pushcclosure(L, fn, 1);
	lua_setfield(L, -2, name);
}

void kp_lua_host_push_prelude(lua_State *L, struct kp_lua_host *h, int c_idx)
{
	if (luaL_loadbuffer(L, prelude, sizeof(prelude) - 1, "=kappa host"))
		lua_error(L);                        /* top+1: prelude */
	lua_pushcfunction(L, luaopen_ffi);
	lua_call(L, 0, 1);                           /* top+2: ffi */
	lua_pushnumber(L, (lua_Number)(uintptr_t)h); /* top+3: H */
	lua_createtable(L, 0, 12);                   /* top+4: fp */
	set_addr(L, "incr", (void (*)(void))kp_luahost_incr);
	set_addr(L, "get", (void (*)(void))kp_luahost_get);
	set_addr(L, "del", (void (*)(void))kp_luahost_del);
	set_addr(L, "put_num", (void (*)(void))kp_luahost_put_num);
	set_addr(L, "put_str", (void (*)(void))kp_luahost_put_str);
	set_addr(L, "field_at", (void (*)(void))kp_luahost_field_at);
	set_addr(L, "errtext", (void (*)(void))kp_luahost_error_text);
	set_addr(L, "next", (void (*)(void))kp_luahost_next);
	set_addr(L, "emit", (void (*)(void))kp_luahost_emit);
	set_addr(L, "pack_str", (void (*)(void))kp_luahost_pack_str);
	set_addr(L, "pack_num", (void (*)(void))kp_luahost_pack_num);
	lua_pushnumber(L, (lua_Number)(uintptr_t)&h->rec);
	lua_setfield(L, -2, "rec");
	lua_pushvalue(L, c_idx);                     /* top+5: c */
	set_helper(L, h, "decode_get", l_decode_get);
	set_helper(L, h, "decode_at", l_decode_at);
	set_helper(L, h, "materialize", l_materialize);
	set_helper(L, h, "bigint", l_bigint);
	set_helper(L, h, "lazy_index", l_lazy_index);
	set_helper(L, h, "decode_rec", l_decode_rec);
	set_helper(L, h, "failed", l_failed);
	set_helper(L, h, "topic_now", l_topic_now);
	lua_pushcfunction(L, l_guard);
	lua_setfield(L, -2, "guard");
	kp_luamp_push_lazy(L);                       /* top+6..top+9 */
	kp_luamp_push_null(L);                       /* top+10 */
	lua_pushvalue(L, LUA_GLOBALSINDEX);          /* top+11: env */
	lua_call(L, 10, 1);                          /* top+1: bind */
}
