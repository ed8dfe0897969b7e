/*
 * metrics.c - Prometheus exposition of the server's counters and health.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "server.h"
#include "topic.h"

static int appendf(struct kp_buf *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int appendf(struct kp_buf *out, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	return kp_buf_append(out, line, (size_t)n);
}

static void help(struct kp_buf *out, const char *name, const char *type,
		 const char *text)
{
	appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* One per-partition metric: name, type, help, and which stat it shows. */
enum part_stat {
	PS_END, PS_START, PS_BYTES, PS_SEGMENTS, PS_APPENDED, PS_DUPS, PS_FAILED
};

static const struct {
	const char *name;
	const char *type;
	const char *help;
	enum part_stat stat;
} part_metrics[] = {
	{ "kappa_log_end_offset", "gauge",
	  "One past the last visible offset of the partition.", PS_END },
	{ "kappa_log_start_offset", "gauge",
	  "First retained offset of the partition.", PS_START },
	{ "kappa_log_size_bytes", "gauge",
	  "Bytes of segment files on disk.", PS_BYTES },
	{ "kappa_log_segments", "gauge", "Number of segments.", PS_SEGMENTS },
	{ "kappa_log_records_appended_total", "counter",
	  "Records appended since the server started.", PS_APPENDED },
	{ "kappa_producer_duplicates_total", "counter",
	  "Idempotent produce batches dropped as duplicates.", PS_DUPS },
	{ "kappa_log_write_failed", "gauge",
	  "1 when the partition stopped taking writes after a disk error.",
	  PS_FAILED },
};

static uint64_t stat_value(const struct kp_topic_partition *tp,
			   const struct kp_partition_stats *st,
			   enum part_stat which)
{
	switch (which) {
	case PS_END:
		return st->visible_end;
	case PS_START:
		return st->start_offset;
	case PS_BYTES:
		return st->size_bytes;
	case PS_SEGMENTS:
		return st->segments;
	case PS_APPENDED:
		return tp->records_appended;
	case PS_DUPS:
		return st->duplicates;
	default:
		return st->failed ? 1 : 0;
	}
}

static void render_partitions(struct kp_server *s, struct kp_buf *out)
{
	size_t ntopics = kp_catalog_count(s->catalog);

	for (size_t m = 0; m < sizeof(part_metrics) / sizeof(part_metrics[0]);
	     m++) {
		help(out, part_metrics[m].name, part_metrics[m].type,
		     part_metrics[m].help);
		for (size_t i = 0; i < ntopics; i++) {
			struct kp_topic *t = kp_catalog_at(s->catalog, i);

			for (uint32_t p = 0; p < t->config.partitions; p++) {
				struct kp_partition_stats st;

				kp_partition_stats(t->parts[p].log, &st);
				appendf(out,
					"%s{topic=\"%s\",partition=\"%u\"} %llu\n",
					part_metrics[m].name, t->name, p,
					(unsigned long long)stat_value(
						&t->parts[p], &st,
						part_metrics[m].stat));
			}
		}
	}
}

static uint64_t resident_bytes(void)
{
	unsigned long long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f == NULL)
		return 0;
	if (fscanf(f, "%llu %llu", &pages, &rss) != 2)
		rss = 0;
	fclose(f);
	return rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

int kp_metrics_render(struct kp_server *s, struct kp_buf *out)
{
	const struct kp_server_stats *st = &s->stats;

	render_partitions(s, out);
	help(out, "kappa_connections", "gauge", "Open client connections.");
	appendf(out, "kappa_connections %llu\n",
		(unsigned long long)st->connections_open);
	help(out, "kappa_connections_accepted_total", "counter",
	     "Client connections accepted.");
	appendf(out, "kappa_connections_accepted_total %llu\n",
		(unsigned long long)st->connections_total);
	help(out, "kappa_received_bytes_total", "counter",
	     "Bytes read from clients.");
	appendf(out, "kappa_received_bytes_total %llu\n",
		(unsigned long long)st->bytes_in);
	help(out, "kappa_sent_bytes_total", "counter", "Bytes sent to clients.");
	appendf(out, "kappa_sent_bytes_total %llu\n",
		(unsigned long long)st->bytes_out);
	help(out, "kappa_requests_total", "counter", "Requests handled.");
	appendf(out, "kappa_requests_total %llu\n",
		(unsigned long long)st->requests);
	help(out, "kappa_request_errors_total", "counter",
	     "Requests answered with an error.");
	appendf(out, "kappa_request_errors_total %llu\n",
		(unsigned long long)st->request_errors);
	help(out, "kappa_fsyncs_total", "counter",
	     "Partition sync jobs completed.");
	appendf(out, "kappa_fsyncs_total %llu\n", (unsigned long long)st->fsyncs);
	help(out, "process_resident_memory_bytes", "gauge",
	     "Resident memory size in bytes.");
	return appendf(out, "process_resident_memory_bytes %llu\n",
		       (unsigned long long)resident_bytes());
}

int kp_metrics_health(struct kp_server *s, struct kp_buf *out)
{
	size_t ntopics = kp_catalog_count(s->catalog);
	int reasons = 0;

	appendf(out, "{\"reasons\":[");
	for (size_t i = 0; i < ntopics; i++) {
		struct kp_topic *t = kp_catalog_at(s->catalog, i);

		for (uint32_t p = 0; p < t->config.partitions; p++) {
			struct kp_partition_stats st;

			kp_partition_stats(t->parts[p].log, &st);
			if (!st.failed)
				continue;
			appendf(out,
				"%s{\"kind\":\"partition_failed\",\"topic\":\"%s\",\"partition\":%u}",
				reasons++ ? "," : "", t->name, p);
		}
	}
	appendf(out, "],\"status\":\"%s\"}\n", reasons ? "unhealthy" : "ok");
	return reasons == 0;
}
