/*
 * cmd_common.c - what kappactl's verbs share: option parsing, errors,
 * printing, and the few requests several verbs make; see cmd.h.
 */
#include "cmd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "json_mp.h"
#include "mpget.h"
#include "probe.h"

/* The entry of opts named by the len bytes at name, or NULL. */
static const struct kp_ctl_opt *find_opt(const struct kp_ctl_opt *opts,
					 const char *name, size_t len)
{
	for (; opts != NULL && opts->name != NULL; opts++) {
		if (strlen(opts->name) == len && memcmp(opts->name, name, len) == 0)
			return opts;
	}
	return NULL;
}

int kp_ctl_args_parse(struct kp_ctl_ctx *ctx, int argc, char **argv,
		      const struct kp_ctl_opt *opts, const char **pos,
		      int max_pos, int *npos)
{
	const struct kp_ctl_opt globals[] = {
		{ "addr", &ctx->addr, NULL },
		{ "token-file", &ctx->token_file, NULL },
		{ "tls-ca", &ctx->tls_ca, NULL },
		{ "tls-cert", &ctx->tls_cert, NULL },
		{ "tls-key", &ctx->tls_key, NULL },
		{ NULL, NULL, NULL },
	};
	int i, options_done = 0;

	*npos = 0;
	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *name, *eq, *value;
		const struct kp_ctl_opt *o;
		size_t len;

		if (options_done || strncmp(a, "--", 2) != 0) {
			if (*npos >= max_pos)
				return kp_ctl_usage(ctx, "unexpected argument '%s'", a);
			pos[(*npos)++] = a;
			continue;
		}
		if (a[2] == '\0') {
			options_done = 1;
			continue;
		}
		name = a + 2;
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		o = find_opt(opts, name, len);
		if (o == NULL)
			o = find_opt(globals, name, len);
		if (o == NULL)
			return kp_ctl_usage(ctx, "unknown option '--%.*s'", (int)len,
					    name);
		if (o->value == NULL) {
			if (eq != NULL)
				return kp_ctl_usage(ctx, "option '--%s' takes no value",
						    o->name);
			*o->flag = 1;
			continue;
		}
		if (eq != NULL) {
			value = eq + 1;
		} else {
			if (i + 1 >= argc)
				return kp_ctl_usage(ctx, "option '--%s' needs a value",
						    o->name);
			value = argv[++i];
		}
		*o->value = value;
	}
	return 0;
}

void kp_ctl_name_file(struct kp_ctl_ctx *ctx, const char *given,
		      const char *sent)
{
	ctx->file_given = given;
	snprintf(ctx->file_sent, sizeof(ctx->file_sent), "%s", sent);
}

/* Names the processor file in line as the user did (kp_ctl_name_file). */
static void given_path(const struct kp_ctl_ctx *ctx, char *line, size_t cap)
{
	size_t from = strlen(ctx->file_sent), to;
	char *at;

	if (ctx->file_given == NULL || from == 0 ||
	    strcmp(ctx->file_given, ctx->file_sent) == 0)
		return;
	to = strlen(ctx->file_given);
	at = line;
	while ((at = strstr(at, ctx->file_sent)) != NULL &&
	       strlen(line) - from + to < cap) {
		memmove(at + to, at + from, strlen(at + from) + 1);
		memcpy(at, ctx->file_given, to);
		at += to;
	}
}

int kp_ctl_fail(struct kp_ctl_ctx *ctx, const char *fmt, ...)
{
	char line[4096];
	va_list ap;

	fflush(ctx->out);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	given_path(ctx, line, sizeof(line));
	/* One line, always: a Lua traceback's newlines become spaces. */
	for (char *c = line; *c != '\0'; c++) {
		if (*c == '\n' || *c == '\r' || *c == '\t')
			*c = ' ';
	}
	for (size_t n = strlen(line); n > 0 && line[n - 1] == ' '; n--)
		line[n - 1] = '\0';
	fprintf(ctx->err, "kappactl: %s\n", line);
	return KP_CTL_EXIT_FAIL;
}

int kp_ctl_usage(struct kp_ctl_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	fputs("kappactl: usage: ", ctx->err);
	va_start(ap, fmt);
	vfprintf(ctx->err, fmt, ap);
	va_end(ap);
	fputs(" (see kappactl --help)\n", ctx->err);
	return KP_CTL_EXIT_USAGE;
}

int kp_ctl_parse_u64(const char *s, uint64_t *v)
{
	unsigned long long x;
	char *end;

	if (s[0] < '0' || s[0] > '9')
		return -EINVAL;
	errno = 0;
	x = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	*v = x;
	return 0;
}

int kp_ctl_parse_i64(const char *s, int64_t *v)
{
	long long x;
	char *end;

	if ((s[0] < '0' || s[0] > '9') && !(s[0] == '-' && s[1] >= '0' && s[1] <= '9'))
		return -EINVAL;
	errno = 0;
	x = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	*v = x;
	return 0;
}

/*
 * The token to authenticate with, into buf: the first line of
 * ctx->token_file, else $KAPPA_TOKEN. Returns 1 with a token, 0 without
 * one, or an exit code after printing why the file is unusable.
 */
static int read_token(struct kp_ctl_ctx *ctx, char *buf, size_t cap)
{
	const char *env = getenv("KAPPA_TOKEN");
	FILE *f;
	size_t n;

	if (ctx->token_file == NULL) {
		if (env == NULL || env[0] == '\0')
			return 0;
		if (strlen(env) >= cap)
			return kp_ctl_fail(ctx, "KAPPA_TOKEN is too long");
		memcpy(buf, env, strlen(env) + 1);
		return 1;
	}
	f = fopen(ctx->token_file, "r");
	if (f == NULL)
		return kp_ctl_fail(ctx, "--token-file %s: %s", ctx->token_file,
				   strerror(errno));
	if (fgets(buf, (int)cap, f) == NULL)
		buf[0] = '\0';
	fclose(f);
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
			 buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		buf[--n] = '\0';
	if (n == 0)
		return kp_ctl_fail(ctx, "--token-file %s holds no token",
				   ctx->token_file);
	return 1;
}

/*
 * Why the first exchange on c failed (err), as one line: what answered
 * instead of kappad when that can be told (probe.h), else err itself,
 * after what (NULL: nothing).
 */
static int hello_failed(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c,
			const char *what, struct kp_error *err)
{
	const char *p;
	size_t len;

	kp_ctl_client_received(c, &p, &len);
	if (kp_ctl_probe_explain(kp_ctl_probe_classify(p, len, KP_CTL_MAX_FRAME),
				 ctx->addr, KP_CTL_HELLO_TIMEOUT_MS, c->ssl != NULL, p,
				 len, err))
		return kp_ctl_fail(ctx, "%s", err->msg);
	return kp_ctl_fail(ctx, "%s%s", what ? what : "", err->msg);
}

/*
 * The first exchange on c, bounded by KP_CTL_HELLO_TIMEOUT_MS: auth with
 * token, else ping, carrying the probe field (probe.h). A ping the server
 * refuses (UNAUTHORIZED without a token) still shows it is kappad: the
 * verb's own request then gets the error. Returns 0 or an exit status.
 */
static int hello(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c,
		 const char *token)
{
	struct kp_ctl_resp resp;
	struct kp_error err;
	json_t *fields;
	int rc;

	fields = token != NULL
			 ? json_pack("{ssss}", "token", token, KP_CTL_PROBE_FIELD,
				     KP_CTL_PROBE_VALUE)
			 : json_pack("{ss}", KP_CTL_PROBE_FIELD, KP_CTL_PROBE_VALUE);
	if (fields == NULL)
		return kp_ctl_fail(ctx, "out of memory");
	kp_ctl_resp_init(&resp);
	rc = kp_ctl_client_call(c, token != NULL ? "auth" : "ping", fields,
				&resp, &err);
	json_decref(fields);
	kp_ctl_resp_destroy(&resp);
	if (rc != 0 && (token != NULL || kp_ctl_client_in_flight(c) != 0))
		return hello_failed(ctx, c, token ? "authentication failed: " : NULL,
				    &err);
	if (kp_ctl_client_set_timeout(c, 0) != 0)
		return kp_ctl_fail(ctx, "setting a socket timeout: %s",
				   strerror(errno));
	return 0;
}

/* Connects c and runs the TLS handshake when asked; 0 or an exit status. */
static int open_conn(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c)
{
	struct kp_error err;

	if (kp_ctl_client_open(c, ctx->addr, KP_CTL_CONNECT_TIMEOUT_MS, &err) != 0)
		return kp_ctl_fail(ctx, "%s", err.msg);
	if (kp_ctl_client_set_timeout(c, KP_CTL_HELLO_TIMEOUT_MS) != 0)
		return kp_ctl_fail(ctx, "setting a socket timeout: %s",
				   strerror(errno));
	if (ctx->tls_ca != NULL || ctx->tls_cert != NULL ||
	    ctx->tls_key != NULL) {
		const struct kp_ctl_tls tls = { ctx->tls_ca, ctx->tls_cert,
						ctx->tls_key };

		int rc = kp_ctl_client_start_tls(c, &tls, &err);

		if (rc == -ETIMEDOUT)
			return kp_ctl_fail(ctx, "%s did not answer the TLS handshake within %d ms; is it kappad's --listen address, with TLS?",
					   ctx->addr, KP_CTL_HELLO_TIMEOUT_MS);
		if (rc != 0)
			return kp_ctl_fail(ctx, "%s", err.msg);
	}
	return 0;
}

int kp_ctl_connect(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c)
{
	char token[1024];
	int rc;

	rc = open_conn(ctx, c);
	if (rc == 0) {
		rc = read_token(ctx, token, sizeof(token));
		if (rc == 0 || rc == 1)
			rc = hello(ctx, c, rc == 1 ? token : NULL);
		memset(token, 0, sizeof(token));
	}
	if (rc != 0)
		kp_ctl_client_close(c);
	return rc;
}

int kp_ctl_print(struct kp_ctl_ctx *ctx, json_t *v)
{
	int rc;

	if (v == NULL)
		return kp_ctl_fail(ctx, "out of memory");
	rc = kp_ctl_json_dump(ctx->out, v);
	json_decref(v);
	if (rc == 0 && fputc('\n', ctx->out) == EOF)
		rc = -EIO;
	if (rc != 0)
		return kp_ctl_fail(ctx, "writing output: %s", strerror(errno));
	return 0;
}

int kp_ctl_print_mp(struct kp_ctl_ctx *ctx, const msgpack_object *o)
{
	if (o == NULL)
		return kp_ctl_fail(ctx, "the server's response lacks its result");
	return kp_ctl_print(ctx, kp_ctl_mp_to_json(o));
}

int kp_ctl_print_raw(struct kp_ctl_ctx *ctx, const msgpack_object *o)
{
	if (o == NULL || o->type != MSGPACK_OBJECT_STR)
		return kp_ctl_print(ctx, o ? kp_ctl_mp_to_json(o) : json_null());
	if (fwrite(o->via.str.ptr, 1, o->via.str.size, ctx->out) !=
		    o->via.str.size ||
	    fputc('\n', ctx->out) == EOF)
		return kp_ctl_fail(ctx, "writing output: %s", strerror(errno));
	return 0;
}

int kp_ctl_topic_partitions(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c,
			    const char *topic, uint32_t *n)
{
	struct kp_ctl_resp resp;
	struct kp_error err;
	uint64_t count;
	json_t *f;
	int rc;

	f = json_pack("{ss}", "topic", topic);
	kp_ctl_resp_init(&resp);
	rc = kp_ctl_client_call(c, "topic_describe", f, &resp, &err);
	json_decref(f);
	if (rc != 0) {
		kp_ctl_resp_destroy(&resp);
		return kp_ctl_fail(ctx, "%s", err.msg);
	}
	rc = kp_ctl_mp_get_u64(kp_ctl_mp_get(resp.map, "topic"), "partitions",
			       &count);
	kp_ctl_resp_destroy(&resp);
	if (rc != 0 || count == 0 || count > UINT32_MAX)
		return kp_ctl_fail(ctx, "topic_describe of '%s': no partition count",
				   topic);
	*n = (uint32_t)count;
	return 0;
}

int kp_ctl_pos_parse(const char *s, struct kp_ctl_pos *pos)
{
	if (strcmp(s, "earliest") == 0) {
		pos->kind = KP_CTL_POS_EARLIEST;
		return 0;
	}
	if (strcmp(s, "latest") == 0) {
		pos->kind = KP_CTL_POS_LATEST;
		return 0;
	}
	if (s[0] == '@') {
		pos->kind = KP_CTL_POS_TIME;
		return kp_ctl_time_parse(s + 1, &pos->ts);
	}
	pos->kind = KP_CTL_POS_OFFSET;
	return kp_ctl_parse_u64(s, &pos->offset);
}

json_t *kp_ctl_pos_json(const struct kp_ctl_pos *pos)
{
	switch (pos->kind) {
	case KP_CTL_POS_EARLIEST:
		return json_string("earliest");
	case KP_CTL_POS_LATEST:
		return json_string("latest");
	case KP_CTL_POS_OFFSET:
		return json_pack("{sI}", "offset", (json_int_t)pos->offset);
	case KP_CTL_POS_TIME:
		return json_integer((json_int_t)pos->ts);
	}
	return NULL;
}

/* Sends list_offsets for one partition. */
static int send_list_offsets(struct kp_ctl_client *c, const char *topic,
			     uint32_t partition, const struct kp_ctl_pos *pos,
			     struct kp_error *err)
{
	json_t *f;
	int rc;

	if (pos->kind == KP_CTL_POS_TIME)
		f = json_pack("{sssIsI}", "topic", topic, "partition",
			      (json_int_t)partition, "at", (json_int_t)pos->ts);
	else
		f = json_pack("{sssIss}", "topic", topic, "partition",
			      (json_int_t)partition, "at",
			      pos->kind == KP_CTL_POS_EARLIEST ? "earliest"
							       : "latest");
	if (f == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	rc = kp_ctl_client_send_json(c, "list_offsets", f, err);
	json_decref(f);
	return rc;
}

int kp_ctl_pos_resolve(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c,
		       const char *topic, const uint32_t *partitions, uint32_t n,
		       const struct kp_ctl_pos *pos, uint64_t *offsets)
{
	struct kp_ctl_resp resp;
	struct kp_error err;
	uint32_t sent = 0, got = 0;
	int rc = 0;

	if (pos->kind == KP_CTL_POS_OFFSET) {
		for (got = 0; got < n; got++)
			offsets[got] = pos->offset;
		return 0;
	}
	kp_ctl_resp_init(&resp);
	while (got < n && rc == 0) {
		while (sent < n && sent - got < 64 && rc == 0)
			rc = send_list_offsets(c, topic, partitions[sent++], pos, &err);
		if (rc == 0)
			rc = kp_ctl_client_recv(c, &resp, &err);
		if (rc == 0 && kp_ctl_mp_get_u64(resp.map, "offset", &offsets[got]) != 0)
			rc = kp_error_set(&err, KP_EBADMSGPACK,
					  "list_offsets: response without offset");
		got++;
	}
	kp_ctl_resp_destroy(&resp);
	if (rc != 0)
		return kp_ctl_fail(ctx, "%s", err.msg);
	return 0;
}
