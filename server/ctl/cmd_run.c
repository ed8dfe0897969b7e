/*
 * cmd_run.c - `kappactl run FILE --input EVENTS.jsonl [--key-field F]
 * [--ts-field F] [--topic T] [--config JSON] [--view]`: the offline runner.
 *
 * Runs a processor (.lua or .so) over a file of JSON lines with the same
 * code loader, adapter and host services as the server (proc_instance.h),
 * without a server. Each line is one record's value; records get topic T
 * (default "input"), partition 0, offsets 0, 1, 2, ... and ts from
 * --ts-field (else 0). Prints each emitted record as a JSON line
 * {"topic","key","value"}; with --view, prints the final view as one JSON
 * object instead. A record that raises is reported on stderr with its line
 * number and the exit status becomes 1; the others still run.
 */
#include "cmd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json_mp.h"
#include "base/alloc.h"
#include "proc/proc_code.h"
#include "proc/proc_instance.h"
#include "proc/view.h"
#include "wire/proto.h"

#define RUN_USAGE                                                        \
	"kappactl run FILE --input EVENTS.jsonl [--key-field F] [--ts-field F]" \
	" [--topic T] [--config JSON] [--view]"

/* What one run needs. */
struct run {
	struct kp_ctl_ctx *ctx;
	struct kp_instance inst;
	struct kp_view *view;
	const char *topic;
	const char *key_field;
	const char *ts_field;
	int print_emits;
	int failed;
};

static json_t *mp_bytes_to_json(const char *p, size_t len)
{
	msgpack_unpacked u;
	json_t *j = NULL;

	msgpack_unpacked_init(&u);
	if (msgpack_unpack_next(&u, p, len, NULL) == MSGPACK_UNPACK_SUCCESS)
		j = kp_ctl_mp_to_json(&u.data);
	msgpack_unpacked_destroy(&u);
	return j;
}

static int print_emits(struct run *r)
{
	struct kp_emit e;
	size_t pos = 0;
	int rc = 0;

	while (rc == 0 && kp_sink_next_emit(&r->inst.sink, &pos, &e) == 1) {
		json_t *o = json_object();

		json_object_set_new(o, "topic",
				    json_stringn(e.topic, e.topic_len));
		json_object_set_new(o, "key",
				    e.key ? kp_ctl_bytes_to_json(e.key, e.key_len)
					  : json_null());
		{
			json_t *v = mp_bytes_to_json(e.value, e.value_len);

			if (v == NULL) {
				json_decref(o);
				return kp_ctl_fail(r->ctx,
						   "an emit to %.*s is nested too deeply to print",
						   (int)e.topic_len, e.topic);
			}
			json_object_set_new(o, "value", v);
		}
		rc = kp_ctl_print(r->ctx, o);
	}
	kp_sink_clear_emits(&r->inst.sink);
	return rc;
}

/* Builds the record's key and ts from the JSON value per the flags. */
static int record_meta(struct run *r, const json_t *v, long line, char **key,
		       size_t *key_len, int64_t *ts)
{
	const json_t *k = r->key_field ? json_object_get(v, r->key_field) : NULL;
	const json_t *t = r->ts_field ? json_object_get(v, r->ts_field) : NULL;

	*key = NULL;
	*key_len = 0;
	*ts = 0;
	if (k != NULL && !json_is_null(k) &&
	    kp_ctl_json_key_bytes(k, key, key_len) != 0)
		return kp_ctl_fail(r->ctx, "out of memory");
	if (t == NULL)
		return 0;
	if (json_is_integer(t)) {
		*ts = json_integer_value(t);
		return 0;
	}
	if (json_is_string(t) &&
	    kp_ctl_rfc3339_parse(json_string_value(t), ts) == 0)
		return 0;
	kp_free(*key);
	*key = NULL;
	return kp_ctl_fail(r->ctx, "line %ld: field '%s' is not a timestamp",
			   line, r->ts_field);
}

static int run_line(struct run *r, const char *text, size_t len, long line,
		    uint64_t *offset)
{
	struct kp_proc_record rec;
	struct kp_error err;
	struct kp_buf value;
	msgpack_packer pk;
	char errbuf[256], *key;
	size_t key_len;
	json_t *v;
	int rc;

	v = kp_ctl_json_parse(text, len, errbuf, sizeof(errbuf));
	if (v == NULL) {
		r->failed = 1;
		kp_ctl_fail(r->ctx, "line %ld: invalid JSON: %s", line, errbuf);
		return 0;
	}
	rc = record_meta(r, v, line, &key, &key_len, &rec.ts);
	if (rc != 0) {
		json_decref(v);
		r->failed = 1;
		return 0;
	}
	kp_buf_init(&value);
	msgpack_packer_init(&pk, &value, kp_buf_msgpack_write);
	kp_ctl_json_pack(&pk, v);
	json_decref(v);
	rec.topic = r->topic;
	rec.partition = 0;
	rec.offset = (*offset)++;
	rec.key = key;
	rec.key_len = key_len;
	rec.value = value.data;
	rec.value_len = value.len;
	kp_error_clear(&err);
	if (kp_instance_process(&r->inst, &rec, &err) != 0) {
		r->failed = 1;
		kp_ctl_fail(r->ctx, "line %ld (offset %llu): %s", line,
			    (unsigned long long)rec.offset, err.msg);
	}
	kp_buf_destroy(&value);
	kp_free(key);
	return r->print_emits ? print_emits(r) : 0;
}

static int run_file(struct run *r, FILE *in)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	long lineno = 0;
	uint64_t offset = 0;
	int rc = 0;

	while (rc == 0 && (n = getline(&line, &cap, in)) >= 0) {
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			n--;
		if (n == 0)
			continue;
		rc = run_line(r, line, (size_t)n, lineno, &offset);
	}
	free(line);
	return rc;
}

static int collect(void *arg, const char *key, size_t key_len,
		   const char *value, size_t value_len)
{
	json_t *obj = arg;
	json_t *k = kp_ctl_bytes_to_json(key, key_len);
	json_t *v = mp_bytes_to_json(value, value_len);
	int rc = -1;

	/* Keys as consume shows them: UTF-8 text, else "base64:...". */
	if (k != NULL && v != NULL)
		rc = json_object_setn_new(obj, json_string_value(k),
					  json_string_length(k), v);
	else
		json_decref(v);
	json_decref(k);
	return rc;
}

static int print_view(struct run *r)
{
	json_t *obj = json_object();

	if (obj == NULL || kp_view_scan(r->view, "", 0, 0, collect, obj) < 0) {
		json_decref(obj);
		return kp_ctl_fail(r->ctx,
				   "cannot print the view (a value nested too deeply, or out of memory)");
	}
	return kp_ctl_print(r->ctx, obj);
}

static int start(struct run *r, const char *file, const char *config)
{
	struct kp_proc_code *code;
	struct kp_error err;
	struct kp_buf cfg;
	msgpack_packer pk;
	char errbuf[256];
	int rc;

	kp_buf_init(&cfg);
	if (config != NULL) {
		json_t *c = kp_ctl_json_parse(config, strlen(config), errbuf,
					      sizeof(errbuf));

		if (c == NULL || !json_is_object(c)) {
			json_decref(c);
			return kp_ctl_usage(r->ctx, "--config wants a JSON object");
		}
		msgpack_packer_init(&pk, &cfg, kp_buf_msgpack_write);
		kp_ctl_json_pack(&pk, c);
		json_decref(c);
	}
	if (kp_proc_code_load(file, NULL, &code, &err) != 0) {
		kp_buf_destroy(&cfg);
		return kp_ctl_fail(r->ctx, "%s", err.msg);
	}
	rc = kp_instance_start(&r->inst, code, "run", r->view,
			       config ? cfg.data : NULL, cfg.len, NULL, 0, 0,
			       0, &err);
	kp_proc_code_unref(code);
	kp_buf_destroy(&cfg);
	if (rc != 0) {
		return kp_ctl_fail(r->ctx, "%s", err.msg);
	}
	return 0;
}

int kp_ctl_cmd_run(struct kp_ctl_ctx *ctx, int argc, char **argv)
{
	const char *input = NULL, *config = NULL, *topic = NULL, *pos[1];
	struct run r;
	int view_flag = 0, npos, rc;
	FILE *in;
	const struct kp_ctl_opt opts[] = {
		{ "input", &input, NULL },
		{ "key-field", &r.key_field, NULL },
		{ "ts-field", &r.ts_field, NULL },
		{ "topic", &topic, NULL },
		{ "config", &config, NULL },
		{ "view", NULL, &view_flag },
		{ NULL, NULL, NULL },
	};

	memset(&r, 0, sizeof(r));
	r.ctx = ctx;
	rc = kp_ctl_args_parse(ctx, argc, argv, opts, pos, 1, &npos);
	if (rc != 0)
		return rc;
	if (npos != 1 || input == NULL)
		return kp_ctl_usage(ctx, RUN_USAGE);
	r.topic = topic ? topic : "input";
	r.print_emits = !view_flag;
	in = strcmp(input, "-") == 0 ? ctx->in : fopen(input, "r");
	if (in == NULL)
		return kp_ctl_fail(ctx, "%s: %s", input, strerror(errno));
	if (kp_view_new(&r.view) != 0) {
		rc = kp_ctl_fail(ctx, "out of memory");
	} else {
		rc = start(&r, pos[0], config);
		if (rc == 0) {
			rc = run_file(&r, in);
			if (rc == 0 && view_flag)
				rc = print_view(&r);
			kp_instance_stop(&r.inst);
		}
	}
	kp_view_delete(r.view);
	if (in != ctx->in)
		fclose(in);
	if (rc == 0 && r.failed)
		rc = KP_CTL_EXIT_FAIL;
	return rc;
}
