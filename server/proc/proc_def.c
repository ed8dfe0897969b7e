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
	kp_buf_destroy(&def->config);
}

void kp_proc_def_dlq(const struct kp_proc_def *def, char *out, size_t cap)
{
	snprintf(out, cap, "%s.dlq", def->name);
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

static void pack_version(msgpack_packer *pk,
			 const struct kp_proc_def_version *v)
{
	msgpack_pack_map(pk, 11);
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

static int decode_version(struct kp_mp_view map, struct kp_proc_def_version *v)
{
	int64_t n, rev, rate, from, total;

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
