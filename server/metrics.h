/*
 * metrics.h - renders the server's state as Prometheus text (0.0.4) and
 * judges its health.
 *
 * Loop thread only: the renderers read the catalog, the groups and the
 * processor runtime as they are at the moment of the request. Names are
 * prefixed kappa_ (plus process_resident_memory_bytes and the kafka_*
 * consumer-group names that existing dashboards query), counters end in
 * _total, units are seconds and bytes. Every family is written whole:
 * # HELP, # TYPE, then its samples.
 *
 * Health (GET /health) is unhealthy when any of these holds:
 *   - a live processor's lag has stayed above health_lag_records for longer
 *     than health_lag_seconds (measured between requests to /health or
 *     /metrics: the first request that sees it over starts the clock);
 *   - a processor was paused by its error rate, or its live version is
 *     stopped (failed: a time or memory budget, init, an unreadable input);
 *   - a partition stopped taking writes after an fsync (storage) error;
 *   - the data directory's file system has less than health_min_free_bytes
 *     or health_min_free_percent available.
 */
#ifndef KP_METRICS_H
#define KP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "histogram.h"

struct kp_server;
struct kp_topic_partition;

/* Appends the whole /metrics body to out. Returns 0 or -ENOMEM. */
int kp_metrics_render(struct kp_server *s, struct kp_buf *out);

/*
 * Appends the /health JSON body to out and returns 1 when healthy, 0 when
 * not. The body is {"status":"ok"|"unhealthy","reasons":[...]}, one object
 * per reason with "kind" and "message" and fields by kind:
 *   processor_lagging  processor, version, lag_records, threshold_records,
 *                      over_seconds, threshold_seconds
 *   processor_paused   processor, version (paused by its error rate)
 *   processor_failed   processor, version (0: no live version)
 *   partition_failed   topic, partition
 *   disk_low           path, free_bytes, total_bytes, min_free_bytes,
 *                      min_free_percent
 */
int kp_metrics_health(struct kp_server *s, struct kp_buf *out);

/* ---- for the renderers (metrics.c, proc_metrics.c) --------------------- */

/* A sink for exposition text that remembers the first append failure. */
struct kp_metrics_writer {
	struct kp_buf *out;     /* borrowed */
	int rc;                 /* 0, or -ENOMEM once an append failed */
};

/* The labels of one sample: `name="value",...`, values escaped. */
struct kp_labels {
	char text[2048];
	size_t len;
	bool overflow;          /* too long: samples with it are left out */
};

/* Empties l. */
void kp_labels_init(struct kp_labels *l);

/* Adds name="value" (escaping \, " and newline) / a number. */
void kp_labels_str(struct kp_labels *l, const char *name, const char *value);
void kp_labels_u64(struct kp_labels *l, const char *name, uint64_t value);

/* Writes # HELP and # TYPE of a family (type: counter, gauge, histogram). */
void kp_metrics_family(struct kp_metrics_writer *w, const char *name,
		       const char *type, const char *help);

/* Writes one sample; l may be NULL (no labels). */
void kp_metrics_u64(struct kp_metrics_writer *w, const char *name,
		    const struct kp_labels *l, uint64_t value);
void kp_metrics_f64(struct kp_metrics_writer *w, const char *name,
		    const struct kp_labels *l, double value);

/* Writes a histogram's samples (kp_histogram_render) with labels l. */
void kp_metrics_histogram(struct kp_metrics_writer *w, const char *name,
			  const struct kp_labels *l,
			  const struct kp_histogram *h);

/* ---- fed by the write path (writer.c) ----------------------------------- */

/*
 * Latency histograms of tp's write path, kept by writer.c on the loop
 * thread: the time to append one batch (kp_partition_append: page cache
 * and indexes), and the time of one sync job's fdatasyncs (on a worker).
 * NULL when tp has no writer state.
 */
const struct kp_histogram *
kp_writer_append_latency(const struct kp_topic_partition *tp);
const struct kp_histogram *
kp_writer_fsync_latency(const struct kp_topic_partition *tp);

#endif
