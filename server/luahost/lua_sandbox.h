/*
 * lua_sandbox.h - one sandboxed LuaJIT state for one processor instance.
 *
 * The state runs on a counting allocator wrapped around LuaJIT's own (a
 * memory limit; allocations fail with Lua's "not enough memory" past it), opens base, coroutine, table,
 * string, math and bit one by one (and jit, only to switch the compiler on:
 * its table stays out of reach), and gives code an environment built
 * from an allow-list (docs/PROCESSORS.md, "The sandbox"): no io, os,
 * debug, package, ffi, jit, dofile, loadfile, load, loadstring, getfenv,
 * setfenv, module, print, newproxy, gcinfo or string.dump; collectgarbage
 * only with "count", "collect" or "step"; `require` reaches only the .lua
 * files of the library directory and loads them as text; math.random is a
 * deterministic generator re-seeded per record; `kappa` holds the
 * conversion helpers of lua_mp.h (kappa.null, kappa.array, kappa.map).
 *
 * Access pattern: one thread owns the state (creates it, loads, calls,
 * deletes it). Only kp_lua_sandbox_interrupt may be called from another
 * thread, while the owner is inside a call.
 *
 * Interrupts: the flag is checked by a count hook (installed only when
 * interrupting) and by the allocator, which refuses to grow once the flag
 * is set. Count hooks do not run inside JIT-compiled traces, so a compiled
 * loop that neither allocates nor leaves its trace (`while true do end`,
 * `repeat x = x + 1 until false`) cannot be interrupted while the JIT is
 * on; with the JIT off (opts.jit = 0) every loop is interruptible.
 */
#ifndef KP_LUA_SANDBOX_H
#define KP_LUA_SANDBOX_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

/* Instructions between count-hook checks once interrupted. */
#define KP_LUA_HOOK_COUNT 1000

struct kp_lua_sandbox {
	lua_State *L;            /* owned; the state */
	lua_Alloc inner_alloc;   /* LuaJIT's allocator, which on_alloc wraps */
	void *inner_ud;          /* its userdata */
	size_t mem_used;         /* bytes the state holds now */
	size_t mem_peak;         /* most bytes it ever held */
	size_t mem_limit;        /* bytes it may hold; 0 = no limit */
	struct {                 /* big blocks freed by Lua, kept for reuse */
		void *ptr;       /* (NULL: none) */
		size_t size;
	} spare[2];
	atomic_int interrupted;  /* set by kp_lua_sandbox_interrupt */
	int in_handler;          /* the error handler runs: allow allocation */
	int jit;                 /* the JIT compiler is on */
	int handler_ref;         /* registry ref of the error handler */
	int interrupt_ref;       /* registry ref of the interrupt message */
	uint64_t rng;            /* math.random state (splitmix64) */
	char lua_dir[4096];      /* where `require` looks, no trailing slash */
};

/* How to build a sandbox. */
struct kp_lua_sandbox_opts {
	size_t memory_limit;     /* bytes; 0 = no limit */
	int jit;                 /* 1: JIT compiler on (fast); 0: interpreter */
	const char *lua_dir;     /* NULL: $KAPPA_LUA_DIR, else the installed
				    modules beside the program
				    (../share/kappa/lua), else
				    KP_SOURCE_DIR/lua */
};

/*
 * Creates a sandboxed state. Returns it, or NULL with a message in err
 * (err_len bytes) when memory or the limit runs out during setup.
 */
struct kp_lua_sandbox *kp_lua_sandbox_new(const struct kp_lua_sandbox_opts *opts,
					  char *err, size_t err_len);

/* Closes the state and frees the sandbox. NULL is a no-op. */
void kp_lua_sandbox_delete(struct kp_lua_sandbox *sb);

/*
 * The name under which the file at path appears in messages and
 * tracebacks: its path inside the Lua library ("util/time.lua") when it
 * lies there, else its file name ("wc.lua"), so that errors shown to
 * clients never carry the server's own directories. Points into path.
 */
const char *kp_lua_sandbox_display_name(const struct kp_lua_sandbox *sb,
					const char *path);

/*
 * Whether text[0..len) parses as Lua source (it is compiled in a state of
 * its own, never run). Returns 0, or -1 with err holding the message
 * ("name:line: ... near '...'", or that it is bytecode, not source).
 */
int kp_lua_check_syntax(const char *name, const char *text, size_t len,
			char *err, size_t err_len);

/*
 * Loads the Lua file at path as text (bytecode is refused) with chunk name
 * "@" + kp_lua_sandbox_display_name() and the sandbox environment. Pushes
 * the chunk function and returns 0, or pushes an error message
 * ("syntax error: name:line: ..." for syntax errors, "cannot read name:
 * ..." otherwise) and returns non-zero. May raise a Lua memory error: call it from a
 * protected context.
 */
int kp_lua_sandbox_load(struct kp_lua_sandbox *sb, const char *path);

/*
 * Calls the function below nargs arguments on the stack, with the error
 * handler beneath it. On success returns 0 with nresults results in place
 * of function and arguments. On failure pops them, writes "file:line:
 * message" and a short traceback into err (at most err_len bytes with the
 * NUL, cut at a line end) and returns the lua_pcall status; an interrupted
 * call reports "interrupted: time budget exceeded", an allocation past the
 * limit "not enough memory (limit N bytes)".
 */
int kp_lua_sandbox_call(struct kp_lua_sandbox *sb, int nargs, int nresults,
			char *err, size_t err_len);

/*
 * Calls fn(ud) (ud as a lightuserdata argument) protected, with the error
 * handler, from an empty or any stack: even pushing fn cannot raise out.
 * Returns 0, or non-zero with err written as by kp_lua_sandbox_call. The
 * stack is as it was on entry.
 */
int kp_lua_sandbox_cpcall(struct kp_lua_sandbox *sb, lua_CFunction fn,
			  void *ud, char *err, size_t err_len);

/* Pushes the error handler (message -> message with traceback). */
void kp_lua_sandbox_push_handler(struct kp_lua_sandbox *sb);

/*
 * Formats the outcome of a failed lua_pcall whose message is on top of the
 * stack into err, as kp_lua_sandbox_call does. Does not pop.
 */
void kp_lua_sandbox_error(struct kp_lua_sandbox *sb, int status, char *err,
			  size_t err_len);

/*
 * Re-seeds math.random from a record's coordinates: the same (topic,
 * partition, offset) always gives the same sequence.
 */
void kp_lua_sandbox_seed(struct kp_lua_sandbox *sb, const char *topic,
			 uint32_t partition, uint64_t offset);

/*
 * The same in two steps, for callers that see one topic many times:
 * kp_lua_sandbox_seed(sb, t, p, o) is
 * kp_lua_sandbox_seed_hashed(sb, kp_lua_sandbox_topic_hash(t), p, o).
 */
uint64_t kp_lua_sandbox_topic_hash(const char *topic);
void kp_lua_sandbox_seed_hashed(struct kp_lua_sandbox *sb, uint64_t topic_hash,
				uint32_t partition, uint64_t offset);

/*
 * Asks the running call to stop: sets the flag and installs the count
 * hook. Async-safe; any thread.
 */
void kp_lua_sandbox_interrupt(struct kp_lua_sandbox *sb);

/* Clears the flag and removes the hook. Owner thread, between calls. */
void kp_lua_sandbox_clear_interrupt(struct kp_lua_sandbox *sb);

/* 1 when an interrupt is pending. */
int kp_lua_sandbox_interrupted(struct kp_lua_sandbox *sb);

/*
 * The sandbox that owns L (from the allocator's userdata). For bindings:
 * raises the interrupt error when the flag is set.
 */
struct kp_lua_sandbox *kp_lua_sandbox_of(lua_State *L);
void kp_lua_sandbox_check_interrupt(lua_State *L);

#endif
