/*
 * state_json.h - a JSON snapshot of the server for the dashboard
 * (GET /api/state): topics, processors with their versions and replay
 * progress, the pipeline they form, and the server's clock. Loop thread
 * only.
 *
 * The body (one object; every string escaped, invalid UTF-8 replaced by
 * U+FFFD, so it is always valid JSON):
 *
 *   {"server": {"version", "pid", "now_ms", "started_ms", "uptime_ms"},
 *    "topics": [{"name", "logical", "generation", "current",
 *                "partitions", "start_offsets": [..],
 *                "end_offsets": [..], "end_offset" (sum), "bytes",
 *                "segments", "records_appended" (since start),
 *                "failed" (a partition stopped taking writes)}],
 *    "processors": [<the proc_status map of docs/PROTOCOL.md, with
 *                    "versions" the proc_versions array (each with its
 *                    role) and "version_count" the number of versions>],
 *    "pipeline": <the proc_graph map of docs/PROTOCOL.md: processors,
 *                 topics, edges>,
 *    "health": <the /health body: {"status", "reasons"}, metrics.h>}
 *
 * "topics" are the physical topics. One that is a version of a processor
 * output has "logical" the output's (alias) name and "generation" the
 * version's number: version 1 is the physical topic of the logical name
 * itself, version N > 1 is "<logical>.vN". "current" is true when the
 * logical name resolves to this topic now (and for a plain topic, whose
 * "logical" and "generation" are null). The alias itself is no entry.
 *
 * Topics and processors are in name order. Asking for the snapshot counts
 * as a /health request for health_lag_seconds (metrics.h).
 */
#ifndef KP_STATE_JSON_H
#define KP_STATE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

struct kp_server;

/*
 * Appends the snapshot of s to out; started_ms is when the server started
 * (epoch ms). Returns 0 or -ENOMEM.
 */
int kp_state_json(struct kp_server *s, int64_t started_ms,
		  struct kp_buf *out);

/*
 * Appends the msgpack object in data[0..len) as JSON (maps with non-string
 * keys get their keys as strings; bin as a string; NaN and infinities as
 * null). Returns 0, -EINVAL when data is not one whole object, or -ENOMEM.
 */
int kp_json_from_msgpack(struct kp_buf *out, const char *data, size_t len);

#endif
