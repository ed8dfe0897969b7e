/*
 * test_ctl_run_input.c - what `kappactl run --input` reads (run_input.h):
 * which lines are values, records and view lines, how a record line
 * (as run and consume print it) becomes a record, and base64 keys.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "ctl/run_input.h"

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &e);

	if (v == NULL)
		fail_msg("bad test JSON %s: %s", text, e.text);
	return v;
}

static enum kp_ctl_run_shape shape(const char *text)
{
	json_t *v = parse(text);
	enum kp_ctl_run_shape s = kp_ctl_run_shape_of(v);

	json_decref(v);
	return s;
}

static void test_shapes(void **state)
{
	(void)state;
	/* What run prints, and what consume prints. */
	assert_int_equal(shape("{\"topic\":\"t\",\"ts\":0,\"key\":null,\"value\":1}"),
			 KP_CTL_RUN_RECORD);
	assert_int_equal(shape("{\"topic\":\"t\",\"partition\":0,\"offset\":5,\"ts\":9,"
			       "\"key\":\"k\",\"value\":{\"a\":1},\"provenance\":{}}"),
			 KP_CTL_RUN_RECORD);
	assert_int_equal(shape("{\"view\":{\"a\":1}}"), KP_CTL_RUN_VIEW);
	assert_int_equal(shape("{\"view\":3}"), KP_CTL_RUN_VIEW);
	/* Bare values: no topic, no value, a member outside the set. */
	assert_int_equal(shape("{\"value\":1}"), KP_CTL_RUN_VALUE);
	assert_int_equal(shape("{\"topic\":\"t\"}"), KP_CTL_RUN_VALUE);
	assert_int_equal(shape("{\"topic\":\"t\",\"value\":1,\"user\":\"ada\"}"),
			 KP_CTL_RUN_VALUE);
	assert_int_equal(shape("{\"view\":1,\"x\":2}"), KP_CTL_RUN_VALUE);
	assert_int_equal(shape("[\"topic\",\"value\"]"), KP_CTL_RUN_VALUE);
	assert_int_equal(shape("\"text\""), KP_CTL_RUN_VALUE);
	assert_int_equal(shape("{}"), KP_CTL_RUN_VALUE);
}

static void test_record_parts(void **state)
{
	struct kp_ctl_run_rec r;
	struct kp_error err;
	json_t *v;

	(void)state;
	v = parse("{\"topic\":\"clicks\",\"partition\":2,\"offset\":41,"
		  "\"ts\":1764054000000,\"key\":\"ada\",\"value\":{\"n\":1}}");
	assert_int_equal(kp_ctl_run_rec_parse(v, &r, &err), 0);
	assert_string_equal(r.topic, "clicks");
	assert_true(r.has_partition && r.partition == 2);
	assert_true(r.has_offset && r.offset == 41);
	assert_true(r.has_ts && r.ts == 1764054000000);
	assert_int_equal(r.key_len, 3);
	assert_memory_equal(r.key, "ada", 3);
	assert_ptr_equal(r.value, json_object_get(v, "value"));
	kp_ctl_run_rec_destroy(&r);
	json_decref(v);

	/* Absent and null members: defaults; an RFC 3339 ts. */
	v = parse("{\"value\":null,\"key\":null,\"topic\":null,"
		  "\"ts\":\"2025-11-25T07:00:00Z\"}");
	assert_int_equal(kp_ctl_run_rec_parse(v, &r, &err), 0);
	assert_null(r.topic);
	assert_false(r.has_partition || r.has_offset);
	assert_true(r.has_ts && r.ts == 1764054000000);
	assert_null(r.key);
	assert_true(json_is_null(r.value));
	kp_ctl_run_rec_destroy(&r);
	json_decref(v);
}

static void test_record_keys(void **state)
{
	struct kp_ctl_run_rec r;
	struct kp_error err;
	json_t *v;

	(void)state;
	/* Not UTF-8 (\xff\x00\xfe), printed by consume as base64: decoded. */
	v = parse("{\"value\":1,\"key\":\"base64:/wD+\"}");
	assert_int_equal(kp_ctl_run_rec_parse(v, &r, &err), 0);
	assert_int_equal(r.key_len, 3);
	assert_memory_equal(r.key, "\xff\x00\xfe", 3);
	kp_ctl_run_rec_destroy(&r);
	json_decref(v);
	/* "base64:aGk=" decodes to UTF-8 "hi": consume would not have encoded
	 * it, so it is the key's own text. */
	v = parse("{\"value\":1,\"key\":\"base64:aGk=\"}");
	assert_int_equal(kp_ctl_run_rec_parse(v, &r, &err), 0);
	assert_int_equal(r.key_len, 11);
	assert_memory_equal(r.key, "base64:aGk=", 11);
	kp_ctl_run_rec_destroy(&r);
	json_decref(v);
	/* Not base64 at all, and a number: the text. */
	v = parse("{\"value\":1,\"key\":\"base64:!!\"}");
	assert_int_equal(kp_ctl_run_rec_parse(v, &r, &err), 0);
	assert_memory_equal(r.key, "base64:!!", 9);
	kp_ctl_run_rec_destroy(&r);
	json_decref(v);
	v = parse("{\"value\":1,\"key\":42}");
	assert_int_equal(kp_ctl_run_rec_parse(v, &r, &err), 0);
	assert_int_equal(r.key_len, 2);
	assert_memory_equal(r.key, "42", 2);
	kp_ctl_run_rec_destroy(&r);
	json_decref(v);
}

static void test_record_errors(void **state)
{
	static const char *const bad[][2] = {
		{ "[1]", "not a record" },
		{ "{\"topic\":\"t\"}", "not a record" },
		{ "{\"value\":1,\"topic\":3}", "\"topic\"" },
		{ "{\"value\":1,\"partition\":-1}", "\"partition\"" },
		{ "{\"value\":1,\"partition\":4294967296}", "\"partition\"" },
		{ "{\"value\":1,\"offset\":\"5\"}", "\"offset\"" },
		{ "{\"value\":1,\"ts\":\"yesterday\"}", "\"ts\"" },
		{ "{\"value\":1,\"ts\":1.5}", "\"ts\"" },
	};
	struct kp_ctl_run_rec r;
	struct kp_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *v = parse(bad[i][0]);

		assert_int_equal(kp_ctl_run_rec_parse(v, &r, &err), -EINVAL);
		if (strstr(err.msg, bad[i][1]) == NULL)
			fail_msg("%s: %s", bad[i][0], err.msg);
		kp_ctl_run_rec_destroy(&r);
		json_decref(v);
	}
}

static void test_base64(void **state)
{
	static const char *const good[][2] = {
		{ "", "" }, { "Zg==", "f" }, { "Zm8=", "fo" }, { "Zm9v", "foo" },
		{ "Zm9vYg==", "foob" }, { "Zm9vYmFy", "foobar" },
	};
	static const char *const bad[] = { "Zg=", "Z===", "Zg=a", "Zm9v!A==",
					   "=Zm9", "Zg==Zm9v" };
	char out[16];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(kp_ctl_base64_decode(good[i][0], strlen(good[i][0]),
						      out, &n), 0);
		assert_int_equal(n, strlen(good[i][1]));
		assert_memory_equal(out, good[i][1], n);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(kp_ctl_base64_decode(bad[i], strlen(bad[i]), out, &n),
				 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shapes),
		cmocka_unit_test(test_record_parts),
		cmocka_unit_test(test_record_keys),
		cmocka_unit_test(test_record_errors),
		cmocka_unit_test(test_base64),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
