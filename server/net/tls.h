/*
 * tls.h - TLS for kappad's listeners (OpenSSL), on memory BIOs so that
 * libuv keeps owning the sockets.
 *
 * A connection's session takes the bytes read from the socket and gives
 * back plaintext plus the bytes to send (handshake records, alerts); it
 * turns plaintext to send into TLS records. Plaintext sent before the
 * handshake is done (an error frame at accept) waits inside the session
 * and goes out with the handshake's end. TLS 1.2 is the oldest version
 * accepted; with a client CA, a client must present a certificate that
 * chains to it.
 */
#ifndef KP_TLS_H
#define KP_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "base/error.h"

struct kp_tls;          /* a listener's certificate, key and settings */
struct kp_tls_session;  /* one connection */

/*
 * Loads the PEM certificate (chain) at cert and key at key (which must
 * match), and when client_ca is not NULL the CAs whose certificates
 * clients must present. Returns 0 and *out, or KP_ECONFIG with err naming
 * the file and OpenSSL's reason.
 */
int kp_tls_open(struct kp_tls **out, const char *cert, const char *key,
		const char *client_ca, struct kp_error *err);

/* Frees the context (sessions hold their own reference). NULL: no-op. */
void kp_tls_free(struct kp_tls *t);

/* A new server-side session, or NULL when out of memory. */
struct kp_tls_session *kp_tls_session_new(struct kp_tls *t);

/* Frees a session. NULL: no-op. */
void kp_tls_session_free(struct kp_tls_session *s);

/*
 * Feeds len bytes read from the socket: appends what they decrypt to to
 * plain and the bytes to write back to out. Returns 0, or a negative code
 * with err when the peer broke the protocol or failed verification (the
 * connection should be closed once out is written).
 */
int kp_tls_session_recv(struct kp_tls_session *s, const char *cipher,
			size_t len, struct kp_buf *plain, struct kp_buf *out,
			struct kp_error *err);

/*
 * Encrypts len bytes of plain, appending the records to out (or keeping
 * them until the handshake is done). Returns 0 or a negative code.
 */
int kp_tls_session_send(struct kp_tls_session *s, const char *plain,
			size_t len, struct kp_buf *out, struct kp_error *err);

/*
 * Ends the session: appends its close_notify alert to out (nothing when
 * the handshake never completed). Returns 0 or -ENOMEM.
 */
int kp_tls_session_close(struct kp_tls_session *s, struct kp_buf *out);

/* true once the handshake is complete. */
bool kp_tls_session_ready(const struct kp_tls_session *s);

#endif
