/*
 * bench_tls_rows.c - what TLS costs (--tls): two kappads side by side, one
 * plain and one with TLS on its protocol port (a self-signed P-256
 * certificate made for the run, bench_tls.c), the same load on each in
 * every round: produce over one connection (100-byte records, the
 * produce section's batch and depth, fsync=never), one consumer fetching
 * that topic back (batches form, 1 MiB, 2 in flight), and connect +
 * handshake + one ping. The order plain/TLS alternates from round to
 * round; figures are medians over the rounds and each ratio TLS/plain is
 * taken per round, then its median. Besides throughput each line gives
 * the CPU time kappad and the client used per MB of record payload, since
 * on two vCPUs both sides' crypto shares the same cores.
 *
 * Access pattern: one thread, one measurement at a time; the idle kappad
 * only ticks meanwhile.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Fetches in flight, as in the fetch section (kappa_bench.c). */
#define FETCH_INFLIGHT 2
#define MAX_RUNS 64

/* The figures of one side (plain or TLS) in one round. */
enum {
	F_PROD_RPS, F_PROD_P50, F_PROD_P99, F_PROD_SRV, F_PROD_CLI,
	F_FETCH_RPS, F_FETCH_SRV, F_FETCH_CLI,
	F_CONN_P50, F_CONN_P99, F_CONN_SRV, F_CONN_CLI,
	F_COUNT
};

struct side {
	struct kp_bench_server *srv;   /* its kappad */
	double f[MAX_RUNS][F_COUNT];   /* per round; CPU in us per MB
					  (connect: per connection) */
};

/* kappad's CPU time (all its threads, from schedstat) in seconds. */
static double server_cpu(const struct kp_bench_server *s)
{
	char dir[64], path[128];
	unsigned long long ns, sum = 0;
	struct dirent *e;
	DIR *d;
	FILE *f;

	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)s->pid);
	d = opendir(dir);
	if (d == NULL)
		kp_bench_die("%s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%.20s/schedstat", dir,
			 e->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue;          /* the thread ended meanwhile */
		if (fscanf(f, "%llu", &ns) == 1)
			sum += ns;
		fclose(f);
	}
	closedir(d);
	return (double)sum / 1e9;
}

/* This process's CPU time (every thread) in seconds. */
static double client_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* CPU seconds spent on `records` records, as us per MB of payload. */
static double us_per_mb(double seconds, uint64_t records)
{
	return records ? seconds * 1e6 /
				 ((double)records * KP_BENCH_RECORD_BYTES / 1e6)
		       : 0;
}

static void topic_delete(struct kp_bench_server *s, const char *topic)
{
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_object resp;
	int rc;

	if ((rc = kp_bench_conn_open_tls(&c, s->port, s->tls)) != 0)
		kp_bench_die("connect: %s", c.why[0] ? c.why : strerror(-rc));
	msgpack_sbuffer_init(&sb);
	kp_bench_frame_begin(&sb, &pk, 1, "topic_delete", 1);
	kp_bench_pack_str(&pk, "topic");
	kp_bench_pack_str(&pk, topic);
	kp_bench_frame_end(&sb);
	kp_bench_call(&c, &sb, &resp, "topic_delete");
	msgpack_sbuffer_destroy(&sb);
	kp_bench_conn_close(&c);
}

/* Produces to a fresh topic of s; fills the produce figures of f. */
static void produce_one(const struct kp_bench_tls_opts *o,
			struct kp_bench_server *s, const char *topic,
			double *f)
{
	struct kp_bench_load load;
	uint64_t stored, bytes;
	double s0, c0;

	kp_bench_topic_create_tls(s->port, s->tls, topic, 1, "never");
	s0 = server_cpu(s);
	c0 = client_cpu();
	kp_bench_produce(s->port, s->tls, topic, 1, o->records, o->batch,
			 o->inflight, &load);
	f[F_PROD_SRV] = us_per_mb(server_cpu(s) - s0, load.records);
	f[F_PROD_CLI] = us_per_mb(client_cpu() - c0, load.records);
	kp_bench_topic_stats_tls(s->port, s->tls, topic, &stored, &bytes);
	if (stored != load.records)
		kp_bench_die("%s: %llu records stored, %llu acknowledged",
			     topic, (unsigned long long)stored,
			     (unsigned long long)load.records);
	f[F_PROD_RPS] = (double)load.records / load.seconds;
	f[F_PROD_P50] = load.p50_ns / 1e3;
	f[F_PROD_P99] = load.p99_ns / 1e3;
}

/* Reads the topic produce_one filled back; fills the fetch figures. */
static void fetch_one(const struct kp_bench_tls_opts *o,
		      struct kp_bench_server *s, const char *topic, double *f)
{
	struct kp_bench_load load;
	double s0 = server_cpu(s), c0 = client_cpu();

	kp_bench_fetch(s->port, s->tls, topic, o->records, FETCH_INFLIGHT,
		       &load);
	f[F_FETCH_SRV] = us_per_mb(server_cpu(s) - s0, load.records);
	f[F_FETCH_CLI] = us_per_mb(client_cpu() - c0, load.records);
	f[F_FETCH_RPS] = (double)load.records / load.seconds;
}

/* o->handshakes times: connect (+ TLS handshake), ping, close. */
static void connect_one(const struct kp_bench_tls_opts *o,
			struct kp_bench_server *s, double *f)
{
	uint64_t *lat = calloc(o->handshakes, sizeof(*lat));
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_object resp;
	uint32_t n = o->handshakes;
	double s0, c0;
	int rc;

	if (lat == NULL)
		kp_bench_die("out of memory");
	msgpack_sbuffer_init(&sb);
	kp_bench_frame_begin(&sb, &pk, 1, "ping", 0);
	kp_bench_frame_end(&sb);
	s0 = server_cpu(s);
	c0 = client_cpu();
	for (uint32_t i = 0; i < n; i++) {
		uint64_t t0 = kp_bench_now_ns();

		if ((rc = kp_bench_conn_open_tls(&c, s->port, s->tls)) != 0)
			kp_bench_die("connect: %s",
				     c.why[0] ? c.why : strerror(-rc));
		kp_bench_call(&c, &sb, &resp, "ping");
		kp_bench_conn_close(&c);
		lat[i] = kp_bench_now_ns() - t0;
	}
	f[F_CONN_SRV] = (server_cpu(s) - s0) * 1e6 / n;
	f[F_CONN_CLI] = (client_cpu() - c0) * 1e6 / n;
	qsort(lat, n, sizeof(*lat), kp_bench_cmp_u64);
	f[F_CONN_P50] = kp_bench_pct(lat, n, 50) / 1e3;
	f[F_CONN_P99] = kp_bench_pct(lat, n, 99) / 1e3;
	msgpack_sbuffer_destroy(&sb);
	free(lat);
}

/* One round: each measurement on both sides, order[0] then order[1]. */
static void round_one(const struct kp_bench_tls_opts *o, uint32_t r,
		      struct side *order[2])
{
	char topic[32];

	snprintf(topic, sizeof(topic), "tls-bench-%u", r);
	for (int i = 0; i < 2; i++)
		produce_one(o, order[i]->srv, topic, order[i]->f[r]);
	for (int i = 0; i < 2; i++)
		fetch_one(o, order[i]->srv, topic, order[i]->f[r]);
	for (int i = 0; i < 2; i++)
		connect_one(o, order[i]->srv, order[i]->f[r]);
	for (int i = 0; i < 2; i++)
		topic_delete(order[i]->srv, topic);
}

/* Median over the rounds of figure k of a side. */
static double med(const struct side *s, uint32_t runs, int k)
{
	double v[MAX_RUNS];

	for (uint32_t r = 0; r < runs; r++)
		v[r] = s->f[r][k];
	return kp_bench_median(v, runs, NULL, NULL);
}

/* Median (and range) over the rounds of TLS figure k / plain figure k. */
static double med_ratio(const struct side *t, const struct side *p,
			uint32_t runs, int k, double *lo, double *hi)
{
	double v[MAX_RUNS];

	for (uint32_t r = 0; r < runs; r++)
		v[r] = p->f[r][k] > 0 ? t->f[r][k] / p->f[r][k] : 0;
	return kp_bench_median(v, runs, lo, hi);
}

/* One output line: a TLS figure set against the plain one. */
struct line {
	const char *name, *peer;
	int rps, p50, p99, srv, cli;   /* figure indexes, -1: none */
};

static void print_header(const struct kp_bench_tls_opts *o)
{
	if (o->json)
		return;
	printf("%-22s %8s %6s %7s %7s %7s %7s  %-22s %8s %7s %7s %7s  %5s "
	       "%11s %5s\n",
	       "scenario", "rec/s", "MB/s", "p50us", "p99us", "srv_us",
	       "cli_us", "peer", "rec/s", "p50us", "srv_us", "cli_us",
	       "ratio", "[range]", "srvx");
}

/* A text column: v with `decimals`, or "-" when the line has none. */
static void cell(char *buf, size_t size, double v, bool have, int decimals)
{
	if (have)
		snprintf(buf, size, "%.*f", decimals, v);
	else
		snprintf(buf, size, "-");
}

static void print_line(const struct kp_bench_tls_opts *o,
		       const struct line *l, const struct side *t,
		       const struct side *p, uint32_t runs, const char *tls)
{
	int k = l->rps >= 0 ? l->rps : l->p50;
	double lo, hi, ratio = med_ratio(t, p, runs, k, &lo, &hi);
	double srvx = med_ratio(t, p, runs, l->srv, NULL, NULL);
	double tr = l->rps >= 0 ? med(t, runs, l->rps) : 0;
	double pr = l->rps >= 0 ? med(p, runs, l->rps) : 0;
	double v[8];
	const int idx[4] = { l->p50, l->p99, l->srv, l->cli };

	for (int i = 0; i < 4; i++) {
		v[i] = idx[i] >= 0 ? med(t, runs, idx[i]) : 0;
		v[4 + i] = idx[i] >= 0 ? med(p, runs, idx[i]) : 0;
	}
	if (o->json) {
		printf("{\"scenario\":\"%s\",\"records\":%llu,"
		       "\"records_per_s\":%.0f,\"mb_per_s\":%.1f,"
		       "\"p50_us\":%.0f,\"p99_us\":%.0f,"
		       "\"server_cpu_us\":%.0f,"
		       "\"client_cpu_us\":%.0f,\"cpu_per\":\"%s\","
		       "\"peer\":\"%s\","
		       "\"peer_records_per_s\":%.0f,\"peer_mb_per_s\":%.1f,"
		       "\"peer_p50_us\":%.0f,\"peer_p99_us\":%.0f,"
		       "\"peer_server_cpu_us\":%.0f,"
		       "\"peer_client_cpu_us\":%.0f,"
		       "\"ratio\":%.3f,\"ratio_lo\":%.3f,\"ratio_hi\":%.3f,"
		       "\"server_cpu_ratio\":%.3f,\"runs\":%u,\"tls\":\"%s\"}\n",
		       l->name,
		       (unsigned long long)(l->rps >= 0 ? o->records : 0), tr,
		       tr * KP_BENCH_RECORD_BYTES / 1e6, v[0], v[1], v[2], v[3],
		       l->rps >= 0 ? "MB" : "connection", l->peer, pr,
		       pr * KP_BENCH_RECORD_BYTES / 1e6, v[4], v[5], v[6], v[7],
		       ratio, lo, hi, srvx, runs, tls);
	} else {
		char c[6][16];
		const double cv[6] = { tr, tr * KP_BENCH_RECORD_BYTES / 1e6,
				       v[0], v[1], pr, v[4] };
		const bool have[6] = { l->rps >= 0, l->rps >= 0, l->p50 >= 0,
				       l->p99 >= 0, l->rps >= 0, l->p50 >= 0 };

		for (int j = 0; j < 6; j++)
			cell(c[j], sizeof(c[j]), cv[j], have[j], j == 1);
		printf("%-22s %8s %6s %7s %7s %7.0f %7.0f  %-22s %8s %7s %7.0f "
		       "%7.0f  %5.2f [%4.2f-%4.2f] %5.2f\n",
		       l->name, c[0], c[1], c[2], c[3], v[2], v[3], l->peer,
		       c[4], c[5], v[6], v[7], ratio, lo, hi, srvx);
	}
	fflush(stdout);
}

/* The round's own figures, to show the spread behind the medians. */
static void print_round(uint32_t r, bool tls_first, const struct side *p,
			const struct side *t)
{
	printf("  round %u (%s first): produce %.0f / %.0f rec/s, fetch %.0f "
	       "/ %.0f rec/s, connect p50 %.0f / %.0f us (plain / tls)\n",
	       r + 1, tls_first ? "tls" : "plain", p->f[r][F_PROD_RPS],
	       t->f[r][F_PROD_RPS], p->f[r][F_FETCH_RPS],
	       t->f[r][F_FETCH_RPS], p->f[r][F_CONN_P50],
	       t->f[r][F_CONN_P50]);
	fflush(stdout);
}

/* Starts a kappad in root/sub, with TLS when tls is not NULL. */
static void start(const struct kp_bench_tls_opts *o,
		  struct kp_bench_server *s, const char *sub,
		  struct kp_bench_tls *tls)
{
	char dir[600];

	snprintf(dir, sizeof(dir), "%s/%s", o->root, sub);
	if (mkdir(dir, 0755) != 0)
		kp_bench_die("mkdir %s: %s", dir, strerror(errno));
	if (tls == NULL)
		kp_bench_server_start(s, o->kappad, dir, NULL);
	else
		kp_bench_server_start_tls(s, o->kappad, dir, NULL, tls);
}

static void stop(struct kp_bench_server *s)
{
	if (kp_bench_server_stop(s) != 0)
		fprintf(stderr, "kappa-bench: kappad did not exit cleanly on "
				"SIGTERM (log: %s)\n", s->log);
}

/* "<protocol> <cipher>" the TLS kappad negotiates with this client. */
static void negotiated(struct kp_bench_server *s, char *buf, size_t size)
{
	struct kp_bench_conn c;
	int rc;

	if ((rc = kp_bench_conn_open_tls(&c, s->port, s->tls)) != 0)
		kp_bench_die("connect: %s", c.why[0] ? c.why : strerror(-rc));
	kp_bench_tls_describe(c.ssl, buf, size);
	kp_bench_conn_close(&c);
}

void kp_bench_tls_rows(const struct kp_bench_tls_opts *o)
{
	static struct side plain, tls;
	static const struct line lines[] = {
		{ "tls produce 1 conn", "plain produce 1 conn", F_PROD_RPS,
		  F_PROD_P50, F_PROD_P99, F_PROD_SRV, F_PROD_CLI },
		{ "tls fetch 1 consumer", "plain fetch 1 consumer",
		  F_FETCH_RPS, -1, -1, F_FETCH_SRV, F_FETCH_CLI },
		{ "tls connect+ping", "plain connect+ping", -1, F_CONN_P50,
		  F_CONN_P99, F_CONN_SRV, F_CONN_CLI },
	};
	uint32_t runs = o->runs < MAX_RUNS ? o->runs : MAX_RUNS;
	struct kp_bench_tls *t = kp_bench_tls_new(o->root);
	char suite[128];

	start(o, o->plain, "tls-plain", NULL);
	start(o, o->tls_srv, "tls-on", t);
	plain = (struct side){ .srv = o->plain };
	tls = (struct side){ .srv = o->tls_srv };
	negotiated(o->tls_srv, suite, sizeof(suite));
	if (!o->json)
		printf("tls: two kappads (plain, TLS %s, self-signed P-256 "
		       "certificate, verified), %llu records of %d bytes per "
		       "produce (1 conn, batch %u, inflight %u, fsync=never) "
		       "and fetch (1 consumer, batches, 1 MiB, %d in flight), "
		       "%u connect+ping; order alternates; medians of %u "
		       "rounds; ratio = TLS/plain per round (rec/s, or "
		       "latency for connect); srv_us, cli_us = CPU us of "
		       "kappad and of this client per MB of payload (connect: "
		       "per connection); srvx = srv_us TLS/plain\n",
		       suite, (unsigned long long)o->records,
		       KP_BENCH_RECORD_BYTES, o->batch, o->inflight,
		       FETCH_INFLIGHT, o->handshakes, runs);
	print_header(o);
	for (uint32_t r = 0; r < runs; r++) {
		struct side *order[2] = { &plain, &tls };

		if (r % 2 == 1) {
			order[0] = &tls;
			order[1] = &plain;
		}
		round_one(o, r, order);
		if (!o->json)
			print_round(r, order[0] == &tls, &plain, &tls);
	}
	stop(o->plain);
	stop(o->tls_srv);
	kp_bench_tls_free(t);
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		print_line(o, &lines[i], &tls, &plain, runs, suite);
}
