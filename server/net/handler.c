/*
 * handler.c - request decoding and dispatch by op name.
 */
#include "handler.h"

#include <string.h>

#include "base/logging.h"

typedef int (*handler_fn)(struct kp_server *s, struct kp_slot *slot,
			  const struct kp_request *req, struct kp_error *err);

static int handle_ping(struct kp_server *s, struct kp_slot *slot,
		       const struct kp_request *req, struct kp_error *err)
{
	struct kp_response r;

	(void)s;
	(void)err;
	kp_response_begin(&r, &slot->resp, req->id, 1);
	kp_response_key(&r, "version");
	kp_response_str(&r, KP_VERSION_STRING, strlen(KP_VERSION_STRING));
	return kp_response_finish(&r);
}

/* The operations, by their wire names. */
static const struct {
	const char *op;
	handler_fn fn;
} handlers[] = {
	{ "ping", handle_ping },
	{ "produce", kp_handle_produce },
	{ "fetch", kp_handle_fetch },
	{ "list_offsets", kp_handle_list_offsets },
	{ "topic_create", kp_handle_topic_create },
	{ "topic_list", kp_handle_topic_list },
	{ "topic_describe", kp_handle_topic_describe },
	{ "topic_delete", kp_handle_topic_delete },
	{ "group_commit", kp_handle_group_commit },
	{ "group_fetch", kp_handle_group_fetch },
	{ "group_list", kp_handle_group_list },
	{ "group_delete", kp_handle_group_delete },
	{ "proc_create", kp_handle_proc_create },
	{ "proc_list", kp_handle_proc_list },
	{ "proc_status", kp_handle_proc_status },
	{ "proc_pause", kp_handle_proc_pause },
	{ "proc_resume", kp_handle_proc_resume },
	{ "proc_delete", kp_handle_proc_delete },
	{ "proc_reload", kp_handle_proc_reload },
	{ "proc_replay", kp_handle_proc_replay },
	{ "proc_rollback", kp_handle_proc_rollback_any },
	{ "proc_versions", kp_handle_proc_versions },
	{ "proc_gc", kp_handle_proc_gc },
	{ "proc_graph", kp_handle_proc_graph },
	{ "proc_reset", kp_handle_proc_reset },
	{ "proc_verify", kp_handle_proc_verify },
	{ "view_get", kp_handle_view_get },
	{ "view_scan", kp_handle_view_scan },
};

int kp_handler_ok(struct kp_slot *slot)
{
	struct kp_response r;

	kp_response_begin(&r, &slot->resp, slot->id, 0);
	return kp_response_finish(&r);
}

static void reply_error(struct kp_server *s, struct kp_slot *slot, int code,
			const struct kp_error *err)
{
	const char *msg = err->msg[0] != '\0' ? err->msg : kp_error_text(code);

	s->conns.stats.request_errors++;
	kp_slot_set_error(slot, code, msg);
}

/* Runs the handler of a decoded request's op. */
static void dispatch(struct kp_server *s, struct kp_slot *slot,
		     const struct kp_request *req, struct kp_error *err)
{
	int rc;

	for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++) {
		if (!kp_mp_str_eq(req->op, handlers[i].op))
			continue;
		if (s->stopping) {
			kp_error_set(err, KP_ESHUTDOWN,
				     "server is shutting down");
			reply_error(s, slot, KP_ESHUTDOWN, err);
			return;
		}
		rc = handlers[i].fn(s, slot, req, err);
		if (rc != 0)
			reply_error(s, slot, rc, err);
		return;
	}
	kp_error_set(err, KP_EUNKNOWNOP, "unknown op '%.*s'",
		     (int)(req->op.len > 64 ? 64 : req->op.len), req->op.ptr);
	reply_error(s, slot, KP_EUNKNOWNOP, err);
}

/*
 * The body is walked once: kp_request_decode_records validates it and, for
 * a produce, decodes its records on the way, which the handler then reads.
 */
void kp_handle_frame(struct kp_server *s, struct kp_slot *slot,
		     const char *body, size_t len)
{
	struct kp_request req;
	struct kp_records records;
	struct kp_error err;
	int rc;

	kp_error_clear(&err);
	kp_records_init(&records);
	rc = kp_request_decode_records(body, len, &req, &records, &err);
	slot->id = req.id;
	if (rc != 0)
		reply_error(s, slot, rc, &err);
	else
		dispatch(s, slot, &req, &err);
	kp_records_destroy(&records);
}

int kp_handler_topic(struct kp_server *s, const struct kp_request *req,
		     struct kp_topic **t, struct kp_error *err)
{
	struct kp_mp_view name;
	int rc = kp_field_str(req->map, "topic", &name, err);

	if (rc < 0)
		return rc;
	if (rc == 1)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'topic' is required");
	*t = kp_catalog_find(s->store.catalog, name.ptr, name.len);
	if (*t == NULL)
		return kp_error_set(err, KP_ENOTOPIC, "unknown topic '%.*s'",
				    (int)(name.len > 200 ? 200 : name.len),
				    name.ptr);
	return 0;
}

int kp_handler_partition(struct kp_server *s, const struct kp_request *req,
			 struct kp_topic_partition **tp, struct kp_error *err)
{
	struct kp_topic *t;
	uint64_t partition = 0;
	int rc = kp_handler_topic(s, req, &t, err);

	if (rc != 0)
		return rc;
	rc = kp_field_uint(req->map, "partition", &partition, err);
	if (rc < 0)
		return rc;
	if (partition >= t->config.partitions)
		return kp_error_set(err, KP_ENOPARTITION,
				    "topic '%s' has no partition %llu (it has %u)",
				    t->name, (unsigned long long)partition,
				    t->config.partitions);
	*tp = &t->parts[partition];
	return 0;
}

void kp_handler_pack_topic(struct kp_response *r, struct kp_topic *t)
{
	const struct kp_topic_config *c = &t->config;
	const char *fsync = kp_fsync_mode_name(c->log.fsync);
	const char *cleanup = kp_cleanup_name(c->cleanup);
	msgpack_packer *pk = &r->pk;

	msgpack_pack_map(pk, 11);
	kp_response_key(r, "name");
	kp_response_str(r, t->name, strlen(t->name));
	kp_response_key(r, "partitions");
	msgpack_pack_uint32(pk, c->partitions);
	kp_response_key(r, "fsync");
	kp_response_str(r, fsync, strlen(fsync));
	kp_response_key(r, "fsync_interval_ms");
	msgpack_pack_uint32(pk, c->fsync_interval_ms);
	kp_response_key(r, "retention_ms");
	msgpack_pack_int64(pk, c->log.retention_ms);
	kp_response_key(r, "retention_bytes");
	msgpack_pack_int64(pk, c->log.retention_bytes);
	kp_response_key(r, "segment_bytes");
	msgpack_pack_uint64(pk, c->log.segment_bytes);
	kp_response_key(r, "segment_ms");
	msgpack_pack_int64(pk, c->log.segment_ms);
	kp_response_key(r, "cleanup");
	kp_response_str(r, cleanup, strlen(cleanup));
	kp_response_key(r, "delete_retention_ms");
	msgpack_pack_int64(pk, c->delete_retention_ms);
	kp_response_key(r, "partition_stats");
	msgpack_pack_array(pk, c->partitions);
	for (uint32_t i = 0; i < c->partitions; i++) {
		struct kp_partition_stats st;

		kp_partition_stats(t->parts[i].log, &st);
		msgpack_pack_map(pk, 5);
		kp_response_key(r, "partition");
		msgpack_pack_uint32(pk, i);
		kp_response_key(r, "start_offset");
		msgpack_pack_uint64(pk, st.start_offset);
		kp_response_key(r, "end_offset");
		msgpack_pack_uint64(pk, st.visible_end);
		kp_response_key(r, "size_bytes");
		msgpack_pack_uint64(pk, st.size_bytes);
		kp_response_key(r, "segments");
		msgpack_pack_uint32(pk, st.segments);
	}
}
