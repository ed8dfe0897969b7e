/*
 * metrics_text.c - the Prometheus text writer: samples, labels, families.
 */
#include "metrics_text.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void kp_metrics_put(struct kp_metrics_writer *w, const char *data, size_t len)
{
	if (w->rc == 0 && kp_buf_append(w->out, data, len) != 0)
		w->rc = -ENOMEM;
}

void kp_metrics_putf(struct kp_metrics_writer *w, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(line)) {
		kp_metrics_put(w, line, (size_t)n);
		return;
	}
	if (w->rc != 0 || kp_buf_reserve(w->out, (size_t)n + 1) != 0) {
		w->rc = -ENOMEM;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(w->out->data + w->out->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	w->out->len += (size_t)n;
}

void kp_labels_init(struct kp_labels *l)
{
	l->len = 0;
	l->text[0] = '\0';
	l->overflow = false;
}

static void label_put(struct kp_labels *l, const char *s, size_t n)
{
	if (l->overflow || l->len + n >= sizeof(l->text)) {
		l->overflow = true;
		return;
	}
	memcpy(l->text + l->len, s, n);
	l->len += n;
	l->text[l->len] = '\0';
}

void kp_labels_str(struct kp_labels *l, const char *name, const char *value)
{
	if (l->len > 0)
		label_put(l, ",", 1);
	label_put(l, name, strlen(name));
	label_put(l, "=\"", 2);
	for (const char *p = value; *p != '\0'; p++) {
		if (*p == '\\')
			label_put(l, "\\\\", 2);
		else if (*p == '"')
			label_put(l, "\\\"", 2);
		else if (*p == '\n')
			label_put(l, "\\n", 2);
		else
			label_put(l, p, 1);
	}
	label_put(l, "\"", 1);
}

void kp_labels_u64(struct kp_labels *l, const char *name, uint64_t value)
{
	char num[24];

	snprintf(num, sizeof(num), "%llu", (unsigned long long)value);
	kp_labels_str(l, name, num);
}

void kp_metrics_family(struct kp_metrics_writer *w, const char *name,
		       const char *type, const char *help)
{
	kp_metrics_putf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
			type);
}

static bool sample_start(struct kp_metrics_writer *w, const char *name,
			 const struct kp_labels *l)
{
	if (l != NULL && l->overflow)
		return false;
	kp_metrics_put(w, name, strlen(name));
	if (l != NULL && l->len > 0) {
		kp_metrics_put(w, "{", 1);
		kp_metrics_put(w, l->text, l->len);
		kp_metrics_put(w, "}", 1);
	}
	return true;
}

void kp_metrics_u64(struct kp_metrics_writer *w, const char *name,
		    const struct kp_labels *l, uint64_t value)
{
	if (sample_start(w, name, l))
		kp_metrics_putf(w, " %llu\n", (unsigned long long)value);
}

void kp_metrics_f64(struct kp_metrics_writer *w, const char *name,
		    const struct kp_labels *l, double value)
{
	if (!sample_start(w, name, l))
		return;
	if (isnan(value))
		kp_metrics_putf(w, " NaN\n");
	else if (isinf(value))
		kp_metrics_putf(w, " %s\n", value > 0 ? "+Inf" : "-Inf");
	else
		kp_metrics_putf(w, " %.17g\n", value);
}

void kp_metrics_histogram(struct kp_metrics_writer *w, const char *name,
			  const struct kp_labels *l,
			  const struct kp_histogram *h)
{
	if (w->rc != 0 || (l != NULL && l->overflow))
		return;
	if (kp_histogram_render(h, name, l != NULL ? l->text : "", w->out) != 0)
		w->rc = -ENOMEM;
}
