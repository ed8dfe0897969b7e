/*
 * client.c - blocking, pipelining connection to kappad; see client.h.
 */
#include "client.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "json_mp.h"
#include "mpget.h"
#include "base/alloc.h"

#define READ_CHUNK 65536

/* Splits "HOST:PORT" / "[HOST]:PORT" into host and port buffers. */
static int split_addr(const char *addr, char *host, size_t hsize, char *port,
		      size_t psize)
{
	const char *colon, *h = addr;
	size_t hlen;

	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');

		if (close == NULL || close[1] != ':')
			return -EINVAL;
		h = addr + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL)
			return -EINVAL;
		hlen = (size_t)(colon - addr);
	}
	if (hlen >= hsize || strlen(colon + 1) >= psize || colon[1] == '\0')
		return -EINVAL;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (hlen == 0)
		strcpy(host, "127.0.0.1");
	strcpy(port, colon + 1);
	return 0;
}

/* Connects fd to ai within timeout_ms; returns 0 or -errno. */
static int connect_timeout(int fd, const struct addrinfo *ai, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(int);
	int flags, rc, soerr = 0;

	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS)
			return -errno;
		do
			rc = poll(&pfd, 1, timeout_ms);
		while (rc < 0 && errno == EINTR);
		if (rc < 0)
			return -errno;
		if (rc == 0)
			return -ETIMEDOUT;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			return -errno;
		if (soerr != 0)
			return -soerr;
	}
	if (fcntl(fd, F_SETFL, flags) < 0)
		return -errno;
	return 0;
}

int kp_ctl_client_open(struct kp_ctl_client *c, const char *addr, int timeout_ms,
		       struct kp_error *err)
{
	struct addrinfo hints, *res = NULL, *ai;
	char host[256], port[32];
	int rc, one = 1;

	c->fd = -1;
	c->ssl = NULL;
	c->next_id = 1;
	c->expect_id = 1;
	c->rpos = 0;
	kp_buf_init(&c->rbuf);
	if (split_addr(addr, host, sizeof(host), port, sizeof(port)) != 0)
		return kp_error_set(err, -EINVAL,
				    "bad address '%s' (want HOST:PORT)", addr);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0)
		return kp_error_set(err, -EHOSTUNREACH, "cannot resolve %s: %s",
				    addr, gai_strerror(rc));
	rc = -EHOSTUNREACH;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			       ai->ai_protocol);
		if (c->fd < 0) {
			rc = -errno;
			continue;
		}
		rc = connect_timeout(c->fd, ai, timeout_ms);
		if (rc == 0)
			break;
		close(c->fd);
		c->fd = -1;
	}
	freeaddrinfo(res);
	if (c->fd < 0)
		return kp_error_set(err, rc, "cannot connect to %s: %s", addr,
				    kp_error_text(rc));
	memcpy(c->host, host, strlen(host) + 1);
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

void kp_ctl_client_close(struct kp_ctl_client *c)
{
	kp_ctl_tls_free(c->ssl);
	c->ssl = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	kp_buf_destroy(&c->rbuf);
	c->rpos = 0;
}

int kp_ctl_client_start_tls(struct kp_ctl_client *c,
			    const struct kp_ctl_tls *tls, struct kp_error *err)
{
	c->ssl = kp_ctl_tls_connect(c->fd, c->host, tls, err);
	return c->ssl != NULL ? 0 : err->code;
}

int kp_ctl_client_set_timeout(struct kp_ctl_client *c, int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000,
			      .tv_usec = (timeout_ms % 1000) * 1000 };

	if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

void kp_ctl_client_received(const struct kp_ctl_client *c, const char **p,
			    size_t *len)
{
	*p = c->rbuf.data ? c->rbuf.data : "";
	*len = c->rbuf.len;
}

uint64_t kp_ctl_client_in_flight(const struct kp_ctl_client *c)
{
	return c->next_id - c->expect_id;
}

static int req_write(void *data, const char *p, size_t len)
{
	struct kp_ctl_req *r = data;

	if (kp_buf_append(&r->buf, p, len) != 0) {
		r->failed = 1;
		return -1;
	}
	return 0;
}

void kp_ctl_req_init(struct kp_ctl_req *r)
{
	kp_buf_init(&r->buf);
	msgpack_packer_init(&r->pk, r, req_write);
	r->failed = 0;
	r->id = 0;
}

void kp_ctl_req_destroy(struct kp_ctl_req *r)
{
	kp_buf_destroy(&r->buf);
}

void kp_ctl_req_begin(struct kp_ctl_client *c, struct kp_ctl_req *r,
		      const char *op, uint32_t nfields)
{
	static const char slot[4];

	kp_buf_reset(&r->buf);
	r->failed = 0;
	r->id = c->next_id++;
	req_write(r, slot, sizeof(slot));
	msgpack_pack_map(&r->pk, 2 + nfields);
	msgpack_pack_str_with_body(&r->pk, "id", 2);
	msgpack_pack_uint64(&r->pk, r->id);
	msgpack_pack_str_with_body(&r->pk, "op", 2);
	msgpack_pack_str_with_body(&r->pk, op, strlen(op));
}

static int write_all(struct kp_ctl_client *c, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = c->ssl != NULL ? kp_ctl_tls_write(c->ssl, p, len)
					   : send(c->fd, p, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int kp_ctl_client_send(struct kp_ctl_client *c, struct kp_ctl_req *r,
		       struct kp_error *err)
{
	int rc;

	if (r->failed || r->buf.len < 5)
		return kp_error_set(err, -ENOMEM, "out of memory building a request");
	if (c->fd < 0)
		return kp_error_set(err, -ENOTCONN, "not connected");
	kp_put_be32(r->buf.data, (uint32_t)(r->buf.len - 4));
	rc = write_all(c, r->buf.data, r->buf.len);
	if (rc != 0)
		return kp_error_set(err, rc, "sending to the server: %s",
				    kp_error_text(rc));
	return 0;
}

int kp_ctl_client_send_json(struct kp_ctl_client *c, const char *op,
			    const json_t *fields, struct kp_error *err)
{
	struct kp_ctl_req r;
	json_t *obj = (json_t *)fields;
	void *it;
	int rc = 0;

	kp_ctl_req_init(&r);
	kp_ctl_req_begin(c, &r, op, fields ? (uint32_t)json_object_size(fields) : 0);
	for (it = fields ? json_object_iter(obj) : NULL; it != NULL && rc == 0;
	     it = json_object_iter_next(obj, it)) {
		rc = msgpack_pack_str_with_body(&r.pk, json_object_iter_key(it),
						json_object_iter_key_len(it));
		if (rc == 0)
			rc = kp_ctl_json_pack(&r.pk, json_object_iter_value(it));
	}
	rc = kp_ctl_client_send(c, &r, err);
	kp_ctl_req_destroy(&r);
	return rc;
}

void kp_ctl_resp_init(struct kp_ctl_resp *r)
{
	r->body = NULL;
	r->len = 0;
	r->map = NULL;
	msgpack_unpacked_init(&r->unpacked);
}

void kp_ctl_resp_destroy(struct kp_ctl_resp *r)
{
	msgpack_unpacked_destroy(&r->unpacked);
	kp_free(r->body);
	kp_ctl_resp_init(r);
}

/* Makes at least need unparsed bytes available in c->rbuf. */
static int fill(struct kp_ctl_client *c, size_t need, struct kp_error *err)
{
	while (c->rbuf.len - c->rpos < need) {
		size_t want = need - (c->rbuf.len - c->rpos);
		ssize_t n;
		int rc;

		if (c->rpos > 0) {
			kp_buf_consume(&c->rbuf, c->rpos);
			c->rpos = 0;
		}
		rc = kp_buf_reserve(&c->rbuf, want > READ_CHUNK ? want : READ_CHUNK);
		if (rc != 0)
			return kp_error_set(err, rc, "out of memory reading a response");
		n = c->ssl != NULL
			    ? kp_ctl_tls_read(c->ssl, c->rbuf.data + c->rbuf.len,
					      c->rbuf.cap - c->rbuf.len)
			    : recv(c->fd, c->rbuf.data + c->rbuf.len,
				   c->rbuf.cap - c->rbuf.len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return kp_error_set(err, -ETIMEDOUT,
					    "no answer from the server in time");
		if (n < 0)
			return kp_error_set(err, -errno, "reading from the server: %s",
					    kp_error_text(-errno));
		if (n == 0)
			return kp_error_set(err, -ECONNRESET,
					    "the server closed the connection");
		c->rbuf.len += (size_t)n;
	}
	return 0;
}

/* The code for a wire error name (docs/PROTOCOL.md). */
static int code_of(const char *name, size_t len)
{
#define KP_CTL_CODE(cname, value, wire, text)                          \
	if (len == strlen(wire) && memcmp(name, wire, len) == 0) \
		return cname;
	KP_ERROR_TABLE(KP_CTL_CODE)
#undef KP_CTL_CODE
	if (len == 8 && memcmp(name, "IO_ERROR", 8) == 0)
		return -EIO;
	return KP_EINTERNAL;
}

/* Turns a decoded response with ok != true into a code and "CODE: message". */
static int server_error(const msgpack_object *map, struct kp_error *err)
{
	const char *code = "ERROR", *msg = "";
	size_t clen = 5, mlen = 0;

	kp_ctl_mp_bytes(kp_ctl_mp_get(map, "error"), &code, &clen);
	kp_ctl_mp_bytes(kp_ctl_mp_get(map, "message"), &msg, &mlen);
	if (mlen > 0)
		kp_error_set(err, 0, "%.*s: %.*s", (int)clen, code, (int)mlen, msg);
	else
		kp_error_set(err, 0, "%.*s", (int)clen, code);
	err->code = code_of(code, clen);
	return err->code;
}

static int decode(struct kp_ctl_client *c, struct kp_ctl_resp *resp,
		  struct kp_error *err)
{
	size_t off = 0;
	uint64_t id = 0;
	msgpack_unpack_return ur;
	const msgpack_object *map;

	ur = msgpack_unpack_next(&resp->unpacked, resp->body, resp->len, &off);
	if (ur != MSGPACK_UNPACK_SUCCESS || off != resp->len)
		return kp_error_set(err, KP_EBADMSGPACK,
				    "malformed response from the server");
	map = &resp->unpacked.data;
	if (map->type != MSGPACK_OBJECT_MAP)
		return kp_error_set(err, KP_EBADMSGPACK,
				    "response from the server is not a map");
	kp_ctl_mp_get_u64(map, "id", &id);
	if (id == 0 && !kp_ctl_mp_is_true(kp_ctl_mp_get(map, "ok"))) {
		resp->map = map;
		server_error(map, err);
		resp->map = NULL;
		return err->code;
	}
	if (id != c->expect_id)
		return kp_error_set(err, KP_EBADMSGPACK,
				    "response id %" PRIu64 ", expected %" PRIu64,
				    id, c->expect_id);
	c->expect_id++;
	resp->map = map;
	if (!kp_ctl_mp_is_true(kp_ctl_mp_get(map, "ok")))
		return server_error(map, err);
	return 0;
}

int kp_ctl_client_recv(struct kp_ctl_client *c, struct kp_ctl_resp *resp,
		       struct kp_error *err)
{
	uint32_t len;
	int rc;

	kp_ctl_resp_destroy(resp);
	if (c->fd < 0)
		return kp_error_set(err, -ENOTCONN, "not connected");
	if (c->expect_id == c->next_id)
		return kp_error_set(err, -EINVAL, "no request in flight");
	rc = fill(c, 4, err);
	if (rc != 0)
		return rc;
	len = kp_get_be32(c->rbuf.data + c->rpos);
	if (len == 0 || len > KP_CTL_MAX_FRAME)
		return kp_error_set(err, KP_EBADFRAME,
				    "bad frame length %u from the server", len);
	rc = fill(c, 4 + (size_t)len, err);
	if (rc != 0)
		return rc;
	resp->body = kp_malloc(len);
	if (resp->body == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory reading a response");
	memcpy(resp->body, c->rbuf.data + c->rpos + 4, len);
	resp->len = len;
	c->rpos += 4 + (size_t)len;
	return decode(c, resp, err);
}

int kp_ctl_client_call(struct kp_ctl_client *c, const char *op,
		       const json_t *fields, struct kp_ctl_resp *resp,
		       struct kp_error *err)
{
	int rc = kp_ctl_client_send_json(c, op, fields, err);

	if (rc != 0)
		return rc;
	return kp_ctl_client_recv(c, resp, err);
}
