/*
 * test_lua_adapter.c - the Lua processor descriptor driven as the host
 * drives it, with a fake host table that records emits, logs and state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include <cmocka.h>
#include <msgpack.h>

#include "kappa_processor.h"

#include "base/mp.h"
#include "luahost/lua_adapter.h"

/* ------------------------------------------------------------------------
 * The fake host
 */

#define FAKE_MAX 64

struct fake_emit {
	char topic[32];
	int has_key;
	char key[32];
	size_t key_len;
	char value[512];
	size_t value_len;
};

struct fake_kv {
	char key[64];
	size_t key_len;
	char value[256];
	size_t value_len;
};

struct fake {
	struct fake_emit emits[FAKE_MAX];
	int n_emits;
	struct fake_kv kv[FAKE_MAX];
	int n_kv;
	char logs[8][128];
	int log_levels[8];
	int n_logs;
	int fail_emit;
};

static struct fake F;

static int f_emit(void *hd, const char *topic, size_t topic_len,
		  const char *key, size_t key_len, const char *value,
		  size_t value_len)
{
	struct fake *f = hd;
	struct fake_emit *e;

	if (f->fail_emit || f->n_emits == FAKE_MAX)
		return -1;
	e = &f->emits[f->n_emits++];
	assert_true(topic_len < sizeof(e->topic));
	memcpy(e->topic, topic, topic_len);
	e->topic[topic_len] = '\0';
	e->has_key = key != NULL;
	if (key != NULL) {
		assert_true(key_len < sizeof(e->key));
		memcpy(e->key, key, key_len);
		e->key_len = key_len;
	}
	assert_true(value_len <= sizeof(e->value));
	memcpy(e->value, value, value_len);
	e->value_len = value_len;
	return 0;
}

static struct fake_kv *find(struct fake *f, const char *key, size_t len)
{
	int i;

	for (i = 0; i < f->n_kv; i++)
		if (f->kv[i].key_len == len && memcmp(f->kv[i].key, key, len) == 0)
			return &f->kv[i];
	return NULL;
}

static int f_put(void *hd, const char *key, size_t key_len, const char *value,
		 size_t value_len)
{
	struct fake *f = hd;
	struct fake_kv *kv = find(f, key, key_len);

	if (kv == NULL) {
		if (f->n_kv == FAKE_MAX)
			return -1;
		kv = &f->kv[f->n_kv++];
		memcpy(kv->key, key, key_len);
		kv->key_len = key_len;
	}
	assert_true(value_len <= sizeof(kv->value));
	memcpy(kv->value, value, value_len);
	kv->value_len = value_len;
	return 0;
}

static int f_get(void *hd, const char *key, size_t key_len,
		 const char **value, size_t *value_len)
{
	struct fake_kv *kv = find(hd, key, key_len);

	if (kv == NULL)
		return 0;
	*value = kv->value;
	*value_len = kv->value_len;
	return 1;
}

static int f_incr(void *hd, const char *key, size_t key_len, int64_t delta,
		  int64_t *result)
{
	struct fake_kv *kv = find(hd, key, key_len);
	struct kp_mp_view v;
	int64_t cur = 0;
	char buf[16];
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int rc;

	if (kv != NULL) {
		v.ptr = kv->value;
		v.len = kv->value_len;
		if (kp_mp_read_int(v, &cur) != 0)
			return -1;
	}
	*result = cur + delta;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_int64(&pk, *result);
	assert_true(sb.size <= sizeof(buf));
	memcpy(buf, sb.data, sb.size);
	rc = f_put(hd, key, key_len, buf, sb.size);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

static int f_del(void *hd, const char *key, size_t key_len)
{
	struct fake *f = hd;
	struct fake_kv *kv = find(f, key, key_len);

	if (kv != NULL)
		*kv = f->kv[--f->n_kv];
	return 0;
}

static int cmp_kv(const void *a, const void *b)
{
	const struct fake_kv *x = *(const struct fake_kv *const *)a;
	const struct fake_kv *y = *(const struct fake_kv *const *)b;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(x->key, y->key, n);

	return c != 0 ? c : (int)x->key_len - (int)y->key_len;
}

static int f_scan(void *hd, const char *prefix, size_t prefix_len,
		  size_t limit,
		  int (*visit)(void *, const char *, size_t, const char *,
			       size_t),
		  void *arg)
{
	struct fake *f = hd;
	struct fake_kv *sorted[FAKE_MAX];
	size_t i, n = 0, seen = 0;

	for (i = 0; i < (size_t)f->n_kv; i++)
		if (f->kv[i].key_len >= prefix_len &&
		    memcmp(f->kv[i].key, prefix, prefix_len) == 0)
			sorted[n++] = &f->kv[i];
	qsort(sorted, n, sizeof(sorted[0]), cmp_kv);
	for (i = 0; i < n && (limit == 0 || seen < limit); i++, seen++)
		if (visit(arg, sorted[i]->key, sorted[i]->key_len,
			  sorted[i]->value, sorted[i]->value_len) != 0)
			break;
	return 0;
}

static void f_log(void *hd, int level, const char *message)
{
	struct fake *f = hd;

	if (f->n_logs == 8)
		return;
	f->log_levels[f->n_logs] = level;
	snprintf(f->logs[f->n_logs++], sizeof(f->logs[0]), "%s", message);
}

static const struct kp_proc_host fake_host = {
	.size = sizeof(struct kp_proc_host),
	.emit = f_emit,
	.state_get = f_get,
	.state_put = f_put,
	.state_incr = f_incr,
	.state_del = f_del,
	.state_scan = f_scan,
	.log = f_log,
};

/* ------------------------------------------------------------------------
 * Driving the descriptor
 */

static const struct kp_processor *P;

static int start(struct kp_proc_ctx *ctx, const char *source,
		 const char *config, size_t config_len, size_t limit, char *err)
{
	memset(&F, 0, sizeof(F));
	memset(ctx, 0, sizeof(*ctx));
	ctx->host = &fake_host;
	ctx->host_data = &F;
	ctx->name = "proc1";
	ctx->source = source;
	ctx->config = config;
	ctx->config_len = config_len;
	ctx->memory_limit = limit;
	err[0] = '\0';
	return P->init(ctx, err);
}

static void start_ok(struct kp_proc_ctx *ctx, const char *source,
		     const char *config, size_t config_len, size_t limit)
{
	char err[KP_PROC_ERR_MAX];

	if (start(ctx, source, config, config_len, limit, err) != 0)
		fail_msg("init %s: %s", source, err);
	assert_non_null(ctx->user);
}

static int feed(struct kp_proc_ctx *ctx, uint64_t offset, const char *key,
		const char *value, size_t value_len, char *err)
{
	struct kp_proc_record rec = {
		.topic = "in", .partition = 3, .offset = offset,
		.ts = 1700000000000LL + (int64_t)offset, .key = key,
		.key_len = key ? strlen(key) : 0, .value = value,
		.value_len = value_len,
	};

	err[0] = '\0';
	return P->process(ctx, &rec, err);
}

static void feed_ok(struct kp_proc_ctx *ctx, uint64_t offset, const char *key,
		    const char *value, size_t value_len)
{
	char err[KP_PROC_ERR_MAX];

	if (feed(ctx, offset, key, value, value_len, err) != 0)
		fail_msg("process: %s", err);
}

#define LIT(s) s, sizeof(s) - 1

static void test_descriptor(void **state)
{
	(void)state;
	assert_int_equal(P->abi_version, KP_PROC_ABI_VERSION);
	assert_int_equal(P->size, sizeof(struct kp_processor));
	assert_non_null(P->init);
	assert_non_null(P->process);
	assert_non_null(P->fini);
	assert_non_null(P->interrupt);
}

static void test_count_alerts(void **state)
{
	struct kp_proc_ctx ctx;
	struct fake_kv *kv;
	int i;

	(void)state;
	start_ok(&ctx, "tests/unit/lua/count_alerts.lua",
		 LIT("\x81\xa9threshold\x02"), 0);
	for (i = 0; i < 3; i++)
		feed_ok(&ctx, (uint64_t)i, NULL, LIT("\x81\xa4user\xa2u1"));
	feed_ok(&ctx, 3, NULL, LIT("\x81\xa4user\xa2u2"));
	assert_int_equal(F.n_emits, 1);
	assert_string_equal(F.emits[0].topic, "alerts");
	assert_true(F.emits[0].has_key);
	assert_int_equal(F.emits[0].key_len, 2);
	assert_memory_equal(F.emits[0].key, "u1", 2);
	assert_int_equal(F.emits[0].value_len, 12);
	assert_memory_equal(F.emits[0].value, "\x82\xa1n\x03\xa4user\xa2u1", 12);
	kv = find(&F, "u1", 2);
	assert_non_null(kv);
	assert_int_equal(kv->value_len, 1);
	assert_int_equal(kv->value[0], 3);
	assert_non_null(find(&F, "u2", 2));
	P->fini(&ctx);
	assert_null(ctx.user);
}

static void test_noop_and_record_fields(void **state)
{
	struct kp_proc_ctx ctx;
	struct kp_mp_view v, f;
	uint64_t u;

	(void)state;
	start_ok(&ctx, "tests/unit/lua/noop.lua", NULL, 0, 0);
	feed_ok(&ctx, 0, NULL, LIT("\x01"));
	feed_ok(&ctx, 1, "k", LIT("\xc0"));
	assert_int_equal(F.n_emits, 0);
	assert_int_equal(F.n_kv, 0);
	P->fini(&ctx);

	start_ok(&ctx, "tests/unit/lua/record_fields.lua", NULL, 0, 0);
	feed_ok(&ctx, 42, "k1", LIT("\x81\xa1z\x01"));
	feed_ok(&ctx, 43, NULL, LIT("\x01"));
	assert_int_equal(F.n_emits, 2);
	assert_false(F.emits[0].has_key);
	v.ptr = F.emits[0].value;
	v.len = F.emits[0].value_len;
	assert_int_equal(kp_mp_map_get(v, "topic", &f), 1);
	assert_int_equal(f.len, 3);
	assert_memory_equal(f.ptr, "\xa2in", 3);
	assert_int_equal(kp_mp_map_get(v, "partition", &f), 1);
	assert_int_equal(kp_mp_read_uint(f, &u), 0);
	assert_int_equal(u, 3);
	assert_int_equal(kp_mp_map_get(v, "offset", &f), 1);
	assert_int_equal(kp_mp_read_uint(f, &u), 0);
	assert_int_equal(u, 42);
	assert_int_equal(kp_mp_map_get(v, "ts", &f), 1);
	assert_int_equal(kp_mp_read_uint(f, &u), 0);
	assert_int_equal(u, 1700000000042ULL);
	assert_int_equal(kp_mp_map_get(v, "key", &f), 1);
	assert_memory_equal(f.ptr, "\xa2k1", 3);
	assert_int_equal(kp_mp_map_get(v, "value", &f), 1);
	assert_int_equal(f.len, 4);
	assert_memory_equal(f.ptr, "\x81\xa1z\x01", 4);
	assert_int_equal(kp_mp_map_get(v, "name", &f), 1);
	assert_memory_equal(f.ptr, "\xa5proc1", 6);
	v.ptr = F.emits[1].value;
	v.len = F.emits[1].value_len;
	assert_int_equal(kp_mp_map_get(v, "key", &f), 1);
	assert_memory_equal(f.ptr, "\xa5<nil>", 6);
	P->fini(&ctx);
}

static void test_state_ops(void **state)
{
	static const char expect[] =
		"\x87"
		"\xa4gone\xc3"
		"\xa3got\x81\xa1x\x01"
		"\xa7limited\x02"
		"\xa7missing\xc3"
		"\xa1n\x06"
		"\xa7scanned\x92"
		"\x82\xa3key\xa3" "a:1\xa5value\x81\xa1x\x01"
		"\x82\xa3key\xa3" "a:2\xa5value\x92\x01\x02"
		"\xa5seven\xc3";
	struct kp_proc_ctx ctx;

	(void)state;
	start_ok(&ctx, "tests/unit/lua/state_ops.lua", NULL, 0, 0);
	feed_ok(&ctx, 0, NULL, LIT("\x01"));
	assert_int_equal(F.n_emits, 1);
	assert_int_equal(F.emits[0].value_len, sizeof(expect) - 1);
	assert_memory_equal(F.emits[0].value, expect, sizeof(expect) - 1);
	assert_null(find(&F, "b:1", 3));
	assert_non_null(find(&F, "7", 1));
	assert_int_equal(F.n_logs, 2);
	assert_int_equal(F.log_levels[0], KP_PROC_LOG_INFO);
	assert_string_equal(F.logs[0], "state ops done");
	assert_int_equal(F.log_levels[1], KP_PROC_LOG_WARN);
	P->fini(&ctx);
}

static void test_init_with_config(void **state)
{
	struct kp_proc_ctx ctx;

	(void)state;
	start_ok(&ctx, "tests/unit/lua/with_init.lua",
		 LIT("\x82\xa6prefix\xa1p\xa6limits\x92\x0a\x14"), 0);
	assert_int_equal(F.n_logs, 1);
	assert_string_equal(F.logs[0], "init with prefix p");
	feed_ok(&ctx, 0, "kk", LIT("\x01"));
	assert_int_equal(F.n_emits, 1);
	assert_int_equal(F.emits[0].value_len, 5);
	assert_memory_equal(F.emits[0].value, "\xa4p:20", 5);
	assert_memory_equal(F.emits[0].key, "kk", 2);
	P->fini(&ctx);
}

static void expect_init_error(const char *source, const char *config,
			      size_t config_len, const char *needle)
{
	struct kp_proc_ctx ctx;
	char err[KP_PROC_ERR_MAX];

	assert_int_not_equal(start(&ctx, source, config, config_len, 0, err), 0);
	if (strstr(err, needle) == NULL)
		fail_msg("%s: error '%s' lacks '%s'", source, err, needle);
	if (strstr(err, "tests/unit/lua/") != NULL)
		fail_msg("%s: error '%s' names the directory", source, err);
	assert_null(ctx.user);
}

/* Errors name the script by its file name, not by where it lies. */
static void test_init_errors(void **state)
{
	(void)state;
	expect_init_error("tests/unit/lua/syntax_error.lua", NULL, 0,
			  "syntax_error.lua:4:");
	expect_init_error("tests/unit/lua/bad_return.lua", NULL, 0,
			  "bad_return.lua: the module must return "
			  "a table with a process function (it returned nil)");
	expect_init_error("tests/unit/lua/no_process.lua", NULL, 0,
			  "no_process.lua: the module's table has "
			  "no process function");
	expect_init_error("tests/unit/lua/init_error.lua",
			  LIT("\x81\xa6reason\xa3" "bad"),
			  "init_error.lua:5: refusing to start: bad");
	expect_init_error("tests/unit/lua/missing.lua", NULL, 0,
			  "cannot read missing.lua");
	expect_init_error("tests/unit/lua/noop.lua", LIT("\xc1"),
			  "config: malformed msgpack");
}

static void test_runtime_error(void **state)
{
	struct kp_proc_ctx ctx;
	char err[KP_PROC_ERR_MAX];

	(void)state;
	start_ok(&ctx, "tests/unit/lua/runtime_error.lua", NULL, 0, 0);
	assert_int_not_equal(feed(&ctx, 0, NULL, LIT("\x80"), err), 0);
	if (strstr(err, "runtime_error.lua:5: attempt to index "
		   "field 'missing'") != err)
		fail_msg("%s", err);
	assert_null(strstr(err, "tests/unit/lua"));
	assert_non_null(strstr(err, "stack traceback:"));
	assert_non_null(strstr(err, "runtime_error.lua:9: in function 'outer'"));
	assert_non_null(strstr(err, "runtime_error.lua:14:"));
	assert_null(strstr(err, "[C]: at 0x"));
	assert_true(strlen(err) < KP_PROC_ERR_MAX);
	/* a bad record value is an error, not a crash */
	assert_int_not_equal(feed(&ctx, 1, NULL, LIT("\x92\x01"), err), 0);
	assert_non_null(strstr(err, "record value: malformed msgpack"));
	/* the instance keeps working */
	assert_int_not_equal(feed(&ctx, 2, NULL, LIT("\x80"), err), 0);
	P->fini(&ctx);
}

static void test_bad_values(void **state)
{
	struct kp_proc_ctx ctx;
	char err[KP_PROC_ERR_MAX];

	(void)state;
	start_ok(&ctx, "tests/unit/lua/bad_emit.lua", NULL, 0, 0);
	assert_int_not_equal(feed(&ctx, 0, NULL, LIT("\x01"), err), 0);
	assert_non_null(strstr(err, "bad_emit.lua:5: emit: cannot encode a "
			       "function value"));
	assert_int_not_equal(feed(&ctx, 1, NULL, LIT("\x02"), err), 0);
	assert_non_null(strstr(err, "cycle"));
	assert_int_not_equal(feed(&ctx, 2, NULL, LIT("\x03"), err), 0);
	assert_non_null(strstr(err, "delta must be an integer"));
	assert_int_equal(F.n_emits, 0);
	P->fini(&ctx);

	start_ok(&ctx, "tests/unit/lua/count_alerts.lua",
		 LIT("\x81\xa9threshold\x00"), 0);
	F.fail_emit = 1;
	assert_int_not_equal(feed(&ctx, 0, NULL, LIT("\x81\xa4user\xa2u1"), err),
			     0);
	assert_non_null(strstr(err, "count_alerts.lua:12: emit failed"));
	P->fini(&ctx);
}

static void test_random_is_per_record(void **state)
{
	struct kp_proc_ctx ctx;

	(void)state;
	start_ok(&ctx, "tests/unit/lua/random_emit.lua", NULL, 0, 0);
	feed_ok(&ctx, 5, NULL, LIT("\x01"));
	feed_ok(&ctx, 6, NULL, LIT("\x01"));
	feed_ok(&ctx, 5, NULL, LIT("\x01"));
	assert_int_equal(F.n_emits, 3);
	assert_int_equal(F.emits[0].value_len, F.emits[2].value_len);
	assert_memory_equal(F.emits[0].value, F.emits[2].value,
			    F.emits[0].value_len);
	assert_false(F.emits[0].value_len == F.emits[1].value_len &&
		     memcmp(F.emits[0].value, F.emits[1].value,
			    F.emits[0].value_len) == 0);
	P->fini(&ctx);
}

static void test_window_and_dedup(void **state)
{
	struct kp_proc_ctx ctx;
	char rec[64];
	int n;

	(void)state;
	start_ok(&ctx, "tests/unit/lua/helpers.lua", NULL, 0, 0);
	/* offsets double as ts offsets: ts = 1700000000000 + offset */
	n = snprintf(rec, sizeof(rec), "\x82\xa2id\x01\xa4user\xa1u");
	feed_ok(&ctx, 0, NULL, rec, (size_t)n);       /* new session */
	feed_ok(&ctx, 500, NULL, rec, (size_t)n);     /* dup of id 1 */
	rec[4] = 2;
	feed_ok(&ctx, 900, NULL, rec, (size_t)n);     /* same session */
	rec[4] = 3;
	feed_ok(&ctx, 5000, NULL, rec, (size_t)n);    /* closes it */
	assert_int_equal(F.n_emits, 5);
	assert_string_equal(F.emits[0].topic, "minute");
	assert_string_equal(F.emits[1].topic, "dups");
	assert_string_equal(F.emits[2].topic, "minute");
	assert_string_equal(F.emits[3].topic, "sessions");
	assert_memory_equal(F.emits[3].value,
			    "\x84\xa5" "count\x02"
			    "\xa4last\xcf\x00\x00\x01\x8b\xcf\xe5\x6b\x84"
			    "\xa5start\xcf\x00\x00\x01\x8b\xcf\xe5\x68\x00"
			    "\xa4user\xa1u", 43);
	assert_string_equal(F.emits[4].topic, "minute");
	assert_non_null(find(&F, "session:u", 9));
	assert_non_null(find(&F, "dedup:3", 7));
	P->fini(&ctx);
}

static void test_memory_limit(void **state)
{
	struct kp_proc_ctx ctx;
	char err[KP_PROC_ERR_MAX];
	int i, failed = 0;

	(void)state;
	start_ok(&ctx, "tests/unit/lua/loops.lua", NULL, 0, 8u << 20);
	assert_int_not_equal(feed(&ctx, 0, NULL, LIT("\x81\xa4mode\xa4grow"), err),
			     0);
	assert_non_null(strstr(err, "not enough memory (limit 8388608 bytes)"));
	feed_ok(&ctx, 1, NULL, LIT("\x81\xa4mode\xa2no"));
	for (i = 0; i < 20000 && !failed; i++)
		failed = feed(&ctx, 2, NULL, LIT("\x81\xa4mode\xa5hoard"),
			      err) != 0;
	assert_true(failed);
	assert_non_null(strstr(err, "not enough memory"));
	P->fini(&ctx);
}

struct interrupter {
	struct kp_proc_ctx *ctx;
};

static void *interrupt_later(void *arg)
{
	struct interrupter *it = arg;
	struct timespec ts = { 0, 100 * 1000000L };

	nanosleep(&ts, NULL);
	P->interrupt(it->ctx);
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void expect_interrupted(struct kp_proc_ctx *ctx, const char *value,
			       size_t len)
{
	struct interrupter it = { ctx };
	char err[KP_PROC_ERR_MAX];
	pthread_t th;
	double t0 = now_s();

	assert_int_equal(pthread_create(&th, NULL, interrupt_later, &it), 0);
	assert_int_not_equal(feed(ctx, 0, NULL, value, len, err), 0);
	pthread_join(th, NULL);
	assert_true(now_s() - t0 < 1.1);
	if (strstr(err, "interrupted: time budget exceeded") != err)
		fail_msg("%s", err);
	/* the next record runs normally */
	feed_ok(ctx, 1, NULL, LIT("\x81\xa4mode\xa2no"));
}

static void test_interrupt(void **state)
{
	struct kp_proc_ctx ctx;

	(void)state;
	setenv("KAPPA_LUA_JIT", "off", 1);
	start_ok(&ctx, "tests/unit/lua/loops.lua", NULL, 0, 0);
	unsetenv("KAPPA_LUA_JIT");
	expect_interrupted(&ctx, LIT("\x81\xa4mode\xa4spin"));
	expect_interrupted(&ctx, LIT("\x81\xa4mode\xa5" "alloc"));
	P->fini(&ctx);

	start_ok(&ctx, "tests/unit/lua/loops.lua", NULL, 0, 0);
	expect_interrupted(&ctx, LIT("\x81\xa4mode\xa5" "alloc"));
	expect_interrupted(&ctx, LIT("\x81\xa4mode\xa5state"));
	P->fini(&ctx);
}

/* The state value at key must be exactly the len bytes at want. */
static void expect_kv(const char *key, const char *want, size_t len)
{
	struct fake_kv *kv = find(&F, key, strlen(key));

	assert_non_null(kv);
	assert_int_equal(kv->value_len, len);
	assert_memory_equal(kv->value, want, len);
}

/* {user: "u1", n: 5, sub: {a: [1]}, z: nil}, then user "u2". */
static void lazy_value_run(const char *jit)
{
	struct kp_proc_ctx ctx;

	setenv("KAPPA_LUA_JIT", jit, 1);
	start_ok(&ctx, "tests/unit/lua/lazy_value.lua", NULL, 0, 0);
	unsetenv("KAPPA_LUA_JIT");
	for (int i = 0; i < 200; i++)
		feed_ok(&ctx, (uint64_t)i, NULL,
			LIT("\x84\xa4user\xa2u1\xa1n\x05\xa3sub\x81\xa1" "a"
			    "\x91\x01\xa1z\xc0"));
	expect_kv("user", LIT("\xa2u1"));
	expect_kv("n", LIT("\x05"));
	expect_kv("missing", LIT("\xc3"));
	expect_kv("nested", LIT("\x81\xa1" "a\x91\x01"));
	expect_kv("null", LIT("\xc3"));
	expect_kv("mt", LIT("\xc3"));
	expect_kv("keys", LIT("\xacn,sub,user,z"));
	expect_kv("got", LIT("\xcc\xc8"));
	feed_ok(&ctx, 200, NULL, LIT("\x81\xa4user\xa2u2"));
	expect_kv("user", LIT("\xa2u2"));
	expect_kv("kept", LIT("\xa2u1"));
	assert_int_equal(F.n_emits, 1);
	assert_int_equal(F.emits[0].value_len, 28);
	assert_memory_equal(F.emits[0].value,
			    "\x84\xa5" "extra\x01\xa3sub\x81\xa1" "a\x91\x01"
			    "\xa4user\xa2u1\xa1z\xc0", 28);
	P->fini(&ctx);
}

static void test_lazy_value(void **state)
{
	(void)state;
	lazy_value_run("off");
	lazy_value_run("on");
}

/* ------------------------------------------------------------------------
 * Batch runs (kp_lua_run): the records of a run as the worker feeds them
 */

#define RUN_MAX 128

struct run_feed {
	struct kp_proc_record recs[RUN_MAX];
	int n, next;
	int failed[RUN_MAX];
	char last_error[KP_PROC_ERR_MAX];
	int fail_count;
};

static int run_next(void *arg, const struct kp_proc_record **rec)
{
	struct run_feed *f = arg;

	if (f->next == f->n)
		return 0;
	*rec = &f->recs[f->next++];
	return 1;
}

static void run_fail(void *arg, const char *msg)
{
	struct run_feed *f = arg;

	f->failed[f->next - 1] = 1;
	f->fail_count++;
	snprintf(f->last_error, sizeof(f->last_error), "%s", msg);
}

/*
 * Lays n records out in base (cap bytes) as values of {user: "u<off>",
 * fail: <off % 7 == 3 when fails>}, from first_offset on, spread over the
 * buffer, and runs them.
 */
static void run_records(struct kp_proc_ctx *ctx, struct run_feed *f,
			char *base, size_t cap, int n, uint64_t first_offset,
			int fails)
{
	struct kp_lua_feed lf = { run_next, run_fail, f, base, cap };
	size_t step = cap / (size_t)n;

	memset(f, 0, sizeof(*f));
	memset(base, 0, cap);
	assert_true(n <= RUN_MAX && step >= 32);
	for (int i = 0; i < n; i++) {
		uint64_t off = first_offset + (uint64_t)i;
		char *v = base + (size_t)i * step;
		int len = snprintf(v + 7, 12, "u%llu", (unsigned long long)off);
		int fail = fails && off % 7 == 3;

		v[0] = (char)0x82;
		memcpy(v + 1, "\xa4user", 5);
		v[6] = (char)(0xa0 | len);
		memcpy(v + 7 + len, "\xa4" "fail", 5);
		v[12 + len] = fail ? (char)0xc3 : (char)0xc2;
		f->recs[i] = (struct kp_proc_record){
			.topic = "in", .partition = 3, .offset = off,
			.ts = 1700000000000LL, .value = v,
			.value_len = (size_t)(13 + len),
		};
	}
	f->n = n;
	kp_lua_run(ctx, &lf);
	assert_int_equal(f->next, n);
}

static void test_run_batch(void **state)
{
	static char base[1 << 16];
	struct kp_proc_ctx ctx;
	struct run_feed f;
	struct fake_kv rand0;
	char batch_error[KP_PROC_ERR_MAX], err[KP_PROC_ERR_MAX];
	char fail115[32];
	size_t fail115_len;

	(void)state;
	setenv("KAPPA_LUA_JIT", "on", 1);
	start_ok(&ctx, "tests/unit/lua/batch_run.lua", NULL, 0, 0);
	assert_true(kp_lua_can_run(&ctx));
	run_records(&ctx, &f, base, sizeof(base), 120, 0, 1);
	/* Records 3, 10, 17, ... raised; the others ran, in order. */
	assert_int_equal(f.fail_count, 17);
	assert_true(f.failed[3] && f.failed[115] && !f.failed[4]);
	assert_non_null(strstr(f.last_error, "batch_run.lua:9: record 115 fails"));
	expect_kv("n", LIT("\x67"));                      /* 103 */
	expect_kv("first", LIT("\xa2u0"));
	expect_kv("last", LIT("\xa4u100"));
	assert_non_null(find(&F, LIT("rand0")));
	rand0 = *find(&F, LIT("rand0"));
	snprintf(batch_error, sizeof(batch_error), "%s", f.last_error);
	memcpy(fail115, f.recs[115].value, f.recs[115].value_len);
	fail115_len = f.recs[115].value_len;
	/* A value kept past its run still reads its own record. */
	run_records(&ctx, &f, base, sizeof(base), 50, 200, 0);
	expect_kv("first", LIT("\xa2u0"));
	expect_kv("last", LIT("\xa4u200"));
	expect_kv("kept", LIT("\x03"));

	P->fini(&ctx);

	/* A per-record call of record 0 draws the same random number. */
	start_ok(&ctx, "tests/unit/lua/batch_run.lua", NULL, 0, 0);
	unsetenv("KAPPA_LUA_JIT");
	feed_ok(&ctx, 0, NULL, LIT("\x82\xa4user\xa2u0\xa4" "fail\xc2"));
	expect_kv("rand0", rand0.value, rand0.value_len);
	/* ... and a record that raises gets the same message. */
	assert_int_not_equal(feed(&ctx, 115, NULL, fail115, fail115_len, err),
			     0);
	assert_string_equal(err, batch_error);
	P->fini(&ctx);
}

/*
 * Values kept past their run do not keep the run's bytes: 64 runs of
 * 1 MiB, one value kept of each, leave far less than 64 MiB in Lua (the
 * runs of the last collection or two are still there: about 16 MiB, as
 * these runs make almost no other garbage to pace the collector).
 */
static void test_run_keeps_no_batches(void **state)
{
	static char base[1 << 20];
	struct kp_proc_ctx ctx;
	struct run_feed f;

	(void)state;
	setenv("KAPPA_LUA_JIT", "on", 1);
	start_ok(&ctx, "tests/unit/lua/batch_run.lua", NULL, 0, 0);
	unsetenv("KAPPA_LUA_JIT");
	for (int r = 0; r < 64; r++)
		run_records(&ctx, &f, base, sizeof(base), 100,
			    (uint64_t)r * 100, 0);
	expect_kv("kept", LIT("\x40"));
	expect_kv("last", LIT("\xa5u6300"));
	if (kp_lua_memory_used(&ctx) > (32u << 20))
		fail_msg("the Lua state holds %zu bytes",
			 kp_lua_memory_used(&ctx));
	P->fini(&ctx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_descriptor),
		cmocka_unit_test(test_count_alerts),
		cmocka_unit_test(test_noop_and_record_fields),
		cmocka_unit_test(test_state_ops),
		cmocka_unit_test(test_init_with_config),
		cmocka_unit_test(test_init_errors),
		cmocka_unit_test(test_runtime_error),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_random_is_per_record),
		cmocka_unit_test(test_window_and_dedup),
		cmocka_unit_test(test_memory_limit),
		cmocka_unit_test(test_interrupt),
		cmocka_unit_test(test_lazy_value),
		cmocka_unit_test(test_run_batch),
		cmocka_unit_test(test_run_keeps_no_batches),
	};

	P = kp_lua_processor();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
