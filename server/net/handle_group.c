/*
 * handle_group.c - consumer-group offsets: commit, fetch, list, delete.
 */
#include "handler.h"

#include <errno.h>
#include <string.h>

static int read_group(const struct kp_request *req, struct kp_mp_view *group,
		      struct kp_error *err)
{
	int rc = kp_field_str(req->map, "group", group, err);

	if (rc < 0)
		return rc;
	if (rc == 1)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'group' is required");
	if (!kp_topic_name_valid(group->ptr, group->len))
		return kp_error_set(err, KP_EBADREQUEST,
				    "bad group name: use 1..200 of A-Z a-z 0-9 . _ -");
	return 0;
}

/* Checks one {topic, partition, offset} item of a commit. */
static int commit_item(struct kp_server *s, struct kp_mp_view item,
		       struct kp_mp_view *topic, uint64_t *partition,
		       uint64_t *offset, struct kp_topic **resolved,
		       struct kp_error *err)
{
	struct kp_partition_stats st;
	struct kp_topic *t;
	int rc;

	if (kp_mp_type(item) != KP_MP_MAP)
		return kp_error_set(err, KP_EBADREQUEST,
				    "'offsets' items must be maps");
	rc = kp_field_str(item, "topic", topic, err);
	if (rc == 1)
		rc = kp_error_set(err, KP_EBADREQUEST,
				  "'offsets' item needs 'topic'");
	if (rc != 0)
		return rc;
	*partition = 0;
	rc = kp_field_uint(item, "partition", partition, err);
	if (rc < 0)
		return rc;
	rc = kp_field_uint(item, "offset", offset, err);
	if (rc == 1)
		rc = kp_error_set(err, KP_EBADREQUEST,
				  "'offsets' item needs 'offset'");
	if (rc != 0)
		return rc;
	t = kp_catalog_find(s->store.catalog, topic->ptr, topic->len);
	if (t == NULL)
		return kp_error_set(err, KP_ENOTOPIC, "unknown topic '%.*s'",
				    (int)(topic->len > 200 ? 200 : topic->len),
				    topic->ptr);
	if (*partition >= t->config.partitions)
		return kp_error_set(err, KP_ENOPARTITION,
				    "topic '%s' has no partition %llu", t->name,
				    (unsigned long long)*partition);
	kp_partition_stats(t->parts[*partition].log, &st);
	if (*offset > st.visible_end)
		return kp_error_set(err, KP_EOFFSET,
				    "offset %llu is past the end of %s/%llu (end offset %llu): a consumer commits offsets it has read",
				    (unsigned long long)*offset, t->name,
				    (unsigned long long)*partition,
				    (unsigned long long)st.visible_end);
	*resolved = t;
	return 0;
}

/* The committed offset a visit finds for one partition. */
struct committed {
	uint32_t partition;
	bool found;
	uint64_t offset;
};

static void visit_committed(void *arg, const struct kp_group_offset *o)
{
	struct committed *c = arg;

	if (o->partition == c->partition) {
		c->found = true;
		c->offset = o->offset;
	}
}

/*
 * A consumer commits forward; moving a group's offset back is a reset,
 * which is the admin's (docs/SECURITY.md): FORBIDDEN for other roles.
 */
static int check_not_backwards(struct kp_server *s, struct kp_mp_view group,
			       struct kp_topic *t, uint32_t partition,
			       uint64_t offset, struct kp_error *err)
{
	struct committed c = { partition, false, 0 };

	kp_groups_each(s->store.groups, group.ptr, group.len, t->name,
		       strlen(t->name), visit_committed, &c);
	if (!c.found || offset >= c.offset)
		return 0;
	return kp_error_set(err, KP_EFORBIDDEN,
			    "moving group '%.*s' back on %s/%u (from %llu to %llu) is a reset: it needs the admin role",
			    (int)(group.len > 200 ? 200 : group.len), group.ptr,
			    t->name, partition, (unsigned long long)c.offset,
			    (unsigned long long)offset);
}

int kp_handle_group_commit(struct kp_server *s, struct kp_slot *slot,
			   const struct kp_request *req, struct kp_error *err)
{
	struct kp_mp_view group, item, topic;
	struct kp_mp_iter it, check;
	uint64_t partition, offset;
	struct kp_topic *t;
	uint32_t count;
	int rc = read_group(req, &group, err);

	if (rc != 0)
		return rc;
	rc = kp_field_array(req->map, "offsets", &it, &count, err);
	if (rc == 1)
		rc = kp_error_set(err, KP_EBADREQUEST,
				  "field 'offsets' is required");
	if (rc != 0)
		return rc;
	check = it;
	while (kp_mp_array_next(&check, &item) == 1) {
		rc = commit_item(s, item, &topic, &partition, &offset, &t,
				 err);
		if (rc == 0 && slot->conn != NULL &&
		    slot->conn->role < KP_ROLE_ADMIN)
			rc = check_not_backwards(s, group, t, (uint32_t)partition,
						 offset, err);
		if (rc != 0)
			return rc;
	}
	while (kp_mp_array_next(&it, &item) == 1) {
		commit_item(s, item, &topic, &partition, &offset, &t, err);
		/*
		 * Stored under the physical topic: for a processor's logical
		 * output, offsets belong to the version they were read from,
		 * and a later version starts without any.
		 */
		if (kp_groups_set(s->store.groups, group.ptr, group.len, t->name,
				  strlen(t->name), (uint32_t)partition,
				  offset) != 0)
			return kp_error_set(err, -ENOMEM, "out of memory");
	}
	s->store.groups_generation++;
	if (kp_handler_ok(slot) != 0)
		return kp_error_set(err, -ENOMEM, "out of memory");
	kp_store_save_groups(&s->store, slot);
	return 0;
}

/* Collects the offsets of a group for packing. */
struct fetch_ctx {
	struct kp_server *srv;
	struct kp_response *r;
	bool pack;          /* false: just count */
	uint32_t count;
};

static void visit_offset(void *arg, const struct kp_group_offset *o)
{
	struct fetch_ctx *ctx = arg;
	struct kp_topic *t = kp_catalog_find_physical(ctx->srv->store.catalog,
						      o->topic,
						      strlen(o->topic));
	struct kp_partition_stats st;
	msgpack_packer *pk;
	uint64_t lag;

	if (t == NULL || o->partition >= t->config.partitions)
		return;
	ctx->count++;
	if (!ctx->pack)
		return;
	pk = &ctx->r->pk;
	kp_partition_stats(t->parts[o->partition].log, &st);
	lag = st.visible_end > o->offset ? st.visible_end - o->offset : 0;
	msgpack_pack_map(pk, 5);
	kp_response_key(ctx->r, "topic");
	kp_response_str(ctx->r, o->topic, strlen(o->topic));
	kp_response_key(ctx->r, "partition");
	msgpack_pack_uint32(pk, o->partition);
	kp_response_key(ctx->r, "offset");
	msgpack_pack_uint64(pk, o->offset);
	kp_response_key(ctx->r, "end_offset");
	msgpack_pack_uint64(pk, st.visible_end);
	kp_response_key(ctx->r, "lag");
	msgpack_pack_uint64(pk, lag);
}

int kp_handle_group_fetch(struct kp_server *s, struct kp_slot *slot,
			  const struct kp_request *req, struct kp_error *err)
{
	struct kp_mp_view group, topic = { NULL, 0 };
	struct kp_response r;
	struct fetch_ctx ctx = { s, &r, false, 0 };
	int rc = read_group(req, &group, err);

	if (rc != 0)
		return rc;
	rc = kp_field_str(req->map, "topic", &topic, err);
	if (rc < 0)
		return rc;
	if (rc == 0 && !kp_topic_name_valid(topic.ptr, topic.len))
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'topic' is not a valid topic name");
	if (rc == 0) {
		/* A logical topic: the offsets of the version it resolves to. */
		struct kp_topic *t = kp_catalog_find(s->store.catalog, topic.ptr,
						     topic.len);

		if (t != NULL) {
			topic.ptr = t->name;
			topic.len = strlen(t->name);
		}
	}
	kp_groups_each(s->store.groups, group.ptr, group.len, topic.ptr, topic.len,
		       visit_offset, &ctx);
	kp_response_begin(&r, &slot->resp, slot->id, 1);
	kp_response_key(&r, "offsets");
	msgpack_pack_array(&r.pk, ctx.count);
	ctx.pack = true;
	ctx.count = 0;
	kp_groups_each(s->store.groups, group.ptr, group.len, topic.ptr, topic.len,
		       visit_offset, &ctx);
	return kp_response_finish(&r);
}

int kp_handle_group_list(struct kp_server *s, struct kp_slot *slot,
			 const struct kp_request *req, struct kp_error *err)
{
	struct kp_response r;
	size_t n = kp_groups_count(s->store.groups);

	(void)req;
	(void)err;
	kp_response_begin(&r, &slot->resp, slot->id, 1);
	kp_response_key(&r, "groups");
	msgpack_pack_array(&r.pk, n);
	for (size_t i = 0; i < n; i++) {
		const char *name = kp_groups_name(s->store.groups, i);

		kp_response_str(&r, name, strlen(name));
	}
	return kp_response_finish(&r);
}

int kp_handle_group_delete(struct kp_server *s, struct kp_slot *slot,
			   const struct kp_request *req, struct kp_error *err)
{
	struct kp_mp_view group;
	int rc = read_group(req, &group, err);

	if (rc != 0)
		return rc;
	if (kp_groups_delete(s->store.groups, group.ptr, group.len) != 0)
		return kp_error_set(err, KP_ENOGROUP, "unknown group '%.*s'",
				    (int)group.len, group.ptr);
	s->store.groups_generation++;
	if (kp_handler_ok(slot) != 0)
		return kp_error_set(err, -ENOMEM, "out of memory");
	kp_store_save_groups(&s->store, slot);
	return 0;
}
