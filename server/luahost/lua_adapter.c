/*
 * lua_adapter.c - the processor descriptor that forwards to a Lua module.
 *
 * Access pattern: init builds one sandbox (lua_sandbox.h) per instance,
 * loads the prelude (lua_host.h) and then the module, and keeps, in a
 * registry ref taken once, a C closure whose upvalues are the prelude's
 * entry function (it builds each fresh record table from a constant
 * template and calls process) and the current topic name as a Lua
 * string; process pushes the record's fields and its value (a small map
 * as its bytes, for the lazy proxy; anything else decoded) and calls that
 * function under the error handler. state:get/incr/del/put and emit are
 * FFI calls of the prelude (JIT on); log, scan, put of tables and emit of
 * what the prelude does not pack stay C bindings here.
 * All are thin: they convert arguments (lua_mp.h) and call the host table
 * of the ABI, the same services a C processor calls.
 */
#include "lua_adapter.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "lua_host.h"
#include "lua_mp.h"
#include "lua_sandbox.h"
#include "base/alloc.h"
#include "base/buf.h"
#include "base/error.h"

/* The adapter's per-instance state (ctx->user). */
struct lua_proc {
	struct kp_lua_sandbox *sb;         /* owned */
	struct kp_proc_ctx *ctx;           /* the host's ctx of the current call */
	const struct kp_proc_record *rec;  /* the record being processed */
	int call_ref;                      /* registry ref of on_process */
	int run_ref;                       /* registry ref of the batch loop */
	int finish_ref;                    /* ... of the end of a run */
	const struct kp_lua_feed *feed;    /* kp_lua_run's source */
	int in_record;                     /* a run's record is under way */
	int run_start;                     /* no record of this run yet */
	int ended;                         /* the feed said there is no more */
	struct kp_buf scratch;             /* msgpack of an emit or put */
	struct kp_buf scan;                /* pairs copied by state:scan */
	int scan_failed;                   /* a copy failed (memory) */
	char *topic;                       /* last record's topic (copy) */
	uint64_t topic_hash;               /* its kp_lua_sandbox_topic_hash */
	int topic_pushed;                  /* UP_TOPIC holds it as a string */
	struct kp_lua_host host;           /* what the FFI prelude reaches */
};

/*
 * The JIT compiler's default when KAPPA_LUA_JIT is not set: 1 on, 0 off.
 * On: a compiled loop that the count hook cannot interrupt is stopped by
 * killing its worker process (proc/proc_worker.c).
 */
#define KP_LUA_JIT_DEFAULT 1

/* Upvalue indices of on_process. */
enum { UP_PROC = 1, UP_BUILD, UP_TOPIC, UP_COUNT = UP_TOPIC };

/* ------------------------------------------------------------------------
 * Bindings: upvalue 1 is the struct lua_proc.
 */

static struct lua_proc *binding(lua_State *L)
{
	kp_lua_sandbox_check_interrupt(L);
	return lua_touserdata(L, lua_upvalueindex(1));
}

static int host_fail(lua_State *L, const char *what, int rc)
{
	return luaL_error(L, "%s failed: %s", what, kp_error_text(rc));
}

/* A key argument: a string, or a number converted with tostring. */
static const char *key_arg(lua_State *L, int i, size_t *len)
{
	int t = lua_type(L, i);

	if (t != LUA_TSTRING && t != LUA_TNUMBER)
		luaL_error(L, "bad argument #%d (key must be a string or a "
			   "number, got %s)", i - 1, luaL_typename(L, i));
	return lua_tolstring(L, i, len);
}

/* Encodes the value at i into lp->scratch or raises. */
static void encode_arg(lua_State *L, struct lua_proc *lp, int i,
		       const char *what)
{
	char msg[160];

	kp_buf_reset(&lp->scratch);
	if (kp_luamp_encode(L, i, &lp->scratch, msg, sizeof(msg)) != 0)
		luaL_error(L, "%s: %s", what, msg);
}

/* Pushes the msgpack at value or raises. */
static void push_value(lua_State *L, const char *value, size_t len,
		       const char *what)
{
	char msg[160];

	if (kp_luamp_push(L, value, len, msg, sizeof(msg)) != 0)
		luaL_error(L, "%s: %s", what, msg);
}

/* ctx:emit(topic, value [, key]) */
static int l_emit(lua_State *L)
{
	struct lua_proc *lp = binding(L);
	const struct kp_proc_host *h = lp->ctx->host;
	size_t tlen, klen = 0;
	const char *topic = luaL_checklstring(L, 2, &tlen);
	const char *key = NULL;
	int rc;

	if (!lua_isnoneornil(L, 4))
		key = key_arg(L, 4, &klen);
	encode_arg(L, lp, 3, "emit");
	rc = (lp->host.emit != NULL ? lp->host.emit : h->emit)(
		lp->ctx->host_data, topic, tlen, key, klen, lp->scratch.data,
		lp->scratch.len);
	if (rc == KP_ENOTOPIC)
		return luaL_error(L, "emit to '%s' failed: not one of this "
				  "processor's outputs (declare it with --output)",
				  topic);
	if (rc == KP_ENOTOWNER)
		return luaL_error(L, "emit to '%s' failed: the topic exists and "
				  "is not this processor's (a processor writes "
				  "only its own topics: declare it with --output "
				  "when creating the processor, or emit to a new "
				  "topic)", topic);
	if (rc == KP_EBADTOPIC)
		return luaL_error(L, "emit failed: '%s' is not a valid output "
				  "topic name (1..188 of A-Z a-z 0-9 . _ -)",
				  topic);
	if (rc < 0)
		return host_fail(L, "emit", rc);
	return 0;
}

/* ctx:log(level, message) */
static int l_log(lua_State *L)
{
	static const char *const levels[] = {
		"debug", "info", "warn", "error", NULL
	};
	struct lua_proc *lp = binding(L);
	int level = luaL_checkoption(L, 2, NULL, levels);
	const char *msg = luaL_checkstring(L, 3);

	lp->ctx->host->log(lp->ctx->host_data, level, msg);
	return 0;
}

/* state:get(key) -> value or nil */
static int l_get(lua_State *L)
{
	struct lua_proc *lp = binding(L);
	size_t klen, vlen = 0;
	const char *key = key_arg(L, 2, &klen);
	const char *value = NULL;
	int rc;

	rc = lp->ctx->host->state_get(lp->ctx->host_data, key, klen, &value,
				      &vlen);
	if (rc < 0)
		return host_fail(L, "state:get", rc);
	if (rc == 0) {
		lua_pushnil(L);
		return 1;
	}
	push_value(L, value, vlen, "state:get");
	return 1;
}

/* state:put(key, value) */
static int l_put(lua_State *L)
{
	struct lua_proc *lp = binding(L);
	size_t klen;
	const char *key = key_arg(L, 2, &klen);
	int rc;

	encode_arg(L, lp, 3, "state:put");
	rc = lp->ctx->host->state_put(lp->ctx->host_data, key, klen,
				      lp->scratch.data, lp->scratch.len);
	if (rc < 0)
		return host_fail(L, "state:put", rc);
	return 0;
}

/* state:incr(key [, delta = 1]) -> new value */
static int l_incr(lua_State *L)
{
	struct lua_proc *lp = binding(L);
	size_t klen;
	const char *key = key_arg(L, 2, &klen);
	int64_t delta = 1, result = 0;
	int rc;

	if (!lua_isnoneornil(L, 3) && !kp_luamp_to_int(L, 3, &delta))
		return luaL_error(L, "state:incr: delta must be an integer");
	rc = lp->ctx->host->state_incr(lp->ctx->host_data, key, klen, delta,
				       &result);
	if (rc < 0)
		return host_fail(L, "state:incr", rc);
	kp_luamp_push_int(L, result);
	return 1;
}

/* state:del(key) */
static int l_del(lua_State *L)
{
	struct lua_proc *lp = binding(L);
	size_t klen;
	const char *key = key_arg(L, 2, &klen);
	int rc;

	rc = lp->ctx->host->state_del(lp->ctx->host_data, key, klen);
	if (rc < 0)
		return host_fail(L, "state:del", rc);
	return 0;
}

/* Appends a length-prefixed piece to lp->scan. */
static int scan_put(struct lua_proc *lp, const char *p, size_t len)
{
	uint64_t n = len;

	if (kp_buf_append(&lp->scan, &n, sizeof(n)) != 0 ||
	    kp_buf_append(&lp->scan, p, len) != 0)
		return -1;
	return 0;
}

static int on_visit(void *arg, const char *key, size_t key_len,
		    const char *value, size_t value_len)
{
	struct lua_proc *lp = arg;

	if (scan_put(lp, key, key_len) != 0 ||
	    scan_put(lp, value, value_len) != 0) {
		lp->scan_failed = 1;
		return 1;
	}
	return 0;
}

/* Reads a length-prefixed piece of lp->scan at *pos. */
static const char *scan_get(struct lua_proc *lp, size_t *pos, size_t *len)
{
	uint64_t n;
	const char *p;

	memcpy(&n, lp->scan.data + *pos, sizeof(n));
	p = lp->scan.data + *pos + sizeof(n);
	*pos += sizeof(n) + (size_t)n;
	*len = (size_t)n;
	return p;
}

/* state:scan(prefix [, limit = 0 (all)]) -> { {key=, value=}, ... } */
static int l_scan(lua_State *L)
{
	struct lua_proc *lp = binding(L);
	size_t plen, pos = 0, len;
	const char *prefix = key_arg(L, 2, &plen);
	int64_t limit = 0;
	const char *p;
	int rc, i = 0;

	if (!lua_isnoneornil(L, 3) && (!kp_luamp_to_int(L, 3, &limit) ||
				       limit < 0))
		return luaL_error(L, "state:scan: limit must be an integer "
				  ">= 0");
	kp_buf_reset(&lp->scan);
	lp->scan_failed = 0;
	rc = lp->ctx->host->state_scan(lp->ctx->host_data, prefix, plen,
				       (size_t)limit, on_visit, lp);
	if (rc < 0)
		return host_fail(L, "state:scan", rc);
	if (lp->scan_failed)
		return luaL_error(L, "state:scan: out of memory");
	lua_settop(L, 3);
	lua_newtable(L);                         /* 4: result */
	while (pos < lp->scan.len) {
		lua_createtable(L, 0, 2);        /* 5: {key=, value=} */
		p = scan_get(lp, &pos, &len);
		lua_pushlstring(L, p, len);
		lua_setfield(L, 5, "key");
		p = scan_get(lp, &pos, &len);
		push_value(L, p, len, "state:scan");
		lua_setfield(L, 5, "value");
		lua_rawseti(L, 4, ++i);
	}
	return 1;
}

/* Sets t[name] = closure(fn, lp) on the table at -1. */
static void set_binding(lua_State *L, struct lua_proc *lp, const char *name,
			lua_CFunction fn)
{
	lua_pushlightuserdata(L, lp);
	lua_pushcclosure(L, fn, 1);
	lua_setfield(L, -2, name);
}

/*
 * Pushes the ctx table (config, name, emit, log; the prelude adds state)
 * and the table of C bindings the prelude falls back to or, with the JIT
 * off, uses instead of its FFI calls (get, put, incr, del, scan, emit,
 * jit).
 */
static void push_ctx(lua_State *L, struct lua_proc *lp)
{
	struct kp_proc_ctx *ctx = lp->ctx;

	lua_createtable(L, 0, 5);                /* -1: ctx */
	if (ctx->config != NULL && ctx->config_len > 0)
		push_value(L, ctx->config, ctx->config_len, "config");
	else
		lua_newtable(L);
	lua_setfield(L, -2, "config");
	lua_pushstring(L, ctx->name != NULL ? ctx->name : "");
	lua_setfield(L, -2, "name");
	set_binding(L, lp, "emit", l_emit);
	set_binding(L, lp, "log", l_log);
	lua_createtable(L, 0, 8);                /* -1: c, -2: ctx */
	set_binding(L, lp, "get", l_get);
	set_binding(L, lp, "put", l_put);
	set_binding(L, lp, "incr", l_incr);
	set_binding(L, lp, "del", l_del);
	set_binding(L, lp, "scan", l_scan);
	set_binding(L, lp, "emit", l_emit);
	lua_pushboolean(L, lp->sb->jit);
	lua_setfield(L, -2, "jit");
}

/* ------------------------------------------------------------------------
 * Calls
 */

/*
 * Pushes the record's value and whether it is lazy: a small map with
 * string keys goes as its msgpack bytes (the prelude wraps them in a
 * proxy), anything else decoded. Invalid msgpack fails the record either
 * way.
 */
static void push_record_value(lua_State *L, const struct kp_proc_record *rec)
{
	if (rec->value != NULL &&
	    kp_lua_host_lazy_ok(rec->value, rec->value_len)) {
		lua_pushlstring(L, rec->value, rec->value_len);
		lua_pushboolean(L, 1);
		return;
	}
	push_value(L, rec->value, rec->value_len, "record value");
	lua_pushnil(L);
}

/* The per-record call: pushes the fields and calls the entry function. */
static int on_process(lua_State *L)
{
	struct lua_proc *lp = lua_touserdata(L, lua_upvalueindex(UP_PROC));
	const struct kp_proc_record *rec = lp->rec;

	lua_settop(L, 0);
	lua_pushvalue(L, lua_upvalueindex(UP_BUILD));   /* 1: builder */
	if (lp->topic_pushed) {                         /* 2: topic */
		lua_pushvalue(L, lua_upvalueindex(UP_TOPIC));
	} else {
		lua_pushstring(L, rec->topic);
		if (lp->topic != NULL) {
			lua_pushvalue(L, 2);
			lua_replace(L, lua_upvalueindex(UP_TOPIC));
			lp->topic_pushed = 1;
		}
	}
	lua_pushnumber(L, rec->partition);              /* 3 */
	lua_pushnumber(L, (lua_Number)rec->offset);     /* 4 */
	lua_pushnumber(L, (lua_Number)rec->ts);         /* 5 */
	if (rec->key != NULL)                           /* 6: key */
		lua_pushlstring(L, rec->key, rec->key_len);
	else
		lua_pushnil(L);
	push_record_value(L, rec);                      /* 7, 8: value, lazy */
	lua_call(L, 7, 0);
	return 0;
}

/*
 * Loads the prelude and the module and prepares the call (protected; ud
 * is the struct lua_proc). Stack: 1 lp, 2 ctx, 3 c, 4 bind, 5 module,
 * 6 process.
 */
static int on_init(lua_State *L)
{
	struct lua_proc *lp = lua_touserdata(L, 1);
	const char *src = kp_lua_sandbox_display_name(lp->sb, lp->ctx->source);

	lua_settop(L, 1);
	push_ctx(L, lp);                            /* 2: ctx, 3: c */
	kp_lua_host_push_prelude(L, &lp->host, 3);  /* 4: bind */
	if (kp_lua_sandbox_load(lp->sb, lp->ctx->source) != 0)  /* 5: chunk */
		return lua_error(L);
	lua_call(L, 0, 1);                          /* 5: module */
	if (!lua_istable(L, 5))
		return luaL_error(L, "%s: the module must return a table with "
				  "a process function (it returned %s)", src,
				  luaL_typename(L, 5));
	lua_getfield(L, 5, "process");              /* 6: process */
	if (!lua_isfunction(L, 6))
		return luaL_error(L, "%s: the module's table has no process "
				  "function (process is %s)", src,
				  luaL_typename(L, 6));
	lua_pushlightuserdata(L, lp);               /* 7..: upvalues */
	lua_pushvalue(L, 4);
	lua_pushvalue(L, 6);
	lua_pushvalue(L, 2);
	kp_lua_sandbox_push_handler(lp->sb);
	lua_call(L, 3, 3);                   /* 8: entry, 9: run, 10: finish */
	lp->finish_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lp->run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pushnil(L);                             /* 9: the topic */
	lua_pushcclosure(L, on_process, UP_COUNT);  /* 7: the call */
	lp->call_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_getfield(L, 5, "init");                 /* 7: M.init */
	if (lua_isnil(L, 7))
		return 0;
	if (!lua_isfunction(L, 7))
		return luaL_error(L, "%s: the module's init is a %s, not a "
				  "function", src, luaL_typename(L, 7));
	lua_pushvalue(L, 2);                        /* 8: ctx */
	lua_call(L, 1, 0);
	return 0;
}

static void proc_free(struct lua_proc *lp)
{
	if (lp == NULL)
		return;
	kp_lua_sandbox_delete(lp->sb);
	kp_buf_destroy(&lp->scratch);
	kp_buf_destroy(&lp->scan);
	kp_free(lp->topic);
	kp_free(lp);
}

/*
 * KAPPA_LUA_JIT=on (or 1) turns the JIT compiler on, =off (or 0) off;
 * unset, KP_LUA_JIT_DEFAULT decides. Count hooks do not fire inside
 * compiled traces: there the time budget stops a loop by killing the
 * processor's worker process.
 */
static int jit_wanted(void)
{
	const char *v = getenv("KAPPA_LUA_JIT");

	if (v == NULL || v[0] == '\0')
		return KP_LUA_JIT_DEFAULT;
	if (strcmp(v, "1") == 0 || strcmp(v, "on") == 0)
		return 1;
	if (strcmp(v, "0") == 0 || strcmp(v, "off") == 0)
		return 0;
	return KP_LUA_JIT_DEFAULT;
}

static int host_next(struct kp_lua_host *h);
static void host_decode(struct kp_lua_host *h, lua_State *L);
static void host_fail_record(struct kp_lua_host *h, lua_State *L);
static void host_topic(struct kp_lua_host *h, lua_State *L);

static int lua_proc_init(struct kp_proc_ctx *ctx, char *err)
{
	struct kp_lua_sandbox_opts opts = { ctx->memory_limit, jit_wanted(),
					    NULL };
	struct lua_proc *lp = kp_calloc(1, sizeof(*lp));

	ctx->user = NULL;
	if (lp == NULL) {
		snprintf(err, KP_PROC_ERR_MAX, "%s: out of memory",
			 ctx->source);
		return -1;
	}
	kp_buf_init(&lp->scratch);
	kp_buf_init(&lp->scan);
	lp->ctx = ctx;
	lp->host.ctx = ctx;
	lp->call_ref = LUA_NOREF;
	lp->run_ref = LUA_NOREF;
	lp->finish_ref = LUA_NOREF;
	lp->host.next = host_next;
	lp->host.decode = host_decode;
	lp->host.fail = host_fail_record;
	lp->host.topic = host_topic;
	lp->sb = kp_lua_sandbox_new(&opts, err, KP_PROC_ERR_MAX);
	if (lp->sb == NULL) {
		proc_free(lp);
		return -1;
	}
	lp->host.sb = lp->sb;
	ctx->user = lp;
	if (kp_lua_sandbox_cpcall(lp->sb, on_init, lp, err,
				  KP_PROC_ERR_MAX) != 0) {
		ctx->user = NULL;
		proc_free(lp);
		return -1;
	}
	kp_lua_sandbox_clear_interrupt(lp->sb);
	return 0;
}

/*
 * The record's topic differs from the last one's: remembers it (a copy,
 * since rec->topic is only borrowed), its hash for the random seed, and
 * that on_process must push it afresh. Without a copy (no memory, or a
 * NULL topic) every record pushes and hashes its topic.
 */
static void new_topic(struct lua_proc *lp, const char *topic)
{
	kp_free(lp->topic);
	lp->topic = topic != NULL ? kp_strndup(topic, strlen(topic)) : NULL;
	lp->topic_hash = kp_lua_sandbox_topic_hash(topic);
	lp->topic_pushed = 0;
}

static int lua_proc_process(struct kp_proc_ctx *ctx,
			    const struct kp_proc_record *rec, char *err)
{
	struct lua_proc *lp = ctx->user;
	lua_State *L = lp->sb->L;
	int top = lua_gettop(L);
	int rc;

	kp_lua_sandbox_clear_interrupt(lp->sb);
	lp->ctx = ctx;
	lp->host.ctx = ctx;
	lp->rec = rec;
	if (lp->topic == NULL || rec->topic == NULL ||
	    strcmp(lp->topic, rec->topic) != 0)
		new_topic(lp, rec->topic);
	kp_lua_sandbox_seed_hashed(lp->sb, lp->topic_hash, rec->partition,
				   rec->offset);
	lua_rawgeti(L, LUA_REGISTRYINDEX, lp->call_ref); /* top+1: the call */
	rc = kp_lua_sandbox_call(lp->sb, 0, 0, err, KP_PROC_ERR_MAX);
	lua_settop(L, top);
	lp->rec = NULL;
	return rc == 0 ? 0 : -1;
}

/* ---- batch runs (kp_lua_run) ------------------------------------------ */

static struct lua_proc *proc_of_host(struct kp_lua_host *h)
{
	return (struct lua_proc *)(void *)((char *)h -
					   offsetof(struct lua_proc, host));
}

/* The prelude's next_rec: begins the feed's next record. */
static int host_next(struct kp_lua_host *h)
{
	struct lua_proc *lp = proc_of_host(h);
	const struct kp_proc_record *rec;

	lp->in_record = 0;
	if (lp->ended || lp->feed->next(lp->feed->arg, &rec) != 1) {
		lp->ended = 1;
		lp->rec = NULL;
		return KP_LUAHOST_END;
	}
	lp->in_record = 1;
	lp->rec = rec;
	h->rec.new_topic = lp->run_start;
	lp->run_start = 0;
	if (lp->topic == NULL || rec->topic == NULL ||
	    strcmp(lp->topic, rec->topic) != 0) {
		new_topic(lp, rec->topic);
		h->rec.new_topic = 1;
	}
	kp_lua_sandbox_seed_hashed(lp->sb, lp->topic_hash, rec->partition,
				   rec->offset);
	h->rec.partition = rec->partition;
	h->rec.offset = (double)rec->offset;
	h->rec.ts = (double)rec->ts;
	h->rec.key = rec->key;
	h->rec.key_len = (double)rec->key_len;
	h->rec.value = rec->value;
	h->rec.value_len = (double)rec->value_len;
	if (rec->value == NULL ||
	    !kp_lua_host_lazy_ok(rec->value, rec->value_len))
		return KP_LUAHOST_DECODE;
	/* Off the run's bytes, a lazy value gets its own copy. */
	h->rec.value_off = -1;
	if (h->rec.base != NULL && rec->value >= h->rec.base &&
	    rec->value_len <= (size_t)h->rec.base_len &&
	    (size_t)(rec->value - h->rec.base) <=
		    (size_t)h->rec.base_len - rec->value_len)
		h->rec.value_off = (double)(rec->value - h->rec.base);
	return KP_LUAHOST_LAZY;
}

static void host_decode(struct kp_lua_host *h, lua_State *L)
{
	const struct kp_proc_record *rec = proc_of_host(h)->rec;

	push_value(L, rec->value, rec->value_len, "record value");
}

static void host_topic(struct kp_lua_host *h, lua_State *L)
{
	const struct kp_proc_record *rec = proc_of_host(h)->rec;

	lua_pushstring(L, rec != NULL && rec->topic != NULL ? rec->topic : "");
}

/*
 * The record raised the message at the top of L (through the sandbox's
 * handler): it is worded as a failed process() call's would be.
 */
static void host_fail_record(struct kp_lua_host *h, lua_State *L)
{
	struct lua_proc *lp = proc_of_host(h);
	const char *msg = lua_tostring(L, -1);
	char err[KP_PROC_ERR_MAX];
	int status = LUA_ERRRUN;

	/* Out of memory, or the handler's traceback ran out of it. */
	if (msg != NULL && (strncmp(msg, "not enough memory", 17) == 0 ||
			    strcmp(msg, "error in error handling") == 0))
		status = LUA_ERRMEM;
	kp_lua_sandbox_error(lp->sb, status, err, sizeof(err));
	lp->in_record = 0;
	lp->feed->fail(lp->feed->arg, err);
}

int kp_lua_can_run(const struct kp_proc_ctx *ctx)
{
	const struct lua_proc *lp = ctx->user;

	return lp != NULL && lp->sb->jit && lp->run_ref != LUA_NOREF &&
	       lp->finish_ref != LUA_NOREF;
}

void kp_lua_run(struct kp_proc_ctx *ctx, const struct kp_lua_feed *feed)
{
	struct lua_proc *lp = ctx->user;
	lua_State *L = lp->sb->L;
	int top = lua_gettop(L);
	char err[KP_PROC_ERR_MAX];

	kp_lua_sandbox_clear_interrupt(lp->sb);
	lp->ctx = ctx;
	lp->host.ctx = ctx;
	lp->feed = feed;
	lp->ended = 0;
	lp->run_start = 1;
	/* One shared copy of the run's bytes, unless it would crowd the limit. */
	lp->host.rec.base = feed->base;
	lp->host.rec.base_len = (double)feed->base_len;
	if (lp->sb->mem_limit != 0 && feed->base_len > lp->sb->mem_limit / 8) {
		lp->host.rec.base = NULL;
		lp->host.rec.base_len = 0;
	}
	for (int first = 1; !lp->ended; first = 0) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, lp->run_ref);
		lua_pushboolean(L, first);
		if (kp_lua_sandbox_call(lp->sb, 1, 0, err, sizeof(err)) == 0)
			break;
		lua_settop(L, top);
		/*
		 * Raised outside xpcall (memory, an interrupt in the loop):
		 * the record under way fails; between records the run ends
		 * and the caller goes on from the next record later.
		 */
		if (!lp->in_record)
			break;
		lp->in_record = 0;
		feed->fail(feed->arg, err);
	}
	lua_settop(L, top);
	lua_rawgeti(L, LUA_REGISTRYINDEX, lp->finish_ref);
	(void)kp_lua_sandbox_call(lp->sb, 0, 0, err, sizeof(err));
	lua_settop(L, top);
	lp->host.rec.base = NULL;
	lp->feed = NULL;
	lp->rec = NULL;
}

void kp_lua_use_packed_emit(struct kp_proc_ctx *ctx, kp_lua_emit_fn emit)
{
	struct lua_proc *lp = ctx->user;

	if (lp != NULL)
		lp->host.emit = emit;
}

size_t kp_lua_memory_used(const struct kp_proc_ctx *ctx)
{
	const struct lua_proc *lp = ctx->user;

	return lp != NULL ? lp->sb->mem_used : 0;
}

static void lua_proc_fini(struct kp_proc_ctx *ctx)
{
	proc_free(ctx->user);
	ctx->user = NULL;
}

static void lua_proc_interrupt(struct kp_proc_ctx *ctx)
{
	struct lua_proc *lp = ctx->user;

	if (lp != NULL && lp->sb != NULL)
		kp_lua_sandbox_interrupt(lp->sb);
}

static const struct kp_processor lua_descriptor = {
	.abi_version = KP_PROC_ABI_VERSION,
	.size = sizeof(struct kp_processor),
	.name = "lua",
	.init = lua_proc_init,
	.process = lua_proc_process,
	.fini = lua_proc_fini,
	.interrupt = lua_proc_interrupt,
};

const struct kp_processor *kp_lua_processor(void)
{
	return &lua_descriptor;
}
