/*
 * dashboard.h - the dashboard page served at GET / on the HTTP port: one
 * self-contained HTML file (server/dashboard.html: CSS and JavaScript
 * inline, no external assets) that polls GET /api/state (state_json.h)
 * every second and draws topics, processors with their versions and
 * states, replay progress, and lag and throughput charts.
 *
 * The bytes are server/dashboard.html itself, embedded at build time
 * (CMakeLists.txt generates dashboard_html.c in the build directory).
 */
#ifndef KP_DASHBOARD_H
#define KP_DASHBOARD_H

#include <stddef.h>

/* The page (not NUL-terminated) and its length in bytes. */
extern const unsigned char kp_dashboard_html[];
extern const size_t kp_dashboard_html_len;

#endif
