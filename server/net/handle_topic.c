/*
 * handle_topic.c - topic_create, topic_list, topic_describe, topic_delete.
 */
#include "handler.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "config.h"
#include "log/writer.h"
#include "proc/proc.h"

/*
 * true for the name of a dead-letter topic ("<proc>.dlq" or a version's
 * "<proc>.dlq.vN"): every dead letter is a failure to look at, so they are
 * never compacted by key.
 */
static bool dead_letter_name(const char *name, size_t len)
{
	size_t i = len;

	if (len >= 4 && memcmp(name + len - 4, ".dlq", 4) == 0)
		return true;
	while (i > 0 && name[i - 1] >= '0' && name[i - 1] <= '9')
		i--;
	return i < len && i >= 6 && memcmp(name + i - 6, ".dlq.v", 6) == 0;
}

/* cleanup and delete_retention_ms (PROTOCOL.md, topic_create). */
static int read_cleanup(const struct kp_request *req,
			struct kp_topic_config *cfg, struct kp_error *err)
{
	struct kp_mp_view cleanup, name;
	int64_t i;
	int rc;

	cfg->cleanup = KP_CLEANUP_DELETE;
	cfg->delete_retention_ms = KP_DELETE_RETENTION_DEFAULT_MS;
	rc = kp_field_str(req->map, "cleanup", &cleanup, err);
	if (rc < 0)
		return rc;
	if (rc == 0 &&
	    kp_cleanup_parse(cleanup.ptr, cleanup.len, &cfg->cleanup) != 0)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'cleanup' must be delete, compact or compact,delete");
	rc = kp_field_int(req->map, "delete_retention_ms", &i, err);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		if (i < 1)
			return kp_error_set(err, KP_EBADREQUEST,
					    "field 'delete_retention_ms' must be >= 1");
		cfg->delete_retention_ms = i;
	}
	if (kp_cleanup_compacts(cfg->cleanup) &&
	    kp_field_str(req->map, "topic", &name, NULL) == 0 &&
	    dead_letter_name(name.ptr, name.len))
		return kp_error_set(err, KP_EBADREQUEST,
				    "a dead-letter topic cannot be compacted: each dead letter is kept, whatever its key");
	return 0;
}

static int read_settings(struct kp_server *s, const struct kp_request *req,
			 struct kp_topic_config *cfg, struct kp_error *err)
{
	uint64_t u;
	int64_t i;
	struct kp_mp_view fsync;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	cfg->partitions = s->cfg.default_partitions;
	cfg->fsync_interval_ms = s->cfg.fsync_interval_ms;
	cfg->log = s->cfg.topic_defaults;
	rc = kp_field_uint(req->map, "partitions", &u, err);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		if (u < 1 || u > KP_MAX_PARTITIONS)
			return kp_error_set(err, KP_EBADREQUEST,
					    "field 'partitions' must be 1..%d",
					    KP_MAX_PARTITIONS);
		cfg->partitions = (uint32_t)u;
	}
	rc = kp_field_str(req->map, "fsync", &fsync, err);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		char name[16];

		snprintf(name, sizeof(name), "%.*s",
			 (int)(fsync.len > 15 ? 15 : fsync.len), fsync.ptr);
		if (fsync.len > 15 ||
		    kp_fsync_mode_parse(name, &cfg->log.fsync) != 0)
			return kp_error_set(err, KP_EBADREQUEST,
					    "field 'fsync' must be always, interval or never");
	}
	rc = kp_field_uint(req->map, "fsync_interval_ms", &u, err);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		if (u < 1 || u > UINT32_MAX)
			return kp_error_set(err, KP_EBADREQUEST,
					    "field 'fsync_interval_ms' must be >= 1");
		cfg->fsync_interval_ms = (uint32_t)u;
	}
	rc = kp_field_uint(req->map, "segment_bytes", &u, err);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		if (u < 1024 || u > (1ull << 40))
			return kp_error_set(err, KP_EBADREQUEST,
					    "field 'segment_bytes' must be 1024..2^40");
		cfg->log.segment_bytes = u;
	}
	rc = kp_field_uint(req->map, "segment_ms", &u, err);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		if (u < 1 || u > INT64_MAX)
			return kp_error_set(err, KP_EBADREQUEST,
					    "field 'segment_ms' must be >= 1");
		cfg->log.segment_ms = (int64_t)u;
	}
	rc = kp_field_int(req->map, "retention_ms", &i, err);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		if (i < -1 || i == 0)
			return kp_error_set(err, KP_EBADREQUEST,
					    "field 'retention_ms' must be -1 (keep all) or >= 1");
		cfg->log.retention_ms = i;
	}
	rc = kp_field_int(req->map, "retention_bytes", &i, err);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		if (i < -1)
			return kp_error_set(err, KP_EBADREQUEST,
					    "field 'retention_bytes' must be -1 (keep all) or >= 0");
		cfg->log.retention_bytes = i;
	}
	return read_cleanup(req, cfg, err);
}

static int reply_topic(struct kp_slot *slot, struct kp_topic *t)
{
	struct kp_response r;

	kp_response_begin(&r, &slot->resp, slot->id, 1);
	kp_response_key(&r, "topic");
	kp_handler_pack_topic(&r, t);
	return kp_response_finish(&r);
}

int kp_handle_topic_create(struct kp_server *s, struct kp_slot *slot,
			   const struct kp_request *req, struct kp_error *err)
{
	struct kp_topic_config cfg;
	struct kp_mp_view name;
	struct kp_topic *t;
	const char *user;
	int rc;

	rc = kp_field_str(req->map, "topic", &name, err);
	if (rc < 0)
		return rc;
	if (rc == 1)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'topic' is required");
	rc = read_settings(s, req, &cfg, err);
	if (rc != 0)
		return rc;
	/* Names of a processor's future versions' topics are its own. */
	user = kp_procs_topic_user(s->procs, name.ptr, name.len, true);
	if (user != NULL &&
	    kp_catalog_find(s->store.catalog, name.ptr, name.len) == NULL)
		return kp_error_set(err, KP_EBADREQUEST,
				    "topic name '%.*s' is reserved: processor %s's versions write topics of that name",
				    (int)(name.len > 200 ? 200 : name.len),
				    name.ptr, user);
	rc = kp_store_create_topic(&s->store, name.ptr, name.len, &cfg, &t,
				   err);
	if (rc != 0)
		return rc;
	return reply_topic(slot, t);
}

int kp_handle_topic_list(struct kp_server *s, struct kp_slot *slot,
			 const struct kp_request *req, struct kp_error *err)
{
	struct kp_response r;
	size_t n = kp_catalog_count(s->store.catalog);

	(void)req;
	(void)err;
	kp_response_begin(&r, &slot->resp, slot->id, 1);
	kp_response_key(&r, "topics");
	msgpack_pack_array(&r.pk, n);
	for (size_t i = 0; i < n; i++)
		kp_handler_pack_topic(&r, kp_catalog_at(s->store.catalog, i));
	return kp_response_finish(&r);
}

int kp_handle_topic_describe(struct kp_server *s, struct kp_slot *slot,
			     const struct kp_request *req,
			     struct kp_error *err)
{
	struct kp_topic *t;
	int rc = kp_handler_topic(s, req, &t, err);

	if (rc != 0)
		return rc;
	return reply_topic(slot, t);
}

int kp_handle_topic_delete(struct kp_server *s, struct kp_slot *slot,
			   const struct kp_request *req, struct kp_error *err)
{
	struct kp_topic *t;
	int rc = kp_handler_topic(s, req, &t, err);

	const char *user;

	if (rc != 0)
		return rc;
	user = kp_procs_topic_user(s->procs, t->name, strlen(t->name), false);
	if (user != NULL)
		return kp_error_set(err, KP_EINUSE,
				    "topic '%s' is used by processor '%s': delete the processor first",
				    t->name, user);
	rc = kp_store_delete_topic(&s->store, t, err);
	if (rc != 0)
		return rc;
	return kp_handler_ok(slot);
}
