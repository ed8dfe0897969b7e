/*
 * cmd_proc.h - what the `kappactl proc` verbs share across their files:
 * cmd_proc.c (create, list, status, pause, resume, delete and dispatch),
 * cmd_proc_version.c (reload, rollback, versions, gc, reset, verify),
 * cmd_pipeline.c (graph, rollback --cascade) and
 * cmd_replay.c (replay, with --wait).
 *
 * Each verb function takes argv with argv[0] the first word after the verb
 * ("NAME ..." for "proc reload NAME ...") and returns an exit status.
 */
#ifndef KP_CTL_CMD_PROC_H
#define KP_CTL_CMD_PROC_H

#include <jansson.h>

#include "cmd.h"

/* Position forms a flag accepts, or'ed together (kp_ctl_proc_position). */
enum {
	KP_CTL_ALLOW_EARLIEST = 1 << KP_CTL_POS_EARLIEST, /* "earliest" */
	KP_CTL_ALLOW_LATEST = 1 << KP_CTL_POS_LATEST,     /* "latest" */
	KP_CTL_ALLOW_OFFSET = 1 << KP_CTL_POS_OFFSET,     /* OFFSET */
	KP_CTL_ALLOW_TIME = 1 << KP_CTL_POS_TIME,         /* @TIME */
};

/*
 * Connects and runs op with fields (stolen). Returns 0 with *resp filled
 * and *c open (the caller destroys and closes both), or an exit status
 * after printing the error (nothing left open).
 */
int kp_ctl_proc_request(struct kp_ctl_ctx *ctx, const char *op,
			json_t *fields, struct kp_ctl_client *c,
			struct kp_ctl_resp *resp);

/*
 * Connects, runs op with fields (stolen; NULL means out of memory) and
 * prints the result field `print` as one JSON line: each item of it on its
 * own line when it is an array, nothing when print is NULL. Returns an exit
 * status; a server error is printed as its one-line message.
 */
int kp_ctl_proc_call(struct kp_ctl_ctx *ctx, const char *op, json_t *fields,
		     const char *print);

/*
 * Parses the value s of option --flag as a position of one of the forms in
 * allow and sets *out to its request form (kp_ctl_pos_json; caller owns).
 * Returns 0, or prints a usage error naming the allowed forms and returns
 * KP_CTL_EXIT_USAGE.
 */
int kp_ctl_proc_position(struct kp_ctl_ctx *ctx, const char *flag,
			 const char *s, unsigned allow, json_t **out);

/*
 * Sets field "file" of f to the absolute, resolved path of path (realpath
 * on this machine; the server reads that path). Returns 0, or prints the
 * error and returns KP_CTL_EXIT_FAIL.
 */
int kp_ctl_proc_file(struct kp_ctl_ctx *ctx, json_t *f, const char *path);

/* The verbs. */
int kp_ctl_proc_reload(struct kp_ctl_ctx *ctx, int argc, char **argv);
int kp_ctl_proc_replay(struct kp_ctl_ctx *ctx, int argc, char **argv);
int kp_ctl_proc_rollback(struct kp_ctl_ctx *ctx, int argc, char **argv);
int kp_ctl_proc_versions(struct kp_ctl_ctx *ctx, int argc, char **argv);
int kp_ctl_proc_gc(struct kp_ctl_ctx *ctx, int argc, char **argv);
int kp_ctl_proc_reset(struct kp_ctl_ctx *ctx, int argc, char **argv);
int kp_ctl_proc_verify(struct kp_ctl_ctx *ctx, int argc, char **argv);

/*
 * Pipelines (cmd_pipeline.c): `proc graph`; `proc rollback`, which with
 * --cascade rolls the chain back and otherwise is kp_ctl_proc_rollback.
 */
int kp_ctl_proc_graph(struct kp_ctl_ctx *ctx, int argc, char **argv);
int kp_ctl_proc_rollback_any(struct kp_ctl_ctx *ctx, int argc, char **argv);

/*
 * Runs op with fields (stolen; NULL means out of memory) and prints the
 * response's fields named in keys (NULL-terminated; absent ones left out)
 * as one JSON object. Returns an exit status.
 */
int kp_ctl_proc_call_fields(struct kp_ctl_ctx *ctx, const char *op,
			    json_t *fields, const char *const *keys);

#endif
