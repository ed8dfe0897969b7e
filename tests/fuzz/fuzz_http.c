/*
 * fuzz_http.c - libFuzzer target for the HTTP request head parser
 * (server/obs/http_request.h).
 *
 * The input is parsed from an exact-size heap copy (overruns are caught),
 * then every prefix the listener could have seen is parsed too, the way it
 * re-parses its buffer after each read. Checked: the result is one of the
 * three documented ones; a complete head is no longer than the input,
 * within the limits, and its fields point into it and satisfy the grammar;
 * a refusal has a documented status and a one-line printable reason; a
 * prefix of a complete head is never refused and never complete before the
 * blank line; a refused input stays refused when more bytes follow.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "obs/http_request.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && p + n <= buf + len;
}

static void check_complete(const struct kp_http_request *r, const char *buf,
			   size_t len)
{
	size_t mlen = strlen(r->method), tlen = strlen(r->target);

	CHECK(r->head_len >= 4 && r->head_len <= len);
	CHECK(r->head_len <= KP_HTTP_MAX_HEAD);
	CHECK(buf[r->head_len - 1] == '\n');
	CHECK(mlen >= 1 && mlen <= KP_HTTP_MAX_METHOD);
	CHECK(tlen >= 1 && tlen <= KP_HTTP_MAX_TARGET);
	CHECK(r->target[0] == '/' || strcmp(r->target, "*") == 0);
	for (size_t i = 0; i < tlen; i++)
		CHECK(r->target[i] > 0x20 && r->target[i] < 0x7f);
	CHECK(r->path_len <= tlen);
	CHECK((r->query == NULL) == (r->path_len == tlen));
	if (r->query != NULL)
		CHECK(r->query == r->target + r->path_len + 1);
	CHECK(r->version_minor >= 0 && r->version_minor <= 9);
	CHECK(r->header_count <= KP_HTTP_MAX_HEADERS);
	for (size_t i = 0; i < r->header_count; i++) {
		const struct kp_http_header *h = &r->headers[i];

		CHECK(h->name_len >= 1 && h->name_len <= KP_HTTP_MAX_NAME);
		CHECK(inside(h->name, h->name_len, buf, r->head_len));
		CHECK(inside(h->value, h->value_len, buf, r->head_len));
		CHECK(h->name + h->name_len < h->value + 1);
		CHECK(memchr(h->name, ':', h->name_len) == NULL);
		CHECK(memchr(h->value, '\n', h->value_len) == NULL);
		CHECK(memchr(h->value, '\r', h->value_len) == NULL);
		CHECK(memchr(h->value, '\0', h->value_len) == NULL);
		CHECK(kp_http_request_header(r, h->name, h->name_len) != NULL);
	}
	CHECK(strlen(r->bearer) == r->bearer_len);
	CHECK(r->bearer_len <= KP_HTTP_MAX_TOKEN);
	if (r->bearer_len > 0) {
		const struct kp_http_header *a =
			kp_http_request_header(r, "Authorization", 13);

		CHECK(r->has_authorization && a != NULL);
		CHECK(memmem(a->value, a->value_len, r->bearer,
			     r->bearer_len) != NULL);
		CHECK(strchr(r->bearer, ' ') == NULL);
	}
	if (!r->has_authorization)
		CHECK(kp_http_request_header(r, "authorization", 13) == NULL);
}

static void check_refused(const struct kp_http_request *r)
{
	size_t n = strlen(r->reason);

	CHECK(r->status == 400 || r->status == 414 || r->status == 431 ||
	      r->status == 505);
	CHECK(n > 0 && n < KP_HTTP_REASON_MAX);
	for (size_t i = 0; i < n; i++)
		CHECK(r->reason[i] >= 0x20 && r->reason[i] < 0x7f);
}

static int parse_copy(const char *data, size_t len, struct kp_http_request *r)
{
	char *copy = malloc(len ? len : 1);
	int rc;

	CHECK(copy != NULL);
	memcpy(copy, data, len);
	rc = kp_http_request_parse(copy, len, r);
	CHECK(rc == KP_HTTP_COMPLETE || rc == KP_HTTP_NEED_MORE ||
	      rc == KP_EBADREQUEST);
	if (rc == KP_HTTP_COMPLETE)
		check_complete(r, copy, len);
	else if (rc == KP_EBADREQUEST)
		check_refused(r);
	free(copy);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct kp_http_request whole, part;
	const char *buf = (const char *)data;
	size_t head, step;
	int rc, prc;

	if (size > 4 * KP_HTTP_MAX_HEAD)
		return 0;
	rc = parse_copy(buf, size, &whole);
	head = rc == KP_HTTP_COMPLETE ? whole.head_len : size;
	/* The listener's reads: a few prefixes, then the bytes up to head. */
	step = head / 7 + 1;
	for (size_t n = 0; n < head; n += step) {
		prc = parse_copy(buf, n, &part);
		if (rc == KP_HTTP_COMPLETE)
			CHECK(prc == KP_HTTP_NEED_MORE);
		if (prc == KP_EBADREQUEST)
			CHECK(rc == KP_EBADREQUEST);
	}
	if (rc == KP_HTTP_COMPLETE) {
		prc = parse_copy(buf, head, &part);
		CHECK(prc == KP_HTTP_COMPLETE && part.head_len == head);
		CHECK(strcmp(part.method, whole.method) == 0);
		CHECK(strcmp(part.target, whole.target) == 0);
		CHECK(part.header_count == whole.header_count);
		CHECK(strcmp(part.bearer, whole.bearer) == 0);
		if (head > 0) {
			prc = parse_copy(buf, head - 1, &part);
			CHECK(prc == KP_HTTP_NEED_MORE);
		}
	}
	return 0;
}
