/*
 * metrics.c - Prometheus exposition of the server's counters, and the
 * health check. Processor families live in proc_metrics.c.
 */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <uv.h>

#include "json_text.h"
#include "base/metrics_text.h"
#include "log/groups.h"
#include "log/topic.h"
#include "net/server.h"
#include "proc/proc_metrics.h"

/* ---- partitions --------------------------------------------------------- */

enum part_stat {
	PS_END, PS_START, PS_BYTES, PS_SEGMENTS, PS_APPENDED, PS_DUPS, PS_FAILED,
	PS_FULL, PS_COMPACT_RUNS, PS_COMPACT_REMOVED
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
	{ "kappa_log_no_space", "gauge",
	  "1 while writes to the partition are refused for lack of disk space "
	  "(they resume by themselves once there is space).", PS_FULL },
	{ "kappa_compaction_runs_total", "counter",
	  "Compaction runs of the partition completed since the server "
	  "started.", PS_COMPACT_RUNS },
	{ "kappa_compaction_records_removed_total", "counter",
	  "Records compaction removed from the partition since the server "
	  "started (superseded by a later record of their key, or tombstones "
	  "past delete_retention_ms).", PS_COMPACT_REMOVED },
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
	case PS_FULL:
		return st->full ? 1 : 0;
	case PS_COMPACT_RUNS:
		return tp->compact.runs;
	case PS_COMPACT_REMOVED:
		return tp->compact.records_removed;
	default:
		return st->failed ? 1 : 0;
	}
}

static void part_labels(struct kp_labels *l, const struct kp_topic *t,
			uint32_t p)
{
	kp_labels_init(l);
	kp_labels_str(l, "topic", t->name);
	kp_labels_u64(l, "partition", p);
}

static void render_histograms(struct kp_server *s, struct kp_metrics_writer *w,
			      bool fsync)
{
	const char *name = fsync ? "kappa_log_fsync_duration_seconds"
				 : "kappa_log_append_duration_seconds";
	size_t ntopics = kp_catalog_count(s->store.catalog);
	struct kp_labels l;

	kp_metrics_family(w, name, "histogram",
			  fsync ? "Time of one sync job's fdatasyncs of the partition."
				: "Time to append one batch to the partition (page cache and indexes).");
	for (size_t i = 0; i < ntopics; i++) {
		struct kp_topic *t = kp_catalog_at(s->store.catalog, i);

		for (uint32_t p = 0; p < t->config.partitions; p++) {
			const struct kp_histogram *h =
				fsync ? kp_writer_fsync_latency(&t->parts[p])
				      : kp_writer_append_latency(&t->parts[p]);

			if (h == NULL)
				continue;
			part_labels(&l, t, p);
			kp_metrics_histogram(w, name, &l, h);
		}
	}
}

static void render_partitions(struct kp_server *s, struct kp_metrics_writer *w)
{
	size_t ntopics = kp_catalog_count(s->store.catalog);
	struct kp_labels l;

	for (size_t m = 0; m < sizeof(part_metrics) / sizeof(part_metrics[0]);
	     m++) {
		kp_metrics_family(w, part_metrics[m].name, part_metrics[m].type,
				  part_metrics[m].help);
		for (size_t i = 0; i < ntopics; i++) {
			struct kp_topic *t = kp_catalog_at(s->store.catalog, i);

			for (uint32_t p = 0; p < t->config.partitions; p++) {
				struct kp_partition_stats st;

				kp_partition_stats(t->parts[p].log, &st);
				part_labels(&l, t, p);
				kp_metrics_u64(w, part_metrics[m].name, &l,
					       stat_value(&t->parts[p], &st,
							  part_metrics[m].stat));
			}
		}
	}
	render_histograms(s, w, false);
	render_histograms(s, w, true);
}

/* ---- consumer groups ---------------------------------------------------- */

/* Which family a visit of the group table writes. */
enum group_stat { GS_OFFSET, GS_LAG };

struct group_visit {
	struct kp_server *srv;
	struct kp_metrics_writer *w;
	const char *name;       /* family */
	const char *label;      /* "group" or "consumergroup" */
	enum group_stat stat;
};

static void on_group_offset(void *arg, const struct kp_group_offset *o)
{
	struct group_visit *gv = arg;
	struct kp_topic *t = kp_catalog_find(gv->srv->store.catalog, o->topic,
					     strlen(o->topic));
	struct kp_labels l;
	uint64_t value = o->offset;

	if (gv->stat == GS_LAG) {
		struct kp_partition_stats st;

		if (t == NULL || o->partition >= t->config.partitions)
			return;
		kp_partition_stats(t->parts[o->partition].log, &st);
		value = st.visible_end > o->offset ? st.visible_end - o->offset
						   : 0;
	}
	kp_labels_init(&l);
	kp_labels_str(&l, gv->label, o->group);
	kp_labels_str(&l, "topic", o->topic);
	kp_labels_u64(&l, "partition", o->partition);
	kp_metrics_u64(gv->w, gv->name, &l, value);
}

static void render_groups(struct kp_server *s, struct kp_metrics_writer *w)
{
	static const struct {
		const char *name;
		const char *label;
		enum group_stat stat;
		const char *help;
	} families[] = {
		{ "kappa_consumergroup_committed_offset", "group", GS_OFFSET,
		  "Offset a consumer group committed (the next one it reads)." },
		{ "kappa_consumergroup_lag", "group", GS_LAG,
		  "Visible records after a consumer group's committed offset." },
		{ "kafka_consumergroup_current_offset", "consumergroup",
		  GS_OFFSET,
		  "Committed offset of a consumer group (kafka_exporter name)." },
		{ "kafka_consumergroup_lag", "consumergroup", GS_LAG,
		  "Lag of a consumer group in records (kafka_exporter name)." },
	};
	size_t ngroups = kp_groups_count(s->store.groups);

	for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
		struct group_visit gv = { s, w, families[f].name,
					  families[f].label,
					  families[f].stat };

		kp_metrics_family(w, families[f].name, "gauge",
				  families[f].help);
		for (size_t i = 0; i < ngroups; i++) {
			const char *g = kp_groups_name(s->store.groups, i);

			kp_groups_each(s->store.groups, g, strlen(g), NULL, 0,
				       on_group_offset, &gv);
		}
	}
}

/* ---- the server --------------------------------------------------------- */

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

/* Free and total bytes of the data directory's file system. */
static int disk_space(struct kp_server *s, uint64_t *free_bytes,
		      uint64_t *total_bytes)
{
	struct statvfs vfs;

	if (statvfs(s->cfg.data, &vfs) != 0)
		return -errno;
	*free_bytes = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	*total_bytes = (uint64_t)vfs.f_blocks * vfs.f_frsize;
	return 0;
}

static void server_counter(struct kp_metrics_writer *w, const char *name,
			   const char *type, const char *help, uint64_t value)
{
	kp_metrics_family(w, name, type, help);
	kp_metrics_u64(w, name, NULL, value);
}

static int health_check(struct kp_server *s, struct kp_metrics_writer *json);

int kp_metrics_render(struct kp_server *s, struct kp_buf *out)
{
	const struct kp_conn_stats *st = &s->conns.stats;
	struct kp_metrics_writer w = { out, 0 };
	uint64_t free_bytes = 0, total_bytes = 0;
	int healthy = health_check(s, NULL);

	render_partitions(s, &w);
	kp_proc_metrics_render(s->procs, &w);
	render_groups(s, &w);
	server_counter(&w, "kappa_connections", "gauge",
		       "Open client connections.", st->connections_open);
	server_counter(&w, "kappa_connections_accepted_total", "counter",
		       "Client connections accepted.", st->connections_total);
	server_counter(&w, "kappa_connections_refused_total", "counter",
		       "Client connections refused: max_connections were open.",
		       st->connections_refused);
	server_counter(&w, "kappa_frame_timeouts_total", "counter",
		       "Connections closed: a frame was not whole within client_frame_timeout_ms.",
		       st->frame_timeouts);
	server_counter(&w, "kappa_frames_waited_total", "counter",
		       "Frames that waited, unread, for room under the in-flight caps.",
		       st->frames_waited);
	server_counter(&w, "kappa_connections_waiting", "gauge",
		       "Connections whose next frame waits, unread, for room under the in-flight caps.",
		       s->conns.waiting);
	server_counter(&w, "kappa_inflight_partial_bytes", "gauge",
		       "Bytes reserved for request frames being received.",
		       s->conns.partial_total);
	server_counter(&w, "kappa_auth_failures_total", "counter",
		       "auth requests whose token was not valid.",
		       st->auth_failures);
	server_counter(&w, "kappa_requests_forbidden_total", "counter",
		       "Requests refused: the token's role does not allow them.",
		       st->forbidden);
	server_counter(&w, "kappa_received_bytes_total", "counter",
		       "Bytes read from clients.", st->bytes_in);
	server_counter(&w, "kappa_sent_bytes_total", "counter",
		       "Bytes sent to clients.", st->bytes_out);
	server_counter(&w, "kappa_requests_total", "counter",
		       "Requests handled.", st->requests);
	server_counter(&w, "kappa_request_errors_total", "counter",
		       "Requests answered with an error.", st->request_errors);
	server_counter(&w, "kappa_fsyncs_total", "counter",
		       "Partition sync jobs completed.", s->store.writer.fsyncs);
	if (disk_space(s, &free_bytes, &total_bytes) == 0) {
		server_counter(&w, "kappa_data_disk_free_bytes", "gauge",
			       "Bytes available to kappad on the data directory's file system.",
			       free_bytes);
		server_counter(&w, "kappa_data_disk_size_bytes", "gauge",
			       "Size of the data directory's file system.",
			       total_bytes);
	}
	server_counter(&w, "kappa_healthy", "gauge",
		       "1 when GET /health answers 200, 0 when 503.",
		       healthy ? 1 : 0);
	server_counter(&w, "process_resident_memory_bytes", "gauge",
		       "Resident memory size in bytes.", resident_bytes());
	return w.rc;
}

/* ---- health ------------------------------------------------------------- */

/* Writes a JSON string (quoted, escaped). */
/* A JSON string, valid UTF-8 whatever the bytes (see state_json.h). */
static void json_str(struct kp_metrics_writer *w, const char *s)
{
	if (w->rc == 0 && kp_json_string(w->out, s, strlen(s)) != 0)
		w->rc = -ENOMEM;
}

/* Starts a reason object: {"kind":..,"message":.. (the caller closes). */
static void reason_begin(struct kp_metrics_writer *w, size_t index,
			 const char *kind, const char *message)
{
	kp_metrics_put(w, index > 0 ? ",{\"kind\":" : "{\"kind\":", index > 0 ? 9 : 8);
	json_str(w, kind);
	kp_metrics_put(w, ",\"message\":", 11);
	json_str(w, message);
}

struct health_run {
	struct kp_server *srv;
	struct kp_metrics_writer *json; /* NULL: count only */
	size_t reasons;
};

static void on_proc_finding(void *arg, const struct kp_proc_finding *f)
{
	struct health_run *run = arg;
	struct kp_metrics_writer *w = run->json;
	const struct kp_config *cfg = &run->srv->cfg;
	char msg[1024];

	if (strcmp(f->kind, "processor_lagging") == 0)
		snprintf(msg, sizeof(msg),
			 "processor %s v%u has lagged more than %llu records for %.1f s (lag %llu)",
			 f->processor, f->version,
			 (unsigned long long)cfg->health_lag_records,
			 f->over_seconds, (unsigned long long)f->lag_records);
	else if (strcmp(f->kind, "processor_paused") == 0)
		snprintf(msg, sizeof(msg), "processor %s is paused: %s",
			 f->processor, f->detail ? f->detail : "");
	else if (strcmp(f->kind, "processor_stalled") == 0)
		snprintf(msg, sizeof(msg), "processor %s is stalled: %s",
			 f->processor, f->detail ? f->detail : "");
	else
		snprintf(msg, sizeof(msg), "processor %s is stopped: %s",
			 f->processor, f->detail ? f->detail : "");
	reason_begin(w, run->reasons++, f->kind, msg);
	kp_metrics_put(w, ",\"processor\":", 13);
	json_str(w, f->processor);
	kp_metrics_putf(w, ",\"version\":%u", f->version);
	if (strcmp(f->kind, "processor_lagging") == 0)
		kp_metrics_putf(w, ",\"lag_records\":%llu,\"threshold_records\":%llu,"
			"\"over_seconds\":%.3f,\"threshold_seconds\":%.3f",
		     (unsigned long long)f->lag_records,
		     (unsigned long long)cfg->health_lag_records,
		     f->over_seconds, cfg->health_lag_seconds);
	kp_metrics_put(w, "}", 1);
}

static void check_partitions(struct health_run *run)
{
	struct kp_server *s = run->srv;
	size_t ntopics = kp_catalog_count(s->store.catalog);
	char msg[512];

	for (size_t i = 0; i < ntopics; i++) {
		struct kp_topic *t = kp_catalog_at(s->store.catalog, i);

		for (uint32_t p = 0; p < t->config.partitions; p++) {
			struct kp_partition_stats st;

			kp_partition_stats(t->parts[p].log, &st);
			if (!st.failed && !st.full)
				continue;
			if (run->json == NULL) {
				run->reasons++;
				continue;
			}
			if (st.failed)
				snprintf(msg, sizeof(msg),
					 "topic %s partition %u stopped taking writes after a storage (fsync) error; a restart recovers it",
					 t->name, p);
			else
				snprintf(msg, sizeof(msg),
					 "topic %s partition %u refuses writes: no space left on the data disk (writes resume once there is space)",
					 t->name, p);
			reason_begin(run->json, run->reasons++,
				     st.failed ? "partition_failed"
					       : "partition_full", msg);
			kp_metrics_put(run->json, ",\"topic\":", 9);
			json_str(run->json, t->name);
			kp_metrics_putf(run->json, ",\"partition\":%u}", p);
		}
	}
}

static void check_disk(struct health_run *run)
{
	const struct kp_config *cfg = &run->srv->cfg;
	uint64_t free_bytes = 0, total_bytes = 0;
	double percent;
	char msg[512];

	if (disk_space(run->srv, &free_bytes, &total_bytes) != 0 ||
	    total_bytes == 0)
		return;
	percent = 100.0 * (double)free_bytes / (double)total_bytes;
	if (!(free_bytes < cfg->health_min_free_bytes ||
	      (cfg->health_min_free_percent > 0 &&
	       percent < cfg->health_min_free_percent)))
		return;
	if (run->json == NULL) {
		run->reasons++;
		return;
	}
	snprintf(msg, sizeof(msg),
		 "the data disk has %llu bytes (%.1f%%) free, below health_min_free_bytes %llu or health_min_free_percent %g",
		 (unsigned long long)free_bytes, percent,
		 (unsigned long long)cfg->health_min_free_bytes,
		 cfg->health_min_free_percent);
	reason_begin(run->json, run->reasons++, "disk_low", msg);
	kp_metrics_put(run->json, ",\"path\":", 8);
	json_str(run->json, cfg->data);
	kp_metrics_putf(run->json,
	     ",\"free_bytes\":%llu,\"total_bytes\":%llu,\"min_free_bytes\":%llu,\"min_free_percent\":%g}",
	     (unsigned long long)free_bytes, (unsigned long long)total_bytes,
	     (unsigned long long)cfg->health_min_free_bytes,
	     cfg->health_min_free_percent);
}

/* Counts the reasons (and writes them to json when not NULL); 1 = healthy. */
static int health_check(struct kp_server *s, struct kp_metrics_writer *json)
{
	struct health_run run = { s, json, 0 };
	struct kp_lag_limits limits = { s->cfg.health_lag_records,
					s->cfg.health_lag_seconds };
	int64_t mono_ms = (int64_t)(uv_hrtime() / 1000000);
	size_t procs;

	procs = kp_proc_health(s->procs, &s->health, &limits, mono_ms,
			       json != NULL ? on_proc_finding : NULL, &run);

	if (json == NULL)
		run.reasons += procs;
	check_partitions(&run);
	check_disk(&run);
	return run.reasons == 0;
}

int kp_metrics_health(struct kp_server *s, struct kp_buf *out)
{
	struct kp_buf reasons;
	struct kp_metrics_writer w = { &reasons, 0 };
	struct kp_metrics_writer body = { out, 0 };
	int healthy;

	kp_buf_init(&reasons);
	healthy = health_check(s, &w);
	kp_metrics_putf(&body, "{\"status\":\"%s\",\"reasons\":[",
	     healthy ? "ok" : "unhealthy");
	kp_metrics_put(&body, reasons.data, reasons.len);
	kp_metrics_put(&body, "]}\n", 3);
	kp_buf_destroy(&reasons);
	return healthy;
}
