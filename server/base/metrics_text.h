/*
 * metrics_text.h - a writer of Prometheus exposition text (format 0.0.4):
 * families (# HELP, # TYPE), samples with escaped labels, histograms.
 *
 * Pure memory: it appends to a kp_buf and remembers the first failure, so
 * a renderer writes everything and checks once at the end. The renderers of
 * the server (obs/metrics.c) and of the processor runtime
 * (proc/proc_metrics.c) share it.
 */
#ifndef KP_METRICS_TEXT_H
#define KP_METRICS_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "histogram.h"

/* A sink for exposition text that remembers the first append failure. */
struct kp_metrics_writer {
	struct kp_buf *out;     /* borrowed */
	int rc;                 /* 0, or -ENOMEM once an append failed */
};

/* The labels of one sample: `name="value",...`, values escaped. */
struct kp_labels {
	char text[2048];
	size_t len;
	bool overflow;          /* too long: samples with it are left out */
};

/* Empties l. */
void kp_labels_init(struct kp_labels *l);

/* Adds name="value" (escaping \, " and newline) / a number. */
void kp_labels_str(struct kp_labels *l, const char *name, const char *value);
void kp_labels_u64(struct kp_labels *l, const char *name, uint64_t value);

/* Writes # HELP and # TYPE of a family (type: counter, gauge, histogram). */
void kp_metrics_family(struct kp_metrics_writer *w, const char *name,
		       const char *type, const char *help);

/* Writes one sample; l may be NULL (no labels). */
void kp_metrics_u64(struct kp_metrics_writer *w, const char *name,
		    const struct kp_labels *l, uint64_t value);
void kp_metrics_f64(struct kp_metrics_writer *w, const char *name,
		    const struct kp_labels *l, double value);

/* Writes a histogram's samples (kp_histogram_render) with labels l. */
void kp_metrics_histogram(struct kp_metrics_writer *w, const char *name,
			  const struct kp_labels *l,
			  const struct kp_histogram *h);

/* Appends raw text / formatted text (used for JSON bodies too). */
void kp_metrics_put(struct kp_metrics_writer *w, const char *data, size_t len);
void kp_metrics_putf(struct kp_metrics_writer *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
