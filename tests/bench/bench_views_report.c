/*
 * bench_views_report.c - the lines of kappa-bench's view scenarios: each
 * figure with its same-run peer, ratio and target (bench_views.h).
 */
#include "bench_views.h"

#include <stdio.h>
#include <string.h>

static const struct kp_bench_views_opts *vo;

static const char *fmt_count(uint64_t k, char *buf, size_t size)
{
	if (k >= 1000000 && k % 1000000 == 0)
		snprintf(buf, size, "%lluM", (unsigned long long)(k / 1000000));
	else if (k > 1000 && k % 1000 == 0)
		snprintf(buf, size, "%lluk", (unsigned long long)(k / 1000));
	else
		snprintf(buf, size, "%llu", (unsigned long long)k);
	return buf;
}

/* ---- output ----------------------------------------------------------- */

static void print_header(void)
{
	if (!vo->json)
		printf("%-34s %10s %-7s %-30s %10s %6s\n", "scenario", "value",
		       "unit", "peer (same run)", "peer", "ratio");
}

/* Replaces characters that would need escaping in JSON. */
static void json_safe(char *s)
{
	for (; *s != '\0'; s++)
		if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
			*s = '\'';
}

/* One line: kappa's figure, its peer (peer == NULL: none), the ratio. */
static void line(const char *name, double value, const char *unit,
		 const char *peer, double peer_value, const char *note)
{
	double ratio = peer != NULL && peer_value > 0 ? value / peer_value : 0;
	char n[400];

	snprintf(n, sizeof(n), "%s", note ? note : "");
	if (vo->json) {
		json_safe(n);
		printf("{\"scenario\":\"%s\",\"value\":%.3f,\"unit\":\"%s\","
		       "\"peer\":\"%s\",\"peer_value\":%.3f,\"ratio\":%.3f,"
		       "\"note\":\"%s\"}\n",
		       name, value, unit, peer ? peer : "", peer ? peer_value : 0,
		       ratio, n);
	} else if (peer != NULL) {
		printf("%-34s %10.*f %-7s %-30s %10.*f %6.2f%s%s\n", name,
		       value < 100 ? 2 : 0, value, unit, peer,
		       peer_value < 100 ? 2 : 0, peer_value, ratio,
		       n[0] ? "  " : "", n);
	} else {
		printf("%-34s %10.*f %-7s %-30s %10s %6s%s%s\n", name,
		       value < 100 ? 2 : 0, value, unit, "-", "-", "-",
		       n[0] ? "  " : "", n);
	}
	fflush(stdout);
}

/* A line that could not be measured. */
static void skipped(const char *name, const char *why)
{
	char n[300];

	snprintf(n, sizeof(n), "skipped: %s", why);
	if (vo->json) {
		json_safe(n);
		printf("{\"scenario\":\"%s\",\"skipped\":true,\"note\":\"%s\"}\n",
		       name, n);
	} else {
		printf("%-34s %10s %-7s %-30s %10s %6s  %s\n", name, "-", "-",
		       "-", "-", "-", n);
	}
	fflush(stdout);
}

/* ---- the report -------------------------------------------------------- */

/* Median over the rounds of the double at byte offset off of a round. */
static double med_of(const struct round *rs, size_t off, double *lo,
		     double *hi)
{
	double v[64];
	uint32_t n = vo->runs < 64 ? vo->runs : 64;

	for (uint32_t i = 0; i < n; i++)
		memcpy(&v[i], (const char *)&rs[i] + off, sizeof(v[i]));
	return kp_bench_median(v, n, lo, hi);
}

/* "[lo-hi] over R runs; " when there is more than one run. */
static const char *range(double lo, double hi, int digits, char *buf,
			 size_t size)
{
	buf[0] = '\0';
	if (vo->runs > 1)
		snprintf(buf, size, "[%.*f-%.*f] over %u runs; ", digits, lo,
			 digits, hi, vo->runs);
	return buf;
}

static const char *met(bool ok)
{
	return ok ? "met" : "NOT MET";
}

/* "C checkpoints, T ms (P % of the time)" of the last round's run k. */
static const char *ckpt_note(const struct round *rs, size_t k, char *buf,
			     size_t size)
{
	const struct count_run *c = &rs[vo->runs - 1].count[k];

	snprintf(buf, size, "%llu checkpoints, %llu ms (%.0f %% of the time, "
		 "longest %llu ms)", (unsigned long long)c->ckpts,
		 (unsigned long long)c->ckpt_ms_sum,
		 c->seconds > 0 ? c->ckpt_ms_sum / (c->seconds * 10) : 0,
		 (unsigned long long)c->ckpt_ms_max);
	return buf;
}

/* The count lines: records/s per K against keys[0] of the same round. */
static void report_counts(const struct round *rs)
{
	char name[64], kb[16], k0[16], peer[64], note[300], rg[80], ck[120];
	double v[64], lo, hi, base, ratio, rps;
	uint32_t n = vo->runs < 64 ? vo->runs : 64;

	for (uint32_t i = 0; i < n; i++)
		v[i] = rs[i].count[0].rps;
	base = kp_bench_median(v, n, &lo, &hi);
	fmt_count(vo->keys[0], k0, sizeof(k0));
	snprintf(name, sizeof(name), "count K=%s", k0);
	snprintf(note, sizeof(note), "%s%llu records, the peer of the other "
		 "K; %s", range(lo / 1e6, hi / 1e6, 3, rg, sizeof(rg)),
		 (unsigned long long)vo->records,
		 ckpt_note(rs, 0, ck, sizeof(ck)));
	line(name, base / 1e6, "M rec/s", NULL, 0, note);
	snprintf(peer, sizeof(peer), "count K=%s", k0);
	for (size_t k = 1; k < vo->key_count; k++) {
		double target = vo->keys[k] > 1000000 ? 0.5 : 0.7;

		for (uint32_t i = 0; i < n; i++)
			v[i] = rs[i].count[k].rps / rs[i].count[0].rps;
		ratio = kp_bench_median(v, n, &lo, &hi);
		for (uint32_t i = 0; i < n; i++)
			v[i] = rs[i].count[k].rps;
		rps = kp_bench_median(v, n, &lo, &hi);
		snprintf(name, sizeof(name), "count K=%s",
			 fmt_count(vo->keys[k], kb, sizeof(kb)));
		snprintf(note, sizeof(note), "%smedian same-run ratio %.2f, "
			 "target >= %.1f: %s; %s",
			 range(lo / 1e6, hi / 1e6, 3, rg, sizeof(rg)), ratio,
			 target, met(ratio >= target),
			 ckpt_note(rs, k, ck, sizeof(ck)));
		line(name, rps / 1e6, "M rec/s", peer, base / 1e6, note);
	}
}

/* MiB of a uint64_t field (byte offset off) of count[k], median of rounds. */
static double med_mib(const struct round *rs, size_t k, size_t off,
		      double *lo, double *hi)
{
	double v[64];
	uint32_t n = vo->runs < 64 ? vo->runs : 64;
	uint64_t b;

	for (uint32_t i = 0; i < n; i++) {
		memcpy(&b, (const char *)&rs[i].count[k] + off, sizeof(b));
		v[i] = b / 1048576.0;
	}
	return kp_bench_median(v, n, lo, hi);
}

/* RssAnon and disk at the last K (medians of the rounds). */
static void report_memory(const struct round *rs)
{
	size_t k = vo->key_count - 1;
	const struct count_run *c = &rs[vo->runs - 1].count[k];
	double bound = (VIEW_CACHE_BYTES + RSS_SLACK_BYTES) / 1048576.0;
	double lo, hi, v, before;
	char name[64], kb[16], note[300], rg[80];

	fmt_count(vo->keys[k], kb, sizeof(kb));
	snprintf(name, sizeof(name), "K=%s RssAnon max while counting", kb);
	before = med_mib(rs, k, offsetof(struct count_run, rss_before), &lo,
			 &hi);
	v = med_mib(rs, k, offsetof(struct count_run, rss_max), &lo, &hi);
	snprintf(note, sizeof(note), "%ssampled every %llu ms; %.1f MiB "
		 "before the processor (after producing); target <= 1: %s",
		 range(lo, hi, 1, rg, sizeof(rg)),
		 (unsigned long long)(RSS_EVERY_NS / 1000000), before,
		 met(v <= bound));
	line(name, v, "MiB", "view_cache_bytes + 64 MiB", bound, note);
	snprintf(name, sizeof(name), "K=%s RssAnon at lag 0", kb);
	v = med_mib(rs, k, offsetof(struct count_run, rss_end), &lo, &hi);
	snprintf(note, sizeof(note), "%starget <= 1: %s",
		 range(lo, hi, 1, rg, sizeof(rg)), met(v <= bound));
	line(name, v, "MiB", "view_cache_bytes + 64 MiB", bound, note);
	snprintf(name, sizeof(name), "K=%s view on disk", kb);
	v = med_mib(rs, k, offsetof(struct count_run, disk), &lo, &hi);
	snprintf(note, sizeof(note), "%safter a checkpoint and the restart; "
		 "%llu keys, view_bytes %.1f MiB (keys + values)",
		 range(lo, hi, 0, rg, sizeof(rg)),
		 (unsigned long long)c->view_keys, c->view_bytes / 1048576.0);
	line(name, v, "MiB", NULL, 0, note);
}

static void report_restart(const struct round *rs)
{
	char note[300], rg[80];
	const struct round *last = &rs[vo->runs - 1];
	double lo, hi, v[64], ratio, ms, peer;
	uint32_t n = vo->runs < 64 ? vo->runs : 64;

	for (uint32_t i = 0; i < n; i++)
		v[i] = rs[i].restart_ms / rs[i].empty_ms;
	ratio = kp_bench_median(v, n, &lo, &hi);
	peer = med_of(rs, offsetof(struct round, empty_ms), &lo, &hi);
	ms = med_of(rs, offsetof(struct round, restart_ms), &lo, &hi);
	snprintf(note, sizeof(note), "%smedian of %d restarts each [%.1f-%.1f "
		 "/ %.1f-%.1f], the first after the checkpoint %s lag 0; "
		 "listening after %.1f / %.1f ms; target <= 3: %s",
		 range(lo, hi, 1, rg, sizeof(rg)), RESTARTS, last->view.lo,
		 last->view.hi, last->empty.lo, last->empty.hi,
		 last->view.ckpt_seen && last->empty.ckpt_seen ? "after"
							       : "(none new) at",
		 last->view.listen_ms, last->empty.listen_ms, met(ratio <= 3));
	line("restart: exec to first view_get", ms, "ms",
	     "empty view, as much log", peer, note);
}

static void report_latency(const struct round *rs)
{
	const struct round *last = &rs[vo->runs - 1];
	char note[300], rg[80];
	double lo, hi, p50b, p50i, p99b, p99i, rps;

	p50b = med_of(rs, offsetof(struct round, busy_p50), &lo, &hi);
	p50i = med_of(rs, offsetof(struct round, idle_p50), &lo, &hi);
	p99i = med_of(rs, offsetof(struct round, idle_p99), &lo, &hi);
	rps = med_of(rs, offsetof(struct round, busy_rps), &lo, &hi);
	p99b = med_of(rs, offsetof(struct round, busy_p99), &lo, &hi);
	snprintf(note, sizeof(note), "one get per %llu us; %zu busy "
		 "(processor at %.3f M rec/s over %llu new records), %zu idle",
		 (unsigned long long)(PROBE_EVERY_NS / 1000), last->busy_n,
		 rps / 1e6, (unsigned long long)(vo->records / 2),
		 last->idle_n);
	line("view_get p50 busy", p50b, "us", "idle", p50i, note);
	snprintf(note, sizeof(note), "%smax %.1f ms busy, %.1f ms idle; "
		 "target <= 2: %s", range(lo, hi, 0, rg, sizeof(rg)),
		 last->busy_max / 1e3, last->idle_max / 1e3,
		 met(p99b <= 2 * p99i));
	line("view_get p99 busy", p99b, "us", "idle", p99i, note);
}

static void report_compact(const struct compact_result *r)
{
	char note[400], peer[64];

	if (r->why[0] != '\0') {
		skipped("compact: records left", r->why);
		return;
	}
	snprintf(peer, sizeof(peer), "bound %d + active segment", COMPACT_KEYS);
	snprintf(note, sizeof(note), "of %llu (%.1f B/rec, segments %u B; "
		 "%llu keys, %llu superseded, %.1f s); latest-value views "
		 "equal over %zu pages (%llu vs %llu records processed); "
		 "target <= 1: %s",
		 (unsigned long long)vo->compact_records, r->bytes_per_record,
		 COMPACT_SEGMENT_BYTES, (unsigned long long)r->keys_left,
		 (unsigned long long)r->superseded, r->seconds, r->pages,
		 (unsigned long long)r->processed_c,
		 (unsigned long long)r->processed_u,
		 met(r->left <= r->bound));
	line("compact: records left", (double)r->left, "records", peer,
	     (double)r->bound, note);
}

void kp_views_report(const struct kp_bench_views_opts *o,
		     const struct round *rs, const struct compact_result *cr)
{
	vo = o;
	print_header();
	report_counts(rs);
	report_memory(rs);
	report_restart(rs);
	report_latency(rs);
	report_compact(cr);
}
