/*
 * proc_metrics.h - the processor runtime seen from /metrics and /health:
 * per processor and version counters, lag in records and in event-time
 * seconds, input positions, views, reloads and replay progress; and the
 * processor findings of the health check.
 *
 * Reads the runtime's structures (proc_version.h) on the loop thread and
 * changes nothing in them. Lag in seconds is, per input partition, the
 * event time of the newest visible record minus that of the last processed
 * one (of the first unprocessed one when none was processed or it was
 * removed by retention); the version's is the largest. Those two
 * timestamps are read from the log (one batch each) at request time.
 */
#ifndef KP_PROC_METRICS_H
#define KP_PROC_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kp_metrics_writer;
struct kp_procs;

#define KP_LAG_WATCH_MAX 128

/* A processor seen over the lag threshold, and since when. */
struct kp_lag_watch {
	const void *proc;       /* struct kp_proc, identity only */
	int64_t created_ms;     /* its creation time (pointer reuse) */
	uint32_t version;       /* its live version number then */
	int64_t since_ms;       /* monotonic ms when first seen over */
};

/* What the health check remembers between requests (inside the server). */
struct kp_health_state {
	struct kp_lag_watch lagging[KP_LAG_WATCH_MAX];
	size_t count;
};

/* Lag thresholds of the health check (config.h). */
struct kp_lag_limits {
	uint64_t records;       /* over this many records ... (0: no check) */
	double seconds;         /* ... for longer than this */
};

/* One thing wrong with a processor. */
struct kp_proc_finding {
	const char *kind;       /* processor_lagging | _paused | _failed |
				   _stalled */
	const char *processor;  /* borrowed */
	uint32_t version;       /* 0 when it has no live version */
	const char *detail;     /* the reason, borrowed; may be NULL */
	uint64_t lag_records;   /* lagging: current lag */
	double over_seconds;    /* lagging: time over the threshold so far */
};

typedef void (*kp_proc_finding_fn)(void *arg, const struct kp_proc_finding *f);

/* Appends every processor family to w. ps may be NULL (none written). */
void kp_proc_metrics_render(struct kp_procs *ps, struct kp_metrics_writer *w);

/*
 * Checks every processor at mono_ms (a monotonic clock, ms): updates the
 * lag watch in st (lag over limits->records starts or keeps its clock;
 * under it forgets) and calls found (when not NULL) for each processor
 * that is unhealthy. Returns the number of findings. When more than
 * KP_LAG_WATCH_MAX processors lag at once, the ones without a slot are
 * reported at once, without waiting for limits->seconds.
 */
size_t kp_proc_health(struct kp_procs *ps, struct kp_health_state *st,
		      const struct kp_lag_limits *limits, int64_t mono_ms,
		      kp_proc_finding_fn found, void *arg);

#endif
