/*
 * test_ctl_args.c - kappactl's positions on the command line of the proc
 * verbs (cmd_proc.h, cmd.h): what --from and --to send to the server
 * ("earliest", "latest", {"offset": N}, epoch ms from @TIME), and the usage
 * errors for forms a verb does not take.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "ctl/cmd_proc.h"

/* Runs kp_ctl_proc_position; returns its status, *json the text sent. */
static int position(const char *s, unsigned allow, char **json, char **err)
{
	size_t elen = 0;
	FILE *ef = open_memstream(err, &elen);
	struct kp_ctl_ctx ctx = { .addr = "127.0.0.1:1", .in = stdin,
				  .out = stdout, .err = ef };
	json_t *v = NULL;
	int rc;

	assert_non_null(ef);
	rc = kp_ctl_proc_position(&ctx, "from", s, allow, &v);
	fclose(ef);
	*json = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	json_decref(v);
	return rc;
}

static void expect(const char *s, unsigned allow, const char *want)
{
	char *json, *err;

	assert_int_equal(position(s, allow, &json, &err), 0);
	assert_string_equal(json, want);
	assert_string_equal(err, "");
	free(json);
	free(err);
}

static void test_forms(void **state)
{
	(void)state;
	expect("earliest", ~0u, "\"earliest\"");
	expect("latest", ~0u, "\"latest\"");
	expect("42", ~0u, "{\"offset\":42}");
	expect("@1764054000000", ~0u, "1764054000000");
	expect("@2025-11-25T07:00:00Z", ~0u, "1764054000000");
	expect("@2025-11-25T08:00:00.5+01:00", ~0u, "1764054000500");
}

static void test_refused(void **state)
{
	const unsigned replay = KP_CTL_ALLOW_EARLIEST | KP_CTL_ALLOW_OFFSET |
				KP_CTL_ALLOW_TIME;
	const char *bad[] = { "latest", "", "-1", "12x", "@", "@yesterday",
			      "9223372036854775808" };
	char *json, *err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(position(bad[i], replay, &json, &err),
				 KP_CTL_EXIT_USAGE);
		assert_null(json);
		/* One line naming the forms the flag takes. */
		assert_non_null(strstr(err, "--from wants earliest|OFFSET|@TIME"));
		assert_non_null(strchr(err, '\n'));
		assert_int_equal(strchr(err, '\n')[1], '\0');
		free(err);
	}
	/* verify --to takes a time only. */
	assert_int_equal(position("5", KP_CTL_ALLOW_TIME, &json, &err),
			 KP_CTL_EXIT_USAGE);
	assert_non_null(strstr(err, "wants @TIME"));
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
