/*
 * view_query.h - the answers to view_get and view_scan (docs/PROTOCOL.md),
 * built from a view. The same functions run in kappad (a view it holds)
 * and in a processor's worker process (the view the processor writes),
 * so an answer is the same bytes wherever the view lives.
 */
#ifndef KP_VIEW_QUERY_H
#define KP_VIEW_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "view.h"
#include "base/buf.h"
#include "base/error.h"

#define KP_VIEW_GET_MAX_KEYS 10000
#define KP_VIEW_SCAN_MAX 100000

/* One key of a view_get. */
struct kp_vq_key {
	const char *ptr;
	size_t len;
};

/*
 * Appends to resp the whole response frame (request id) of a view_get of
 * keys: with many (the request gave `keys`), `items`; else `found` and
 * `value` of keys[0]. Returns 0, or an error with err (resp unchanged).
 */
int kp_vq_get(struct kp_view *v, uint64_t id, const struct kp_vq_key *keys,
	      uint32_t n, bool many, struct kp_buf *resp, struct kp_error *err);

/*
 * Appends to resp the response frame of a view_scan page: keys with
 * prefix after `after` (after_len 0: from the first), at most limit.
 * Returns 0 or an error with err.
 */
int kp_vq_scan(struct kp_view *v, uint64_t id, const char *prefix,
	       size_t prefix_len, const char *after, size_t after_len,
	       uint32_t limit, struct kp_buf *resp, struct kp_error *err);

/* The error of a failed view read, with what to do about it. */
int kp_vq_error(int rc, struct kp_error *err);

#endif
