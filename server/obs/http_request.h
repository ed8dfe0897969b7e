/*
 * http_request.h - the HTTP/1.x request head parser of the HTTP listener
 * (http.c). Pure bytes: no sockets, no loop, no allocation, so it is unit
 * tested and fuzzed on (const char *, size_t).
 *
 * Access pattern: the listener appends what it reads to one buffer and
 * parses it from the start after every read, until the parser says the
 * head is complete or malformed. The head is at most KP_HTTP_MAX_HEAD bytes
 * (request line, headers and the blank line), so re-parsing costs little.
 *
 * What is accepted:
 *   request-line = method SP target SP "HTTP/1." DIGIT, then CRLF or LF;
 *                  empty lines before it are skipped
 *   method       = 1..KP_HTTP_MAX_METHOD token characters (RFC 9110)
 *   target       = 1..KP_HTTP_MAX_TARGET visible ASCII bytes starting
 *                  with '/', or "*"
 *   header       = name ":" OWS value OWS, then CRLF or LF; name is
 *                  1..KP_HTTP_MAX_NAME token characters; value bytes are
 *                  visible ASCII, SP, HTAB or >= 0x80
 *   end          = an empty line (CRLF or LF)
 * Refused, with a status and a one-line reason: control bytes (NUL, a bare
 * CR, ...) anywhere, other spacing in the request line, any version but
 * HTTP/1.x (505), a target too long (414), more than KP_HTTP_MAX_HEADERS
 * headers, a header line too long or a head beyond KP_HTTP_MAX_HEAD (431),
 * obsolete line folding, whitespace before a header's colon, and a second
 * Authorization header or a malformed Bearer credential. A request body is
 * not read (the listener only answers GET).
 *
 * Authorization. `Authorization: Bearer <token>` (header name and scheme
 * case-insensitive, token68 characters, RFC 6750) gives the token, copied
 * into the request. Any other scheme is noted (has_authorization) and
 * leaves the token empty.
 */
#ifndef KP_HTTP_REQUEST_H
#define KP_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#define KP_HTTP_MAX_HEAD 8192     /* bytes of the head, blank line included */
#define KP_HTTP_MAX_METHOD 15     /* bytes of the method */
#define KP_HTTP_MAX_TARGET 1023   /* bytes of the request target */
#define KP_HTTP_MAX_HEADERS 64    /* header lines */
#define KP_HTTP_MAX_NAME 128      /* bytes of a header name */
#define KP_HTTP_MAX_LINE 4096     /* bytes of a header line, end excluded */
#define KP_HTTP_MAX_TOKEN 512     /* bytes of a bearer token */
#define KP_HTTP_REASON_MAX 128    /* bytes of reason, NUL included */

/* What kp_http_request_parse returns besides KP_EBADREQUEST. */
#define KP_HTTP_NEED_MORE 0       /* the head is not whole yet */
#define KP_HTTP_COMPLETE 1        /* the head is whole and valid */

/* One header line; pointers are borrowed from the parsed buffer. */
struct kp_http_header {
	const char *name;         /* not NUL-terminated */
	size_t name_len;          /* bytes of name, >= 1 */
	const char *value;        /* leading and trailing OWS stripped */
	size_t value_len;         /* bytes of value, may be 0 */
};

/* A parsed request head (or why it was refused). */
struct kp_http_request {
	char method[KP_HTTP_MAX_METHOD + 1];  /* copied, NUL-terminated */
	char target[KP_HTTP_MAX_TARGET + 1];  /* path and query, copied */
	size_t path_len;          /* bytes of target before '?' (the path) */
	const char *query;        /* in target after '?', NULL when none */
	int version_minor;        /* x of HTTP/1.x */
	size_t head_len;          /* bytes of the head, blank line included */
	size_t header_count;      /* entries of headers */
	struct kp_http_header headers[KP_HTTP_MAX_HEADERS]; /* in order */
	bool has_authorization;   /* an Authorization header was sent */
	char bearer[KP_HTTP_MAX_TOKEN + 1];   /* its Bearer token, copied,
						 NUL-terminated; "" for none */
	size_t bearer_len;        /* bytes of bearer, 0 when none */
	int status;               /* when refused: 400, 414, 431 or 505 */
	char reason[KP_HTTP_REASON_MAX];      /* when refused: one line, no
						 newline, no request bytes
						 but printable ones */
};

/*
 * Parses the request head at the start of buf (len bytes; need not be
 * NUL-terminated; bytes after the head are ignored). Returns
 * KP_HTTP_COMPLETE with *out filled (header pointers borrowed from buf);
 * KP_HTTP_NEED_MORE when the bytes so far are a valid beginning of a head
 * no longer than the limits; KP_EBADREQUEST with out->status and
 * out->reason when they cannot begin a valid head. A complete line that is
 * wrong is refused at once, without waiting for the rest.
 */
int kp_http_request_parse(const char *buf, size_t len,
			  struct kp_http_request *out);

/*
 * Finds the header named name (case-insensitive; name_len bytes) in a
 * parsed request. Returns the first one, or NULL.
 */
const struct kp_http_header *
kp_http_request_header(const struct kp_http_request *req, const char *name,
		       size_t name_len);

#endif
