/*
 * cmd_view.c - `kappactl view get NAME KEY` and
 * `kappactl view scan NAME [--prefix P] [--limit N]`.
 *
 * Output: get prints the value as JSON (null when the key is absent); scan
 * prints one {"key","value"} object per line, in key order.
 */
#include "cmd.h"

#include <string.h>

#include "json_mp.h"
#include "mpget.h"

static int request(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c,
		   const char *op, json_t *fields, struct kp_ctl_resp *resp)
{
	struct kp_error err;
	int rc;

	if (fields == NULL)
		return kp_ctl_fail(ctx, "out of memory");
	rc = kp_ctl_connect(ctx, c);
	if (rc == 0) {
		rc = kp_ctl_client_call(c, op, fields, resp, &err);
		if (rc != 0)
			rc = kp_ctl_fail(ctx, "%s", err.msg);
	}
	json_decref(fields);
	return rc;
}

static int view_get(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c, int argc,
		    char **argv)
{
	struct kp_ctl_resp resp;
	const char *pos[2];
	int npos, rc;

	rc = kp_ctl_args_parse(ctx, argc, argv, NULL, pos, 2, &npos);
	if (rc != 0)
		return rc;
	if (npos != 2)
		return kp_ctl_usage(ctx, "kappactl view get NAME KEY");
	kp_ctl_resp_init(&resp);
	rc = request(ctx, c, "view_get",
		     json_pack("{ss ss}", "name", pos[0], "key", pos[1]), &resp);
	if (rc == 0)
		rc = kp_ctl_print_mp(ctx, kp_ctl_mp_get(resp.map, "value"));
	kp_ctl_resp_destroy(&resp);
	return rc;
}

static int view_scan(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c, int argc,
		     char **argv)
{
	const char *prefix = NULL, *limit = NULL, *pos[1];
	const struct kp_ctl_opt opts[] = {
		{ "prefix", &prefix, NULL },
		{ "limit", &limit, NULL },
		{ NULL, NULL, NULL },
	};
	const msgpack_object *items;
	struct kp_ctl_resp resp;
	uint64_t n = 1000;
	json_t *f;
	int npos, rc;

	rc = kp_ctl_args_parse(ctx, argc, argv, opts, pos, 1, &npos);
	if (rc != 0)
		return rc;
	if (npos != 1)
		return kp_ctl_usage(ctx,
				    "kappactl view scan NAME [--prefix P] [--limit N]");
	if (limit != NULL && (kp_ctl_parse_u64(limit, &n) != 0 || n == 0 ||
			      n > 100000))
		return kp_ctl_usage(ctx, "--limit wants 1..100000");
	f = json_pack("{ss sI}", "name", pos[0], "limit", (json_int_t)n);
	if (f != NULL && prefix != NULL)
		json_object_set_new(f, "prefix", json_string(prefix));
	kp_ctl_resp_init(&resp);
	rc = request(ctx, c, "view_scan", f, &resp);
	if (rc == 0) {
		items = kp_ctl_mp_get(resp.map, "items");
		if (items == NULL || items->type != MSGPACK_OBJECT_ARRAY)
			rc = kp_ctl_fail(ctx, "view_scan: response without items");
		for (uint32_t i = 0; rc == 0 && i < items->via.array.size; i++)
			rc = kp_ctl_print_mp(ctx, &items->via.array.ptr[i]);
	}
	kp_ctl_resp_destroy(&resp);
	return rc;
}

int kp_ctl_cmd_view(struct kp_ctl_ctx *ctx, int argc, char **argv)
{
	struct kp_ctl_client c = { .fd = -1 };
	int rc;

	if (argc < 1)
		return kp_ctl_usage(ctx, "kappactl view get|scan ...");
	if (strcmp(argv[0], "get") == 0)
		rc = view_get(ctx, &c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "scan") == 0)
		rc = view_scan(ctx, &c, argc - 1, argv + 1);
	else
		return kp_ctl_usage(ctx, "unknown verb 'view %s'", argv[0]);
	kp_ctl_client_close(&c);
	return rc;
}
