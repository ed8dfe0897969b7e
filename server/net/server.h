/*
 * server.h - the protocol server: the listener and its connections, the
 * request handlers' view of the store and the processor runtime, the tick
 * that drives periodic work, signals, and the graceful stop.
 *
 * Everything here runs on the loop thread. Disk syncs run on libuv's worker
 * threads (log/store.h) and report back to the loop. The HTTP listener
 * (obs/) sits above this layer: kappad.c starts it on a running server and
 * is told of the stop through on_stop.
 */
#ifndef KP_SERVER_H
#define KP_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "config.h"
#include "conn.h"
#include "tls.h"
#include "base/error.h"
#include "log/store.h"
#include "proc/proc_metrics.h"

struct kp_procs;
struct kp_server;

/*
 * Handles one request frame body (borrowed for the call) into slot: the
 * dispatcher of net/handler.h, given to kp_server_init by kappad.c.
 */
typedef void (*kp_server_frame_fn)(struct kp_server *s, struct kp_slot *slot,
				   const char *body, size_t len);

struct kp_server {
	uv_loop_t *loop;              /* borrowed */
	struct kp_config cfg;         /* copied at init */
	struct kp_store store;        /* the log: topics, groups, writes */
	struct kp_procs *procs;       /* owned; the processor runtime */
	struct kp_conns conns;        /* protocol connections */
	struct kp_auth auth;          /* tokens (none: single-user mode) */
	struct kp_tls *tls;           /* owned; NULL: plain TCP (net/tls.h) */
	kp_server_frame_fn handle;    /* the request dispatcher */
	uv_tcp_t listener;            /* protocol listener */
	uv_signal_t sigterm;          /* graceful stop */
	uv_signal_t sigint;           /* graceful stop */
	uv_timer_t tick;              /* periodic work of store and procs */
	struct kp_health_state health; /* between /health requests (obs/) */
	bool stopping;                /* a stop signal arrived */
	int64_t stop_started_ms;      /* when it did */
	void (*on_stop)(void *arg);   /* told when the stop starts, or NULL */
	void *on_stop_arg;
};

/*
 * Opens the data directory, binds the listener and installs signal
 * handlers on loop; requests go to handle. Returns 0 or an error with err
 * set (nothing left open).
 */
int kp_server_init(struct kp_server *s, uv_loop_t *loop,
		   const struct kp_config *cfg, kp_server_frame_fn handle,
		   struct kp_error *err);

/*
 * Runs the loop until a stop signal: then stops accepting, finishes the
 * writes in flight, answers what it can, closes everything (fsync) and
 * returns 0.
 */
int kp_server_run(struct kp_server *s);

/* Starts the graceful stop (what SIGTERM does). */
void kp_server_stop(struct kp_server *s);

/* Frees what init opened. */
void kp_server_destroy(struct kp_server *s);

#endif
