/*
 * cmd_group.c - `kappactl group list|describe|reset`.
 *
 * Output, one JSON object per line:
 *   list:     {"group":"G"}
 *   describe: {"group":"G","topic":"t","partition":0,"offset":5,"end_offset":9,"lag":4}
 *             per partition with a committed offset; a group without any
 *             is an error: "kappactl: no group 'G' (it has committed no
 *             offsets)", exit 1.
 *   reset:    {"group":"G","topic":"t","partition":0,"current":5,"new":0,"executed":false}
 *             for every partition of the topic; "current" is null when the
 *             group has no offset there. Without --execute nothing changes
 *             and every line says "executed":false; with --execute the new
 *             offsets are committed first and every line says "executed":true.
 *             An explicit OFFSET is kept within each partition's retained
 *             range [start_offset, end_offset].
 */
#include "cmd.h"

#include <string.h>

#include "json_mp.h"
#include "mpget.h"
#include "base/alloc.h"

/* Runs op with fields (stolen); 0 with *resp filled, or an exit status. */
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

/* The array field name of resp's map, or NULL after reporting it missing. */
static const msgpack_object *array_field(struct kp_ctl_ctx *ctx,
					 const struct kp_ctl_resp *resp,
					 const char *op, const char *name)
{
	const msgpack_object *a = kp_ctl_mp_get(resp->map, name);

	if (a == NULL || a->type != MSGPACK_OBJECT_ARRAY) {
		kp_ctl_fail(ctx, "%s: response without %s", op, name);
		return NULL;
	}
	return a;
}

static int group_list(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c, int argc,
		      char **argv)
{
	const msgpack_object *groups;
	struct kp_ctl_resp resp;
	const char *pos[1], *name;
	size_t len;
	uint32_t i;
	int npos, rc;

	rc = kp_ctl_args_parse(ctx, argc, argv, NULL, pos, 0, &npos);
	if (rc == 0)
		rc = kp_ctl_connect(ctx, c);
	if (rc != 0)
		return rc;
	kp_ctl_resp_init(&resp);
	rc = call(ctx, c, "group_list", NULL, &resp);
	if (rc == 0) {
		groups = array_field(ctx, &resp, "group_list", "groups");
		rc = groups ? 0 : KP_CTL_EXIT_FAIL;
		for (i = 0; rc == 0 && i < groups->via.array.size; i++) {
			if (kp_ctl_mp_bytes(&groups->via.array.ptr[i], &name, &len) != 0)
				continue;
			rc = kp_ctl_print(ctx, json_pack("{ss%}", "group", name, len));
		}
	}
	kp_ctl_resp_destroy(&resp);
	return rc;
}

static int group_describe(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c,
			  int argc, char **argv)
{
	static const char *const fields[] = { "topic", "partition", "offset",
					      "end_offset", "lag" };
	const msgpack_object *offs, *v;
	struct kp_ctl_resp resp;
	const char *pos[1];
	uint32_t i;
	size_t k;
	int npos, rc;
	json_t *o;

	rc = kp_ctl_args_parse(ctx, argc, argv, NULL, pos, 1, &npos);
	if (rc == 0 && npos != 1)
		rc = kp_ctl_usage(ctx, "kappactl group describe GROUP");
	if (rc == 0)
		rc = kp_ctl_connect(ctx, c);
	if (rc != 0)
		return rc;
	kp_ctl_resp_init(&resp);
	rc = call(ctx, c, "group_fetch", json_pack("{ss}", "group", pos[0]), &resp);
	if (rc == 0) {
		offs = array_field(ctx, &resp, "group_fetch", "offsets");
		rc = offs ? 0 : KP_CTL_EXIT_FAIL;
		if (rc == 0 && offs->via.array.size == 0)
			rc = kp_ctl_fail(ctx, "no group '%s' (it has committed no offsets)",
					 pos[0]);
		for (i = 0; rc == 0 && i < offs->via.array.size; i++) {
			o = json_pack("{ss}", "group", pos[0]);
			for (k = 0; o != NULL && k < sizeof(fields) / sizeof(fields[0]); k++) {
				v = kp_ctl_mp_get(&offs->via.array.ptr[i], fields[k]);
				json_object_set_new(o, fields[k],
						    v ? kp_ctl_mp_to_json(v) : json_null());
			}
			rc = kp_ctl_print(ctx, o);
		}
	}
	kp_ctl_resp_destroy(&resp);
	return rc;
}

/* The group's committed offsets in topic: current[p], has[p] for p < n. */
static int fetch_current(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c,
			 const char *group, const char *topic, uint32_t n,
			 uint64_t *current, int *has)
{
	const msgpack_object *offs;
	struct kp_ctl_resp resp;
	struct kp_error err;
	uint64_t part, off;
	uint32_t i;
	json_t *f;
	int rc;

	f = json_pack("{ssss}", "group", group, "topic", topic);
	kp_ctl_resp_init(&resp);
	rc = kp_ctl_client_call(c, "group_fetch", f, &resp, &err);
	json_decref(f);
	if (rc != 0 && rc != KP_ENOGROUP) {
		kp_ctl_resp_destroy(&resp);
		return kp_ctl_fail(ctx, "%s", err.msg);
	}
	offs = rc == 0 ? kp_ctl_mp_get(resp.map, "offsets") : NULL;
	for (i = 0; offs && offs->type == MSGPACK_OBJECT_ARRAY &&
		    i < offs->via.array.size; i++) {
		const msgpack_object *o = &offs->via.array.ptr[i];

		if (kp_ctl_mp_get_u64(o, "partition", &part) == 0 && part < n &&
		    kp_ctl_mp_get_u64(o, "offset", &off) == 0) {
			current[part] = off;
			has[part] = 1;
		}
	}
	kp_ctl_resp_destroy(&resp);
	return 0;
}

/*
 * Keeps explicit offsets fresh[0..n) within each partition's retained range
 * [earliest, latest], so that a reset never points outside the log.
 */
static int clamp_offsets(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c,
			 const char *topic, const uint32_t *ids, uint32_t n,
			 uint64_t *fresh)
{
	const struct kp_ctl_pos first = { .kind = KP_CTL_POS_EARLIEST };
	const struct kp_ctl_pos last = { .kind = KP_CTL_POS_LATEST };
	uint64_t *lo = kp_calloc(n, sizeof(*lo)), *hi = kp_calloc(n, sizeof(*hi));
	uint32_t i;
	int rc;

	rc = lo && hi ? 0 : kp_ctl_fail(ctx, "out of memory");
	if (rc == 0)
		rc = kp_ctl_pos_resolve(ctx, c, topic, ids, n, &first, lo);
	if (rc == 0)
		rc = kp_ctl_pos_resolve(ctx, c, topic, ids, n, &last, hi);
	for (i = 0; rc == 0 && i < n; i++) {
		if (fresh[i] < lo[i])
			fresh[i] = lo[i];
		if (fresh[i] > hi[i])
			fresh[i] = hi[i];
	}
	kp_free(lo);
	kp_free(hi);
	return rc;
}

/* Commits offsets[0..n) for partitions 0..n-1 of topic. */
static int commit_all(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c,
		      const char *group, const char *topic, uint32_t n,
		      const uint64_t *offsets)
{
	struct kp_ctl_resp resp;
	json_t *arr = json_array();
	uint32_t i;
	int rc;

	for (i = 0; arr != NULL && i < n; i++)
		json_array_append_new(arr, json_pack("{sssIsI}", "topic", topic,
						     "partition", (json_int_t)i,
						     "offset", (json_int_t)offsets[i]));
	kp_ctl_resp_init(&resp);
	rc = call(ctx, c, "group_commit",
		  json_pack("{ssso}", "group", group, "offsets", arr), &resp);
	kp_ctl_resp_destroy(&resp);
	return rc;
}

static int print_plan(struct kp_ctl_ctx *ctx, const char *group,
		      const char *topic, uint32_t n, const uint64_t *current,
		      const int *has, const uint64_t *fresh, int executed)
{
	uint32_t i;
	int rc = 0;

	for (i = 0; rc == 0 && i < n; i++)
		rc = kp_ctl_print(ctx, json_pack("{sssssIsosIsb}", "group", group,
						 "topic", topic,
						 "partition", (json_int_t)i,
						 "current", has[i]
							? json_integer((json_int_t)current[i])
							: json_null(),
						 "new", (json_int_t)fresh[i],
						 "executed", executed));
	return rc;
}

static int group_reset(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c,
		       int argc, char **argv)
{
	const char *to = NULL, *pos[2];
	int execute = 0;
	const struct kp_ctl_opt opts[] = {
		{ "to", &to, NULL },
		{ "execute", NULL, &execute },
		{ NULL, NULL, NULL },
	};
	struct kp_ctl_pos where;
	uint64_t *current = NULL, *fresh = NULL;
	uint32_t *ids = NULL, n = 0, i;
	int *has = NULL, npos, rc;

	rc = kp_ctl_args_parse(ctx, argc, argv, opts, pos, 2, &npos);
	if (rc != 0)
		return rc;
	if (npos != 2 || to == NULL)
		return kp_ctl_usage(ctx, "kappactl group reset GROUP TOPIC --to "
					 "earliest|latest|OFFSET|@TIME [--execute]");
	if (kp_ctl_pos_parse(to, &where) != 0)
		return kp_ctl_usage(ctx, "--to is earliest, latest, an offset or"
					 " @TIME, not '%s'", to);
	rc = kp_ctl_connect(ctx, c);
	if (rc == 0)
		rc = kp_ctl_topic_partitions(ctx, c, pos[1], &n);
	if (rc == 0) {
		current = kp_calloc(n, sizeof(*current));
		fresh = kp_calloc(n, sizeof(*fresh));
		ids = kp_calloc(n, sizeof(*ids));
		has = kp_calloc(n, sizeof(*has));
		if (current == NULL || fresh == NULL || ids == NULL || has == NULL)
			rc = kp_ctl_fail(ctx, "out of memory");
	}
	for (i = 0; rc == 0 && i < n; i++)
		ids[i] = i;
	if (rc == 0)
		rc = fetch_current(ctx, c, pos[0], pos[1], n, current, has);
	if (rc == 0)
		rc = kp_ctl_pos_resolve(ctx, c, pos[1], ids, n, &where, fresh);
	if (rc == 0 && where.kind == KP_CTL_POS_OFFSET)
		rc = clamp_offsets(ctx, c, pos[1], ids, n, fresh);
	if (rc == 0 && execute)
		rc = commit_all(ctx, c, pos[0], pos[1], n, fresh);
	if (rc == 0)
		rc = print_plan(ctx, pos[0], pos[1], n, current, has, fresh, execute);
	kp_free(current);
	kp_free(fresh);
	kp_free(ids);
	kp_free(has);
	return rc;
}

int kp_ctl_cmd_group(struct kp_ctl_ctx *ctx, int argc, char **argv)
{
	struct kp_ctl_client c = { .fd = -1 };
	int rc;

	if (argc < 1)
		return kp_ctl_usage(ctx, "kappactl group list|describe|reset ...");
	if (strcmp(argv[0], "list") == 0)
		rc = group_list(ctx, &c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "describe") == 0)
		rc = group_describe(ctx, &c, argc - 1, argv + 1);
	else if (strcmp(argv[0], "reset") == 0)
		rc = group_reset(ctx, &c, argc - 1, argv + 1);
	else
		return kp_ctl_usage(ctx, "unknown verb 'group %s'", argv[0]);
	kp_ctl_client_close(&c);
	return rc;
}
