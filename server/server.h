/*
 * server.h - kappad's runtime: the event loop, listeners, connections, the
 * catalog and the group table, wired together.
 *
 * Everything here runs on the loop thread. Disk syncs run on libuv's worker
 * threads (writer.h, the groups saver) and report back to the loop.
 */
#ifndef KP_SERVER_H
#define KP_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "buf.h"
#include "config.h"
#include "error.h"
#include "groups.h"
#include "proc_metrics.h"
#include "topic.h"

struct kp_conn;
struct kp_http;
struct kp_procs;
struct kp_slot;

/* Counters exported as metrics. */
struct kp_server_stats {
	uint64_t connections_total;   /* accepted */
	uint64_t connections_open;    /* currently open */
	uint64_t bytes_in;            /* request bytes read */
	uint64_t bytes_out;           /* response bytes written */
	uint64_t requests;            /* requests handled */
	uint64_t request_errors;      /* error responses sent */
	uint64_t fsyncs;              /* partition sync jobs completed */
};

/* A commit of group offsets waiting for groups.db to reach the disk. */
struct kp_group_waiter {
	struct kp_group_waiter *next;
	struct kp_slot *slot;         /* completed when saved */
	uint64_t generation;          /* table version it needs on disk */
};

struct kp_server {
	uv_loop_t *loop;              /* borrowed */
	struct kp_config cfg;         /* copied at init */
	struct kp_catalog *catalog;   /* owned */
	struct kp_groups *groups;     /* owned */
	struct kp_http *http;         /* owned; NULL when --http off */
	struct kp_procs *procs;       /* owned; the processor runtime */
	uv_tcp_t listener;            /* protocol listener */
	uv_signal_t sigterm;          /* graceful stop */
	uv_signal_t sigint;           /* graceful stop */
	uv_timer_t tick;              /* fsync=interval and retention */
	struct kp_conn *conns;        /* open connections, linked */
	struct kp_server_stats stats;
	uint64_t inflight_total;      /* unanswered request bytes, all conns */
	struct kp_health_state health; /* between /health requests (metrics.h) */
	int jobs_in_flight;           /* worker-thread jobs not yet done */
	bool stopping;                /* a stop signal arrived */
	int64_t stop_started_ms;      /* when it did */
	int64_t last_retention_ms;    /* when retention last ran */
	/* group offsets persistence */
	uint64_t groups_generation;   /* bumped by every change */
	uint64_t groups_saved;        /* generation known on disk */
	bool groups_saving;           /* a save job is in flight */
	int64_t last_groups_retry_ms; /* when a failed save was last retried */
	struct kp_group_waiter *group_waiters;
	struct kp_topic **doomed;     /* deleted topics awaiting release */
	size_t doomed_count;
};

/*
 * Opens the data directory, binds the listeners and installs signal
 * handlers on loop. Returns 0 or an error with err set (nothing left open).
 */
int kp_server_init(struct kp_server *s, uv_loop_t *loop,
		   const struct kp_config *cfg, struct kp_error *err);

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

/* Milliseconds since the epoch (the server's clock for record ts). */
int64_t kp_server_now_ms(const struct kp_server *s);

/*
 * Deletes a topic: takes it out of the catalog now, fails its waiters, and
 * releases its files once no sync job is in flight on it.
 */
int kp_server_delete_topic(struct kp_server *s, struct kp_topic *t,
			   struct kp_error *err);

/* Asks for groups.db to be saved; slot (may be NULL) completes once it is. */
void kp_server_save_groups(struct kp_server *s, struct kp_slot *slot);

/* Releases deleted topics that nothing refers to any more. */
void kp_server_reap_topics(struct kp_server *s);

#endif
