/*
 * kappad.c - the server program: parse settings, then wire the layers
 * together: the protocol server (net/) with its request dispatcher, and the
 * HTTP listener (obs/) on top of it, and tell the service manager (systemd,
 * net/notify.h) when the server is ready and when it stops. Run with
 * --worker, it is a processor's worker process instead (proc/wk_main.h).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "base/logging.h"
#include "net/config.h"
#include "net/handler.h"
#include "net/notify.h"
#include "net/server.h"
#include "obs/http.h"
#include "proc/wk_main.h"

#ifndef KP_VERSION_STRING
#define KP_VERSION_STRING "unknown"
#endif

static void on_server_stop(void *arg)
{
	kp_notify_stopping("stopping: finishing writes, committing processors");
	if (arg != NULL)
		kp_http_stop(arg);
}

/* 1 when argv asks for the version (printed), else 0. */
static int print_version(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--version") == 0) {
			printf("kappad %s\n", KP_VERSION_STRING);
			return 1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct kp_config cfg;
	struct kp_server srv;
	struct kp_http *http = NULL;
	struct kp_error err;
	uv_loop_t *loop = uv_default_loop();
	int rc;

	/* A processor's worker process (started by kappad itself). */
	if (argc > 1 && strcmp(argv[1], KP_WORKER_ARG) == 0)
		return kp_worker_main(argc, argv);
	if (print_version(argc, argv))
		return 0;
	signal(SIGPIPE, SIG_IGN);
	kp_config_default(&cfg);
	rc = kp_config_parse_args(&cfg, argc, argv, &err);
	if (rc == 1) {
		fputs("   or: kappad --version | --help\n", stdout);
		return 0;
	}
	if (rc != 0) {
		fprintf(stderr, "kappad: %s\n", err.msg);
		return 2;
	}
	kp_log_set_level(cfg.log_level);
	kp_notify_status("opening %s (recovery)", cfg.data);
	if (kp_server_init(&srv, loop, &cfg, kp_handle_frame, &err) != 0) {
		kp_log_error("server", "cannot start: %s", err.msg);
		kp_notify_status("cannot start: %s", err.msg);
		return 1;
	}
	rc = cfg.http_port != 0 ? kp_http_start(&srv, &http, &err) : 0;
	if (rc != 0) {
		kp_log_error("server", "cannot start: %s", err.msg);
		kp_notify_status("cannot start: %s", err.msg);
		kp_server_stop(&srv);
	} else {
		srv.on_stop = on_server_stop;
		srv.on_stop_arg = http;
		if (http != NULL)
			kp_notify_ready("serving on %s:%d and http %s:%d, data in %s",
					cfg.listen_host, cfg.listen_port,
					cfg.http_host, cfg.http_port, cfg.data);
		else
			kp_notify_ready("serving on %s:%d (http off), data in %s",
					cfg.listen_host, cfg.listen_port,
					cfg.data);
	}
	kp_server_run(&srv);
	kp_server_destroy(&srv);
	kp_http_free(http);
	uv_loop_close(loop);
	if (rc != 0)
		return 1;
	kp_log_info("server", "stopped");
	return 0;
}
