/*
 * test_ctl_probe.c - telling kappad from other servers by the first reply
 * (probe.h): a kappa frame, an HTTP status line, a TLS record, silence, a
 * closed connection and other bytes, and the one-line message for each.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ctl/probe.h"

#define MAX (16u << 20)

static enum kp_ctl_probe_kind kind_of(const char *p, size_t len)
{
	return kp_ctl_probe_classify(p, len, MAX);
}

static void test_classify(void **state)
{
	/* {"id":1,"ok":true} in a frame: 4-byte length 9, then the map. */
	static const char frame[] = "\x00\x00\x00\x09\x82\xa2id\x01\xa2ok\xc3";
	static const char array[] = "\x00\x00\x00\x02\x91\x01";
	static const char alert[] = "\x15\x03\x03\x00\x02\x02\x46";
	const char *http = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";

	(void)state;
	assert_int_equal(kind_of(frame, sizeof(frame) - 1), KP_CTL_PROBE_KAPPA);
	/* Cut short, or with a bad length: not a kappa frame. */
	assert_int_equal(kind_of(frame, sizeof(frame) - 2), KP_CTL_PROBE_OTHER);
	assert_int_equal(kind_of(frame, 3), KP_CTL_PROBE_OTHER);
	assert_int_equal(kind_of("\x00\x00\x00\x00", 4), KP_CTL_PROBE_OTHER);
	assert_int_equal(kp_ctl_probe_classify(frame, sizeof(frame) - 1, 8),
			 KP_CTL_PROBE_OTHER);
	/* A frame whose body is not a map. */
	assert_int_equal(kind_of(array, sizeof(array) - 1), KP_CTL_PROBE_OTHER);
	assert_int_equal(kind_of("", 0), KP_CTL_PROBE_NOTHING);
	assert_int_equal(kind_of(http, strlen(http)), KP_CTL_PROBE_HTTP);
	assert_int_equal(kind_of("HTTP", 4), KP_CTL_PROBE_HTTP);
	assert_int_equal(kind_of("HTTX/1.1", 8), KP_CTL_PROBE_OTHER);
	assert_int_equal(kind_of(alert, sizeof(alert) - 1), KP_CTL_PROBE_TLS);
	assert_int_equal(kind_of("hello\n", 6), KP_CTL_PROBE_OTHER);
	assert_int_equal(kind_of("SSH-2.0-OpenSSH_9.2\r\n", 21), KP_CTL_PROBE_OTHER);
}

/* The message for kind after a failure with code; "" when not rewritten. */
static const char *explain(enum kp_ctl_probe_kind kind, int code,
			   const char *p, size_t len, struct kp_error *err)
{
	kp_error_set(err, code, "as it was");
	if (!kp_ctl_probe_explain(kind, "127.0.0.1:7071", 1000, 0, p, len, err)) {
		assert_string_equal(err->msg, "as it was");
		return "";
	}
	return err->msg;
}

static void test_explain(void **state)
{
	struct kp_error err;

	(void)state;
	assert_string_equal(explain(KP_CTL_PROBE_HTTP, KP_EBADFRAME, "HTTP/1.1", 8, &err),
			    "127.0.0.1:7071 answered like an HTTP server, not kappad (is it kappad's --http port?)");
	assert_string_equal(explain(KP_CTL_PROBE_NOTHING, -ETIMEDOUT, "", 0, &err),
			    "127.0.0.1:7071 did not answer within 1 s; is it kappad's --listen address?");
	assert_string_equal(explain(KP_CTL_PROBE_NOTHING, -ECONNRESET, "", 0, &err),
			    "127.0.0.1:7071 closed the connection without answering; is it "
			    "kappad's --listen address (with TLS? then give --tls-ca)?");
	/* Over TLS already, the hint would mislead. */
	kp_error_set(&err, -ECONNRESET, "as it was");
	assert_int_equal(kp_ctl_probe_explain(KP_CTL_PROBE_NOTHING, "h:1", 1000, 1,
					      "", 0, &err), 1);
	assert_null(strstr(err.msg, "--tls-ca"));
	assert_non_null(strstr(explain(KP_CTL_PROBE_TLS, KP_EBADFRAME, "\x15\x03\x03", 3, &err),
			       "--tls-ca"));
	/* Other bytes are quoted, the unprintable ones escaped, cut at 24. */
	assert_string_equal(explain(KP_CTL_PROBE_OTHER, KP_EBADFRAME,
				    "garbage\r\n\"0123456789abcdefghij", 31, &err),
			    "127.0.0.1:7071 does not speak the kappa protocol (it answered "
			    "\"garbage\\x0d\\x0a\\x220123456789abcd...\"); is it kappad's --listen address?");
	/* A kappa frame, or an error of the socket, is told as it was. */
	assert_string_equal(explain(KP_CTL_PROBE_KAPPA, KP_EUNAUTHORIZED, "", 0, &err), "");
	assert_string_equal(explain(KP_CTL_PROBE_NOTHING, -EPROTO, "", 0, &err), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_explain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
