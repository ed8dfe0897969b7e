/*
 * proc_metrics.c - processor families of /metrics and the processor part
 * of /health, read from the runtime's structures (proc_version.h).
 */
#include "proc_metrics.h"

#include <errno.h>
#include <string.h>

#include "proc.h"
#include "proc_pipeline.h"
#include "proc_version.h"
#include "base/alloc.h"
#include "log/batch.h"
#include "log/store.h"
#include "log/partition.h"
#include "log/topic.h"
#include "base/metrics_text.h"

/* A version and what is computed once per request about it. */
struct row {
	struct kp_proc *p;
	struct proc_version *v;
	uint64_t lag_records;
	double lag_seconds;
};

static struct kp_topic_partition *find_tp(struct kp_procs *ps,
					  const char *topic, uint32_t part)
{
	struct kp_topic *t = kp_catalog_find_physical(ps->store->catalog, topic,
						      strlen(topic));

	if (t == NULL || part >= t->config.partitions)
		return NULL;
	return &t->parts[part];
}

/* The ts of the record at offset, from a read of the batch holding it. */
static int ts_at(struct kp_topic_partition *tp, uint64_t offset,
		 struct kp_buf *scratch, int64_t *ts)
{
	struct kp_error err;
	uint64_t skip_to = 0;
	size_t pos = 0;

	kp_buf_reset(scratch);
	if (kp_partition_read(tp->log, offset, 1, scratch, &skip_to, &err) != 0)
		return -1;
	while (pos < scratch->len) {
		struct kp_batch_header h;
		struct kp_record rec;
		size_t rpos = 0;
		uint32_t index = 0;

		if (kp_batch_header_decode(scratch->data + pos,
					   scratch->len - pos, &h) != 0)
			return -1;
		while (kp_batch_next(scratch->data + pos, &h, &rpos, &index,
				     &rec) == 1) {
			if (rec.offset == offset) {
				*ts = rec.ts;
				return 0;
			}
		}
		pos += h.batch_len;
	}
	return -1;
}

/* Event-time lag of one input in ms (0 when caught up or unknown). */
static int64_t cursor_lag_ms(struct kp_procs *ps, const struct pv_cursor *c,
			     struct kp_buf *scratch)
{
	struct kp_topic_partition *tp = find_tp(ps, c->topic, c->partition);
	struct kp_partition_stats st;
	uint64_t end, from;
	int64_t newest, last;

	if (tp == NULL)
		return 0;
	kp_partition_stats(tp->log, &st);
	end = st.visible_end < c->stop ? st.visible_end : c->stop;
	from = c->offset > st.start_offset ? c->offset : st.start_offset;
	if (end <= from || ts_at(tp, end - 1, scratch, &newest) != 0)
		return 0;
	if (!(c->offset > st.start_offset &&
	      ts_at(tp, c->offset - 1, scratch, &last) == 0) &&
	    ts_at(tp, from, scratch, &last) != 0)
		return 0;
	return newest > last ? newest - last : 0;
}

static double lag_seconds(struct kp_procs *ps, struct proc_version *v,
			  struct kp_buf *scratch)
{
	int64_t most = 0;

	for (uint32_t i = 0; i < v->cursor_count; i++) {
		int64_t ms = cursor_lag_ms(ps, &v->cursors[i], scratch);

		if (ms > most)
			most = ms;
	}
	return (double)most / 1000.0;
}

static const char *version_state(const struct kp_proc *p,
				 const struct proc_version *v)
{
	if (((v->role == PV_LIVE && p->def.paused) || v->blocked[0] ||
	     kp_pv_checkpoint_blocked(v)) &&
	    v->state == PV_RUNNING)
		return "paused";
	return kp_pv_state_name(v->state);
}

static void version_labels(struct kp_labels *l, const struct row *r)
{
	kp_labels_init(l);
	kp_labels_str(l, "processor", r->p->def.name);
	kp_labels_u64(l, "version", r->v->number);
}

/* Collects every version but verify scratches. Caller frees *out. */
static size_t collect(struct kp_procs *ps, struct row **out)
{
	struct kp_buf scratch;
	size_t n = 0, cap = 0;
	struct row *rows;

	for (size_t i = 0; i < kp_procs_count(ps); i++)
		cap += kp_procs_at(ps, i)->version_count;
	rows = kp_calloc(cap ? cap : 1, sizeof(*rows));
	*out = rows;
	if (rows == NULL)
		return 0;
	kp_buf_init(&scratch);
	for (size_t i = 0; i < kp_procs_count(ps); i++) {
		struct kp_proc *p = kp_procs_at(ps, i);

		for (uint32_t k = 0; k < p->version_count && n < cap; k++) {
			struct proc_version *v = p->versions[k];

			if (v == NULL || v->role == PV_SCRATCH)
				continue;
			rows[n].p = p;
			rows[n].v = v;
			rows[n].lag_records = kp_pv_lag(v);
			rows[n].lag_seconds = rows[n].lag_records > 0
						      ? lag_seconds(ps, v, &scratch)
						      : 0;
			n++;
		}
	}
	kp_buf_destroy(&scratch);
	return n;
}

/* Per-version numbers: name, type, help, and how to read them. */
enum vstat {
	VS_PROCESSED, VS_ERRORS, VS_DEAD, VS_SUPPRESSED, VS_LAG, VS_VIEW_KEYS,
	VS_VIEW_BYTES, VS_RELOAD_FAILED, VS_BLOCKED, VS_PENDING,
	VS_VIEW_CACHE, VS_VIEW_DISK, VS_CKPT_FAILURES, VS_CKPT_FAILING,
	VS_CKPT_MS, VS_WORKER_FAILURES, VS_WORKER_RSS
};

static const struct {
	const char *name;
	const char *type;
	const char *help;
	enum vstat stat;
} vstats[] = {
	{ "kappa_processor_records_processed_total", "counter",
	  "Input records processed by the processor version.", VS_PROCESSED },
	{ "kappa_processor_errors_total", "counter",
	  "Input records whose processing raised an error.", VS_ERRORS },
	{ "kappa_processor_dead_lettered_total", "counter",
	  "Input records sent to the dead-letter topic.", VS_DEAD },
	{ "kappa_processor_duplicates_suppressed_total", "counter",
	  "Outputs of a replayed tail not written again after a restart.",
	  VS_SUPPRESSED },
	{ "kappa_processor_lag_records", "gauge",
	  "Visible input records not yet processed, over all inputs.", VS_LAG },
	{ "kappa_processor_view_keys", "gauge", "Keys in the version's view.",
	  VS_VIEW_KEYS },
	{ "kappa_processor_view_bytes", "gauge",
	  "Bytes of keys and values in the version's view.", VS_VIEW_BYTES },
	{ "kappa_processor_last_reload_failed", "gauge",
	  "1 while the last reload of the version failed (the old code runs).",
	  VS_RELOAD_FAILED },
	{ "kappa_processor_output_blocked", "gauge",
	  "1 while an output partition refuses the version's writes (a full "
	  "disk, a failed fsync): it runs nothing and checkpoints nothing "
	  "until they are written.", VS_BLOCKED },
	{ "kappa_processor_outputs_pending", "gauge",
	  "Output records kept for a refused write, not written yet.",
	  VS_PENDING },
	{ "kappa_processor_view_cache_bytes", "gauge",
	  "Memory of the view's table of changed keys (bounded by "
	  "view_cache_bytes).", VS_VIEW_CACHE },
	{ "kappa_processor_view_disk_bytes", "gauge",
	  "Disk space of the view's store.", VS_VIEW_DISK },
	{ "kappa_processor_checkpoint_failures_total", "counter",
	  "Checkpoints that could not commit (retried every second).",
	  VS_CKPT_FAILURES },
	{ "kappa_processor_checkpoint_failing", "gauge",
	  "1 while the version's last checkpoint failed (it waits once its "
	  "view's changes fill view_cache_bytes).", VS_CKPT_FAILING },
	{ "kappa_processor_checkpoint_duration_ms", "gauge",
	  "How long the version's last checkpoint commit took.", VS_CKPT_MS },
	{ "kappa_processor_worker_failures_total", "counter",
	  "Worker processes of the version that died (a crash) or were killed "
	  "(time budget, memory limit).", VS_WORKER_FAILURES },
	{ "kappa_processor_worker_rss_anon_bytes", "gauge",
	  "Anonymous memory (RssAnon) of the version's worker process, 0 when "
	  "it has none.", VS_WORKER_RSS },
};

/* false when the version has no such number (a view that is gone). */
static bool vstat_value(const struct row *r, enum vstat which, uint64_t *out)
{
	const struct proc_version *v = r->v;

	switch (which) {
	case VS_PROCESSED:
		*out = v->processed;
		break;
	case VS_ERRORS:
		*out = v->errors;
		break;
	case VS_DEAD:
		*out = v->dead_lettered;
		break;
	case VS_SUPPRESSED:
		*out = v->suppressed;
		break;
	case VS_LAG:
		*out = r->lag_records;
		break;
	case VS_VIEW_KEYS:
		*out = kp_pv_view_stats(v).keys;
		break;
	case VS_VIEW_BYTES:
		*out = kp_pv_view_stats(v).bytes;
		break;
	case VS_BLOCKED:
		*out = v->blocked[0] != '\0' ? 1 : 0;
		break;
	case VS_VIEW_CACHE:
		*out = kp_pv_view_stats(v).cache_used;
		break;
	case VS_VIEW_DISK:
		*out = kp_pv_view_stats(v).disk_bytes;
		break;
	case VS_WORKER_FAILURES:
		*out = v->worker_failures;
		break;
	case VS_WORKER_RSS:
		*out = v->wk != NULL ? v->rss_anon : 0;
		break;
	case VS_CKPT_FAILURES:
		*out = v->checkpoint_failures;
		break;
	case VS_CKPT_FAILING:
		*out = v->checkpoint_error[0] != '\0' ? 1 : 0;
		break;
	case VS_CKPT_MS:
		*out = (uint64_t)(v->checkpoint_cost_ms > 0 ? v->checkpoint_cost_ms
							    : 0);
		break;
	case VS_PENDING:
		*out = 0;
		for (const struct pv_pending *pd = v->pending; pd != NULL;
		     pd = pd->next)
			*out += pd->count;
		break;
	default:
		*out = v->reload_error[0] != '\0' ? 1 : 0;
		break;
	}
	return true;
}

static void render_versions(struct kp_metrics_writer *w,
			    const struct row *rows, size_t n)
{
	struct kp_labels l;
	uint64_t value;

	kp_metrics_family(w, "kappa_processor_version_info", "gauge",
			  "A processor version's role (live, building, retired) and state (1 per version).");
	for (size_t i = 0; i < n; i++) {
		version_labels(&l, &rows[i]);
		kp_labels_str(&l, "role", kp_pv_role_name(rows[i].v->role));
		kp_labels_str(&l, "state", version_state(rows[i].p, rows[i].v));
		kp_metrics_u64(w, "kappa_processor_version_info", &l, 1);
	}
	for (size_t m = 0; m < sizeof(vstats) / sizeof(vstats[0]); m++) {
		kp_metrics_family(w, vstats[m].name, vstats[m].type,
				  vstats[m].help);
		for (size_t i = 0; i < n; i++) {
			if (!vstat_value(&rows[i], vstats[m].stat, &value))
				continue;
			version_labels(&l, &rows[i]);
			kp_metrics_u64(w, vstats[m].name, &l, value);
		}
	}
	kp_metrics_family(w, "kappa_processor_lag_seconds", "gauge",
			  "Event time of the newest input record minus that of the last processed one (largest over the inputs).");
	for (size_t i = 0; i < n; i++) {
		version_labels(&l, &rows[i]);
		kp_metrics_f64(w, "kappa_processor_lag_seconds", &l,
			       rows[i].lag_seconds);
	}
	kp_metrics_family(w, "kappa_processor_reloads_total", "counter",
			  "Hot reloads of the version, by result (failed: the old code kept running).");
	for (size_t i = 0; i < n; i++) {
		version_labels(&l, &rows[i]);
		kp_labels_str(&l, "result", "ok");
		kp_metrics_u64(w, "kappa_processor_reloads_total", &l,
			       rows[i].v->reloads_ok);
		version_labels(&l, &rows[i]);
		kp_labels_str(&l, "result", "failed");
		kp_metrics_u64(w, "kappa_processor_reloads_total", &l,
			       rows[i].v->reloads_failed);
	}
}

/* Per input partition of each version: position and lag. */
static void render_inputs(struct kp_metrics_writer *w, struct kp_procs *ps,
			  const struct row *rows, size_t n, bool lag)
{
	const char *name = lag ? "kappa_processor_input_lag_records"
			       : "kappa_processor_input_offset";
	struct kp_labels l;

	kp_metrics_family(w, name, "gauge",
			  lag ? "Visible records of the input partition not yet processed."
			      : "Next offset of the input partition to process (what the next checkpoint commits with the view).");
	for (size_t i = 0; i < n; i++) {
		const struct proc_version *v = rows[i].v;

		for (uint32_t k = 0; k < v->cursor_count; k++) {
			const struct pv_cursor *c = &v->cursors[k];
			struct kp_topic_partition *tp =
				find_tp(ps, c->topic, c->partition);
			struct kp_partition_stats st;
			uint64_t end = 0;

			if (tp != NULL) {
				kp_partition_stats(tp->log, &st);
				end = st.visible_end < c->stop ? st.visible_end
							       : c->stop;
			}
			version_labels(&l, &rows[i]);
			kp_labels_str(&l, "topic", c->topic);
			kp_labels_u64(&l, "partition", c->partition);
			kp_metrics_u64(w, name, &l,
				       !lag ? c->offset
				       : end > c->offset ? end - c->offset
							 : 0);
		}
	}
}

static void render_replays(struct kp_metrics_writer *w,
			   const struct row *rows, size_t n)
{
	static const char *const names[3] = {
		"kappa_processor_replay_records_done",
		"kappa_processor_replay_records_remaining",
		"kappa_processor_replay_records_per_second",
	};
	static const char *const helps[3] = {
		"Records a replay (a building version) has processed.",
		"Records a replay still has to process to catch up.",
		"Replay throughput, records per second (smoothed over seconds).",
	};
	struct kp_labels l;

	for (int m = 0; m < 3; m++) {
		kp_metrics_family(w, names[m], "gauge", helps[m]);
		for (size_t i = 0; i < n; i++) {
			const struct row *r = &rows[i];

			if (r->v != r->p->building)
				continue;
			version_labels(&l, r);
			kp_metrics_u64(w, names[m], &l,
				       m == 0	? r->v->processed
				       : m == 1 ? r->lag_records
						: r->p->replay_rate_rps);
		}
	}
}

void kp_proc_metrics_render(struct kp_procs *ps, struct kp_metrics_writer *w)
{
	struct row *rows = NULL;
	size_t n;

	if (ps == NULL)
		return;
	n = collect(ps, &rows);
	if (rows == NULL) {
		w->rc = -ENOMEM;
		return;
	}
	render_versions(w, rows, n);
	render_inputs(w, ps, rows, n, false);
	render_inputs(w, ps, rows, n, true);
	render_replays(w, rows, n);
	kp_pipeline_metrics_render(ps, w);
	kp_free(rows);
}

/* ---- health ------------------------------------------------------------ */

static struct kp_lag_watch *watch_find(struct kp_health_state *st,
				       const struct kp_proc *p)
{
	for (size_t i = 0; i < st->count; i++) {
		struct kp_lag_watch *w = &st->lagging[i];

		if (w->proc == p && w->created_ms == p->def.created_ms &&
		    w->version == p->live->number)
			return w;
	}
	return NULL;
}

/*
 * Time p's live version has been over the lag limit, -1 when it is not
 * over. Unwatched entries are dropped by the caller's sweep.
 */
static double lag_over(struct kp_health_state *st, bool *keep,
		       const struct kp_proc *p, uint64_t lag,
		       const struct kp_lag_limits *limits, int64_t mono_ms)
{
	struct kp_lag_watch *w;

	if (limits->records == 0 || lag <= limits->records)
		return -1;
	w = watch_find(st, p);
	if (w == NULL) {
		if (st->count == KP_LAG_WATCH_MAX)
			return limits->seconds;
		w = &st->lagging[st->count++];
		w->proc = p;
		w->created_ms = p->def.created_ms;
		w->version = p->live->number;
		w->since_ms = mono_ms;
	}
	keep[w - st->lagging] = true;
	return (double)(mono_ms - w->since_ms) / 1000.0;
}

static void sweep(struct kp_health_state *st, const bool *keep)
{
	size_t n = 0;

	for (size_t i = 0; i < st->count; i++) {
		if (keep[i])
			st->lagging[n++] = st->lagging[i];
	}
	st->count = n;
}

static bool paused_by_errors(const struct kp_proc *p)
{
	return p->def.paused &&
	       strcmp(p->def.pause_reason, "paused by operator") != 0;
}

size_t kp_proc_health(struct kp_procs *ps, struct kp_health_state *st,
		      const struct kp_lag_limits *limits, int64_t mono_ms,
		      kp_proc_finding_fn found, void *arg)
{
	bool keep[KP_LAG_WATCH_MAX] = { false };
	size_t findings = 0;

	for (size_t i = 0; ps != NULL && i < kp_procs_count(ps); i++) {
		struct kp_proc *p = kp_procs_at(ps, i);
		struct proc_version *v = p->live;
		struct kp_proc_finding f;
		char stalled[KP_ERROR_MSG_MAX];
		uint64_t lag;
		double over;

		if (p->deleting)
			continue;
		memset(&f, 0, sizeof(f));
		f.processor = p->def.name;
		f.version = v != NULL ? v->number : 0;
		if (v == NULL || v->state == PV_FAILED) {
			f.kind = "processor_failed";
			f.detail = v == NULL ? "no live version"
				   : v->reason[0] ? v->reason : "failed";
		} else if (paused_by_errors(p)) {
			f.kind = "processor_paused";
			f.detail = p->def.pause_reason;
		} else if (v->blocked[0] != '\0') {
			f.kind = "processor_paused";
			f.detail = v->blocked;
		} else if (v->checkpoint_error[0] != '\0') {
			f.kind = "processor_checkpoint_failing";
			f.detail = v->checkpoint_error;
		} else if (kp_proc_stalled(p, stalled, sizeof(stalled))) {
			f.kind = "processor_stalled";
			f.detail = stalled;
		}
		if (f.kind != NULL) {
			findings++;
			if (found != NULL)
				found(arg, &f);
		}
		if (v == NULL)
			continue;
		lag = kp_pv_lag(v);
		over = lag_over(st, keep, p, lag, limits, mono_ms);
		if (over < 0 || over < limits->seconds)
			continue;
		f.kind = "processor_lagging";
		f.detail = NULL;
		f.lag_records = lag;
		f.over_seconds = over;
		findings++;
		if (found != NULL)
			found(arg, &f);
	}
	sweep(st, keep);
	return findings;
}
