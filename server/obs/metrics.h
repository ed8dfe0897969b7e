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
 *     than health_lag_seconds (measured between requests to /health,
 *     /metrics or /api/state: the first request that sees it over starts
 *     the clock);
 *   - a processor was paused by its error rate, or its live version is
 *     stopped (failed: a time or memory budget, init, an unreadable input);
 *   - a partition stopped taking writes after an fsync (storage) error, or
 *     refuses writes for lack of disk space;
 *   - the data directory's file system has less than health_min_free_bytes
 *     or health_min_free_percent available.
 */
#ifndef KP_METRICS_H
#define KP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

struct kp_server;

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
 *   partition_failed   topic, partition (stopped by an fsync error)
 *   partition_full     topic, partition (writes refused: no disk space)
 *   disk_low           path, free_bytes, total_bytes, min_free_bytes,
 *                      min_free_percent
 */
int kp_metrics_health(struct kp_server *s, struct kp_buf *out);

#endif
