/*
 * cmd_proc_version.c - `kappactl proc reload|rollback|versions|gc|reset|
 * verify`: a processor's code versions (docs/PROTOCOL.md, "Processors and
 * views").
 *
 * Output:
 *   reload, rollback   the status as one JSON object (rollback --to
 *                      VERSION[.REVISION] picks where to go back to)
 *   versions           one JSON object per version per line, each with
 *                      its "revisions"
 *   gc                 {"removed":N}
 *   reset              the plan, one line per input partition:
 *                      {"topic","partition","current","new","executed"}
 *   verify             the line `identical` (exit 0), or one JSON line
 *                      {"identical":false,"difference":{...}} plus a one-line
 *                      summary on stderr (exit 1)
 * A reload whose compile or init fails leaves the old code running; the
 * server's error (with file and line) is printed and the status is 1.
 */
#include "cmd_proc.h"

#include <stdlib.h>
#include <string.h>

#include "json_mp.h"
#include "mpget.h"

/* Parses "NAME" and the options; returns 0 or an exit status. */
static int name_only(struct kp_ctl_ctx *ctx, const char *verb, int argc,
		     char **argv, const struct kp_ctl_opt *opts,
		     const char *rest, const char **name)
{
	const char *pos[1];
	int npos, rc = kp_ctl_args_parse(ctx, argc, argv, opts, pos, 1, &npos);

	*name = NULL;
	if (rc != 0)
		return rc;
	if (npos != 1)
		return kp_ctl_usage(ctx, "kappactl proc %s NAME%s%s", verb,
				    rest[0] ? " " : "", rest);
	*name = pos[0];
	return 0;
}

int kp_ctl_proc_reload(struct kp_ctl_ctx *ctx, int argc, char **argv)
{
	const char *name, *file = NULL;
	int watch = 0, no_watch = 0, rc;
	const struct kp_ctl_opt opts[] = {
		{ "file", &file, NULL },
		{ "watch", NULL, &watch },
		{ "no-watch", NULL, &no_watch },
		{ NULL, NULL, NULL },
	};
	json_t *f;

	rc = name_only(ctx, "reload", argc, argv, opts,
		       "[--file PATH] [--watch|--no-watch]", &name);
	if (rc == 0 && watch && no_watch)
		rc = kp_ctl_usage(ctx, "--watch or --no-watch, not both");
	if (rc != 0)
		return rc;
	f = json_pack("{ss}", "name", name);
	if (f == NULL)
		return kp_ctl_fail(ctx, "out of memory");
	if (file != NULL && (rc = kp_ctl_proc_file(ctx, f, file)) != 0) {
		json_decref(f);
		return rc;
	}
	if (watch || no_watch)
		json_object_set_new(f, "watch", json_boolean(watch));
	return kp_ctl_proc_call(ctx, "proc_reload", f, "proc");
}

/* A verb that takes NAME alone and prints the result field print. */
static int simple(struct kp_ctl_ctx *ctx, const char *verb, int argc,
		  char **argv, const char *print)
{
	const char *name;
	char op[32];
	int rc = name_only(ctx, verb, argc, argv, NULL, "", &name);

	if (rc != 0)
		return rc;
	snprintf(op, sizeof(op), "proc_%s", verb);
	return kp_ctl_proc_call(ctx, op, json_pack("{ss}", "name", name), print);
}

/* Parses VERSION[.REVISION] (each 1 or more) into *version, *revision. */
static int parse_to(const char *s, uint64_t *version, uint64_t *revision)
{
	const char *dot = strchr(s, '.');
	char head[32];

	*revision = 0;
	if (dot == NULL)
		return kp_ctl_parse_u64(s, version) != 0 || *version == 0 ||
		       *version > UINT32_MAX ? -1 : 0;
	if ((size_t)(dot - s) >= sizeof(head))
		return -1;
	memcpy(head, s, (size_t)(dot - s));
	head[dot - s] = '\0';
	if (kp_ctl_parse_u64(head, version) != 0 || *version == 0 ||
	    *version > UINT32_MAX ||
	    kp_ctl_parse_u64(dot + 1, revision) != 0 || *revision == 0 ||
	    *revision > UINT32_MAX)
		return -1;
	return 0;
}

int kp_ctl_proc_rollback(struct kp_ctl_ctx *ctx, int argc, char **argv)
{
	const char *name, *to = NULL;
	const struct kp_ctl_opt opts[] = {
		{ "to", &to, NULL },
		{ NULL, NULL, NULL },
	};
	uint64_t version, revision;
	json_t *f;
	int rc = name_only(ctx, "rollback", argc, argv, opts,
			   "[--to VERSION[.REVISION]]", &name);

	if (rc != 0)
		return rc;
	if (to != NULL && parse_to(to, &version, &revision) != 0)
		return kp_ctl_usage(ctx, "--to wants VERSION or VERSION.REVISION"
				    " (numbers from 1, as proc versions lists"
				    " them), not '%s'", to);
	f = json_pack("{ss}", "name", name);
	if (f != NULL && to != NULL)
		json_object_set_new(f, "to_version",
				    json_integer((json_int_t)version));
	if (f != NULL && to != NULL && revision != 0)
		json_object_set_new(f, "to_revision",
				    json_integer((json_int_t)revision));
	return kp_ctl_proc_call(ctx, "proc_rollback", f, "proc");
}

int kp_ctl_proc_versions(struct kp_ctl_ctx *ctx, int argc, char **argv)
{
	return simple(ctx, "versions", argc, argv, "versions");
}

/*
 * Connects and runs op with fields (stolen) into resp. Returns 0, or an
 * exit status after printing the error (c is closed then).
 */
static int call(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c,
		const char *op, json_t *fields, struct kp_ctl_resp *resp)
{
	struct kp_error err;
	int rc;

	kp_ctl_resp_init(resp);
	if (fields == NULL)
		return kp_ctl_fail(ctx, "out of memory");
	rc = kp_ctl_connect(ctx, c);
	if (rc == 0 && kp_ctl_client_call(c, op, fields, resp, &err) != 0)
		rc = kp_ctl_fail(ctx, "%s", err.msg);
	json_decref(fields);
	if (rc != 0) {
		kp_ctl_resp_destroy(resp);
		kp_ctl_client_close(c);
	}
	return rc;
}

int kp_ctl_proc_gc(struct kp_ctl_ctx *ctx, int argc, char **argv)
{
	struct kp_ctl_client c = { .fd = -1 };
	struct kp_ctl_resp resp;
	const char *name;
	uint64_t removed;
	int rc = name_only(ctx, "gc", argc, argv, NULL, "", &name);

	if (rc == 0)
		rc = call(ctx, &c, "proc_gc", json_pack("{ss}", "name", name), &resp);
	if (rc != 0)
		return rc;
	if (kp_ctl_mp_get_u64(resp.map, "removed", &removed) != 0)
		rc = kp_ctl_fail(ctx, "proc_gc: response without removed");
	else
		rc = kp_ctl_print(ctx, json_pack("{sI}", "removed",
						 (json_int_t)removed));
	kp_ctl_resp_destroy(&resp);
	kp_ctl_client_close(&c);
	return rc;
}

/* Prints each plan entry with "executed" added. */
static int print_plan(struct kp_ctl_ctx *ctx, const msgpack_object *map)
{
	const msgpack_object *plan = kp_ctl_mp_get(map, "plan");
	int executed = kp_ctl_mp_is_true(kp_ctl_mp_get(map, "executed"));
	int rc = 0;

	if (plan == NULL || plan->type != MSGPACK_OBJECT_ARRAY)
		return kp_ctl_fail(ctx, "proc_reset: response without plan");
	for (uint32_t i = 0; rc == 0 && i < plan->via.array.size; i++) {
		const msgpack_object *e = &plan->via.array.ptr[i];
		const char *const keys[] = { "topic", "partition", "current",
					     "new" };
		json_t *o = json_object();

		for (size_t k = 0; o != NULL && k < 4; k++) {
			const msgpack_object *v = kp_ctl_mp_get(e, keys[k]);

			json_object_set_new(o, keys[k], v ? kp_ctl_mp_to_json(v)
							  : json_null());
		}
		if (o != NULL)
			json_object_set_new(o, "executed", json_boolean(executed));
		rc = kp_ctl_print(ctx, o);
	}
	return rc;
}

int kp_ctl_proc_reset(struct kp_ctl_ctx *ctx, int argc, char **argv)
{
	struct kp_ctl_client c = { .fd = -1 };
	struct kp_ctl_resp resp;
	const char *name, *to = NULL;
	int execute = 0, rc;
	const struct kp_ctl_opt opts[] = {
		{ "to", &to, NULL },
		{ "execute", NULL, &execute },
		{ NULL, NULL, NULL },
	};
	json_t *pos = NULL;

	rc = name_only(ctx, "reset", argc, argv, opts,
		       "--to earliest|latest|OFFSET|@TIME [--execute]", &name);
	if (rc == 0 && to == NULL)
		rc = kp_ctl_usage(ctx, "kappactl proc reset NAME --to"
				  " earliest|latest|OFFSET|@TIME [--execute]");
	if (rc == 0)
		rc = kp_ctl_proc_position(ctx, "to", to, ~0u, &pos);
	if (rc == 0)
		rc = call(ctx, &c, "proc_reset",
			  json_pack("{ss so sb}", "name", name, "to", pos,
				    "execute", execute), &resp);
	if (rc != 0)
		return rc;
	rc = print_plan(ctx, resp.map);
	kp_ctl_resp_destroy(&resp);
	kp_ctl_client_close(&c);
	return rc;
}

/* The compact JSON text of a verify value: msgpack bytes decoded. */
static json_t *diff_value(const msgpack_object *v)
{
	msgpack_unpacked up;
	const char *p;
	size_t len, off = 0;
	json_t *j;

	if (v == NULL || v->type == MSGPACK_OBJECT_NIL)
		return json_null();
	if (v->type != MSGPACK_OBJECT_BIN || kp_ctl_mp_bytes(v, &p, &len) != 0)
		return kp_ctl_mp_to_json(v);
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, p, len, &off) == MSGPACK_UNPACK_SUCCESS &&
	    off == len)
		j = kp_ctl_mp_to_json(&up.data);
	else
		j = kp_ctl_bytes_to_json(p, len);
	msgpack_unpacked_destroy(&up);
	return j;
}

/* The difference as JSON, live and replay decoded. */
static json_t *diff_json(const msgpack_object *d)
{
	json_t *o = kp_ctl_mp_to_json(d);

	if (o != NULL && json_is_object(o)) {
		json_object_set_new(o, "live", diff_value(kp_ctl_mp_get(d, "live")));
		json_object_set_new(o, "replay",
				    diff_value(kp_ctl_mp_get(d, "replay")));
	}
	return o;
}

/* Prints the one-line summary of difference d (JSON) on stderr. */
static void diff_summary(struct kp_ctl_ctx *ctx, const json_t *d)
{
	char *live = json_dumps(json_object_get(d, "live"),
				JSON_COMPACT | JSON_ENCODE_ANY);
	char *replay = json_dumps(json_object_get(d, "replay"),
				  JSON_COMPACT | JSON_ENCODE_ANY);
	const char *kind = json_string_value(json_object_get(d, "kind"));
	const char *lv = live ? live : "?", *rv = replay ? replay : "?";

	if (kind != NULL && strcmp(kind, "view") == 0)
		kp_ctl_fail(ctx, "differs at view key %s: live %s, replay %s",
			    json_string_value(json_object_get(d, "key")),
			    lv, rv);
	else
		kp_ctl_fail(ctx, "differs at %s/%lld offset %lld: live %s, replay %s",
			    json_string_value(json_object_get(d, "topic")),
			    (long long)json_integer_value(json_object_get(d, "partition")),
			    (long long)json_integer_value(json_object_get(d, "offset")),
			    lv, rv);
	free(live);
	free(replay);
}

int kp_ctl_proc_verify(struct kp_ctl_ctx *ctx, int argc, char **argv)
{
	struct kp_ctl_client c = { .fd = -1 };
	struct kp_ctl_resp resp;
	const char *name, *from = NULL, *to = NULL;
	const struct kp_ctl_opt opts[] = {
		{ "from", &from, NULL },
		{ "to", &to, NULL },
		{ NULL, NULL, NULL },
	};
	json_t *f = NULL, *pos = NULL, *d;
	int rc = name_only(ctx, "verify", argc, argv, opts,
			   "[--from earliest|OFFSET|@TIME] [--to @TIME]", &name);

	if (rc == 0 && (f = json_pack("{ss}", "name", name)) == NULL)
		rc = kp_ctl_fail(ctx, "out of memory");
	if (rc == 0 && from != NULL &&
	    (rc = kp_ctl_proc_position(ctx, "from", from,
				       ~(unsigned)KP_CTL_ALLOW_LATEST, &pos)) == 0)
		json_object_set_new(f, "from", pos);
	if (rc == 0 && to != NULL &&
	    (rc = kp_ctl_proc_position(ctx, "to", to, KP_CTL_ALLOW_TIME,
				       &pos)) == 0)
		json_object_set_new(f, "to", pos);
	if (rc != 0) {
		json_decref(f);
		return rc;
	}
	rc = call(ctx, &c, "proc_verify", f, &resp);
	if (rc != 0)
		return rc;
	if (kp_ctl_mp_is_true(kp_ctl_mp_get(resp.map, "identical"))) {
		fputs("identical\n", ctx->out);
	} else {
		const msgpack_object *dm = kp_ctl_mp_get(resp.map, "difference");

		d = dm && dm->type != MSGPACK_OBJECT_NIL ? diff_json(dm) : json_null();
		rc = kp_ctl_print(ctx, json_pack("{sbsO}", "identical", 0,
						 "difference", d));
		if (rc == 0 && json_is_object(d))
			diff_summary(ctx, d);
		else if (rc == 0)
			kp_ctl_fail(ctx, "the replay differs from the live version");
		json_decref(d);
		rc = KP_CTL_EXIT_FAIL;
	}
	kp_ctl_resp_destroy(&resp);
	kp_ctl_client_close(&c);
	return rc;
}
