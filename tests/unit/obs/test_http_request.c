/*
 * test_http_request.c - the HTTP request head parser
 * (server/obs/http_request.h): what a browser, curl or a bad client sends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/error.h"
#include "obs/http_request.h"

static int parse(const char *s, struct kp_http_request *req)
{
	return kp_http_request_parse(s, strlen(s), req);
}

/* Parses s, which must be refused with status; returns the reason. */
static const char *refused(const char *s, size_t len, int status)
{
	static struct kp_http_request req;
	int rc = kp_http_request_parse(s, len, &req);

	if (rc != KP_EBADREQUEST)
		fail_msg("accepted (%d): %.*s", rc, (int)len, s);
	assert_int_equal(req.status, status);
	assert_true(req.reason[0] != '\0');
	assert_null(strchr(req.reason, '\n'));
	return req.reason;
}

/* A literal, NUL bytes included, must be refused with status. */
#define REFUSED(lit, status) refused(lit, sizeof(lit) - 1, status)

static void test_curl_request(void **state)
{
	struct kp_http_request req;
	const char *s = "GET /metrics?x=1 HTTP/1.1\r\nHost: 127.0.0.1:7071\r\n"
			"User-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
	const struct kp_http_header *h;

	(void)state;
	assert_int_equal(parse(s, &req), KP_HTTP_COMPLETE);
	assert_string_equal(req.method, "GET");
	assert_string_equal(req.target, "/metrics?x=1");
	assert_int_equal(req.path_len, 8);
	assert_string_equal(req.query, "x=1");
	assert_int_equal(req.version_minor, 1);
	assert_int_equal(req.head_len, strlen(s));
	assert_int_equal(req.header_count, 3);
	h = kp_http_request_header(&req, "user-agent", 10);
	assert_non_null(h);
	assert_int_equal(h->value_len, strlen("curl/7.88.1"));
	assert_memory_equal(h->value, "curl/7.88.1", h->value_len);
	assert_null(kp_http_request_header(&req, "cookie", 6));
	assert_false(req.has_authorization);
	assert_int_equal(req.bearer_len, 0);
	assert_string_equal(req.bearer, "");
}

static void test_lf_only_and_ows(void **state)
{
	struct kp_http_request req;
	const struct kp_http_header *h;

	(void)state;
	assert_int_equal(parse("\r\nGET / HTTP/1.0\nX-A: \t v a \t\nX-B:\n\n",
			       &req), KP_HTTP_COMPLETE);
	assert_string_equal(req.target, "/");
	assert_null(req.query);
	assert_int_equal(req.version_minor, 0);
	h = kp_http_request_header(&req, "X-A", 3);
	assert_non_null(h);
	assert_int_equal(h->value_len, 3);
	assert_memory_equal(h->value, "v a", 3);
	h = kp_http_request_header(&req, "x-b", 3);
	assert_non_null(h);
	assert_int_equal(h->value_len, 0);
}

static void test_need_more(void **state)
{
	const char *s = "GET /api/state HTTP/1.1\r\nHost: x\r\n\r\n";
	struct kp_http_request req;
	size_t n = strlen(s);

	(void)state;
	for (size_t i = 0; i < n; i++)
		assert_int_equal(kp_http_request_parse(s, i, &req),
				 KP_HTTP_NEED_MORE);
	assert_int_equal(kp_http_request_parse(s, n, &req), KP_HTTP_COMPLETE);
	/* Bytes after the head (a body) are left alone. */
	assert_int_equal(parse("GET / HTTP/1.1\r\n\r\nbody\x01", &req),
			 KP_HTTP_COMPLETE);
	assert_int_equal(req.head_len, 18);
}

/* Another protocol's first bytes are refused before any line end. */
static void test_not_http_refused_at_once(void **state)
{
	(void)state;
	/* A kappa frame: a 4-byte big-endian length, then msgpack. */
	assert_string_equal(REFUSED("\x00\x00\x00\x0e\x82\xa2id", 400),
			    "bad byte in the method");
	assert_string_equal(REFUSED("\x16\x03\x01", 400),   /* TLS hello */
			    "bad byte in the method");
	assert_string_equal(REFUSED("ABCDEFGHIJKLMNOPQ", 400),
			    "method longer than 15 bytes");
}

static void test_bearer(void **state)
{
	struct kp_http_request req;

	(void)state;
	assert_int_equal(parse("GET / HTTP/1.1\r\nauthorization: bEaReR "
			       "abc-._~+/XYZ09==\r\n\r\n", &req),
			 KP_HTTP_COMPLETE);
	assert_true(req.has_authorization);
	assert_string_equal(req.bearer, "abc-._~+/XYZ09==");
	assert_int_equal(req.bearer_len, 16);
	assert_int_equal(parse("GET / HTTP/1.1\r\nAUTHORIZATION:   Bearer   "
			       "t0k  \r\n\r\n", &req), KP_HTTP_COMPLETE);
	assert_string_equal(req.bearer, "t0k");
	/* Another scheme: noted, no token. */
	assert_int_equal(parse("GET / HTTP/1.1\r\nAuthorization: Basic "
			       "YTpi\r\n\r\n", &req), KP_HTTP_COMPLETE);
	assert_true(req.has_authorization);
	assert_int_equal(req.bearer_len, 0);
	assert_int_equal(parse("GET / HTTP/1.1\r\nAuthorization: Bearerx y"
			       "\r\n\r\n", &req), KP_HTTP_COMPLETE);
	assert_int_equal(req.bearer_len, 0);
}

static void test_bearer_refused(void **state)
{
	char big[1024];
	int n;

	(void)state;
	REFUSED("GET / HTTP/1.1\r\nAuthorization: Bearer\r\n\r\n", 400);
	REFUSED("GET / HTTP/1.1\r\nAuthorization: Bearer a b\r\n\r\n", 400);
	REFUSED("GET / HTTP/1.1\r\nAuthorization: Bearer =a\r\n\r\n", 400);
	REFUSED("GET / HTTP/1.1\r\nAuthorization: Bearer a=b\r\n\r\n", 400);
	assert_string_equal(
		REFUSED("GET / HTTP/1.1\r\nAuthorization: Bearer a\r\n"
			"Authorization: Bearer b\r\n\r\n", 400),
		"more than one Authorization header");
	n = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nAuthorization: "
		     "Bearer %0513d\r\n\r\n", 0);
	refused(big, (size_t)n, 400);
	n = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nAuthorization: "
		     "Bearer %0512d\r\n\r\n", 0);
	{
		struct kp_http_request req;

		assert_int_equal(kp_http_request_parse(big, (size_t)n, &req),
				 KP_HTTP_COMPLETE);
		assert_int_equal(req.bearer_len, 512);
	}
}

static void test_request_line_refused(void **state)
{
	(void)state;
	REFUSED("GET\r\n", 400);
	REFUSED("GET /\r\n\r\n", 400);
	REFUSED("GET  / HTTP/1.1\r\n\r\n", 400);
	REFUSED("GET / HTTP/1.1 \r\n\r\n", 400);
	REFUSED(" GET / HTTP/1.1\r\n\r\n", 400);
	REFUSED("G(T / HTTP/1.1\r\n\r\n", 400);
	REFUSED("GET metrics HTTP/1.1\r\n\r\n", 400);
	REFUSED("GET /a\x01 HTTP/1.1\r\n\r\n", 400);
	REFUSED("GET /a\0b HTTP/1.1\r\n\r\n", 400);
	REFUSED("GET /\xc3\xa9 HTTP/1.1\r\n\r\n", 400);
	REFUSED("GET / HTTP/1.1\r\r\n\r\n", 400);
	REFUSED("GET / http/1.1\r\n\r\n", 400);
	REFUSED("GET / HTTP/1.10\r\n\r\n", 400);
	REFUSED("GET / SPDY/3\r\n\r\n", 400);
	assert_string_equal(REFUSED("GET / HTTP/2.0\r\n\r\n", 505),
			    "only HTTP/1.x is supported");
	REFUSED("GET / HTTP/0.9\r\n\r\n", 505);
	REFUSED("ABCDEFGHIJKLMNOP / HTTP/1.1\r\n\r\n", 400);
}

static void test_long_target(void **state)
{
	char line[2048];
	struct kp_http_request req;
	int n;

	(void)state;
	n = snprintf(line, sizeof(line), "GET /%01022d HTTP/1.1\r\n\r\n", 0);
	assert_int_equal(kp_http_request_parse(line, (size_t)n, &req),
			 KP_HTTP_COMPLETE);
	assert_int_equal(strlen(req.target), 1023);
	n = snprintf(line, sizeof(line), "GET /%01023d HTTP/1.1\r\n\r\n", 0);
	refused(line, (size_t)n, 414);
	/* An endless request line is refused before its end arrives. */
	n = snprintf(line, sizeof(line), "GET /%01100d", 0);
	refused(line, (size_t)n, 414);
}

static void test_headers_refused(void **state)
{
	char *big = malloc(2 * KP_HTTP_MAX_HEAD);
	size_t n;

	(void)state;
	assert_non_null(big);
	REFUSED("GET / HTTP/1.1\r\nHost x\r\n\r\n", 400);
	REFUSED("GET / HTTP/1.1\r\n: x\r\n\r\n", 400);
	REFUSED("GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400);
	REFUSED("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 400);
	REFUSED("GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", 400);
	REFUSED("GET / HTTP/1.1\r\nA: b\0c\r\n\r\n", 400);
	REFUSED("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", 400);
	REFUSED("GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n", 400);
	/* 64 headers pass, 65 do not. */
	n = (size_t)sprintf(big, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < 64; i++)
		n += (size_t)sprintf(big + n, "H%d: v\r\n", i);
	{
		struct kp_http_request req;

		memcpy(big + n, "\r\n", 2);
		assert_int_equal(kp_http_request_parse(big, n + 2, &req),
				 KP_HTTP_COMPLETE);
		assert_int_equal(req.header_count, 64);
	}
	n += (size_t)sprintf(big + n, "H64: v\r\n\r\n");
	assert_string_equal(refused(big, n, 431), "more than 64 headers");
	/* A head over 8192 bytes, whole or not. */
	n = (size_t)sprintf(big, "GET / HTTP/1.1\r\n");
	while (n < KP_HTTP_MAX_HEAD + 10)
		n += (size_t)sprintf(big + n, "X: %03000d\r\n", 0);
	refused(big, n, 431);
	memcpy(big + n, "\r\n", 2);
	refused(big, n + 2, 431);
	/* A header line over 4096 bytes, whole or not. */
	n = (size_t)sprintf(big, "GET / HTTP/1.1\r\nX: %04100d", 0);
	refused(big, n, 431);
	memcpy(big + n, "\r\n\r\n", 4);
	refused(big, n + 4, 431);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_curl_request),
		cmocka_unit_test(test_lf_only_and_ows),
		cmocka_unit_test(test_need_more),
		cmocka_unit_test(test_not_http_refused_at_once),
		cmocka_unit_test(test_bearer),
		cmocka_unit_test(test_bearer_refused),
		cmocka_unit_test(test_request_line_refused),
		cmocka_unit_test(test_long_target),
		cmocka_unit_test(test_headers_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
