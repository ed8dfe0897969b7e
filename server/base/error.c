/*
 * error.c - codes, names and formatted messages for struct kp_error.
 */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void kp_error_clear(struct kp_error *err)
{
	if (err == NULL)
		return;
	err->code = 0;
	err->msg[0] = '\0';
}

int kp_error_set(struct kp_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	/* One line: a name or a processor's error may carry control bytes. */
	for (char *p = err->msg; *p != '\0'; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	}
	return code;
}

const char *kp_error_name(int code)
{
	switch (code) {
#define KP_ERROR_NAME(name, value, wire, text) \
	case name:                             \
		return wire;
		KP_ERROR_TABLE(KP_ERROR_NAME)
#undef KP_ERROR_NAME
	default:
		return code < 0 ? "IO_ERROR" : "OK";
	}
}

const char *kp_error_text(int code)
{
	switch (code) {
#define KP_ERROR_TEXT(name, value, wire, text) \
	case name:                             \
		return text;
		KP_ERROR_TABLE(KP_ERROR_TEXT)
#undef KP_ERROR_TEXT
	default:
		return code < 0 ? strerror(-code) : "success";
	}
}
