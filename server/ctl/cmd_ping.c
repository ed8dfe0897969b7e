/*
 * cmd_ping.c - `kappactl ping`: asks the server for its version and prints
 * the response without its id, e.g. {"ok":true,"version":"0.1.0"}.
 */
#include "cmd.h"

#include "json_mp.h"
#include "mpget.h"

int kp_ctl_cmd_ping(struct kp_ctl_ctx *ctx, int argc, char **argv)
{
	struct kp_ctl_client c;
	struct kp_ctl_resp resp;
	struct kp_error err;
	const char *pos[1];
	int npos, rc;
	json_t *out;

	rc = kp_ctl_args_parse(ctx, argc, argv, NULL, pos, 0, &npos);
	if (rc != 0)
		return rc;
	rc = kp_ctl_connect(ctx, &c);
	if (rc != 0)
		return rc;
	kp_ctl_resp_init(&resp);
	if (kp_ctl_client_call(&c, "ping", NULL, &resp, &err) != 0) {
		rc = kp_ctl_fail(ctx, "%s", err.msg);
	} else {
		out = kp_ctl_mp_to_json(resp.map);
		if (out != NULL)
			json_object_del(out, "id");
		rc = kp_ctl_print(ctx, out);
	}
	kp_ctl_resp_destroy(&resp);
	kp_ctl_client_close(&c);
	return rc;
}
