/*
 * top_view.c - figures and table of `kappactl top`; see top_view.h.
 */
#include "top_view.h"

#include <string.h>

#include "progress.h"

void kp_ctl_top_sample_destroy(struct kp_ctl_top_sample *s)
{
	json_decref(s->topics);
	json_decref(s->procs);
	s->topics = NULL;
	s->procs = NULL;
}

/* The element of array a whose "name" is name, or NULL. */
static const json_t *by_name(const json_t *a, const char *name)
{
	size_t i;
	const json_t *v;

	if (name == NULL)
		return NULL;
	json_array_foreach(a, i, v) {
		const char *n = json_string_value(json_object_get(v, "name"));

		if (n != NULL && strcmp(n, name) == 0)
			return v;
	}
	return NULL;
}

/* The integer member key of o as uint64 (0 when absent or negative). */
static uint64_t u64(const json_t *o, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(o, key));

	return v > 0 ? (uint64_t)v : 0;
}

/* Per-second rate of a counter that went from a to b in ms, or null. */
static json_t *rate(uint64_t a, uint64_t b, uint64_t ms)
{
	if (ms == 0 || b < a)
		return json_null();
	return json_real((double)(b - a) * 1000.0 / (double)ms);
}

/* End offsets of a topic description, by partition, into a new array. */
static json_t *end_offsets(const json_t *topic)
{
	const json_t *stats = json_object_get(topic, "partition_stats"), *st;
	json_t *a = json_array();
	size_t i;

	json_array_foreach(stats, i, st)
		json_array_append_new(a, json_integer((json_int_t)u64(st, "end_offset")));
	return a;
}

/* Records/s appended to topic since prev (a description or NULL). */
static json_t *append_rate(const json_t *prev, const json_t *ends,
			   const json_t *prev_ends, uint64_t ms)
{
	uint64_t a = 0, b = 0;
	size_t i;

	if (prev == NULL || json_array_size(prev_ends) != json_array_size(ends))
		return json_null();
	for (i = 0; i < json_array_size(ends); i++) {
		uint64_t x = (uint64_t)json_integer_value(json_array_get(prev_ends, i));
		uint64_t y = (uint64_t)json_integer_value(json_array_get(ends, i));

		if (y < x)
			return json_null();
		a += x;
		b += y;
	}
	return rate(a, b, ms);
}

static json_t *topic_entry(const json_t *t, const json_t *prev, uint64_t ms)
{
	json_t *ends = end_offsets(t), *prev_ends = end_offsets(prev);
	json_t *o = json_pack("{sOsIsOso}", "name", json_object_get(t, "name"),
			      "partitions", (json_int_t)u64(t, "partitions"),
			      "end_offsets", ends, "append_rate",
			      append_rate(prev, ends, prev_ends, ms));

	json_decref(ends);
	json_decref(prev_ends);
	return o;
}

static json_t *replay_entry(const json_t *r)
{
	const json_t *state = json_object_get(r, "state");
	json_t *eta = json_null();

	if (!json_is_object(r))
		return json_null();
	if (u64(r, "records_per_second") > 0 || u64(r, "records_to_go") == 0)
		eta = json_integer((json_int_t)u64(r, "eta_ms"));
	return json_pack("{sIsOsIsIsIso}", "version", (json_int_t)u64(r, "version"),
			 "state", state ? state : json_null(),
			 "records_done", (json_int_t)u64(r, "records_done"),
			 "records_to_go", (json_int_t)u64(r, "records_to_go"),
			 "records_per_second",
			 (json_int_t)u64(r, "records_per_second"), "eta_ms", eta);
}

static json_t *proc_entry(const json_t *p, const json_t *prev, uint64_t ms)
{
	json_t *r = json_null();

	if (prev != NULL && u64(prev, "version") == u64(p, "version"))
		r = rate(u64(prev, "records_processed"),
			 u64(p, "records_processed"), ms);
	return json_pack("{sOsIsOsIsosIso}", "name", json_object_get(p, "name"),
			 "version", (json_int_t)u64(p, "version"), "state",
			 json_object_get(p, "state") ? json_object_get(p, "state")
						     : json_null(),
			 "records_processed", (json_int_t)u64(p, "records_processed"),
			 "records_per_second", r, "lag", (json_int_t)u64(p, "lag"),
			 "replay", replay_entry(json_object_get(p, "replay")));
}

json_t *kp_ctl_top_snapshot(const struct kp_ctl_top_sample *prev,
			    const struct kp_ctl_top_sample *cur)
{
	uint64_t ms = prev && cur->at_ms > prev->at_ms ? cur->at_ms - prev->at_ms : 0;
	json_t *topics = json_array(), *procs = json_array(), *v;
	size_t i;

	json_array_foreach(cur->topics, i, v) {
		const char *name = json_string_value(json_object_get(v, "name"));

		json_array_append_new(topics, topic_entry(v, prev ? by_name(prev->topics, name)
								  : NULL, ms));
	}
	json_array_foreach(cur->procs, i, v) {
		const char *name = json_string_value(json_object_get(v, "name"));

		json_array_append_new(procs, proc_entry(v, prev ? by_name(prev->procs, name)
								: NULL, ms));
	}
	return json_pack("{soso}", "topics", topics, "processors", procs);
}

/* Writes a rate as "%.1f", or "-" when null. */
static void fmt_rate(const json_t *r, char *buf, size_t len)
{
	if (json_is_number(r))
		snprintf(buf, len, "%.1f", json_number_value(r));
	else
		snprintf(buf, len, "-");
}

static void render_topics(FILE *f, const json_t *topics)
{
	const json_t *t, *e;
	char r[32];
	size_t i, j;

	fprintf(f, "%-32s %5s %14s %12s\n", "TOPIC", "PARTS", "END OFFSET",
		"APPEND/s");
	json_array_foreach(topics, i, t) {
		uint64_t end = 0;

		json_array_foreach(json_object_get(t, "end_offsets"), j, e)
			end += (uint64_t)json_integer_value(e);
		fmt_rate(json_object_get(t, "append_rate"), r, sizeof(r));
		fprintf(f, "%-32s %5llu %14llu %12s\n",
			json_string_value(json_object_get(t, "name")),
			(unsigned long long)u64(t, "partitions"),
			(unsigned long long)end, r);
	}
}

/* The replay column: a progress line fitting width, or "-". */
static void fmt_replay(const json_t *r, unsigned width, char *buf, size_t len)
{
	struct kp_ctl_progress p;
	const char *state = json_string_value(json_object_get(r, "state"));

	if (!json_is_object(r)) {
		snprintf(buf, len, "-");
		return;
	}
	memset(&p, 0, sizeof(p));
	p.version = u64(r, "version");
	p.done = u64(r, "records_done");
	p.to_go = u64(r, "records_to_go");
	p.rps = u64(r, "records_per_second");
	p.eta_ms = u64(r, "eta_ms");
	if (state != NULL && strcmp(state, "failed") == 0)
		snprintf(buf, len, "v%llu failed", (unsigned long long)p.version);
	else
		kp_ctl_progress_bar(&p, width, buf, len);
}

static void render_procs(FILE *f, const json_t *procs, unsigned width)
{
	const unsigned fixed = 24 + 1 + 4 + 1 + 8 + 1 + 10 + 1 + 10 + 1;
	const json_t *p;
	char r[32], rep[256];
	size_t i;

	fprintf(f, "%-24s %4s %-8s %10s %10s %s\n", "PROCESSOR", "VER", "STATE",
		"RECORDS/s", "LAG", "REPLAY");
	json_array_foreach(procs, i, p) {
		const char *state = json_string_value(json_object_get(p, "state"));

		fmt_rate(json_object_get(p, "records_per_second"), r, sizeof(r));
		fmt_replay(json_object_get(p, "replay"),
			   width > fixed ? width - fixed : 0, rep, sizeof(rep));
		fprintf(f, "%-24s %4llu %-8s %10s %10llu %s\n",
			json_string_value(json_object_get(p, "name")),
			(unsigned long long)u64(p, "version"),
			state ? state : "?", r,
			(unsigned long long)u64(p, "lag"), rep);
	}
}

void kp_ctl_top_render(FILE *f, const json_t *snapshot, const char *title,
		       unsigned width)
{
	fprintf(f, "%s\n\n", title);
	render_topics(f, json_object_get(snapshot, "topics"));
	fputc('\n', f);
	render_procs(f, json_object_get(snapshot, "processors"), width);
}
