/*
 * bench_stats.c - the small numeric helpers the scenarios share: sleeping
 * to an absolute time, a growable array of samples, percentiles and
 * medians.
 */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void kp_bench_sleep_until(uint64_t t_ns)
{
	struct timespec ts = { .tv_sec = (time_t)(t_ns / 1000000000u),
			       .tv_nsec = (long)(t_ns % 1000000000u) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	       EINTR)
		;
}

void kp_bench_u64v_reserve(struct kp_bench_u64v *a, size_t n)
{
	size_t cap = a->cap ? a->cap : 4096;
	uint64_t *nv;

	if (n <= a->cap)
		return;
	while (cap < n)
		cap *= 2;
	nv = realloc(a->v, cap * sizeof(*nv));
	if (nv == NULL)
		kp_bench_die("out of memory");
	memset(nv + a->cap, 0, (cap - a->cap) * sizeof(*nv));
	a->v = nv;
	a->cap = cap;
}

void kp_bench_u64v_push(struct kp_bench_u64v *a, uint64_t x)
{
	kp_bench_u64v_reserve(a, a->n + 1);
	a->v[a->n++] = x;
}

uint64_t kp_bench_pct(const uint64_t *v, size_t n, unsigned q)
{
	size_t rank = (n * q + 99) / 100;

	return n == 0 ? 0 : v[rank == 0 ? 0 : rank - 1];
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double kp_bench_median(double *v, size_t n, double *lo, double *hi)
{
	qsort(v, n, sizeof(*v), cmp_double);
	if (lo != NULL)
		*lo = v[0];
	if (hi != NULL)
		*hi = v[n - 1];
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
