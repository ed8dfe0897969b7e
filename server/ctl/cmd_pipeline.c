/*
 * cmd_pipeline.c - `kappactl proc graph` and `kappactl proc rollback NAME
 * --cascade`: processors that read other processors' outputs
 * (docs/PROTOCOL.md, proc_graph, proc_rollback).
 *
 * Output:
 *   graph                the pipeline as one JSON object:
 *                        {"processors","topics","edges"}
 *   rollback --cascade   {"proc":STATUS,"cascade":[{"name","version"}]}
 * `proc rollback` without --cascade is cmd_proc_version.c's.
 */
#include "cmd_proc.h"

#include <string.h>

#include "json_mp.h"
#include "mpget.h"

int kp_ctl_proc_graph(struct kp_ctl_ctx *ctx, int argc, char **argv)
{
	const char *pos[1];
	int npos, rc = kp_ctl_args_parse(ctx, argc, argv, NULL, pos, 0, &npos);

	if (rc != 0)
		return rc;
	return kp_ctl_proc_call(ctx, "proc_graph", json_object(), "graph");
}

/*
 * Runs op with fields (stolen) and prints the response's fields named in
 * keys (NULL-terminated) as one JSON object. Returns an exit status.
 */
int kp_ctl_proc_call_fields(struct kp_ctl_ctx *ctx, const char *op,
			    json_t *fields, const char *const *keys)
{
	struct kp_ctl_client c;
	struct kp_ctl_resp resp;
	json_t *out;
	int rc = kp_ctl_proc_request(ctx, op, fields, &c, &resp);

	if (rc != 0)
		return rc;
	out = json_object();
	for (size_t i = 0; out != NULL && keys[i] != NULL; i++) {
		const msgpack_object *o = kp_ctl_mp_get(resp.map, keys[i]);

		if (o != NULL)
			json_object_set_new(out, keys[i], kp_ctl_mp_to_json(o));
	}
	rc = kp_ctl_print(ctx, out);
	kp_ctl_resp_destroy(&resp);
	kp_ctl_client_close(&c);
	return rc;
}

static bool has_flag(int argc, char **argv, const char *flag)
{
	for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], flag) == 0)
			return true;
	}
	return false;
}

int kp_ctl_proc_rollback_any(struct kp_ctl_ctx *ctx, int argc, char **argv)
{
	static const char *const keys[] = { "proc", "cascade", NULL };
	const char *pos[1];
	int cascade = 0, npos, rc;
	const struct kp_ctl_opt opts[] = {
		{ "cascade", NULL, &cascade },
		{ NULL, NULL, NULL },
	};

	if (!has_flag(argc, argv, "--cascade"))
		return kp_ctl_proc_rollback(ctx, argc, argv);
	rc = kp_ctl_args_parse(ctx, argc, argv, opts, pos, 1, &npos);
	if (rc == 0 && npos != 1)
		rc = kp_ctl_usage(ctx, "kappactl proc rollback NAME --cascade"
				  " (each processor back to its previous"
				  " version; no --to)");
	if (rc != 0)
		return rc;
	return kp_ctl_proc_call_fields(ctx, "proc_rollback",
				       json_pack("{sssb}", "name", pos[0],
						 "cascade", 1),
				       keys);
}
