/*
 * handler.c - request decoding and dispatch by op name.
 */
#include "handler.h"

#include <string.h>

#include "base/logging.h"

typedef int (*handler_fn)(struct kp_server *s, struct kp_slot *slot,
			  const struct kp_request *req, struct kp_error *err);

/*
 * A connection let in past max_connections that did not authenticate as
 * admin first: told TOO_MANY_CONNECTIONS, closed once answered.
 */
static int refuse_probation(struct kp_server *s, struct kp_conn *c,
			    struct kp_error *err)
{
	s->conns.stats.connections_refused++;
	kp_conn_close_after_reply(c);
	return kp_error_set(err, KP_EBUSY,
			    "the server has max_connections (%u) open; the few past it are kept for admins",
			    s->conns.max_connections);
}

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

/*
 * {"op":"auth","token":T}: gives the connection the token's role. A bad
 * token leaves it with none. In single-user mode every client is admin
 * already and any token is accepted.
 */
static int handle_auth(struct kp_server *s, struct kp_slot *slot,
		       const struct kp_request *req, struct kp_error *err)
{
	struct kp_conn *c = slot->conn;
	struct kp_mp_view token;
	struct kp_response r;
	enum kp_role role = KP_ROLE_ADMIN;
	int rc = kp_field_str(req->map, "token", &token, err);

	if (rc < 0)
		return rc;
	if (rc == 1)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'token' is required");
	if (kp_auth_enabled(&s->auth)) {
		role = kp_auth_check(&s->auth, token.ptr, token.len);
		c->role = role;
		if (role == KP_ROLE_NONE) {
			s->conns.stats.auth_failures++;
			kp_log_warn("auth", "a client sent a token that is not valid");
			return kp_error_set(err, KP_EUNAUTHORIZED,
					    "the token is not valid");
		}
	}
	if (c->probation) {
		if (role != KP_ROLE_ADMIN)
			return refuse_probation(s, c, err);
		c->probation = false;
	}
	kp_response_begin(&r, &slot->resp, req->id, 2);
	kp_response_key(&r, "role");
	kp_response_str(&r, kp_role_name(role), strlen(kp_role_name(role)));
	kp_response_key(&r, "mode");
	if (kp_auth_enabled(&s->auth))
		kp_response_str(&r, "tokens", 6);
	else
		kp_response_str(&r, "single-user", 11);
	return kp_response_finish(&r);
}

/* The operations, by their wire names, and the role each needs. */
static const struct {
	const char *op;
	handler_fn fn;
	enum kp_role role;
} handlers[] = {
	{ "auth", handle_auth, KP_ROLE_NONE },
	{ "ping", handle_ping, KP_ROLE_READ },
	{ "produce", kp_handle_produce, KP_ROLE_WRITE },
	{ "fetch", kp_handle_fetch, KP_ROLE_READ },
	{ "list_offsets", kp_handle_list_offsets, KP_ROLE_READ },
	{ "topic_create", kp_handle_topic_create, KP_ROLE_ADMIN },
	{ "topic_list", kp_handle_topic_list, KP_ROLE_READ },
	{ "topic_describe", kp_handle_topic_describe, KP_ROLE_READ },
	{ "topic_delete", kp_handle_topic_delete, KP_ROLE_ADMIN },
	/* read; moving an offset back (a reset) needs admin */
	{ "group_commit", kp_handle_group_commit, KP_ROLE_READ },
	{ "group_fetch", kp_handle_group_fetch, KP_ROLE_READ },
	{ "group_list", kp_handle_group_list, KP_ROLE_READ },
	{ "group_delete", kp_handle_group_delete, KP_ROLE_ADMIN },
	{ "proc_create", kp_handle_proc_create, KP_ROLE_ADMIN },
	{ "proc_list", kp_handle_proc_list, KP_ROLE_READ },
	{ "proc_status", kp_handle_proc_status, KP_ROLE_READ },
	{ "proc_pause", kp_handle_proc_pause, KP_ROLE_ADMIN },
	{ "proc_resume", kp_handle_proc_resume, KP_ROLE_ADMIN },
	{ "proc_delete", kp_handle_proc_delete, KP_ROLE_ADMIN },
	{ "proc_reload", kp_handle_proc_reload, KP_ROLE_ADMIN },
	{ "proc_replay", kp_handle_proc_replay, KP_ROLE_ADMIN },
	{ "proc_rollback", kp_handle_proc_rollback_any, KP_ROLE_ADMIN },
	{ "proc_versions", kp_handle_proc_versions, KP_ROLE_READ },
	{ "proc_gc", kp_handle_proc_gc, KP_ROLE_ADMIN },
	{ "proc_graph", kp_handle_proc_graph, KP_ROLE_READ },
	{ "proc_reset", kp_handle_proc_reset, KP_ROLE_ADMIN },
	{ "proc_verify", kp_handle_proc_verify, KP_ROLE_ADMIN },
	{ "view_get", kp_handle_view_get, KP_ROLE_READ },
	{ "view_scan", kp_handle_view_scan, KP_ROLE_READ },
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

/*
 * Whether the connection's role allows op (which needs role): 0, or
 * UNAUTHORIZED / FORBIDDEN with err saying what is needed.
 */
static int check_role(struct kp_server *s, const struct kp_conn *c,
		      const char *op, enum kp_role role, struct kp_error *err)
{
	if (c->role >= role)
		return 0;
	if (c->role == KP_ROLE_NONE)
		return kp_error_set(err, KP_EUNAUTHORIZED,
				    "authenticate first: send {\"op\":\"auth\",\"token\":...} (kappactl --token-file or KAPPA_TOKEN)");
	s->conns.stats.forbidden++;
	return kp_error_set(err, KP_EFORBIDDEN,
			    "'%s' needs the %s role; this connection's token has %s",
			    op, kp_role_name(role), kp_role_name(c->role));
}

/* Runs the handler of a decoded request's op. */
static void dispatch(struct kp_server *s, struct kp_slot *slot,
		     const struct kp_request *req, struct kp_error *err)
{
	int rc;

	if (slot->conn->probation && !kp_mp_str_eq(req->op, "auth")) {
		reply_error(s, slot, refuse_probation(s, slot->conn, err), err);
		return;
	}
	for (size_t i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++) {
		if (!kp_mp_str_eq(req->op, handlers[i].op))
			continue;
		rc = check_role(s, slot->conn, handlers[i].op, handlers[i].role,
				err);
		if (rc != 0) {
			reply_error(s, slot, rc, err);
			return;
		}
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
