/*
 * cmd_topic.c - `kappactl topic create|list|describe|delete`.
 *
 * Output: create and describe print the server's topic description as one
 * JSON object; list prints one description per line; delete prints
 * {"deleted":"NAME"}.
 */
#include "cmd.h"

#include <string.h>

#include "mpget.h"

#define CREATE_USAGE                                                           \
	"kappactl topic create NAME [--partitions N] [--fsync always|interval|never]" \
	" [--fsync-interval-ms N] [--retention-ms N] [--retention-bytes N]"    \
	" [--segment-bytes N] [--segment-ms N]"                                 \
	" [--cleanup delete|compact|compact,delete] [--delete-retention-ms N]"

/* Runs op with fields (stolen) and returns 0 with *resp filled, or fails. */
static int call(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c, const char *op,
		json_t *fields, struct kp_ctl_resp *resp)
{
	struct kp_error err;
	int rc;

	rc = kp_ctl_client_call(c, op, fields, resp, &err);
	json_decref(fields);
	if (rc != 0)
		return kp_ctl_fail(ctx, "%s", err.msg);
	return 0;
}

/* Adds --name N (unsigned, or signed when is_signed) to f as field. */
static int add_number(struct kp_ctl_ctx *ctx, json_t *f, const char *opt,
		      const char *field, const char *value, int is_signed)
{
	uint64_t u;
	int64_t i;

	if (value == NULL)
		return 0;
	if (is_signed) {
		if (kp_ctl_parse_i64(value, &i) != 0)
			return kp_ctl_usage(ctx, "--%s wants an integer, not '%s'",
					    opt, value);
		json_object_set_new(f, field, json_integer((json_int_t)i));
		return 0;
	}
	if (kp_ctl_parse_u64(value, &u) != 0 || u > INT64_MAX)
		return kp_ctl_usage(ctx, "--%s wants a non-negative integer, not '%s'",
				    opt, value);
	json_object_set_new(f, field, json_integer((json_int_t)u));
	return 0;
}

static int topic_create(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c,
			int argc, char **argv)
{
	const char *partitions = NULL, *fsync = NULL, *fsync_ms = NULL,
		   *ret_ms = NULL, *ret_bytes = NULL, *seg_bytes = NULL,
		   *seg_ms = NULL, *cleanup = NULL, *del_ms = NULL, *pos[1];
	const struct kp_ctl_opt opts[] = {
		{ "partitions", &partitions, NULL },
		{ "fsync", &fsync, NULL },
		{ "fsync-interval-ms", &fsync_ms, NULL },
		{ "retention-ms", &ret_ms, NULL },
		{ "retention-bytes", &ret_bytes, NULL },
		{ "segment-bytes", &seg_bytes, NULL },
		{ "segment-ms", &seg_ms, NULL },
		{ "cleanup", &cleanup, NULL },
		{ "delete-retention-ms", &del_ms, NULL },
		{ NULL, NULL, NULL },
	};
	struct kp_ctl_resp resp;
	int npos, rc;
	json_t *f;

	rc = kp_ctl_args_parse(ctx, argc, argv, opts, pos, 1, &npos);
	if (rc != 0)
		return rc;
	if (npos != 1)
		return kp_ctl_usage(ctx, CREATE_USAGE);
	if (fsync != NULL && strcmp(fsync, "always") != 0 &&
	    strcmp(fsync, "interval") != 0 && strcmp(fsync, "never") != 0)
		return kp_ctl_usage(ctx, "--fsync is always, interval or never");
	if (cleanup != NULL && strcmp(cleanup, "delete") != 0 &&
	    strcmp(cleanup, "compact") != 0 &&
	    strcmp(cleanup, "compact,delete") != 0 &&
	    strcmp(cleanup, "delete,compact") != 0)
		return kp_ctl_usage(ctx, "--cleanup is delete, compact or compact,delete");
	f = json_pack("{ss}", "topic", pos[0]);
	if (f == NULL)
		return kp_ctl_fail(ctx, "out of memory");
	if (fsync != NULL)
		json_object_set_new(f, "fsync", json_string(fsync));
	if (cleanup != NULL)
		json_object_set_new(f, "cleanup", json_string(cleanup));
	rc = add_number(ctx, f, "partitions", "partitions", partitions, 0);
	if (rc == 0)
		rc = add_number(ctx, f, "fsync-interval-ms", "fsync_interval_ms",
				fsync_ms, 0);
	if (rc == 0)
		rc = add_number(ctx, f, "retention-ms", "retention_ms", ret_ms, 1);
	if (rc == 0)
		rc = add_number(ctx, f, "retention-bytes", "retention_bytes",
				ret_bytes, 1);
	if (rc == 0)
		rc = add_number(ctx, f, "segment-bytes", "segment_bytes", seg_bytes, 0);
	if (rc == 0)
		rc = add_number(ctx, f, "segment-ms", "segment_ms", seg_ms, 0);
	if (rc == 0)
		rc = add_number(ctx, f, "delete-retention-ms",
				"delete_retention_ms", del_ms, 0);
	if (rc != 0) {
		json_decref(f);
		return rc;
	}
	rc = kp_ctl_connect(ctx, c);
	if (rc != 0) {
		json_decref(f);
		return rc;
	}
	kp_ctl_resp_init(&resp);
	rc = call(ctx, c, "topic_create", f, &resp);
	if (rc == 0)
		rc = kp_ctl_print_mp(ctx, kp_ctl_mp_get(resp.map, "topic"));
	kp_ctl_resp_destroy(&resp);
	return rc;
}

static int topic_list(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c, int argc,
		      char **argv)
{
	const msgpack_object *topics;
	struct kp_ctl_resp resp;
	const char *pos[1];
	int npos, rc;
	uint32_t i;

	rc = kp_ctl_args_parse(ctx, argc, argv, NULL, pos, 0, &npos);
	if (rc != 0)
		return rc;
	rc = kp_ctl_connect(ctx, c);
	if (rc != 0)
		return rc;
	kp_ctl_resp_init(&resp);
	rc = call(ctx, c, "topic_list", NULL, &resp);
	if (rc == 0) {
		topics = kp_ctl_mp_get(resp.map, "topics");
		if (topics == NULL || topics->type != MSGPACK_OBJECT_ARRAY)
			rc = kp_ctl_fail(ctx, "topic_list: response without topics");
		for (i = 0; rc == 0 && i < topics->via.array.size; i++)
			rc = kp_ctl_print_mp(ctx, &topics->via.array.ptr[i]);
	}
	kp_ctl_resp_destroy(&resp);
	return rc;
}

/* describe and delete: one NAME, one request. */
static int topic_named(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c,
		       int argc, char **argv, int is_delete)
{
	struct kp_ctl_resp resp;
	const char *pos[1];
	int npos, rc;

	rc = kp_ctl_args_parse(ctx, argc, argv, NULL, pos, 1, &npos);
	if (rc != 0)
		return rc;
	if (npos != 1)
		return kp_ctl_usage(ctx, "kappactl topic %s NAME",
				    is_delete ? "delete" : "describe");
	rc = kp_ctl_connect(ctx, c);
	if (rc != 0)
		return rc;
	kp_ctl_resp_init(&resp);
	rc = call(ctx, c, is_delete ? "topic_delete" : "topic_describe",
		  json_pack("{ss}", "topic", pos[0]), &resp);
	if (rc == 0 && is_delete)
		rc = kp_ctl_print(ctx, json_pack("{ss}", "deleted", pos[0]));
	else if (rc == 0)
		rc = kp_ctl_print_mp(ctx, kp_ctl_mp_get(resp.map, "topic"));
	kp_ctl_resp_destroy(&resp);
	return rc;
}

int kp_ctl_cmd_topic(struct kp_ctl_ctx *ctx, int argc, char **argv)
{
	struct kp_ctl_client c = { .fd = -1 };
	int rc;

	if (argc < 1)
		return kp_ctl_usage(ctx, "kappactl topic create|list|describe|delete ...");
	if (strcmp(argv[0], "create") == 0)
		rc = topic_create(ctx, &c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "list") == 0)
		rc = topic_list(ctx, &c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "describe") == 0)
		rc = topic_named(ctx, &c, argc - 1, argv + 1, 0);
	else if (strcmp(argv[0], "delete") == 0)
		rc = topic_named(ctx, &c, argc - 1, argv + 1, 1);
	else
		return kp_ctl_usage(ctx, "unknown verb 'topic %s'", argv[0]);
	kp_ctl_client_close(&c);
	return rc;
}
