/*
 * http.c - a minimal HTTP/1.x server: /metrics, /health, the dashboard
 * page (GET /, dashboard.h) and its JSON snapshot (GET /api/state,
 * state_json.h). Request heads are parsed by http_request.h; a malformed
 * one is answered with its status and a one-line reason. With the
 * server's TLS configured (tls_cert, tls_key) the port speaks TLS only,
 * through the same sessions as the protocol port (net/tls.h).
 */
#include "http.h"

#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "dashboard.h"
#include "http_request.h"
#include "metrics.h"
#include "state_json.h"
#include "base/clock.h"
#include "base/alloc.h"
#include "base/buf.h"
#include "base/logging.h"
#include "net/server.h"
#include "net/tls.h"

#define HTTP_DEADLINE_MS 10000
#define HTTP_MAX_CONNS 256

struct http_conn {
	uv_tcp_t tcp;              /* data is this struct */
	uv_timer_t deadline;       /* closes a connection that lingers */
	int handles;               /* tcp + deadline not yet closed */
	struct kp_http *http;
	struct http_conn *next;    /* in the listener's list */
	struct http_conn *prev;
	struct kp_buf in;          /* request bytes (plaintext) */
	struct kp_buf cipher;      /* TLS: bytes read, not yet decrypted */
	struct kp_tls_session *tls; /* NULL: plain HTTP */
	bool closing;
};

/* One write in flight: its bytes, and whether the connection ends with it. */
struct http_write {
	uv_write_t req;            /* data is this struct */
	struct http_conn *conn;
	struct kp_buf data;
	bool last;
};

struct kp_http {
	uv_tcp_t listener;         /* data is this struct */
	struct kp_server *srv;
	struct http_conn *conns;
	int64_t started_ms;        /* when the server started (epoch ms) */
	int open_handles;          /* listener + connections not yet closed */
	int conn_count;            /* connections open */
	bool stopped;
};

static void on_conn_closed(uv_handle_t *h)
{
	struct http_conn *c = h->data;

	if (--c->handles > 0)
		return;
	c->http->open_handles--;
	c->http->conn_count--;
	kp_buf_destroy(&c->in);
	kp_buf_destroy(&c->cipher);
	kp_tls_session_free(c->tls);
	kp_free(c);
}

static void conn_close(struct http_conn *c)
{
	struct kp_http *h = c->http;

	if (c->closing)
		return;
	c->closing = true;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	uv_close((uv_handle_t *)&c->deadline, on_conn_closed);
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_deadline(uv_timer_t *t)
{
	conn_close(t->data);
}

static void on_written(uv_write_t *req, int status)
{
	struct http_write *w = req->data;

	if (!w->conn->closing && (w->last || status != 0))
		conn_close(w->conn);
	kp_buf_destroy(&w->data);
	kp_free(w);
}

/*
 * Writes data's bytes (taken over: data is left empty); last: the
 * connection is closed once they are written. A failure closes it now.
 */
static void send_bytes(struct http_conn *c, struct kp_buf *data, bool last)
{
	struct http_write *w = kp_calloc(1, sizeof(*w));
	uv_buf_t buf;

	if (w == NULL) {
		kp_buf_destroy(data);
		conn_close(c);
		return;
	}
	w->conn = c;
	w->data = *data;
	w->last = last;
	kp_buf_init(data);
	w->req.data = w;
	buf = uv_buf_init(w->data.data, (unsigned int)w->data.len);
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1,
		     on_written) != 0) {
		kp_buf_destroy(&w->data);
		kp_free(w);
		conn_close(c);
	}
}

/*
 * Sends a whole response and ends the connection: over TLS, encrypted and
 * followed by close_notify.
 */
static void send_response(struct http_conn *c, struct kp_buf *plain)
{
	struct kp_buf cipher;
	struct kp_error err;

	if (c->tls == NULL) {
		send_bytes(c, plain, true);
		return;
	}
	kp_buf_init(&cipher);
	kp_error_clear(&err);
	if (kp_tls_session_send(c->tls, plain->data, plain->len, &cipher,
				&err) != 0 ||
	    kp_tls_session_close(c->tls, &cipher) != 0) {
		kp_log_debug("http", "TLS response not sent: %s", err.msg);
		kp_buf_destroy(&cipher);
		kp_buf_destroy(plain);
		conn_close(c);
		return;
	}
	kp_buf_destroy(plain);
	send_bytes(c, &cipher, true);
}

/* extra: more header lines, each ending in \r\n ("" for none). */
static void respond_bytes(struct http_conn *c, int code, const char *reason,
			  const char *type, const char *extra,
			  const void *data, size_t len)
{
	char head[512];
	struct kp_buf out;
	int n;

	kp_buf_init(&out);
	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
		     "Content-Length: %zu\r\n%sConnection: close\r\n\r\n",
		     code, reason, type, len, extra);
	if (n < 0 || (size_t)n >= sizeof(head) ||
	    kp_buf_append(&out, head, (size_t)n) != 0 ||
	    kp_buf_append(&out, data, len) != 0) {
		kp_buf_destroy(&out);
		conn_close(c);
		return;
	}
	send_response(c, &out);
}

static void respond(struct http_conn *c, int code, const char *reason,
		    const char *type, const struct kp_buf *body)
{
	respond_bytes(c, code, reason, type, "", body->data, body->len);
}

static void respond_text(struct http_conn *c, int code, const char *reason,
			 const char *text)
{
	struct kp_buf body;

	kp_buf_init(&body);
	kp_buf_append(&body, text, strlen(text));
	respond(c, code, reason, "text/plain; charset=utf-8", &body);
	kp_buf_destroy(&body);
}

/*
 * With tokens configured, a route that needs one: true when the request's
 * bearer token has at least the read role; otherwise answers 401 (with
 * WWW-Authenticate) and returns false.
 */
static bool authorized(struct http_conn *c, const struct kp_http_request *req)
{
	static const char text[] =
		"a read token is needed: Authorization: Bearer TOKEN\n";
	const struct kp_auth *auth = &c->http->srv->auth;

	if (!kp_auth_enabled(auth) ||
	    kp_auth_check(auth, req->bearer, req->bearer_len) >= KP_ROLE_READ)
		return true;
	respond_bytes(c, 401, "Unauthorized", "text/plain; charset=utf-8",
		      req->bearer_len > 0
			      ? "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n"
			      : "WWW-Authenticate: Bearer\r\n",
		      text, sizeof(text) - 1);
	return false;
}

static void route(struct http_conn *c, const struct kp_http_request *req)
{
	struct kp_server *s = c->http->srv;
	struct kp_buf body;
	const char *path = req->target;
	size_t plen = req->path_len;

	if (strcmp(req->method, "GET") != 0) {
		respond_text(c, 405, "Method Not Allowed", "GET only\n");
		return;
	}
	kp_buf_init(&body);
	if (((plen == 8 && strncmp(path, "/metrics", 8) == 0) ||
	     (plen == 7 && strncmp(path, "/health", 7) == 0)) &&
	    !s->cfg.http_open_metrics && !authorized(c, req)) {
		/* answered */
	} else if (plen == 10 && strncmp(path, "/api/state", 10) == 0 &&
		   !authorized(c, req)) {
		/* answered */
	} else if (plen == 8 && strncmp(path, "/metrics", 8) == 0) {
		kp_metrics_render(s, &body);
		respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
			&body);
	} else if (plen == 7 && strncmp(path, "/health", 7) == 0) {
		int ok = kp_metrics_health(s, &body);

		respond(c, ok ? 200 : 503, ok ? "OK" : "Service Unavailable",
			"application/json", &body);
	} else if ((plen == 1 && path[0] == '/') ||
		   (plen == 11 && strncmp(path, "/index.html", 11) == 0)) {
		respond_bytes(c, 200, "OK", "text/html; charset=utf-8",
			      "Cache-Control: no-cache\r\n"
			      "X-Content-Type-Options: nosniff\r\n",
			      kp_dashboard_html, kp_dashboard_html_len);
	} else if (plen == 10 && strncmp(path, "/api/state", 10) == 0) {
		if (kp_state_json(s, c->http->started_ms, &body) != 0) {
			respond_text(c, 500, "Internal Server Error",
				     "out of memory\n");
		} else {
			respond_bytes(c, 200, "OK",
				      "application/json; charset=utf-8",
				      "Cache-Control: no-store\r\n",
				      body.data, body.len);
		}
	} else {
		respond_text(c, 404, "Not Found", "not found\n");
	}
	kp_buf_destroy(&body);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct http_conn *c = h->data;
	struct kp_buf *b = c->tls != NULL ? &c->cipher : &c->in;

	(void)suggested;
	if (kp_buf_reserve(b, c->tls != NULL ? 17 * 1024 : 2048) != 0) {
		buf->base = NULL;
		buf->len = 0;
		return;
	}
	buf->base = b->data + b->len;
	buf->len = b->cap - b->len;
}

/*
 * TLS: decrypts the nread bytes just read into c->in and sends what the
 * session answers (handshake records, alerts). Returns true when c->in
 * may hold request bytes to look at; false when there are none yet or the
 * connection is closing (a failed handshake ends with its alert).
 */
static bool tls_read(struct http_conn *c, size_t nread)
{
	struct kp_buf reply;
	struct kp_error err;
	int rc;

	kp_buf_init(&reply);
	kp_error_clear(&err);
	rc = kp_tls_session_recv(c->tls, c->cipher.data, nread, &c->in,
				 &reply, &err);
	c->cipher.len = 0;
	if (rc != 0)
		kp_log_debug("http", "TLS: %s", err.msg);
	if (reply.len > 0)
		send_bytes(c, &reply, rc != 0);
	else if (rc != 0)
		conn_close(c);
	kp_buf_destroy(&reply);
	return rc == 0 && !c->closing && c->in.len > 0;
}

static const char *status_text(int status)
{
	switch (status) {
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Bad Request";
	}
}

/* Answers a refused request head: its status and reason, one line. */
static void respond_refused(struct http_conn *c,
			    const struct kp_http_request *req)
{
	char text[KP_HTTP_REASON_MAX + 1];

	snprintf(text, sizeof(text), "%s\n", req->reason);
	respond_text(c, req->status, status_text(req->status), text);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct http_conn *c = stream->data;
	struct kp_http_request req;
	int rc;

	(void)buf;
	if (nread < 0) {
		conn_close(c);
		return;
	}
	if (nread == 0)
		return;
	if (c->tls != NULL) {
		if (!tls_read(c, (size_t)nread))
			return;
	} else {
		c->in.len += (size_t)nread;
	}
	rc = kp_http_request_parse(c->in.data, c->in.len, &req);
	if (rc == KP_HTTP_NEED_MORE)
		return;
	uv_read_stop(stream);
	if (rc == KP_HTTP_COMPLETE)
		route(c, &req);
	else
		respond_refused(c, &req);
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct kp_http *h = listener->data;
	struct http_conn *c;

	if (status != 0)
		return;
	c = kp_calloc(1, sizeof(*c));
	if (c == NULL)
		return;
	c->http = h;
	kp_buf_init(&c->in);
	kp_buf_init(&c->cipher);
	uv_tcp_init(h->srv->loop, &c->tcp);
	c->tcp.data = c;
	uv_timer_init(h->srv->loop, &c->deadline);
	c->deadline.data = c;
	c->handles = 2;
	h->open_handles++;
	h->conn_count++;
	c->next = h->conns;
	if (h->conns != NULL)
		h->conns->prev = c;
	h->conns = c;
	/*
	 * A request must arrive and be answered within HTTP_DEADLINE_MS, and
	 * at most HTTP_MAX_CONNS connections are open: slow or idle clients
	 * cannot hold the listener's memory or descriptors.
	 */
	if (h->srv->tls != NULL)
		c->tls = kp_tls_session_new(h->srv->tls);
	if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 ||
	    h->conn_count > HTTP_MAX_CONNS ||
	    (h->srv->tls != NULL && c->tls == NULL) ||
	    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
		conn_close(c);
		return;
	}
	uv_timer_start(&c->deadline, on_deadline, HTTP_DEADLINE_MS, 0);
}

static void on_listener_closed(uv_handle_t *handle)
{
	struct kp_http *h = handle->data;

	h->open_handles--;
}

int kp_http_start(struct kp_server *s, struct kp_http **out,
		  struct kp_error *err)
{
	struct kp_http *h = kp_calloc(1, sizeof(*h));
	struct sockaddr_storage addr;
	int rc;

	if (h == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	h->srv = s;
	h->started_ms = kp_clock_now_ms();
	rc = uv_ip4_addr(s->cfg.http_host, s->cfg.http_port,
			 (struct sockaddr_in *)&addr);
	if (rc != 0)
		rc = uv_ip6_addr(s->cfg.http_host, s->cfg.http_port,
				 (struct sockaddr_in6 *)&addr);
	if (rc != 0) {
		kp_free(h);
		return kp_error_set(err, KP_ECONFIG, "bad http host '%s'",
				    s->cfg.http_host);
	}
	uv_tcp_init(s->loop, &h->listener);
	h->listener.data = h;
	h->open_handles = 1;
	rc = uv_tcp_bind(&h->listener, (struct sockaddr *)&addr, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&h->listener, 64, on_connection);
	if (rc != 0) {
		kp_error_set(err, rc, "cannot listen on %s:%d (http): %s",
			     s->cfg.http_host, s->cfg.http_port,
			     uv_strerror(rc));
		h->stopped = true;
		uv_close((uv_handle_t *)&h->listener, on_listener_closed);
		*out = h;
		return rc;
	}
	kp_log_info("http", "dashboard on %s://%s:%d/ (metrics: /metrics)",
		    s->tls != NULL ? "https" : "http", s->cfg.http_host,
		    s->cfg.http_port);
	*out = h;
	return 0;
}

void kp_http_stop(struct kp_http *h)
{
	if (h == NULL || h->stopped)
		return;
	h->stopped = true;
	uv_close((uv_handle_t *)&h->listener, on_listener_closed);
	while (h->conns != NULL)
		conn_close(h->conns);
}

void kp_http_free(struct kp_http *h)
{
	kp_free(h);
}
