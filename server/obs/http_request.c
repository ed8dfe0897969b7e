/*
 * http_request.c - the HTTP/1.x request head parser (http_request.h).
 *
 * One forward pass over lines: the request line, then header lines, up to
 * the empty line. Each complete line is checked as soon as it is seen;
 * an incomplete one only against its length limit.
 */
#include "http_request.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/error.h"

/* Longest request line: method SP target SP "HTTP/1.x" (1048). */
#define HTTP_MAX_REQUEST_LINE (KP_HTTP_MAX_METHOD + KP_HTTP_MAX_TARGET + 10)

/* One line of the head: [start, end) without its CRLF or LF. */
struct line {
	const char *p;   /* first byte */
	size_t len;      /* bytes before the line end */
};

static int refuse(struct kp_http_request *out, int status, const char *why)
{
	out->status = status;
	snprintf(out->reason, sizeof(out->reason), "%s", why);
	return KP_EBADREQUEST;
}

static bool is_alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	       (c >= 'A' && c <= 'Z');
}

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

/* RFC 6750 token68 character (the trailing '=' are checked apart). */
static bool is_b64tchar(unsigned char c)
{
	return is_alnum(c) || (c != '\0' && strchr("-._~+/", c));
}

static unsigned char lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static bool same_ci(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++) {
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return false;
	}
	return true;
}

/*
 * The line starting at pos: 1 with *ln and *next (the position after its
 * LF; a CR before the LF is not part of the line), or 0 when no LF
 * follows yet.
 */
static int take_line(const char *buf, size_t len, size_t pos,
		     struct line *ln, size_t *next)
{
	const char *lf = memchr(buf + pos, '\n', len - pos);
	size_t end;

	if (lf == NULL)
		return 0;
	end = (size_t)(lf - buf);
	*next = end + 1;
	if (end > pos && buf[end - 1] == '\r')
		end--;
	ln->p = buf + pos;
	ln->len = end - pos;
	return 1;
}

static int parse_version(const char *v, size_t n, struct kp_http_request *out)
{
	size_t i = 5;

	if (n == 8 && memcmp(v, "HTTP/1.", 7) == 0 && v[7] >= '0' &&
	    v[7] <= '9') {
		out->version_minor = v[7] - '0';
		return 0;
	}
	if (n < 8 || memcmp(v, "HTTP/", 5) != 0)
		return refuse(out, 400, "the request line does not end in "
			      "an HTTP version (want 'METHOD /path HTTP/1.1')");
	while (i < n && v[i] >= '0' && v[i] <= '9')
		i++;
	if (i == 5 || i + 2 != n || v[i] != '.' || v[i + 1] < '0' ||
	    v[i + 1] > '9')
		return refuse(out, 400, "malformed HTTP version");
	return refuse(out, 505, "only HTTP/1.x is supported");
}

static int parse_target(const char *t, size_t n, struct kp_http_request *out)
{
	const char *q;

	if (n == 0)
		return refuse(out, 400, "empty request target or extra space "
			      "in the request line");
	if (n > KP_HTTP_MAX_TARGET)
		return refuse(out, 414, "request target longer than 1023 bytes");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)t[i];

		if (c <= 0x20 || c >= 0x7f)
			return refuse(out, 400, "control, space or non-ASCII "
				      "byte in the request target");
	}
	if (t[0] != '/' && !(n == 1 && t[0] == '*'))
		return refuse(out, 400, "the request target must start "
			      "with '/'");
	memcpy(out->target, t, n);
	out->target[n] = '\0';
	q = memchr(out->target, '?', n);
	out->path_len = q != NULL ? (size_t)(q - out->target) : n;
	out->query = q != NULL ? q + 1 : NULL;
	return 0;
}

static int parse_request_line(struct line ln, struct kp_http_request *out)
{
	const char *sp1, *sp2, *end = ln.p + ln.len;
	size_t mlen;
	int rc;

	sp1 = memchr(ln.p, ' ', ln.len);
	if (sp1 == NULL)
		return refuse(out, 400, "the request line is not "
			      "'METHOD /path HTTP/1.1'");
	mlen = (size_t)(sp1 - ln.p);
	if (mlen == 0)
		return refuse(out, 400, "empty method");
	if (mlen > KP_HTTP_MAX_METHOD)
		return refuse(out, 400, "method longer than 15 bytes");
	for (size_t i = 0; i < mlen; i++) {
		if (!is_tchar((unsigned char)ln.p[i]))
			return refuse(out, 400, "bad byte in the method");
	}
	sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
	if (sp2 == NULL)
		return refuse(out, 400, "the request line has no HTTP "
			      "version (want 'METHOD /path HTTP/1.1')");
	rc = parse_target(sp1 + 1, (size_t)(sp2 - sp1 - 1), out);
	if (rc != 0)
		return rc;
	rc = parse_version(sp2 + 1, (size_t)(end - sp2 - 1), out);
	if (rc != 0)
		return rc;
	memcpy(out->method, ln.p, mlen);
	out->method[mlen] = '\0';
	return 0;
}

static int parse_bearer(const char *v, size_t n, struct kp_http_request *out)
{
	size_t i = 0, eq;

	while (i < n && v[i] == ' ')
		i++;
	v += i;
	n -= i;
	if (n == 0)
		return refuse(out, 400, "empty bearer token");
	if (n > KP_HTTP_MAX_TOKEN)
		return refuse(out, 400, "bearer token longer than 512 bytes");
	for (i = 0; i < n && is_b64tchar((unsigned char)v[i]); i++)
		;
	for (eq = i; i < n && v[i] == '='; i++)
		;
	if (i != n || eq == 0)
		return refuse(out, 400, "bad byte in the bearer token");
	memcpy(out->bearer, v, n);
	out->bearer[n] = '\0';
	out->bearer_len = n;
	return 0;
}

static int parse_authorization(const char *v, size_t n,
			       struct kp_http_request *out)
{
	const char *sp;
	size_t slen;

	if (out->has_authorization)
		return refuse(out, 400, "more than one Authorization header");
	out->has_authorization = true;
	sp = memchr(v, ' ', n);
	slen = sp != NULL ? (size_t)(sp - v) : n;
	if (!same_ci(v, slen, "bearer", 6))
		return 0;
	return parse_bearer(v + slen, n - slen, out);
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static int parse_header(struct line ln, struct kp_http_request *out)
{
	const char *colon, *v;
	struct kp_http_header *h;
	size_t nlen, vlen;

	if (is_ows(ln.p[0]))
		return refuse(out, 400, "obsolete line folding in the headers");
	if (ln.len > KP_HTTP_MAX_LINE)
		return refuse(out, 431, "header line longer than 4096 bytes");
	if (out->header_count == KP_HTTP_MAX_HEADERS)
		return refuse(out, 431, "more than 64 headers");
	colon = memchr(ln.p, ':', ln.len);
	if (colon == NULL)
		return refuse(out, 400, "header line without ':'");
	nlen = (size_t)(colon - ln.p);
	if (nlen == 0)
		return refuse(out, 400, "empty header name");
	if (nlen > KP_HTTP_MAX_NAME)
		return refuse(out, 431, "header name longer than 128 bytes");
	for (size_t i = 0; i < nlen; i++) {
		if (!is_tchar((unsigned char)ln.p[i]))
			return refuse(out, 400, "bad byte or space in a "
				      "header name");
	}
	v = colon + 1;
	vlen = ln.len - nlen - 1;
	while (vlen > 0 && is_ows(v[0])) {
		v++;
		vlen--;
	}
	while (vlen > 0 && is_ows(v[vlen - 1]))
		vlen--;
	for (size_t i = 0; i < vlen; i++) {
		unsigned char c = (unsigned char)v[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return refuse(out, 400, "control byte in a header "
				      "value");
	}
	h = &out->headers[out->header_count++];
	h->name = ln.p;
	h->name_len = nlen;
	h->value = v;
	h->value_len = vlen;
	if (same_ci(ln.p, nlen, "authorization", 13))
		return parse_authorization(v, vlen, out);
	return 0;
}

/*
 * The method so far of an unfinished request line: refused at once when
 * it cannot become one, so that a client speaking another protocol (a
 * kappa frame begins with a zero byte) is answered now, not at the
 * deadline.
 */
static int check_partial_method(const char *p, size_t n,
				struct kp_http_request *out)
{
	size_t i;

	for (i = 0; i < n && p[i] != ' ' && p[i] != '\r' && p[i] != '\n'; i++) {
		if (!is_tchar((unsigned char)p[i]))
			return refuse(out, 400, "bad byte in the method");
	}
	if (i > KP_HTTP_MAX_METHOD)
		return refuse(out, 400, "method longer than 15 bytes");
	return KP_HTTP_NEED_MORE;
}

/* Why an unfinished head cannot become a valid one, or 0. */
static int check_partial(const char *buf, size_t len, size_t pos,
			 bool in_request_line, struct kp_http_request *out)
{
	size_t pending = len - pos;
	int rc;

	if (in_request_line) {
		rc = check_partial_method(buf + pos, pending, out);
		if (rc != KP_HTTP_NEED_MORE)
			return rc;
	}

	if (in_request_line && pending > HTTP_MAX_REQUEST_LINE + 1)
		return refuse(out, 414, "request line longer than 1048 bytes");
	if (!in_request_line && pending > KP_HTTP_MAX_LINE + 1)
		return refuse(out, 431, "header line longer than 4096 bytes");
	if (len > KP_HTTP_MAX_HEAD)
		return refuse(out, 431, "request head larger than 8192 bytes");
	return KP_HTTP_NEED_MORE;
}

int kp_http_request_parse(const char *buf, size_t len,
			  struct kp_http_request *out)
{
	struct line ln;
	size_t pos = 0, next;
	bool seen_request_line = false;
	int rc;

	memset(out, 0, offsetof(struct kp_http_request, headers));
	out->has_authorization = false;
	out->bearer[0] = '\0';
	out->bearer_len = 0;
	out->status = 0;
	out->reason[0] = '\0';
	if (len == 0)
		return KP_HTTP_NEED_MORE;
	for (;;) {
		if (pos > KP_HTTP_MAX_HEAD)
			return refuse(out, 431, "request head larger than "
				      "8192 bytes");
		if (!take_line(buf, len, pos, &ln, &next))
			return check_partial(buf, len, pos, !seen_request_line,
					     out);
		pos = next;
		if (ln.len == 0) {
			if (seen_request_line)
				break;
			continue;
		}
		if (!seen_request_line) {
			if (ln.len > HTTP_MAX_REQUEST_LINE)
				return refuse(out, 414, "request line longer "
					      "than 1048 bytes");
			rc = parse_request_line(ln, out);
			seen_request_line = true;
		} else {
			rc = parse_header(ln, out);
		}
		if (rc != 0)
			return rc;
	}
	if (pos > KP_HTTP_MAX_HEAD)
		return refuse(out, 431, "request head larger than 8192 bytes");
	out->head_len = pos;
	return KP_HTTP_COMPLETE;
}

const struct kp_http_header *
kp_http_request_header(const struct kp_http_request *req, const char *name,
		       size_t name_len)
{
	for (size_t i = 0; i < req->header_count; i++) {
		const struct kp_http_header *h = &req->headers[i];

		if (same_ci(h->name, h->name_len, name, name_len))
			return h;
	}
	return NULL;
}
