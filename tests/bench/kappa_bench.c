/*
 * kappa_bench.c - kappa-bench: starts a real kappad, produces and fetches
 * 100-byte records through the client protocol, measures the peers (the bare
 * file system, Redis Streams when installed) in the same run and prints one
 * line per scenario with the ratio kappa/peer. With --proc (or --proc-only)
 * it also runs the processor scenarios: records/s through a Lua and a C
 * count-by-user processor over a pre-loaded topic, with 1 and 2 workers,
 * against a msgpack-c + hash map loop and a Redis Function. With --versions
 * (or --versions-only) it also runs the version scenarios (bench_versions.c):
 * the pause a hot reload causes, replay throughput, and produce latency and
 * live lag while a replay runs. With --views (or --views-only) it also runs
 * the view scenarios (bench_views.c): count-by-key throughput as the view
 * outgrows memory, kappad's memory, restart time, view_get latency, and a
 * compacted topic. With --e2e (or --e2e-only) it also runs the end-to-end
 * scenarios (bench_e2e.c): produce ack to output visible at 50 % of the
 * max rate, against ping round trips, also during a replay. With --tls (or
 * --tls-only) it also runs the TLS scenarios (bench_tls_rows.c): produce,
 * fetch and connect against a TLS kappad and a plain one, TLS/plain.
 * docs/BENCHMARKS.md explains the scenarios and gives figures.
 */
#include "bench.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define RECORD_BYTES KP_BENCH_RECORD_BYTES
#define REDIS_PIPELINE 64

struct options {
	const char *kappad;         /* --kappad */
	const char *data_root;      /* --data-root */
	const char *redis;          /* --redis-server, or found on PATH */
	uint64_t records;           /* --records, 0 for the defaults */
	uint32_t batch;             /* --batch */
	uint32_t inflight;          /* --inflight */
	bool quick;                 /* --quick */
	bool json;                  /* --json */
	bool proc;                  /* --proc: add the processor scenarios */
	bool proc_only;             /* --proc-only: run only them */
	const char *plugin_dir;     /* --plugin-dir, else <kappad dir>/tests/plugins */
	uint64_t proc_records;      /* --proc-records, 0 for the default */
	bool versions;              /* --versions: add the version scenarios */
	bool versions_only;         /* --versions-only: run only them */
	uint32_t reloads;           /* --reloads, 0 for the default */
	bool views;                 /* --views: add the view scenarios */
	bool views_only;            /* --views-only: run only them */
	uint64_t views_records;     /* --views-records, 0 for the default */
	const char *views_keys;     /* --views-keys LIST, NULL for the default */
	uint32_t runs;              /* --runs (view scenarios), 0: 1 */
	bool e2e;                   /* --e2e: add the end-to-end scenarios */
	bool e2e_only;              /* --e2e-only: run only them */
	uint64_t e2e_seconds;       /* --e2e-seconds, 0 for the default */
	bool tls;                   /* --tls: add the TLS scenarios */
	bool tls_only;              /* --tls-only: run only them */
};

/* One line of output: a kappa scenario and its peer, or a peer alone. */
struct row {
	char name[64];              /* scenario */
	struct kp_bench_load load;  /* kappa's figures; records 0 when none */
	char peer[64];              /* peer name, "" when none */
	struct kp_bench_peer_result pr;
	double ratio;               /* kappa rec/s / peer rec/s, 0 when none */
	double peer_rec_bytes;      /* bytes per record the peer moves */
	double c_peer_rps;          /* Lua rows: the plain-C floor's rec/s of
				       the same run (0: none) */
	char note[160];
};

static struct options opt = {
	.kappad = "build/kappad", .data_root = "/tmp", .batch = 500,
	.inflight = 16,
};

/* What the exit handler cleans up when the run dies half-way. */
static struct kp_bench_server srv;
static struct kp_bench_server srv_tls;  /* the TLS kappad of --tls */
static char scratch[512];

static void on_exit_cleanup(void)
{
	struct kp_bench_server *all[] = { &srv, &srv_tls };

	for (size_t i = 0; i < 2; i++) {
		if (all[i]->pid <= 0)
			continue;
		kill(all[i]->pid, SIGKILL);
		waitpid(all[i]->pid, NULL, 0);
		all[i]->pid = 0;
	}
	if (scratch[0] != '\0' && kp_bench_rmtree(scratch) != 0)
		fprintf(stderr, "kappa-bench: could not remove %s\n", scratch);
	scratch[0] = '\0';
}

/*
 * On a failed request: if kappad sp is gone, says how it ended and shows the
 * end of its log (the scratch directory, and the log with it, is removed).
 */
static void report_death(struct kp_bench_server *sp)
{
	char line[1024];
	long size;
	int status;
	FILE *f;

	uint64_t deadline = kp_bench_now_ns() + 1000000000ull;
	pid_t got = 0;

	/* A reset connection can arrive just before the exit is reapable. */
	while (sp->pid > 0 &&
	       (got = waitpid(sp->pid, &status, WNOHANG)) == 0 &&
	       kp_bench_now_ns() < deadline)
		usleep(10000);
	if (sp->pid <= 0 || got != sp->pid)
		return;
	sp->pid = 0;
	if (WIFSIGNALED(status))
		fprintf(stderr, "kappa-bench: kappad was killed by signal %d "
				"(%s)\n", WTERMSIG(status),
			strsignal(WTERMSIG(status)));
	else
		fprintf(stderr, "kappa-bench: kappad exited with status %d\n",
			WEXITSTATUS(status));
	if ((f = fopen(sp->log, "r")) == NULL)
		return;
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, size > 4096 ? size - 4096 : 0, SEEK_SET);
	if (size > 4096 && fgets(line, sizeof(line), f) == NULL)
		size = 0;
	fprintf(stderr, "--- end of %s ---\n", sp->log);
	while (fgets(line, sizeof(line), f) != NULL)
		fputs(line, stderr);
	fclose(f);
}

/* The die hook: reports each kappad of the run that is gone. */
static void on_die(void)
{
	report_death(&srv);
	report_death(&srv_tls);
}

static double rate(uint64_t records, double seconds)
{
	return seconds > 0 ? (double)records / seconds : 0;
}

/* Replaces characters that would need escaping in JSON. */
static void json_safe(char *s)
{
	for (; *s != '\0'; s++)
		if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
			*s = '\'';
}

static void print_json(const struct row *r, double kr, double pr)
{
	char note[sizeof(r->note)];

	memcpy(note, r->note, sizeof(note));
	json_safe(note);
	printf("{\"scenario\":\"%s\",\"records\":%llu,\"seconds\":%.4f,"
	       "\"records_per_s\":%.0f,\"mb_per_s\":%.1f,"
	       "\"p50_us\":%.0f,\"p99_us\":%.0f,\"peer\":\"%s\","
	       "\"peer_records\":%llu,\"peer_seconds\":%.4f,"
	       "\"peer_records_per_s\":%.0f,"
	       "\"peer_p50_us\":%.0f,\"peer_p99_us\":%.0f,"
	       "\"peer_record_bytes\":%.1f,\"ratio\":%.3f,",
	       r->name, (unsigned long long)r->load.records, r->load.seconds,
	       kr, kr * RECORD_BYTES / 1e6, r->load.p50_ns / 1e3,
	       r->load.p99_ns / 1e3, r->peer,
	       (unsigned long long)r->pr.records, r->pr.seconds, pr,
	       r->pr.p50_ns / 1e3, r->pr.p99_ns / 1e3, r->peer_rec_bytes,
	       r->ratio);
	if (r->c_peer_rps > 0)
		printf("\"plain_c_records_per_s\":%.0f,\"plain_c_ratio\":%.3f,",
		       r->c_peer_rps, r->c_peer_rps > 0 ? kr / r->c_peer_rps : 0);
	printf("\"note\":\"%s\"}\n", note);
}

static void print_row(const struct row *r)
{
	double kr = rate(r->load.records, r->load.seconds);
	double pr = rate(r->pr.records, r->pr.seconds);

	if (opt.json)
		print_json(r, kr, pr);
	else if (r->load.records == 0)
		printf("%-28s %8s %6s %8s %6s %6s %6s  %-26s %s\n", r->name,
		       "-", "-", "-", "-", "-", "-", r->peer, r->note);
	else
		printf("%-28s %8llu %6.3f %8.0f %6.1f %6.0f %6.0f  "
		       "%-26s %9.0f %6.0f %5.2f%s%s\n",
		       r->name, (unsigned long long)r->load.records,
		       r->load.seconds, kr, kr * RECORD_BYTES / 1e6,
		       r->load.p50_ns / 1e3, r->load.p99_ns / 1e3, r->peer, pr,
		       r->pr.p99_ns / 1e3, r->ratio, r->note[0] ? "  " : "",
		       r->note);
	fflush(stdout);
}

static void finish_row(struct row *r)
{
	double pr = rate(r->pr.records, r->pr.seconds);

	r->ratio = pr > 0 ? rate(r->load.records, r->load.seconds) / pr : 0;
	print_row(r);
}

static const char *find_redis(void)
{
	static char found[512];
	const char *path = getenv("PATH");
	char *dirs, *save = NULL;

	if (path == NULL || (dirs = strdup(path)) == NULL)
		return NULL;
	for (char *d = strtok_r(dirs, ":", &save); d != NULL;
	     d = strtok_r(NULL, ":", &save)) {
		snprintf(found, sizeof(found), "%s/redis-server", d);
		if (access(found, X_OK) == 0) {
			free(dirs);
			return found;
		}
	}
	free(dirs);
	return NULL;
}

static void usage(void)
{
	puts("usage: kappa-bench [--kappad PATH] [--data-root DIR] "
	     "[--records N]\n"
	     "                   [--batch N] [--inflight N] [--quick] [--json]\n"
	     "                   [--redis-server PATH]\n"
	     "                   [--proc | --proc-only] [--plugin-dir DIR] "
	     "[--proc-records N]\n"
	     "                   [--versions | --versions-only] [--reloads N]\n"
	     "                   [--views | --views-only] [--views-records N]"
	     " [--views-keys LIST]\n"
	     "                   [--runs N] [--e2e | --e2e-only] "
	     "[--e2e-seconds N]\n"
	     "                   [--tls | --tls-only]\n"
	     "defaults: --kappad build/kappad --data-root /tmp --batch 500 "
	     "--inflight 16;\n"
	     "--records: 2000000 for fsync=never, 200000 for fsync=always\n"
	     "--quick: 100000 and 10000 records (100000 per processor), for a "
	     "smoke run\n"
	     "--proc: also run the processor scenarios; --proc-only: only them\n"
	     "--plugin-dir: where count_by_user.so is (default: "
	     "<dir of kappad>/tests/plugins)\n"
	     "--proc-records: records per processor input topic (default "
	     "1000000), also the history the version scenarios replay\n"
	     "--versions: also run the version scenarios (reload pause, "
	     "replay throughput,\n"
	     "  produce latency during a replay); --versions-only: only them\n"
	     "--reloads: hot reloads in the reload scenario (default 50)\n"
	     "--views: also run the view scenarios (count by key, memory, "
	     "restart,\n"
	     "  view_get latency, compaction); --views-only: only them\n"
	     "--views-records: records per count run (default 10000000, "
	     "--quick 200000)\n"
	     "--views-keys: key counts, comma-separated, the first the peer "
	     "of the others\n"
	     "  (default 1000,1000000,10000000; --quick 1000,100000)\n"
	     "--runs: rounds of the view scenarios, figures are medians "
	     "(default 1)\n"
	     "--e2e: also run the end-to-end latency scenarios (produce ack "
	     "-> output\n"
	     "  visible at 50 % of the max rate, ping peer, during a replay); "
	     "--e2e-only: only them\n"
	     "  (5 rounds, --runs N for N; --quick: 1 round of 2 s)\n"
	     "--e2e-seconds: the measured window at 50 % (default 10)\n"
	     "--tls: also run the TLS scenarios (produce, fetch, connect "
	     "over TLS against\n"
	     "  plain TCP, two kappads side by side); --tls-only: only them\n"
	     "  (5 rounds of 4000000 records, --runs N, --records N; "
	     "--quick: 1 round of 200000)");
}

static uint64_t parse_u64(const char *name, const char *s, uint64_t max)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || v > max)
		kp_bench_die("%s: want a number in 1..%llu, got '%s'", name,
			     (unsigned long long)max, s);
	return v;
}

static void parse_args(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage();
			exit(0);
		} else if (strcmp(a, "--quick") == 0) {
			opt.quick = true;
		} else if (strcmp(a, "--json") == 0) {
			opt.json = true;
		} else if (strcmp(a, "--proc") == 0) {
			opt.proc = true;
		} else if (strcmp(a, "--proc-only") == 0) {
			opt.proc_only = true;
		} else if (strcmp(a, "--versions") == 0) {
			opt.versions = true;
		} else if (strcmp(a, "--versions-only") == 0) {
			opt.versions_only = true;
		} else if (strcmp(a, "--views") == 0) {
			opt.views = true;
		} else if (strcmp(a, "--views-only") == 0) {
			opt.views_only = true;
		} else if (strcmp(a, "--e2e") == 0) {
			opt.e2e = true;
		} else if (strcmp(a, "--e2e-only") == 0) {
			opt.e2e_only = true;
		} else if (strcmp(a, "--tls") == 0) {
			opt.tls = true;
		} else if (strcmp(a, "--tls-only") == 0) {
			opt.tls_only = true;
		} else if (v != NULL && strcmp(a, "--e2e-seconds") == 0) {
			opt.e2e_seconds = parse_u64(a, argv[++i], 3600);
		} else if (v == NULL) {
			kp_bench_die("unknown argument '%s' or it needs a "
				     "value (see --help)", a);
		} else if (strcmp(a, "--kappad") == 0) {
			opt.kappad = argv[++i];
		} else if (strcmp(a, "--data-root") == 0) {
			opt.data_root = argv[++i];
		} else if (strcmp(a, "--plugin-dir") == 0) {
			opt.plugin_dir = argv[++i];
		} else if (strcmp(a, "--proc-records") == 0) {
			opt.proc_records =
				parse_u64(a, argv[++i], 1000000000000ull);
		} else if (strcmp(a, "--views-records") == 0) {
			opt.views_records =
				parse_u64(a, argv[++i], 1000000000000ull);
		} else if (strcmp(a, "--views-keys") == 0) {
			opt.views_keys = argv[++i];
		} else if (strcmp(a, "--runs") == 0) {
			opt.runs = (uint32_t)parse_u64(a, argv[++i], 64);
		} else if (strcmp(a, "--reloads") == 0) {
			opt.reloads = (uint32_t)parse_u64(a, argv[++i], 10000);
		} else if (strcmp(a, "--redis-server") == 0) {
			opt.redis = argv[++i];
		} else if (strcmp(a, "--records") == 0) {
			opt.records = parse_u64(a, argv[++i], 1000000000000ull);
		} else if (strcmp(a, "--batch") == 0) {
			opt.batch = (uint32_t)parse_u64(a, argv[++i], 100000);
		} else if (strcmp(a, "--inflight") == 0) {
			opt.inflight = (uint32_t)parse_u64(a, argv[++i], 4096);
		} else {
			kp_bench_die("unknown argument '%s' (see --help)", a);
		}
	}
}

/* Bytes per record on disk, rounded, for the file peers. */
static size_t rec_bytes(double disk_bytes)
{
	return (size_t)(disk_bytes + 0.5);
}

/*
 * The four produce lines, each followed by its file peer. Sets *disk_bytes
 * from the first topic's size on disk, and keeps the 1-connection lines for
 * the Redis comparison.
 */
static void produce_rows(int port, const char *file, uint64_t n_never,
			 uint64_t n_always, double *disk_bytes,
			 struct row *never1, struct row *always1)
{
	static const uint32_t conns[] = { 1, 4 };
	uint64_t stored, bytes;

	for (int f = 0; f < 2; f++) {
		const char *fsync = f == 0 ? "never" : "always";

		for (size_t k = 0; k < 2; k++) {
			struct row r;
			char topic[64];

			memset(&r, 0, sizeof(r));
			snprintf(topic, sizeof(topic), "bench-%s-%u", fsync,
				 conns[k]);
			snprintf(r.name, sizeof(r.name),
				 "produce fsync=%s %u conn%s", fsync, conns[k],
				 conns[k] > 1 ? "s" : "");
			kp_bench_topic_create(port, topic, conns[k], fsync);
			kp_bench_produce(port, NULL, topic, conns[k],
					 f == 0 ? n_never : n_always, opt.batch,
					 opt.inflight, &r.load);
			kp_bench_topic_stats(port, topic, &stored, &bytes);
			if (stored != r.load.records)
				kp_bench_die("%s: end offsets sum to %llu, %llu "
					     "acknowledged", topic,
					     (unsigned long long)stored,
					     (unsigned long long)r.load.records);
			if (bytes > 0 && f == 0 && k == 0)
				*disk_bytes = (double)bytes / (double)stored;
			r.peer_rec_bytes = (double)rec_bytes(*disk_bytes);
			if (f == 0) {
				snprintf(r.peer, sizeof(r.peer), "write 64KiB");
				kp_bench_peer_write(file, r.load.records,
						    rec_bytes(*disk_bytes),
						    &r.pr);
			} else {
				uint32_t g = opt.inflight * conns[k];

				snprintf(r.peer, sizeof(r.peer),
					 "write+fdatasync/%u batches", g);
				kp_bench_peer_fsync(file, r.load.records,
						    rec_bytes(*disk_bytes),
						    opt.batch, g, &r.pr);
			}
			unlink(file);
			finish_row(&r);
			if (k == 0 && f == 0)
				*never1 = r;
			else if (k == 0)
				*always1 = r;
		}
	}
}

/*
 * Fetches the consumer keeps in flight: two 1 MiB responses are enough to
 * keep kappad and the consumer busy at once, and keep the bytes in cache
 * (16, the produce depth, measured 25-40 % slower: 16 MiB in flight).
 */
#define FETCH_INFLIGHT 2

/*
 * The fetch lines: one consumer reading the 1-connection fsync=never topic
 * (100-byte records) with fetches of 1 MiB, FETCH_INFLIGHT pipelined, in
 * format "batches" (each batch's CRCs checked and its records walked by
 * the client), then the same in format "records"; both against one read()
 * of the same bytes from the page cache.
 */
static void fetch_row(int port, const char *file, uint64_t records,
		      double disk_bytes)
{
	struct row r, maps;

	memset(&r, 0, sizeof(r));
	snprintf(r.name, sizeof(r.name), "fetch 1 consumer 1MiB");
	kp_bench_fetch(port, NULL, "bench-never-1", records, FETCH_INFLIGHT,
		       &r.load);
	snprintf(r.peer, sizeof(r.peer), "read 64KiB (cached)");
	r.peer_rec_bytes = (double)rec_bytes(disk_bytes);
	kp_bench_peer_write(file, records, rec_bytes(disk_bytes), &r.pr);
	kp_bench_peer_read(file, rec_bytes(disk_bytes), &r.pr);
	unlink(file);
	finish_row(&r);
	maps = r;
	snprintf(maps.name, sizeof(maps.name), "fetch 1MiB records form");
	kp_bench_fetch_records(port, NULL, "bench-never-1", records,
			       FETCH_INFLIGHT, &maps.load);
	finish_row(&maps);
}

/* Redis XADD without persistence and with AOF everysec, when installed. */
static void redis_rows(const char *root, uint64_t records,
		       const struct row *never1, const struct row *always1)
{
	char dir[600], why[256];

	for (int aof = 0; aof < 2; aof++) {
		const struct row *k = aof ? always1 : never1;
		struct row r;

		memset(&r, 0, sizeof(r));
		why[0] = '\0';
		snprintf(r.name, sizeof(r.name), "%s", k->name);
		snprintf(r.peer, sizeof(r.peer), "redis xadd P%d %s",
			 REDIS_PIPELINE, aof ? "aof/1s" : "no-persist");
		r.peer_rec_bytes = RECORD_BYTES;
		if (opt.redis == NULL) {
			snprintf(r.note, sizeof(r.note),
				 "skipped: redis-server not installed");
			print_row(&r);
			continue;
		}
		kp_bench_mkdtemp(root, dir, sizeof(dir));
		if (kp_bench_peer_redis(opt.redis, dir, aof != 0, records,
					RECORD_BYTES, REDIS_PIPELINE, &r.pr,
					why, sizeof(why)) != 0) {
			snprintf(r.note, sizeof(r.note), "skipped: %.140s", why);
			print_row(&r);
			continue;
		}
		r.load = k->load;
		finish_row(&r);
	}
}

/* ---- processor scenarios ---- */

static const char lua_count[] =
	"local M={} function M.process(ctx, rec) "
	"local n = ctx.state:incr(rec.value.user, 1) end return M\n";
/* Burns a CPU in a compiled loop on its first record (a budget of hours). */
static const char lua_burn[] =
	"local M={} function M.process(ctx, rec) "
	"local x = 0 while true do x = x + 1 end end return M\n";
#define BURN_BUDGET_MS 3600000
static const char lua_emit[] =
	"local M={} function M.process(ctx, rec) "
	"local user = rec.value.user "
	"local n = ctx.state:incr(user, 1) "
	"ctx:emit(\"counts\", { user = user, n = n }, user) end return M\n";

/* Writes text to dir/name and puts its absolute path in out. */
static void write_file(const char *dir, const char *name, const char *text,
		       char *out, size_t size)
{
	FILE *f;

	if ((size_t)snprintf(out, size, "%s/%s", dir, name) >= size)
		kp_bench_die("path too long: %s/%s", dir, name);
	f = fopen(out, "w");
	if (f == NULL || fputs(text, f) == EOF || fclose(f) != 0)
		kp_bench_die("write %s: %s", out, strerror(errno));
}

/* <dir of kappad>/tests/plugins/count_by_user.so, or under --plugin-dir. */
static void find_plugin(char *out, size_t size)
{
	char dir[PATH_MAX], path[PATH_MAX + 32];
	const char *slash;

	if (opt.plugin_dir != NULL) {
		snprintf(dir, sizeof(dir), "%s", opt.plugin_dir);
	} else {
		slash = strrchr(opt.kappad, '/');
		if (slash == NULL)
			snprintf(dir, sizeof(dir), "tests/plugins");
		else
			snprintf(dir, sizeof(dir), "%.*s/tests/plugins",
				 (int)(slash - opt.kappad), opt.kappad);
	}
	snprintf(path, sizeof(path), "%s/count_by_user.so", dir);
	if (realpath(path, out) == NULL || strlen(out) >= size)
		kp_bench_die("%s: %s (build the tests, or pass --plugin-dir)",
			     path, strerror(errno));
}

/* What the three processor variants are called and run. */
enum { V_C, V_LUA_COUNT, V_LUA_EMIT, V_COUNT };
static const char *const variant_name[V_COUNT] = {
	"c count+emit", "lua count", "lua count+emit",
};
static const char *const variant_tag[V_COUNT] = { "c", "lc", "le" };

static void set_note(struct row *r, uint32_t workers, const char *peer_unit)
{
	double kns = r->load.records
			     ? r->load.seconds * 1e9 * workers / r->load.records
			     : 0;
	double pns = r->pr.records
			     ? r->pr.seconds * 1e9 * workers / r->pr.records
			     : 0;

	if (peer_unit != NULL)
		snprintf(r->note, sizeof(r->note),
			 "%.0f ns/rec/worker; peer %.0f ns/rec/%s", kns, pns,
			 peer_unit);
	else
		snprintf(r->note, sizeof(r->note), "%.0f ns/rec/worker", kns);
}

/* Runs variant v: one processor per input topic, until all are done. */
static void run_variant(int v, uint32_t workers, uint64_t n,
			const char *files[], char topics[][32],
			struct kp_bench_load *out)
{
	struct kp_bench_proc procs[KP_BENCH_MAX_PROCS];

	for (uint32_t i = 0; i < workers; i++) {
		memset(&procs[i], 0, sizeof(procs[i]));
		snprintf(procs[i].name, sizeof(procs[i].name), "bench-%s-%u",
			 variant_tag[v], i);
		snprintf(procs[i].file, sizeof(procs[i].file), "%s", files[v]);
		procs[i].input = topics[i];
		procs[i].output = v == V_LUA_COUNT ? NULL : "counts";
	}
	kp_bench_proc_run(srv.port, procs, workers, n, out);
}

/*
 * The Lua count again, while another processor spins in a compiled loop
 * on its first record (its budget is hours, so nothing stops it): what a
 * runaway processor costs the others.
 */
static void burn_beside(uint64_t n, const char *files[], char topics[][32],
			const char *burn_file, struct kp_bench_load *out)
{
	struct kp_bench_proc burner;

	kp_bench_topic_create(srv.port, "burn", 1, "never");
	kp_bench_produce_users(srv.port, "burn", opt.batch, opt.batch,
			       opt.inflight);
	memset(&burner, 0, sizeof(burner));
	snprintf(burner.name, sizeof(burner.name), "bench-burner");
	snprintf(burner.file, sizeof(burner.file), "%s", burn_file);
	burner.input = "burn";
	burner.time_budget_ms = BURN_BUDGET_MS;
	kp_bench_proc_create(srv.port, &burner);
	run_variant(V_LUA_COUNT, 1, n, files, topics, out);
	kp_bench_proc_delete(srv.port, burner.name);
}

/*
 * One kappad with as many input topics of n records as `workers`
 * (processors, each in its worker process); each variant runs one
 * processor per topic; with one, the Lua count runs once more beside a
 * burning processor. Then the floor with as many threads. Prints the
 * rows; keeps the 1-worker Lua count row.
 */
static void proc_workers(uint32_t workers, uint64_t n, const char *files[],
			 const char *burn_file, struct row *lua_count_row)
{
	char dir[600], conf[700], text[96];
	struct kp_bench_load load[V_COUNT], burned;
	struct kp_bench_peer_result floor_r;
	char topics[KP_BENCH_MAX_PROCS][32];
	struct row r;

	snprintf(dir, sizeof(dir), "%s/proc-w%u", scratch, workers);
	if (mkdir(dir, 0755) != 0)
		kp_bench_die("mkdir %s: %s", dir, strerror(errno));
	/* The burner's budget of hours is above the default ceiling. */
	snprintf(text, sizeof(text), "workers = %u\nmax_time_budget_ms = %u\n",
		 workers, BURN_BUDGET_MS);
	write_file(dir, "kappad.conf", text, conf, sizeof(conf));
	kp_bench_server_start(&srv, opt.kappad, dir, conf);
	for (uint32_t i = 0; i < workers; i++) {
		uint64_t stored, bytes;

		snprintf(topics[i], sizeof(topics[i]), "users-%u", i);
		kp_bench_topic_create(srv.port, topics[i], 1, "never");
		kp_bench_produce_users(srv.port, topics[i], n, opt.batch,
				       opt.inflight);
		kp_bench_topic_stats(srv.port, topics[i], &stored, &bytes);
		if (stored != n)
			kp_bench_die("%s holds %llu records, want %llu",
				     topics[i], (unsigned long long)stored,
				     (unsigned long long)n);
	}
	for (int v = 0; v < V_COUNT; v++)
		run_variant(v, workers, n, files, topics, &load[v]);
	if (workers == 1)
		burn_beside(n, files, topics, burn_file, &burned);
	if (kp_bench_server_stop(&srv) != 0)
		fprintf(stderr, "kappa-bench: kappad did not exit cleanly on "
				"SIGTERM (log: %s)\n", srv.log);
	kp_bench_peer_floor(n, workers, &floor_r);
	for (int v = 0; v < V_COUNT; v++) {
		memset(&r, 0, sizeof(r));
		snprintf(r.name, sizeof(r.name), "proc %s w%u",
			 variant_name[v], workers);
		r.load = load[v];
		r.peer_rec_bytes = RECORD_BYTES;
		if (v == V_C) {
			snprintf(r.peer, sizeof(r.peer),
				 "msgpack-c+hashmap %u thr", workers);
			r.pr = floor_r;
			set_note(&r, workers, "thread");
		} else {
			snprintf(r.peer, sizeof(r.peer), "proc c count+emit w%u",
				 workers);
			r.pr.records = load[V_C].records;
			r.pr.seconds = load[V_C].seconds;
			r.c_peer_rps = rate(floor_r.records, floor_r.seconds);
			set_note(&r, workers, NULL);
		}
		finish_row(&r);
		if (v == V_LUA_COUNT && workers == 1)
			*lua_count_row = r;
	}
	if (workers != 1)
		return;
	memset(&r, 0, sizeof(r));
	snprintf(r.name, sizeof(r.name), "proc lua count w1 +burner");
	snprintf(r.peer, sizeof(r.peer), "proc lua count w1 alone");
	r.load = burned;
	r.pr.records = load[V_LUA_COUNT].records;
	r.pr.seconds = load[V_LUA_COUNT].seconds;
	r.peer_rec_bytes = RECORD_BYTES;
	r.c_peer_rps = rate(floor_r.records, floor_r.seconds);
	snprintf(r.note, sizeof(r.note),
		 "another processor spins in a compiled loop meanwhile; "
		 "target ratio >= 0.8");
	finish_row(&r);
}

static void print_header(void)
{
	printf("%-28s %8s %6s %8s %6s %6s %6s  %-26s %9s %6s %5s\n",
	       "scenario", "records", "secs", "rec/s", "MB/s", "p50us", "p99us",
	       "peer", "peer rec/s", "p99", "ratio");
}

static void proc_rows(void)
{
	char root[PATH_MAX], lua1[PATH_MAX + 32], lua2[PATH_MAX + 32];
	char burn[PATH_MAX + 32];
	char so[PATH_MAX], dir[600], why[256];
	const char *files[V_COUNT];
	uint64_t n = opt.proc_records ? opt.proc_records
				      : opt.quick ? 100000 : 1000000;
	struct row lua1w, r;

	n = (n + opt.batch - 1) / opt.batch * opt.batch;
	if (realpath(scratch, root) == NULL)
		kp_bench_die("realpath %s: %s", scratch, strerror(errno));
	find_plugin(so, sizeof(so));
	write_file(root, "count.lua", lua_count, lua1, sizeof(lua1));
	write_file(root, "count_emit.lua", lua_emit, lua2, sizeof(lua2));
	write_file(root, "burn.lua", lua_burn, burn, sizeof(burn));
	files[V_C] = so;
	files[V_LUA_COUNT] = lua1;
	files[V_LUA_EMIT] = lua2;
	if (!opt.json)
		printf("processors: %llu records of %d bytes per input topic "
		       "({user: u0..u%d, pad}), from earliest; %s\n",
		       (unsigned long long)n, RECORD_BYTES, KP_BENCH_USERS - 1,
		       so);
	if (!opt.json)
		print_header();
	proc_workers(1, n, files, burn, &lua1w);
	proc_workers(2, n, files, burn, &lua1w);
	memset(&r, 0, sizeof(r));
	snprintf(r.name, sizeof(r.name), "%s", lua1w.name);
	snprintf(r.peer, sizeof(r.peer), "redis fcall hincrby P%d",
		 REDIS_PIPELINE);
	r.peer_rec_bytes = RECORD_BYTES;
	if (opt.redis == NULL) {
		snprintf(r.note, sizeof(r.note),
			 "skipped: redis-server not installed");
		print_row(&r);
		return;
	}
	kp_bench_mkdtemp(scratch, dir, sizeof(dir));
	if (kp_bench_peer_redis_fcall(opt.redis, dir, n, REDIS_PIPELINE, &r.pr,
				      why, sizeof(why)) != 0) {
		snprintf(r.note, sizeof(r.note), "skipped: %.140s", why);
		print_row(&r);
		return;
	}
	r.load = lua1w.load;
	set_note(&r, 1, "call");
	finish_row(&r);
}

/* The version scenarios: reload pause, replay throughput, latency. */
static void versions_rows(void)
{
	char root[PATH_MAX];
	struct kp_bench_versions_opts o;
	uint64_t n = opt.proc_records ? opt.proc_records
				      : opt.quick ? 100000 : 1000000;

	if (realpath(scratch, root) == NULL)
		kp_bench_die("realpath %s: %s", scratch, strerror(errno));
	memset(&o, 0, sizeof(o));
	o.kappad = opt.kappad;
	o.root = root;
	o.records = (n + opt.batch - 1) / opt.batch * opt.batch;
	o.reloads = opt.reloads ? opt.reloads : opt.quick ? 10 : 50;
	o.batch = opt.batch;
	o.inflight = opt.inflight;
	o.json = opt.json;
	o.srv = &srv;
	kp_bench_versions(&o);
}

/* Parses --views-keys (comma-separated) into o->keys; dies when invalid. */
static void parse_keys(const char *list, struct kp_bench_views_opts *o)
{
	char buf[256], *save = NULL;

	if (strlen(list) >= sizeof(buf))
		kp_bench_die("--views-keys: list too long");
	snprintf(buf, sizeof(buf), "%s", list);
	o->key_count = 0;
	for (char *t = strtok_r(buf, ",", &save); t != NULL;
	     t = strtok_r(NULL, ",", &save)) {
		if (o->key_count == KP_BENCH_MAX_VIEW_KEYS)
			kp_bench_die("--views-keys: at most %d counts",
				     KP_BENCH_MAX_VIEW_KEYS);
		o->keys[o->key_count++] =
			parse_u64("--views-keys", t, 4000000000ull);
	}
	if (o->key_count == 0)
		kp_bench_die("--views-keys: no key count in '%s'", list);
}

/* The view scenarios: count by key, memory, restart, latency, compaction. */
static void views_rows(void)
{
	char root[PATH_MAX];
	struct kp_bench_views_opts o;
	uint64_t n = opt.views_records ? opt.views_records
				       : opt.quick ? 200000 : 10000000;

	if (realpath(scratch, root) == NULL)
		kp_bench_die("realpath %s: %s", scratch, strerror(errno));
	memset(&o, 0, sizeof(o));
	o.kappad = opt.kappad;
	o.root = root;
	o.records = (n + opt.batch - 1) / opt.batch * opt.batch;
	parse_keys(opt.views_keys ? opt.views_keys
		   : opt.quick    ? "1000,100000"
				  : "1000,1000000,10000000",
		   &o);
	o.compact_records = opt.quick ? 100000 : 1000000;
	o.runs = opt.runs ? opt.runs : 1;
	o.batch = opt.batch;
	o.inflight = opt.inflight;
	o.json = opt.json;
	o.srv = &srv;
	kp_bench_views(&o);
}

/* The end-to-end scenarios: ack to visible, produce, ping, replay. */
static void e2e_rows(void)
{
	char root[PATH_MAX], so[PATH_MAX];
	struct kp_bench_e2e_opts o;
	uint64_t n = opt.proc_records ? opt.proc_records
				      : opt.quick ? 100000 : 1000000;

	if (realpath(scratch, root) == NULL)
		kp_bench_die("realpath %s: %s", scratch, strerror(errno));
	find_plugin(so, sizeof(so));
	memset(&o, 0, sizeof(o));
	o.kappad = opt.kappad;
	o.root = root;
	o.plugin = so;
	o.records = (n + opt.batch - 1) / opt.batch * opt.batch;
	o.seconds = opt.e2e_seconds ? opt.e2e_seconds : opt.quick ? 2 : 10;
	o.runs = opt.runs ? opt.runs : opt.quick ? 1 : 5;
	o.batch = opt.batch;
	o.inflight = opt.inflight;
	o.json = opt.json;
	o.srv = &srv;
	kp_bench_e2e(&o);
}

/* The TLS scenarios: produce, fetch and connect, TLS against plain. */
static void tls_rows(void)
{
	char root[PATH_MAX];
	struct kp_bench_tls_opts o;
	uint64_t n = opt.records ? opt.records : opt.quick ? 200000 : 4000000;

	if (realpath(scratch, root) == NULL)
		kp_bench_die("realpath %s: %s", scratch, strerror(errno));
	memset(&o, 0, sizeof(o));
	o.kappad = opt.kappad;
	o.root = root;
	o.records = (n + opt.batch - 1) / opt.batch * opt.batch;
	o.runs = opt.runs ? opt.runs : opt.quick ? 1 : 5;
	o.handshakes = opt.quick ? 20 : 200;
	o.batch = opt.batch;
	o.inflight = opt.inflight;
	o.json = opt.json;
	o.plain = &srv;
	o.tls_srv = &srv_tls;
	kp_bench_tls_rows(&o);
}

int main(int argc, char **argv)
{
	char file[600];
	uint64_t n_never, n_always;
	double disk_bytes = RECORD_BYTES;
	struct row never1, always1;
	bool log_rows;

	parse_args(argc, argv);
	log_rows = !opt.proc_only && !opt.versions_only && !opt.views_only &&
		   !opt.e2e_only && !opt.tls_only;
	n_never = opt.records ? opt.records : opt.quick ? 100000 : 2000000;
	n_always = opt.records ? opt.records : opt.quick ? 10000 : 200000;
	if (opt.redis == NULL)
		opt.redis = find_redis();
	kp_bench_mkdtemp(opt.data_root, scratch, sizeof(scratch));
	atexit(on_exit_cleanup);
	kp_bench_die_hook = on_die;
	snprintf(file, sizeof(file), "%s/peer.dat", scratch);
	if (log_rows)
		kp_bench_server_start(&srv, opt.kappad, scratch, NULL);
	if (!opt.json) {
		if (!log_rows)
			printf("kappa-bench: %s, scratch in %s; %ld CPUs\n",
			       opt.kappad, scratch,
			       sysconf(_SC_NPROCESSORS_ONLN));
		else
			printf("kappa-bench: %s on 127.0.0.1:%d, data in %s; "
			       "%ld CPUs; records of %d bytes, batch %u, "
			       "inflight %u per connection\n",
			       opt.kappad, srv.port, srv.data,
			       sysconf(_SC_NPROCESSORS_ONLN), RECORD_BYTES,
			       opt.batch, opt.inflight);
		if (log_rows)
			print_header();
	}
	if (log_rows) {
		produce_rows(srv.port, file, n_never, n_always, &disk_bytes,
			     &never1, &always1);
		fetch_row(srv.port, file, never1.load.records, disk_bytes);
		if (kp_bench_server_stop(&srv) != 0)
			fprintf(stderr, "kappa-bench: kappad did not exit "
					"cleanly on SIGTERM (log: %s)\n",
				srv.log);
		redis_rows(scratch, n_never, &never1, &always1);
		if (!opt.json)
			printf("(records on disk take %.1f bytes each in kappa; "
			       "the file peers write %zu bytes per record)\n",
			       disk_bytes, rec_bytes(disk_bytes));
	}
	if (opt.proc || opt.proc_only)
		proc_rows();
	if (opt.versions || opt.versions_only)
		versions_rows();
	if (opt.views || opt.views_only)
		views_rows();
	if (opt.e2e || opt.e2e_only)
		e2e_rows();
	if (opt.tls || opt.tls_only)
		tls_rows();
	return 0;
}
