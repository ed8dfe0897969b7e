/*
 * histogram.h - a fixed-bucket latency histogram, rendered as a Prometheus
 * histogram in seconds (_bucket{le=...}, _sum, _count).
 *
 * Pure memory: no clock, no locks. The owner observes durations measured
 * elsewhere (in nanoseconds) from one thread and renders from the same
 * thread. An all-zero struct is an empty histogram, so one inside a
 * calloc'd owner needs no init.
 *
 * The bucket bounds are fixed for every histogram of the server, from 5 us
 * (a write to the page cache) to 10 s (a stalled disk), so dashboards can
 * aggregate across partitions.
 */
#ifndef KP_HISTOGRAM_H
#define KP_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Number of finite upper bounds; one more bucket holds the rest (+Inf). */
#define KP_HISTOGRAM_BOUNDS 20

struct kp_histogram {
	uint64_t buckets[KP_HISTOGRAM_BOUNDS + 1]; /* per bucket, not cumulative;
						      the last is > the
						      largest bound */
	uint64_t count;             /* observations */
	uint64_t sum_ns;            /* their total, nanoseconds */
};

/* Empties h. */
void kp_histogram_init(struct kp_histogram *h);

/* Counts one observation of ns nanoseconds (upper bounds inclusive). */
void kp_histogram_observe(struct kp_histogram *h, uint64_t ns);

/* The i-th upper bound in nanoseconds (i < KP_HISTOGRAM_BOUNDS). */
uint64_t kp_histogram_bound_ns(size_t i);

/* The i-th upper bound as written in le="..." (seconds; "+Inf" at the end). */
const char *kp_histogram_bound_text(size_t i);

/* Observations <= the i-th bound (i == KP_HISTOGRAM_BOUNDS: all of them). */
uint64_t kp_histogram_cumulative(const struct kp_histogram *h, size_t i);

/*
 * Appends the sample lines of h (no HELP/TYPE) to out: name_bucket with
 * each le, name_sum in seconds and name_count. labels is the text inside
 * the braces, already escaped (`topic="a",partition="0"`), or "" for none;
 * le comes last. Returns 0 or -ENOMEM.
 */
int kp_histogram_render(const struct kp_histogram *h, const char *name,
			const char *labels, struct kp_buf *out);

#endif
