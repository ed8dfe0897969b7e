/*
 * lua_sandbox.c - building and running a sandboxed LuaJIT state.
 *
 * Access pattern: kp_lua_sandbox_new once per processor instance, then
 * loads and calls from the owning thread; kp_lua_sandbox_interrupt from a
 * watchdog thread. See lua_sandbox.h for what code inside may reach.
 */
#include "lua_sandbox.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <luajit.h>
#include <lualib.h>

#include "lua_mp.h"
#include "base/alloc.h"
#include "base/buf.h"
#include "base/logging.h"

#ifndef KP_SOURCE_DIR
#define KP_SOURCE_DIR "."
#endif

#define INTERRUPT_MSG "interrupted: time budget exceeded"

/* Registry key of require's "being loaded" mark. */
static const char loading_mark;

/* ------------------------------------------------------------------------
 * Memory
 */

/*
 * The counting allocator, a wrapper around LuaJIT's own (luaL_newstate's
 * arena allocator, much faster than libc's for Lua's many small blocks).
 * Growing fails past the limit or once the call is interrupted, except
 * while the error handler formats a message; shrinking never fails (Lua
 * relies on it).
 */
/*
 * Big blocks (a batch run's shared copy of its job, about 1 MiB per job)
 * are kept when Lua frees them and handed out again for a block of about
 * their size: LuaJIT's allocator maps each big block afresh, and the page
 * faults and zeroing of a fresh mapping per job were 5 % of a Lua
 * count's time. This relies on LuaJIT's allocator, like libc's, knowing
 * a block's size from the block itself (it ignores the old size Lua
 * passes), so a block may be given out for a slightly smaller size.
 */
#define BIG_BLOCK (256u << 10)
#define SPARE_COUNT (sizeof(((struct kp_lua_sandbox *)0)->spare) / \
		     sizeof(((struct kp_lua_sandbox *)0)->spare[0]))

static bool keep_spare(struct kp_lua_sandbox *sb, void *ptr, size_t size)
{
	if (size < BIG_BLOCK)
		return false;
	for (size_t i = 0; i < SPARE_COUNT; i++) {
		if (sb->spare[i].ptr == NULL) {
			sb->spare[i].ptr = ptr;
			sb->spare[i].size = size;
			return true;
		}
	}
	return false;
}

static void *take_spare(struct kp_lua_sandbox *sb, size_t size)
{
	for (size_t i = 0; size >= BIG_BLOCK && i < SPARE_COUNT; i++) {
		void *p = sb->spare[i].ptr;

		if (p != NULL && sb->spare[i].size >= size &&
		    sb->spare[i].size - size <= sb->spare[i].size / 4) {
			sb->spare[i].ptr = NULL;
			return p;
		}
	}
	return NULL;
}

static void free_spares(struct kp_lua_sandbox *sb)
{
	for (size_t i = 0; i < SPARE_COUNT; i++) {
		if (sb->spare[i].ptr != NULL)
			sb->inner_alloc(sb->inner_ud, sb->spare[i].ptr,
					sb->spare[i].size, 0);
		sb->spare[i].ptr = NULL;
	}
}

static void *on_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct kp_lua_sandbox *sb = ud;
	void *p;

	if (ptr == NULL)
		osize = 0;
	if (nsize == 0) {
		if (!keep_spare(sb, ptr, osize))
			sb->inner_alloc(sb->inner_ud, ptr, osize, 0);
		sb->mem_used -= osize;
		return NULL;
	}
	if (nsize > osize && !sb->in_handler) {
		if (atomic_load_explicit(&sb->interrupted, memory_order_relaxed))
			return NULL;
		if (sb->mem_limit != 0 &&
		    sb->mem_used - osize + nsize > sb->mem_limit)
			return NULL;
	}
	p = ptr == NULL ? take_spare(sb, nsize) : NULL;
	if (p == NULL)
		p = sb->inner_alloc(sb->inner_ud, ptr, osize, nsize);
	if (p == NULL) {
		if (nsize <= osize)
			return ptr;
		return NULL;
	}
	sb->mem_used = sb->mem_used - osize + nsize;
	if (sb->mem_used > sb->mem_peak)
		sb->mem_peak = sb->mem_used;
	return p;
}

static int on_panic(lua_State *L)
{
	const char *msg = lua_tostring(L, -1);

	kp_log_error("lua", "unprotected Lua error: %s", msg ? msg : "?");
	abort();
	return 0;
}

struct kp_lua_sandbox *kp_lua_sandbox_of(lua_State *L)
{
	void *ud = NULL;

	lua_getallocf(L, &ud);
	return ud;
}

/* ------------------------------------------------------------------------
 * Interrupts and errors
 */

static void raise_interrupt(lua_State *L, struct kp_lua_sandbox *sb)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, sb->interrupt_ref);
	lua_error(L);
}

static void on_count(lua_State *L, lua_Debug *ar)
{
	struct kp_lua_sandbox *sb = kp_lua_sandbox_of(L);

	(void)ar;
	if (atomic_load_explicit(&sb->interrupted, memory_order_relaxed))
		raise_interrupt(L, sb);
}

void kp_lua_sandbox_check_interrupt(lua_State *L)
{
	struct kp_lua_sandbox *sb = kp_lua_sandbox_of(L);

	if (atomic_load_explicit(&sb->interrupted, memory_order_relaxed))
		raise_interrupt(L, sb);
}

void kp_lua_sandbox_interrupt(struct kp_lua_sandbox *sb)
{
	atomic_store(&sb->interrupted, 1);
	lua_sethook(sb->L, on_count, LUA_MASKCOUNT, KP_LUA_HOOK_COUNT);
}

void kp_lua_sandbox_clear_interrupt(struct kp_lua_sandbox *sb)
{
	if (!atomic_load(&sb->interrupted))
		return;
	lua_sethook(sb->L, NULL, 0, 0);
	atomic_store(&sb->interrupted, 0);
}

int kp_lua_sandbox_interrupted(struct kp_lua_sandbox *sb)
{
	return atomic_load(&sb->interrupted);
}

/* The message handler: message -> message plus traceback. */
static int on_error(lua_State *L)
{
	struct kp_lua_sandbox *sb = lua_touserdata(L, lua_upvalueindex(1));
	const char *msg = lua_tostring(L, 1);

	sb->in_handler = 1;
	if (msg == NULL) {
		if (lua_isnoneornil(L, 1))
			msg = "error with no message (nil)";
		else
			msg = lua_pushfstring(L, "error object is a %s value",
					      luaL_typename(L, 1));
	}
	luaL_traceback(L, L, msg, 1);
	sb->in_handler = 0;
	return 1;
}

void kp_lua_sandbox_push_handler(struct kp_lua_sandbox *sb)
{
	lua_rawgeti(sb->L, LUA_REGISTRYINDEX, sb->handler_ref);
}

/*
 * Length of src without the traceback lines below the processor's own
 * frames: C frames, and the host's prelude that called it (chunk "kappa
 * host"), so that a record's error reads the same however it was called.
 */
static size_t trim_c_frames(const char *src, size_t len)
{
	const char *nl;

	while ((nl = memrchr(src, '\n', len)) != NULL &&
	       (strncmp(nl, "\n\t[C]: ", 6) == 0 ||
		strncmp(nl, "\n\tkappa host:", 13) == 0))
		len = (size_t)(nl - src);
	return len;
}

/* Copies src into dst (cap bytes with the NUL), cutting at a line end. */
static void copy_cut(char *dst, size_t cap, const char *src)
{
	size_t len = trim_c_frames(src, strlen(src));
	const char *nl;

	if (cap == 0)
		return;
	if (len < cap) {
		memcpy(dst, src, len);
		dst[len] = '\0';
		return;
	}
	len = cap - 1;
	nl = memrchr(src, '\n', len);
	if (nl != NULL && nl > src)
		len = (size_t)(nl - src);
	memcpy(dst, src, len);
	dst[len] = '\0';
}

void kp_lua_sandbox_error(struct kp_lua_sandbox *sb, int status, char *err,
			  size_t err_len)
{
	lua_State *L = sb->L;
	const char *msg = lua_tostring(L, -1);
	char line[160];

	if (kp_lua_sandbox_interrupted(sb)) {
		if (msg != NULL && strncmp(msg, INTERRUPT_MSG,
					   strlen(INTERRUPT_MSG)) == 0) {
			copy_cut(err, err_len, msg);
			return;
		}
		copy_cut(err, err_len, INTERRUPT_MSG);
		return;
	}
	if (status == LUA_ERRMEM) {
		if (sb->mem_limit != 0)
			snprintf(line, sizeof(line),
				 "not enough memory (limit %zu bytes)",
				 sb->mem_limit);
		else
			snprintf(line, sizeof(line), "not enough memory");
		copy_cut(err, err_len, line);
		return;
	}
	if (status == LUA_ERRERR) {
		copy_cut(err, err_len, "error in the error handler");
		return;
	}
	copy_cut(err, err_len, msg != NULL ? msg : "unknown error");
}

int kp_lua_sandbox_call(struct kp_lua_sandbox *sb, int nargs, int nresults,
			char *err, size_t err_len)
{
	lua_State *L = sb->L;
	int base = lua_gettop(L) - nargs;        /* base: the function */
	int status;

	kp_lua_sandbox_push_handler(sb);         /* top: handler */
	lua_insert(L, base);                     /* base: handler, base+1: fn */
	status = lua_pcall(L, nargs, nresults, base);
	sb->in_handler = 0;
	if (status != 0) {
		kp_lua_sandbox_error(sb, status, err, err_len);
		lua_settop(L, base - 1);
		return status;
	}
	lua_remove(L, base);                     /* results from base on */
	return 0;
}

/* What kp_lua_sandbox_cpcall hands to its protected body. */
struct cpcall_args {
	struct kp_lua_sandbox *sb;
	lua_CFunction fn;
	void *ud;
	char *err;
	size_t err_len;
	int status;
};

static int cpcall_body(lua_State *L)
{
	struct cpcall_args *a = lua_touserdata(L, 1);

	lua_settop(L, 0);
	lua_pushcfunction(L, a->fn);             /* 1: fn */
	lua_pushlightuserdata(L, a->ud);         /* 2: ud */
	a->status = kp_lua_sandbox_call(a->sb, 1, 0, a->err, a->err_len);
	return 0;
}

int kp_lua_sandbox_cpcall(struct kp_lua_sandbox *sb, lua_CFunction fn,
			  void *ud, char *err, size_t err_len)
{
	struct cpcall_args a = { sb, fn, ud, err, err_len, 0 };
	int top = lua_gettop(sb->L);
	int rc;

	rc = lua_cpcall(sb->L, cpcall_body, &a);
	sb->in_handler = 0;
	if (rc != 0) {
		kp_lua_sandbox_error(sb, rc, err, err_len);
		lua_settop(sb->L, top);
		return rc;
	}
	lua_settop(sb->L, top);
	return a.status;
}

/* ------------------------------------------------------------------------
 * Deterministic random numbers
 */

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t next_random(struct kp_lua_sandbox *sb)
{
	sb->rng += 0x9e3779b97f4a7c15ULL;
	return mix64(sb->rng);
}

uint64_t kp_lua_sandbox_topic_hash(const char *topic)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	const unsigned char *p = (const unsigned char *)topic;

	while (p != NULL && *p != '\0') {
		h ^= *p++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

void kp_lua_sandbox_seed_hashed(struct kp_lua_sandbox *sb, uint64_t topic_hash,
				uint32_t partition, uint64_t offset)
{
	sb->rng = mix64(mix64(topic_hash ^ partition) ^ offset);
}

void kp_lua_sandbox_seed(struct kp_lua_sandbox *sb, const char *topic,
			 uint32_t partition, uint64_t offset)
{
	kp_lua_sandbox_seed_hashed(sb, kp_lua_sandbox_topic_hash(topic),
				   partition, offset);
}

/* math.random([m [, n]]) with Lua 5.1's argument rules. */
static int l_random(lua_State *L)
{
	struct kp_lua_sandbox *sb = lua_touserdata(L, lua_upvalueindex(1));
	double r = (double)(next_random(sb) >> 11) * (1.0 / 9007199254740992.0);
	double lo, hi;

	switch (lua_gettop(L)) {
	case 0:
		lua_pushnumber(L, r);
		return 1;
	case 1:
		lo = 1;
		hi = floor(luaL_checknumber(L, 1));
		break;
	case 2:
		lo = floor(luaL_checknumber(L, 1));
		hi = floor(luaL_checknumber(L, 2));
		break;
	default:
		return luaL_error(L, "wrong number of arguments");
	}
	luaL_argcheck(L, lo <= hi, lua_gettop(L), "interval is empty");
	lua_pushnumber(L, floor(r * (hi - lo + 1)) + lo);
	return 1;
}

static int l_randomseed(lua_State *L)
{
	struct kp_lua_sandbox *sb = lua_touserdata(L, lua_upvalueindex(1));
	double seed = luaL_checknumber(L, 1);
	uint64_t bits;

	memcpy(&bits, &seed, sizeof(bits));
	sb->rng = mix64(bits);
	return 0;
}

/* ------------------------------------------------------------------------
 * Loading code
 */

static int read_file(const char *path, struct kp_buf *out)
{
	FILE *f = fopen(path, "rb");
	size_t n;
	int rc = 0;

	if (f == NULL)
		return -errno;
	for (;;) {
		if (kp_buf_reserve(out, 65536) != 0) {
			rc = -ENOMEM;
			break;
		}
		n = fread(out->data + out->len, 1, out->cap - out->len, f);
		out->len += n;
		if (n == 0) {
			if (ferror(f))
				rc = -EIO;
			break;
		}
	}
	fclose(f);
	return rc;
}

const char *kp_lua_sandbox_display_name(const struct kp_lua_sandbox *sb,
					const char *path)
{
	size_t n = strlen(sb->lua_dir);
	const char *slash;

	if (strncmp(path, sb->lua_dir, n) == 0 && path[n] == '/' &&
	    path[n + 1] != '\0')
		return path + n + 1;
	slash = strrchr(path, '/');
	return slash != NULL && slash[1] != '\0' ? slash + 1 : path;
}

int kp_lua_check_syntax(const char *name, const char *text, size_t len,
			char *err, size_t err_len)
{
	char chunkname[300];
	lua_State *L;
	int rc;

	if (len > 0 && text[0] == 0x1b) {
		snprintf(err, err_len, "%s: binary (bytecode) chunks are not "
			 "accepted, only Lua source text", name);
		return -1;
	}
	L = luaL_newstate();
	if (L == NULL) {
		snprintf(err, err_len, "%s: out of memory", name);
		return -1;
	}
	snprintf(chunkname, sizeof(chunkname), "@%s", name);
	rc = luaL_loadbufferx(L, len > 0 ? text : "", len, chunkname, "t");
	if (rc != 0)
		snprintf(err, err_len, "%s", lua_tostring(L, -1));
	lua_close(L);
	return rc == 0 ? 0 : -1;
}

int kp_lua_sandbox_load(struct kp_lua_sandbox *sb, const char *path)
{
	lua_State *L = sb->L;
	const char *name = kp_lua_sandbox_display_name(sb, path);
	struct kp_buf text;
	char chunkname[4200];
	int rc;

	kp_buf_init(&text);
	rc = read_file(path, &text);
	if (rc != 0) {
		kp_buf_destroy(&text);
		lua_pushfstring(L, "cannot read %s: %s", name, strerror(-rc));
		return LUA_ERRFILE;
	}
	if (text.len > 0 && text.data[0] == 0x1b) {
		kp_buf_destroy(&text);
		lua_pushfstring(L, "%s: binary (bytecode) chunks are not "
				"accepted, only Lua source text", name);
		return LUA_ERRSYNTAX;
	}
	snprintf(chunkname, sizeof(chunkname), "@%s", name);
	rc = luaL_loadbufferx(L, text.data ? text.data : "", text.len,
			      chunkname, "t");
	kp_buf_destroy(&text);
	if (rc == LUA_ERRSYNTAX) {
		lua_pushfstring(L, "syntax error: %s", lua_tostring(L, -1));
		lua_remove(L, -2);
	}
	if (rc != 0)
		return rc;
	lua_pushvalue(L, LUA_GLOBALSINDEX);      /* -2: chunk, -1: env */
	lua_setfenv(L, -2);
	return 0;
}

/* 1 when name is dotted identifiers ("window", "util.time"). */
static int module_name_ok(const char *name, size_t len)
{
	size_t i;
	int start = 1;

	if (len == 0 || len > 200)
		return 0;
	for (i = 0; i < len; i++) {
		char c = name[i];

		if (c == '.') {
			if (start)
				return 0;
			start = 1;
			continue;
		}
		if (!(c == '_' || (c >= 'a' && c <= 'z') ||
		      (c >= 'A' && c <= 'Z') ||
		      (!start && c >= '0' && c <= '9')))
			return 0;
		start = 0;
	}
	return !start;
}

/* require(name): upvalue 1 the sandbox, 2 the table of loaded modules. */
static int l_require(lua_State *L)
{
	struct kp_lua_sandbox *sb = lua_touserdata(L, lua_upvalueindex(1));
	size_t len, i;
	const char *name = luaL_checklstring(L, 1, &len);
	char path[4400];
	int n;

	lua_settop(L, 1);
	lua_getfield(L, lua_upvalueindex(2), name);   /* 2: loaded[name] */
	if (lua_touserdata(L, 2) == (void *)&loading_mark)
		return luaL_error(L, "module '%s' requires itself (a loop)",
				  name);
	if (!lua_isnil(L, 2))
		return 1;
	if (!module_name_ok(name, len))
		return luaL_error(L, "module '%s' not allowed: names are "
				  "identifiers separated by dots", name);
	n = snprintf(path, sizeof(path), "%s/%s.lua", sb->lua_dir, name);
	if (n < 0 || (size_t)n >= sizeof(path))
		return luaL_error(L, "module '%s': path too long", name);
	for (i = strlen(sb->lua_dir) + 1; i < strlen(path) - 4; i++)
		if (path[i] == '.')
			path[i] = '/';
	if (access(path, R_OK) != 0)
		return luaL_error(L, "module '%s' not found (no %s in the "
				  "Lua library)", name,
				  kp_lua_sandbox_display_name(sb, path));
	if (kp_lua_sandbox_load(sb, path) != 0)     /* 3: chunk or message */
		return lua_error(L);
	lua_pushlightuserdata(L, (void *)&loading_mark);
	lua_setfield(L, lua_upvalueindex(2), name);
	lua_pushvalue(L, 1);                          /* 4: name */
	if (lua_pcall(L, 1, 1, 0) != 0) {             /* 3: result / message */
		lua_pushnil(L);
		lua_setfield(L, lua_upvalueindex(2), name);
		return lua_error(L);
	}
	if (lua_isnil(L, 3)) {
		lua_pop(L, 1);
		lua_pushboolean(L, 1);
	}
	lua_pushvalue(L, 3);
	lua_setfield(L, lua_upvalueindex(2), name);
	return 1;
}

/* collectgarbage limited to "count", "collect" and "step". */
static int l_collectgarbage(lua_State *L)
{
	const char *opt = luaL_optstring(L, 1, "collect");

	if (strcmp(opt, "count") != 0 && strcmp(opt, "collect") != 0 &&
	    strcmp(opt, "step") != 0)
		return luaL_error(L, "collectgarbage('%s') is not allowed in "
				  "the sandbox", opt);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

/* ------------------------------------------------------------------------
 * Building the state
 */

static void open_lib(lua_State *L, lua_CFunction open, const char *name)
{
	lua_pushcfunction(L, open);
	lua_pushstring(L, name);
	lua_call(L, 1, 0);
}

static const char *const allowed_base[] = {
	"assert", "error", "ipairs", "next", "pairs", "pcall", "rawequal",
	"rawget", "rawset", "select", "setmetatable", "getmetatable",
	"tonumber", "tostring", "type", "unpack", "xpcall", "_VERSION",
	NULL
};

static const char *const allowed_libs[] = {
	"string", "table", "math", "bit", "coroutine", NULL
};

/* Replaces lib[name] of the library table at -1 with a C closure on sb. */
static void set_closure(lua_State *L, struct kp_lua_sandbox *sb,
			const char *name, lua_CFunction fn)
{
	lua_pushlightuserdata(L, sb);
	lua_pushcclosure(L, fn, 1);
	lua_setfield(L, -2, name);
}

static void build_env(lua_State *L, struct kp_lua_sandbox *sb)
{
	int i;

	lua_createtable(L, 0, 32);                    /* -1: env */
	for (i = 0; allowed_base[i] != NULL; i++) {
		lua_getfield(L, LUA_GLOBALSINDEX, allowed_base[i]);
		lua_setfield(L, -2, allowed_base[i]);
	}
	for (i = 0; allowed_libs[i] != NULL; i++) {
		lua_getfield(L, LUA_GLOBALSINDEX, allowed_libs[i]);
		lua_setfield(L, -2, allowed_libs[i]);
	}
	lua_getfield(L, LUA_GLOBALSINDEX, "collectgarbage");
	lua_pushcclosure(L, l_collectgarbage, 1);
	lua_setfield(L, -2, "collectgarbage");
	lua_pushlightuserdata(L, sb);
	lua_newtable(L);
	lua_pushcclosure(L, l_require, 2);
	lua_setfield(L, -2, "require");
	kp_luamp_open(L);                             /* -1: kappa */
	lua_setfield(L, -2, "kappa");
	lua_pushvalue(L, -1);
	lua_setfield(L, -2, "_G");
}

/* Removes what escapes from the shared library tables themselves. */
static void trim_libs(lua_State *L, struct kp_lua_sandbox *sb)
{
	lua_getfield(L, LUA_GLOBALSINDEX, "string");  /* -1: string */
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");
	lua_pop(L, 1);
	lua_getfield(L, LUA_GLOBALSINDEX, "math");    /* -1: math */
	set_closure(L, sb, "random", l_random);
	set_closure(L, sb, "randomseed", l_randomseed);
	lua_pop(L, 1);
}

static int setup(lua_State *L)
{
	struct kp_lua_sandbox *sb = lua_touserdata(L, 1);

	open_lib(L, luaopen_base, "");
	open_lib(L, luaopen_table, LUA_TABLIBNAME);
	open_lib(L, luaopen_string, LUA_STRLIBNAME);
	open_lib(L, luaopen_math, LUA_MATHLIBNAME);
	open_lib(L, luaopen_bit, LUA_BITLIBNAME);
	if (sb->jit)
		open_lib(L, luaopen_jit, LUA_JITLIBNAME);
	trim_libs(L, sb);

	lua_pushlightuserdata(L, sb);
	lua_pushcclosure(L, on_error, 1);
	sb->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pushliteral(L, INTERRUPT_MSG);
	sb->interrupt_ref = luaL_ref(L, LUA_REGISTRYINDEX);

	build_env(L, sb);                             /* -1: env */
	lua_replace(L, LUA_GLOBALSINDEX);
	return 0;
}

/* Where `cmake --install` puts lua/, relative to the installed binaries. */
#ifndef KP_LUA_DIR_FROM_BIN
#define KP_LUA_DIR_FROM_BIN "../share/kappa/lua"
#endif

/*
 * The installed modules beside this program (bin/kappad or bin/kappactl,
 * then share/kappa/lua) into dir, or false when there are none there (a
 * build tree's binary: the source tree's modules are used).
 */
static bool installed_lua_dir(char *dir, size_t cap)
{
	char exe[4096], *slash, *real;
	struct stat st;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	bool ok;

	if (n <= 0)
		return false;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (slash == NULL)
		return false;
	*slash = '\0';
	if ((size_t)snprintf(dir, cap, "%s/%s", exe, KP_LUA_DIR_FROM_BIN) >= cap)
		return false;
	real = realpath(dir, NULL);
	ok = real != NULL && stat(real, &st) == 0 && S_ISDIR(st.st_mode) &&
	     strlen(real) < cap;
	if (ok)
		memcpy(dir, real, strlen(real) + 1);
	free(real);
	return ok;
}

struct kp_lua_sandbox *kp_lua_sandbox_new(const struct kp_lua_sandbox_opts *opts,
					  char *err, size_t err_len)
{
	char installed[4096];
	struct kp_lua_sandbox *sb = kp_calloc(1, sizeof(*sb));
	const char *dir = opts->lua_dir;
	size_t n;
	int rc;

	if (sb == NULL) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	if (dir == NULL)
		dir = getenv("KAPPA_LUA_DIR");
	if ((dir == NULL || dir[0] == '\0') &&
	    installed_lua_dir(installed, sizeof(installed)))
		dir = installed;
	if (dir == NULL || dir[0] == '\0')
		dir = KP_SOURCE_DIR "/lua";
	n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (n >= sizeof(sb->lua_dir)) {
		snprintf(err, err_len, "Lua library path too long");
		kp_free(sb);
		return NULL;
	}
	memcpy(sb->lua_dir, dir, n);
	sb->lua_dir[n] = '\0';
	sb->mem_limit = opts->memory_limit;
	atomic_init(&sb->interrupted, 0);
	kp_lua_sandbox_seed(sb, "", 0, 0);
	/*
	 * LuaJIT's own allocator, wrapped: the state starts on it, then the
	 * counting wrapper takes over (from the bytes the state already
	 * holds); kp_lua_sandbox_delete puts it back before lua_close, which
	 * frees the whole arena only when it sees its own allocator.
	 */
	sb->L = luaL_newstate();
	if (sb->L == NULL) {
		snprintf(err, err_len, "cannot create a Lua state (memory)");
		kp_free(sb);
		return NULL;
	}
	sb->inner_alloc = lua_getallocf(sb->L, &sb->inner_ud);
	sb->mem_used = (size_t)lua_gc(sb->L, LUA_GCCOUNT, 0) * 1024 +
		       (size_t)lua_gc(sb->L, LUA_GCCOUNTB, 0);
	sb->mem_peak = sb->mem_used;
	lua_setallocf(sb->L, on_alloc, sb);
	lua_atpanic(sb->L, on_panic);
	sb->jit = opts->jit != 0;
	rc = lua_cpcall(sb->L, setup, sb);
	if (rc != 0) {
		snprintf(err, err_len, "cannot set up the Lua sandbox: %s",
			 rc == LUA_ERRMEM ? "not enough memory"
					  : lua_tostring(sb->L, -1));
		kp_lua_sandbox_delete(sb);
		return NULL;
	}
	return sb;
}

void kp_lua_sandbox_delete(struct kp_lua_sandbox *sb)
{
	if (sb == NULL)
		return;
	if (sb->L != NULL) {
		/* Big blocks are mapped on their own: not part of the arena. */
		free_spares(sb);
		lua_setallocf(sb->L, sb->inner_alloc, sb->inner_ud);
		lua_close(sb->L);
	}
	kp_free(sb);
}
