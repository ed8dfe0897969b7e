/*
 * cmd_view.c - `kappactl view get NAME KEY [KEY...]` and
 * `kappactl view scan NAME [--prefix P] [--after KEY] [--limit N]`.
 *
 * Output: get of one key prints its value as JSON (null when absent); of
 * several, one {"key","found","value"} object per line in the order given.
 * scan prints one {"key","value"} object per line, in key order: every key
 * (fetched a page at a time), or the first N after KEY; when keys remain
 * past --limit, stderr says how to go on.
 */
#include "cmd.h"

#include <stdio.h>
#include <stdlib.h>
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

/* Several keys: one {"key","found","value"} line per key, in order. */
static int view_get_many(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c,
			 const char *name, const char *const *keys, int n)
{
	const msgpack_object *items;
	struct kp_ctl_resp resp;
	json_t *f = json_pack("{ss s[]}", "name", name, "keys");
	int rc;

	for (int i = 0; f != NULL && i < n; i++)
		json_array_append_new(json_object_get(f, "keys"),
				      json_string(keys[i]));
	kp_ctl_resp_init(&resp);
	rc = request(ctx, c, "view_get", f, &resp);
	if (rc == 0) {
		items = kp_ctl_mp_get(resp.map, "items");
		if (items == NULL || items->type != MSGPACK_OBJECT_ARRAY)
			rc = kp_ctl_fail(ctx, "view_get: response without items");
		for (uint32_t i = 0; rc == 0 && i < items->via.array.size; i++)
			rc = kp_ctl_print_mp(ctx, &items->via.array.ptr[i]);
	}
	kp_ctl_resp_destroy(&resp);
	return rc;
}

#define MAX_GET_KEYS 10000

static int view_get(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c, int argc,
		    char **argv)
{
	static const char *pos[MAX_GET_KEYS + 1];
	struct kp_ctl_resp resp;
	int npos, rc;

	rc = kp_ctl_args_parse(ctx, argc, argv, NULL, pos, MAX_GET_KEYS + 1,
			       &npos);
	if (rc != 0)
		return rc;
	if (npos < 2 || npos > MAX_GET_KEYS + 1)
		return kp_ctl_usage(ctx, "kappactl view get NAME KEY [KEY...] (at most %d keys)",
				    MAX_GET_KEYS);
	if (npos > 2)
		return view_get_many(ctx, c, pos[0], pos + 1, npos - 1);
	kp_ctl_resp_init(&resp);
	rc = request(ctx, c, "view_get",
		     json_pack("{ss ss}", "name", pos[0], "key", pos[1]), &resp);
	if (rc == 0)
		rc = kp_ctl_print_mp(ctx, kp_ctl_mp_get(resp.map, "value"));
	kp_ctl_resp_destroy(&resp);
	return rc;
}

#define SCAN_PAGE 1000

/*
 * One page of a scan after *after (NULL: from the first key), at most
 * want keys; prints them and sets *after to the response's next (NULL
 * when no keys follow). *printed counts what was printed.
 */
static int scan_page(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c,
		     const char *name, const char *prefix, char **after,
		     uint64_t want, uint64_t *printed)
{
	const msgpack_object *items, *next;
	struct kp_ctl_resp resp;
	json_t *f = json_pack("{ss sI}", "name", name, "limit",
			      (json_int_t)want);
	int rc;

	if (f != NULL && prefix != NULL)
		json_object_set_new(f, "prefix", json_string(prefix));
	if (f != NULL && *after != NULL)
		json_object_set_new(f, "after", json_string(*after));
	kp_ctl_resp_init(&resp);
	rc = request(ctx, c, "view_scan", f, &resp);
	free(*after);
	*after = NULL;
	if (rc == 0) {
		items = kp_ctl_mp_get(resp.map, "items");
		if (items == NULL || items->type != MSGPACK_OBJECT_ARRAY)
			rc = kp_ctl_fail(ctx, "view_scan: response without items");
		for (uint32_t i = 0; rc == 0 && i < items->via.array.size; i++) {
			rc = kp_ctl_print_mp(ctx, &items->via.array.ptr[i]);
			(*printed)++;
		}
		next = kp_ctl_mp_get(resp.map, "next");
		if (rc == 0 && next != NULL && next->type == MSGPACK_OBJECT_STR)
			*after = strndup(next->via.str.ptr, next->via.str.size);
		else if (rc == 0 && next != NULL &&
			 next->type == MSGPACK_OBJECT_BIN)
			*after = strndup(next->via.bin.ptr, next->via.bin.size);
	}
	kp_ctl_resp_destroy(&resp);
	return rc;
}

static int view_scan(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c, int argc,
		     char **argv)
{
	const char *prefix = NULL, *limit = NULL, *from = NULL, *pos[1];
	const struct kp_ctl_opt opts[] = {
		{ "prefix", &prefix, NULL },
		{ "after", &from, NULL },
		{ "limit", &limit, NULL },
		{ NULL, NULL, NULL },
	};
	uint64_t n = UINT64_MAX, printed = 0;
	char *after;
	int npos, rc;

	rc = kp_ctl_args_parse(ctx, argc, argv, opts, pos, 1, &npos);
	if (rc != 0)
		return rc;
	if (npos != 1)
		return kp_ctl_usage(ctx,
				    "kappactl view scan NAME [--prefix P] [--after KEY] [--limit N]");
	if (limit != NULL && (kp_ctl_parse_u64(limit, &n) != 0 || n == 0))
		return kp_ctl_usage(ctx, "--limit wants a number of keys >= 1");
	after = from != NULL ? strdup(from) : NULL;
	do {
		uint64_t want = n - printed < SCAN_PAGE ? n - printed : SCAN_PAGE;

		rc = scan_page(ctx, c, pos[0], prefix, &after, want, &printed);
	} while (rc == 0 && after != NULL && printed < n);
	if (rc == 0 && after != NULL)
		fprintf(stderr, "kappactl: more keys follow; go on with --after '%s'\n",
			after);
	free(after);
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
