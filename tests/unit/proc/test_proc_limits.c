/*
 * test_proc_limits.c - the policies that hold a processor version back
 * (proc/proc_limits.h): when max_error_rate is judged and passed, when an
 * error window is over, and the credit that spreads a rate-limited replay
 * over each second instead of running a second's worth in a burst.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "proc/proc_limits.h"

static void test_error_rate_judged_from_min(void **state)
{
	(void)state;
	/* Every record failed: judged at min records, not before. */
	assert_false(kp_limits_error_rate_exceeded(19, 19, 20, 0.5));
	assert_true(kp_limits_error_rate_exceeded(20, 20, 20, 0.5));
	assert_true(kp_limits_error_rate_exceeded(1, 1, 1, 0.5));
	/* More than the fraction, not equal to it. */
	assert_false(kp_limits_error_rate_exceeded(20, 10, 20, 0.5));
	assert_true(kp_limits_error_rate_exceeded(20, 11, 20, 0.5));
	/* No error never pauses, not even with max 0; max 1 never does. */
	assert_false(kp_limits_error_rate_exceeded(100, 0, 20, 0.0));
	assert_true(kp_limits_error_rate_exceeded(100, 1, 20, 0.0));
	assert_false(kp_limits_error_rate_exceeded(100, 100, 20, 1.0));
	assert_false(kp_limits_error_rate_exceeded(0, 0, 0, 0.0));
}

static void test_error_window_full(void **state)
{
	(void)state;
	assert_false(kp_limits_error_window_full(99, 20));
	assert_true(kp_limits_error_window_full(KP_LIMITS_ERROR_WINDOW, 20));
	/* A min above the window's size makes the window that long. */
	assert_false(kp_limits_error_window_full(150, 200));
	assert_true(kp_limits_error_window_full(200, 200));
}

static void test_pace_without_rate(void **state)
{
	struct kp_pace pc = { 0, 0 };

	(void)state;
	assert_int_equal(kp_pace_allowance(&pc, 0), UINT64_MAX);
	kp_pace_refill(&pc, 0, 1000);
	assert_int_equal(pc.refill_ms, 0);
	assert_int_equal(kp_pace_allowance(&pc, 0), UINT64_MAX);
}

static void test_pace_credit(void **state)
{
	struct kp_pace pc = { 0, 0 };

	(void)state;
	/* Nothing before the first top-up, then one record. */
	assert_int_equal(kp_pace_allowance(&pc, 200), 0);
	kp_pace_refill(&pc, 200, 5000);
	assert_int_equal(kp_pace_allowance(&pc, 200), 1);
	/* 50 ms at 200/s: 10 more. */
	kp_pace_refill(&pc, 200, 5050);
	assert_int_equal(kp_pace_allowance(&pc, 200), 11);
	kp_pace_spend(&pc, 11);
	assert_int_equal(kp_pace_allowance(&pc, 200), 0);
	/* 7 ms: 1.4 records; the fraction is kept. */
	kp_pace_refill(&pc, 200, 5057);
	assert_int_equal(kp_pace_allowance(&pc, 200), 1);
	kp_pace_refill(&pc, 200, 5060);
	assert_int_equal(kp_pace_allowance(&pc, 200), 2);
	/* A second of waiting is worth KP_LIMITS_BURST_MS only. */
	kp_pace_refill(&pc, 200, 6060);
	assert_int_equal(kp_pace_allowance(&pc, 200),
			 200 * KP_LIMITS_BURST_MS / 1000);
	/* Spending more than there is (a batch's last record) leaves 0. */
	kp_pace_spend(&pc, 1000);
	assert_int_equal(pc.credit, 0);
	/* Below 10/s the burst is still one record. */
	kp_pace_refill(&pc, 1, 100000);
	assert_int_equal(kp_pace_allowance(&pc, 1), 1);
	/* A clock going back restarts the count instead of wrapping. */
	pc.credit = 0;
	kp_pace_refill(&pc, 200, 50);
	assert_int_equal(pc.refill_ms, 50);
	assert_int_equal(kp_pace_allowance(&pc, 200), 1);
	/* Huge rates and gaps saturate. */
	kp_pace_refill(&pc, UINT64_MAX, INT64_MAX);
	assert_true(kp_pace_allowance(&pc, UINT64_MAX) > 0);
	kp_pace_spend(&pc, UINT64_MAX);
	assert_int_equal(pc.credit, 0);
}

/* A replay at 200/s topped up every 50 ms runs 200 records a second. */
static void test_pace_over_seconds(void **state)
{
	struct kp_pace pc = { 0, 0 };
	uint64_t done = 0, most = 0;

	(void)state;
	for (int64_t now = 1000; now <= 6000; now += 50) {
		uint64_t n;

		kp_pace_refill(&pc, 200, now);
		n = kp_pace_allowance(&pc, 200);
		if (n > most)
			most = n;
		kp_pace_spend(&pc, n);
		done += n;
	}
	assert_in_range(done, 995, 1005);
	assert_in_range(most, 1, 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_error_rate_judged_from_min),
		cmocka_unit_test(test_error_window_full),
		cmocka_unit_test(test_pace_without_rate),
		cmocka_unit_test(test_pace_credit),
		cmocka_unit_test(test_pace_over_seconds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
