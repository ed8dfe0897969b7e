/*
 * test_lua_sandbox.c - the sandbox: each blocked escape, text-only loading,
 * require's reach, errors with file:line, deterministic random, the
 * memory limit and interrupts from another thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lualib.h>

#include "base/buf.h"
#include "luahost/lua_sandbox.h"

static char tmp_dir[1024];

static void make_tmp_dir(void)
{
	const char *base = getenv("KP_TEST_TMP");

	snprintf(tmp_dir, sizeof(tmp_dir), "%s/lua_sandbox_%d",
		 base != NULL ? base : "/tmp", (int)getpid());
	mkdir(base != NULL ? base : "/tmp", 0755);
	mkdir(tmp_dir, 0755);
}

static void write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
}

static struct kp_lua_sandbox *open_sb(size_t limit, int jit, const char *dir)
{
	struct kp_lua_sandbox_opts opts = { limit, jit, dir };
	char err[256];
	struct kp_lua_sandbox *sb = kp_lua_sandbox_new(&opts, err, sizeof(err));

	if (sb == NULL)
		fail_msg("sandbox: %s", err);
	return sb;
}

/* Loads and calls path; on success one result stays on the stack. */
static int run_file(struct kp_lua_sandbox *sb, const char *path, char *err,
		    size_t err_len)
{
	int top = lua_gettop(sb->L);
	int rc;

	rc = kp_lua_sandbox_load(sb, path);
	if (rc != 0) {
		snprintf(err, err_len, "%s", lua_tostring(sb->L, -1));
		lua_settop(sb->L, top);
		return rc;
	}
	return kp_lua_sandbox_call(sb, 0, 1, err, err_len);
}

/* Runs code from a file named snippet.lua; same contract as run_file. */
static int run(struct kp_lua_sandbox *sb, const char *code, char *err,
	       size_t err_len)
{
	char path[1200];

	snprintf(path, sizeof(path), "%s/snippet.lua", tmp_dir);
	write_file(path, code, strlen(code));
	return run_file(sb, path, err, err_len);
}

static void expect_true(struct kp_lua_sandbox *sb, const char *code)
{
	char err[512];

	if (run(sb, code, err, sizeof(err)) != 0)
		fail_msg("%s: %s", code, err);
	if (!lua_toboolean(sb->L, -1))
		fail_msg("false: %s", code);
	lua_pop(sb->L, 1);
}

static void expect_error(struct kp_lua_sandbox *sb, const char *code,
			 const char *needle)
{
	char err[512];
	int top = lua_gettop(sb->L);

	if (run(sb, code, err, sizeof(err)) == 0)
		fail_msg("no error from: %s", code);
	if (strstr(err, needle) == NULL)
		fail_msg("%s: error '%s' lacks '%s'", code, err, needle);
	assert_int_equal(lua_gettop(sb->L), top);
}

static void test_blocked_globals(void **state)
{
	struct kp_lua_sandbox *sb = open_sb(0, 1, NULL);
	static const char *const names[] = {
		"io", "os", "debug", "package", "ffi", "jit", "dofile",
		"loadfile", "load", "loadstring", "getfenv", "setfenv",
		"module", "print", "newproxy", "gcinfo", NULL
	};
	char code[256], needle[64];
	int i;

	(void)state;
	for (i = 0; names[i] != NULL; i++) {
		snprintf(code, sizeof(code), "return %s ~= nil", names[i]);
		run(sb, code, needle, sizeof(needle));
		assert_false(lua_toboolean(sb->L, -1));
		lua_pop(sb->L, 1);
		snprintf(code, sizeof(code), "return %s.x", names[i]);
		snprintf(needle, sizeof(needle), "global '%s'", names[i]);
		expect_error(sb, code, needle);
		snprintf(code, sizeof(code), "return %s('x')", names[i]);
		expect_error(sb, code, needle);
	}
	expect_error(sb, "return os.time()", "snippet.lua:1: attempt to index "
		     "global 'os' (a nil value)");
	expect_error(sb, "return io.open('/etc/passwd')", "global 'io'");
	expect_error(sb, "return getfenv(0)", "global 'getfenv'");
	expect_error(sb, "return getfenv(1)", "global 'getfenv'");
	expect_error(sb, "return setfenv(1, {})", "global 'setfenv'");
	expect_error(sb, "return loadstring('return 1')()", "global 'loadstring'");
	expect_error(sb, "return load(function() return nil end)", "global 'load'");
	/* the allowed names are there */
	expect_true(sb, "return type(pairs) == 'function' and "
		    "type(string.format) == 'function' and "
		    "type(table.concat) == 'function' and "
		    "type(math.floor) == 'function' and "
		    "type(bit.band) == 'function' and "
		    "type(coroutine.wrap) == 'function' and "
		    "kappa.null ~= nil and _G == _G._G");
	kp_lua_sandbox_delete(sb);
}

static void test_indirect_escapes(void **state)
{
	struct kp_lua_sandbox *sb = open_sb(0, 1, NULL);

	(void)state;
	/* no string.dump, also not through the string metatable */
	expect_true(sb, "return string.dump == nil and ('').dump == nil and "
		    "rawget(getmetatable('').__index, 'dump') == nil");
	expect_error(sb, "return string.dump(function() end)", "field 'dump'");
	/* _G is the sandbox's own table, not the real globals */
	expect_true(sb, "return rawget(_G, 'io') == nil and "
		    "rawget(_G, 'getfenv') == nil and "
		    "rawget(_G, 'loadstring') == nil");
	/* functions created in the sandbox see only the sandbox */
	expect_true(sb, "local f = function() return io end "
		    "return f() == nil");
	/* collectgarbage: only count, collect, step */
	expect_true(sb, "return type(collectgarbage('count')) == 'number'");
	expect_true(sb, "collectgarbage() collectgarbage('step') return true");
	expect_error(sb, "collectgarbage('stop')",
		     "collectgarbage('stop') is not allowed");
	expect_error(sb, "collectgarbage('setpause', 1000)", "not allowed");
	/* coroutines carry no other environment */
	expect_true(sb, "return coroutine.wrap(function() return io end)() "
		    "== nil");
	kp_lua_sandbox_delete(sb);
}

static int on_dump(lua_State *L, const void *p, size_t sz, void *ud)
{
	(void)L;
	return kp_buf_append(ud, p, sz);
}

static void test_bytecode_refused(void **state)
{
	struct kp_lua_sandbox *sb;
	lua_State *plain = luaL_newstate();
	struct kp_buf bc;
	char path[1200], err[512];

	(void)state;
	kp_buf_init(&bc);
	assert_int_equal(luaL_loadstring(plain, "return 42"), 0);
	assert_int_equal(lua_dump(plain, on_dump, &bc), 0);
	lua_close(plain);
	assert_true(bc.len > 4 && bc.data[0] == 0x1b);

	snprintf(path, sizeof(path), "%s/binmod.lua", tmp_dir);
	write_file(path, bc.data, bc.len);
	sb = open_sb(0, 1, tmp_dir);
	assert_int_not_equal(run_file(sb, path, err, sizeof(err)), 0);
	if (strstr(err, "binary") == NULL)
		fail_msg("%s", err);
	expect_error(sb, "return require('binmod')", "binary");
	kp_lua_sandbox_delete(sb);
	kp_buf_destroy(&bc);
}

static void test_require(void **state)
{
	struct kp_lua_sandbox *sb = open_sb(0, 1, NULL);
	char path[1200];

	(void)state;
	expect_true(sb, "local w = require('window') "
		    "return type(w.tumbling) == 'function' and "
		    "require('window') == w and w.tumbling(61234, 60000) == 60000");
	expect_true(sb, "return type(require('dedup').seen) == 'function'");
	expect_error(sb, "return require('../../etc/passwd')", "not allowed");
	expect_error(sb, "return require('/etc/passwd')", "not allowed");
	expect_error(sb, "return require('window.lua')", "not found");
	expect_error(sb, "return require('os')", "module 'os' not found");
	expect_error(sb, "return require('io')", "not found");
	expect_error(sb, "return require('ffi')", "not found");
	expect_error(sb, "return require('jit.util')", "not found");
	expect_error(sb, "return require('string.buffer')", "not found");
	expect_error(sb, "return require('')", "not allowed");
	kp_lua_sandbox_delete(sb);

	/* a module's errors keep its file and line; loops are reported */
	snprintf(path, sizeof(path), "%s/badmod.lua", tmp_dir);
	write_file(path, "local x = nil\nreturn x.y\n", 25);
	snprintf(path, sizeof(path), "%s/loopmod.lua", tmp_dir);
	write_file(path, "return require('loopmod')\n", 26);
	sb = open_sb(0, 1, tmp_dir);
	expect_error(sb, "return require('badmod')", "badmod.lua:2:");
	expect_error(sb, "return require('badmod')", "badmod.lua:2:");
	expect_error(sb, "return require('loopmod')", "requires itself");
	kp_lua_sandbox_delete(sb);
}

#define LIT(s) s, sizeof(s) - 1

/* kp_lua_check_syntax parses, never runs, and names the line. */
static void test_check_syntax(void **state)
{
	char err[256];

	(void)state;
	assert_int_equal(kp_lua_check_syntax("ok.lua", LIT("error('never run')"),
					     err, sizeof(err)), 0);
	assert_int_equal(kp_lua_check_syntax("empty.lua", "", 0, err,
					     sizeof(err)), 0);
	assert_int_equal(kp_lua_check_syntax("bad.lua", LIT("local a\nx = = 1\n"),
					     err, sizeof(err)), -1);
	assert_true(strncmp(err, "bad.lua:2:", 10) == 0);
	assert_int_equal(kp_lua_check_syntax("bc.lua", LIT("\x1bLJ\x02"), err,
					     sizeof(err)), -1);
	assert_non_null(strstr(err, "bytecode"));
}

static void test_errors_have_file_line(void **state)
{
	struct kp_lua_sandbox *sb = open_sb(0, 1, NULL);
	char err[512];

	(void)state;
	assert_int_not_equal(run_file(sb, "tests/unit/lua/syntax_error.lua", err,
				      sizeof(err)), 0);
	/* Said to be one, naming the file, not the directory it came from. */
	assert_true(strncmp(err, "syntax error: syntax_error.lua:4:", 33) == 0);
	expect_error(sb, "local t = {}\n\nerror('boom')\n", "snippet.lua:3: boom");
	expect_error(sb, "local t = {}\nreturn t.a.b\n",
		     "snippet.lua:2: attempt to index field 'a'");
	expect_error(sb, "local function f() error('deep') end\n"
		     "local function g() f() end\ng()\n", "stack traceback:");
	expect_error(sb, "error({})", "error object is a table value");
	assert_int_not_equal(run_file(sb, "tests/unit/lua/no_such_file.lua", err,
				      sizeof(err)), 0);
	assert_non_null(strstr(err, "cannot read no_such_file.lua"));
	kp_lua_sandbox_delete(sb);
}

static void draws(struct kp_lua_sandbox *sb, double out[4])
{
	char err[512];
	int i;

	if (run_file(sb, "tests/unit/lua/random_seq.lua", err, sizeof(err)) != 0)
		fail_msg("%s", err);
	for (i = 0; i < 4; i++) {
		lua_rawgeti(sb->L, -1, i + 1);
		out[i] = lua_tonumber(sb->L, -1);
		lua_pop(sb->L, 1);
	}
	lua_pop(sb->L, 1);
}

static void test_random_is_seeded(void **state)
{
	struct kp_lua_sandbox *a = open_sb(0, 1, NULL);
	struct kp_lua_sandbox *b = open_sb(0, 0, NULL);
	double x[4], y[4], z[4];

	(void)state;
	kp_lua_sandbox_seed(a, "clicks", 3, 1000);
	draws(a, x);
	kp_lua_sandbox_seed(b, "clicks", 3, 1000);
	draws(b, y);
	assert_memory_equal(x, y, sizeof(x));
	assert_true(x[0] >= 0 && x[0] < 1);
	assert_true(x[1] >= 1 && x[1] <= 100 && x[1] == (double)(long)x[1]);
	assert_true(x[2] >= -5 && x[2] <= 5);
	kp_lua_sandbox_seed(a, "clicks", 3, 1001);
	draws(a, z);
	assert_memory_not_equal(x, z, sizeof(x));
	kp_lua_sandbox_seed(a, "clicks", 4, 1000);
	draws(a, z);
	assert_memory_not_equal(x, z, sizeof(x));
	kp_lua_sandbox_seed(a, "views", 3, 1000);
	draws(a, z);
	assert_memory_not_equal(x, z, sizeof(x));
	expect_true(a, "math.randomseed(7) local p = math.random() "
		    "math.randomseed(7) return p == math.random()");
	expect_error(a, "return math.random(5, 1)", "interval is empty");
	kp_lua_sandbox_delete(a);
	kp_lua_sandbox_delete(b);
}

static void test_memory_limit(void **state)
{
	struct kp_lua_sandbox *sb = open_sb(4u << 20, 1, NULL);

	(void)state;
	expect_error(sb, "local t = {} while true do t[#t+1] = ('x'):rep(100) end",
		     "not enough memory (limit 4194304 bytes)");
	assert_true(sb->mem_used <= sb->mem_limit);
	expect_error(sb, "return ('x'):rep(2^30)", "not enough memory");
	/* the state is still usable afterwards */
	expect_true(sb, "collectgarbage() local t = {} for i = 1, 1000 do "
		    "t[i] = i end return #t == 1000");
	kp_lua_sandbox_delete(sb);
}

struct interrupter {
	struct kp_lua_sandbox *sb;
	unsigned delay_ms;
};

static void *interrupt_later(void *arg)
{
	struct interrupter *it = arg;
	struct timespec ts = { 0, (long)it->delay_ms * 1000000L };

	nanosleep(&ts, NULL);
	kp_lua_sandbox_interrupt(it->sb);
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs code while another thread interrupts after 100 ms. */
static void expect_interrupted(struct kp_lua_sandbox *sb, const char *code)
{
	struct interrupter it = { sb, 100 };
	pthread_t th;
	char err[512];
	double t0 = now_s(), took;

	assert_int_equal(pthread_create(&th, NULL, interrupt_later, &it), 0);
	assert_int_not_equal(run(sb, code, err, sizeof(err)), 0);
	took = now_s() - t0;
	pthread_join(th, NULL);
	if (strstr(err, "interrupted") == NULL)
		fail_msg("%s: error '%s'", code, err);
	assert_true(took < 1.1);
	kp_lua_sandbox_clear_interrupt(sb);
	expect_true(sb, "local n = 0 for i = 1, 100000 do n = n + i end "
		    "return n > 0");
}

static void test_interrupt(void **state)
{
	struct kp_lua_sandbox *interp = open_sb(0, 0, NULL);
	struct kp_lua_sandbox *jit = open_sb(0, 1, NULL);

	(void)state;
	expect_interrupted(interp, "while true do end");
	expect_interrupted(interp, "local x = 0 repeat x = x + 1 until false");
	expect_interrupted(interp, "while true do pcall(function() "
			   "while true do end end) end");
	expect_interrupted(interp, "local t = {} while true do "
			   "t[#t % 1000 + 1] = {} end");
	/* with the JIT on, loops that allocate stop through the allocator */
	expect_interrupted(jit, "local t = {} while true do "
			   "t[#t % 1000 + 1] = {} end");
	expect_interrupted(jit, "local t, i = {}, 0 while true do "
			   "i = i + 1 t[i % 64 + 1] = 'x' .. i end");
	expect_interrupted(jit, "while true do pcall(function() local t = {} "
			   "while true do t[#t % 8 + 1] = {} end end) end");
	kp_lua_sandbox_delete(interp);
	kp_lua_sandbox_delete(jit);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blocked_globals),
		cmocka_unit_test(test_indirect_escapes),
		cmocka_unit_test(test_bytecode_refused),
		cmocka_unit_test(test_require),
		cmocka_unit_test(test_errors_have_file_line),
		cmocka_unit_test(test_check_syntax),
		cmocka_unit_test(test_random_is_seeded),
		cmocka_unit_test(test_memory_limit),
		cmocka_unit_test(test_interrupt),
	};

	make_tmp_dir();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
