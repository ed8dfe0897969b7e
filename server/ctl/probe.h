/*
 * probe.h - telling kappad from other servers by their first reply.
 *
 * kappactl's first request on a connection (kp_ctl_connect) carries a
 * line break in an extra field (the protocol ignores unknown fields), so
 * that a line-based server such as kappad's own HTTP port answers at once
 * instead of waiting for the rest of a line. When that first exchange
 * fails, the bytes that came back (if any) are judged here and the error
 * is put in words a person can act on. Pure functions over bytes: no I/O.
 */
#ifndef KP_CTL_PROBE_H
#define KP_CTL_PROBE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* The field and value added to the first request. */
#define KP_CTL_PROBE_FIELD "probe"
#define KP_CTL_PROBE_VALUE "kappactl\r\n"

/* What the first reply was. */
enum kp_ctl_probe_kind {
	KP_CTL_PROBE_KAPPA,    /* a whole frame: length, one msgpack map */
	KP_CTL_PROBE_NOTHING,  /* not one byte */
	KP_CTL_PROBE_HTTP,     /* begins with "HTTP/" (4 bytes suffice) */
	KP_CTL_PROBE_TLS,      /* a TLS record header (alert, handshake) */
	KP_CTL_PROBE_OTHER,    /* anything else, or a frame cut short */
};

/*
 * Judges the len bytes at p, everything received on a new connection,
 * where a frame's length may be 1..max_frame.
 */
enum kp_ctl_probe_kind kp_ctl_probe_classify(const char *p, size_t len,
					     uint32_t max_frame);

/*
 * Rewrites err, the failure of the first exchange with addr (err->code
 * being -ETIMEDOUT when no reply came within timeout_ms, -ECONNRESET when
 * the server closed the connection), as one line that says what answered
 * instead of kappad, judged from the len bytes at p (as classified by
 * kind); tls: the connection is TLS (else a hangup suggests --tls-ca).
 * Returns 1 when err was rewritten, 0 when the failure is better told as
 * it is (a kappa frame, or an error of the socket itself).
 */
int kp_ctl_probe_explain(enum kp_ctl_probe_kind kind, const char *addr,
			 int timeout_ms, int tls, const char *p, size_t len,
			 struct kp_error *err);

#endif
