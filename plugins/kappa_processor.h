/*
 * kappa_processor.h - the processor ABI: the one interface between kappa's
 * host and a processor, whatever its language.
 *
 * A C processor is a shared object that exports
 *
 *     const struct kp_processor *kappa_processor(void);
 *
 * returning a descriptor that starts with the ABI version it was built for
 * and its own size. The Lua adapter implements the same descriptor and
 * forwards to a Lua module, so the host and the scheduler never branch on
 * language. This header is self-contained: a plugin compiles against it
 * alone (build with -fvisibility=hidden and export only kappa_processor).
 *
 * Records cross the boundary as raw msgpack bytes with their metadata. The
 * host's services (emit, view state, log) reach the processor through the
 * table in its context, never through symbols it links against.
 *
 * Ownership: every pointer the host passes in is borrowed for the duration
 * of the call that receives it; a processor that keeps data copies it. Every
 * pointer a processor passes to a host service is copied by the host before
 * the service returns.
 */
#ifndef KAPPA_PROCESSOR_H
#define KAPPA_PROCESSOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version: a plugin built for another major version is refused. */
#define KP_PROC_ABI_MAJOR 1
#define KP_PROC_ABI_MINOR 0
#define KP_PROC_ABI_VERSION ((KP_PROC_ABI_MAJOR << 16) | KP_PROC_ABI_MINOR)

/* The name of the function a shared object exports. */
#define KP_PROC_ENTRY "kappa_processor"

/* Log levels for host->log. */
enum kp_proc_log_level {
	KP_PROC_LOG_DEBUG = 0,
	KP_PROC_LOG_INFO = 1,
	KP_PROC_LOG_WARN = 2,
	KP_PROC_LOG_ERROR = 3
};

/* Buffer size for error messages a processor writes. */
#define KP_PROC_ERR_MAX 512

/* One input record. All pointers borrowed for the call. */
struct kp_proc_record {
	const char *topic;       /* input topic name, NUL-terminated */
	uint32_t partition;      /* input partition */
	uint64_t offset;         /* offset in that partition */
	int64_t ts;              /* event time, ms since the epoch */
	const char *key;         /* key bytes, NULL when the record has none */
	size_t key_len;
	const char *value;       /* the value: exactly one msgpack object */
	size_t value_len;
};

/*
 * Host services. Every function takes the context's host_data first and
 * returns 0 on success or a negative number on failure (then the processor
 * should fail the record by returning non-zero from process).
 */
struct kp_proc_host {
	uint32_t size;           /* sizeof(struct kp_proc_host) of the host */

	/*
	 * Emits a record to an output topic. key may be NULL; value is one
	 * msgpack object. Outputs become visible when the batch that produced
	 * them commits (effectively once).
	 */
	int (*emit)(void *host_data, const char *topic, size_t topic_len,
		    const char *key, size_t key_len, const char *value,
		    size_t value_len);

	/*
	 * Reads a view key. Returns 1 and sets *value / *value_len (msgpack,
	 * borrowed until the next state call) when present, 0 when absent.
	 */
	int (*state_get)(void *host_data, const char *key, size_t key_len,
			 const char **value, size_t *value_len);

	/* Sets a view key to a msgpack value (copied). */
	int (*state_put)(void *host_data, const char *key, size_t key_len,
			 const char *value, size_t value_len);

	/*
	 * Adds delta to the integer at key (absent counts as 0) and stores the
	 * result in *result. Fails when the key holds a non-integer.
	 */
	int (*state_incr)(void *host_data, const char *key, size_t key_len,
			  int64_t delta, int64_t *result);

	/* Deletes a view key (absent is not an error). */
	int (*state_del)(void *host_data, const char *key, size_t key_len);

	/*
	 * Calls visit for each key starting with prefix, in key order, until
	 * visit returns non-zero or limit keys were visited (0 = no limit).
	 * Key and value are borrowed for the visit.
	 */
	int (*state_scan)(void *host_data, const char *prefix,
			  size_t prefix_len, size_t limit,
			  int (*visit)(void *arg, const char *key,
				       size_t key_len, const char *value,
				       size_t value_len),
			  void *arg);

	/* Writes a line to the server log, tagged with the processor. */
	void (*log)(void *host_data, int level, const char *message);
};

/* What a processor instance sees. Owned by the host. */
struct kp_proc_ctx {
	const struct kp_proc_host *host; /* services */
	void *host_data;         /* first argument of every service */
	const char *name;        /* the processor instance's name */
	const char *source;      /* path of the code (.so or .lua) */
	const char *config;      /* its config: one msgpack map */
	size_t config_len;
	void *user;              /* the processor's own state; starts NULL */
	size_t memory_limit;     /* bytes the processor may hold; 0 = none */
};

/*
 * The descriptor. Callbacks return 0 on success; on failure they write a
 * NUL-terminated message of at most KP_PROC_ERR_MAX bytes into err.
 */
struct kp_processor {
	uint32_t abi_version;    /* KP_PROC_ABI_VERSION it was built with */
	uint32_t size;           /* sizeof(struct kp_processor) it was built with */
	const char *name;        /* a short name for logs */

	/* Optional. Called once before any record; may set ctx->user. */
	int (*init)(struct kp_proc_ctx *ctx, char *err);

	/* Required. Called for each input record, in offset order. */
	int (*process)(struct kp_proc_ctx *ctx,
		       const struct kp_proc_record *rec, char *err);

	/* Optional. Called once at the end; frees ctx->user. */
	void (*fini)(struct kp_proc_ctx *ctx);

	/*
	 * Optional. Called from another thread while init or process runs
	 * past the host's time budget: the processor should make that call
	 * return an error soon. Must be async-safe (set a flag, no locks).
	 */
	void (*interrupt)(struct kp_proc_ctx *ctx);
};

/* The function type of the exported entry point. */
typedef const struct kp_processor *(*kp_proc_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif
