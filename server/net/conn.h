/*
 * conn.h - one client connection: frames in, ordered responses out.
 *
 * Each request read gets a slot (wire/slot.h) in the connection's queue;
 * responses leave in request order as their slots become ready (a produce
 * waiting for its fsync holds back the responses behind it). The request
 * itself is handed to the set's on_frame function: this file knows frames
 * and sockets, not operations.
 *
 * Frames are handled from the read callback, or (when reading resumes with
 * frames already buffered) from an idle handle on the next loop turn, never
 * from inside a response's completion: handlers do not re-enter.
 *
 * Back-pressure: while the requests in flight on a connection (and the
 * responses queued behind an unanswered one) exceed
 * max_inflight_bytes, or on all connections together exceed
 * max_inflight_total_bytes, or the client is not reading its responses,
 * the connection stops reading its socket. A frame counts from its first
 * bytes: once its header has come, its whole length is reserved against
 * both caps before more of it is read (a connection that gets no room
 * waits, not reading, holding only what it had read). Frames being
 * received may together take at most 3/4 of the total cap, so whole
 * requests of other clients are still read while many large frames
 * trickle in; a connection whose frame is admitted reads on until the
 * frame is whole (or client_frame_timeout_ms closes it).
 *
 * A client that connects while max_connections are open is told
 * TOO_MANY_CONNECTIONS and closed, except that with tokens configured
 * KP_CONN_ADMIN_RESERVE more are let in on probation: their first request
 * must authenticate them as admin (net/handler.c enforces it).
 *
 * Large response buffers are kept for reuse once written (at most
 * KP_CONN_SPARES of them, each of KP_CONN_SPARE_MIN..KP_CONN_SPARE_MAX
 * bytes): a fetch answers into one that is already mapped and warm instead
 * of faulting in fresh pages for every megabyte it sends.
 */
#ifndef KP_CONN_H
#define KP_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "auth.h"
#include "base/buf.h"
#include "wire/slot.h"

struct kp_conn;
struct kp_tls;
struct kp_tls_session;

/* Connections past max_connections kept for admins (auth mode only). */
#define KP_CONN_ADMIN_RESERVE 8

/* Response buffers kept for reuse, and the capacities kept. */
#define KP_CONN_SPARES 8
#define KP_CONN_SPARE_MIN ((size_t)256 << 10)
#define KP_CONN_SPARE_MAX ((size_t)4 << 20)

/* Counters exported as metrics (obs/metrics.c). */
struct kp_conn_stats {
	uint64_t connections_total;   /* accepted */
	uint64_t connections_open;    /* currently open */
	uint64_t bytes_in;            /* request bytes read */
	uint64_t bytes_out;           /* response bytes written */
	uint64_t requests;            /* requests handled */
	uint64_t request_errors;      /* error responses sent */
	uint64_t connections_refused; /* past max_connections */
	uint64_t frame_timeouts;      /* closed: a frame not whole in time */
	uint64_t frames_waited;       /* frames that waited for room to be read */
	uint64_t auth_failures;       /* auth requests with no valid token */
	uint64_t forbidden;           /* requests refused for their role */
};

/*
 * Handles one whole request frame body (borrowed for the call) into slot;
 * the slot is made ready on return unless the handler left waits on it.
 */
typedef void (*kp_conn_frame_fn)(void *arg, struct kp_slot *slot,
				 const char *body, size_t len);

/* The open connections of one listener and what they share. */
struct kp_conns {
	uv_loop_t *loop;              /* borrowed */
	uint32_t max_frame_bytes;     /* largest accepted request frame */
	uint64_t max_inflight_bytes;  /* per connection */
	uint64_t max_inflight_total_bytes; /* all connections together */
	uint32_t max_connections;     /* open at once; 0 = no limit */
	uint32_t frame_timeout_ms;    /* a begun frame must be whole by then
					 (0 = no limit) */
	kp_conn_frame_fn on_frame;    /* the request handler */
	void *on_frame_arg;
	struct kp_conn *head;         /* open connections, linked */
	uint64_t inflight_total;      /* unanswered request bytes, all conns,
					 with the frames being received */
	uint64_t partial_total;       /* of which: frames being received */
	uint32_t waiting;             /* connections whose next frame waits,
					 unread, for room under the caps */
	enum kp_role default_role;    /* of a new connection: admin in
					 single-user mode, else none */
	bool loopback_only;           /* refuse peers not on loopback */
	struct kp_tls *tls;           /* borrowed; NULL: plain TCP */
	bool stopping;                /* no more reading (graceful stop) */
	struct kp_conn_stats stats;
	struct kp_buf spares[KP_CONN_SPARES]; /* written response buffers,
						 empty, kept for reuse */
	size_t nspares;               /* entries of spares in use */
};

struct kp_conn {
	uv_tcp_t tcp;            /* first: the handle's data is the conn */
	uv_idle_t idle;          /* runs buffered frames on the next turn */
	int open_handles;        /* tcp + idle not yet closed */
	struct kp_conns *set;    /* borrowed: the set it belongs to */
	struct kp_conn *next;    /* in the set's list */
	struct kp_conn *prev;
	struct kp_buf in;        /* bytes read, not yet a whole frame */
	struct kp_buf cipher;    /* TLS: records read, not yet decrypted */
	struct kp_tls_session *tls; /* owned; NULL: plain TCP */
	struct kp_slot *head;    /* oldest unanswered request */
	struct kp_slot *tail;
	uint64_t inflight;       /* bytes of unanswered requests */
	uint64_t reserved;       /* whole length of the frame being received,
				    counted in set->inflight_total (0: none) */
	uint64_t waiting_len;    /* a frame's length that found no room to
				    be read yet (0: none) */
	enum kp_role role;       /* what its requests may do (net/auth.h) */
	bool probation;          /* let in past max_connections: must
				    authenticate as admin first */
	uint64_t partial_since;  /* loop ms when the frame being received
				    began (0: none) */
	size_t writing;          /* bytes handed to uv_write, not yet done */
	bool reading;            /* uv_read_start is active */
	bool closing;            /* uv_close called */
	bool fatal;              /* framing error or EOF: close after flushing */
	bool processing;         /* conn_process is on the stack */
};

/* Accepts a pending connection on listener into set and starts reading. */
void kp_conn_accept(struct kp_conns *set, uv_stream_t *listener);

/*
 * Closes the connections that, while being read, have not completed a
 * frame begun frame_timeout_ms ago or more and wait for nothing of their
 * own (a sender of one byte a second holds nothing for long). Called
 * periodically.
 */
void kp_conns_sweep(struct kp_conns *set);

/*
 * Resumes reading on connections stopped because the requests in flight on
 * all connections together passed max_inflight_total_bytes, once that
 * total has fallen to half. Called periodically.
 */
void kp_conns_resume(struct kp_conns *set);

/*
 * Gives b (a response buffer about to be written from its start) room for
 * at least want bytes from a spare buffer of set when one is large enough
 * and b is not; b's contents are kept. Never fails: without a spare, b is
 * left as it is (it grows as usual when written to).
 */
void kp_conns_take_buf(struct kp_conns *set, struct kp_buf *b, size_t want);

/* Stops reading new requests on every connection of set (shutdown). */
void kp_conns_stop_reading(struct kp_conns *set);

/*
 * Closes the connections of set that have answered and written everything
 * (every one when force). Returns true when none is left open; the spare
 * buffers are then freed too.
 */
bool kp_conns_close_idle(struct kp_conns *set, bool force);

/* Stops reading new requests on c. */
void kp_conn_stop_reading(struct kp_conn *c);

/* true when every request on c is answered and written. */
bool kp_conn_idle(const struct kp_conn *c);

/*
 * Reads no more from c and closes it once everything asked before is
 * answered and written (a refusal that ends the connection).
 */
void kp_conn_close_after_reply(struct kp_conn *c);

/* Closes the connection once its writes are done. */
void kp_conn_close(struct kp_conn *c);

#endif
