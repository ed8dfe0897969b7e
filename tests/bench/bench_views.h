/*
 * bench_views.h - what the view scenarios (bench_views.c) measure and how
 * they are reported (bench_views_report.c). Internal to kappa-bench.
 */
#ifndef KP_BENCH_VIEWS_H
#define KP_BENCH_VIEWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench.h"

#define RSS_EVERY_NS 50000000ull         /* RssAnon sample period */
#define PROBE_EVERY_NS 200000ull         /* one view_get per 200 us */
#define VIEW_CACHE_BYTES (64ull << 20)   /* kappad's view_cache_bytes */
#define RSS_SLACK_BYTES (64ull << 20)    /* the bound: cache + this */
#define RESTARTS 3                       /* restarts per kappad, median */
#define COMPACT_KEYS 1000
#define COMPACT_SEGMENT_BYTES 65536u

/* What one count run measured. */
struct count_run {
	double rps;                  /* records/s from proc_create to lag 0 */
	double seconds;
	uint64_t rss_max, rss_end;   /* RssAnon bytes, shown for the last K */
	uint64_t rss_before;         /* RssAnon after producing, before it */
	uint64_t disk, view_keys, view_bytes;
	uint64_t ckpts, ckpt_ms_sum, ckpt_ms_max; /* checkpoints seen */
};

/* What RESTARTS restarts of one kappad took (ms): medians and range. */
struct restarts {
	double ms, lo, hi;           /* exec to the first answered view_get */
	double listen_ms;            /* exec to the first connect (median) */
	bool ckpt_seen;              /* a checkpoint came before the kill */
};

/* One round: every K, then restart and latency at the last. */
struct round {
	struct count_run count[KP_BENCH_MAX_VIEW_KEYS];
	double restart_ms, empty_ms; /* exec to first answered view_get */
	struct restarts view, empty; /* the same, with range and listen */
	double idle_p50, idle_p99, busy_p50, busy_p99; /* us */
	double idle_max, busy_max;   /* us */
	size_t idle_n, busy_n;
	double busy_rps;             /* the N/2 records of the busy window */
};

struct compact_result {
	char why[200];               /* non-empty: skipped, and why */
	uint64_t left, keys_left, superseded, bound;
	double bytes_per_record, seconds;
	size_t pages;                /* view_scan pages compared */
	uint64_t processed_c, processed_u;
};

/*
 * Prints the table (or JSON lines) of o->runs rounds and the compaction
 * result, each line with its same-run peer and target.
 */
void kp_views_report(const struct kp_bench_views_opts *o,
		     const struct round *rs, const struct compact_result *cr);

#endif
