/*
 * state_json.c - the dashboard's JSON snapshot (GET /api/state).
 *
 * Processor status and versions are packed by the processor runtime as
 * msgpack (the same maps proc_status and proc_versions answer) and turned
 * into JSON here, so the dashboard shows exactly what the protocol does;
 * health is /health's body (metrics.h). Each physical topic says which
 * logical name (alias) it is a version of, read from the catalog.
 */
#include "state_json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>

#include "json_text.h"
#include "metrics.h"
#include "base/clock.h"
#include "log/partition.h"
#include "log/topic.h"
#include "net/server.h"
#include "proc/proc.h"
#include "proc/proc_pipeline.h"
#include "wire/proto.h"

#ifndef KP_VERSION_STRING
#define KP_VERSION_STRING "0"
#endif

/* Nesting deeper than this is written as null (the server packs 3). */
#define JSON_MAX_DEPTH 32

static int appendf(struct kp_buf *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int appendf(struct kp_buf *out, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -ENOMEM;
	return kp_buf_append(out, line, (size_t)n) == 0 ? 0 : -ENOMEM;
}

static int put(struct kp_buf *out, const char *s)
{
	return kp_buf_append(out, s, strlen(s)) == 0 ? 0 : -ENOMEM;
}

static int json_value(struct kp_buf *out, const msgpack_object *o, int depth);

static int json_key(struct kp_buf *out, const msgpack_object *k, int depth)
{
	struct kp_buf tmp;
	int rc;

	if (k->type == MSGPACK_OBJECT_STR)
		return kp_json_string(out, k->via.str.ptr, k->via.str.size);
	if (k->type == MSGPACK_OBJECT_BIN)
		return kp_json_string(out, k->via.bin.ptr, k->via.bin.size);
	/* Any other key: its JSON text, as a string. */
	kp_buf_init(&tmp);
	rc = json_value(&tmp, k, depth);
	if (rc == 0)
		rc = kp_json_string(out, tmp.data, tmp.len);
	kp_buf_destroy(&tmp);
	return rc;
}

static int json_value(struct kp_buf *out, const msgpack_object *o, int depth)
{
	int rc = 0;

	if (depth > JSON_MAX_DEPTH)
		return put(out, "null");
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return put(out, "null");
	case MSGPACK_OBJECT_BOOLEAN:
		return put(out, o->via.boolean ? "true" : "false");
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		return appendf(out, "%llu", (unsigned long long)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return appendf(out, "%lld", (long long)o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if (!isfinite(o->via.f64))
			return put(out, "null");
		return appendf(out, "%.17g", o->via.f64);
	case MSGPACK_OBJECT_STR:
		return kp_json_string(out, o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_BIN:
		return kp_json_string(out, o->via.bin.ptr, o->via.bin.size);
	case MSGPACK_OBJECT_ARRAY:
		rc = put(out, "[");
		for (uint32_t i = 0; rc == 0 && i < o->via.array.size; i++) {
			if (i > 0)
				rc = put(out, ",");
			if (rc == 0)
				rc = json_value(out, &o->via.array.ptr[i],
						depth + 1);
		}
		return rc == 0 ? put(out, "]") : rc;
	case MSGPACK_OBJECT_MAP:
		rc = put(out, "{");
		for (uint32_t i = 0; rc == 0 && i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];

			if (i > 0)
				rc = put(out, ",");
			if (rc == 0)
				rc = json_key(out, &kv->key, depth + 1);
			if (rc == 0)
				rc = put(out, ":");
			if (rc == 0)
				rc = json_value(out, &kv->val, depth + 1);
		}
		return rc == 0 ? put(out, "}") : rc;
	default:
		return put(out, "null");   /* ext */
	}
}

/* Unpacks one whole object from data; 0, -EINVAL or -ENOMEM. */
static int unpack_one(msgpack_unpacked *u, const char *data, size_t len)
{
	size_t off = 0;
	msgpack_unpack_return ret = msgpack_unpack_next(u, data, len, &off);

	if (ret == MSGPACK_UNPACK_NOMEM_ERROR)
		return -ENOMEM;
	if (ret != MSGPACK_UNPACK_SUCCESS || off != len)
		return -EINVAL;
	return 0;
}

int kp_json_from_msgpack(struct kp_buf *out, const char *data, size_t len)
{
	msgpack_unpacked u;
	int rc;

	msgpack_unpacked_init(&u);
	rc = unpack_one(&u, data, len);
	if (rc == 0)
		rc = json_value(out, &u.data, 0);
	msgpack_unpacked_destroy(&u);
	return rc;
}

/* ---- packing through the processor runtime ----------------------------- */

static int on_pack_write(void *data, const char *buf, size_t len)
{
	struct kp_response *r = data;

	if (kp_buf_append(r->out, buf, len) != 0) {
		r->oom = 1;
		return -1;
	}
	return 0;
}

static void packer_begin(struct kp_response *r, struct kp_buf *tmp)
{
	kp_buf_reset(tmp);
	r->out = tmp;
	r->start = 0;
	r->oom = 0;
	msgpack_packer_init(&r->pk, r, on_pack_write);
}

/*
 * One processor: its status map with "versions" (a count there) renamed
 * "version_count" and the versions array added as "versions".
 */
static int proc_json(struct kp_buf *out, struct kp_proc *p,
		     struct kp_buf *tmp)
{
	struct kp_response r;
	msgpack_unpacked u;
	const msgpack_object *m;
	int rc;

	packer_begin(&r, tmp);
	kp_proc_pack_status(p, &r);
	if (r.oom)
		return -ENOMEM;
	msgpack_unpacked_init(&u);
	rc = unpack_one(&u, tmp->data, tmp->len);
	m = &u.data;
	if (rc == 0 && m->type != MSGPACK_OBJECT_MAP)
		rc = -EINVAL;
	if (rc == 0)
		rc = put(out, "{");
	for (uint32_t i = 0; rc == 0 && i < m->via.map.size; i++) {
		const msgpack_object_kv *kv = &m->via.map.ptr[i];

		if (i > 0)
			rc = put(out, ",");
		if (rc != 0)
			break;
		if (kv->key.type == MSGPACK_OBJECT_STR &&
		    kv->key.via.str.size == 8 &&
		    memcmp(kv->key.via.str.ptr, "versions", 8) == 0)
			rc = put(out, "\"version_count\"");
		else
			rc = json_key(out, &kv->key, 1);
		if (rc == 0)
			rc = put(out, ":");
		if (rc == 0)
			rc = json_value(out, &kv->val, 1);
	}
	msgpack_unpacked_destroy(&u);
	if (rc != 0)
		return rc;
	packer_begin(&r, tmp);
	kp_proc_pack_versions(p, &r);
	if (r.oom)
		return -ENOMEM;
	rc = put(out, ",\"versions\":");
	if (rc == 0)
		rc = kp_json_from_msgpack(out, tmp->data, tmp->len);
	return rc == 0 ? put(out, "}") : rc;
}

/* The pipeline graph (proc_graph's map), or an empty one without procs. */
static int pipeline_json(struct kp_buf *out, struct kp_procs *ps,
			 struct kp_buf *tmp)
{
	struct kp_response r;

	if (ps == NULL)
		return put(out, "{\"processors\":[],\"topics\":[],\"edges\":[]}");
	packer_begin(&r, tmp);
	kp_procs_pack_graph(ps, &r);
	if (r.oom)
		return -ENOMEM;
	return kp_json_from_msgpack(out, tmp->data, tmp->len);
}

static int u64_array(struct kp_buf *out, const struct kp_partition_stats *st,
		     uint32_t n, bool end)
{
	int rc = put(out, "[");

	for (uint32_t i = 0; rc == 0 && i < n; i++)
		rc = appendf(out, "%s%llu", i ? "," : "",
			     (unsigned long long)(end ? st[i].visible_end
						      : st[i].start_offset));
	return rc == 0 ? put(out, "]") : rc;
}

/*
 * What a physical topic is to the processors' outputs: the logical name it
 * is one version of (empty for a plain topic), that version's generation,
 * and whether the logical name resolves to it now.
 */
struct topic_role {
	char logical[KP_NAME_MAX + 1]; /* the alias it is a version of, or "" */
	uint32_t generation;           /* 1, 2, ...; 0 for a plain topic */
	bool current;                  /* its name (or logical) resolves here */
};

/*
 * Version 1 of a processor's output L is the physical topic L, version
 * N > 1 is L.vN (proc_version.c), and the alias L points at the live one;
 * so t is a version of L when L is t's own name or its name less ".vN"
 * and L is an alias.
 */
static void topic_role_of(struct kp_catalog *cat, const struct kp_topic *t,
			  struct topic_role *r)
{
	const char *target = NULL;
	uint32_t gen = 0, n;
	size_t len = strlen(t->name), base = 0;

	memset(r, 0, sizeof(*r));
	if (kp_catalog_alias_get(cat, t->name, len, &gen, &target) == 1) {
		memcpy(r->logical, t->name, len + 1);
		r->current = strcmp(target, t->name) == 0;
		r->generation = 1;
		return;
	}
	base = kp_proc_version_base(t->name, len, &n);
	if (base > 0 && n >= 2 &&
	    kp_catalog_alias_get(cat, t->name, base, &gen, &target) == 1) {
		memcpy(r->logical, t->name, base);
		r->logical[base] = '\0';
		r->current = strcmp(target, t->name) == 0;
		r->generation = n;
		return;
	}
	r->current = true;
}

static int topic_role_json(struct kp_buf *out, const struct topic_role *r)
{
	int rc;

	if (r->logical[0] == '\0')
		return appendf(out, ",\"logical\":null,\"generation\":null,"
			       "\"current\":%s", r->current ? "true" : "false");
	rc = put(out, ",\"logical\":");
	if (rc == 0)
		rc = kp_json_string(out, r->logical, strlen(r->logical));
	if (rc == 0)
		rc = appendf(out, ",\"generation\":%u,\"current\":%s",
			     r->generation, r->current ? "true" : "false");
	return rc;
}

static int topic_json(struct kp_buf *out, struct kp_catalog *cat,
		      struct kp_topic *t, struct kp_buf *tmp)
{
	struct topic_role role;
	uint32_t n = t->config.partitions;
	struct kp_partition_stats *st;
	uint64_t end = 0, bytes = 0, segments = 0, appended = 0;
	bool failed = false;
	int rc;

	kp_buf_reset(tmp);
	if (kp_buf_reserve(tmp, (size_t)n * sizeof(*st)) != 0)
		return -ENOMEM;
	st = (struct kp_partition_stats *)(void *)tmp->data;
	for (uint32_t i = 0; i < n; i++) {
		kp_partition_stats(t->parts[i].log, &st[i]);
		end += st[i].visible_end;
		bytes += st[i].size_bytes;
		segments += st[i].segments;
		appended += t->parts[i].records_appended;
		failed = failed || st[i].failed;
	}
	topic_role_of(cat, t, &role);
	rc = put(out, "{\"name\":");
	if (rc == 0)
		rc = kp_json_string(out, t->name, strlen(t->name));
	if (rc == 0)
		rc = topic_role_json(out, &role);
	if (rc == 0)
		rc = appendf(out, ",\"partitions\":%u,\"start_offsets\":", n);
	if (rc == 0)
		rc = u64_array(out, st, n, false);
	if (rc == 0)
		rc = put(out, ",\"end_offsets\":");
	if (rc == 0)
		rc = u64_array(out, st, n, true);
	if (rc == 0)
		rc = appendf(out,
			     ",\"end_offset\":%llu,\"bytes\":%llu,\"segments\":%llu,"
			     "\"records_appended\":%llu,\"failed\":%s}",
			     (unsigned long long)end,
			     (unsigned long long)bytes,
			     (unsigned long long)segments,
			     (unsigned long long)appended,
			     failed ? "true" : "false");
	return rc;
}

/* /health's body ({"status", "reasons"}), without its newline. */
static int health_json(struct kp_buf *out, struct kp_server *s,
		       struct kp_buf *tmp)
{
	if (s->store.catalog == NULL)
		return put(out, "null");
	kp_buf_reset(tmp);
	kp_metrics_health(s, tmp);
	while (tmp->len > 0 && tmp->data[tmp->len - 1] == '\n')
		tmp->len--;
	if (tmp->len == 0 || tmp->data[tmp->len - 1] != '}')
		return -ENOMEM;   /* the writer ran out of memory */
	return kp_buf_append(out, tmp->data, tmp->len) == 0 ? 0 : -ENOMEM;
}

int kp_state_json(struct kp_server *s, int64_t started_ms, struct kp_buf *out)
{
	int64_t now = kp_clock_now_ms();
	size_t ntopics = s->store.catalog ? kp_catalog_count(s->store.catalog) : 0;
	size_t nprocs = s->procs ? kp_procs_count(s->procs) : 0;
	struct kp_buf tmp;
	int rc;

	rc = put(out, "{\"server\":{\"version\":");
	if (rc == 0)
		rc = kp_json_string(out, KP_VERSION_STRING,
				    strlen(KP_VERSION_STRING));
	if (rc == 0)
		rc = appendf(out,
			     ",\"pid\":%ld,\"now_ms\":%lld,\"started_ms\":%lld,"
			     "\"uptime_ms\":%lld},\"topics\":[",
			     (long)getpid(), (long long)now,
			     (long long)started_ms,
			     (long long)(now - started_ms));
	kp_buf_init(&tmp);
	for (size_t i = 0; rc == 0 && i < ntopics; i++) {
		if (i > 0)
			rc = put(out, ",");
		if (rc == 0)
			rc = topic_json(out, s->store.catalog,
					kp_catalog_at(s->store.catalog, i), &tmp);
	}
	if (rc == 0)
		rc = put(out, "],\"processors\":[");
	for (size_t i = 0; rc == 0 && i < nprocs; i++) {
		if (i > 0)
			rc = put(out, ",");
		if (rc == 0)
			rc = proc_json(out, kp_procs_at(s->procs, i), &tmp);
	}
	if (rc == 0)
		rc = put(out, "],\"pipeline\":");
	if (rc == 0)
		rc = pipeline_json(out, s->procs, &tmp);
	if (rc == 0)
		rc = put(out, ",\"health\":");
	if (rc == 0)
		rc = health_json(out, s, &tmp);
	kp_buf_destroy(&tmp);
	if (rc == 0)
		rc = put(out, "}\n");
	return rc;
}
