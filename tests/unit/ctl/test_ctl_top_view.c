/*
 * test_ctl_top_view.c - `kappactl top` without a server (top_view.h): the
 * rates between two samples (append rate per topic, records/s per
 * processor, null when not measurable), replay progress in the snapshot,
 * and the text table.
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

#include "ctl/top_view.h"

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *v = json_loads(text, 0, &e);

	assert_non_null(v);
	return v;
}

/* A sample of one topic t (end offsets e0, e1) and one processor. */
static void make(struct kp_ctl_top_sample *s, uint64_t at, int e0, int e1,
		 int version, int processed, const char *replay)
{
	char t[512], p[1024];

	snprintf(t, sizeof(t),
		 "[{\"name\":\"t\",\"partitions\":2,\"partition_stats\":["
		 "{\"partition\":0,\"start_offset\":0,\"end_offset\":%d},"
		 "{\"partition\":1,\"start_offset\":0,\"end_offset\":%d}]}]",
		 e0, e1);
	snprintf(p, sizeof(p),
		 "[{\"name\":\"wc\",\"version\":%d,\"state\":\"running\","
		 "\"records_processed\":%d,\"lag\":7,\"replay\":%s}]",
		 version, processed, replay);
	s->topics = parse(t);
	s->procs = parse(p);
	s->at_ms = at;
}

static char *dump(json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);

	json_decref(v);
	assert_non_null(s);
	return s;
}

static void test_rates(void **state)
{
	struct kp_ctl_top_sample a, b;
	char *s;

	(void)state;
	make(&a, 10000, 100, 50, 1, 1000, "null");
	make(&b, 12000, 300, 250, 1, 5000, "null");
	s = dump(kp_ctl_top_snapshot(&a, &b));
	/* 400 records appended over 2 s; 4000 processed over 2 s. */
	assert_string_equal(s,
		"{\"topics\":[{\"name\":\"t\",\"partitions\":2,"
		"\"end_offsets\":[300,250],\"append_rate\":200.0}],"
		"\"processors\":[{\"name\":\"wc\",\"version\":1,"
		"\"state\":\"running\",\"records_processed\":5000,"
		"\"records_per_second\":2000.0,\"lag\":7,\"replay\":null}]}");
	free(s);
	/* Without an earlier sample the rates are unknown. */
	s = dump(kp_ctl_top_snapshot(NULL, &b));
	assert_non_null(strstr(s, "\"append_rate\":null"));
	assert_non_null(strstr(s, "\"records_per_second\":null"));
	free(s);
	kp_ctl_top_sample_destroy(&a);
	kp_ctl_top_sample_destroy(&b);
}

static void test_counters_going_back(void **state)
{
	struct kp_ctl_top_sample a, b;
	char *s;

	(void)state;
	/* Topic recreated (end offset fell), processor cut over to v2. */
	make(&a, 0, 100, 50, 1, 1000, "null");
	make(&b, 1000, 10, 50, 2, 20, "null");
	s = dump(kp_ctl_top_snapshot(&a, &b));
	assert_non_null(strstr(s, "\"append_rate\":null"));
	assert_non_null(strstr(s, "\"records_per_second\":null"));
	free(s);
	kp_ctl_top_sample_destroy(&a);
	kp_ctl_top_sample_destroy(&b);
}

static void test_replay_and_table(void **state)
{
	struct kp_ctl_top_sample a, b;
	const char *replay = "{\"version\":2,\"state\":\"running\",\"reason\":null,"
			     "\"records_done\":4000,\"records_to_go\":6000,"
			     "\"records_per_second\":1000,\"eta_ms\":6000,"
			     "\"rate_limit\":0}";
	char *s, *text = NULL;
	size_t len = 0;
	FILE *f;
	json_t *snap;

	(void)state;
	make(&a, 0, 0, 0, 1, 0, replay);
	make(&b, 1000, 0, 0, 1, 0, replay);
	snap = kp_ctl_top_snapshot(&a, &b);
	s = json_dumps(json_object_get(json_array_get(json_object_get(snap,
		"processors"), 0), "replay"), JSON_COMPACT | JSON_PRESERVE_ORDER);
	assert_string_equal(s, "{\"version\":2,\"state\":\"running\","
			       "\"records_done\":4000,\"records_to_go\":6000,"
			       "\"records_per_second\":1000,\"eta_ms\":6000}");
	free(s);
	f = open_memstream(&text, &len);
	assert_non_null(f);
	kp_ctl_top_render(f, snap, "title", 120);
	fclose(f);
	assert_memory_equal(text, "title\n\n", 7);
	assert_non_null(strstr(text, "TOPIC"));
	assert_non_null(strstr(text, "PROCESSOR"));
	assert_non_null(strstr(text, "\nt "));
	assert_non_null(strstr(text, "\nwc "));
	assert_non_null(strstr(text, "4000/10000 records"));
	assert_non_null(strstr(text, "ETA 0:06"));
	for (char *l = text; *l != '\0';) {
		char *nl = strchr(l, '\n');

		assert_non_null(nl);
		assert_true(nl - l <= 120);
		l = nl + 1;
	}
	free(text);
	json_decref(snap);
	kp_ctl_top_sample_destroy(&a);
	kp_ctl_top_sample_destroy(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rates),
		cmocka_unit_test(test_counters_going_back),
		cmocka_unit_test(test_replay_and_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
