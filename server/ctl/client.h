/*
 * client.h - kappactl's blocking connection to kappad (docs/PROTOCOL.md).
 *
 * One TCP connection carrying frames: a 4-byte big-endian length and one
 * msgpack map. Requests get ids 1, 2, 3, ... in the order they are built;
 * responses come back in request order, so a caller may send several
 * requests (pipelining) and then receive their responses one by one, and
 * the client checks that each response carries the id it expects.
 *
 * Access pattern: open, then any mix of send and recv (recv never more
 * often than send), then close. Everything blocks; EINTR is retried.
 */
#ifndef KP_CTL_CLIENT_H
#define KP_CTL_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <msgpack.h>

#include "client_tls.h"
#include "base/buf.h"
#include "base/error.h"

/* Largest response frame accepted; the server's own limit is far lower. */
#define KP_CTL_MAX_FRAME (256u << 20)

/* A connection to kappad. */
struct kp_ctl_client {
	int fd;              /* connected socket, -1 when closed */
	void *ssl;           /* the TLS session (an SSL *), NULL: plain */
	char host[256];      /* the host connected to (TLS checks it) */
	uint64_t next_id;    /* id the next request will carry (starts at 1) */
	uint64_t expect_id;  /* id the next response must carry */
	struct kp_buf rbuf;  /* received bytes; rbuf.data[rpos..len) unparsed */
	size_t rpos;         /* bytes of rbuf already handed out as frames */
};

/* A request being built: the length slot, then the msgpack body. */
struct kp_ctl_req {
	struct kp_buf buf;   /* 4 bytes for the length, then the body */
	msgpack_packer pk;   /* packs into buf; use it to add the fields */
	int failed;          /* set when a write into buf ran out of memory */
	uint64_t id;         /* the id this request carries */
};

/* A decoded response. The decoded object points into body. */
struct kp_ctl_resp {
	char *body;                 /* owned copy of the frame body */
	size_t len;                 /* bytes in body */
	msgpack_unpacked unpacked;  /* the decoding of body */
	const msgpack_object *map;  /* the response map; NULL until a recv decodes one */
};

/*
 * Connects to addr ("HOST:PORT", "[IPv6]:PORT"), waiting at most timeout_ms
 * for the TCP handshake. Returns 0, or a negative code with a message in err
 * ("cannot connect to HOST:PORT: Connection refused"); c is then closed.
 */
int kp_ctl_client_open(struct kp_ctl_client *c, const char *addr, int timeout_ms,
		       struct kp_error *err);

/* Closes the connection and frees its buffers. Safe on a closed client. */
void kp_ctl_client_close(struct kp_ctl_client *c);

/*
 * Runs the TLS handshake on the open connection c: the server's
 * certificate must chain to tls->ca and name the host connected to (its
 * IP address or DNS name). Afterwards c sends and receives over TLS.
 * Returns 0, or a negative code with err saying why (c is then unusable).
 */
int kp_ctl_client_start_tls(struct kp_ctl_client *c,
			    const struct kp_ctl_tls *tls, struct kp_error *err);

/*
 * Makes every later read on c give up after timeout_ms without a byte
 * (0: wait without a limit, the default); a read that gives up fails with
 * -ETIMEDOUT. For the first exchange on a connection (kp_ctl_connect), so
 * that a server that never answers is told within that time.
 */
int kp_ctl_client_set_timeout(struct kp_ctl_client *c, int timeout_ms);

/*
 * The bytes received on c that are still buffered (*p, *len; borrowed
 * until the next read): on a new connection, everything received so far.
 * For judging a reply that was not a kappa frame (probe.h).
 */
void kp_ctl_client_received(const struct kp_ctl_client *c, const char **p,
			    size_t *len);

/* Requests sent whose responses have not been received yet. */
uint64_t kp_ctl_client_in_flight(const struct kp_ctl_client *c);

/* Initialises an empty request (no allocation). */
void kp_ctl_req_init(struct kp_ctl_req *r);

/* Frees the request's buffer. */
void kp_ctl_req_destroy(struct kp_ctl_req *r);

/*
 * Starts a request for operation op on c: takes the next id and packs the
 * header of a map of 2 + nfields entries with "id" and "op". The caller then
 * packs exactly nfields key/value pairs with r->pk and sends it.
 */
void kp_ctl_req_begin(struct kp_ctl_client *c, struct kp_ctl_req *r,
		      const char *op, uint32_t nfields);

/*
 * Sends the request built in r as one frame. Returns 0, or a negative code
 * with err set (-ENOMEM when building it failed, -errno from the socket).
 */
int kp_ctl_client_send(struct kp_ctl_client *c, struct kp_ctl_req *r,
		       struct kp_error *err);

/*
 * Builds and sends request op whose other fields are the members of the JSON
 * object fields (NULL for none), converted as in json_mp.h.
 */
int kp_ctl_client_send_json(struct kp_ctl_client *c, const char *op,
			    const json_t *fields, struct kp_error *err);

/* Initialises an empty response (no allocation). */
void kp_ctl_resp_init(struct kp_ctl_resp *r);

/* Frees what the response holds; it is empty and reusable afterwards. */
void kp_ctl_resp_destroy(struct kp_ctl_resp *r);

/*
 * Receives the next response into resp (whose previous content is freed).
 * Returns:
 *  - 0 when the response says ok;
 *  - the KP_E* code of the server's error (or -EIO for IO_ERROR), with err
 *    holding "CODE: message" and resp->map the whole response, so that a
 *    caller can read extra fields such as end_offset;
 *  - another negative code with resp->map NULL when the connection failed
 *    or the response was malformed; the connection is then unusable.
 */
int kp_ctl_client_recv(struct kp_ctl_client *c, struct kp_ctl_resp *resp,
		       struct kp_error *err);

/* kp_ctl_client_send_json then kp_ctl_client_recv of its response. */
int kp_ctl_client_call(struct kp_ctl_client *c, const char *op,
		       const json_t *fields, struct kp_ctl_resp *resp,
		       struct kp_error *err);

#endif
