/*
 * metrics.h - renders the server's state as Prometheus text (0.0.4) and
 * judges its health.
 */
#ifndef KP_METRICS_H
#define KP_METRICS_H

#include "buf.h"

struct kp_server;

/* Appends the whole /metrics body to out. Returns 0 or -ENOMEM. */
int kp_metrics_render(struct kp_server *s, struct kp_buf *out);

/*
 * Appends the /health JSON body ({"status":"ok"|"unhealthy","reasons":[..]})
 * to out and returns 1 when healthy, 0 when not.
 */
int kp_metrics_health(struct kp_server *s, struct kp_buf *out);

#endif
