/*
 * http.h - the HTTP listener: GET /metrics (Prometheus text format 0.0.4),
 * GET /health (200 or 503 with JSON reasons), GET / (the dashboard page)
 * and GET /api/state (the JSON the page polls). One request per connection
 * (Connection: close); request heads are parsed strictly (http_request.h).
 * With the server's TLS configured, the port speaks HTTPS only.
 */
#ifndef KP_HTTP_H
#define KP_HTTP_H

#include "base/error.h"

struct kp_server;
struct kp_http;

/* Binds cfg.http_host:http_port on s's loop. Returns 0 and *out. */
int kp_http_start(struct kp_server *s, struct kp_http **out,
		  struct kp_error *err);

/* Closes the listener and open HTTP connections (async). */
void kp_http_stop(struct kp_http *h);

/* Frees the listener after its handles closed. NULL is a no-op. */
void kp_http_free(struct kp_http *h);

#endif
