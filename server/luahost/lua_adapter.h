/*
 * lua_adapter.h - the Lua implementation of the processor descriptor.
 *
 * Its init loads ctx->source (a Lua file) into a fresh sandboxed lua_State
 * (one per instance), calls the module's optional init(ctx), and keeps the
 * module's process function in a registry ref; process builds the record
 * table and calls it. Errors carry file:line and a traceback. Lua modules
 * that processors `require` come from the directory named by the
 * environment variable KAPPA_LUA_DIR, else the source tree's lua/.
 */
#ifndef KP_LUA_ADAPTER_H
#define KP_LUA_ADAPTER_H

#include <stddef.h>

#include "kappa_processor.h"

/* The descriptor (static; never NULL). */
const struct kp_processor *kp_lua_processor(void);

/*
 * A run's source of records for kp_lua_run: next begins the next record
 * (1 with *rec set, borrowed until the following call; 0 at the end) and
 * fail hears that the current record raised msg (the caller undoes it).
 * base and base_len (may be NULL, 0) are bytes holding the records'
 * values, copied once for the run so that lazy values share them.
 */
struct kp_lua_feed {
	int (*next)(void *arg, const struct kp_proc_record **rec);
	void (*fail)(void *arg, const char *msg);
	void *arg;
	const char *base;
	size_t base_len;
};

/* true when kp_lua_run applies to this started instance (the JIT is on). */
int kp_lua_can_run(const struct kp_proc_ctx *ctx);

/*
 * Runs every record of feed through the module in one call into the VM:
 * the prelude's loop (lua_host.h), which the JIT compiles together with
 * the processor. Each record sees what process() would give it (the same
 * rec, random seed and error messages); a record that raises is reported
 * to fail and the run goes on with the next.
 */
void kp_lua_run(struct kp_proc_ctx *ctx, const struct kp_lua_feed *feed);

/*
 * An emit of the processor ABI's host (kp_proc_host's arguments and
 * results) for values known to be exactly one msgpack object.
 */
typedef int (*kp_lua_emit_fn)(void *host_data, const char *topic,
			      size_t topic_len, const char *key,
			      size_t key_len, const char *value,
			      size_t value_len);

/*
 * Makes the started instance's later emits go through emit (with
 * ctx->host_data) instead of ctx->host->emit: every value the adapter
 * emits is its own encoders' output, so a host can skip checking it.
 * emit must otherwise behave as ctx->host->emit. NULL restores the
 * table's emit.
 */
void kp_lua_use_packed_emit(struct kp_proc_ctx *ctx, kp_lua_emit_fn emit);

/* Bytes the started instance's Lua state holds now. */
size_t kp_lua_memory_used(const struct kp_proc_ctx *ctx);

#endif
