/*
 * proc_host.c - the processor ABI's host services over a sink: state in a
 * view, emits in a buffer, and an undo log that makes each record atomic.
 *
 * Emit buffer format, one entry per emit (integers little-endian):
 *
 *   u32 topic_len, u32 key_len (0xffffffff: no key), u32 value_len,
 *   i64 ts (the event time of the record that emitted it),
 *   u64 offset (the input offset of the record that emitted it),
 *   topic bytes, key bytes, value bytes
 *
 * Undo log format, one entry per state change since kp_sink_begin_record,
 * read backwards from the end (so it needs no index):
 *
 *   key bytes, previous value bytes, u32 key_len,
 *   u32 previous value_len (0xffffffff: the key was absent)
 *
 * Access pattern: one thread per sink; every service is one view call (the
 * previous value is captured under the same lock as the change) plus a
 * memcpy into the undo log.
 */
#include "proc_host.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "proc_def.h"
#include "base/logging.h"
#include "base/mp.h"
#include "log/topic.h"

#define NO_LEN UINT32_MAX
#define EMIT_HEADER 28
#define UNDO_TRAILER 8

void kp_sink_init(struct kp_sink *sink, struct kp_view *view, const char *name,
		  const char *const *outputs, size_t output_count)
{
	memset(sink, 0, sizeof(*sink));
	sink->view = view;
	sink->name = name;
	sink->outputs = outputs;
	sink->output_count = output_count;
	kp_buf_init(&sink->emits);
	kp_buf_init(&sink->scratch);
	kp_buf_init(&sink->undo);
}

void kp_sink_destroy(struct kp_sink *sink)
{
	if (sink == NULL)
		return;
	kp_buf_destroy(&sink->emits);
	kp_buf_destroy(&sink->scratch);
	kp_buf_destroy(&sink->undo);
	sink->emit_count = 0;
	sink->record_emits_len = 0;
	sink->record_emit_count = 0;
}

void kp_sink_begin_record(struct kp_sink *sink)
{
	kp_buf_reset(&sink->undo);
	sink->record_emits_len = sink->emits.len;
	sink->record_emit_count = sink->emit_count;
}

/* Restores one key to its previous value, or deletes it (prev NULL). */
static void undo_one(struct kp_sink *sink, const char *key, uint32_t key_len,
		     const char *prev, uint32_t prev_len)
{
	int rc;

	if (prev == NULL) {
		kp_view_del(sink->view, key, key_len);
		return;
	}
	rc = kp_view_put(sink->view, key, key_len, prev, prev_len);
	if (rc != 0)
		kp_log(KP_LOG_ERROR, "proc", NULL,
		       "processor %s: cannot undo a state change: %s",
		       sink->name ? sink->name : "?", kp_error_text(rc));
}

void kp_sink_abort_record(struct kp_sink *sink)
{
	size_t end = sink->undo.len;

	while (end >= UNDO_TRAILER) {
		const char *t = sink->undo.data + end - UNDO_TRAILER;
		uint32_t key_len = kp_get_le32(t);
		uint32_t prev_len = kp_get_le32(t + 4);
		size_t body = (size_t)key_len + (prev_len == NO_LEN ? 0 : prev_len);
		const char *key = t - body;

		undo_one(sink, key, key_len,
			 prev_len == NO_LEN ? NULL : key + key_len,
			 prev_len == NO_LEN ? 0 : prev_len);
		end -= UNDO_TRAILER + body;
	}
	kp_buf_reset(&sink->undo);
	sink->emits.len = sink->record_emits_len;
	sink->emit_count = sink->record_emit_count;
}

void kp_sink_clear_emits(struct kp_sink *sink)
{
	kp_buf_reset(&sink->emits);
	sink->emit_count = 0;
	sink->record_emits_len = 0;
	sink->record_emit_count = 0;
}

int kp_sink_next_emit(const struct kp_sink *sink, size_t *pos,
		      struct kp_emit *e)
{
	return kp_emits_next(&sink->emits, pos, e);
}

int kp_emits_next(const struct kp_buf *emits, size_t *pos, struct kp_emit *e)
{
	const char *p;
	uint64_t body;

	if (*pos >= emits->len)
		return 0;
	if (emits->len - *pos < EMIT_HEADER)
		return -1;
	p = emits->data + *pos;
	e->topic_len = kp_get_le32(p);
	e->key_len = kp_get_le32(p + 4);
	e->value_len = kp_get_le32(p + 8);
	e->ts = (int64_t)kp_get_le64(p + 12);
	e->offset = kp_get_le64(p + 20);
	e->topic = p + EMIT_HEADER;
	body = (uint64_t)e->topic_len + e->value_len +
	       (e->key_len == NO_LEN ? 0 : e->key_len);
	if (body > emits->len - *pos - EMIT_HEADER)
		return -1;
	if (e->key_len == NO_LEN) {
		e->key = NULL;
		e->key_len = 0;
	} else {
		e->key = e->topic + e->topic_len;
	}
	e->value = e->topic + e->topic_len + e->key_len;
	*pos += EMIT_HEADER + (size_t)body;
	return 1;
}

int kp_dlq_next(const struct kp_buf *dlq, size_t *pos, struct kp_emit *e)
{
	const char *p;
	size_t left;

	if (*pos >= dlq->len)
		return 0;
	left = dlq->len - *pos;
	if (left < 24)
		return -1;
	p = dlq->data + *pos;
	memset(e, 0, sizeof(*e));
	e->ts = (int64_t)kp_get_le64(p);
	e->offset = kp_get_le64(p + 8);
	e->key_len = kp_get_le32(p + 16);
	if (e->key_len == NO_LEN) {
		e->key_len = 0;
	} else {
		if (e->key_len > left - 24)
			return -1;
		e->key = p + 20;
	}
	p += 20 + e->key_len;
	e->value_len = kp_get_le32(p);
	if (e->value_len > left - 24 - e->key_len)
		return -1;
	e->value = p + 4;
	*pos += 24 + (size_t)e->key_len + e->value_len;
	return 1;
}

static bool in_list(const char *const *list, size_t count, const char *topic,
		    size_t topic_len)
{
	for (size_t i = 0; i < count; i++) {
		if (strlen(list[i]) == topic_len &&
		    memcmp(list[i], topic, topic_len) == 0)
			return true;
	}
	return false;
}

/* 0 when sink may emit to topic, else the error that fails the record. */
static int topic_allowed(const struct kp_sink *sink, const char *topic,
			 size_t topic_len)
{
	if (sink->outputs != NULL)
		return in_list(sink->outputs, sink->output_count, topic,
			       topic_len) ? 0 : KP_ENOTOPIC;
	if (sink->claim == NULL ||
	    in_list(sink->owned, sink->owned_count, topic, topic_len))
		return 0;
	return sink->claim(sink->claim_arg, topic, topic_len);
}

/* 0 when value is exactly one msgpack object, else KP_EBADMSGPACK. */
static int check_value(const char *value, size_t value_len)
{
	size_t size;

	if (value == NULL || kp_mp_skip(value, value_len, &size) != 0 ||
	    size != value_len)
		return KP_EBADMSGPACK;
	return 0;
}

/*
 * 0 when sink may emit to topic (not empty): a valid output name, and
 * an allowed one. The last valid name is remembered, so that a processor
 * emitting to one topic pays for the byte check once.
 */
static int check_topic(struct kp_sink *sink, const char *topic,
		       size_t topic_len)
{
	if (topic_len != sink->valid_topic_len ||
	    memcmp(topic, sink->valid_topic, topic_len) != 0) {
		/* An output's name leaves room for its versions' (OUTPUT.vN). */
		if (!kp_topic_name_valid(topic, topic_len) ||
		    topic_len > KP_PROC_OUTPUT_MAX)
			return KP_EBADTOPIC;
		if (topic_len <= sizeof(sink->valid_topic)) {
			memcpy(sink->valid_topic, topic, topic_len);
			sink->valid_topic_len = (uint32_t)topic_len;
		}
	}
	return topic_allowed(sink, topic, topic_len);
}

/* An emit; packed: the value is known to be one msgpack object. */
static int emit(struct kp_sink *sink, const char *topic, size_t topic_len,
		const char *key, size_t key_len, const char *value,
		size_t value_len, bool packed)
{
	char header[EMIT_HEADER];
	int rc;

	if (topic == NULL || topic_len == 0)
		return KP_EBADTOPIC;
	if (topic_len >= NO_LEN || key_len >= NO_LEN || value_len >= NO_LEN)
		return KP_ETOOLARGE;
	rc = check_topic(sink, topic, topic_len);
	if (rc != 0)
		return rc;
	if (sink->max_value_bytes != 0 &&
	    (uint64_t)key_len + value_len > sink->max_value_bytes)
		return KP_ETOOLARGE;
	rc = packed ? 0 : check_value(value, value_len);
	if (rc != 0)
		return rc;
	kp_put_le32(header, (uint32_t)topic_len);
	kp_put_le32(header + 4, key == NULL ? NO_LEN : (uint32_t)key_len);
	kp_put_le32(header + 8, (uint32_t)value_len);
	kp_put_le64(header + 12, (uint64_t)sink->record_ts);
	kp_put_le64(header + 20, sink->record_offset);
	rc = kp_buf_reserve(&sink->emits, EMIT_HEADER + topic_len +
				  (key ? key_len : 0) + value_len);
	if (rc != 0)
		return rc;
	kp_buf_append(&sink->emits, header, EMIT_HEADER);
	kp_buf_append(&sink->emits, topic, topic_len);
	if (key != NULL)
		kp_buf_append(&sink->emits, key, key_len);
	kp_buf_append(&sink->emits, value, value_len);
	sink->emit_count++;
	return 0;
}

static int on_emit(void *host_data, const char *topic, size_t topic_len,
		   const char *key, size_t key_len, const char *value,
		   size_t value_len)
{
	return emit(host_data, topic, topic_len, key, key_len, value,
		    value_len, false);
}

int kp_sink_emit_packed(void *host_data, const char *topic, size_t topic_len,
			const char *key, size_t key_len, const char *value,
			size_t value_len)
{
	return emit(host_data, topic, topic_len, key, key_len, value,
		    value_len, true);
}

/* An empty key may come as NULL; any other NULL key is refused. */
static int fix_key(const char **key, size_t key_len)
{
	if (*key != NULL)
		return 0;
	if (key_len != 0)
		return KP_EBADREQUEST;
	*key = "";
	return 0;
}

static int on_state_get(void *host_data, const char *key, size_t key_len,
			const char **value, size_t *value_len)
{
	struct kp_sink *sink = host_data;
	int rc = fix_key(&key, key_len);

	if (rc != 0)
		return rc;
	rc = kp_view_get(sink->view, key, key_len, &sink->scratch);
	if (rc == 1) {
		*value = sink->scratch.data;
		*value_len = sink->scratch.len;
	}
	return rc;
}

/*
 * Starts an undo entry: appends the key, with room for the trailer should
 * the key be absent (when present, the view keeps that room itself).
 */
static int undo_open(struct kp_sink *sink, const char **key, size_t key_len,
		     size_t *mark)
{
	*mark = sink->undo.len;
	if (fix_key(key, key_len) != 0)
		return KP_EBADREQUEST;
	if (key_len >= NO_LEN)
		return KP_ETOOLARGE;
	if (kp_buf_reserve(&sink->undo, key_len + UNDO_TRAILER) != 0)
		return -ENOMEM;
	if (key_len != 0)
		memcpy(sink->undo.data + sink->undo.len, *key, key_len);
	sink->undo.len += key_len;
	return 0;
}

/*
 * Ends the undo entry started at mark after the view call returned rc
 * (1: the key was present and its old value follows the key, 0: absent,
 * < 0: the call failed and changed nothing, so the entry is dropped).
 * Never allocates: undo_open or the view reserved the trailer's room.
 */
static int undo_close(struct kp_sink *sink, size_t mark, size_t key_len,
		      int rc)
{
	char *t;

	if (rc < 0) {
		sink->undo.len = mark;
		return rc;
	}
	t = sink->undo.data + sink->undo.len;
	kp_put_le32(t, (uint32_t)key_len);
	kp_put_le32(t + 4, rc == 1 ? (uint32_t)(sink->undo.len - mark - key_len)
				   : NO_LEN);
	sink->undo.len += UNDO_TRAILER;
	return 0;
}

static int on_state_put(void *host_data, const char *key, size_t key_len,
			const char *value, size_t value_len)
{
	struct kp_sink *sink = host_data;
	size_t mark;
	int rc = check_value(value, value_len);

	if (rc == 0 && sink->max_value_bytes != 0 &&
	    value_len > sink->max_value_bytes)
		rc = KP_ETOOLARGE;
	if (rc == 0)
		rc = undo_open(sink, &key, key_len, &mark);
	if (rc != 0)
		return rc;
	rc = kp_view_put_prev(sink->view, key, key_len, value, value_len,
			      &sink->undo);
	return undo_close(sink, mark, key_len, rc);
}

static int on_state_incr(void *host_data, const char *key, size_t key_len,
			 int64_t delta, int64_t *result)
{
	struct kp_sink *sink = host_data;
	size_t mark;
	int64_t sum;
	int rc = undo_open(sink, &key, key_len, &mark);

	if (rc != 0)
		return rc;
	rc = kp_view_incr_prev(sink->view, key, key_len, delta, &sum,
			       &sink->undo);
	rc = undo_close(sink, mark, key_len, rc);
	if (rc == 0 && result != NULL)
		*result = sum;
	return rc;
}

static int on_state_del(void *host_data, const char *key, size_t key_len)
{
	struct kp_sink *sink = host_data;
	size_t mark;
	int rc = undo_open(sink, &key, key_len, &mark);

	if (rc != 0)
		return rc;
	rc = kp_view_del_prev(sink->view, key, key_len, &sink->undo);
	if (rc == 0) {
		sink->undo.len = mark;
		return 0;
	}
	return undo_close(sink, mark, key_len, rc);
}

static int on_state_scan(void *host_data, const char *prefix,
			 size_t prefix_len, size_t limit,
			 int (*visit)(void *arg, const char *key, size_t key_len,
				      const char *value, size_t value_len),
			 void *arg)
{
	struct kp_sink *sink = host_data;
	int rc;

	if (visit == NULL || (prefix == NULL && prefix_len != 0))
		return KP_EBADREQUEST;
	rc = kp_view_scan(sink->view, prefix ? prefix : "", prefix_len, limit,
			  visit, arg);
	return rc < 0 ? rc : 0;
}

static enum kp_log_level log_level(int level)
{
	switch (level) {
	case KP_PROC_LOG_DEBUG:
		return KP_LOG_DEBUG;
	case KP_PROC_LOG_INFO:
		return KP_LOG_INFO;
	case KP_PROC_LOG_WARN:
		return KP_LOG_WARN;
	default:
		return KP_LOG_ERROR;
	}
}

static void on_log(void *host_data, int level, const char *message)
{
	struct kp_sink *sink = host_data;
	const char *name = sink->name ? sink->name : "";
	char fields[160];

	if (message == NULL)
		message = "";
	if (sink->log_fn != NULL) {
		sink->log_fn(sink->log_arg, level, name, message);
		return;
	}
	if (!kp_log_enabled(log_level(level)))
		return;
	snprintf(fields, sizeof(fields), "processor=\"%.120s\"", name);
	kp_log(log_level(level), "proc", fields, "%s", message);
}

static const struct kp_proc_host sink_host = {
	.size = sizeof(struct kp_proc_host),
	.emit = on_emit,
	.state_get = on_state_get,
	.state_put = on_state_put,
	.state_incr = on_state_incr,
	.state_del = on_state_del,
	.state_scan = on_state_scan,
	.log = on_log,
};

const struct kp_proc_host *kp_sink_host(void)
{
	return &sink_host;
}
