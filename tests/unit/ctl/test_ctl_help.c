/*
 * test_ctl_help.c - kappactl's help (help.h): every command has a usage
 * naming its flags, a summary, flags of one line each and examples; the
 * full text and each command's help come from the one table, fit 80
 * columns, and an unknown command prints nothing.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl/help.h"

/* What kp_ctl_help_command writes for words (rc in *rc); caller frees. */
static char *help_of(const char *const *words, int n, int *rc)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	*rc = kp_ctl_help_command(f, words, n);
	fclose(f);
	return text;
}

/* Every line of text is at most max columns. */
static void assert_width(const char *text, size_t max, const char *what)
{
	while (*text != '\0') {
		const char *nl = strchr(text, '\n');
		size_t len = nl ? (size_t)(nl - text) : strlen(text);

		if (len > max)
			fail_msg("%s: a line of %zu columns: %.*s", what, len,
				 (int)len, text);
		text += len + (nl != NULL);
	}
}

/* The words of an entry's name, split in place into buf. */
static int split(const char *name, char *buf, size_t cap, const char *w[2])
{
	char *sp;

	snprintf(buf, cap, "%s", name);
	w[0] = buf;
	sp = strchr(buf, ' ');
	if (sp == NULL)
		return 1;
	*sp = '\0';
	w[1] = sp + 1;
	return 2;
}

static void test_table_entries(void **state)
{
	size_t n, i;
	const struct kp_ctl_help_cmd *t = kp_ctl_help_table(&n);

	(void)state;
	assert_true(n >= 30);
	for (i = 0; i < n; i++) {
		const char *p;

		assert_non_null(t[i].name);
		/* The usage begins with the command's own words. */
		assert_memory_equal(t[i].usage, t[i].name, strlen(t[i].name));
		assert_null(strchr(t[i].summary, '\n'));
		assert_true(strlen(t[i].about) > 0);
		/* Every example is a kappactl command line. */
		for (p = t[i].example; p != NULL; p = strchr(p, '\n'), p = p ? p + 1 : p)
			if (strncmp(p, "kappactl ", 9) != 0 &&
			    strstr(p, "| kappactl ") == NULL)
				fail_msg("%s: example not a kappactl command: %s",
					 t[i].name, p);
		/* Each flag: "--name ...\tdescription", named in the usage. */
		for (p = t[i].flags; p != NULL && *p != '\0';) {
			const char *nl = strchr(p, '\n'), *tab = strchr(p, '\t');
			char flag[64];
			size_t len = strcspn(p, " \t");

			assert_memory_equal(p, "--", 2);
			assert_non_null(tab);
			assert_true(nl == NULL || tab < nl);
			assert_true(len < sizeof(flag));
			memcpy(flag, p, len);
			flag[len] = '\0';
			if (strstr(t[i].usage, flag) == NULL)
				fail_msg("%s: flag %s is not in its usage",
					 t[i].name, flag);
			p = nl ? nl + 1 : p + strlen(p);
		}
	}
}

static void test_each_command(void **state)
{
	size_t n, i;
	const struct kp_ctl_help_cmd *t = kp_ctl_help_table(&n);

	(void)state;
	for (i = 0; i < n; i++) {
		const char *w[2];
		char buf[64], *text;
		int rc, nw = split(t[i].name, buf, sizeof(buf), w);

		text = help_of(w, nw, &rc);
		assert_int_equal(rc, 0);
		assert_non_null(strstr(text, "usage:\n  kappactl "));
		assert_non_null(strstr(text, t[i].name));
		assert_non_null(strstr(text, "\nflags:\n"));
		assert_non_null(strstr(text, "\nexample"));
		assert_non_null(strstr(text, "--token-file"));
		assert_width(text, 80, t[i].name);
		free(text);
	}
}

static void test_full_text(void **state)
{
	size_t n, i, len = 0;
	const struct kp_ctl_help_cmd *t = kp_ctl_help_table(&n);
	char *text = NULL;
	FILE *f = open_memstream(&text, &len);

	(void)state;
	kp_ctl_help_all(f);
	fclose(f);
	assert_non_null(strstr(text, "usage: kappactl [--addr HOST:PORT]"));
	for (i = 0; i < n; i++) {
		char first[200];
		size_t l = strcspn(t[i].usage, "\n");

		snprintf(first, sizeof(first), "\n  %.*s\n", (int)l, t[i].usage);
		if (strstr(text, first) == NULL)
			fail_msg("the full text lacks %s", first);
	}
	assert_width(text, 80, "kappactl --help");
	free(text);
}

static void test_groups(void **state)
{
	const char *topic[] = { "topic" }, *run[] = { "run" };
	char *text;
	int rc;

	(void)state;
	assert_true(kp_ctl_help_is_group("topic"));
	assert_true(kp_ctl_help_is_group("proc"));
	assert_true(kp_ctl_help_is_group("group"));
	assert_true(kp_ctl_help_is_group("view"));
	assert_false(kp_ctl_help_is_group("run"));
	assert_false(kp_ctl_help_is_group("top"));
	assert_false(kp_ctl_help_is_group("to"));
	text = help_of(topic, 1, &rc);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(text, "kappactl topic create NAME"));
	assert_non_null(strstr(text, "kappactl topic list"));
	assert_non_null(strstr(text, "kappactl topic describe NAME"));
	assert_non_null(strstr(text, "kappactl topic delete NAME"));
	assert_null(strstr(text, "produce"));
	free(text);
	text = help_of(run, 1, &rc);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(text, "--input-format"));
	assert_non_null(strstr(text, "kappactl run a.lua --input events.jsonl | kappactl run b.lua --input -"));
	free(text);
}

static void test_unknown(void **state)
{
	const char *const bad[][2] = { { "nosuch", NULL }, { "topic", "nosuch" },
				       { "run", "extra" }, { "top", "ic" },
				       { "topi", NULL } };
	const int nwords[] = { 1, 2, 2, 2, 1 };

	(void)state;
	for (size_t i = 0; i < sizeof(nwords) / sizeof(nwords[0]); i++) {
		int rc;
		char *text = help_of(bad[i], nwords[i], &rc);

		assert_int_equal(rc, -ENOENT);
		assert_string_equal(text, "");
		free(text);
	}
}

/* kp_ctl_help_for_verb of argv: exit status, out and err texts. */
static int for_verb(int argc, char **argv, char **out, char **err)
{
	size_t olen = 0, elen = 0;
	FILE *o = open_memstream(out, &olen), *e = open_memstream(err, &elen);
	int rc;

	assert_non_null(o);
	assert_non_null(e);
	rc = kp_ctl_help_for_verb(o, e, argc, argv);
	fclose(o);
	fclose(e);
	return rc;
}

static void test_verb_help(void **state)
{
	char *create[] = { "topic", "create", "t", "--help" };
	char *group[] = { "proc", "-h" };
	char *nosuch[] = { "nosuch", "--help" };
	char *after[] = { "view", "get", "v", "--", "-h" };
	char *opt[] = { "run", "--input", "-", "-h" };
	char *out, *err;

	(void)state;
	assert_true(kp_ctl_help_asked(3, create + 1));
	assert_true(kp_ctl_help_asked(3, opt + 1));
	/* After "--" a "-h" is an argument (a view key, say). */
	assert_false(kp_ctl_help_asked(4, after + 1));
	assert_int_equal(for_verb(4, create, &out, &err), 0);
	assert_non_null(strstr(out, "--partitions N"));
	assert_string_equal(err, "");
	free(out);
	free(err);
	assert_int_equal(for_verb(2, group, &out, &err), 0);
	assert_non_null(strstr(out, "kappactl proc replay NAME"));
	free(out);
	free(err);
	assert_int_equal(for_verb(2, nosuch, &out, &err), 2);
	assert_string_equal(out, "");
	assert_string_equal(err, "kappactl: no command 'nosuch' (kappactl help lists them)\n");
	free(out);
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_entries),
		cmocka_unit_test(test_each_command),
		cmocka_unit_test(test_full_text),
		cmocka_unit_test(test_groups),
		cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_verb_help),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
