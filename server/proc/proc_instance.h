/*
 * proc_instance.h - one running processor: its code, context and sink.
 *
 * The same object runs a processor in the server (on a worker thread) and
 * in the offline runner (`kappactl run`), so both execute identical code.
 * Not thread-safe: one thread drives an instance at a time, except
 * kp_instance_interrupt, which any thread may call.
 */
#ifndef KP_PROC_INSTANCE_H
#define KP_PROC_INSTANCE_H

#include <stddef.h>
#include <stdint.h>

#include "kappa_processor.h"

#include "proc_code.h"
#include "proc_host.h"
#include "base/error.h"

struct kp_instance {
	struct kp_proc_code *code;  /* referenced */
	struct kp_proc_ctx ctx;     /* what the processor sees */
	struct kp_sink sink;        /* host services' target */
	char *config;               /* owned msgpack map */
	size_t config_len;
	char *name;                 /* owned */
	int started;                /* init succeeded; fini pending */
};

/*
 * Starts an instance of code (a reference is taken) named name over view
 * (borrowed), with config (one msgpack map, copied; NULL = empty map),
 * allowed outputs (NULL = any) and a memory limit (0 = none). Calls init.
 * Returns 0, or an error with err holding the processor's message (for Lua
 * with file:line).
 *
 * The output names are copied. init runs as a record of the sink: when it
 * fails, its state changes are undone and its emits dropped (a reload that
 * fails leaves the shared view as it was), fini is NOT called (init cleans
 * up after itself), the instance is left zeroed and holds no reference.
 */
int kp_instance_start(struct kp_instance *inst, struct kp_proc_code *code,
		      const char *name, struct kp_view *view,
		      const char *config, size_t config_len,
		      const char *const *outputs, size_t output_count,
		      size_t memory_limit, uint32_t max_value_bytes,
		      struct kp_error *err);

/*
 * Processes one record atomically: on failure its emits and state changes
 * are undone and err holds the message. Returns 0 or KP_EINTERNAL-class
 * errors (the message says what the processor raised).
 */
int kp_instance_process(struct kp_instance *inst,
			const struct kp_proc_record *rec, struct kp_error *err);

/*
 * A source of records for kp_instance_run: next puts the next record in
 * *rec (its pointers borrowed until the following call) and returns 1, or
 * 0 when the run is over (no more records, or time to stop); failed hears
 * of a record that failed, after its emits and state changes were undone.
 * base and base_len (or NULL, 0) are bytes that hold the records' values
 * for the whole run (a Lua run shares one copy of them, lua_adapter.h).
 */
struct kp_record_feed {
	int (*next)(void *arg, struct kp_proc_record *rec);
	void (*failed)(void *arg, const struct kp_proc_record *rec,
		       const struct kp_error *err);
	void *arg;
	const char *base;
	size_t base_len;
};

/*
 * Processes feed's records one after the other, each atomically as
 * kp_instance_process would (the same results, messages and seeds). A Lua
 * processor with the JIT on runs them in one call into its VM, so the JIT
 * compiles the host's loop together with the processor (lua_adapter.h).
 */
void kp_instance_run(struct kp_instance *inst,
		     const struct kp_record_feed *feed);

/* Asks a running call to stop (time budget). Any thread. */
void kp_instance_interrupt(struct kp_instance *inst);

/* Calls fini and releases everything. Safe on a never-started instance. */
void kp_instance_stop(struct kp_instance *inst);

#endif
