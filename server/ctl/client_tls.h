/*
 * client_tls.h - the TLS half of kappactl's connection (client.h): the
 * handshake and blocking reads and writes through OpenSSL on a connected
 * socket. A session is an opaque pointer (an SSL *).
 */
#ifndef KP_CTL_CLIENT_TLS_H
#define KP_CTL_CLIENT_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "base/error.h"

/* TLS settings of a connection: PEM files, each NULL when not given. */
struct kp_ctl_tls {
	const char *ca;      /* CAs to verify the server by (NULL: system's) */
	const char *cert;    /* client certificate, for tls_client_ca */
	const char *key;     /* its key */
};

/*
 * Runs the handshake on the connected socket fd: the server's
 * certificate must chain to tls->ca and name host (its IP address or DNS
 * name). Returns the session, or NULL with err saying why (err->code
 * -ETIMEDOUT when the socket's receive timeout ran out).
 */
void *kp_ctl_tls_connect(int fd, const char *host,
			 const struct kp_ctl_tls *tls, struct kp_error *err);

/*
 * Writes up to len bytes over the session: the count written, or -1 with
 * errno set (EPIPE when the session or connection ended).
 */
ssize_t kp_ctl_tls_write(void *session, const char *p, size_t len);

/*
 * Reads up to len bytes: the count, 0 at the end, or -1 with errno
 * (EAGAIN when the socket's receive timeout ran out).
 */
ssize_t kp_ctl_tls_read(void *session, char *p, size_t len);

/* Frees a session. NULL: no-op. */
void kp_ctl_tls_free(void *session);

#endif
