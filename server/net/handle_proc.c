/*
 * handle_proc.c - processor and view operations: proc_create, proc_list,
 * proc_status, proc_pause, proc_resume, proc_delete, view_get, view_scan.
 */
#include "handler.h"

#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "proc/proc.h"

/*
 * Reads a required str of at most cap - 1 bytes without control bytes;
 * why, when not NULL, says in the error why longer is refused.
 */
static int read_name(const struct kp_request *req, const char *field,
		     char *out, size_t cap, const char *why,
		     struct kp_error *err)
{
	struct kp_mp_view v;
	int rc = kp_field_str(req->map, field, &v, err);

	if (rc < 0)
		return rc;
	if (rc == 1)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field '%s' is required", field);
	if (v.len >= cap)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field '%s' is too long (at most %zu bytes%s)",
				    field, cap - 1, why != NULL ? why : "");
	for (size_t i = 0; i < v.len; i++) {
		if ((unsigned char)v.ptr[i] < 0x20 || v.ptr[i] == 0x7f)
			return kp_error_set(err, KP_EBADREQUEST,
					    "field '%s' holds a NUL or control byte",
					    field);
	}
	memcpy(out, v.ptr, v.len);
	out[v.len] = '\0';
	return 0;
}

/*
 * Reads an array of 1..KP_PROC_MAX_TOPICS distinct topic names, each at
 * most max_len bytes (0: any topic name).
 */
static int read_topics(const struct kp_request *req, const char *field,
		       char names[][201], uint32_t *count, bool required,
		       size_t max_len, struct kp_error *err)
{
	struct kp_mp_iter it;
	struct kp_mp_view item, s;
	uint32_t n;
	int rc = kp_field_array(req->map, field, &it, &n, err);

	*count = 0;
	if (rc < 0)
		return rc;
	if (rc == 1 || n == 0)
		return required ? kp_error_set(err, KP_EBADREQUEST,
					       "field '%s' needs at least one topic",
					       field)
				: 0;
	if (n > KP_PROC_MAX_TOPICS)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field '%s': at most %d topics", field,
				    KP_PROC_MAX_TOPICS);
	while (kp_mp_array_next(&it, &item) == 1) {
		if (kp_mp_read_str(item, &s) != 0 ||
		    !kp_topic_name_valid(s.ptr, s.len))
			return kp_error_set(err, KP_EBADREQUEST,
					    "field '%s' must hold topic names",
					    field);
		if (max_len != 0 && s.len > max_len)
			return kp_error_set(err, KP_EBADREQUEST,
					    "field '%s': '%.32s...' is longer than %zu bytes, which leaves no room for a version's '.vN'",
					    field, s.ptr, max_len);
		memcpy(names[*count], s.ptr, s.len);
		names[*count][s.len] = '\0';
		for (uint32_t k = 0; k < *count; k++) {
			if (strcmp(names[k], names[*count]) == 0)
				return kp_error_set(err, KP_EBADREQUEST,
						    "field '%s' names topic '%s' twice",
						    field, names[k]);
		}
		(*count)++;
	}
	return 0;
}

/*
 * Reads a position field: "earliest", "latest", {"offset": N}, or a
 * timestamp in ms. Absent leaves *from at its default.
 */
static int read_position(const struct kp_request *req, const char *field,
			 enum kp_proc_from *from, int64_t *value,
			 struct kp_error *err)
{
	struct kp_mp_view v, s;
	uint64_t offset;
	int rc = kp_field_raw(req->map, field, &v, err);

	if (rc < 0)
		return rc;
	if (rc == 1)
		return 0;
	if (kp_mp_read_str(v, &s) == 0) {
		if (kp_mp_str_eq(s, "earliest")) {
			*from = KP_FROM_EARLIEST;
			return 0;
		}
		if (kp_mp_str_eq(s, "latest")) {
			*from = KP_FROM_LATEST;
			return 0;
		}
	} else if (kp_mp_type(v) == KP_MP_MAP &&
		   kp_field_uint(v, "offset", &offset, NULL) == 0 &&
		   offset <= INT64_MAX) {
		*from = KP_FROM_OFFSET;
		*value = (int64_t)offset;
		return 0;
	} else if (kp_mp_read_int(v, value) == 0) {
		*from = KP_FROM_TIME;
		return 0;
	}
	return kp_error_set(err, KP_EBADREQUEST,
			    "field '%s' must be \"earliest\", \"latest\", {\"offset\": N} or a timestamp in ms",
			    field);
}

static int read_from(const struct kp_request *req, struct kp_proc_def *def,
		     struct kp_error *err)
{
	def->from = KP_FROM_EARLIEST;
	return read_position(req, "from", &def->from, &def->from_ts, err);
}

/*
 * The limits a processor asks, within the server's ceilings
 * (max_time_budget_ms, max_proc_memory_bytes; the latter 0 lets a
 * processor ask for no memory limit at all). The defaults are capped by
 * the same ceilings.
 */
static int read_limits(const struct kp_server *s, const struct kp_request *req,
		       struct kp_proc_def *def, struct kp_error *err)
{
	uint64_t mem_max = s->cfg.max_proc_memory_bytes;
	struct kp_mp_view v;
	uint64_t u;
	int rc = kp_field_raw(req->map, "max_error_rate", &v, err);

	if (rc < 0)
		return rc;
	if (rc == 0 && (kp_mp_read_double(v, &def->max_error_rate) != 0 ||
			!(def->max_error_rate >= 0 && def->max_error_rate <= 1)))
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'max_error_rate' must be a number in 0..1");
	rc = kp_field_uint(req->map, "error_window_min", &u, err);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		if (u < 1 || u > UINT32_MAX)
			return kp_error_set(err, KP_EBADREQUEST,
					    "field 'error_window_min' must be at least 1");
		def->error_window_min = (uint32_t)u;
	}
	rc = kp_field_uint(req->map, "time_budget_ms", &u, err);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		if (u < 10 || u > s->cfg.max_time_budget_ms)
			return kp_error_set(err, KP_EBADREQUEST,
					    "field 'time_budget_ms' must be 10..%u (the server's max_time_budget_ms)",
					    s->cfg.max_time_budget_ms);
		def->time_budget_ms = (uint32_t)u;
	}
	rc = kp_field_uint(req->map, "memory_limit", &u, err);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		if ((u == 0 && mem_max != 0) || (mem_max != 0 && u > mem_max))
			return kp_error_set(err, KP_EBADREQUEST,
					    "field 'memory_limit' must be 1..%llu bytes (the server's max_proc_memory_bytes)",
					    (unsigned long long)mem_max);
		def->memory_limit = u;
	}
	if (mem_max != 0 && def->memory_limit > mem_max)
		def->memory_limit = mem_max;
	if (def->time_budget_ms > s->cfg.max_time_budget_ms)
		def->time_budget_ms = s->cfg.max_time_budget_ms;
	return 0;
}

int kp_handle_proc_create(struct kp_server *s, struct kp_slot *slot,
			  const struct kp_request *req, struct kp_error *err)
{
	struct kp_proc_def def;
	struct kp_mp_view config;
	int rc;

	kp_proc_def_init(&def);
	def.error_window_min = s->cfg.error_window_min;
	rc = read_name(req, "name", def.name, KP_PROC_NAME_MAX + 1,
		       ", so that every version's dead-letter topic NAME.dlq.vN is a topic name",
		       err);
	if (rc == 0)
		rc = read_name(req, "file", def.source, sizeof(def.source),
			       NULL, err);

	if (rc == 0 && def.source[0] != '/')
		rc = kp_error_set(err, KP_EBADREQUEST,
				  "field 'file' must be an absolute path on the server");
	if (rc == 0)
		rc = read_topics(req, "inputs", def.inputs, &def.input_count,
				 true, 0, err);
	if (rc == 0)
		rc = read_topics(req, "outputs", def.outputs, &def.output_count,
				 false, KP_PROC_OUTPUT_MAX, err);
	def.open_outputs = def.output_count == 0;
	if (rc == 0)
		rc = read_from(req, &def, err);
	if (rc == 0 && def.from == KP_FROM_OFFSET)
		rc = kp_error_set(err, KP_EBADREQUEST,
				  "field 'from' of proc_create takes earliest, latest or a timestamp");
	if (rc == 0)
		rc = read_limits(s, req, &def, err);
	if (rc == 0) {
		bool watch = s->cfg.watch_processors;

		rc = kp_field_bool(req->map, "watch", &watch, err);
		def.watch = watch;
		rc = rc < 0 ? rc : 0;
	}
	if (rc == 0) {
		rc = kp_field_map(req->map, "config", &config, err);
		if (rc == 0) {
			kp_buf_reset(&def.config);
			if (kp_buf_append(&def.config, config.ptr, config.len))
				rc = kp_error_set(err, -ENOMEM, "out of memory");
		} else if (rc == 1) {
			rc = 0;
		}
	}
	if (rc == 0)
		rc = kp_procs_create(s->procs, &def, slot, err);
	kp_proc_def_destroy(&def);
	return rc;
}

static int find_proc(struct kp_server *s, const struct kp_request *req,
		     struct kp_proc **p, struct kp_error *err)
{
	struct kp_mp_view name;
	int rc = kp_field_str(req->map, "name", &name, err);

	if (rc < 0)
		return rc;
	if (rc == 1)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'name' is required");
	*p = kp_procs_find(s->procs, name.ptr, name.len);
	if (*p == NULL)
		return kp_error_set(err, KP_ENOTFOUND,
				    "no processor named '%.*s'",
				    (int)(name.len > 200 ? 200 : name.len),
				    name.ptr);
	return 0;
}

static int reply_status(struct kp_slot *slot, struct kp_proc *p)
{
	struct kp_response r;

	kp_response_begin(&r, &slot->resp, slot->id, 1);
	kp_response_key(&r, "proc");
	kp_proc_pack_status(p, &r);
	return kp_response_finish(&r);
}

int kp_handle_proc_list(struct kp_server *s, struct kp_slot *slot,
			const struct kp_request *req, struct kp_error *err)
{
	struct kp_response r;
	size_t n = kp_procs_count(s->procs);

	(void)req;
	(void)err;
	kp_response_begin(&r, &slot->resp, slot->id, 1);
	kp_response_key(&r, "procs");
	msgpack_pack_array(&r.pk, n);
	for (size_t i = 0; i < n; i++)
		kp_proc_pack_status(kp_procs_at(s->procs, i), &r);
	return kp_response_finish(&r);
}

int kp_handle_proc_status(struct kp_server *s, struct kp_slot *slot,
			  const struct kp_request *req, struct kp_error *err)
{
	struct kp_proc *p;
	int rc = find_proc(s, req, &p, err);

	return rc != 0 ? rc : reply_status(slot, p);
}

/* Finds the named processor, runs op on it, answers with its status. */
static int status_after(struct kp_server *s, struct kp_slot *slot,
			const struct kp_request *req, struct kp_error *err,
			int (*op)(struct kp_proc *p, struct kp_error *err))
{
	struct kp_proc *p;
	int rc = find_proc(s, req, &p, err);

	if (rc == 0)
		rc = op(p, err);
	return rc != 0 ? rc : reply_status(slot, p);
}

static int pause_by_operator(struct kp_proc *p, struct kp_error *err)
{
	return kp_proc_pause(p, "paused by operator", err);
}

int kp_handle_proc_pause(struct kp_server *s, struct kp_slot *slot,
			 const struct kp_request *req, struct kp_error *err)
{
	return status_after(s, slot, req, err, pause_by_operator);
}

int kp_handle_proc_resume(struct kp_server *s, struct kp_slot *slot,
			  const struct kp_request *req, struct kp_error *err)
{
	return status_after(s, slot, req, err, kp_proc_resume);
}

int kp_handle_proc_delete(struct kp_server *s, struct kp_slot *slot,
			  const struct kp_request *req, struct kp_error *err)
{
	struct kp_proc *p;
	int rc = find_proc(s, req, &p, err);

	if (rc == 0)
		rc = kp_proc_delete(p, err);
	return rc != 0 ? rc : kp_handler_ok(slot);
}

int kp_handle_view_get(struct kp_server *s, struct kp_slot *slot,
		       const struct kp_request *req, struct kp_error *err)
{
	struct kp_proc *p;
	struct kp_mp_view key;
	struct kp_mp_iter it;
	struct kp_vq_key *keys;
	uint32_t n = 0, i = 0;
	int rc = find_proc(s, req, &p, err);

	if (rc != 0)
		return rc;
	rc = kp_field_array(req->map, "keys", &it, &n, err);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		rc = kp_field_bytes(req->map, "key", &key, err);
		if (rc < 0)
			return rc;
		if (rc == 1)
			return kp_error_set(err, KP_EBADREQUEST,
					    "field 'key' (or 'keys') is required");
		return kp_proc_view_get(p, slot,
					&(struct kp_vq_key){ key.ptr, key.len },
					1, false, err);
	}
	if (n > KP_VIEW_GET_MAX_KEYS)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'keys' has %u keys; at most %d per request",
				    n, KP_VIEW_GET_MAX_KEYS);
	if (n == 0) {
		struct kp_response r;

		kp_response_begin(&r, &slot->resp, slot->id, 1);
		kp_response_key(&r, "items");
		msgpack_pack_array(&r.pk, 0);
		return kp_response_finish(&r);
	}
	keys = kp_calloc(n, sizeof(*keys));
	if (keys == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	while (kp_mp_array_next(&it, &key) == 1 && i < n) {
		if (kp_mp_read_str(key, &key) != 0 &&
		    kp_mp_read_bin(key, &key) != 0) {
			kp_free(keys);
			return kp_error_set(err, KP_EBADREQUEST,
					    "field 'keys' holds a value that is not a str or bin");
		}
		keys[i].ptr = key.ptr;
		keys[i].len = key.len;
		i++;
	}
	rc = kp_proc_view_get(p, slot, keys, i, true, err);
	kp_free(keys);
	return rc;
}

int kp_handle_view_scan(struct kp_server *s, struct kp_slot *slot,
			const struct kp_request *req, struct kp_error *err)
{
	struct kp_proc *p;
	struct kp_mp_view prefix = { "", 0 }, after = { "", 0 };
	uint64_t limit = 1000;
	int rc = find_proc(s, req, &p, err);

	if (rc != 0)
		return rc;
	if (kp_field_bytes(req->map, "prefix", &prefix, err) < 0 ||
	    kp_field_bytes(req->map, "after", &after, err) < 0 ||
	    kp_field_uint(req->map, "limit", &limit, err) < 0)
		return KP_EBADREQUEST;
	if (limit == 0 || limit > KP_VIEW_SCAN_MAX)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'limit' must be 1..%d (page on with 'after')",
				    KP_VIEW_SCAN_MAX);
	return kp_proc_view_scan(p, slot, prefix.ptr, prefix.len, after.ptr,
				 after.len, (uint32_t)limit, err);
}

/* Reads an optional "file": an absolute path on the server. */
static int read_file_field(const struct kp_request *req, char *out, size_t cap,
			   bool *given, struct kp_error *err)
{
	struct kp_mp_view v;
	int rc = kp_field_str(req->map, "file", &v, err);

	*given = false;
	if (rc < 0)
		return rc;
	if (rc == 1)
		return 0;
	if (v.len == 0 || v.len >= cap || v.ptr[0] != '/')
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'file' must be an absolute path on the server");
	memcpy(out, v.ptr, v.len);
	out[v.len] = '\0';
	*given = true;
	return 0;
}

int kp_handle_proc_reload(struct kp_server *s, struct kp_slot *slot,
			  const struct kp_request *req, struct kp_error *err)
{
	char file[KP_PROC_PATH_MAX];
	struct kp_proc *p;
	bool given, watch;
	int rc = find_proc(s, req, &p, err);

	if (rc == 0)
		rc = read_file_field(req, file, sizeof(file), &given, err);
	if (rc != 0)
		return rc;
	rc = kp_field_bool(req->map, "watch", &watch, err);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		kp_proc_set_watch(p, watch, err);
		if (!given)
			return reply_status(slot, p);
	}
	return kp_proc_reload(p, given ? file : NULL, slot, err);
}

int kp_handle_proc_replay(struct kp_server *s, struct kp_slot *slot,
			  const struct kp_request *req, struct kp_error *err)
{
	char file[KP_PROC_PATH_MAX];
	enum kp_proc_from from = KP_FROM_EARLIEST;
	int64_t value = 0;
	uint64_t rate = 0;
	uint32_t number;
	struct kp_proc *p;
	struct kp_response r;
	bool given, cascade = false;
	int rc = find_proc(s, req, &p, err);

	if (rc == 0)
		rc = read_file_field(req, file, sizeof(file), &given, err);
	if (rc == 0)
		rc = read_position(req, "from", &from, &value, err);
	if (rc == 0 && kp_field_uint(req->map, "rate", &rate, err) < 0)
		rc = KP_EBADREQUEST;
	if (rc == 0 && kp_field_bool(req->map, "cascade", &cascade, err) < 0)
		rc = KP_EBADREQUEST;
	if (rc == 0 && from == KP_FROM_LATEST)
		rc = kp_error_set(err, KP_EBADREQUEST,
				  "a replay starts at earliest, an offset or a time");
	if (rc == 0 && cascade)
		return kp_handle_replay_cascade(slot, p, given ? file : NULL,
						from, value, rate, err);
	if (rc == 0)
		rc = kp_proc_replay(p, given ? file : NULL, from, value, rate,
				    &number, err);
	if (rc != 0)
		return rc;
	kp_response_begin(&r, &slot->resp, slot->id, 2);
	kp_response_key(&r, "version");
	msgpack_pack_uint32(&r.pk, number);
	kp_response_key(&r, "proc");
	kp_proc_pack_status(p, &r);
	return kp_response_finish(&r);
}

/* Reads an optional uint field of 1..UINT32_MAX into *out (0 when absent). */
static int read_number(const struct kp_request *req, const char *field,
		       uint32_t *out, struct kp_error *err)
{
	uint64_t n = 0;
	int rc = kp_field_uint(req->map, field, &n, err);

	*out = 0;
	if (rc < 0)
		return rc;
	if (rc == 0 && (n == 0 || n > UINT32_MAX))
		return kp_error_set(err, KP_EBADREQUEST,
				    "field '%s' must be 1 or more", field);
	*out = (uint32_t)n;
	return 0;
}

int kp_handle_proc_rollback(struct kp_server *s, struct kp_slot *slot,
			    const struct kp_request *req, struct kp_error *err)
{
	uint32_t to_version, to_revision;
	struct kp_proc *p;
	int rc = find_proc(s, req, &p, err);

	if (rc == 0)
		rc = read_number(req, "to_version", &to_version, err);
	if (rc == 0)
		rc = read_number(req, "to_revision", &to_revision, err);
	if (rc == 0 && to_revision != 0 && to_version == 0)
		rc = kp_error_set(err, KP_EBADREQUEST,
				  "field 'to_revision' needs 'to_version'");
	if (rc != 0)
		return rc;
	return kp_proc_rollback(p, to_version, to_revision, slot, err);
}

int kp_handle_proc_versions(struct kp_server *s, struct kp_slot *slot,
			    const struct kp_request *req, struct kp_error *err)
{
	struct kp_proc *p;
	struct kp_response r;
	int rc = find_proc(s, req, &p, err);

	if (rc != 0)
		return rc;
	kp_response_begin(&r, &slot->resp, slot->id, 1);
	kp_response_key(&r, "versions");
	kp_proc_pack_versions(p, &r);
	return kp_response_finish(&r);
}

int kp_handle_proc_gc(struct kp_server *s, struct kp_slot *slot,
		      const struct kp_request *req, struct kp_error *err)
{
	struct kp_proc *p;
	struct kp_response r;
	int rc = find_proc(s, req, &p, err);

	if (rc != 0)
		return rc;
	rc = kp_proc_gc(p, err);
	if (rc < 0)
		return rc;
	kp_response_begin(&r, &slot->resp, slot->id, 1);
	kp_response_key(&r, "removed");
	msgpack_pack_uint32(&r.pk, (uint32_t)rc);
	return kp_response_finish(&r);
}

int kp_handle_proc_reset(struct kp_server *s, struct kp_slot *slot,
			 const struct kp_request *req, struct kp_error *err)
{
	enum kp_proc_from to = KP_FROM_EARLIEST;
	int64_t value = 0;
	bool execute = false;
	struct kp_proc *p;
	struct kp_mp_view v;
	int rc = find_proc(s, req, &p, err);

	if (rc == 0 && kp_field_raw(req->map, "to", &v, err) == 1)
		rc = kp_error_set(err, KP_EBADREQUEST, "field 'to' is required");
	if (rc == 0)
		rc = read_position(req, "to", &to, &value, err);
	if (rc == 0 && kp_field_bool(req->map, "execute", &execute, err) < 0)
		rc = KP_EBADREQUEST;
	if (rc != 0)
		return rc;
	return kp_proc_reset(p, to, value, execute, slot, err);
}

int kp_handle_proc_verify(struct kp_server *s, struct kp_slot *slot,
			  const struct kp_request *req, struct kp_error *err)
{
	enum kp_proc_from from = KP_FROM_EARLIEST, to = KP_FROM_LATEST;
	int64_t value = 0, to_value = 0;
	struct kp_proc *p;
	int rc = find_proc(s, req, &p, err);

	if (rc == 0)
		rc = read_position(req, "from", &from, &value, err);
	if (rc == 0)
		rc = read_position(req, "to", &to, &to_value, err);
	if (rc == 0 && (from == KP_FROM_LATEST ||
			(to != KP_FROM_LATEST && to != KP_FROM_TIME)))
		rc = kp_error_set(err, KP_EBADREQUEST,
				  "verify takes 'from' (earliest, an offset or a time) and 'to' (a time; default: where the live version is)");
	if (rc != 0)
		return rc;
	return kp_proc_verify(p, from, value, to == KP_FROM_TIME, to_value,
			      slot, err);
}
