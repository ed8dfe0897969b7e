/*
 * lua_host.h - the lean host path of Lua processors: C functions that the
 * trusted prelude (lua_host.c) calls through LuaJIT's FFI, so that the JIT
 * can compile a processor's hot loop including its state calls, and the
 * prelude itself (record entry, ctx.state, the lazy rec.value).
 *
 * Access pattern: one struct kp_lua_host per processor instance, used by
 * the thread that owns its sandbox. The prelude reaches it as a number (its
 * address: ffi.cast of a lightuserdata is not compiled by this LuaJIT) and
 * the functions below as function pointers cast once at load. User code
 * never sees ffi, the addresses or the prelude's locals.
 *
 * Every kp_luahost_* function returns 0 on success, KP_LUAHOST_INTR when
 * the call is interrupted (the prelude raises the interrupt), another
 * positive KP_LUAHOST_* code for the cases named at each, or a negative
 * project error code from the host (the prelude raises "what failed:
 * text"). None allocates Lua memory and none raises.
 */
#ifndef KP_LUA_HOST_H
#define KP_LUA_HOST_H

#include <stddef.h>

#include <lua.h>

#include "kappa_processor.h"
#include "lua_sandbox.h"

/* Return codes of the FFI functions (besides 0 and negative errors). */
#define KP_LUAHOST_INTR 1     /* interrupted: raise the time-budget error */
#define KP_LUAHOST_BIG 2      /* incr: result outside +-2^53, see digits */
#define KP_LUAHOST_DELTA 3    /* incr: delta is not an integer */

/* Kinds returned by kp_luahost_get and kp_luahost_field (>= 0). */
enum {
	KP_LUAHOST_ABSENT = 0,  /* no such key */
	KP_LUAHOST_NUM = 10,    /* out[0] is the number */
	KP_LUAHOST_STR = 11,    /* field: out[0] offset, out[1] length */
	KP_LUAHOST_TRUE = 12,
	KP_LUAHOST_FALSE = 13,
	KP_LUAHOST_NIL = 14,    /* msgpack nil */
	KP_LUAHOST_OTHER = 15   /* decode with the C API (get: host->val) */
};

/* Kinds of record kp_luahost_next hands the prelude's batch loop. */
enum {
	KP_LUAHOST_END = 0,     /* no more records in this run */
	KP_LUAHOST_LAZY = 1,    /* the value is a small map: a lazy proxy */
	KP_LUAHOST_DECODE = 2,  /* the value is decoded by the C helper */
	KP_LUAHOST_NOVALUE = 3  /* the record has no value (nil) */
};

/*
 * The record of a batch run, read by the prelude through the FFI (its
 * layout is declared there too: keep the two alike). Numbers are doubles,
 * as Lua sees them; key is NULL for a record without a key.
 */
struct kp_lua_rec {
	double partition, offset, ts;
	const char *key;
	double key_len;
	const char *value;
	double value_off;              /* of value in base (lazy records) */
	double value_len;
	double new_topic;              /* 1: the topic changed (topic_now()) */
	const char *base;              /* the run's bytes, holding the values */
	double base_len;
};

/* The per-instance host of the prelude. */
struct kp_lua_host {
	struct kp_lua_sandbox *sb;     /* borrowed; the instance's sandbox */
	struct kp_proc_ctx *ctx;       /* borrowed; the ctx of the current call */
	const char *val;               /* get: the borrowed value, for OTHER */
	size_t val_len;                /* its length */
	char digits[24];               /* incr: a result outside +-2^53 */
	struct kp_lua_rec rec;         /* the batch loop's current record */
	/*
	 * The host's emit of values the prelude or lua_mp.c encoded (they
	 * need no second walk), with the arguments of kp_proc_host's emit
	 * and its host_data; NULL: ctx->host->emit (kp_lua_use_packed_emit).
	 */
	int (*emit)(void *host_data, const char *topic, size_t topic_len,
		    const char *key, size_t key_len, const char *value,
		    size_t value_len);
	/*
	 * The batch loop's source (set by the adapter): next begins the next
	 * record, fills rec and returns a KP_LUAHOST_* record kind; decode
	 * pushes the record's value (or raises); fail hears that the current
	 * record raised the message on top of the stack; topic pushes the
	 * current record's topic.
	 */
	int (*next)(struct kp_lua_host *h);
	void (*decode)(struct kp_lua_host *h, lua_State *L);
	void (*fail)(struct kp_lua_host *h, lua_State *L);
	void (*topic)(struct kp_lua_host *h, lua_State *L);
};

/*
 * Loads the prelude into L and pushes bind(process, ctx, handler): bind
 * sets ctx.state (get, put, incr, del over FFI; scan from the helpers)
 * and ctx.emit, and returns entry and run. run() is the batch loop (JIT
 * on only): it takes records from h->next until KP_LUAHOST_END and calls
 * process on each under xpcall with handler, calling h->fail when one
 * raises; the JIT compiles the loop, the FFI calls and the processor into
 * one trace. entry(topic, partition, offset, ts, key, value, lazy) is one
 * record: it builds rec (rec.value a lazy proxy of the msgpack string
 * value when lazy is true) and tail-calls process(ctx, rec). c_idx is a
 * table of the C bindings (state methods get, put, incr, del, scan; emit)
 * and jit (whether the compiler is on): with the JIT on the prelude uses
 * FFI calls and falls back to put for tables and to scan; its emit packs
 * a string, number, boolean or flat table (no metatable, string keys,
 * such values) itself, into the bytes kp_luamp_encode would give, and
 * hands anything else, and any emit the host refused, to the emit
 * binding. With the JIT off it uses the bindings as they are (FFI calls
 * are slow in the interpreter). The prelude adds its own helpers to the
 * table. It
 * also replaces pairs, next, rawget, rawset and setmetatable in the
 * sandbox environment (LUA_GLOBALSINDEX) by versions that first turn a
 * lazy proxy into its table. Call before the user's module runs; h must
 * outlive the state. Raises on failure (call protected).
 */
void kp_lua_host_push_prelude(lua_State *L, struct kp_lua_host *h, int c_idx);

/*
 * Checks a record value for the lazy path: 1 when buf is exactly one
 * valid msgpack map of at most 16 pairs whose keys are all strings
 * (rec.value is then a proxy decoding fields on access), 0 otherwise
 * (another value, or bytes that are not valid msgpack: one walk checks
 * both).
 */
int kp_lua_host_lazy_ok(const char *buf, size_t len);

/* The FFI functions (also called by the unit tests). */
int kp_luahost_incr(double self, const char *key, size_t key_len,
		    double delta, double *out);
int kp_luahost_get(double self, const char *key, size_t key_len,
		   double *out);
int kp_luahost_del(double self, const char *key, size_t key_len);
int kp_luahost_put_num(double self, const char *key, size_t key_len,
		       double v);
int kp_luahost_put_str(double self, const char *key, size_t key_len,
		       const char *s, size_t len);
int kp_luahost_field(const char *buf, size_t len, const char *key,
		     size_t key_len, double *out);
int kp_luahost_field_at(const char *base, double off, double len,
			const char *key, size_t key_len, double *out);
int kp_luahost_next(double self);
/*
 * Pack a string (len < 2^31 - 5, a Lua string's) or a number at dst, by
 * lua_mp.h's rules and with its packer: the caller has room for len + 5,
 * or 9, bytes. Return the bytes written.
 */
int kp_luahost_pack_str(char *dst, const char *s, size_t len);
int kp_luahost_pack_num(char *dst, double v);
/* Emits value, one msgpack object the prelude packed (key NULL: none). */
int kp_luahost_emit(double self, const char *topic, size_t topic_len,
		    const char *key, size_t key_len, const char *value,
		    size_t value_len);
const char *kp_luahost_error_text(int rc);

#endif
