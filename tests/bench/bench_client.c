/*
 * bench_client.c - a blocking client of the kappa protocol (docs/PROTOCOL.md)
 * built on msgpack-c: frames are packed with msgpack_packer into an sbuffer
 * and responses decoded with msgpack_unpack into a per-connection zone.
 *
 * Over TLS (kp_bench_conn_open_tls) the same bytes go through the
 * connection's OpenSSL session (bench_tls.c) instead of send/recv.
 *
 * Access pattern: one connection per thread; the caller pipelines by sending
 * several frames before reading their responses, which come back in order.
 */
#include "bench.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define RBUF_INITIAL (256u * 1024)
#define MAX_RESPONSE (64u * 1024 * 1024)

uint64_t kp_bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void (*kp_bench_die_hook)(void);

void kp_bench_die(const char *fmt, ...)
{
	static atomic_flag dying = ATOMIC_FLAG_INIT;
	va_list ap;

	/* Only the first thread to fail reports and exits; others wait. */
	if (atomic_flag_test_and_set(&dying))
		for (;;)
			pause();

	fflush(stdout);
	fputs("kappa-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (kp_bench_die_hook != NULL)
		kp_bench_die_hook();
	exit(1);
}

int kp_bench_conn_open(struct kp_bench_conn *c, int port)
{
	return kp_bench_conn_open_tls(c, port, NULL);
}

int kp_bench_conn_open_tls(struct kp_bench_conn *c, int port,
			   struct kp_bench_tls *tls)
{
	struct sockaddr_in sa;
	int one = 1;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->next_id = 1;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;

		close(c->fd);
		c->fd = -1;
		return -e;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (tls != NULL) {
		c->ssl = kp_bench_tls_connect(tls, c->fd, c->why,
					      sizeof(c->why));
		if (c->ssl == NULL) {
			close(c->fd);
			c->fd = -1;
			return -EPROTO;
		}
	}
	c->rbuf = malloc(RBUF_INITIAL);
	if (c->rbuf == NULL)
		kp_bench_die("out of memory");
	c->rcap = RBUF_INITIAL;
	msgpack_zone_init(&c->zone, 64 * 1024);
	return 0;
}

void kp_bench_conn_close(struct kp_bench_conn *c)
{
	if (c->fd >= 0) {
		kp_bench_tls_close(c->ssl);
		c->ssl = NULL;
		close(c->fd);
		msgpack_zone_destroy(&c->zone);
	}
	c->fd = -1;
	free(c->rbuf);
	c->rbuf = NULL;
}

int kp_bench_conn_send(struct kp_bench_conn *c, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = c->ssl != NULL ? kp_bench_tls_write(c->ssl, p, len)
					   : send(c->fd, p, len, MSG_NOSIGNAL);

		if (c->ssl != NULL && n < 0)
			return (int)n;
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

static int fill(struct kp_bench_conn *c, size_t need)
{
	if (c->rpos > 0 && c->rlen - c->rpos < need) {
		memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
		c->rlen -= c->rpos;
		c->rpos = 0;
	}
	if (need > c->rcap) {
		char *nb = realloc(c->rbuf, need);

		if (nb == NULL)
			kp_bench_die("out of memory");
		c->rbuf = nb;
		c->rcap = need;
	}
	while (c->rlen - c->rpos < need) {
		char *at = c->rbuf + c->rlen;
		size_t room = c->rcap - c->rlen;
		ssize_t n = c->ssl != NULL ? kp_bench_tls_read(c->ssl, at, room)
					   : recv(c->fd, at, room, 0);

		if (c->ssl != NULL && n < 0)
			return (int)n;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ECONNRESET;
		c->rlen += (size_t)n;
	}
	return 0;
}

int kp_bench_conn_recv(struct kp_bench_conn *c, msgpack_object *out)
{
	const unsigned char *h;
	uint32_t len;
	size_t off = 0;
	int rc;

	rc = fill(c, 4);
	if (rc != 0)
		return rc;
	h = (const unsigned char *)c->rbuf + c->rpos;
	len = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 |
	      (uint32_t)h[2] << 8 | (uint32_t)h[3];
	if (len == 0 || len > MAX_RESPONSE)
		return -EPROTO;
	rc = fill(c, 4 + (size_t)len);
	if (rc != 0)
		return rc;
	msgpack_zone_clear(&c->zone);
	if (msgpack_unpack(c->rbuf + c->rpos + 4, len, &off, &c->zone, out) !=
		    MSGPACK_UNPACK_SUCCESS ||
	    off != len || out->type != MSGPACK_OBJECT_MAP)
		return -EPROTO;
	c->rpos += 4 + (size_t)len;
	return 0;
}

void kp_bench_pack_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

void kp_bench_frame_begin(msgpack_sbuffer *sbuf, msgpack_packer *pk,
			  uint32_t id, const char *op, uint32_t n_fields)
{
	static const char zero[4];

	msgpack_sbuffer_clear(sbuf);
	msgpack_packer_init(pk, sbuf, msgpack_sbuffer_write);
	msgpack_sbuffer_write(sbuf, zero, sizeof(zero));
	msgpack_pack_map(pk, n_fields + 2);
	kp_bench_pack_str(pk, "id");
	msgpack_pack_fix_uint32(pk, id);
	kp_bench_pack_str(pk, "op");
	kp_bench_pack_str(pk, op);
}

void kp_bench_frame_end(msgpack_sbuffer *sbuf)
{
	uint32_t len = (uint32_t)(sbuf->size - 4);
	unsigned char *p = (unsigned char *)sbuf->data;

	p[0] = (unsigned char)(len >> 24);
	p[1] = (unsigned char)(len >> 16);
	p[2] = (unsigned char)(len >> 8);
	p[3] = (unsigned char)len;
}

void kp_bench_frame_set_id(char *frame, uint32_t id)
{
	/* length(4) map-header(1 or 3) "id"(3) 0xce(1) then the id. */
	unsigned char *p = (unsigned char *)frame + 4;

	p += (p[0] == 0xde) ? 3 : 1;
	p += 3 + 1;
	p[0] = (unsigned char)(id >> 24);
	p[1] = (unsigned char)(id >> 16);
	p[2] = (unsigned char)(id >> 8);
	p[3] = (unsigned char)id;
}

const msgpack_object *kp_bench_get(const msgpack_object *obj, const char *key)
{
	size_t klen = strlen(key);

	if (obj == NULL || obj->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < obj->via.map.size; i++) {
		const msgpack_object_kv *kv = &obj->via.map.ptr[i];

		if (kv->key.type == MSGPACK_OBJECT_STR &&
		    kv->key.via.str.size == klen &&
		    memcmp(kv->key.via.str.ptr, key, klen) == 0)
			return &kv->val;
	}
	return NULL;
}

bool kp_bench_ok(const msgpack_object *resp)
{
	const msgpack_object *ok = kp_bench_get(resp, "ok");

	return ok != NULL && ok->type == MSGPACK_OBJECT_BOOLEAN &&
	       ok->via.boolean;
}

uint64_t kp_bench_get_u64(const msgpack_object *obj, const char *key,
			  uint64_t def)
{
	const msgpack_object *v = kp_bench_get(obj, key);

	if (v == NULL || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return def;
	return v->via.u64;
}

void kp_bench_describe_error(const msgpack_object *resp, char *buf,
			     size_t size)
{
	const msgpack_object *e = kp_bench_get(resp, "error");
	const msgpack_object *m = kp_bench_get(resp, "message");
	int el = 0, ml = 0;
	const char *es = "?", *ms = "";

	if (e != NULL && e->type == MSGPACK_OBJECT_STR) {
		es = e->via.str.ptr;
		el = (int)e->via.str.size;
	} else {
		el = 1;
	}
	if (m != NULL && m->type == MSGPACK_OBJECT_STR) {
		ms = m->via.str.ptr;
		ml = (int)m->via.str.size;
	}
	snprintf(buf, size, "%.*s: %.*s", el, es, ml, ms);
}

void kp_bench_call(struct kp_bench_conn *c, msgpack_sbuffer *frame,
		   msgpack_object *resp, const char *what)
{
	char msg[512];
	int rc;

	rc = kp_bench_conn_send(c, frame->data, frame->size);
	if (rc == 0)
		rc = kp_bench_conn_recv(c, resp);
	if (rc != 0)
		kp_bench_die("%s: %s", what, strerror(-rc));
	if (!kp_bench_ok(resp)) {
		kp_bench_describe_error(resp, msg, sizeof(msg));
		kp_bench_die("%s: %s", what, msg);
	}
}

void kp_bench_call_proc_create(struct kp_bench_conn *c, msgpack_sbuffer *sb,
			       const char *name, const char *file,
			       const char *input, const char *output)
{
	msgpack_packer pk;
	msgpack_object resp;

	kp_bench_frame_begin(sb, &pk, c->next_id++, "proc_create",
			     output != NULL ? 5 : 4);
	kp_bench_pack_str(&pk, "name");
	kp_bench_pack_str(&pk, name);
	kp_bench_pack_str(&pk, "file");
	kp_bench_pack_str(&pk, file);
	kp_bench_pack_str(&pk, "inputs");
	msgpack_pack_array(&pk, 1);
	kp_bench_pack_str(&pk, input);
	if (output != NULL) {
		kp_bench_pack_str(&pk, "outputs");
		msgpack_pack_array(&pk, 1);
		kp_bench_pack_str(&pk, output);
	}
	kp_bench_pack_str(&pk, "from");
	kp_bench_pack_str(&pk, "earliest");
	kp_bench_frame_end(sb);
	kp_bench_call(c, sb, &resp, "proc_create");
}

uint32_t kp_bench_call_proc_replay(struct kp_bench_conn *c,
				   msgpack_sbuffer *sb, const char *name)
{
	msgpack_packer pk;
	msgpack_object resp;

	kp_bench_frame_begin(sb, &pk, c->next_id++, "proc_replay", 2);
	kp_bench_pack_str(&pk, "name");
	kp_bench_pack_str(&pk, name);
	kp_bench_pack_str(&pk, "from");
	kp_bench_pack_str(&pk, "earliest");
	kp_bench_frame_end(sb);
	kp_bench_call(c, sb, &resp, "proc_replay");
	return (uint32_t)kp_bench_get_u64(&resp, "version", 0);
}

const msgpack_object *kp_bench_call_fetch(struct kp_bench_conn *c,
					  msgpack_sbuffer *sb,
					  const char *topic, uint64_t offset,
					  uint32_t max_wait_ms,
					  msgpack_object *resp)
{
	msgpack_packer pk;
	const msgpack_object *recs;

	kp_bench_frame_begin(sb, &pk, c->next_id++, "fetch", 4);
	kp_bench_pack_str(&pk, "topic");
	kp_bench_pack_str(&pk, topic);
	kp_bench_pack_str(&pk, "offset");
	msgpack_pack_uint64(&pk, offset);
	kp_bench_pack_str(&pk, "max_bytes");
	msgpack_pack_uint32(&pk, 1024 * 1024);
	kp_bench_pack_str(&pk, "max_wait_ms");
	msgpack_pack_uint32(&pk, max_wait_ms);
	kp_bench_frame_end(sb);
	kp_bench_call(c, sb, resp, "fetch");
	recs = kp_bench_get(resp, "records");
	if (recs == NULL || recs->type != MSGPACK_OBJECT_ARRAY)
		kp_bench_die("fetch %s: no records array", topic);
	return recs;
}
