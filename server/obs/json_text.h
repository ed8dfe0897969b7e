/*
 * json_text.h - JSON string literals for the HTTP listener's documents
 * (/health, /api/state): any bytes become a valid JSON string, control
 * bytes escaped and invalid UTF-8 replaced by U+FFFD.
 */
#ifndef KP_JSON_TEXT_H
#define KP_JSON_TEXT_H

#include <stddef.h>

#include "base/buf.h"

/* Appends s (len bytes) as a JSON string literal. Returns 0 or -ENOMEM. */
int kp_json_string(struct kp_buf *out, const char *s, size_t len);

#endif
