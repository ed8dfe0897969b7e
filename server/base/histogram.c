/*
 * histogram.c - fixed-bucket latency histograms and their exposition.
 */
#include "histogram.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define US 1000ull
#define MS 1000000ull
#define SEC 1000000000ull

static const uint64_t bounds_ns[KP_HISTOGRAM_BOUNDS] = {
	5 * US,   10 * US,  25 * US,  50 * US,  100 * US,
	250 * US, 500 * US, 1 * MS,   2500 * US, 5 * MS,
	10 * MS,  25 * MS,  50 * MS,  100 * MS, 250 * MS,
	500 * MS, 1 * SEC,  2500 * MS, 5 * SEC, 10 * SEC,
};

static const char *const bounds_text[KP_HISTOGRAM_BOUNDS + 1] = {
	"5e-06",  "1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005",
	"0.001",  "0.0025", "0.005",  "0.01",  "0.025",  "0.05",    "0.1",
	"0.25",   "0.5",   "1",       "2.5",   "5",      "10",      "+Inf",
};

void kp_histogram_init(struct kp_histogram *h)
{
	memset(h, 0, sizeof(*h));
}

void kp_histogram_observe(struct kp_histogram *h, uint64_t ns)
{
	size_t lo = 0, hi = KP_HISTOGRAM_BOUNDS;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (ns <= bounds_ns[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	h->buckets[lo]++;
	h->count++;
	h->sum_ns += ns;
}

uint64_t kp_histogram_bound_ns(size_t i)
{
	return i < KP_HISTOGRAM_BOUNDS ? bounds_ns[i] : UINT64_MAX;
}

const char *kp_histogram_bound_text(size_t i)
{
	return bounds_text[i < KP_HISTOGRAM_BOUNDS ? i : KP_HISTOGRAM_BOUNDS];
}

uint64_t kp_histogram_cumulative(const struct kp_histogram *h, size_t i)
{
	uint64_t n = 0;

	if (i >= KP_HISTOGRAM_BOUNDS)
		return h->count;
	for (size_t k = 0; k <= i; k++)
		n += h->buckets[k];
	return n;
}

static int line(struct kp_buf *out, const char *name, const char *suffix,
		const char *labels, const char *le, const char *value)
{
	char text[128];
	int n;

	n = snprintf(text, sizeof(text), "%s%s", name, suffix);
	if (kp_buf_append(out, text, (size_t)n) != 0)
		return -ENOMEM;
	if (labels[0] != '\0' || le != NULL) {
		if (kp_buf_append(out, "{", 1) != 0 ||
		    kp_buf_append(out, labels, strlen(labels)) != 0)
			return -ENOMEM;
		if (le != NULL) {
			n = snprintf(text, sizeof(text), "%sle=\"%s\"",
				     labels[0] != '\0' ? "," : "", le);
			if (kp_buf_append(out, text, (size_t)n) != 0)
				return -ENOMEM;
		}
		if (kp_buf_append(out, "}", 1) != 0)
			return -ENOMEM;
	}
	n = snprintf(text, sizeof(text), " %s\n", value);
	return kp_buf_append(out, text, (size_t)n);
}

int kp_histogram_render(const struct kp_histogram *h, const char *name,
			const char *labels, struct kp_buf *out)
{
	char value[64];
	uint64_t cumulative = 0;

	for (size_t i = 0; i <= KP_HISTOGRAM_BOUNDS; i++) {
		cumulative += h->buckets[i];
		snprintf(value, sizeof(value), "%llu",
			 (unsigned long long)cumulative);
		if (line(out, name, "_bucket", labels, bounds_text[i], value) != 0)
			return -ENOMEM;
	}
	snprintf(value, sizeof(value), "%llu.%09llu",
		 (unsigned long long)(h->sum_ns / SEC),
		 (unsigned long long)(h->sum_ns % SEC));
	if (line(out, name, "_sum", labels, NULL, value) != 0)
		return -ENOMEM;
	snprintf(value, sizeof(value), "%llu", (unsigned long long)h->count);
	return line(out, name, "_count", labels, NULL, value) != 0 ? -ENOMEM : 0;
}
