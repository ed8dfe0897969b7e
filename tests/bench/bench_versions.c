/*
 * bench_versions.c - the processor version scenarios of kappa-bench
 * (--versions, --versions-only): what hot reloads and blue/green replays cost
 * the live pipeline. Each scenario starts its own kappad (default workers,
 * one per CPU) and runs the Lua count+emit processor (one output per input)
 * over records {user: "u<k>", pad: str} of 100 bytes.
 *
 *  1. reload pause: an open-loop producer sends 20 records every 1 ms
 *     (20,000 records/s, fsync=never) while a consumer long-polls the output
 *     topic and stamps each response's arrival. The longest gap between two
 *     arrivals while input kept coming is the longest pause in processing.
 *     Measured over a window without reloads (the peer) and a window with a
 *     proc_reload every 50 ms (alternating two files), in the same run.
 *  2. replay throughput: N records pre-loaded (fsync=never); the processor
 *     is created from earliest and timed until it has processed N (from
 *     scratch, the peer); then proc_replay from earliest, timed until the
 *     status shows version 2 live (the cut-over).
 *  3. produce latency during a replay: N records pre-loaded, topics
 *     fsync=always, the live processor caught up; an open-loop producer
 *     sends one-record produce requests 2,000 times a second and the latency
 *     of each is taken from its scheduled send time (so a stall counts for
 *     every request it delays). proc_status is polled every millisecond for
 *     the live version's lag. First a window without replay (the peer), then
 *     proc_replay from earliest, flat out, until the cut-over.
 *
 * Access pattern: the producer has a sender and a receiver thread on one
 * connection (responses come back in order, so the i-th response answers the
 * i-th request); the consumer thread owns its connection; the main thread
 * owns the admin connection. Results are handed over by joining the threads.
 */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define OUT_TOPIC "counts"
#define IN_TOPIC "events"
#define PROC "bench-v"

/* Scenario 1 */
#define RELOAD_BATCH 20                  /* records per produce request */
#define RELOAD_INTERVAL_NS 1000000ull    /* one request per ms: 20 k rec/s */
#define RELOAD_EVERY_NS 50000000ull      /* one reload per 50 ms */
#define WARMUP_NS 300000000ull
/* Scenario 3 */
#define LAT_INTERVAL_NS 500000ull        /* 2,000 requests/s */
#define LAT_BASE_NS 3000000000ull        /* the window without replay */
#define POLL_NS 1000000ull               /* proc_status poll period */

static const char lua_a[] =
	"local M={} function M.process(ctx, rec) "
	"local user = rec.value.user "
	"local n = ctx.state:incr(user, 1) "
	"ctx:emit(\"" OUT_TOPIC "\", { user = user, n = n }, user) end return M\n";
static const char lua_b[] =
	"-- revision b: the same processor, other bytes\n"
	"local M={} function M.process(ctx, rec) "
	"local user = rec.value.user "
	"local n = ctx.state:incr(user, 1) "
	"ctx:emit(\"" OUT_TOPIC "\", { user = user, n = n }, user) end return M\n";

static const struct kp_bench_versions_opts *vo;

/* ---- small helpers ---------------------------------------------------- */

static void sleep_ns(uint64_t ns)
{
	kp_bench_sleep_until(kp_bench_now_ns() + ns);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(text, f) == EOF || fclose(f) != 0)
		kp_bench_die("write %s: %s", path, strerror(errno));
}

static void start_server(const char *sub)
{
	char dir[700];

	snprintf(dir, sizeof(dir), "%s/%s", vo->root, sub);
	if (mkdir(dir, 0755) != 0)
		kp_bench_die("mkdir %s: %s", dir, strerror(errno));
	kp_bench_server_start(vo->srv, vo->kappad, dir, NULL);
}

static void stop_server(void)
{
	if (kp_bench_server_stop(vo->srv) != 0)
		fprintf(stderr, "kappa-bench: kappad did not exit cleanly on "
				"SIGTERM (log: %s)\n", vo->srv->log);
}

/* ---- output ----------------------------------------------------------- */

static void print_header(void)
{
	if (vo->json)
		return;
	printf("%-34s %10s %-7s %-30s %10s %6s\n", "scenario", "value",
	       "unit", "peer (same run)", "peer", "ratio");
}

/* One line: kappa's figure, its peer (peer == NULL: none), the ratio. */
static void line(const char *name, double value, const char *unit,
		 const char *peer, double peer_value, const char *note)
{
	double ratio = peer != NULL && peer_value > 0 ? value / peer_value : 0;

	if (vo->json) {
		printf("{\"scenario\":\"%s\",\"value\":%.3f,\"unit\":\"%s\","
		       "\"peer\":\"%s\",\"peer_value\":%.3f,\"ratio\":%.3f,"
		       "\"note\":\"%s\"}\n",
		       name, value, unit, peer ? peer : "", peer ? peer_value : 0,
		       ratio, note ? note : "");
	} else if (peer != NULL) {
		printf("%-34s %10.*f %-7s %-30s %10.*f %6.2f%s%s\n", name,
		       value < 100 ? 2 : 0, value, unit, peer,
		       peer_value < 100 ? 2 : 0, peer_value, ratio,
		       note ? "  " : "", note ? note : "");
	} else {
		printf("%-34s %10.*f %-7s %-30s %10s %6s%s%s\n", name,
		       value < 100 ? 2 : 0, value, unit, "-", "-", "-",
		       note ? "  " : "", note ? note : "");
	}
	fflush(stdout);
}

/* ---- admin requests --------------------------------------------------- */

struct status {
	uint32_t version, revision;
	uint64_t lag, processed, errors, view_keys;
	uint64_t replay_rps;         /* replay.records_per_second, 0 if none */
	bool replay;                 /* a replay is in progress */
	char state[32];
	char replay_state[32];
};

static void get_str(const msgpack_object *o, const char *key, char *out,
		    size_t size)
{
	const msgpack_object *s = kp_bench_get(o, key);

	if (s != NULL && s->type == MSGPACK_OBJECT_STR)
		snprintf(out, size, "%.*s", (int)s->via.str.size,
			 s->via.str.ptr);
	else
		snprintf(out, size, "?");
}

static void proc_status(struct kp_bench_conn *c, msgpack_sbuffer *sb,
			struct status *st)
{
	msgpack_packer pk;
	msgpack_object resp;
	const msgpack_object *p, *r;

	kp_bench_frame_begin(sb, &pk, c->next_id++, "proc_status", 1);
	kp_bench_pack_str(&pk, "name");
	kp_bench_pack_str(&pk, PROC);
	kp_bench_frame_end(sb);
	kp_bench_call(c, sb, &resp, "proc_status");
	p = kp_bench_get(&resp, "proc");
	st->version = (uint32_t)kp_bench_get_u64(p, "version", 0);
	st->revision = (uint32_t)kp_bench_get_u64(p, "revision", 0);
	st->lag = kp_bench_get_u64(p, "lag", 0);
	st->processed = kp_bench_get_u64(p, "records_processed", 0);
	st->errors = kp_bench_get_u64(p, "errors", 0);
	st->view_keys = kp_bench_get_u64(p, "view_keys", 0);
	get_str(p, "state", st->state, sizeof(st->state));
	r = kp_bench_get(p, "replay");
	st->replay = r != NULL && r->type == MSGPACK_OBJECT_MAP;
	st->replay_rps = st->replay ? kp_bench_get_u64(r, "records_per_second",
						       0)
				    : 0;
	if (st->replay)
		get_str(r, "state", st->replay_state,
			sizeof(st->replay_state));
	else
		st->replay_state[0] = '\0';
	if (st->errors != 0 || strcmp(st->state, "running") != 0)
		kp_bench_die("processor %s: state %s, %llu errors (see %s)",
			     PROC, st->state, (unsigned long long)st->errors,
			     vo->srv->log);
	if (st->replay && strcmp(st->replay_state, "failed") == 0)
		kp_bench_die("processor %s: the replay failed (see %s)", PROC,
			     vo->srv->log);
}


/* proc_reload with file; returns the revision the response reports. */
static uint32_t proc_reload(struct kp_bench_conn *c, msgpack_sbuffer *sb,
			    const char *file)
{
	msgpack_packer pk;
	msgpack_object resp;

	kp_bench_frame_begin(sb, &pk, c->next_id++, "proc_reload", 2);
	kp_bench_pack_str(&pk, "name");
	kp_bench_pack_str(&pk, PROC);
	kp_bench_pack_str(&pk, "file");
	kp_bench_pack_str(&pk, file);
	kp_bench_frame_end(sb);
	kp_bench_call(c, sb, &resp, "proc_reload");
	return (uint32_t)kp_bench_get_u64(kp_bench_get(&resp, "proc"),
					  "revision", 0);
}

/* Polls until records_processed reaches n; returns the time it was seen. */
static uint64_t wait_processed(struct kp_bench_conn *c, msgpack_sbuffer *sb,
			       uint64_t n, struct status *st)
{
	uint64_t t0 = kp_bench_now_ns();

	for (;;) {
		proc_status(c, sb, st);
		if (st->processed >= n)
			return kp_bench_now_ns();
		if (kp_bench_now_ns() - t0 > 600000000000ull)
			kp_bench_die("processor did not reach %llu records in "
				     "600 s", (unsigned long long)n);
		sleep_ns(POLL_NS);
	}
}

/* ---- the open-loop producer (bench_olp.c) ---------------------------- */

/* Latencies (sorted, ns) of the requests scheduled in [from, to). */
static size_t olp_window(const struct kp_bench_olp *o, uint64_t from,
			 uint64_t to, uint64_t **out)
{
	uint64_t *v = malloc((o->n_acks + 1) * sizeof(*v));
	size_t n = 0;

	if (v == NULL)
		kp_bench_die("out of memory");
	for (size_t i = 0; i < o->n_acks; i++)
		if (o->acks[i].sched_ns >= from && o->acks[i].sched_ns < to)
			v[n++] = o->acks[i].ack_ns - o->acks[i].sched_ns;
	qsort(v, n, sizeof(*v), kp_bench_cmp_u64);
	*out = v;
	return n;
}

/* ---- the output consumer (scenario 1) --------------------------------- */

struct consumer {
	int port;
	atomic_uint_fast64_t target; /* stop once this many are read (0: none) */
	uint64_t offset;             /* next offset */
	struct kp_bench_u64v arrival;         /* per non-empty response: arrival time */
};

static void *consumer_run(void *arg)
{
	struct consumer *k = arg;
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	msgpack_object resp;
	int rc;

	if ((rc = kp_bench_conn_open(&c, k->port)) != 0)
		kp_bench_die("connect: %s", strerror(-rc));
	msgpack_sbuffer_init(&sb);
	for (;;) {
		uint64_t target = atomic_load(&k->target);

		if (target != 0 && k->offset >= target)
			break;
		const msgpack_object *recs = kp_bench_call_fetch(
			&c, &sb, OUT_TOPIC, k->offset, 100, &resp);
		uint64_t now = kp_bench_now_ns();

		if (recs->via.array.size == 0)
			continue;
		k->offset += recs->via.array.size;
		kp_bench_u64v_push(&k->arrival, now);
	}
	msgpack_sbuffer_destroy(&sb);
	kp_bench_conn_close(&c);
	return NULL;
}

/* Gaps (sorted, ns) between consecutive arrivals that start in [from, to). */
static size_t gaps_in(const struct consumer *k, uint64_t from, uint64_t to,
		      uint64_t **out)
{
	uint64_t *v = malloc((k->arrival.n + 1) * sizeof(*v));
	size_t n = 0;

	if (v == NULL)
		kp_bench_die("out of memory");
	for (size_t i = 1; i < k->arrival.n; i++)
		if (k->arrival.v[i - 1] >= from && k->arrival.v[i - 1] < to)
			v[n++] = k->arrival.v[i] - k->arrival.v[i - 1];
	qsort(v, n, sizeof(*v), kp_bench_cmp_u64);
	*out = v;
	return n;
}

/* ---- scenario 1: the pause a reload causes ---------------------------- */

static void scenario_reload(const char *file_a, const char *file_b)
{
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	struct consumer k;
	struct kp_bench_olp prod;
	pthread_t tk;
	struct status st;
	uint64_t *gap_base, *gap_rel, *rel_lat, t_base, t_rel, t_end;
	size_t nb, nr, nreq;
	uint64_t window = vo->reloads * RELOAD_EVERY_NS;
	char peer[64], note[160];
	int rc;

	start_server("versions-reload");
	kp_bench_topic_create(vo->srv->port, IN_TOPIC, 1, "never");
	kp_bench_topic_create(vo->srv->port, OUT_TOPIC, 1, "never");
	if ((rc = kp_bench_conn_open(&c, vo->srv->port)) != 0)
		kp_bench_die("connect: %s", strerror(-rc));
	msgpack_sbuffer_init(&sb);
	kp_bench_call_proc_create(&c, &sb, PROC, file_a, IN_TOPIC, OUT_TOPIC);
	memset(&k, 0, sizeof(k));
	k.port = vo->srv->port;
	atomic_init(&k.target, 0);
	if (pthread_create(&tk, NULL, consumer_run, &k) != 0)
		kp_bench_die("pthread_create failed");
	kp_bench_olp_start(&prod, vo->srv->port, IN_TOPIC, RELOAD_BATCH,
			   RELOAD_INTERVAL_NS, 0);
	t_base = prod.t0 + WARMUP_NS;
	t_rel = t_base + window;
	kp_bench_sleep_until(t_rel);
	rel_lat = calloc(vo->reloads, sizeof(*rel_lat));
	if (rel_lat == NULL)
		kp_bench_die("out of memory");
	for (uint32_t i = 0; i < vo->reloads; i++) {
		uint64_t t = t_rel + i * RELOAD_EVERY_NS, s;
		uint32_t rev;

		kp_bench_sleep_until(t);
		s = kp_bench_now_ns();
		rev = proc_reload(&c, &sb, i % 2 == 0 ? file_b : file_a);
		rel_lat[i] = kp_bench_now_ns() - s;
		if (rev != i + 2)
			kp_bench_die("reload %u: revision %u, want %u", i + 1,
				     rev, i + 2);
	}
	t_end = t_rel + window;
	kp_bench_sleep_until(t_end + RELOAD_EVERY_NS);
	kp_bench_olp_stop(&prod);
	nreq = prod.n_acks;
	atomic_store(&k.target, nreq * RELOAD_BATCH);
	pthread_join(tk, NULL);
	proc_status(&c, &sb, &st);
	if (st.processed != nreq * RELOAD_BATCH ||
	    k.offset != nreq * RELOAD_BATCH || st.revision != vo->reloads + 1)
		kp_bench_die("reload: %llu records produced, %llu processed, "
			     "%llu outputs read, revision %u",
			     (unsigned long long)nreq * RELOAD_BATCH,
			     (unsigned long long)st.processed,
			     (unsigned long long)k.offset, st.revision);
	kp_bench_conn_close(&c);
	msgpack_sbuffer_destroy(&sb);
	stop_server();

	nb = gaps_in(&k, t_base, t_rel, &gap_base);
	nr = gaps_in(&k, t_rel, t_end, &gap_rel);
	qsort(rel_lat, vo->reloads, sizeof(*rel_lat), kp_bench_cmp_u64);
	snprintf(peer, sizeof(peer), "no reload, %.1f s", window / 1e9);
	snprintf(note, sizeof(note), "%u reloads in %.1f s; %zu gaps, %zu "
		 "without", vo->reloads, window / 1e9, nr, nb);
	line("reload: output gap max", gap_rel[nr - 1] / 1e6, "ms", peer,
	     gap_base[nb - 1] / 1e6, note);
	line("reload: output gap p99", kp_bench_pct(gap_rel, nr, 99) / 1e6, "ms", peer,
	     kp_bench_pct(gap_base, nb, 99) / 1e6, NULL);
	line("reload: output gap p50", kp_bench_pct(gap_rel, nr, 50) / 1e6, "ms", peer,
	     kp_bench_pct(gap_base, nb, 50) / 1e6, NULL);
	snprintf(note, sizeof(note), "p50 %.2f ms, max %.2f ms",
		 kp_bench_pct(rel_lat, vo->reloads, 50) / 1e6,
		 rel_lat[vo->reloads - 1] / 1e6);
	line("reload: proc_reload round trip p99",
	     kp_bench_pct(rel_lat, vo->reloads, 99) / 1e6, "ms", NULL, 0, note);
	free(gap_base);
	free(gap_rel);
	free(rel_lat);
	free(k.arrival.v);
	kp_bench_olp_free(&prod);
}

/* ---- scenario 2: replay throughput ------------------------------------ */

static double scenario_replay(const char *file)
{
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	struct status st;
	uint64_t n = vo->records, t0, t1, server_rps = 0;
	double scratch_rps, replay_rps;
	char note[160];
	int rc;

	start_server("versions-replay");
	kp_bench_topic_create(vo->srv->port, IN_TOPIC, 1, "never");
	kp_bench_topic_create(vo->srv->port, OUT_TOPIC, 1, "never");
	kp_bench_produce_users(vo->srv->port, IN_TOPIC, n, vo->batch,
			       vo->inflight);
	if ((rc = kp_bench_conn_open(&c, vo->srv->port)) != 0)
		kp_bench_die("connect: %s", strerror(-rc));
	msgpack_sbuffer_init(&sb);
	t0 = kp_bench_now_ns();
	kp_bench_call_proc_create(&c, &sb, PROC, file, IN_TOPIC, OUT_TOPIC);
	t1 = wait_processed(&c, &sb, n, &st);
	scratch_rps = (double)n / ((double)(t1 - t0) / 1e9);
	t0 = kp_bench_now_ns();
	if (kp_bench_call_proc_replay(&c, &sb, PROC) != 2)
		kp_bench_die("proc_replay: not version 2");
	for (;;) {
		proc_status(&c, &sb, &st);
		if (st.replay_rps > 0)
			server_rps = st.replay_rps;
		if (st.version == 2)
			break;
		if (kp_bench_now_ns() - t0 > 600000000000ull)
			kp_bench_die("replay did not cut over in 600 s");
		sleep_ns(POLL_NS);
	}
	t1 = kp_bench_now_ns();
	replay_rps = (double)n / ((double)(t1 - t0) / 1e9);
	if (st.processed != n || st.view_keys != KP_BENCH_USERS)
		kp_bench_die("replay: v2 processed %llu of %llu, %llu keys",
			     (unsigned long long)st.processed,
			     (unsigned long long)n,
			     (unsigned long long)st.view_keys);
	kp_bench_conn_close(&c);
	msgpack_sbuffer_destroy(&sb);
	stop_server();
	snprintf(note, sizeof(note), "%llu records, %.2f s to cut-over; "
		 "server's own estimate %.2f M/s",
		 (unsigned long long)n, (double)(t1 - t0) / 1e9,
		 server_rps / 1e6);
	line("replay: rec/s to cut-over", replay_rps / 1e6, "M rec/s",
	     "same proc from scratch", scratch_rps / 1e6, note);
	return replay_rps;
}

/* ---- scenario 3: produce latency and live lag during a replay --------- */

struct lat_window {
	uint64_t p50, p99, max;
	size_t n;
	uint64_t lag_max;
};

/* Polls proc_status until t_end or (until_cut) the cut-over. */
static uint64_t poll_lag(struct kp_bench_conn *c, msgpack_sbuffer *sb,
			 uint64_t t_end, bool until_cut, uint64_t *lag_max,
			 uint64_t *polls)
{
	struct status st;
	uint64_t t0 = kp_bench_now_ns();

	*lag_max = 0;
	*polls = 0;
	for (;;) {
		proc_status(c, sb, &st);
		(*polls)++;
		if (until_cut && st.version != 1)
			return kp_bench_now_ns();
		if (st.lag > *lag_max)
			*lag_max = st.lag;
		if (!until_cut && kp_bench_now_ns() >= t_end)
			return kp_bench_now_ns();
		if (kp_bench_now_ns() - t0 > 600000000000ull)
			kp_bench_die("replay did not cut over in 600 s");
		sleep_ns(POLL_NS);
	}
}

/* "out=<fsync>: what", the name of a latency scenario's line. */
static const char *lname(const char *out_fsync, const char *what)
{
	static char name[64];

	snprintf(name, sizeof(name), "lat out=%s: %s", out_fsync, what);
	return name;
}

static void fill_window(struct lat_window *w, const struct kp_bench_olp *r,
			uint64_t from, uint64_t to)
{
	uint64_t *v;

	w->n = olp_window(r, from, to, &v);
	if (w->n == 0)
		kp_bench_die("latency: no request in the window");
	w->p50 = kp_bench_pct(v, w->n, 50);
	w->p99 = kp_bench_pct(v, w->n, 99);
	w->max = v[w->n - 1];
	free(v);
}

static void scenario_latency(const char *file, double replay_alone_rps,
			     const char *out_fsync)
{
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	struct kp_bench_olp prod;
	struct status st;
	struct lat_window base, rep;
	uint64_t n = vo->records, t_b0, t_b1, t_r0, t_r1, polls_b, polls_r;
	double replay_rps;
	char note[200], sub[64];
	int rc;

	snprintf(sub, sizeof(sub), "versions-latency-out-%s", out_fsync);
	start_server(sub);
	kp_bench_topic_create(vo->srv->port, IN_TOPIC, 1, "always");
	kp_bench_topic_create(vo->srv->port, OUT_TOPIC, 1, out_fsync);
	kp_bench_produce_users(vo->srv->port, IN_TOPIC, n, vo->batch,
			       vo->inflight);
	if ((rc = kp_bench_conn_open(&c, vo->srv->port)) != 0)
		kp_bench_die("connect: %s", strerror(-rc));
	msgpack_sbuffer_init(&sb);
	kp_bench_call_proc_create(&c, &sb, PROC, file, IN_TOPIC, OUT_TOPIC);
	wait_processed(&c, &sb, n, &st);
	kp_bench_olp_start(&prod, vo->srv->port, IN_TOPIC, 1, LAT_INTERVAL_NS,
			   n);
	t_b0 = prod.t0 + WARMUP_NS;
	kp_bench_sleep_until(t_b0);
	t_b1 = poll_lag(&c, &sb, t_b0 + LAT_BASE_NS, false, &base.lag_max,
			&polls_b);
	t_r0 = kp_bench_now_ns();
	if (kp_bench_call_proc_replay(&c, &sb, PROC) != 2)
		kp_bench_die("proc_replay: not version 2");
	t_r1 = poll_lag(&c, &sb, 0, true, &rep.lag_max, &polls_r);
	kp_bench_olp_stop(&prod);
	proc_status(&c, &sb, &st);
	replay_rps = (double)st.processed / ((double)(t_r1 - t_r0) / 1e9);
	if (st.processed < n)
		kp_bench_die("latency: v2 processed %llu of at least %llu",
			     (unsigned long long)st.processed,
			     (unsigned long long)n);
	kp_bench_conn_close(&c);
	msgpack_sbuffer_destroy(&sb);
	stop_server();

	fill_window(&base, &prod, t_b0, t_b1);
	fill_window(&rep, &prod, t_r0, t_r1);
	snprintf(note, sizeof(note), "1 record/request, 2000 req/s, "
		 "input fsync=always; %zu requests during the replay (%.2f s), %zu "
		 "without", rep.n, (t_r1 - t_r0) / 1e9, base.n);
	line(lname(out_fsync, "produce p50"), rep.p50 / 1e3, "us", "no replay",
	     base.p50 / 1e3, note);
	line(lname(out_fsync, "produce p99"), rep.p99 / 1e3, "us", "no replay",
	     base.p99 / 1e3, NULL);
	line(lname(out_fsync, "produce max"), rep.max / 1e3, "us", "no replay",
	     base.max / 1e3, NULL);
	snprintf(note, sizeof(note), "proc_status polled %llu times (%llu "
		 "without replay)", (unsigned long long)polls_r,
		 (unsigned long long)polls_b);
	line(lname(out_fsync, "live lag max"), (double)rep.lag_max, "records",
	     "no replay", (double)base.lag_max, note);
	snprintf(note, sizeof(note), "%llu records incl. live input",
		 (unsigned long long)st.processed);
	line(lname(out_fsync, "replay M rec/s"), replay_rps / 1e6, "M rec/s",
	     "replay alone (fsync=never)", replay_alone_rps / 1e6, note);
	kp_bench_olp_free(&prod);
}

void kp_bench_versions(const struct kp_bench_versions_opts *o)
{
	char file_a[700], file_b[700];
	double replay_rps;

	vo = o;
	snprintf(file_a, sizeof(file_a), "%s/versions_a.lua", o->root);
	snprintf(file_b, sizeof(file_b), "%s/versions_b.lua", o->root);
	write_file(file_a, lua_a);
	write_file(file_b, lua_b);
	if (!o->json)
		printf("versions: lua count+emit ({user: u0..u%d, pad} of %d "
		       "bytes -> one output each); replay of %llu records "
		       "(fsync=never; then input fsync=always with live "
		       "produce); reloads at 20000 rec/s, fsync=never\n",
		       KP_BENCH_USERS - 1, KP_BENCH_RECORD_BYTES,
		       (unsigned long long)o->records);
	print_header();
	replay_rps = scenario_replay(file_a);
	scenario_latency(file_a, replay_rps, "always");
	scenario_latency(file_a, replay_rps, "never");
	scenario_reload(file_a, file_b);
}
