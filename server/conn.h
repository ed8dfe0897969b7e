/*
 * conn.h - one client connection: frames in, ordered responses out.
 *
 * Each request read gets a slot in the connection's queue; responses leave
 * in request order as their slots become ready (a produce waiting for its
 * fsync holds back the responses behind it). A slot is reference-counted:
 * the queue holds one reference and each wait (writer.h) holds one, so a
 * connection can close while its requests still wait on the disk.
 *
 * Frames are handled from the read callback, or (when reading resumes with
 * frames already buffered) from an idle handle on the next loop turn, never
 * from inside a response's completion: handlers do not re-enter.
 *
 * Back-pressure: while the requests in flight on a connection (and the
 * responses queued behind an unanswered one) exceed
 * max_inflight_bytes, or on all connections together exceed
 * max_inflight_total_bytes, or the client is not reading its responses,
 * the connection stops reading its socket.
 */
#ifndef KP_CONN_H
#define KP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "buf.h"

struct kp_server;

struct kp_slot {
	struct kp_slot *next;    /* next in the connection's queue */
	struct kp_conn *conn;    /* NULL once the connection is gone */
	struct kp_buf resp;      /* the whole response frame, once ready */
	uint64_t id;             /* the request's id */
	size_t cost;             /* bytes counted against the connection */
	int refs;                /* queue + waits */
	int waits;               /* waits still outstanding */
	bool ready;              /* resp holds the final response */
	size_t resp_cost;        /* response bytes counted while queued */
	uint32_t generation;     /* fetch of a logical topic: its version */
	char *logical;           /* that topic's name (owned), else NULL */
};

struct kp_conn {
	uv_tcp_t tcp;            /* first: the handle's data is the conn */
	uv_idle_t idle;          /* runs buffered frames on the next turn */
	int open_handles;        /* tcp + idle not yet closed */
	struct kp_server *srv;   /* borrowed */
	struct kp_conn *next;    /* in the server's list */
	struct kp_conn *prev;
	struct kp_buf in;        /* bytes read, not yet a whole frame */
	struct kp_slot *head;    /* oldest unanswered request */
	struct kp_slot *tail;
	uint64_t inflight;       /* bytes of unanswered requests */
	size_t writing;          /* bytes handed to uv_write, not yet done */
	bool reading;            /* uv_read_start is active */
	bool closing;            /* uv_close called */
	bool fatal;              /* framing error or EOF: close after flushing */
	bool processing;         /* conn_process is on the stack */
};

/* Accepts a pending connection on listener and starts reading. */
void kp_conn_accept(struct kp_server *s, uv_stream_t *listener);

/*
 * Marks slot ready with the response now in slot->resp and sends what can
 * be sent. Safe on a slot whose connection is gone (it is just dropped).
 */
void kp_slot_ready(struct kp_slot *slot);

/* Takes / drops a reference on a slot (drop frees at zero). */
void kp_slot_ref(struct kp_slot *slot);
void kp_slot_unref(struct kp_slot *slot);

/* Replaces the response of a waiting slot with an error frame. */
void kp_slot_set_error(struct kp_slot *slot, int code, const char *message);

/*
 * Resumes reading on connections stopped because the requests in flight on
 * all connections together passed max_inflight_total_bytes, once that
 * total has fallen to half. Called periodically.
 */
void kp_conn_resume_all(struct kp_server *s);

/* Stops reading new requests (shutdown). */
void kp_conn_stop_reading(struct kp_conn *c);

/* true when every request on c is answered and written. */
bool kp_conn_idle(const struct kp_conn *c);

/* Closes the connection once its writes are done. */
void kp_conn_close(struct kp_conn *c);

#endif
