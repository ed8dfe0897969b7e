/*
 * kappad.c - the server program: parse settings, run the server.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <uv.h>

#include "config.h"
#include "log.h"
#include "server.h"

int main(int argc, char **argv)
{
	struct kp_config cfg;
	struct kp_server srv;
	struct kp_error err;
	uv_loop_t *loop = uv_default_loop();
	int rc;

	signal(SIGPIPE, SIG_IGN);
	kp_config_default(&cfg);
	rc = kp_config_parse_args(&cfg, argc, argv, &err);
	if (rc == 1)
		return 0;
	if (rc != 0) {
		fprintf(stderr, "kappad: %s\n", err.msg);
		return 2;
	}
	kp_log_set_level(cfg.log_level);
	if (kp_server_init(&srv, loop, &cfg, &err) != 0) {
		kp_log_error("server", "cannot start: %s", err.msg);
		return 1;
	}
	kp_server_run(&srv);
	kp_server_destroy(&srv);
	uv_loop_close(loop);
	kp_log_info("server", "stopped");
	return 0;
}
