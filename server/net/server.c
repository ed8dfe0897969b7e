/*
 * server.c - the protocol server's wiring: loop, listener, signals, the
 * periodic tick, and the graceful stop.
 */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/logging.h"
#include "tls.h"
#include "proc/proc.h"

#define TICK_MS 50
#define DRAIN_TIMEOUT_MS 10000
/* Processors get this long to finish their job and commit; a worker still
 * busy then is killed, so SIGTERM stops the server within seconds. */
#define PROC_DRAIN_MS 2500

static void on_connection(uv_stream_t *listener, int status)
{
	struct kp_server *s = listener->data;

	if (status != 0) {
		kp_log_warn("server", "accept failed: %s", uv_strerror(status));
		return;
	}
	kp_conn_accept(&s->conns, listener);
}

static void drain_check(struct kp_server *s, int64_t now);

static void on_tick(uv_timer_t *timer)
{
	struct kp_server *s = timer->data;
	int64_t now = kp_clock_now_ms();

	if (s->stopping) {
		drain_check(s, now);
		return;
	}
	kp_store_tick(&s->store, now);
	kp_procs_tick(s->procs, now);
	kp_conns_sweep(&s->conns);
	kp_conns_resume(&s->conns);
}

static void on_signal(uv_signal_t *sig, int signum)
{
	struct kp_server *s = sig->data;

	kp_log_info("server", "received %s; stopping",
		    signum == SIGTERM ? "SIGTERM" : "SIGINT");
	kp_server_stop(s);
}

static void on_handle_closed(uv_handle_t *h)
{
	(void)h;
}

void kp_server_stop(struct kp_server *s)
{
	if (s->stopping)
		return;
	s->stopping = true;
	s->stop_started_ms = kp_clock_now_ms();
	uv_close((uv_handle_t *)&s->listener, on_handle_closed);
	if (s->on_stop != NULL)
		s->on_stop(s->on_stop_arg);
	kp_conns_stop_reading(&s->conns);
	kp_procs_quiesce(s->procs);
	kp_store_answer_fetches(&s->store);
	kp_store_sync_all(&s->store);
}

static void drain_check(struct kp_server *s, int64_t now)
{
	bool timed_out = now - s->stop_started_ms > DRAIN_TIMEOUT_MS;
	bool procs_done = kp_procs_idle(s->procs) ||
			  now - s->stop_started_ms > PROC_DRAIN_MS;

	if ((kp_store_busy(&s->store) || !procs_done) && !timed_out)
		return;
	if (!kp_conns_close_idle(&s->conns, timed_out) ||
	    kp_store_busy(&s->store))
		return;
	kp_procs_close(s->procs);
	s->procs = NULL;
	uv_close((uv_handle_t *)&s->tick, on_handle_closed);
	uv_close((uv_handle_t *)&s->sigterm, on_handle_closed);
	uv_close((uv_handle_t *)&s->sigint, on_handle_closed);
}

static int listen_on(struct kp_server *s, struct kp_error *err)
{
	struct sockaddr_storage addr;
	int rc;

	rc = uv_ip4_addr(s->cfg.listen_host, s->cfg.listen_port,
			 (struct sockaddr_in *)&addr);
	if (rc != 0)
		rc = uv_ip6_addr(s->cfg.listen_host, s->cfg.listen_port,
				 (struct sockaddr_in6 *)&addr);
	if (rc != 0)
		return kp_error_set(err, KP_ECONFIG, "bad listen host '%s'",
				    s->cfg.listen_host);
	uv_tcp_init(s->loop, &s->listener);
	s->listener.data = s;
	rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
	if (rc != 0)
		return kp_error_set(err, rc, "cannot listen on %s:%d: %s",
				    s->cfg.listen_host, s->cfg.listen_port,
				    uv_strerror(rc));
	return 0;
}

/* The TLS context of tls_cert / tls_key / tls_client_ca, when set. */
static int open_tls(struct kp_server *s, struct kp_error *err)
{
	const struct kp_config *cfg = &s->cfg;
	bool cert = cfg->tls_cert[0] != '\0', key = cfg->tls_key[0] != '\0';
	int rc;

	if (!cert && !key) {
		if (cfg->tls_client_ca[0] != '\0')
			return kp_error_set(err, KP_ECONFIG,
					    "tls_client_ca needs tls_cert and tls_key");
		return 0;
	}
	if (!cert || !key)
		return kp_error_set(err, KP_ECONFIG,
				    "TLS needs both tls_cert and tls_key");
	rc = kp_tls_open(&s->tls, cfg->tls_cert, cfg->tls_key,
			 cfg->tls_client_ca[0] != '\0' ? cfg->tls_client_ca
							: NULL, err);
	if (rc != 0)
		return rc;
	s->conns.tls = s->tls;
	kp_log_info("server", "TLS on (certificate %s%s)", cfg->tls_cert,
		    cfg->tls_client_ca[0] != '\0'
			    ? "; clients need a certificate" : "");
	return 0;
}

/*
 * Loads the tokens and decides who may connect: in single-user mode only
 * loopback clients, each of them admin. A listener other machines can
 * reach needs tokens and TLS both; without them kappad does not start.
 */
static int open_auth(struct kp_server *s, struct kp_error *err)
{
	const struct kp_config *cfg = &s->cfg;
	bool tokens = cfg->auth_tokens_file[0] != '\0';
	const char *exposed = NULL;
	const char *instead = "listen on 127.0.0.1";
	int rc;

	if (!kp_host_is_loopback(cfg->listen_host)) {
		exposed = cfg->listen_host;
	} else if (cfg->http_port != 0 &&
		   !kp_host_is_loopback(cfg->http_host)) {
		exposed = cfg->http_host;
		instead = "keep --http on 127.0.0.1 (or off)";
	}
	if (exposed != NULL && !(tokens && cfg->tls_cert[0] != '\0'))
		return kp_error_set(err, KP_ECONFIG,
				    "%s is reachable from other machines: serving it needs auth_tokens_file and TLS (tls_cert, tls_key); or %s",
				    exposed, instead);
	rc = open_tls(s, err);
	if (rc != 0)
		return rc;
	if (tokens) {
		rc = kp_auth_load(&s->auth, cfg->auth_tokens_file, err);
		if (rc != 0) {
			kp_tls_free(s->tls);
			s->tls = NULL;
			return rc;
		}
		s->conns.default_role = KP_ROLE_NONE;
		kp_log_info("server", "%zu tokens from %s: clients authenticate",
			    s->auth.ntokens, cfg->auth_tokens_file);
		return 0;
	}
	s->conns.default_role = KP_ROLE_ADMIN;
	s->conns.loopback_only = true;
	kp_log_warn("server", "single-user mode (no auth_tokens_file): clients on loopback only, and every one is admin, so any local user can administer this server");
	return 0;
}

static void on_frame(void *arg, struct kp_slot *slot, const char *body,
		     size_t len)
{
	struct kp_server *s = arg;

	s->handle(s, slot, body, len);
}

static void on_visible(void *arg, struct kp_topic_partition *tp)
{
	kp_procs_notify(arg, tp);
}

static int open_procs(struct kp_server *s, struct kp_error *err)
{
	struct kp_proc_env env;
	char dir[KP_PATH_MAX + 16];

	memset(&env, 0, sizeof(env));
	env.store = &s->store;
	env.data_dir = s->cfg.data;
	env.view_cache_bytes = (size_t)s->cfg.view_cache_bytes;
	env.view_max_bytes = s->cfg.view_max_bytes;
	env.topic_defaults.partitions = 1;
	env.topic_defaults.fsync_interval_ms = s->cfg.fsync_interval_ms;
	env.topic_defaults.log = s->cfg.topic_defaults;
	env.now_ms = kp_clock_now_ms;
	env.native_plugins = s->cfg.native_plugins;
	env.max_value_bytes = s->cfg.max_frame_bytes;
	if (kp_auth_enabled(&s->auth) &&
	    strcmp(s->cfg.processors_dir, "any") != 0) {
		if (s->cfg.processors_dir[0] != '\0')
			snprintf(dir, sizeof(dir), "%s", s->cfg.processors_dir);
		else if (snprintf(dir, sizeof(dir), "%s/processors",
				  s->cfg.data) >= (int)sizeof(dir))
			return kp_error_set(err, KP_ECONFIG,
					    "data: path too long");
		env.processors_dir = dir;
	}
	return kp_procs_open(&env, &s->procs, err);
}

int kp_server_init(struct kp_server *s, uv_loop_t *loop,
		   const struct kp_config *cfg, kp_server_frame_fn handle,
		   struct kp_error *err)
{
	int rc;

	memset(s, 0, sizeof(*s));
	s->loop = loop;
	s->handle = handle;
	s->cfg = *cfg;
	s->conns.loop = loop;
	s->conns.max_frame_bytes = cfg->max_frame_bytes;
	s->conns.max_inflight_bytes = cfg->max_inflight_bytes;
	s->conns.max_inflight_total_bytes = cfg->max_inflight_total_bytes;
	s->conns.max_connections = cfg->max_connections;
	s->conns.frame_timeout_ms = cfg->client_frame_timeout_ms;
	s->conns.on_frame = on_frame;
	s->conns.on_frame_arg = s;
	rc = open_auth(s, err);
	if (rc != 0)
		return rc;
	rc = kp_store_open(&s->store, loop, cfg->data, cfg->retention_check_ms,
			   kp_clock_now_ms(), err);
	if (rc != 0) {
		kp_auth_free(&s->auth);
		kp_tls_free(s->tls);
		return rc;
	}
	rc = open_procs(s, err);
	if (rc == 0) {
		s->store.writer.on_visible = on_visible;
		s->store.writer.on_visible_arg = s->procs;
		rc = listen_on(s, err);
	}
	if (rc != 0) {
		if (uv_is_active((uv_handle_t *)&s->listener) ||
		    s->listener.loop != NULL)
			uv_close((uv_handle_t *)&s->listener, on_handle_closed);
		uv_run(loop, UV_RUN_NOWAIT);
		kp_server_destroy(s);
		return rc;
	}
	uv_timer_init(loop, &s->tick);
	s->tick.data = s;
	uv_timer_start(&s->tick, on_tick, TICK_MS, TICK_MS);
	uv_signal_init(loop, &s->sigterm);
	s->sigterm.data = s;
	uv_signal_start(&s->sigterm, on_signal, SIGTERM);
	uv_signal_init(loop, &s->sigint);
	s->sigint.data = s;
	uv_signal_start(&s->sigint, on_signal, SIGINT);
	kp_log_info("server", "listening on %s:%d, data in %s",
		    cfg->listen_host, cfg->listen_port, cfg->data);
	return 0;
}

int kp_server_run(struct kp_server *s)
{
	uv_run(s->loop, UV_RUN_DEFAULT);
	return 0;
}

void kp_server_destroy(struct kp_server *s)
{
	kp_procs_close(s->procs);
	s->procs = NULL;
	kp_store_close(&s->store);
	kp_auth_free(&s->auth);
	kp_tls_free(s->tls);
	s->tls = NULL;
}
