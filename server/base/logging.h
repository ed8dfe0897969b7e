/*
 * logging.h - structured server logging, one logfmt line per event on stderr:
 *
 *   ts=2026-11-25T07:14:49.123Z level=warn component=partition msg="..." k=v
 *
 * The level threshold is process-wide: set once at start (--log-level) and
 * read by every thread. Lines are written with one write() so that lines
 * from threads do not interleave.
 */
#ifndef KP_LOGGING_H
#define KP_LOGGING_H

enum kp_log_level { KP_LOG_DEBUG, KP_LOG_INFO, KP_LOG_WARN, KP_LOG_ERROR };

/* Sets the threshold. */
void kp_log_set_level(enum kp_log_level level);

/* Parses "debug|info|warn|error"; returns 0 and *level, or -1. */
int kp_log_parse_level(const char *name, enum kp_log_level *level);

/* true when a line at level would be written. */
int kp_log_enabled(enum kp_log_level level);

/*
 * Writes one line: component names the module ("partition", "server"),
 * and the formatted text goes into msg="..." (quotes and backslashes
 * escaped, newlines replaced). Extra fields may be formatted by the caller
 * as a trailing " key=value" list in fields (may be NULL).
 */
void kp_log(enum kp_log_level level, const char *component, const char *fields,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define kp_log_debug(comp, ...) kp_log(KP_LOG_DEBUG, comp, NULL, __VA_ARGS__)
#define kp_log_info(comp, ...) kp_log(KP_LOG_INFO, comp, NULL, __VA_ARGS__)
#define kp_log_warn(comp, ...) kp_log(KP_LOG_WARN, comp, NULL, __VA_ARGS__)
#define kp_log_error(comp, ...) kp_log(KP_LOG_ERROR, comp, NULL, __VA_ARGS__)

#endif
