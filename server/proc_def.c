/*
 * proc_def.c - persistence of processor definitions as msgpack maps.
 */
#include "proc_def.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "alloc.h"
#include "mp.h"
#include "proto.h"
#include "topic.h"

void kp_proc_def_init(struct kp_proc_def *def)
{
	memset(def, 0, sizeof(*def));
	kp_buf_init(&def->config);
	kp_buf_append(&def->config, "\x80", 1);
	def->version = 1;
	def->max_error_rate = 0.5;
	def->time_budget_ms = 5000;
	def->memory_limit = 256u * 1024 * 1024;
}

void kp_proc_def_destroy(struct kp_proc_def *def)
{
	kp_buf_destroy(&def->config);
}

void kp_proc_def_dlq(const struct kp_proc_def *def, char *out, size_t cap)
{
	snprintf(out, cap, "%s.dlq", def->name);
}

static void pack_str(msgpack_packer *pk, const char *key, const char *value)
{
	msgpack_pack_str_with_body(pk, key, strlen(key));
	msgpack_pack_str_with_body(pk, value, strlen(value));
}

static void pack_names(msgpack_packer *pk, const char *key,
		       char names[][201], uint32_t n)
{
	msgpack_pack_str_with_body(pk, key, strlen(key));
	msgpack_pack_array(pk, n);
	for (uint32_t i = 0; i < n; i++)
		msgpack_pack_str_with_body(pk, names[i], strlen(names[i]));
}

int kp_proc_def_save(const struct kp_proc_def *def, const char *dir)
{
	struct kp_buf out;
	msgpack_packer pk;
	char path[4200];
	int rc;

	kp_buf_init(&out);
	msgpack_packer_init(&pk, &out, kp_buf_msgpack_write);
	msgpack_pack_map(&pk, 17);
	pack_str(&pk, "name", def->name);
	pack_str(&pk, "source", def->source);
	pack_str(&pk, "code", def->code);
	pack_str(&pk, "hash", def->hash);
	msgpack_pack_str_with_body(&pk, "version", 7);
	msgpack_pack_uint32(&pk, def->version);
	pack_names(&pk, "inputs", (char (*)[201])def->inputs, def->input_count);
	pack_names(&pk, "outputs", (char (*)[201])def->outputs,
		   def->output_count);
	msgpack_pack_str_with_body(&pk, "from", 4);
	msgpack_pack_int32(&pk, (int32_t)def->from);
	msgpack_pack_str_with_body(&pk, "from_ts", 7);
	msgpack_pack_int64(&pk, def->from_ts);
	msgpack_pack_str_with_body(&pk, "config", 6);
	msgpack_pack_bin_with_body(&pk, def->config.data, def->config.len);
	msgpack_pack_str_with_body(&pk, "paused", 6);
	if (def->paused)
		msgpack_pack_true(&pk);
	else
		msgpack_pack_false(&pk);
	pack_str(&pk, "pause_reason", def->pause_reason);
	msgpack_pack_str_with_body(&pk, "max_error_rate", 14);
	msgpack_pack_double(&pk, def->max_error_rate);
	msgpack_pack_str_with_body(&pk, "time_budget_ms", 14);
	msgpack_pack_uint32(&pk, def->time_budget_ms);
	msgpack_pack_str_with_body(&pk, "memory_limit", 12);
	msgpack_pack_uint64(&pk, def->memory_limit);
	msgpack_pack_str_with_body(&pk, "created_ms", 10);
	msgpack_pack_int64(&pk, def->created_ms);
	msgpack_pack_str_with_body(&pk, "format", 6);
	msgpack_pack_uint32(&pk, 1);
	snprintf(path, sizeof(path), "%s/proc.def", dir);
	rc = kp_write_file_atomic(path, out.data, out.len);
	kp_buf_destroy(&out);
	return rc;
}

static int read_file(const char *path, struct kp_buf *out)
{
	char chunk[8192];
	FILE *f = fopen(path, "rb");
	size_t n;

	if (f == NULL)
		return -errno;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (kp_buf_append(out, chunk, n) != 0) {
			fclose(f);
			return -ENOMEM;
		}
	}
	fclose(f);
	return 0;
}

static int get_str(struct kp_mp_view map, const char *key, char *out,
		   size_t cap)
{
	struct kp_mp_view v;

	if (kp_field_str(map, key, &v, NULL) != 0 || v.len >= cap)
		return -1;
	memcpy(out, v.ptr, v.len);
	out[v.len] = '\0';
	return 0;
}

static int get_names(struct kp_mp_view map, const char *key,
		     char names[][201], uint32_t *count)
{
	struct kp_mp_iter it;
	struct kp_mp_view item, s;
	uint32_t n;

	if (kp_field_array(map, key, &it, &n, NULL) != 0 ||
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

static int decode(struct kp_proc_def *def, struct kp_mp_view map)
{
	struct kp_mp_view config, v;
	uint64_t u;
	int64_t i;
	bool b;
	double d;

	if (get_str(map, "name", def->name, sizeof(def->name)) != 0 ||
	    get_str(map, "source", def->source, sizeof(def->source)) != 0 ||
	    get_str(map, "code", def->code, sizeof(def->code)) != 0 ||
	    get_str(map, "hash", def->hash, sizeof(def->hash)) != 0 ||
	    get_names(map, "inputs", def->inputs, &def->input_count) != 0 ||
	    get_names(map, "outputs", def->outputs, &def->output_count) != 0 ||
	    get_str(map, "pause_reason", def->pause_reason,
		    sizeof(def->pause_reason)) != 0)
		return -1;
	if (kp_field_uint(map, "version", &u, NULL) != 0)
		return -1;
	def->version = (uint32_t)u;
	if (kp_field_int(map, "from", &i, NULL) != 0 || i < 0 || i > 2)
		return -1;
	def->from = (enum kp_proc_from)i;
	if (kp_field_int(map, "from_ts", &def->from_ts, NULL) != 0 ||
	    kp_field_int(map, "created_ms", &def->created_ms, NULL) != 0)
		return -1;
	if (kp_field_raw(map, "config", &v, NULL) != 0 ||
	    kp_mp_read_bin(v, &config) != 0)
		return -1;
	kp_buf_reset(&def->config);
	if (kp_buf_append(&def->config, config.ptr, config.len) != 0)
		return -1;
	if (kp_field_bool(map, "paused", &b, NULL) != 0)
		return -1;
	def->paused = b;
	if (kp_field_raw(map, "max_error_rate", &v, NULL) != 0 ||
	    kp_mp_read_double(v, &d) != 0)
		return -1;
	def->max_error_rate = d;
	if (kp_field_uint(map, "time_budget_ms", &u, NULL) != 0)
		return -1;
	def->time_budget_ms = (uint32_t)u;
	if (kp_field_uint(map, "memory_limit", &def->memory_limit, NULL) != 0)
		return -1;
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
	rc = read_file(path, &data);
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
