/*
 * bench_views.c - the view scenarios of kappa-bench (--views, --views-only):
 * what a processor's view costs once it holds far more keys than its
 * in-memory table of changed keys (view_cache_bytes, here 64 MiB) keeps.
 *
 * Records: key "k<j>" with j = splitmix64(i) mod K (uniform over K keys,
 * the same sequence in every run), value the record number i (a msgpack
 * uint); one partition, fsync=never.
 *
 *  1. count-by-key: for each K a fresh kappad, N records produced, then the
 *     Lua processor `ctx.state:incr(rec.key, 1)` created from earliest and
 *     timed until its lag is 0 (records/s, ratio to the first K). At the
 *     last K (the largest by default) the RssAnon of kappad and its worker
 *     processes is sampled while it processes and at the end, and the
 *     view's disk bytes are taken; 2 and 3 run on that kappad too.
 *  2. restart: once that processor has checkpointed after catching up,
 *     SIGKILL, exec kappad again and time until a view_get of a known key
 *     is answered; the peer does the same on a kappad with as much log and
 *     a processor that keeps no state.
 *  3. view_get latency: single-key view_gets of random known keys on one
 *     connection, one at a time, idle, then while the processor works
 *     through N/2 new records (paused while they are produced, resumed for
 *     the window).
 *  4. compaction: a topic with cleanup=compact and 64 KiB segments and an
 *     uncompacted copy, M records over 1000 keys each; the records left
 *     once compacted (read from offset 0), and a processor keeping each
 *     key's latest value over each: the two views compared page by page.
 *
 * Access pattern: one thread; one admin connection per kappad, plus one per
 * producer, reader or latency probe, each used in its own phase.
 */
#include "bench.h"
#include "bench_views.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TOPIC "events"
#define PROC "views"
#define POLL_NS 2000000ull               /* proc_status while processing */
#define STATUS_EVERY_NS 10000000ull      /* proc_status in the busy window */
#define IDLE_GETS 10000                  /* view_gets of the idle window */
#define BUSY_MAX_NS 60000000000ull       /* longest busy window */
#define WAIT_MAX_NS 1800000000000ull     /* give up on a processor */
#define ANSWER_MAX_NS 300000000000ull    /* give up on a restart */
#define COMPACT_WAIT_NS 120000000000ull
#define SCAN_PAGE 100
#define MAX_KEY 512              /* longest view key kept */

static const char lua_count[] =
	"local M={} function M.process(ctx, rec) "
	"ctx.state:incr(rec.key, 1) end return M\n";
static const char lua_latest[] =
	"local M={} function M.process(ctx, rec) "
	"ctx.state:put(rec.key, rec.value) end return M\n";
static const char lua_none[] =
	"local M={} function M.process(ctx, rec) end return M\n";

/* A proc_status, the fields these scenarios read. */
struct status {
	uint64_t processed, lag, errors, view_keys, view_bytes, disk;
	uint64_t ckpt_at, ckpt_ms;
	char state[32];
};

static const struct kp_bench_views_opts *vo;
static char conf_path[700];          /* the running kappad's --config */

/* ---- small helpers ---------------------------------------------------- */

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000u),
			       .tv_nsec = (long)(ns % 1000000000u) };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(text, f) == EOF || fclose(f) != 0)
		kp_bench_die("write %s: %s", path, strerror(errno));
}

/* RssAnon of one process in bytes, from /proc/PID/status. */
static uint64_t rss_anon_one(pid_t pid)
{
	char path[64], line[256];
	unsigned long long kib = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "RssAnon: %llu kB", &kib) == 1)
			break;
	fclose(f);
	return (uint64_t)kib * 1024;
}

/* The parent of pid, from /proc/PID/stat (0 when unknown). */
static pid_t parent_of(pid_t pid)
{
	char path[64], buf[512], *p;
	int ppid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	if (fgets(buf, sizeof(buf), f) != NULL &&
	    (p = strrchr(buf, ')')) != NULL)
		sscanf(p + 1, " %*c %d", &ppid);
	fclose(f);
	return (pid_t)ppid;
}

/*
 * RssAnon in bytes of pid and its children: kappad and the worker
 * processes its processors run in (the views' tables live there).
 */
static uint64_t rss_anon(pid_t pid)
{
	uint64_t total = rss_anon_one(pid);
	struct dirent *e;
	DIR *d = opendir("/proc");

	while (d != NULL && (e = readdir(d)) != NULL) {
		pid_t child = (pid_t)atoi(e->d_name);

		if (child > 0 && child != pid && parent_of(child) == pid)
			total += rss_anon_one(child);
	}
	if (d != NULL)
		closedir(d);
	return total;
}

/* ---- records ---------------------------------------------------------- */

/* The key number of record i among `keys` keys (splitmix64, uniform). */
static uint64_t key_of(uint64_t i, uint64_t keys)
{
	uint64_t z = (i + 1) * 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return (z ^ (z >> 31)) % keys;
}

/* Writes "k<j>" (no terminator) to out; returns its length. */
static size_t key_text(uint64_t j, char *out)
{
	char digits[24];
	size_t n = 0, len = 1;

	do {
		digits[n++] = (char)('0' + j % 10);
		j /= 10;
	} while (j != 0);
	out[0] = 'k';
	while (n > 0)
		out[len++] = digits[--n];
	return len;
}

/* How often each key occurs in records 0..n-1 (calloc'd); *distinct set. */
static uint32_t *count_keys(uint64_t keys, uint64_t n, uint64_t *distinct)
{
	uint32_t *c = calloc(keys, sizeof(*c));

	if (c == NULL)
		kp_bench_die("out of memory for %llu key counts",
			     (unsigned long long)keys);
	*distinct = 0;
	for (uint64_t i = 0; i < n; i++)
		if (c[key_of(i, keys)]++ == 0)
			(*distinct)++;
	return c;
}

/* A produce frame of records first..first+n-1 to partition 0 of topic. */
static void build_batch(msgpack_sbuffer *sb, const char *topic, uint32_t id,
			uint64_t first, uint32_t n, uint64_t keys)
{
	msgpack_packer pk;
	char key[24];

	kp_bench_frame_begin(sb, &pk, id, "produce", 3);
	kp_bench_pack_str(&pk, "topic");
	kp_bench_pack_str(&pk, topic);
	kp_bench_pack_str(&pk, "partition");
	msgpack_pack_uint32(&pk, 0);
	kp_bench_pack_str(&pk, "records");
	msgpack_pack_array(&pk, n);
	for (uint32_t i = 0; i < n; i++) {
		size_t len = key_text(key_of(first + i, keys), key);

		msgpack_pack_map(&pk, 2);
		kp_bench_pack_str(&pk, "key");
		msgpack_pack_str_with_body(&pk, key, len);
		kp_bench_pack_str(&pk, "value");
		msgpack_pack_uint64(&pk, first + i);
	}
	kp_bench_frame_end(sb);
}

/* Checks the response to request id; returns the records it acknowledges. */
static uint64_t produce_acked(struct kp_bench_conn *c, uint64_t id)
{
	msgpack_object resp;
	const msgpack_object *res;
	char msg[512];
	int rc;

	if ((rc = kp_bench_conn_recv(c, &resp)) != 0)
		kp_bench_die("produce: recv: %s", strerror(-rc));
	if (!kp_bench_ok(&resp)) {
		kp_bench_describe_error(&resp, msg, sizeof(msg));
		kp_bench_die("produce: %s", msg);
	}
	res = kp_bench_get(&resp, "results");
	if (kp_bench_get_u64(&resp, "id", 0) != id || res == NULL ||
	    res->type != MSGPACK_OBJECT_ARRAY || res->via.array.size != 1)
		kp_bench_die("produce: unexpected response to request %llu",
			     (unsigned long long)id);
	return kp_bench_get_u64(&res->via.array.ptr[0], "count", 0);
}

/* Produces records first..first+count-1, pipelined; dies unless all acked. */
static void produce_keyed(int port, const char *topic, uint64_t first,
			  uint64_t count, uint64_t keys)
{
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	uint64_t nreq = (count + vo->batch - 1) / vo->batch;
	uint64_t sent = 0, done = 0, acked = 0;
	int rc;

	if ((rc = kp_bench_conn_open(&c, port)) != 0)
		kp_bench_die("connect: %s", strerror(-rc));
	msgpack_sbuffer_init(&sb);
	while (done < nreq) {
		while (sent < nreq && sent - done < vo->inflight) {
			uint64_t off = sent * vo->batch;
			uint64_t n = count - off < vo->batch ? count - off
							     : vo->batch;

			build_batch(&sb, topic, (uint32_t)(sent + 1),
				    first + off, (uint32_t)n, keys);
			if ((rc = kp_bench_conn_send(&c, sb.data, sb.size)))
				kp_bench_die("produce: send: %s", strerror(-rc));
			sent++;
		}
		acked += produce_acked(&c, ++done);
	}
	if (acked != count)
		kp_bench_die("produce %s: %llu records acknowledged, %llu sent",
			     topic, (unsigned long long)acked,
			     (unsigned long long)count);
	msgpack_sbuffer_destroy(&sb);
	kp_bench_conn_close(&c);
}

/* Progress on stderr: a full run is quiet for minutes otherwise. */
static void progress(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static void progress(const char *fmt, ...)
{
	va_list ap;

	if (vo->json)
		return;
	fputs("views: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- requests --------------------------------------------------------- */

static void open_conn(struct kp_bench_conn *c, msgpack_sbuffer *sb)
{
	int rc = kp_bench_conn_open(c, vo->srv->port);

	if (rc != 0)
		kp_bench_die("connect: %s", strerror(-rc));
	msgpack_sbuffer_init(sb);
}

static void close_conn(struct kp_bench_conn *c, msgpack_sbuffer *sb)
{
	msgpack_sbuffer_destroy(sb);
	kp_bench_conn_close(c);
}

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

/* proc_status of name into *st; dies when it failed or a record failed. */
static void get_status(struct kp_bench_conn *c, msgpack_sbuffer *sb,
		       const char *name, struct status *st)
{
	msgpack_packer pk;
	msgpack_object resp;
	const msgpack_object *p, *ck;

	kp_bench_frame_begin(sb, &pk, c->next_id++, "proc_status", 1);
	kp_bench_pack_str(&pk, "name");
	kp_bench_pack_str(&pk, name);
	kp_bench_frame_end(sb);
	kp_bench_call(c, sb, &resp, "proc_status");
	p = kp_bench_get(&resp, "proc");
	ck = kp_bench_get(p, "checkpoint");
	st->processed = kp_bench_get_u64(p, "records_processed", 0);
	st->lag = kp_bench_get_u64(p, "lag", 0);
	st->errors = kp_bench_get_u64(p, "errors", 0);
	st->view_keys = kp_bench_get_u64(p, "view_keys", 0);
	st->view_bytes = kp_bench_get_u64(p, "view_bytes", 0);
	st->disk = kp_bench_get_u64(p, "view_disk_bytes", 0);
	st->ckpt_at = kp_bench_get_u64(ck, "at_ms", 0);
	st->ckpt_ms = kp_bench_get_u64(ck, "duration_ms", 0);
	get_str(p, "state", st->state, sizeof(st->state));
	if (st->errors != 0 || strcmp(st->state, "failed") == 0)
		kp_bench_die("processor %s: state %s, %llu errors (see %s)",
			     name, st->state, (unsigned long long)st->errors,
			     vo->srv->log);
}

/* proc_pause or proc_resume of PROC. */
static void proc_op(struct kp_bench_conn *c, msgpack_sbuffer *sb,
		    const char *op)
{
	msgpack_packer pk;
	msgpack_object resp;

	kp_bench_frame_begin(sb, &pk, c->next_id++, op, 1);
	kp_bench_pack_str(&pk, "name");
	kp_bench_pack_str(&pk, PROC);
	kp_bench_frame_end(sb);
	kp_bench_call(c, sb, &resp, op);
}

/*
 * view_get of key on PROC. Returns 1 found (*value set when it is an
 * integer), 0 absent, -1 for an error response, or -errno.
 */
static int view_get(struct kp_bench_conn *c, msgpack_sbuffer *sb,
		    const char *key, size_t key_len, int64_t *value)
{
	msgpack_packer pk;
	msgpack_object resp;
	const msgpack_object *found, *v;
	int rc;

	kp_bench_frame_begin(sb, &pk, c->next_id++, "view_get", 2);
	kp_bench_pack_str(&pk, "name");
	kp_bench_pack_str(&pk, PROC);
	kp_bench_pack_str(&pk, "key");
	msgpack_pack_str_with_body(&pk, key, key_len);
	kp_bench_frame_end(sb);
	if ((rc = kp_bench_conn_send(c, sb->data, sb->size)) != 0 ||
	    (rc = kp_bench_conn_recv(c, &resp)) != 0)
		return rc;
	if (!kp_bench_ok(&resp))
		return -1;
	found = kp_bench_get(&resp, "found");
	v = kp_bench_get(&resp, "value");
	*value = -1;
	if (v != NULL && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		*value = (int64_t)v->via.u64;
	return found != NULL && found->type == MSGPACK_OBJECT_BOOLEAN &&
	       found->via.boolean;
}

/* ---- the kappad child ------------------------------------------------- */

/* Starts kappad in root/sub with view_cache_bytes = VIEW_CACHE_BYTES. */
static void start_in(const char *sub)
{
	char dir[700], text[64];

	snprintf(dir, sizeof(dir), "%s/%s", vo->root, sub);
	if (mkdir(dir, 0755) != 0)
		kp_bench_die("mkdir %s: %s", dir, strerror(errno));
	snprintf(conf_path, sizeof(conf_path), "%s/kappad.conf", dir);
	snprintf(text, sizeof(text),
		 "view_cache_bytes = %llu\nnative_plugins = on\n",
		 (unsigned long long)VIEW_CACHE_BYTES);
	write_file(conf_path, text);
	kp_bench_server_start(vo->srv, vo->kappad, dir, conf_path);
}

/* SIGTERM, then removes the kappad's directory. */
static void stop_and_remove(void)
{
	if (kp_bench_server_stop(vo->srv) != 0)
		fprintf(stderr, "kappa-bench: kappad did not exit cleanly on "
				"SIGTERM (log: %s)\n", vo->srv->log);
	if (kp_bench_rmtree(vo->srv->root) != 0)
		fprintf(stderr, "kappa-bench: could not remove %s\n",
			vo->srv->root);
}

static void kill_server(void)
{
	kill(vo->srv->pid, SIGKILL);
	waitpid(vo->srv->pid, NULL, 0);
	vo->srv->pid = 0;
}

/* Runs kappad again on the same data, port and config; log appended. */
static void exec_again(void)
{
	struct kp_bench_server *s = vo->srv;
	char listen[64];
	int fd;

	fflush(NULL);
	s->pid = fork();
	if (s->pid < 0)
		kp_bench_die("fork: %s", strerror(errno));
	if (s->pid > 0)
		return;
	fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", s->port);
	execl(vo->kappad, vo->kappad, "--data", s->data, "--listen", listen,
	      "--http", "off", "--log-level", "warn", "--config", conf_path,
	      (char *)NULL);
	fprintf(stderr, "exec %s: %s\n", vo->kappad, strerror(errno));
	_exit(127);
}

/* Dies when the kappad child has exited. */
static void check_alive(void)
{
	int status;

	if (waitpid(vo->srv->pid, &status, WNOHANG) == vo->srv->pid) {
		vo->srv->pid = 0;
		kp_bench_die("kappad exited after the restart (status %d; "
			     "log: %s)", status, vo->srv->log);
	}
}

/*
 * One attempt: connects when c is closed (noting the first connect in
 * *listen_ms), then asks view_get of key. true once it is answered: ok and
 * found, or ok at all when want_found is false.
 */
static bool try_answer(struct kp_bench_conn *c, msgpack_sbuffer *sb,
		       const char *key, bool want_found, uint64_t t0,
		       double *listen_ms)
{
	int64_t value;
	int rc;

	if (c->fd < 0) {
		if (kp_bench_conn_open(c, vo->srv->port) != 0) {
			kp_bench_conn_close(c);
			return false;
		}
		if (*listen_ms < 0)
			*listen_ms = (kp_bench_now_ns() - t0) / 1e6;
	}
	rc = view_get(c, sb, key, strlen(key), &value);
	if (rc < -1)
		kp_bench_conn_close(c);
	return rc == 1 || (rc == 0 && !want_found);
}

/*
 * SIGKILLs kappad, execs it again and returns the milliseconds from the
 * fork to the first answered view_get of key (see try_answer); *listen_ms
 * gets the time to the first accepted connection.
 */
static double restart_to_answer(const char *key, bool want_found,
				double *listen_ms)
{
	struct kp_bench_conn c = { .fd = -1 };
	msgpack_sbuffer sb;
	uint64_t t0, us;

	kill_server();
	*listen_ms = -1;
	msgpack_sbuffer_init(&sb);
	t0 = kp_bench_now_ns();
	exec_again();
	while (!try_answer(&c, &sb, key, want_found, t0, listen_ms)) {
		check_alive();
		if (kp_bench_now_ns() - t0 > ANSWER_MAX_NS)
			kp_bench_die("no answer to view_get %s within %llu s of "
				     "the restart", key,
				     (unsigned long long)ANSWER_MAX_NS / 1000000000u);
		sleep_ns(1000000);
	}
	us = (kp_bench_now_ns() - t0) / 1000;
	close_conn(&c, &sb);
	return us / 1e3;
}

/* ---- waiting on processors -------------------------------------------- */

/*
 * Counts a checkpoint when st shows a newer one than the last seen
 * (*last_at UINT64_MAX: none seen yet, the first one is where we start).
 */
static void note_checkpoint(struct count_run *cr, const struct status *st,
			    uint64_t *last_at)
{
	uint64_t prev = *last_at;

	*last_at = st->ckpt_at;
	if (prev == UINT64_MAX || st->ckpt_at == prev)
		return;
	cr->ckpts++;
	cr->ckpt_ms_sum += st->ckpt_ms;
	if (st->ckpt_ms > cr->ckpt_ms_max)
		cr->ckpt_ms_max = st->ckpt_ms;
}

/*
 * Polls name until its lag is 0 with at least `want` records processed.
 * With cr not NULL, samples RssAnon into cr->rss_max and counts the
 * checkpoints. Returns the time.
 */
static uint64_t wait_caught_up(struct kp_bench_conn *c, msgpack_sbuffer *sb,
			       const char *name, uint64_t want,
			       struct count_run *cr, struct status *st)
{
	uint64_t t0 = kp_bench_now_ns(), next_rss = t0, last_at = UINT64_MAX;

	for (;;) {
		uint64_t now = kp_bench_now_ns();

		if (cr != NULL && now >= next_rss) {
			uint64_t r = rss_anon(vo->srv->pid);

			cr->rss_max = r > cr->rss_max ? r : cr->rss_max;
			next_rss = now + RSS_EVERY_NS;
		}
		get_status(c, sb, name, st);
		if (cr != NULL)
			note_checkpoint(cr, st, &last_at);
		if (st->lag == 0 && st->processed >= want)
			return kp_bench_now_ns();
		if (now - t0 > WAIT_MAX_NS)
			kp_bench_die("processor %s: lag %llu after %llu s", name,
				     (unsigned long long)st->lag,
				     (unsigned long long)WAIT_MAX_NS / 1000000000u);
		sleep_ns(POLL_NS);
	}
}

/*
 * Waits for a checkpoint after the one at st->ckpt_at (up to 5 s plus 8
 * times the last one's duration). Returns whether one came.
 */
static bool wait_checkpoint(struct kp_bench_conn *c, msgpack_sbuffer *sb,
			    const struct status *st)
{
	uint64_t limit = 5000000000ull + st->ckpt_ms * 8000000ull;
	uint64_t t0 = kp_bench_now_ns();
	struct status now;

	do {
		get_status(c, sb, PROC, &now);
		if (now.ckpt_at > st->ckpt_at)
			return true;
		sleep_ns(10 * POLL_NS);
	} while (kp_bench_now_ns() - t0 < limit);
	return false;
}

/* ---- scenario 1: count by key ----------------------------------------- */

/*
 * Produces N records over `keys` keys, then runs the count processor from
 * earliest to lag 0 and checks its view against distinct. Leaves kappad
 * running.
 */
static void count_phase(uint64_t keys, uint64_t distinct,
			struct count_run *out, struct status *st)
{
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	char file[700];
	uint64_t t0, t1, t_p = kp_bench_now_ns();

	kp_bench_topic_create(vo->srv->port, TOPIC, 1, "never");
	produce_keyed(vo->srv->port, TOPIC, 0, vo->records, keys);
	progress("K=%llu: %llu records produced in %.1f s",
		 (unsigned long long)keys, (unsigned long long)vo->records,
		 (kp_bench_now_ns() - t_p) / 1e9);
	snprintf(file, sizeof(file), "%s/views_count.lua", vo->root);
	open_conn(&c, &sb);
	out->rss_before = rss_anon(vo->srv->pid);
	t0 = kp_bench_now_ns();
	kp_bench_call_proc_create(&c, &sb, PROC, file, TOPIC, NULL);
	t1 = wait_caught_up(&c, &sb, PROC, vo->records, out, st);
	out->seconds = (t1 - t0) / 1e9;
	out->rps = vo->records / out->seconds;
	out->rss_end = rss_anon(vo->srv->pid);
	out->disk = st->disk;
	out->view_keys = st->view_keys;
	out->view_bytes = st->view_bytes;
	close_conn(&c, &sb);
	if (st->processed != vo->records || st->view_keys != distinct)
		kp_bench_die("K=%llu: %llu records processed (want %llu), %llu "
			     "view keys (want %llu)", (unsigned long long)keys,
			     (unsigned long long)st->processed,
			     (unsigned long long)vo->records,
			     (unsigned long long)st->view_keys,
			     (unsigned long long)distinct);
	progress("K=%llu: processed at %.3f M rec/s (%.1f s); view %llu keys, "
		 "%.0f MiB on disk; %llu checkpoints, %llu ms in all",
		 (unsigned long long)keys, out->rps / 1e6, out->seconds,
		 (unsigned long long)st->view_keys, st->disk / 1048576.0,
		 (unsigned long long)out->ckpts,
		 (unsigned long long)out->ckpt_ms_sum);
}

/* ---- scenario 3: view_get latency -------------------------------------- */

struct probe {
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	uint64_t rng;                /* xorshift64 state */
	uint64_t keys;
	const uint32_t *counts;      /* per key, over records 0..N-1 */
	bool exact;                  /* the value must equal the count */
	uint64_t next;               /* when the next view_get is due */
	uint64_t *lat;               /* ns, grown as needed */
	size_t n, cap;
};

/*
 * One view_get of the key of a random record below N, at most one per
 * PROBE_EVERY_NS; checks its value.
 */
static void probe_one(struct probe *p)
{
	char key[24];
	uint64_t j, t0;
	size_t len;
	int64_t v;
	int rc;

	p->rng ^= p->rng << 13;
	p->rng ^= p->rng >> 7;
	p->rng ^= p->rng << 17;
	j = key_of(p->rng % vo->records, p->keys);
	len = key_text(j, key);
	t0 = kp_bench_now_ns();
	if (t0 < p->next) {
		sleep_ns(p->next - t0);
		t0 = kp_bench_now_ns();
	}
	p->next = t0 + PROBE_EVERY_NS;
	rc = view_get(&p->c, &p->sb, key, len, &v);
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 65536;
		if ((p->lat = realloc(p->lat, p->cap * sizeof(*p->lat))) == NULL)
			kp_bench_die("out of memory");
	}
	p->lat[p->n++] = kp_bench_now_ns() - t0;
	if (rc != 1 || v < (int64_t)p->counts[j] ||
	    (p->exact && v != (int64_t)p->counts[j]))
		kp_bench_die("view_get %.*s: %s %lld, want %s%u", (int)len, key,
			     rc == 1 ? "value" : "not found, rc",
			     rc == 1 ? (long long)v : (long long)rc,
			     p->exact ? "" : ">= ", p->counts[j]);
}

/* Sorts the latencies and stores p50, p99 and max in us. */
static void probe_result(struct probe *p, double *p50, double *p99,
			 double *max, size_t *n)
{
	qsort(p->lat, p->n, sizeof(*p->lat), kp_bench_cmp_u64);
	*p50 = kp_bench_pct(p->lat, p->n, 50) / 1e3;
	*p99 = kp_bench_pct(p->lat, p->n, 99) / 1e3;
	*max = p->n ? p->lat[p->n - 1] / 1e3 : 0;
	*n = p->n;
	p->n = 0;
}

/* The busy window: N/2 new records, then view_gets until lag 0. */
static void busy_window(struct probe *p, struct kp_bench_conn *c,
			msgpack_sbuffer *sb, struct round *r)
{
	uint64_t half = vo->records / 2, t0, next = 0;
	struct status st = { .lag = 1 };

	proc_op(c, sb, "proc_pause");
	produce_keyed(vo->srv->port, TOPIC, vo->records, half, p->keys);
	proc_op(c, sb, "proc_resume");
	t0 = kp_bench_now_ns();
	while (st.lag != 0 && kp_bench_now_ns() - t0 < BUSY_MAX_NS) {
		probe_one(p);
		if (kp_bench_now_ns() >= next) {
			get_status(c, sb, PROC, &st);
			next = kp_bench_now_ns() + STATUS_EVERY_NS;
		}
	}
	r->busy_rps = st.lag == 0 ? half / ((kp_bench_now_ns() - t0) / 1e9)
				  : 0;
	probe_result(p, &r->busy_p50, &r->busy_p99, &r->busy_max, &r->busy_n);
}

static void latency_phase(uint64_t keys, const uint32_t *counts,
			  struct round *r)
{
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	struct probe p = { .rng = 88172645463325252ull, .keys = keys,
			   .counts = counts, .exact = true };

	open_conn(&c, &sb);
	open_conn(&p.c, &p.sb);
	for (int i = 0; i < IDLE_GETS; i++)
		probe_one(&p);
	probe_result(&p, &r->idle_p50, &r->idle_p99, &r->idle_max,
		     &r->idle_n);
	p.exact = false;
	busy_window(&p, &c, &sb, r);
	progress("view_get idle p50/p99 %.0f/%.0f us (%zu), busy %.0f/%.0f us "
		 "(%zu, processor at %.3f M rec/s)", r->idle_p50, r->idle_p99,
		 r->idle_n, r->busy_p50, r->busy_p99, r->busy_n,
		 r->busy_rps / 1e6);
	free(p.lat);
	close_conn(&p.c, &p.sb);
	close_conn(&c, &sb);
}

/* ---- scenarios 1-3 at the last K, and the empty-view peer ------------- */

/*
 * Waits for a checkpoint after catching up, then restarts RESTARTS times
 * (the first right after that checkpoint, the others once answered).
 */
static void checkpoint_and_restart(const struct status *st, const char *key,
				   bool want_found, struct restarts *out)
{
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	double ms[RESTARTS], listen[RESTARTS], lo, hi;

	open_conn(&c, &sb);
	out->ckpt_seen = wait_checkpoint(&c, &sb, st);
	close_conn(&c, &sb);
	for (int i = 0; i < RESTARTS; i++)
		ms[i] = restart_to_answer(key, want_found, &listen[i]);
	out->listen_ms = kp_bench_median(listen, RESTARTS, &lo, &hi);
	out->ms = kp_bench_median(ms, RESTARTS, &out->lo, &out->hi);
	progress("restart (%s): %.1f ms [%.1f-%.1f] to the first view_get, "
		 "listening after %.1f ms", want_found ? "view" : "empty view",
		 out->ms, out->lo, out->hi, out->listen_ms);
}

/* Count run at the last K, then restart, then the latency windows. */
static void largest_run(uint32_t run, size_t ki, struct round *r)
{
	uint64_t keys = vo->keys[ki], distinct;
	uint32_t *counts = count_keys(keys, vo->records, &distinct);
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	struct status st;
	char sub[64], key[24];

	snprintf(sub, sizeof(sub), "views-r%u-k%llu", run,
		 (unsigned long long)keys);
	start_in(sub);
	count_phase(keys, distinct, &r->count[ki], &st);
	key[key_text(key_of(0, keys), key)] = '\0';
	checkpoint_and_restart(&st, key, true, &r->view);
	r->restart_ms = r->view.ms;
	open_conn(&c, &sb);
	wait_caught_up(&c, &sb, PROC, vo->records, NULL, &st);
	close_conn(&c, &sb);
	r->count[ki].disk = st.disk;
	if (st.view_keys != distinct)
		kp_bench_die("after the restart: %llu view keys, want %llu",
			     (unsigned long long)st.view_keys,
			     (unsigned long long)distinct);
	latency_phase(keys, counts, r);
	free(counts);
	stop_and_remove();
}

/* The peer of the restart: as much log, a processor keeping no state. */
static void empty_run(uint32_t run, uint64_t keys, struct round *r)
{
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	struct status st;
	char sub[64], file[700], key[24];

	snprintf(sub, sizeof(sub), "views-r%u-empty", run);
	snprintf(file, sizeof(file), "%s/views_none.lua", vo->root);
	start_in(sub);
	kp_bench_topic_create(vo->srv->port, TOPIC, 1, "never");
	produce_keyed(vo->srv->port, TOPIC, 0, vo->records, keys);
	open_conn(&c, &sb);
	kp_bench_call_proc_create(&c, &sb, PROC, file, TOPIC, NULL);
	wait_caught_up(&c, &sb, PROC, vo->records, NULL, &st);
	close_conn(&c, &sb);
	key[key_text(key_of(0, keys), key)] = '\0';
	checkpoint_and_restart(&st, key, false, &r->empty);
	r->empty_ms = r->empty.ms;
	stop_and_remove();
}

/* A count run at a K other than the last. */
static void count_run(uint32_t run, size_t ki, struct round *r)
{
	uint64_t keys = vo->keys[ki], distinct;
	uint32_t *counts = count_keys(keys, vo->records, &distinct);
	struct status st;
	char sub[64];

	free(counts);
	snprintf(sub, sizeof(sub), "views-r%u-k%llu", run,
		 (unsigned long long)keys);
	start_in(sub);
	count_phase(keys, distinct, &r->count[ki], &st);
	stop_and_remove();
}

/* ---- scenario 4: compaction -------------------------------------------- */

/* topic_create with cleanup=compact; 0, or -1 with the server's reason. */
static int create_compacted(const char *topic, char *why, size_t size)
{
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_object resp;
	int rc;

	open_conn(&c, &sb);
	kp_bench_frame_begin(&sb, &pk, c.next_id++, "topic_create", 4);
	kp_bench_pack_str(&pk, "topic");
	kp_bench_pack_str(&pk, topic);
	kp_bench_pack_str(&pk, "fsync");
	kp_bench_pack_str(&pk, "never");
	kp_bench_pack_str(&pk, "cleanup");
	kp_bench_pack_str(&pk, "compact");
	kp_bench_pack_str(&pk, "segment_bytes");
	msgpack_pack_uint32(&pk, COMPACT_SEGMENT_BYTES);
	kp_bench_frame_end(&sb);
	rc = kp_bench_conn_send(&c, sb.data, sb.size);
	if (rc == 0)
		rc = kp_bench_conn_recv(&c, &resp);
	if (rc != 0)
		kp_bench_die("topic_create %s: %s", topic, strerror(-rc));
	rc = kp_bench_ok(&resp) ? 0 : -1;
	if (rc != 0)
		kp_bench_describe_error(&resp, why, size);
	close_conn(&c, &sb);
	return rc;
}

/* The key number of a record map's "k<j>" key (bin); -1 if not one. */
static long long record_key(const msgpack_object *rec)
{
	const msgpack_object *k = kp_bench_get(rec, "key");
	long long j = 0;

	if (k == NULL || k->type != MSGPACK_OBJECT_BIN || k->via.bin.size < 2 ||
	    k->via.bin.ptr[0] != 'k')
		return -1;
	for (uint32_t i = 1; i < k->via.bin.size; i++)
		j = j * 10 + (k->via.bin.ptr[i] - '0');
	return j < COMPACT_KEYS ? j : -1;
}

/* Sends a fetch of topic from offset; the response in *resp. */
static void fetch_at(struct kp_bench_conn *c, msgpack_sbuffer *sb,
		     const char *topic, uint64_t offset, msgpack_object *resp)
{
	msgpack_packer pk;

	kp_bench_frame_begin(sb, &pk, c->next_id++, "fetch", 3);
	kp_bench_pack_str(&pk, "topic");
	kp_bench_pack_str(&pk, topic);
	kp_bench_pack_str(&pk, "offset");
	msgpack_pack_uint64(&pk, offset);
	kp_bench_pack_str(&pk, "max_bytes");
	msgpack_pack_uint32(&pk, KP_BENCH_FETCH_MAX_BYTES);
	kp_bench_frame_end(sb);
	kp_bench_call(c, sb, resp, "fetch");
}

/* Reads topic from offset 0: records, distinct keys, superseded records. */
static void read_all(const char *topic, struct compact_result *r)
{
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	msgpack_object resp;
	uint32_t seen[COMPACT_KEYS] = { 0 };
	uint64_t offset = 0, end = 1;

	r->left = r->keys_left = 0;
	open_conn(&c, &sb);
	while (offset < end) {
		const msgpack_object *recs;

		fetch_at(&c, &sb, topic, offset, &resp);
		end = kp_bench_get_u64(&resp, "end_offset", 0);
		recs = kp_bench_get(&resp, "records");
		if (recs == NULL || recs->type != MSGPACK_OBJECT_ARRAY ||
		    recs->via.array.size == 0)
			break;
		for (uint32_t i = 0; i < recs->via.array.size; i++) {
			const msgpack_object *rec = &recs->via.array.ptr[i];
			long long j = record_key(rec);

			if (j < 0)
				kp_bench_die("%s: a record without a k<j> key",
					     topic);
			r->keys_left += seen[j]++ == 0;
			r->left++;
			offset = kp_bench_get_u64(rec, "offset", offset) + 1;
		}
	}
	r->superseded = r->left - r->keys_left;
	close_conn(&c, &sb);
}

/* Polls by reading the topic until at most r->bound records are left. */
static void wait_compacted(const char *topic, struct compact_result *r)
{
	uint64_t t0 = kp_bench_now_ns();

	for (;;) {
		read_all(topic, r);
		r->seconds = (kp_bench_now_ns() - t0) / 1e9;
		if (r->left <= r->bound ||
		    kp_bench_now_ns() - t0 > COMPACT_WAIT_NS)
			return;
		sleep_ns(500000000);
	}
}

/* view_scan of name after `after` (after_len 0: from the start). */
static const msgpack_object *scan_page(struct kp_bench_conn *c,
				       msgpack_sbuffer *sb, const char *name,
				       const char *after, size_t after_len,
				       msgpack_object *resp)
{
	msgpack_packer pk;
	const msgpack_object *items;

	kp_bench_frame_begin(sb, &pk, c->next_id++, "view_scan",
			     after_len ? 3 : 2);
	kp_bench_pack_str(&pk, "name");
	kp_bench_pack_str(&pk, name);
	kp_bench_pack_str(&pk, "limit");
	msgpack_pack_uint32(&pk, SCAN_PAGE);
	if (after_len != 0) {
		kp_bench_pack_str(&pk, "after");
		msgpack_pack_str_with_body(&pk, after, after_len);
	}
	kp_bench_frame_end(sb);
	kp_bench_call(c, sb, resp, "view_scan");
	items = kp_bench_get(resp, "items");
	if (items == NULL || items->type != MSGPACK_OBJECT_ARRAY)
		kp_bench_die("view_scan %s: no items", name);
	return items;
}

/* Compares the views of a and b page by page; returns the pages. */
static size_t compare_views(const char *a, const char *b)
{
	struct kp_bench_conn ca, cb;
	msgpack_sbuffer sa, sb;
	msgpack_object ra, rb;
	const msgpack_object *next;
	char after[MAX_KEY];
	size_t pages = 0, after_len = 0;

	open_conn(&ca, &sa);
	open_conn(&cb, &sb);
	do {
		const msgpack_object *ia = scan_page(&ca, &sa, a, after,
						     after_len, &ra);
		const msgpack_object *ib = scan_page(&cb, &sb, b, after,
						     after_len, &rb);

		pages++;
		if (!msgpack_object_equal(*ia, *ib))
			kp_bench_die("compaction: the views of %s and %s differ "
				     "in page %zu", a, b, pages);
		next = kp_bench_get(&ra, "next");
		if ((next != NULL) != (kp_bench_get(&rb, "next") != NULL))
			kp_bench_die("compaction: one view has more pages");
		if (next != NULL && (next->type != MSGPACK_OBJECT_STR ||
				     next->via.str.size == 0 ||
				     next->via.str.size > sizeof(after)))
			kp_bench_die("view_scan: next is not a key");
		after_len = next != NULL ? next->via.str.size : 0;
		if (next != NULL)
			memcpy(after, next->via.str.ptr, after_len);
	} while (next != NULL);
	close_conn(&ca, &sa);
	close_conn(&cb, &sb);
	return pages;
}

/* The latest-value processors over each topic, caught up; compared. */
static void compare_latest(struct compact_result *r)
{
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	struct status st;
	char file[700];

	snprintf(file, sizeof(file), "%s/views_latest.lua", vo->root);
	open_conn(&c, &sb);
	kp_bench_call_proc_create(&c, &sb, "latest-c", file, "compacted", NULL);
	kp_bench_call_proc_create(&c, &sb, "latest-u", file, "copy", NULL);
	wait_caught_up(&c, &sb, "latest-c", 1, NULL, &st);
	r->processed_c = st.processed;
	wait_caught_up(&c, &sb, "latest-u", vo->compact_records, NULL, &st);
	r->processed_u = st.processed;
	if (st.view_keys != COMPACT_KEYS)
		kp_bench_die("compaction: %llu keys in the view, want %d",
			     (unsigned long long)st.view_keys, COMPACT_KEYS);
	close_conn(&c, &sb);
	r->pages = compare_views("latest-c", "latest-u");
}

static void compact_scenario(struct compact_result *r)
{
	uint64_t m = vo->compact_records, stored, bytes;

	memset(r, 0, sizeof(*r));
	start_in("views-compact");
	if (create_compacted("compacted", r->why, sizeof(r->why)) != 0) {
		stop_and_remove();
		return;
	}
	kp_bench_topic_create(vo->srv->port, "copy", 1, "never");
	produce_keyed(vo->srv->port, "compacted", 0, m, COMPACT_KEYS);
	produce_keyed(vo->srv->port, "copy", 0, m, COMPACT_KEYS);
	kp_bench_topic_stats(vo->srv->port, "copy", &stored, &bytes);
	r->bytes_per_record = (double)bytes / (double)stored;
	r->bound = COMPACT_KEYS + vo->batch +
		   (uint64_t)(COMPACT_SEGMENT_BYTES / r->bytes_per_record);
	wait_compacted("compacted", r);
	progress("compaction: %llu of %llu records left after %.1f s",
		 (unsigned long long)r->left, (unsigned long long)m,
		 r->seconds);
	compare_latest(r);
	stop_and_remove();
}

/* ---- entry ------------------------------------------------------------- */

static void write_sources(void)
{
	static const char *const names[] = { "views_count.lua",
					     "views_latest.lua",
					     "views_none.lua" };
	const char *texts[] = { lua_count, lua_latest, lua_none };
	char path[700];

	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", vo->root, names[i]);
		write_file(path, texts[i]);
	}
}

void kp_bench_views(const struct kp_bench_views_opts *o)
{
	struct round *rs = calloc(o->runs, sizeof(*rs));
	struct compact_result cr;
	size_t last = o->key_count - 1;

	vo = o;
	if (rs == NULL || o->runs > 64)
		kp_bench_die("views: at most 64 runs");
	write_sources();
	if (!o->json)
		printf("views: %llu records (key k<j>, j uniform over K; value "
		       "uint) per run, view_cache_bytes %llu MiB; %u run%s "
		       "(figures are medians of --runs, default 1); "
		       "compaction %llu records over %d keys\n",
		       (unsigned long long)o->records,
		       (unsigned long long)(VIEW_CACHE_BYTES >> 20), o->runs,
		       o->runs > 1 ? "s" : "",
		       (unsigned long long)o->compact_records, COMPACT_KEYS);
	for (uint32_t run = 0; run < o->runs; run++) {
		for (size_t k = 0; k < last; k++)
			count_run(run, k, &rs[run]);
		largest_run(run, last, &rs[run]);
		empty_run(run, o->keys[last], &rs[run]);
	}
	compact_scenario(&cr);
	kp_views_report(o, rs, &cr);
	free(rs);
}
