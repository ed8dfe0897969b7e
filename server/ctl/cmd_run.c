/*
 * cmd_run.c - `kappactl run FILE --input EVENTS.jsonl|- [--input-format
 * auto|values|records] [--key-field F] [--ts-field F] [--topic T]
 * [--config JSON] [--view]`: the offline runner.
 *
 * Runs a processor (.lua or .so) over a file of JSON lines (- : stdin)
 * with the same code loader, adapter and host services as the server
 * (proc_instance.h), without a server. Input lines are values or records
 * (run_input.h): a value becomes a record of topic T (default "input"),
 * partition 0, offset the count of records before it, key from
 * --key-field and ts from --ts-field (else none and 0); a record line
 * gives its own topic, partition, offset, ts and key where present (the
 * --key-field/--ts-field member of its value, when it has one, wins).
 * Prints each emitted record as a JSON line {"topic","ts","key","value"}
 * (ts: the event time of the record that emitted it); with --view, after
 * them, the final view as one line {"view":{...}}, which a downstream
 * `run --input` in records or auto mode skips, so runs chain with a pipe.
 * A record that raises is reported on stderr with its line number and the
 * exit status becomes 1; the others still run.
 */
#include "cmd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json_mp.h"
#include "run_input.h"
#include "base/alloc.h"
#include "proc/proc_code.h"
#include "proc/proc_instance.h"
#include "proc/view.h"
#include "wire/proto.h"

#define RUN_USAGE                                                        \
	"kappactl run FILE --input EVENTS.jsonl|- [--input-format"            \
	" auto|values|records] [--key-field F] [--ts-field F] [--topic T]"   \
	" [--config JSON] [--view]"

/* How input lines are read (--input-format). */
enum run_format {
	RUN_AUTO,      /* decided by the first line that is not a view line */
	RUN_VALUES,    /* each line is a value */
	RUN_RECORDS,   /* each line is a record; view lines are skipped */
};

/* What one run needs. */
struct run {
	struct kp_ctl_ctx *ctx;      /* where to print */
	struct kp_instance inst;     /* the processor */
	struct kp_view *view;        /* its view */
	const char *topic;           /* --topic, the topic of bare values */
	const char *key_field;       /* --key-field, or NULL */
	const char *ts_field;        /* --ts-field, or NULL */
	enum run_format format;      /* RUN_AUTO until a line decides */
	json_t *held;                /* auto: view lines not yet decided,
					[[line, value], ...] */
	uint64_t count;              /* records run so far */
	int failed;                  /* a line was reported: exit 1 */
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
		json_object_set_new(o, "ts", json_integer((json_int_t)e.ts));
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

/*
 * Takes the record's key and ts from members of its value per --key-field
 * and --ts-field, where the value has them (a key member that is null
 * means no key); rec's own are kept otherwise. Returns 0, or reports the
 * line and returns 1.
 */
static int flag_meta(struct run *r, struct kp_ctl_run_rec *rec, long line)
{
	const json_t *v = rec->value;
	const json_t *k = r->key_field ? json_object_get(v, r->key_field) : NULL;
	const json_t *t = r->ts_field ? json_object_get(v, r->ts_field) : NULL;

	if (k != NULL) {
		kp_ctl_run_rec_destroy(rec);
		if (!json_is_null(k) &&
		    kp_ctl_json_key_bytes(k, &rec->key, &rec->key_len) != 0) {
			kp_ctl_fail(r->ctx, "out of memory");
			return 1;
		}
	}
	if (t == NULL || json_is_null(t))
		return 0;
	rec->has_ts = 1;
	if (json_is_integer(t)) {
		rec->ts = json_integer_value(t);
		return 0;
	}
	if (json_is_string(t) &&
	    kp_ctl_rfc3339_parse(json_string_value(t), &rec->ts) == 0)
		return 0;
	kp_ctl_fail(r->ctx, "line %ld: field '%s' is not a timestamp", line,
		    r->ts_field);
	return 1;
}

/* Runs one record through the processor and prints what it emitted. */
static int feed(struct run *r, struct kp_ctl_run_rec *in, long line)
{
	struct kp_proc_record rec;
	struct kp_error err;
	struct kp_buf value;
	msgpack_packer pk;
	int rc;

	if (flag_meta(r, in, line) != 0) {
		r->failed = 1;
		return 0;
	}
	kp_buf_init(&value);
	msgpack_packer_init(&pk, &value, kp_buf_msgpack_write);
	kp_ctl_json_pack(&pk, in->value);
	rec.topic = in->topic ? in->topic : r->topic;
	rec.partition = in->has_partition ? in->partition : 0;
	rec.offset = in->has_offset ? in->offset : r->count;
	rec.ts = in->has_ts ? in->ts : 0;
	rec.key = in->key;
	rec.key_len = in->key_len;
	rec.value = value.data;
	rec.value_len = value.len;
	r->count++;
	kp_error_clear(&err);
	if (kp_instance_process(&r->inst, &rec, &err) != 0) {
		r->failed = 1;
		kp_ctl_fail(r->ctx, "line %ld (offset %llu): %s", line,
			    (unsigned long long)rec.offset, err.msg);
	}
	kp_buf_destroy(&value);
	rc = print_emits(r);
	return rc;
}

/* A line read as a bare value. */
static int feed_value(struct run *r, const json_t *v, long line)
{
	struct kp_ctl_run_rec rec;
	int rc;

	memset(&rec, 0, sizeof(rec));
	rec.value = v;
	rc = feed(r, &rec, line);
	kp_ctl_run_rec_destroy(&rec);
	return rc;
}

/* A line read as a record. */
static int feed_record(struct run *r, const json_t *v, long line)
{
	struct kp_ctl_run_rec rec;
	struct kp_error err;
	int rc = 0;

	if (kp_ctl_run_rec_parse(v, &rec, &err) != 0) {
		r->failed = 1;
		kp_ctl_fail(r->ctx, "line %ld: %s", line, err.msg);
	} else {
		rc = feed(r, &rec, line);
	}
	kp_ctl_run_rec_destroy(&rec);
	return rc;
}

/*
 * In auto mode, the first line that is not a view line decides the
 * format; the view lines held before it are then values, or skipped.
 */
static int decide(struct run *r, enum kp_ctl_run_shape shape)
{
	size_t i;
	json_t *h;
	int rc = 0;

	r->format = shape == KP_CTL_RUN_RECORD ? RUN_RECORDS : RUN_VALUES;
	json_array_foreach(r->held, i, h) {
		if (rc == 0 && r->format == RUN_VALUES)
			rc = feed_value(r, json_array_get(h, 1),
					(long)json_integer_value(json_array_get(h, 0)));
	}
	json_array_clear(r->held);
	return rc;
}

/* One parsed input line. */
static int take_line(struct run *r, json_t *v, long line)
{
	enum kp_ctl_run_shape shape = kp_ctl_run_shape_of(v);
	int rc = 0;

	if (r->format == RUN_AUTO && shape == KP_CTL_RUN_VIEW) {
		if (json_array_append_new(r->held, json_pack("[IO]", (json_int_t)line,
							     v)) != 0)
			return kp_ctl_fail(r->ctx, "out of memory");
		return 0;
	}
	if (r->format == RUN_AUTO)
		rc = decide(r, shape);
	if (rc != 0)
		return rc;
	if (r->format == RUN_VALUES)
		return feed_value(r, v, line);
	if (shape == KP_CTL_RUN_VIEW)
		return 0;
	return feed_record(r, v, line);
}

static int run_file(struct run *r, FILE *in)
{
	char *line = NULL, errbuf[256];
	size_t cap = 0;
	ssize_t n;
	long lineno = 0;
	int rc = 0;
	json_t *v;

	while (rc == 0 && (n = getline(&line, &cap, in)) >= 0) {
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			n--;
		if (n == 0)
			continue;
		v = kp_ctl_json_parse(line, (size_t)n, errbuf, sizeof(errbuf));
		if (v == NULL) {
			r->failed = 1;
			kp_ctl_fail(r->ctx, "line %ld: invalid JSON: %s", lineno,
				    errbuf);
			continue;
		}
		rc = take_line(r, v, lineno);
		json_decref(v);
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
	return kp_ctl_print(r->ctx, json_pack("{so}", "view", obj));
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
	const char *input = NULL, *config = NULL, *topic = NULL, *format = NULL,
		   *pos[1];
	struct run r;
	int view_flag = 0, npos, rc;
	FILE *in;
	const struct kp_ctl_opt opts[] = {
		{ "input", &input, NULL },
		{ "input-format", &format, NULL },
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
	if (format == NULL || strcmp(format, "auto") == 0)
		r.format = RUN_AUTO;
	else if (strcmp(format, "values") == 0)
		r.format = RUN_VALUES;
	else if (strcmp(format, "records") == 0)
		r.format = RUN_RECORDS;
	else
		return kp_ctl_usage(ctx, "--input-format is auto, values or records, not '%s'",
				    format);
	in = strcmp(input, "-") == 0 ? ctx->in : fopen(input, "r");
	if (in == NULL)
		return kp_ctl_fail(ctx, "%s: %s", input, strerror(errno));
	r.held = json_array();
	if (r.held == NULL || kp_view_new(&r.view) != 0) {
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
	json_decref(r.held);
	if (in != ctx->in)
		fclose(in);
	if (rc == 0 && r.failed)
		rc = KP_CTL_EXIT_FAIL;
	return rc;
}
