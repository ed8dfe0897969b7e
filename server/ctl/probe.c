/*
 * probe.c - judging a server's first reply; see probe.h.
 */
#include "probe.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "base/buf.h"

/* Bytes of an unknown reply quoted in the message. */
#define QUOTE_BYTES 24

/* 1 when the n bytes at p are exactly one msgpack map. */
static int one_map(const char *p, size_t n)
{
	msgpack_unpacked u;
	size_t off = 0;
	int ok;

	msgpack_unpacked_init(&u);
	ok = msgpack_unpack_next(&u, p, n, &off) == MSGPACK_UNPACK_SUCCESS &&
	     off == n && u.data.type == MSGPACK_OBJECT_MAP;
	msgpack_unpacked_destroy(&u);
	return ok;
}

enum kp_ctl_probe_kind kp_ctl_probe_classify(const char *p, size_t len,
					     uint32_t max_frame)
{
	const unsigned char *u = (const unsigned char *)p;
	uint32_t flen;

	if (len == 0)
		return KP_CTL_PROBE_NOTHING;
	if (len >= 4 && memcmp(p, "HTTP/", len < 5 ? len : 5) == 0)
		return KP_CTL_PROBE_HTTP;
	if (len >= 3 && (u[0] == 0x15 || u[0] == 0x16) && u[1] == 0x03 &&
	    u[2] <= 0x04)
		return KP_CTL_PROBE_TLS;
	if (len < 4)
		return KP_CTL_PROBE_OTHER;
	flen = kp_get_be32(p);
	if (flen == 0 || flen > max_frame || len - 4 < flen)
		return KP_CTL_PROBE_OTHER;
	return one_map(p + 4, flen) ? KP_CTL_PROBE_KAPPA : KP_CTL_PROBE_OTHER;
}

/* The first bytes at p as printable text: \xNN for the others. */
static void quote(const char *p, size_t len, char *out, size_t cap)
{
	size_t i, o = 0;

	for (i = 0; i < len && i < QUOTE_BYTES && o + 5 < cap; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			out[o++] = (char)c;
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
	}
	if (i < len && o + 4 < cap) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

int kp_ctl_probe_explain(enum kp_ctl_probe_kind kind, const char *addr,
			 int timeout_ms, int tls, const char *p, size_t len,
			 struct kp_error *err)
{
	char q[4 * QUOTE_BYTES + 8];

	switch (kind) {
	case KP_CTL_PROBE_KAPPA:
		return 0;
	case KP_CTL_PROBE_HTTP:
		kp_error_set(err, -EPROTO, "%s answered like an HTTP server, not kappad (is it kappad's --http port?)",
			     addr);
		return 1;
	case KP_CTL_PROBE_TLS:
		kp_error_set(err, -EPROTO, "%s answered in TLS: give --tls-ca (the CA its certificate chains to)",
			     addr);
		return 1;
	case KP_CTL_PROBE_OTHER:
		quote(p, len, q, sizeof(q));
		kp_error_set(err, -EPROTO, "%s does not speak the kappa protocol (it answered \"%s\"); is it kappad's --listen address?",
			     addr, q);
		return 1;
	case KP_CTL_PROBE_NOTHING:
		break;
	}
	if (err->code == -ETIMEDOUT) {
		kp_error_set(err, -ETIMEDOUT, "%s did not answer within %d %s; is it kappad's --listen address?",
			     addr, timeout_ms % 1000 ? timeout_ms : timeout_ms / 1000,
			     timeout_ms % 1000 ? "ms" : "s");
		return 1;
	}
	if (err->code == -ECONNRESET) {
		kp_error_set(err, -ECONNRESET, "%s closed the connection without answering; is it kappad's --listen address%s?",
			     addr, tls ? "" : " (with TLS? then give --tls-ca)");
		return 1;
	}
	return 0;
}
