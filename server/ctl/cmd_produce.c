/*
 * cmd_produce.c - `kappactl produce TOPIC`: JSON lines on stdin become
 * records, sent in batches of up to KP_CTL_BATCH_RECORDS records or
 * KP_CTL_BATCH_BYTES bytes per produce request, with up to
 * KP_CTL_PRODUCE_IN_FLIGHT requests in flight.
 *
 * The topic is looked up first (topic_describe; with --partition, that
 * partition must exist). When the server does not know it, the first
 * record is sent alone and answered before more input is read (a server
 * with auto_create_topics creates the topic then), and an input without
 * records is the UNKNOWN_TOPIC error: a wrong name is an error even when
 * stdin is empty. Each non-blank line is one record's value (any JSON
 * value). A line that is not JSON is reported ("kappactl: line N: invalid
 * JSON: ...") and skipped; the exit status is then 1 but the other lines
 * are still sent. With --raw each non-empty line, without its line end
 * (\n or \r\n), is the value as a string, not parsed (blank lines are
 * values too). With --key-field F the key is the value's member F (a
 * string as-is, another value as its compact JSON text; null: no key).
 * With --ts-field F the ts is member F: integer epoch ms or an RFC 3339
 * string (null: the server's clock). A value without member F (or not an
 * object) is sent without a key (or with the server's time), warned about
 * on stderr ("kappactl: line N: no member 'F'; sent without a key", for
 * the first KP_CTL_MISSING_WARNINGS such lines) and counted at the end
 * ("kappactl: N records had no member 'F' (sent without a key)"); the
 * exit status stays 0. When the server refuses a request, nothing more is
 * sent. At the end one line {"acked":N} tells how many records the server
 * acknowledged.
 */
#include "cmd.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "json_mp.h"
#include "mpget.h"
#include "base/alloc.h"

#define KP_CTL_BATCH_RECORDS 1000
#define KP_CTL_BATCH_BYTES (1u << 20)
/* The largest line sent: the server's default frame limit, less room. */
#define KP_CTL_MAX_RECORD ((16u << 20) - (64u << 10))
#define KP_CTL_PRODUCE_IN_FLIGHT 8
/* Values nested deeper than this are refused: consume could not decode them. */
#define KP_CTL_MAX_DEPTH 28
/* Lines without the --key-field/--ts-field member warned about one by one. */
#define KP_CTL_MISSING_WARNINGS 100

/* One produce run. */
struct producer {
	struct kp_ctl_ctx *ctx;   /* where to print */
	struct kp_ctl_client c;   /* the connection */
	const char *topic;        /* the topic written */
	const char *key_field;    /* --key-field, or NULL */
	const char *ts_field;     /* --ts-field, or NULL */
	int raw;                  /* --raw: lines are string values */
	uint64_t no_key;          /* values without the --key-field member */
	uint64_t no_ts;           /* values without the --ts-field member */
	int has_partition;        /* --partition given */
	uint64_t partition;       /* its value */
	struct kp_buf recs;       /* packed record maps of the current batch */
	msgpack_packer pk;        /* packs into recs */
	int pack_failed;          /* a write into recs ran out of memory */
	uint32_t nrecs;           /* records in recs */
	struct kp_ctl_req req;    /* the request being sent */
	struct kp_ctl_resp resp;  /* the last response */
	uint64_t acked;           /* records acknowledged so far */
	int bad_input;            /* some line was reported and skipped */
	int unknown;              /* topic_describe said UNKNOWN_TOPIC and no
				     record was sent yet */
	int was_unknown;          /* it said so at the start */
	struct kp_error unknown_err; /* its error */
	int failed;               /* the server or connection failed: stop */
	struct kp_error err;      /* why, when failed */
};

static int recs_write(void *data, const char *p, size_t len)
{
	struct producer *pr = data;

	if (kp_buf_append(&pr->recs, p, len) != 0) {
		pr->pack_failed = 1;
		return -1;
	}
	return 0;
}

/* Receives one produce response and counts what it acknowledges. */
static void recv_one(struct producer *pr)
{
	const msgpack_object *results;
	struct kp_error err;
	uint64_t count;
	uint32_t i;
	int rc;

	rc = kp_ctl_client_recv(&pr->c, &pr->resp, &err);
	if (rc == 0) {
		results = kp_ctl_mp_get(pr->resp.map, "results");
		if (results == NULL || results->type != MSGPACK_OBJECT_ARRAY) {
			rc = kp_error_set(&err, KP_EBADMSGPACK,
					  "produce: response without results");
		} else {
			for (i = 0; i < results->via.array.size; i++) {
				if (kp_ctl_mp_get_u64(&results->via.array.ptr[i],
						      "count", &count) == 0)
					pr->acked += count;
			}
		}
	}
	if (rc != 0 && !pr->failed) {
		pr->failed = 1;
		pr->err = err;
	}
	if (rc != 0 && pr->resp.map == NULL)
		kp_ctl_client_close(&pr->c);
}

/* Sends the records in pr->recs as one produce request. */
static void flush_batch(struct producer *pr)
{
	struct kp_error err;
	int rc;

	if (pr->nrecs == 0 || pr->failed)
		return;
	while (kp_ctl_client_in_flight(&pr->c) >= KP_CTL_PRODUCE_IN_FLIGHT &&
	       !pr->failed)
		recv_one(pr);
	if (pr->failed)
		return;
	kp_ctl_req_begin(&pr->c, &pr->req, "produce", 2 + pr->has_partition);
	msgpack_pack_str_with_body(&pr->req.pk, "topic", 5);
	msgpack_pack_str_with_body(&pr->req.pk, pr->topic, strlen(pr->topic));
	if (pr->has_partition) {
		msgpack_pack_str_with_body(&pr->req.pk, "partition", 9);
		msgpack_pack_uint64(&pr->req.pk, pr->partition);
	}
	msgpack_pack_str_with_body(&pr->req.pk, "records", 7);
	msgpack_pack_array(&pr->req.pk, pr->nrecs);
	if (kp_buf_append(&pr->req.buf, pr->recs.data, pr->recs.len) != 0)
		pr->req.failed = 1;
	rc = kp_ctl_client_send(&pr->c, &pr->req, &err);
	if (rc != 0) {
		pr->failed = 1;
		pr->err = err;
	}
	kp_buf_reset(&pr->recs);
	pr->nrecs = 0;
}

/* Packs the key member of value as the record's key; returns 0 or -ENOMEM. */
static int pack_key(struct producer *pr, const json_t *k)
{
	char *bytes;
	size_t len;
	int rc;

	rc = kp_ctl_json_key_bytes(k, &bytes, &len);
	if (rc != 0)
		return rc;
	msgpack_pack_str_with_body(&pr->pk, "key", 3);
	msgpack_pack_bin_with_body(&pr->pk, bytes, len);
	kp_free(bytes);
	return 0;
}

/* The record's ts from member t; returns 0 or -EINVAL with why in msg. */
static int ts_of(const json_t *t, int64_t *ts, const char **why)
{
	if (json_is_integer(t)) {
		*ts = (int64_t)json_integer_value(t);
		return 0;
	}
	if (json_is_string(t) && kp_ctl_time_parse(json_string_value(t), ts) == 0)
		return 0;
	*why = json_is_string(t) ? "not an RFC 3339 time"
				 : "not an integer (epoch ms) or a string";
	return -EINVAL;
}

/* Nesting depth of v (1 for a scalar), counting no further than limit. */
static int depth_of(const json_t *v, int limit)
{
	int deepest = 0;

	if (limit <= 0)
		return 1;
	if (json_is_array(v)) {
		size_t i;
		json_t *item;

		json_array_foreach(v, i, item) {
			int d = depth_of(item, limit - 1);

			if (d > deepest)
				deepest = d;
		}
	} else if (json_is_object(v)) {
		const char *key;
		json_t *item;

		json_object_foreach((json_t *)v, key, item) {
			int d = depth_of(item, limit - 1);

			(void)key;
			if (d > deepest)
				deepest = d;
		}
	}
	return 1 + deepest;
}

/*
 * Member field of v (NULL when absent, v not being an object included;
 * json null stays). Counts an absent one in *missing and warns about the
 * first KP_CTL_MISSING_WARNINGS.
 */
static const json_t *member(struct producer *pr, const json_t *v,
			    const char *field, size_t lineno, uint64_t *missing,
			    const char *sent)
{
	const json_t *m = json_is_object(v) ? json_object_get(v, field) : NULL;

	if (m == NULL && ++*missing <= KP_CTL_MISSING_WARNINGS)
		kp_ctl_fail(pr->ctx, "line %zu: no member '%s'; sent %s", lineno,
			    field, sent);
	return m;
}

/* Prints the count of values without the member field, when any. */
static void report_missing(struct producer *pr, uint64_t n, const char *field,
			   const char *sent)
{
	if (n > 0)
		kp_ctl_fail(pr->ctx, "%llu record%s had no member '%s' (sent %s)",
			    (unsigned long long)n, n == 1 ? "" : "s", field, sent);
}

/* Adds one parsed line as a record; returns 0, or 1 if the line was bad. */
static int add_record(struct producer *pr, const json_t *v, size_t lineno)
{
	const json_t *k = NULL, *t = NULL;
	const char *why = NULL;
	int64_t ts = 0;

	if (pr->ts_field != NULL && json_is_object(v))
		t = json_object_get(v, pr->ts_field);
	if (t != NULL && !json_is_null(t) && ts_of(t, &ts, &why) != 0) {
		kp_ctl_fail(pr->ctx, "line %zu: bad ts field '%s': %s", lineno,
			    pr->ts_field, why);
		return 1;
	}
	if (pr->key_field != NULL)
		k = member(pr, v, pr->key_field, lineno, &pr->no_key,
			   "without a key");
	if (k != NULL && json_is_null(k))
		k = NULL;
	if (pr->ts_field != NULL)
		t = member(pr, v, pr->ts_field, lineno, &pr->no_ts,
			   "with the server's time");
	if (t != NULL && json_is_null(t))
		t = NULL;
	msgpack_pack_map(&pr->pk, 1 + (k != NULL) + (t != NULL));
	msgpack_pack_str_with_body(&pr->pk, "value", 5);
	kp_ctl_json_pack(&pr->pk, v);
	if (k != NULL && pack_key(pr, k) != 0)
		pr->pack_failed = 1;
	if (t != NULL) {
		msgpack_pack_str_with_body(&pr->pk, "ts", 2);
		msgpack_pack_int64(&pr->pk, ts);
	}
	pr->nrecs++;
	return 0;
}

/* 1 when the len bytes at s are only blanks. */
static int blank(const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	}
	return 1;
}

/*
 * After a record was added to a topic the server did not know: sends it
 * at once and waits for the answer, so that a server without
 * auto_create_topics stops the run before more input is read.
 */
static void send_first(struct producer *pr)
{
	if (!pr->unknown || pr->nrecs == 0)
		return;
	pr->unknown = 0;
	flush_batch(pr);
	while (pr->c.fd >= 0 && kp_ctl_client_in_flight(&pr->c) > 0)
		recv_one(pr);
}

/*
 * After a record was added: a packing failure ends the run; a full batch
 * goes out; the first batch is sent alone (send_first).
 */
static void record_added(struct producer *pr)
{
	if (pr->pack_failed) {
		pr->failed = 1;
		kp_error_set(&pr->err, -ENOMEM, "out of memory");
	}
	if (pr->nrecs >= KP_CTL_BATCH_RECORDS ||
	    pr->recs.len >= KP_CTL_BATCH_BYTES)
		flush_batch(pr);
	send_first(pr);
}

/* Adds the len bytes at text as one record whose value is that string. */
static void add_raw(struct producer *pr, const char *text, size_t len)
{
	msgpack_pack_map(&pr->pk, 1);
	msgpack_pack_str_with_body(&pr->pk, "value", 5);
	msgpack_pack_str_with_body(&pr->pk, text, len);
	pr->nrecs++;
	record_added(pr);
}

/* Reads stdin to its end (or until the server fails) and sends the records. */
static void run(struct producer *pr)
{
	char *line = NULL, msg[200];
	size_t cap = 0, lineno = 0;
	ssize_t n;
	json_t *v;

	while (!pr->failed && (n = getline(&line, &cap, pr->ctx->in)) >= 0) {
		size_t len = (size_t)n;

		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			len--;
		if (pr->raw && len > 0 && line[len - 1] == '\r')
			len--;
		if (pr->raw ? len == 0 : blank(line, len))
			continue;
		if (len > KP_CTL_MAX_RECORD) {
			kp_ctl_fail(pr->ctx,
				    "line %zu: a record of %zu bytes is larger than one request may carry (%u)",
				    lineno, len, KP_CTL_MAX_RECORD);
			pr->bad_input = 1;
			continue;
		}
		/* A big record goes in a batch of its own rather than overflow one. */
		if (pr->nrecs > 0 && pr->recs.len + len > KP_CTL_BATCH_BYTES)
			flush_batch(pr);
		if (pr->raw) {
			add_raw(pr, line, len);
			continue;
		}
		v = kp_ctl_json_parse(line, len, msg, sizeof(msg));
		if (v == NULL) {
			kp_ctl_fail(pr->ctx, "line %zu: invalid JSON: %s", lineno, msg);
			pr->bad_input = 1;
			continue;
		}
		/* Deeper values could not be read back (msgpack-c's decoder). */
		if (depth_of(v, KP_CTL_MAX_DEPTH + 1) > KP_CTL_MAX_DEPTH) {
			kp_ctl_fail(pr->ctx, "line %zu: nested deeper than %d levels",
				    lineno, KP_CTL_MAX_DEPTH);
			pr->bad_input = 1;
			json_decref(v);
			continue;
		}
		pr->bad_input |= add_record(pr, v, lineno);
		json_decref(v);
		record_added(pr);
	}
	free(line);
	if (ferror(pr->ctx->in) && !pr->failed) {
		pr->failed = 1;
		kp_error_set(&pr->err, -EIO, "reading stdin: %s", strerror(errno));
	}
	flush_batch(pr);
	while (pr->c.fd >= 0 && kp_ctl_client_in_flight(&pr->c) > 0)
		recv_one(pr);
}

/*
 * Checks that the topic exists and has the --partition asked for. A topic
 * the server does not know is not yet an error (the server may create it
 * on produce): pr->unknown is set. Returns 0 or an exit status.
 */
static int check_topic(struct producer *pr)
{
	struct kp_ctl_resp resp;
	uint64_t n = 0;
	json_t *f = json_pack("{ss}", "topic", pr->topic);
	int rc;

	if (f == NULL)
		return kp_ctl_fail(pr->ctx, "out of memory");
	kp_ctl_resp_init(&resp);
	rc = kp_ctl_client_call(&pr->c, "topic_describe", f, &resp,
				&pr->unknown_err);
	json_decref(f);
	if (rc == 0)
		kp_ctl_mp_get_u64(kp_ctl_mp_get(resp.map, "topic"), "partitions", &n);
	kp_ctl_resp_destroy(&resp);
	if (rc == KP_ENOTOPIC) {
		pr->unknown = pr->was_unknown = 1;
		return 0;
	}
	if (rc != 0)
		return kp_ctl_fail(pr->ctx, "%s", pr->unknown_err.msg);
	if (pr->has_partition && pr->partition >= n)
		return kp_ctl_fail(pr->ctx, "UNKNOWN_PARTITION: topic '%s' has %llu"
				   " partition%s; there is no partition %llu",
				   pr->topic, (unsigned long long)n, n == 1 ? "" : "s",
				   (unsigned long long)pr->partition);
	return 0;
}

int kp_ctl_cmd_produce(struct kp_ctl_ctx *ctx, int argc, char **argv)
{
	const char *partition = NULL, *pos[1];
	struct producer pr;
	const struct kp_ctl_opt opts[] = {
		{ "key-field", &pr.key_field, NULL },
		{ "ts-field", &pr.ts_field, NULL },
		{ "partition", &partition, NULL },
		{ "raw", NULL, &pr.raw },
		{ NULL, NULL, NULL },
	};
	int npos, rc;

	memset(&pr, 0, sizeof(pr));
	pr.ctx = ctx;
	pr.c.fd = -1;
	rc = kp_ctl_args_parse(ctx, argc, argv, opts, pos, 1, &npos);
	if (rc != 0)
		return rc;
	if (npos != 1)
		return kp_ctl_usage(ctx, "kappactl produce TOPIC [--key-field F]"
					 " [--ts-field F] [--partition N] [--raw]");
	if (pr.raw && (pr.key_field != NULL || pr.ts_field != NULL))
		return kp_ctl_usage(ctx, "--raw sends lines as they are: --key-field"
					 " and --ts-field need JSON values");
	pr.topic = pos[0];
	if (partition != NULL) {
		if (kp_ctl_parse_u64(partition, &pr.partition) != 0)
			return kp_ctl_usage(ctx, "--partition wants a number, not '%s'",
					    partition);
		pr.has_partition = 1;
	}
	rc = kp_ctl_connect(ctx, &pr.c);
	if (rc == 0)
		rc = check_topic(&pr);
	if (rc != 0) {
		kp_ctl_client_close(&pr.c);
		return rc;
	}
	kp_buf_init(&pr.recs);
	msgpack_packer_init(&pr.pk, &pr, recs_write);
	kp_ctl_req_init(&pr.req);
	kp_ctl_resp_init(&pr.resp);
	run(&pr);
	if (pr.unknown && !pr.failed) {
		pr.failed = 1;
		pr.err = pr.unknown_err;
	}
	/* Nothing went to a topic that never existed: no {"acked":0}. */
	rc = pr.was_unknown && pr.failed && pr.acked == 0
		     ? 0
		     : kp_ctl_print(ctx, json_pack("{sI}", "acked",
						   (json_int_t)pr.acked));
	if (pr.key_field != NULL)
		report_missing(&pr, pr.no_key, pr.key_field, "without a key");
	if (pr.ts_field != NULL)
		report_missing(&pr, pr.no_ts, pr.ts_field, "with the server's time");
	if (pr.failed)
		rc = kp_ctl_fail(ctx, "%s", pr.err.msg);
	else if (pr.bad_input)
		rc = KP_CTL_EXIT_FAIL;
	kp_ctl_resp_destroy(&pr.resp);
	kp_ctl_req_destroy(&pr.req);
	kp_buf_destroy(&pr.recs);
	kp_ctl_client_close(&pr.c);
	return rc;
}
