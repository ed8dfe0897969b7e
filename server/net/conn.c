/*
 * conn.c - connections: reading frames, ordered responses, back-pressure.
 */
#include "conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tls.h"
#include "base/alloc.h"
#include "base/logging.h"
#include "wire/proto.h"

#define READ_CHUNK (64 * 1024)

/* One uv_write of the responses that were ready together. */
struct write_req {
	uv_write_t req;          /* data is this struct */
	struct kp_conn *conn;
	struct kp_buf data;      /* owned bytes being written */
};

static void conn_update_reading(struct kp_conn *c);
static void conn_process(struct kp_conn *c);
static void on_idle(uv_idle_t *idle);

bool kp_conn_idle(const struct kp_conn *c)
{
	return c->head == NULL && c->writing == 0;
}

static void on_closed(uv_handle_t *h)
{
	struct kp_conn *c = h->data;

	if (--c->open_handles > 0)
		return;
	kp_buf_destroy(&c->in);
	kp_buf_destroy(&c->cipher);
	kp_tls_session_free(c->tls);
	kp_free(c);
}

static void conn_unlink(struct kp_conn *c)
{
	struct kp_conns *s = c->set;

	if (c->prev != NULL)
		c->prev->next = c->next;
	else if (s->head == c)
		s->head = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
}

/*
 * Lets the connections whose frame waits for room read on, as far as the
 * caps now allow: called when room is given back, so that a waiter does
 * not sit until the next tick (and the room is not seen empty meanwhile).
 */
static void wake_waiters(struct kp_conns *s)
{
	struct kp_conn *c, *next;

	for (c = s->head; c != NULL && s->waiting > 0; c = next) {
		next = c->next;
		if (c->waiting_len > 0)
			conn_update_reading(c);
	}
}

/* Gives back the room taken for the frame being received. */
static void release_reservation(struct kp_conn *c)
{
	bool gave = c->reserved > 0;

	c->set->inflight_total -= c->reserved;
	c->set->partial_total -= c->reserved;
	c->reserved = 0;
	if (gave && c->set->waiting > 0)
		wake_waiters(c->set);
}

void kp_conn_close_after_reply(struct kp_conn *c)
{
	c->fatal = true;
	kp_conn_stop_reading(c);
}

void kp_conn_close(struct kp_conn *c)
{
	struct kp_slot *slot, *next;

	if (c->closing)
		return;
	c->closing = true;
	c->set->stats.connections_open--;
	conn_unlink(c);
	for (slot = c->head; slot != NULL; slot = next) {
		next = slot->next;
		c->set->inflight_total -= slot->cost + slot->resp_cost;
		slot->conn = NULL;
		kp_slot_unref(slot);
	}
	c->head = c->tail = NULL;
	if (c->waiting_len > 0) {
		c->waiting_len = 0;
		c->set->waiting--;
	}
	release_reservation(c);
	uv_close((uv_handle_t *)&c->idle, on_closed);
	uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* Keeps a written response buffer for reuse, or frees it. */
static void spare_put(struct kp_conns *s, struct kp_buf *b)
{
	if (!s->stopping && s->nspares < KP_CONN_SPARES &&
	    b->cap >= KP_CONN_SPARE_MIN && b->cap <= KP_CONN_SPARE_MAX) {
		b->len = 0;
		s->spares[s->nspares++] = *b;
		kp_buf_init(b);
		return;
	}
	kp_buf_destroy(b);
}

static void spares_free(struct kp_conns *s)
{
	while (s->nspares > 0)
		kp_buf_destroy(&s->spares[--s->nspares]);
}

void kp_conns_take_buf(struct kp_conns *s, struct kp_buf *b, size_t want)
{
	struct kp_buf old;

	if (b->cap >= want)
		return;
	for (size_t i = 0; i < s->nspares; i++) {
		if (s->spares[i].cap < want || s->spares[i].cap < b->len)
			continue;
		old = *b;
		*b = s->spares[i];
		s->spares[i] = s->spares[--s->nspares];
		if (old.len > 0)
			memcpy(b->data, old.data, old.len);
		b->len = old.len;
		kp_buf_destroy(&old);
		return;
	}
}

static void on_written(uv_write_t *req, int status)
{
	struct write_req *w = req->data;
	struct kp_conn *c = w->conn;

	c->writing -= w->data.len;
	if (c->closing)
		kp_buf_destroy(&w->data);
	else
		spare_put(c->set, &w->data);
	kp_free(w);
	if (c->closing)
		return;
	if (status != 0) {
		kp_log_debug("conn", "write failed: %s", uv_strerror(status));
		kp_conn_close(c);
		return;
	}
	if (c->fatal && kp_conn_idle(c)) {
		kp_conn_close(c);
		return;
	}
	conn_update_reading(c);
}

/* Writes w's bytes (w is freed when the write completes or fails). */
static void conn_write(struct kp_conn *c, struct write_req *w)
{
	uv_buf_t buf;
	int rc;

	if (w->data.len == 0) {
		kp_buf_destroy(&w->data);
		kp_free(w);
		return;
	}
	buf = uv_buf_init(w->data.data, (unsigned int)w->data.len);
	c->writing += w->data.len;
	c->set->stats.bytes_out += w->data.len;
	rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written);
	if (rc != 0) {
		c->writing -= w->data.len;
		kp_buf_destroy(&w->data);
		kp_free(w);
		kp_conn_close(c);
	}
}

/* A write request taking over the bytes of data (left empty). */
static struct write_req *write_req_new(struct kp_conn *c, struct kp_buf *data)
{
	struct write_req *w = kp_calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->conn = c;
	w->req.data = w;
	w->data = *data;
	kp_buf_init(data);
	return w;
}

/*
 * Replaces w's plaintext by its TLS records (the plaintext buffer goes
 * back to the spares). false when w was freed: nothing to write now, or
 * the connection failed and is closed.
 */
static bool encrypt_write(struct kp_conn *c, struct write_req *w)
{
	struct kp_buf records;
	struct kp_error err;
	int rc;

	kp_buf_init(&records);
	rc = kp_tls_session_send(c->tls, w->data.data, w->data.len, &records,
				 &err);
	spare_put(c->set, &w->data);
	w->data = records;
	if (rc == 0 && w->data.len > 0)
		return true;
	kp_buf_destroy(&w->data);
	kp_free(w);
	if (rc != 0) {
		kp_log_debug("conn", "%s", err.msg);
		kp_conn_close(c);
	}
	return false;
}

static void conn_flush(struct kp_conn *c)
{
	struct write_req *w = NULL;

	while (c->head != NULL && c->head->ready) {
		struct kp_slot *slot = c->head;

		if (w == NULL) {
			w = kp_calloc(1, sizeof(*w));
			if (w == NULL) {
				kp_conn_close(c);
				return;
			}
			w->conn = c;
			w->req.data = w;
			kp_buf_init(&w->data);
		}
		if (w->data.len == 0) {
			w->data = slot->resp;
			kp_buf_init(&slot->resp);
		} else if (kp_buf_append(&w->data, slot->resp.data,
					 slot->resp.len) != 0) {
			break;
		}
		c->head = slot->next;
		if (c->head == NULL)
			c->tail = NULL;
		c->inflight -= slot->cost + slot->resp_cost;
		c->set->inflight_total -= slot->cost + slot->resp_cost;
		slot->conn = NULL;
		kp_slot_unref(slot);
	}
	if (w == NULL)
		return;
	if (c->tls != NULL && !encrypt_write(c, w))
		return;
	conn_write(c, w);
	/* Nothing went out (a refusal before a TLS handshake): done. */
	if (!c->closing && c->fatal && kp_conn_idle(c))
		kp_conn_close(c);
}

static void on_slot_ready(struct kp_slot *slot)
{
	struct kp_conn *c = slot->conn;

	if (c->closing)
		return;
	if (c->head == slot) {
		conn_flush(c);
	} else {
		/* Held behind an unanswered request: it counts as in flight. */
		slot->resp_cost = slot->resp.len;
		c->inflight += slot->resp_cost;
		c->set->inflight_total += slot->resp_cost;
	}
	conn_update_reading(c);
}

/*
 * true when c should not read now. A connection whose frame was admitted
 * is judged on its own requests only: the frame is counted already, and
 * stopping it half-way would hold its room without ever giving it back.
 */
static bool conn_congested(const struct kp_conn *c)
{
	const struct kp_conns *s = c->set;

	if (c->inflight > s->max_inflight_bytes ||
	    c->writing > s->max_inflight_bytes)
		return true;
	return c->reserved == 0 &&
	       s->inflight_total > s->max_inflight_total_bytes;
}

/*
 * Reserves the whole of the frame that begins at the start of what c
 * holds unread (its header has come, the rest has not): true when the
 * frames being received leave room for it under 3/4 of the total cap
 * (or none is being received, so that a frame larger than that still
 * gets through, alone) and c itself is not over its own cap (so a
 * connection holds at most max_inflight_bytes plus one frame).
 */
static bool admit_partial(struct kp_conn *c, uint64_t want)
{
	struct kp_conns *s = c->set;
	bool room_total = s->partial_total + want <=
			  s->max_inflight_total_bytes / 4 * 3 ||
			  s->partial_total == 0;
	bool room_conn = c->inflight <= s->max_inflight_bytes;

	if (!room_total || !room_conn)
		return false;
	c->reserved = want;
	s->partial_total += want;
	s->inflight_total += want;
	return true;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct kp_conn *c = h->data;
	/* TLS: records land in cipher, their plaintext in in. */
	struct kp_buf *b = c->tls != NULL ? &c->cipher : &c->in;

	(void)suggested;
	if (kp_buf_reserve(b, READ_CHUNK) != 0) {
		buf->base = NULL;
		buf->len = 0;
		return;
	}
	buf->base = b->data + b->len;
	buf->len = b->cap - b->len;
}

/*
 * Turns the TLS records just read into plaintext in c->in and writes what
 * the session answers (handshake records). Returns the plaintext bytes
 * added, or -1 when the session failed (c is then closing or fatal).
 */
static ssize_t tls_received(struct kp_conn *c, size_t nread)
{
	size_t before = c->in.len;
	struct kp_buf out;
	struct kp_error err;
	struct write_req *w;
	int rc;

	kp_buf_init(&out);
	rc = kp_tls_session_recv(c->tls, c->cipher.data, nread, &c->in, &out,
				 &err);
	c->cipher.len = 0;
	if (out.len > 0) {
		w = write_req_new(c, &out);
		if (w == NULL) {
			kp_buf_destroy(&out);
			kp_conn_close(c);
			return -1;
		}
		conn_write(c, w);
		if (c->closing)
			return -1;
	}
	if (rc != 0) {
		kp_log_debug("conn", "%s", err.msg);
		kp_conn_close_after_reply(c);
		if (kp_conn_idle(c))
			kp_conn_close(c);
		return -1;
	}
	return (ssize_t)(c->in.len - before);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct kp_conn *c = stream->data;

	(void)buf;
	if (nread == UV_EOF) {
		/* Half-closed: answer what was asked, then close. */
		kp_conn_stop_reading(c);
		c->fatal = true;
		if (kp_conn_idle(c))
			kp_conn_close(c);
		return;
	}
	if (nread < 0) {
		kp_log_debug("conn", "read failed: %s", uv_strerror((int)nread));
		kp_conn_close(c);
		return;
	}
	c->set->stats.bytes_in += (uint64_t)nread;
	if (c->tls != NULL) {
		size_t before = c->in.len;

		/* A handshake, like a frame, must be whole in time. */
		if (!kp_tls_session_ready(c->tls) && c->partial_since == 0)
			c->partial_since = uv_now(c->set->loop);
		nread = tls_received(c, (size_t)nread);
		if (nread < 0)
			return;
		c->in.len = before;   /* counted again just below */
	}
	if (c->in.len == 0 && nread > 0)
		c->partial_since = uv_now(c->set->loop);
	c->in.len += (size_t)nread;
	conn_process(c);
}

static void conn_update_reading(struct kp_conn *c)
{
	bool want = !c->closing && !c->fatal && !c->set->stopping &&
		    !conn_congested(c);

	/* Not a byte more of a frame that waits for room until it has it. */
	if (want && c->waiting_len > 0) {
		if (admit_partial(c, c->waiting_len)) {
			c->waiting_len = 0;
			c->set->waiting--;
		} else
			want = false;
	}

	if (want && !c->reading) {
		c->reading = true;
		uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
		if (c->in.len > 0)
			uv_idle_start(&c->idle, on_idle);
	} else if (!want && c->reading) {
		c->reading = false;
		uv_read_stop((uv_stream_t *)&c->tcp);
	}
}

static void on_idle(uv_idle_t *idle)
{
	struct kp_conn *c = idle->data;

	uv_idle_stop(idle);
	if (!c->closing)
		conn_process(c);
}

void kp_conns_resume(struct kp_conns *s)
{
	struct kp_conn *c, *next;

	if (s->inflight_total > s->max_inflight_total_bytes / 2)
		return;
	for (c = s->head; c != NULL; c = next) {
		next = c->next;
		if (!c->reading)
			conn_update_reading(c);
	}
}

void kp_conn_stop_reading(struct kp_conn *c)
{
	if (c->reading) {
		c->reading = false;
		uv_read_stop((uv_stream_t *)&c->tcp);
	}
}

static struct kp_slot *slot_push(struct kp_conn *c, size_t cost)
{
	struct kp_slot *slot = kp_calloc(1, sizeof(*slot));

	if (slot == NULL)
		return NULL;
	kp_buf_init(&slot->resp);
	slot->conn = c;
	slot->on_ready = on_slot_ready;
	slot->cost = cost;
	slot->refs = 1;
	if (c->tail != NULL)
		c->tail->next = slot;
	else
		c->head = slot;
	c->tail = slot;
	c->inflight += cost;
	c->set->inflight_total += cost;
	return slot;
}

static void frame_error(struct kp_conn *c, int code, const char *message)
{
	struct kp_slot *slot = slot_push(c, 0);

	c->fatal = true;
	kp_conn_stop_reading(c);
	if (slot == NULL) {
		kp_conn_close(c);
		return;
	}
	kp_response_error(&slot->resp, 0, code, message);
	c->set->stats.request_errors++;
	kp_slot_ready(slot);
}

static void conn_process(struct kp_conn *c)
{
	size_t used = 0;
	uint64_t wanted = 0;   /* a partial frame's length, to reserve */

	if (c->processing)
		return;
	c->processing = true;
	while (!c->closing && !c->fatal && c->reading) {
		const char *p = c->in.data + used;
		size_t avail = c->in.len - used;
		uint32_t body_len;
		struct kp_slot *slot;
		struct kp_error err;
		int rc;

		rc = kp_frame_check(p, avail, c->set->max_frame_bytes,
				    &body_len);
		if (rc == 0) {
			if (avail >= KP_FRAME_HEADER_SIZE && c->reserved == 0)
				wanted = KP_FRAME_HEADER_SIZE +
					 (uint64_t)kp_get_be32(p);
			break;
		}
		if (rc < 0) {
			char msg[128];

			snprintf(msg, sizeof(msg),
				 "frame length must be 1..%u bytes; closing",
				 c->set->max_frame_bytes);
			frame_error(c, KP_EBADFRAME, msg);
			break;
		}
		used += KP_FRAME_HEADER_SIZE + body_len;
		release_reservation(c);   /* the slot counts the frame now */
		slot = slot_push(c, KP_FRAME_HEADER_SIZE + body_len);
		if (slot == NULL) {
			kp_conn_close(c);
			return;
		}
		kp_slot_ref(slot);
		kp_error_clear(&err);
		c->set->stats.requests++;
		c->set->on_frame(c->set->on_frame_arg, slot,
				 p + KP_FRAME_HEADER_SIZE, body_len);
		if (slot->waits == 0 && !slot->ready)
			kp_slot_ready(slot);
		kp_slot_unref(slot);
		if (conn_congested(c))
			kp_conn_stop_reading(c);
	}
	if (c->closing)
		return;
	c->processing = false;
	kp_buf_consume(&c->in, used);
	if (c->in.len == 0 && (c->tls == NULL || kp_tls_session_ready(c->tls))) {
		c->partial_since = 0;
		/* A large frame's buffer is not kept once it is handled. */
		if (c->in.cap > READ_CHUNK * 4)
			kp_buf_destroy(&c->in);
	} else if (used > 0) {
		c->partial_since = uv_now(c->set->loop);   /* a new frame */
	}
	if (wanted > 0 && !c->fatal && !admit_partial(c, wanted)) {
		c->set->stats.frames_waited++;
		c->waiting_len = wanted;
		c->set->waiting++;
		kp_conn_stop_reading(c);
	}
}

static bool peer_on_loopback(struct kp_conn *c)
{
	struct sockaddr_storage peer;
	int len = sizeof(peer);

	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&peer, &len) != 0)
		return false;
	return kp_addr_is_loopback((struct sockaddr *)&peer);
}

void kp_conn_accept(struct kp_conns *s, uv_stream_t *listener)
{
	struct kp_conn *c = kp_calloc(1, sizeof(*c));

	if (c == NULL)
		return;
	c->set = s;
	kp_buf_init(&c->in);
	kp_buf_init(&c->cipher);
	uv_tcp_init(s->loop, &c->tcp);
	c->tcp.data = c;
	uv_idle_init(s->loop, &c->idle);
	c->idle.data = c;
	c->open_handles = 2;
	if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
		uv_close((uv_handle_t *)&c->idle, on_closed);
		uv_close((uv_handle_t *)&c->tcp, on_closed);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	c->role = s->default_role;
	if (s->tls != NULL) {
		c->tls = kp_tls_session_new(s->tls);
		if (c->tls == NULL) {
			uv_close((uv_handle_t *)&c->idle, on_closed);
			uv_close((uv_handle_t *)&c->tcp, on_closed);
			return;
		}
	}
	c->next = s->head;
	if (s->head != NULL)
		s->head->prev = c;
	s->head = c;
	s->stats.connections_total++;
	s->stats.connections_open++;
	if (s->loopback_only && !peer_on_loopback(c)) {
		s->stats.connections_refused++;
		frame_error(c, KP_EFORBIDDEN,
			    "this server is in single-user mode and serves "
			    "clients on loopback only");
		return;
	}
	if (s->max_connections != 0 &&
	    s->stats.connections_open > s->max_connections) {
		uint32_t reserve = s->default_role == KP_ROLE_NONE
					   ? KP_CONN_ADMIN_RESERVE : 0;

		if (s->stats.connections_open >
		    (uint64_t)s->max_connections + reserve) {
			char msg[160];

			snprintf(msg, sizeof(msg),
				 "the server has max_connections (%u) open; try again later",
				 s->max_connections);
			s->stats.connections_refused++;
			frame_error(c, KP_EBUSY, msg);
			return;
		}
		c->probation = true;
	}
	conn_update_reading(c);
}

void kp_conns_sweep(struct kp_conns *s)
{
	uint64_t now = uv_now(s->loop);
	struct kp_conn *c, *next;

	if (s->frame_timeout_ms == 0)
		return;
	for (c = s->head; c != NULL; c = next) {
		next = c->next;
		/* Not one we stopped reading, nor one waiting for answers. */
		if (c->partial_since == 0 || !c->reading || c->head != NULL ||
		    now - c->partial_since < s->frame_timeout_ms)
			continue;
		kp_log_info("conn", "closing a connection whose frame was not whole after %u ms (%zu bytes of it came)",
			    s->frame_timeout_ms, c->in.len);
		s->stats.frame_timeouts++;
		kp_conn_close(c);
	}
}

void kp_conns_stop_reading(struct kp_conns *s)
{
	s->stopping = true;
	for (struct kp_conn *c = s->head; c != NULL; c = c->next)
		kp_conn_stop_reading(c);
}

bool kp_conns_close_idle(struct kp_conns *s, bool force)
{
	struct kp_conn *c, *next;

	for (c = s->head; c != NULL; c = next) {
		next = c->next;
		if (force || kp_conn_idle(c))
			kp_conn_close(c);
	}
	if (s->head != NULL)
		return false;
	spares_free(s);
	return true;
}
