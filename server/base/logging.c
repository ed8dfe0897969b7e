/*
 * logging.c - logfmt lines on stderr with a process-wide threshold.
 */
#include "logging.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* The threshold; atomic because worker threads read it. */
static atomic_int threshold = KP_LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void kp_log_set_level(enum kp_log_level level)
{
	atomic_store(&threshold, (int)level);
}

int kp_log_parse_level(const char *name, enum kp_log_level *level)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*level = (enum kp_log_level)i;
			return 0;
		}
	}
	return -1;
}

int kp_log_enabled(enum kp_log_level level)
{
	return (int)level >= atomic_load(&threshold);
}

static size_t escape_into(char *dst, size_t cap, const char *src)
{
	size_t n = 0;

	for (; *src != '\0' && n + 2 < cap; src++) {
		char c = *src;

		if (c == '"' || c == '\\') {
			dst[n++] = '\\';
			dst[n++] = c;
		} else if (c == '\n' || c == '\r') {
			dst[n++] = ' ';
		} else {
			dst[n++] = c;
		}
	}
	dst[n] = '\0';
	return n;
}

void kp_log(enum kp_log_level level, const char *component, const char *fields,
	    const char *fmt, ...)
{
	char text[1024], escaped[2048], line[3072], stamp[32];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	int n;

	if (!kp_log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	escape_into(escaped, sizeof(escaped), text);
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line),
		     "ts=%s.%03ldZ level=%s component=%s msg=\"%s\"%s%s\n", stamp,
		     (long)(tv.tv_usec / 1000), level_names[level], component,
		     escaped, fields ? " " : "", fields ? fields : "");
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}
