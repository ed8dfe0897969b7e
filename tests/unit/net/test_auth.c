/*
 * test_auth.c - the tokens file (net/auth.h): what it accepts, what it
 * refuses and how (naming the line, never a token), token checks, and
 * which listen hosts count as loopback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/auth.h"

static char path[512];

static void write_tokens(const char *text, mode_t mode)
{
	const char *dir = getenv("KP_TEST_TMP");
	FILE *f;

	snprintf(path, sizeof(path), "%s/tokens-%d", dir ? dir : "/tmp",
		 (int)getpid());
	if (dir != NULL)
		mkdir(dir, 0755);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

/* Loads path expecting failure; the message must hold want. */
static void expect_refused(const char *text, mode_t mode, const char *want)
{
	struct kp_auth a;
	struct kp_error err;

	write_tokens(text, mode);
	assert_int_not_equal(kp_auth_load(&a, path, &err), 0);
	if (strstr(err.msg, want) == NULL)
		fail_msg("'%s' lacks '%s'", err.msg, want);
	assert_null(strstr(err.msg, "secret-one"));
	assert_false(kp_auth_enabled(&a));
	unlink(path);
}

static void test_roles(void **state)
{
	struct kp_auth a;
	struct kp_error err;

	(void)state;
	write_tokens("# comment\n\n  secret-one admin  # trailing\n"
		     "secret-two\twrite\r\nsecret-three read\n", 0600);
	assert_int_equal(kp_auth_load(&a, path, &err), 0);
	assert_true(kp_auth_enabled(&a));
	assert_int_equal(a.ntokens, 3);
	assert_int_equal(kp_auth_check(&a, "secret-one", 10), KP_ROLE_ADMIN);
	assert_int_equal(kp_auth_check(&a, "secret-two", 10), KP_ROLE_WRITE);
	assert_int_equal(kp_auth_check(&a, "secret-three", 12), KP_ROLE_READ);
	assert_int_equal(kp_auth_check(&a, "secret-on", 9), KP_ROLE_NONE);
	assert_int_equal(kp_auth_check(&a, "secret-onee", 11), KP_ROLE_NONE);
	assert_int_equal(kp_auth_check(&a, "", 0), KP_ROLE_NONE);
	assert_string_equal(kp_role_name(KP_ROLE_WRITE), "write");
	kp_auth_free(&a);
	assert_false(kp_auth_enabled(&a));
	unlink(path);
}

static void test_refusals(void **state)
{
	(void)state;
	expect_refused("secret-one admin\n", 0644, "chmod 600");
	expect_refused("secret-one admin\n", 0620, "chmod 600");
	expect_refused("secret-one admin\n", 0604, "chmod 600");
	expect_refused("# nothing\n", 0600, "holds no token");
	expect_refused("secret-one\n", 0600, ":1: expected 'TOKEN ROLE'");
	expect_refused("a read\nsecret-one root\n", 0600,
		       ":2: the role is read, write or admin");
	expect_refused("secret-one read\nsecret-one admin\n", 0600,
		       ":2: this token is already on an earlier line");
	expect_refused("secret-one read extra\n", 0600, ":1: expected");
	expect_refused("secret-\x01one read\n", 0600, "printable ASCII");
}

static void test_loopback_hosts(void **state)
{
	(void)state;
	assert_true(kp_host_is_loopback("127.0.0.1"));
	assert_true(kp_host_is_loopback("127.1.2.3"));
	assert_true(kp_host_is_loopback("::1"));
	assert_true(kp_host_is_loopback("::ffff:127.0.0.1"));
	assert_true(kp_host_is_loopback("localhost"));
	assert_false(kp_host_is_loopback("0.0.0.0"));
	assert_false(kp_host_is_loopback("::"));
	assert_false(kp_host_is_loopback("10.0.0.1"));
	assert_false(kp_host_is_loopback("128.0.0.1"));
	assert_false(kp_host_is_loopback("example.com"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roles),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_loopback_hosts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
