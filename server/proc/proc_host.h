/*
 * proc_host.h - the host services of the processor ABI (kp_proc_host),
 * implemented over a sink: a view for state and a buffer for emits.
 *
 * One sink belongs to one processor instance and is used by one thread at
 * a time (the worker running the instance, or the offline runner). Each
 * record is atomic: kp_sink_begin_record marks a point, and
 * kp_sink_abort_record undoes every emit and state change made since, so a
 * record that fails leaves no trace (it goes to the dead-letter topic).
 */
#ifndef KP_PROC_HOST_H
#define KP_PROC_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kappa_processor.h"

#include "view.h"
#include "base/buf.h"

/* One emitted record, decoded from the sink's buffer (borrowed). */
struct kp_emit {
	const char *topic;
	uint32_t topic_len;
	const char *key;       /* NULL when none */
	uint32_t key_len;
	const char *value;     /* msgpack */
	uint32_t value_len;
	int64_t ts;            /* event time of the record that emitted it */
	uint64_t offset;       /* input offset of the record that emitted it */
};

struct kp_sink {
	struct kp_view *view;        /* borrowed; state lives here */
	const char *name;            /* processor name, for logs */
	const char *const *outputs;  /* allowed emit topics; NULL = any */
	size_t output_count;
	/*
	 * A processor without declared outputs (outputs NULL): the topics it
	 * owns so far (borrowed, set before each batch), and what is asked
	 * (on the worker) about an emit to any other topic: 0 lets it through
	 * (it becomes an output), else the error that fails the record. NULL
	 * claim: any topic.
	 */
	const char *const *owned;
	size_t owned_count;
	int (*claim)(void *arg, const char *topic, size_t topic_len);
	void *claim_arg;
	uint32_t max_value_bytes;    /* largest emit (key + value) or state
					value; 0: no limit (max_frame_bytes,
					so every record can be fetched) */
	struct kp_buf emits;         /* encoded emits of the current batch */
	uint32_t emit_count;
	struct kp_buf scratch;       /* backs state_get's borrowed value */
	struct kp_buf undo;          /* undo log of the current record */
	char valid_topic[192];       /* the last emit's topic name, valid */
	uint32_t valid_topic_len;    /* its length (0: none yet) */
	int64_t record_ts;           /* ts of the record being processed */
	uint64_t record_offset;      /* its input offset */
	size_t record_emits_len;     /* emits.len at begin_record */
	uint32_t record_emit_count;  /* emit_count at begin_record */
	void (*log_fn)(void *arg, int level, const char *name,
		       const char *message); /* NULL: server log */
	void *log_arg;
};

/* Initialises a sink over view (borrowed). outputs may be NULL. */
void kp_sink_init(struct kp_sink *sink, struct kp_view *view, const char *name,
		  const char *const *outputs, size_t output_count);

/* Frees the sink's buffers. */
void kp_sink_destroy(struct kp_sink *sink);

/* The host table whose host_data is a struct kp_sink. */
const struct kp_proc_host *kp_sink_host(void);

/*
 * The host table's emit for a value the caller vouches is exactly one
 * msgpack object, which it then does not walk again: the host's own
 * encoders' output (the Lua adapter's, lua_adapter.h), never a plugin's.
 * Otherwise the same checks, results and effects as the table's emit.
 */
int kp_sink_emit_packed(void *host_data, const char *topic, size_t topic_len,
			const char *key, size_t key_len, const char *value,
			size_t value_len);

/* Starts a record: later abort undoes back to here. */
void kp_sink_begin_record(struct kp_sink *sink);

/* Undoes the emits and state changes since begin_record. */
void kp_sink_abort_record(struct kp_sink *sink);

/* Drops all buffered emits (after the caller has written them). */
void kp_sink_clear_emits(struct kp_sink *sink);

/*
 * Iterates emits encoded as a sink buffers them (sink->emits, or a copy
 * a worker process sent back): *pos starts at 0. Returns 1 with *e, 0 at
 * the end, -1 when the bytes at *pos are not a whole emit (a worker's
 * buffer is not trusted: nothing is read past emits->len).
 */
int kp_emits_next(const struct kp_buf *emits, size_t *pos, struct kp_emit *e);

/*
 * Iterates dead letters as a worker encodes them (wk_exec.c: u64 ts, u64
 * input offset, u32 key_len or UINT32_MAX, key, u32 value_len, value);
 * e->topic is unset. Returns 1 with *e, 0 at the end, -1 when the bytes
 * at *pos are not a whole dead letter.
 */
int kp_dlq_next(const struct kp_buf *dlq, size_t *pos, struct kp_emit *e);

/* kp_emits_next over the sink's own buffer. */
int kp_sink_next_emit(const struct kp_sink *sink, size_t *pos,
		      struct kp_emit *e);

#endif
