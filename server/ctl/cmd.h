/*
 * cmd.h - kappactl's verbs and what they share: the context they run in,
 * option parsing, number parsing, connecting and printing.
 *
 * A verb is a function (ctx, argc, argv) -> exit status, where argv[0] is the
 * verb's first word after the verb name ("create" for "topic create"). It
 * prints results as JSON lines on ctx->out, and errors as one line
 * "kappactl: ..." on ctx->err. Exit status: 0 success, 1 an error reported by
 * the server or about the user's data, 2 a usage error.
 */
#ifndef KP_CTL_CMD_H
#define KP_CTL_CMD_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "client.h"

enum {
	KP_CTL_EXIT_OK = 0,     /* success */
	KP_CTL_EXIT_FAIL = 1,   /* the server or the data said no */
	KP_CTL_EXIT_USAGE = 2,  /* the command line was wrong */
};

/* Milliseconds to wait for a TCP connection to the server. */
#define KP_CTL_CONNECT_TIMEOUT_MS 5000
/*
 * Milliseconds the server has for each reply of the first exchange (the
 * TLS handshake, then auth or ping); later requests wait without a limit.
 */
#define KP_CTL_HELLO_TIMEOUT_MS 1000

/* What a verb runs with. */
struct kp_ctl_ctx {
	const char *addr;  /* server HOST:PORT; a verb's --addr replaces it */
	const char *token_file; /* --token-file: the token to authenticate
				   with; NULL: $KAPPA_TOKEN, else none */
	const char *tls_ca;     /* --tls-ca, --tls-cert, --tls-key: TLS when */
	const char *tls_cert;   /* any is given (PEM files) */
	const char *tls_key;
	FILE *in;          /* input (JSON lines for produce) */
	FILE *out;         /* results: JSON lines */
	FILE *err;         /* one-line errors */
	const char *file_given; /* a processor file as the user named it, */
	char file_sent[4096];   /* and as sent (absolute): errors name the
				   former (kp_ctl_fail) */
};

/*
 * Records that the processor file the user named given is sent to the
 * server as sent (its absolute path), so that errors name it as given.
 */
void kp_ctl_name_file(struct kp_ctl_ctx *ctx, const char *given,
		      const char *sent);

/* One option a verb accepts: --name VALUE, --name=VALUE, or a flag --name. */
struct kp_ctl_opt {
	const char *name;    /* without the leading "--"; NULL ends a table */
	const char **value;  /* receives the value; NULL for a flag */
	int *flag;           /* set to 1 when the flag is given; NULL with value */
};

/*
 * Splits argv[0..argc) into options from opts (plus the global --addr,
 * --token-file, --tls-ca, --tls-cert and --tls-key, which set ctx's) and
 * positional arguments, stored in pos (at most max_pos) with
 * their count in *npos. "--" ends the options. Returns 0, or prints a usage
 * error and returns KP_CTL_EXIT_USAGE.
 */
int kp_ctl_args_parse(struct kp_ctl_ctx *ctx, int argc, char **argv,
		      const struct kp_ctl_opt *opts, const char **pos,
		      int max_pos, int *npos);

/*
 * Prints "kappactl: <fmt>" as one line on ctx->err (newlines and tabs in
 * the text become spaces); returns KP_CTL_EXIT_FAIL.
 */
int kp_ctl_fail(struct kp_ctl_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Prints "kappactl: usage: <fmt>" on ctx->err; returns KP_CTL_EXIT_USAGE. */
int kp_ctl_usage(struct kp_ctl_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Parses a decimal uint64 (whole string). Returns 0 or -EINVAL. */
int kp_ctl_parse_u64(const char *s, uint64_t *v);

/* Parses a decimal int64, sign allowed (whole string). Returns 0 or -EINVAL. */
int kp_ctl_parse_i64(const char *s, int64_t *v);

/*
 * Connects c to ctx->addr: TCP, the TLS handshake when a --tls-* option is
 * given, then one exchange (auth with the token, else ping) that must be
 * answered within KP_CTL_HELLO_TIMEOUT_MS; a server that stays silent,
 * answers like an HTTP server or not in kappa frames is named as such
 * (probe.h). Returns 0, or prints the error and returns KP_CTL_EXIT_FAIL
 * (c closed).
 */
int kp_ctl_connect(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c);

/*
 * Prints v as one compact JSON line on ctx->out and steals the reference
 * (v may be NULL, meaning out of memory). Returns 0, or prints the error and
 * returns KP_CTL_EXIT_FAIL.
 */
int kp_ctl_print(struct kp_ctl_ctx *ctx, json_t *v);

/*
 * Converts the msgpack object o to JSON and prints it as kp_ctl_print does.
 * o NULL (a result missing from a response) is reported as an error.
 */
int kp_ctl_print_mp(struct kp_ctl_ctx *ctx, const msgpack_object *o);

/*
 * Prints the msgpack value o raw, as one line on ctx->out: a str as its
 * bytes, anything else as kp_ctl_print_mp does (NULL as null). Returns 0,
 * or prints the error and returns KP_CTL_EXIT_FAIL.
 */
int kp_ctl_print_raw(struct kp_ctl_ctx *ctx, const msgpack_object *o);

/*
 * The number of partitions of topic, from topic_describe on c. Returns 0
 * with *n set, or prints the error and returns KP_CTL_EXIT_FAIL.
 */
int kp_ctl_topic_partitions(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c,
			    const char *topic, uint32_t *n);

/*
 * A position given on the command line: "earliest", "latest", an offset,
 * or "@TIME" (epoch ms or RFC 3339).
 */
struct kp_ctl_pos {
	enum { KP_CTL_POS_EARLIEST, KP_CTL_POS_LATEST, KP_CTL_POS_OFFSET,
	       KP_CTL_POS_TIME } kind;   /* which form was given */
	uint64_t offset;                /* with KP_CTL_POS_OFFSET */
	int64_t ts;                     /* with KP_CTL_POS_TIME: epoch ms */
};

/* Parses a position. Returns 0 or -EINVAL. */
int kp_ctl_pos_parse(const char *s, struct kp_ctl_pos *pos);

/*
 * The position as a processor request field takes it (docs/PROTOCOL.md,
 * proc_replay): "earliest", "latest", {"offset": N} or epoch ms. A new
 * reference, NULL only when out of memory.
 */
json_t *kp_ctl_pos_json(const struct kp_ctl_pos *pos);

/*
 * Resolves pos to an offset in each of the n partitions of topic (pipelined
 * list_offsets; an explicit offset is used as it is). Fills offsets[0..n).
 * Returns 0, or prints the error and returns KP_CTL_EXIT_FAIL.
 */
int kp_ctl_pos_resolve(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c,
		       const char *topic, const uint32_t *partitions, uint32_t n,
		       const struct kp_ctl_pos *pos, uint64_t *offsets);

/* The verbs, dispatched by kappactl.c. */
int kp_ctl_cmd_ping(struct kp_ctl_ctx *ctx, int argc, char **argv);
int kp_ctl_cmd_topic(struct kp_ctl_ctx *ctx, int argc, char **argv);
int kp_ctl_cmd_produce(struct kp_ctl_ctx *ctx, int argc, char **argv);
int kp_ctl_cmd_consume(struct kp_ctl_ctx *ctx, int argc, char **argv);
int kp_ctl_cmd_group(struct kp_ctl_ctx *ctx, int argc, char **argv);
int kp_ctl_cmd_proc(struct kp_ctl_ctx *ctx, int argc, char **argv);
int kp_ctl_cmd_view(struct kp_ctl_ctx *ctx, int argc, char **argv);
int kp_ctl_cmd_run(struct kp_ctl_ctx *ctx, int argc, char **argv);
int kp_ctl_cmd_top(struct kp_ctl_ctx *ctx, int argc, char **argv);

#endif
