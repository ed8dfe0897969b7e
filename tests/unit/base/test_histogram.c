/*
 * test_histogram.c - latency histograms: bucket edges (upper bounds
 * inclusive), cumulative counts, the sum in seconds, and the exposition
 * lines a Prometheus scraper reads (labels, le last, +Inf == _count);
 * label escaping of the metrics writer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/histogram.h"
#include "base/metrics_text.h"

/* The rendered text as a NUL-terminated string (kept in b). */
static const char *text_of(struct kp_buf *b)
{
	assert_int_equal(kp_buf_append(b, "", 1), 0);
	b->len--;
	return b->data;
}

/* The value of the line that starts with prefix + " ", or -1. */
static double value_of(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);

	for (const char *p = text; p != NULL && *p != '\0';) {
		const char *nl = strchr(p, '\n');

		if (strncmp(p, prefix, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p = nl != NULL ? nl + 1 : NULL;
	}
	return -1;
}

static void test_empty(void **state)
{
	struct kp_histogram h;
	struct kp_buf b;
	const char *t;

	(void)state;
	kp_histogram_init(&h);
	kp_buf_init(&b);
	assert_int_equal(kp_histogram_render(&h, "x_seconds", "", &b), 0);
	t = text_of(&b);
	assert_non_null(strstr(t, "x_seconds_bucket{le=\"+Inf\"} 0\n"));
	assert_non_null(strstr(t, "x_seconds_sum 0.000000000\n"));
	assert_non_null(strstr(t, "x_seconds_count 0\n"));
	kp_buf_destroy(&b);
}

static void test_bounds_inclusive(void **state)
{
	struct kp_histogram h;

	(void)state;
	kp_histogram_init(&h);
	for (size_t i = 0; i < KP_HISTOGRAM_BOUNDS; i++) {
		uint64_t b = kp_histogram_bound_ns(i);

		kp_histogram_observe(&h, b);     /* on the edge: bucket i */
		kp_histogram_observe(&h, b + 1); /* just over: bucket i + 1 */
		assert_true(i == 0 || b > kp_histogram_bound_ns(i - 1));
	}
	assert_int_equal(h.buckets[0], 1);
	for (size_t i = 1; i < KP_HISTOGRAM_BOUNDS; i++)
		assert_int_equal(h.buckets[i], 2);
	assert_int_equal(h.buckets[KP_HISTOGRAM_BOUNDS], 1);
	assert_int_equal(h.count, 2 * KP_HISTOGRAM_BOUNDS);
	for (size_t i = 0; i < KP_HISTOGRAM_BOUNDS; i++)
		assert_int_equal(kp_histogram_cumulative(&h, i), 2 * i + 1);
	assert_int_equal(kp_histogram_cumulative(&h, KP_HISTOGRAM_BOUNDS),
			 h.count);
}

/* le texts parse to the bounds in seconds, ascending, ending in +Inf. */
static void test_bound_texts(void **state)
{
	(void)state;
	for (size_t i = 0; i < KP_HISTOGRAM_BOUNDS; i++) {
		double s = strtod(kp_histogram_bound_text(i), NULL);
		double want = (double)kp_histogram_bound_ns(i) / 1e9;

		assert_true(s > want * 0.999999 && s < want * 1.000001);
	}
	assert_string_equal(kp_histogram_bound_text(KP_HISTOGRAM_BOUNDS),
			    "+Inf");
	assert_int_equal(kp_histogram_bound_ns(0), 5000);
	assert_int_equal(kp_histogram_bound_ns(KP_HISTOGRAM_BOUNDS - 1),
			 10000000000ull);
}

static void test_render(void **state)
{
	struct kp_histogram h;
	struct kp_buf b;
	const char *t;
	double prev = 0;
	char key[256];
	size_t lines = 0;

	(void)state;
	kp_histogram_init(&h);
	kp_histogram_observe(&h, 3000);          /* 3 us   -> le 5e-06 */
	kp_histogram_observe(&h, 200000);        /* 200 us -> le 0.00025 */
	kp_histogram_observe(&h, 200000);
	kp_histogram_observe(&h, 1500000000ull); /* 1.5 s  -> le 2.5 */
	kp_histogram_observe(&h, 60000000000ull); /* 60 s -> +Inf only */
	kp_buf_init(&b);
	assert_int_equal(kp_histogram_render(&h, "kappa_t_seconds",
					     "topic=\"a\",partition=\"0\"", &b),
			 0);
	t = text_of(&b);
	for (size_t i = 0; i <= KP_HISTOGRAM_BOUNDS; i++) {
		double v;

		snprintf(key, sizeof(key),
			 "kappa_t_seconds_bucket{topic=\"a\",partition=\"0\",le=\"%s\"}",
			 kp_histogram_bound_text(i));
		v = value_of(t, key);
		assert_true(v >= prev);
		prev = v;
	}
	assert_true(value_of(t, "kappa_t_seconds_bucket{topic=\"a\",partition=\"0\",le=\"5e-06\"}") == 1);
	assert_true(value_of(t, "kappa_t_seconds_bucket{topic=\"a\",partition=\"0\",le=\"0.0001\"}") == 1);
	assert_true(value_of(t, "kappa_t_seconds_bucket{topic=\"a\",partition=\"0\",le=\"0.00025\"}") == 3);
	assert_true(value_of(t, "kappa_t_seconds_bucket{topic=\"a\",partition=\"0\",le=\"1\"}") == 3);
	assert_true(value_of(t, "kappa_t_seconds_bucket{topic=\"a\",partition=\"0\",le=\"2.5\"}") == 4);
	assert_true(value_of(t, "kappa_t_seconds_bucket{topic=\"a\",partition=\"0\",le=\"10\"}") == 4);
	assert_true(value_of(t, "kappa_t_seconds_bucket{topic=\"a\",partition=\"0\",le=\"+Inf\"}") == 5);
	assert_true(value_of(t, "kappa_t_seconds_count{topic=\"a\",partition=\"0\"}") == 5);
	assert_non_null(strstr(t, "kappa_t_seconds_sum{topic=\"a\",partition=\"0\"} 61.500403000\n"));
	for (const char *p = t; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, KP_HISTOGRAM_BOUNDS + 1 + 2);
	kp_buf_destroy(&b);
}

static void test_labels_escaped(void **state)
{
	struct kp_labels l;
	struct kp_buf b;
	struct kp_metrics_writer w = { &b, 0 };
	char big[3000];

	(void)state;
	kp_buf_init(&b);
	kp_labels_init(&l);
	kp_labels_str(&l, "processor", "a\"b\\c\nd");
	kp_labels_u64(&l, "version", 7);
	assert_string_equal(l.text, "processor=\"a\\\"b\\\\c\\nd\",version=\"7\"");
	kp_metrics_u64(&w, "kappa_x", &l, 3);
	kp_metrics_f64(&w, "kappa_y", NULL, 0.5);
	assert_string_equal(text_of(&b),
			    "kappa_x{processor=\"a\\\"b\\\\c\\nd\",version=\"7\"} 3\n"
			    "kappa_y 0.5\n");
	/* Labels that do not fit are never cut: the sample is left out. */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	kp_labels_init(&l);
	kp_labels_str(&l, "group", big);
	assert_true(l.overflow);
	b.len = 0;
	kp_metrics_u64(&w, "kappa_x", &l, 1);
	assert_int_equal(b.len, 0);
	assert_int_equal(w.rc, 0);
	kp_buf_destroy(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_bounds_inclusive),
		cmocka_unit_test(test_bound_texts),
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_labels_escaped),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
