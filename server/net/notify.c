/*
 * notify.c - sd_notify messages for the service manager (notify.h).
 */
#include "notify.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "base/logging.h"

/* A STATUS= line longer than this is cut: systemd shows one line anyway. */
#define STATUS_MAX 512

/* Sends "<state>STATUS=<fmt...>"; state is "" or "READY=1\n" and the like. */
__attribute__((format(printf, 2, 0)))
static void send_state(const char *state, const char *fmt, va_list ap)
{
	static bool warned;
	char msg[STATUS_MAX + 32];
	int n = snprintf(msg, sizeof(msg), "%sSTATUS=", state);
	int rc;

	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	for (char *c = msg + n; *c != '\0'; c++) {
		if (*c == '\n')
			*c = ' ';   /* a newline would start another field */
	}
	rc = sd_notify(0, msg);
	if (rc < 0 && !warned) {
		warned = true;
		kp_log_warn("server", "cannot notify the service manager ($NOTIFY_SOCKET): %s",
			    strerror(-rc));
	}
}

void kp_notify_status(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	send_state("", fmt, ap);
	va_end(ap);
}

void kp_notify_ready(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	send_state("READY=1\n", fmt, ap);
	va_end(ap);
}

void kp_notify_stopping(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	send_state("STOPPING=1\n", fmt, ap);
	va_end(ap);
}
