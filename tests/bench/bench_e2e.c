/*
 * bench_e2e.c - the end-to-end latency scenarios of kappa-bench (--e2e,
 * --e2e-only): how long after a produce is acknowledged its processor's
 * output is visible to a consumer of the output topic.
 *
 * Each round, for each processor (the Lua count+emit and the C
 * count_by_user.so, both one output {user, n} to "counts" per input):
 *
 *  1. a fresh kappad (default configuration), topics "events" and "counts"
 *     with fsync=never;
 *  2. the maximum sustained rate: with the processor created and the
 *     consumer below reading, N records produced flat out (batch and
 *     inflight as for the produce lines); the maximum is N over the time
 *     from the first produce to the consumer seeing the last output (the
 *     whole pipeline's throughput: a processor alone over a backlog, in
 *     bigger batches and without a reader, runs faster than it can
 *     sustain live);
 *  3. an open-loop producer sends 50 % of that rate (one request of
 *     rate/1000 records every millisecond), a consumer long-polls the
 *     output (max_wait_ms 100; version 1's "counts.v1", see OUT_V1) and a
 *     third connection pings once a millisecond.
 *     After a warm-up, a window of --e2e-seconds (10) is measured:
 *     - ack-to-visible, per record: the arrival of the fetch response that
 *       first holds its output (matched by the output's provenance header
 *       `offset`) minus the arrival of its produce's acknowledgement;
 *     - produce-to-ack, per request: acknowledgement minus scheduled send
 *       time (so a stall counts for every request it delays);
 *     - the peer: ping round trips on the same kappad in the same window.
 *  4. Lua only: with the producer still running, proc_replay from earliest
 *     (flat out): the same figures from the replay's start over as long a
 *     window (or until its cut-over, if sooner; at 50 % load the live
 *     version always has work waiting, and replay work runs only when none
 *     waits, so the cut-over comes once the producer stops); its produce
 *     p99 is compared with that of the window before (idle).
 *
 * Lines (medians over the rounds of every figure): `e2e lua 50%`,
 * `e2e c 50%`, `e2e lua during replay`.
 *
 * Access pattern: the producer has a sender and a receiver thread on one
 * connection (responses come back in order); the consumer and the pinger
 * own a connection each; the main thread owns the admin connection. The
 * consumer's visibility times and the producer's acknowledgements
 * (bench_olp.c) are handed over by joining their threads.
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

#define IN_TOPIC "events"
#define OUT_TOPIC "counts"
/*
 * Version 1's physical output (the topic created as OUT_TOPIC), then, once
 * a replay has cut over and version 1 has nothing more, version 2's: the
 * inputs version 1 did not get to before the cut-over have their outputs
 * only there, at the same offsets (both versions emit one output per input
 * from the first input on).
 */
#define OUT_V1 OUT_TOPIC ".v1"
#define OUT_V2 OUT_TOPIC ".v2"
#define PROC "bench-e2e"
#define TICK_NS 1000000ull           /* producer and pinger period */
#define WARMUP_NS 500000000ull
#define POLL_NS 1000000ull
#define WAIT_LIMIT_NS 600000000000ull
#define CKPT_POLL_NS 20000000ull     /* proc_status poll in the window */

static const char lua_emit[] =
	"local M={} function M.process(ctx, rec) "
	"local user = rec.value.user "
	"local n = ctx.state:incr(user, 1) "
	"ctx:emit(\"" OUT_TOPIC "\", { user = user, n = n }, user) end return M\n";

static const struct kp_bench_e2e_opts *eo;

/* ---- small helpers ---------------------------------------------------- */

static void open_conn(struct kp_bench_conn *c)
{
	int rc;

	if ((rc = kp_bench_conn_open(c, eo->srv->port)) != 0)
		kp_bench_die("connect: %s", strerror(-rc));
}

/* ---- admin requests --------------------------------------------------- */

struct status {
	uint32_t version;
	uint64_t processed, errors;
	int64_t ckpt_at_ms, ckpt_ms; /* the last checkpoint: commit, duration */
	bool replay_failed;
};

static void proc_status(struct kp_bench_conn *c, msgpack_sbuffer *sb,
			struct status *st)
{
	msgpack_packer pk;
	msgpack_object resp;
	const msgpack_object *p, *r, *s;

	kp_bench_frame_begin(sb, &pk, c->next_id++, "proc_status", 1);
	kp_bench_pack_str(&pk, "name");
	kp_bench_pack_str(&pk, PROC);
	kp_bench_frame_end(sb);
	kp_bench_call(c, sb, &resp, "proc_status");
	p = kp_bench_get(&resp, "proc");
	st->version = (uint32_t)kp_bench_get_u64(p, "version", 0);
	st->processed = kp_bench_get_u64(p, "records_processed", 0);
	st->errors = kp_bench_get_u64(p, "errors", 0);
	r = kp_bench_get(p, "checkpoint");
	st->ckpt_at_ms = (int64_t)kp_bench_get_u64(r, "at_ms", 0);
	st->ckpt_ms = (int64_t)kp_bench_get_u64(r, "duration_ms", 0);
	r = kp_bench_get(p, "replay");
	s = r != NULL ? kp_bench_get(r, "state") : NULL;
	st->replay_failed = s != NULL && s->type == MSGPACK_OBJECT_STR &&
			    s->via.str.size == 6 &&
			    memcmp(s->via.str.ptr, "failed", 6) == 0;
	if (st->errors != 0 || st->replay_failed)
		kp_bench_die("processor %s: %llu errors%s (see %s)", PROC,
			     (unsigned long long)st->errors,
			     st->replay_failed ? ", the replay failed" : "",
			     eo->srv->log);
}

/* ---- the consumer of the output --------------------------------------- */

struct consumer {
	uint64_t first;              /* input offset of the first output */
	atomic_uint_fast64_t target; /* stop once inputs below it are seen */
	atomic_bool cut_over;        /* set once the replay has cut over */
	bool on_v2;                  /* reading OUT_V2 */
	uint64_t offset;             /* next output offset */
	atomic_uint_fast64_t seen_below; /* every input below has been seen */
	struct kp_bench_u64v visible;         /* [input - first]: first arrival, 0: not */
	pthread_t t;
};

/* Input offset in a record's provenance headers, or UINT64_MAX. */
static uint64_t input_offset(const msgpack_object *rec)
{
	const msgpack_object *h = kp_bench_get(rec, "headers");

	return h != NULL ? kp_bench_get_u64(h, "offset", UINT64_MAX)
			 : UINT64_MAX;
}

static void note_visible(struct consumer *k, const msgpack_object *recs,
			 uint64_t now)
{
	for (uint32_t i = 0; i < recs->via.array.size; i++) {
		uint64_t in = input_offset(&recs->via.array.ptr[i]);

		if (in == UINT64_MAX)
			kp_bench_die("fetch " OUT_TOPIC ": a record without "
				     "provenance headers");
		if (in < k->first)
			continue;
		kp_bench_u64v_reserve(&k->visible, in - k->first + 1);
		if (k->visible.v[in - k->first] == 0)
			k->visible.v[in - k->first] = now;
		if (in - k->first + 1 > k->visible.n)
			k->visible.n = in - k->first + 1;
	}
	uint64_t below = atomic_load(&k->seen_below);

	while (below - k->first < k->visible.n &&
	       k->visible.v[below - k->first] != 0)
		below++;
	atomic_store(&k->seen_below, below);
}

static void *consumer_run(void *arg)
{
	struct consumer *k = arg;
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	msgpack_object resp;
	uint64_t t_start = kp_bench_now_ns();

	open_conn(&c);
	msgpack_sbuffer_init(&sb);
	for (;;) {
		uint64_t target = atomic_load(&k->target);
		const msgpack_object *recs;
		uint64_t now;

		if (target != 0 && atomic_load(&k->seen_below) >= target)
			break;
		if (target != 0 && kp_bench_now_ns() - t_start > WAIT_LIMIT_NS)
			kp_bench_die("consumer: outputs up to %llu never seen",
				     (unsigned long long)target);
		recs = kp_bench_call_fetch(&c, &sb, k->on_v2 ? OUT_V2 : OUT_V1,
					   k->offset, 100, &resp);
		now = kp_bench_now_ns();
		if (recs->via.array.size == 0) {
			if (atomic_load(&k->cut_over) &&
			    kp_bench_get_u64(&resp, "end_offset", 0) <= k->offset)
				k->on_v2 = true;
			continue;
		}
		note_visible(k, recs, now);
		k->offset = kp_bench_get_u64(
				    &recs->via.array.ptr[recs->via.array.size - 1],
				    "offset", k->offset) + 1;
	}
	msgpack_sbuffer_destroy(&sb);
	kp_bench_conn_close(&c);
	return NULL;
}

/* ---- the ping peer ---------------------------------------------------- */

struct pinger {
	atomic_bool stop;
	struct kp_bench_u64v sent, rtt;       /* per ping: send time, round trip */
	pthread_t t;
};

static void *pinger_run(void *arg)
{
	struct pinger *g = arg;
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_object resp;
	uint64_t next = kp_bench_now_ns();

	open_conn(&c);
	msgpack_sbuffer_init(&sb);
	while (!atomic_load(&g->stop)) {
		uint64_t s;

		kp_bench_sleep_until(next);
		next += TICK_NS;
		kp_bench_frame_begin(&sb, &pk, c.next_id++, "ping", 0);
		kp_bench_frame_end(&sb);
		s = kp_bench_now_ns();
		kp_bench_call(&c, &sb, &resp, "ping");
		kp_bench_u64v_push(&g->rtt, kp_bench_now_ns() - s);
		kp_bench_u64v_push(&g->sent, s);
		if (next < kp_bench_now_ns())
			next = kp_bench_now_ns();
	}
	msgpack_sbuffer_destroy(&sb);
	kp_bench_conn_close(&c);
	return NULL;
}

/* ---- one window's figures --------------------------------------------- */

/* Figures in microseconds, so that rounds can be merged by medians. */
enum fig {
	F_A2V_P50, F_A2V_P99, F_A2V_MAX,
	F_ACK_P50, F_ACK_P99, F_ACK_MAX,
	F_PING_P50, F_PING_P99, F_PING_MAX,
	F_RATE, F_MAX_RATE, F_SECONDS, F_RECORDS, F_EARLY,
	F_IDLE_ACK_P99,
	F_R50, F_R99, F_RPROD,       /* this round's ratios to its peers */
	F_CKPT_MAX, F_CKPTS,         /* longest checkpoint commit (ms), count */
	F_COUNT
};

struct figures {
	double f[F_COUNT];
};

static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

static double sorted_pct_us(uint64_t *v, size_t n, unsigned q)
{
	return q == 100 ? (n ? v[n - 1] / 1e3 : 0) : kp_bench_pct(v, n, q) / 1e3;
}

/* The figures of requests and pings scheduled in [from, to). */
static void window(const struct kp_bench_olp *p, const struct consumer *k,
		   const struct pinger *g, uint64_t from, uint64_t to,
		   struct figures *out)
{
	size_t n_req = 0, n_rec = 0, n_ping = 0, early = 0;
	uint64_t *req = malloc((p->n_acks + 1) * sizeof(*req));
	uint64_t *rec = malloc((p->n_acks * p->batch + 1) * sizeof(*rec));
	uint64_t *ping = malloc((g->rtt.n + 1) * sizeof(*ping));

	if (req == NULL || rec == NULL || ping == NULL)
		kp_bench_die("out of memory");
	for (size_t i = 0; i < p->n_acks; i++) {
		const struct kp_bench_ack *a = &p->acks[i];

		if (a->sched_ns < from || a->sched_ns >= to)
			continue;
		req[n_req++] = a->ack_ns - a->sched_ns;
		for (uint64_t o = a->base; o < a->base + a->count; o++) {
			uint64_t vis = k->visible.v[o - k->first];

			if (vis < a->ack_ns)
				early++;
			rec[n_rec++] = vis > a->ack_ns ? vis - a->ack_ns : 0;
		}
	}
	for (size_t i = 0; i < g->rtt.n; i++)
		if (g->sent.v[i] >= from && g->sent.v[i] < to)
			ping[n_ping++] = g->rtt.v[i];
	if (n_req == 0 || n_ping == 0)
		kp_bench_die("e2e: no request or ping in the window");
	qsort(req, n_req, sizeof(*req), kp_bench_cmp_u64);
	qsort(rec, n_rec, sizeof(*rec), kp_bench_cmp_u64);
	qsort(ping, n_ping, sizeof(*ping), kp_bench_cmp_u64);
	memset(out, 0, sizeof(*out));
	out->f[F_A2V_P50] = sorted_pct_us(rec, n_rec, 50);
	out->f[F_A2V_P99] = sorted_pct_us(rec, n_rec, 99);
	out->f[F_A2V_MAX] = sorted_pct_us(rec, n_rec, 100);
	out->f[F_ACK_P50] = sorted_pct_us(req, n_req, 50);
	out->f[F_ACK_P99] = sorted_pct_us(req, n_req, 99);
	out->f[F_ACK_MAX] = sorted_pct_us(req, n_req, 100);
	out->f[F_PING_P50] = sorted_pct_us(ping, n_ping, 50);
	out->f[F_PING_P99] = sorted_pct_us(ping, n_ping, 99);
	out->f[F_PING_MAX] = sorted_pct_us(ping, n_ping, 100);
	out->f[F_SECONDS] = (double)(to - from) / 1e9;
	out->f[F_RECORDS] = (double)n_rec;
	out->f[F_EARLY] = (double)early;
	out->f[F_R50] = ratio(out->f[F_A2V_P50], out->f[F_PING_P50]);
	out->f[F_R99] = ratio(out->f[F_A2V_P99], out->f[F_PING_P99]);
	free(req);
	free(rec);
	free(ping);
}

/*
 * With KP_BENCH_E2E_TRACE=FILE set, appends one line per request scheduled
 * in [from, to): its scheduled send (CLOCK_MONOTONIC, ms), produce-to-ack
 * and the largest ack-to-visible of its records (us), to line up spikes
 * with what the server did at the time (strace -ttt, perf sched).
 */
static void trace(const struct kp_bench_olp *p, const struct consumer *k,
		  const char *what, uint64_t from, uint64_t to)
{
	const char *path = getenv("KP_BENCH_E2E_TRACE");
	FILE *f;

	if (path == NULL || (f = fopen(path, "a")) == NULL)
		return;
	for (size_t i = 0; i < p->n_acks; i++) {
		const struct kp_bench_ack *a = &p->acks[i];
		uint64_t worst = 0;

		if (a->sched_ns < from || a->sched_ns >= to)
			continue;
		for (uint64_t o = a->base; o < a->base + a->count; o++) {
			uint64_t vis = k->visible.v[o - k->first];

			if (vis > a->ack_ns && vis - a->ack_ns > worst)
				worst = vis - a->ack_ns;
		}
		fprintf(f, "%s %.3f %.0f %.0f\n", what, a->sched_ns / 1e6,
			(a->ack_ns - a->sched_ns) / 1e3, worst / 1e3);
	}
	fclose(f);
}

/* ---- one round of one processor --------------------------------------- */

static void start_server(const char *sub)
{
	char dir[700];

	snprintf(dir, sizeof(dir), "%s/%s", eo->root, sub);
	if (mkdir(dir, 0755) != 0)
		kp_bench_die("mkdir %s: %s", dir, strerror(errno));
	kp_bench_server_start(eo->srv, eo->kappad, dir, NULL);
}

/* Polls until records_processed reaches n; returns the time it was seen. */
static uint64_t wait_processed(struct kp_bench_conn *c, msgpack_sbuffer *sb,
			       uint64_t n)
{
	uint64_t t0 = kp_bench_now_ns();
	struct status st;

	for (;;) {
		proc_status(c, sb, &st);
		if (st.processed >= n)
			return kp_bench_now_ns();
		if (kp_bench_now_ns() - t0 > WAIT_LIMIT_NS)
			kp_bench_die("processor did not reach %llu records",
				     (unsigned long long)n);
		kp_bench_sleep_until(kp_bench_now_ns() + POLL_NS);
	}
}

/*
 * Polls until the live version is not 1 (the replay's cut-over) or, with
 * until non-zero, that time has come; returns the time it stopped.
 */
static uint64_t wait_cut_over(struct kp_bench_conn *c, msgpack_sbuffer *sb,
			      uint64_t until)
{
	uint64_t t0 = kp_bench_now_ns();
	struct status st;

	for (;;) {
		proc_status(c, sb, &st);
		if (st.version != 1 || (until != 0 && kp_bench_now_ns() >= until))
			return kp_bench_now_ns();
		if (kp_bench_now_ns() - t0 > WAIT_LIMIT_NS)
			kp_bench_die("the replay did not cut over");
		kp_bench_sleep_until(kp_bench_now_ns() + 10 * POLL_NS);
	}
}

/*
 * Sleeps until `until`, polling proc_status every CKPT_POLL_NS for the
 * checkpoints committed meanwhile: counts them and keeps the longest
 * commit in *max_ms; with KP_BENCH_E2E_TRACE set, appends "ckpt <seen>
 * <duration>" (CLOCK_MONOTONIC ms, ms) for each and "proc <now>
 * <records_processed>" for each poll, to line up with spikes.
 */
static void watch_checkpoints(struct kp_bench_conn *c, msgpack_sbuffer *sb,
			      uint64_t until, double *max_ms, double *count)
{
	const char *path = getenv("KP_BENCH_E2E_TRACE");
	FILE *f = path != NULL ? fopen(path, "a") : NULL;
	struct status st;
	int64_t last = -1;

	*max_ms = 0;
	*count = 0;
	while (kp_bench_now_ns() < until) {
		proc_status(c, sb, &st);
		if (last >= 0 && st.ckpt_at_ms != last) {
			(*count)++;
			if ((double)st.ckpt_ms > *max_ms)
				*max_ms = (double)st.ckpt_ms;
			if (f != NULL)
				fprintf(f, "ckpt %.3f %lld 0\n",
					kp_bench_now_ns() / 1e6,
					(long long)st.ckpt_ms);
		}
		if (f != NULL)
			fprintf(f, "proc %.3f %llu 0\n", kp_bench_now_ns() / 1e6,
				(unsigned long long)st.processed);
		last = st.ckpt_at_ms;
		kp_bench_sleep_until(kp_bench_now_ns() + CKPT_POLL_NS);
	}
	if (f != NULL)
		fclose(f);
}

/*
 * One round of processor `file` (tag names its directory): fills live,
 * and with replay non-NULL also the window of a replay.
 */
static void round_one(const char *file, const char *tag, uint32_t round,
		      struct figures *live, struct figures *replay)
{
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	struct kp_bench_olp p;
	struct consumer k;
	struct pinger g;
	uint64_t n = eo->records, t0, t_w0, t_w1, t_r1 = 0, end;
	double max_rps, ck_max, ck_n;
	uint32_t batch;
	char sub[64];

	snprintf(sub, sizeof(sub), "e2e-%s-%u", tag, round);
	start_server(sub);
	kp_bench_topic_create(eo->srv->port, IN_TOPIC, 1, "never");
	kp_bench_topic_create(eo->srv->port, OUT_TOPIC, 1, "never");
	open_conn(&c);
	msgpack_sbuffer_init(&sb);
	kp_bench_call_proc_create(&c, &sb, PROC, file, IN_TOPIC, OUT_TOPIC);
	memset(&k, 0, sizeof(k));
	atomic_init(&k.seen_below, 0);
	atomic_init(&k.target, 0);
	atomic_init(&k.cut_over, false);
	if (pthread_create(&k.t, NULL, consumer_run, &k) != 0)
		kp_bench_die("pthread_create failed");
	t0 = kp_bench_now_ns();
	kp_bench_produce_users(eo->srv->port, IN_TOPIC, n, eo->batch,
			       eo->inflight);
	while (atomic_load(&k.seen_below) < n) {
		if (kp_bench_now_ns() - t0 > WAIT_LIMIT_NS)
			kp_bench_die("the outputs of %llu records never showed "
				     "up", (unsigned long long)n);
		kp_bench_sleep_until(kp_bench_now_ns() + POLL_NS);
	}
	max_rps = (double)n / ((double)(kp_bench_now_ns() - t0) / 1e9);
	batch = (uint32_t)(max_rps / 2 / (1e9 / TICK_NS) + 0.5);
	if (batch == 0)
		batch = 1;

	memset(&g, 0, sizeof(g));
	atomic_init(&g.stop, false);
	if (pthread_create(&g.t, NULL, pinger_run, &g) != 0)
		kp_bench_die("pthread_create failed");
	kp_bench_olp_start(&p, eo->srv->port, IN_TOPIC, batch, TICK_NS, 0);
	t_w0 = p.t0 + WARMUP_NS;
	t_w1 = t_w0 + eo->seconds * 1000000000ull;
	kp_bench_sleep_until(t_w0);
	watch_checkpoints(&c, &sb, t_w1, &ck_max, &ck_n);
	if (replay != NULL) {
		kp_bench_call_proc_replay(&c, &sb, PROC);
		t_r1 = wait_cut_over(&c, &sb, t_w1 + eo->seconds * 1000000000ull);
	}
	kp_bench_olp_stop(&p);
	end = p.acks[p.n_acks - 1].base + p.acks[p.n_acks - 1].count;
	if (replay != NULL) {
		wait_cut_over(&c, &sb, 0);
		atomic_store(&k.cut_over, true);
	}
	atomic_store(&k.target, end);
	pthread_join(k.t, NULL);
	atomic_store(&g.stop, true);
	pthread_join(g.t, NULL);
	wait_processed(&c, &sb, end);
	kp_bench_conn_close(&c);
	msgpack_sbuffer_destroy(&sb);
	if (kp_bench_server_stop(eo->srv) != 0)
		fprintf(stderr, "kappa-bench: kappad did not exit cleanly on "
				"SIGTERM (log: %s)\n", eo->srv->log);

	window(&p, &k, &g, t_w0, t_w1, live);
	trace(&p, &k, tag, t_w0, t_w1);
	live->f[F_RATE] = batch * (1e9 / TICK_NS);
	live->f[F_MAX_RATE] = max_rps;
	live->f[F_CKPT_MAX] = ck_max;
	live->f[F_CKPTS] = ck_n;
	if (replay != NULL) {
		window(&p, &k, &g, t_w1, t_r1, replay);
		trace(&p, &k, "replay", t_w1, t_r1);
		replay->f[F_RATE] = live->f[F_RATE];
		replay->f[F_MAX_RATE] = max_rps;
		replay->f[F_IDLE_ACK_P99] = live->f[F_ACK_P99];
		replay->f[F_RPROD] = ratio(replay->f[F_ACK_P99],
					   live->f[F_ACK_P99]);
	}
	kp_bench_olp_free(&p);
	free(k.visible.v);
	free(g.sent.v);
	free(g.rtt.v);
}

/* ---- output ----------------------------------------------------------- */

/* The medians over rounds of each figure. */
static void merge(const struct figures *rounds, uint32_t n,
		  struct figures *out)
{
	double v[64];

	for (int f = 0; f < F_COUNT; f++) {
		for (uint32_t r = 0; r < n; r++)
			v[r] = rounds[r].f[f];
		out->f[f] = kp_bench_median(v, n, NULL, NULL);
	}
}

static void print_header(void)
{
	if (eo->json)
		return;
	printf("%-22s %8s %8s %8s %8s %8s %8s  %-24s %7s %7s %6s %6s\n",
	       "scenario", "rec/s", "a2v p50", "a2v p99", "a2v max", "ack p99",
	       "ack max", "peer", "p50", "p99", "x p50", "x p99");
}

static void print_line(const char *name, const struct figures *m,
		       uint32_t rounds, const char *note)
{
	const double *f = m->f;
	double r50 = f[F_R50], r99 = f[F_R99];
	const char *peer = "ping (same kappad+window)";

	if (eo->json) {
		printf("{\"scenario\":\"%s\",\"records\":%.0f,\"seconds\":%.3f,"
		       "\"records_per_s\":%.0f,\"max_records_per_s\":%.0f,"
		       "\"p50_us\":%.0f,\"p99_us\":%.0f,\"max_us\":%.0f,"
		       "\"produce_p50_us\":%.0f,\"produce_p99_us\":%.0f,"
		       "\"produce_max_us\":%.0f,\"peer\":\"%s\","
		       "\"peer_p50_us\":%.0f,\"peer_p99_us\":%.0f,"
		       "\"peer_max_us\":%.0f,\"ratio_p50\":%.3f,"
		       "\"ratio_p99\":%.3f,",
		       name, f[F_RECORDS], f[F_SECONDS], f[F_RATE],
		       f[F_MAX_RATE], f[F_A2V_P50], f[F_A2V_P99], f[F_A2V_MAX],
		       f[F_ACK_P50], f[F_ACK_P99], f[F_ACK_MAX], peer,
		       f[F_PING_P50], f[F_PING_P99], f[F_PING_MAX], r50, r99);
		if (f[F_IDLE_ACK_P99] > 0)
			printf("\"idle_produce_p99_us\":%.0f,"
			       "\"produce_p99_ratio\":%.3f,",
			       f[F_IDLE_ACK_P99], f[F_RPROD]);
		if (f[F_CKPTS] > 0)
			printf("\"checkpoints\":%.0f,\"checkpoint_max_ms\":%.0f,",
			       f[F_CKPTS], f[F_CKPT_MAX]);
		printf("\"early\":%.0f,\"runs\":%u,\"note\":\"%s\"}\n",
		       f[F_EARLY], rounds, note);
	} else {
		printf("%-22s %8.0f %8.0f %8.0f %8.0f %8.0f %8.0f  %-24s %7.0f "
		       "%7.0f %6.2f %6.2f  %s\n",
		       name, f[F_RATE], f[F_A2V_P50], f[F_A2V_P99],
		       f[F_A2V_MAX], f[F_ACK_P99], f[F_ACK_MAX], peer,
		       f[F_PING_P50], f[F_PING_P99], r50, r99, note);
	}
	fflush(stdout);
}

void kp_bench_e2e(const struct kp_bench_e2e_opts *o)
{
	struct figures lua[64], c[64], rep[64], m;
	char lua_file[700], note[200];
	uint32_t runs = o->runs < 64 ? o->runs : 64;
	FILE *f;

	eo = o;
	snprintf(lua_file, sizeof(lua_file), "%s/e2e_emit.lua", o->root);
	f = fopen(lua_file, "w");
	if (f == NULL || fputs(lua_emit, f) == EOF || fclose(f) != 0)
		kp_bench_die("write %s: %s", lua_file, strerror(errno));
	if (!o->json)
		printf("e2e: count+emit (one output per input), fsync=never, "
		       "50 %% of the max sustained rate for %llu s after %.1f s "
		       "of warm-up; %llu records to find the max; medians of "
		       "%u rounds; times in us (a2v: produce ack -> output "
		       "visible; ack: scheduled send -> ack)\n",
		       (unsigned long long)o->seconds, WARMUP_NS / 1e9,
		       (unsigned long long)o->records, runs);
	print_header();
	for (uint32_t r = 0; r < runs; r++) {
		round_one(lua_file, "lua", r, &lua[r], &rep[r]);
		if (o->plugin != NULL)
			round_one(o->plugin, "c", r, &c[r], NULL);
	}
	merge(lua, runs, &m);
	snprintf(note, sizeof(note), "lua count+emit; max %.0f rec/s; "
		 "checkpoints %.0f, longest %.0f ms", m.f[F_MAX_RATE],
		 m.f[F_CKPTS], m.f[F_CKPT_MAX]);
	print_line("e2e lua 50%", &m, runs, note);
	if (o->plugin != NULL) {
		merge(c, runs, &m);
		snprintf(note, sizeof(note), "c count_by_user.so; max %.0f "
			 "rec/s; checkpoints %.0f, longest %.0f ms",
			 m.f[F_MAX_RATE], m.f[F_CKPTS], m.f[F_CKPT_MAX]);
		print_line("e2e c 50%", &m, runs, note);
	}
	merge(rep, runs, &m);
	snprintf(note, sizeof(note), "lua, proc_replay from earliest flat out, "
		 "%.1f s of it; produce p99 %.0f us idle, ratio %.2f",
		 m.f[F_SECONDS], m.f[F_IDLE_ACK_P99], m.f[F_RPROD]);
	print_line("e2e lua during replay", &m, runs, note);
}
