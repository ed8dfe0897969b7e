/*
 * proc_def.c - persistence of processor definitions as msgpack maps.
 */
#include "proc_def.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "base/alloc.h"
#include "base/fsutil.h"
#include "base/mp.h"
#include "log/topic.h"
#include "wire/proto.h"

#define FORMAT 2

void kp_proc_def_init(struct kp_proc_def *def)
{
	memset(def, 0, sizeof(*def));
	kp_buf_init(&def->config);
	kp_buf_append(&def->config, "\x80", 1);
	def->max_error_rate = 0.5;
	def->error_window_min = KP_PROC_ERROR_WINDOW_MIN;
	def->time_budget_ms = 5000;
	def->memory_limit = 256u * 1024 * 1024;
	def->next_version = 1;
}

void kp_proc_def_destroy(struct kp_proc_def *def)
{
	for (uint32_t i = 0; i < def->version_count; i++)
		kp_proc_def_version_destroy(&def->versions[i]);
	def->version_count = 0;
	kp_buf_destroy(&def->config);
}

void kp_proc_def_version_destroy(struct kp_proc_def_version *dv)
{
	kp_free(dv->revisions);
	dv->revisions = NULL;
	dv->revision_count = 0;
}

void kp_proc_def_dlq(const struct kp_proc_def *def, char *out, size_t cap)
{
	snprintf(out, cap, "%s.dlq", def->name);
}

size_t kp_proc_version_base(const char *name, size_t len, uint32_t *n)
{
	size_t digits = 0, base;
	uint64_t value = 0;

	while (digits < len && name[len - 1 - digits] >= '0' &&
	       name[len - 1 - digits] <= '9')
		digits++;
	if (digits == 0 || len < digits + 3 || name[len - digits - 1] != 'v' ||
	    name[len - digits - 2] != '.')
		return 0;
	base = len - digits - 2;
	for (size_t i = len - digits; i < len && value <= UINT32_MAX; i++)
		value = value * 10 + (uint64_t)(name[i] - '0');
	if (n != NULL)
		*n = value > UINT32_MAX || name[len - digits] == '0'
			     ? 0 : (uint32_t)value;
	return base;
}

struct kp_proc_def_version *kp_proc_def_version(struct kp_proc_def *def,
						uint32_t n)
{
	for (uint32_t i = 0; i < def->version_count; i++) {
		if (def->versions[i].number == n)
			return &def->versions[i];
	}
	return NULL;
}

struct kp_proc_def_revision *kp_proc_def_revision(
	struct kp_proc_def_version *dv, uint32_t n)
{
	for (uint32_t i = 0; i < dv->revision_count; i++) {
		if (dv->revisions[i].revision == n)
			return &dv->revisions[i];
	}
	return NULL;
}

/* Drops the oldest revision but keep; what was loaded over it moves up. */
static void drop_oldest(struct kp_proc_def_version *dv, uint32_t keep)
{
	struct kp_proc_def_revision gone;
	uint32_t at = 0;

	while (at < dv->revision_count && dv->revisions[at].revision == keep)
		at++;
	if (at == dv->revision_count)
		return;
	gone = dv->revisions[at];
	memmove(&dv->revisions[at], &dv->revisions[at + 1],
		(dv->revision_count - at - 1) * sizeof(*dv->revisions));
	dv->revision_count--;
	for (uint32_t i = 0; i < dv->revision_count; i++) {
		if (dv->revisions[i].previous == gone.revision)
			dv->revisions[i].previous = gone.previous;
	}
}

int kp_proc_def_revision_note(struct kp_proc_def_version *dv,
			      uint32_t previous, int64_t created_ms)
{
	struct kp_proc_def_revision *grown, *r;

	if (dv->revision_count >= KP_PROC_MAX_REVISIONS)
		drop_oldest(dv, previous);
	grown = kp_realloc(dv->revisions,
			   (dv->revision_count + 1) * sizeof(*grown));
	if (grown == NULL)
		return -ENOMEM;
	dv->revisions = grown;
	r = &dv->revisions[dv->revision_count++];
	memset(r, 0, sizeof(*r));
	r->revision = dv->revision;
	r->previous = previous;
	r->created_ms = created_ms;
	snprintf(r->hash, sizeof(r->hash), "%s", dv->hash);
	snprintf(r->source, sizeof(r->source), "%s", dv->source);
	snprintf(r->code, sizeof(r->code), "%s", dv->code);
	return 0;
}

static void key(msgpack_packer *pk, const char *k)
{
	msgpack_pack_str_with_body(pk, k, strlen(k));
}

static void pack_str(msgpack_packer *pk, const char *k, const char *value)
{
	key(pk, k);
	msgpack_pack_str_with_body(pk, value, strlen(value));
}

static void pack_i64(msgpack_packer *pk, const char *k, int64_t value)
{
	key(pk, k);
	msgpack_pack_int64(pk, value);
}

static void pack_names(msgpack_packer *pk, const char *k, char names[][201],
		       uint32_t n)
{
	key(pk, k);
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++)
		msgpack_pack_str_with_body(pk, names[i], strlen(names[i]));
}

static void pack_revision(msgpack_packer *pk,
			  const struct kp_proc_def_revision *r)
{
	msgpack_pack_map(pk, 6);
	pack_i64(pk, "revision", r->revision);
	pack_i64(pk, "previous", r->previous);
	pack_str(pk, "hash", r->hash);
	pack_str(pk, "source", r->source);
	pack_str(pk, "code", r->code);
	pack_i64(pk, "created_ms", r->created_ms);
}

static void pack_version(msgpack_packer *pk,
			 const struct kp_proc_def_version *v)
{
	msgpack_pack_map(pk, 13);
	pack_i64(pk, "number", v->number);
	pack_str(pk, "role", v->role);
	pack_str(pk, "source", v->source);
	pack_str(pk, "code", v->code);
	pack_str(pk, "hash", v->hash);
	pack_i64(pk, "revision", v->revision);
	pack_i64(pk, "created_ms", v->created_ms);
	pack_i64(pk, "rate", (int64_t)v->rate);
	pack_i64(pk, "from", v->from);
	pack_i64(pk, "from_value", v->from_value);
	pack_i64(pk, "replay_total", (int64_t)v->replay_total);
	pack_i64(pk, "previous_version", v->previous_version);
	key(pk, "revisions");
	msgpack_pack_array(pk, v->revision_count);
	for (uint32_t i = 0; i < v->revision_count; i++)
		pack_revision(pk, &v->revisions[i]);
}

int kp_proc_def_save(const struct kp_proc_def *def, const char *dir)
{
	struct kp_buf out;
	msgpack_packer pk;
	char path[4200];
	int rc;

	kp_buf_init(&out);
	msgpack_packer_init(&pk, &out, kp_buf_msgpack_write);
	msgpack_pack_map(&pk, 19);
	pack_i64(&pk, "format", FORMAT);
	pack_str(&pk, "name", def->name);
	pack_str(&pk, "source", def->source);
	pack_names(&pk, "inputs", (char (*)[201])def->inputs, def->input_count);
	pack_names(&pk, "outputs", (char (*)[201])def->outputs,
		   def->output_count);
	pack_i64(&pk, "from", def->from);
	pack_i64(&pk, "from_ts", def->from_ts);
	key(&pk, "config");
	msgpack_pack_bin_with_body(&pk, def->config.data, def->config.len);
	pack_i64(&pk, "paused", def->paused);
	pack_str(&pk, "pause_reason", def->pause_reason);
	pack_i64(&pk, "watch", def->watch);
	pack_i64(&pk, "open_outputs", def->open_outputs);
	key(&pk, "max_error_rate");
	msgpack_pack_double(&pk, def->max_error_rate);
	pack_i64(&pk, "error_window_min", def->error_window_min);
	pack_i64(&pk, "time_budget_ms", def->time_budget_ms);
	pack_i64(&pk, "memory_limit", (int64_t)def->memory_limit);
	pack_i64(&pk, "created_ms", def->created_ms);
	pack_i64(&pk, "next_version", def->next_version);
	key(&pk, "versions");
	msgpack_pack_array(&pk, def->version_count);
	for (uint32_t i = 0; i < def->version_count; i++)
		pack_version(&pk, &def->versions[i]);
	snprintf(path, sizeof(path), "%s/proc.def", dir);
	rc = kp_file_write_atomic(path, out.data, out.len);
	kp_buf_destroy(&out);
	return rc;
}

static int get_str(struct kp_mp_view map, const char *k, char *out,
		   size_t cap)
{
	struct kp_mp_view v;

	if (kp_field_str(map, k, &v, NULL) != 0 || v.len >= cap)
		return -1;
	memcpy(out, v.ptr, v.len);
	out[v.len] = '\0';
	return 0;
}

static int get_i64(struct kp_mp_view map, const char *k, int64_t *out)
{
	return kp_field_int(map, k, out, NULL) == 0 ? 0 : -1;
}

static int get_names(struct kp_mp_view map, const char *k, char names[][201],
		     uint32_t *count)
{
	struct kp_mp_iter it;
	struct kp_mp_view item, s;
	uint32_t n;

	if (kp_field_array(map, k, &it, &n, NULL) != 0 ||
	    n > KP_PROC_MAX_TOPICS)
		return -1;
	*count = 0;
	while (kp_mp_array_next(&it, &item) == 1) {
		if (kp_mp_read_str(item, &s) != 0 || s.len > 200)
			return -1;
		memcpy(names[*count], s.ptr, s.len);
		names[*count][s.len] = '\0';
		(*count)++;
	}
	return 0;
}

static int decode_revision(struct kp_mp_view map,
			   struct kp_proc_def_revision *r)
{
	int64_t n, previous;

	memset(r, 0, sizeof(*r));
	if (get_i64(map, "revision", &n) != 0 || n < 1 || n > UINT32_MAX ||
	    get_i64(map, "previous", &previous) != 0 || previous < 0 ||
	    previous > UINT32_MAX ||
	    get_str(map, "hash", r->hash, sizeof(r->hash)) != 0 ||
	    get_str(map, "source", r->source, sizeof(r->source)) != 0 ||
	    get_str(map, "code", r->code, sizeof(r->code)) != 0 ||
	    get_i64(map, "created_ms", &r->created_ms) != 0)
		return -1;
	r->revision = (uint32_t)n;
	r->previous = (uint32_t)previous;
	return 0;
}

/*
 * The revisions of v. A definition written before they were kept has
 * none: its current code is then its one known revision.
 */
static int decode_revisions(struct kp_mp_view map,
			    struct kp_proc_def_version *v)
{
	struct kp_mp_view item;
	struct kp_mp_iter it;
	int64_t previous = 0;
	uint32_t n = 0;
	int rc = kp_field_array(map, "revisions", &it, &n, NULL);

	if (rc < 0 || n > KP_PROC_MAX_REVISIONS ||
	    kp_field_int(map, "previous_version", &previous, NULL) < 0 ||
	    previous < 0 || previous > UINT32_MAX)
		return -1;
	v->previous_version = (uint32_t)previous;
	if (rc == 1 || n == 0)
		return kp_proc_def_revision_note(v, 0, v->created_ms) ? -1 : 0;
	v->revisions = kp_calloc(n, sizeof(*v->revisions));
	if (v->revisions == NULL)
		return -1;
	while (kp_mp_array_next(&it, &item) == 1) {
		if (decode_revision(item, &v->revisions[v->revision_count]) != 0)
			return -1;
		v->revision_count++;
	}
	return 0;
}

static int decode_version(struct kp_mp_view map, struct kp_proc_def_version *v)
{
	int64_t n, rev, rate, from, total;

	memset(v, 0, sizeof(*v));
	if (get_i64(map, "number", &n) != 0 ||
	    get_str(map, "role", v->role, sizeof(v->role)) != 0 ||
	    get_str(map, "source", v->source, sizeof(v->source)) != 0 ||
	    get_str(map, "code", v->code, sizeof(v->code)) != 0 ||
	    get_str(map, "hash", v->hash, sizeof(v->hash)) != 0 ||
	    get_i64(map, "revision", &rev) != 0 ||
	    get_i64(map, "created_ms", &v->created_ms) != 0 ||
	    get_i64(map, "rate", &rate) != 0 ||
	    get_i64(map, "from", &from) != 0 ||
	    get_i64(map, "from_value", &v->from_value) != 0 ||
	    get_i64(map, "replay_total", &total) != 0 || from < 0 || from > 3)
		return -1;
	v->number = (uint32_t)n;
	v->revision = (uint32_t)rev;
	v->rate = (uint64_t)rate;
	v->from = (enum kp_proc_from)from;
	v->replay_total = (uint64_t)total;
	if (decode_revisions(map, v) != 0) {
		kp_proc_def_version_destroy(v);
		return -1;
	}
	return 0;
}

static int decode(struct kp_proc_def *def, struct kp_mp_view map)
{
	struct kp_mp_view config, v, item;
	struct kp_mp_iter it;
	int64_t i;
	uint32_t n;

	if (get_i64(map, "format", &i) != 0 || i != FORMAT ||
	    get_str(map, "name", def->name, sizeof(def->name)) != 0 ||
	    get_str(map, "source", def->source, sizeof(def->source)) != 0 ||
	    get_names(map, "inputs", def->inputs, &def->input_count) != 0 ||
	    get_names(map, "outputs", def->outputs, &def->output_count) != 0 ||
	    get_str(map, "pause_reason", def->pause_reason,
		    sizeof(def->pause_reason)) != 0)
		return -1;
	if (get_i64(map, "from", &i) != 0 || i < 0 || i > 3)
		return -1;
	def->from = (enum kp_proc_from)i;
	if (get_i64(map, "from_ts", &def->from_ts) != 0 ||
	    get_i64(map, "created_ms", &def->created_ms) != 0)
		return -1;
	if (kp_field_raw(map, "config", &v, NULL) != 0 ||
	    kp_mp_read_bin(v, &config) != 0)
		return -1;
	kp_buf_reset(&def->config);
	if (kp_buf_append(&def->config, config.ptr, config.len) != 0)
		return -1;
	if (get_i64(map, "paused", &i) != 0)
		return -1;
	def->paused = i != 0;
	if (get_i64(map, "watch", &i) != 0)
		return -1;
	def->watch = i != 0;
	if (get_i64(map, "open_outputs", &i) != 0)
		return -1;
	def->open_outputs = i != 0;
	if (kp_field_raw(map, "max_error_rate", &v, NULL) != 0 ||
	    kp_mp_read_double(v, &def->max_error_rate) != 0)
		return -1;
	/* Absent from definitions written before it existed: the default. */
	switch (kp_field_int(map, "error_window_min", &i, NULL)) {
	case 0:
		if (i < 1 || i > UINT32_MAX)
			return -1;
		def->error_window_min = (uint32_t)i;
		break;
	case 1:
		break;
	default:
		return -1;
	}
	if (get_i64(map, "time_budget_ms", &i) != 0)
		return -1;
	def->time_budget_ms = (uint32_t)i;
	if (get_i64(map, "memory_limit", &i) != 0)
		return -1;
	def->memory_limit = (uint64_t)i;
	if (get_i64(map, "next_version", &i) != 0)
		return -1;
	def->next_version = (uint32_t)i;
	if (kp_field_array(map, "versions", &it, &n, NULL) != 0 ||
	    n > KP_PROC_MAX_VERSIONS)
		return -1;
	def->version_count = 0;
	while (kp_mp_array_next(&it, &item) == 1) {
		if (decode_version(item, &def->versions[def->version_count]) != 0)
			return -1;
		def->version_count++;
	}
	return 0;
}

int kp_proc_def_load(struct kp_proc_def *def, const char *dir,
		     struct kp_error *err)
{
	struct kp_buf data;
	struct kp_mp_view map;
	char path[4200];
	int rc;

	snprintf(path, sizeof(path), "%s/proc.def", dir);
	kp_buf_init(&data);
	rc = kp_file_read(path, &data);
	if (rc != 0) {
		kp_buf_destroy(&data);
		return kp_error_set(err, rc, "%s: %s", path, kp_error_text(rc));
	}
	if (kp_mp_validate_one(data.data, data.len, &map) != 0 ||
	    kp_mp_type(map) != KP_MP_MAP || decode(def, map) != 0)
		rc = kp_error_set(err, KP_ECORRUPT, "%s: damaged definition",
				  path);
	kp_buf_destroy(&data);
	return rc;
}
