/*
 * bench_peer.c - the peers kappa is compared with in the same run: the bare
 * file system (sequential writes; write + fdatasync per group; sequential
 * reads) and, when installed, Redis Streams XADD through a raw RESP client.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64u * 1024)

int kp_bench_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void write_all(int fd, const char *p, size_t len, const char *path)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			kp_bench_die("write %s: %s", path, strerror(errno));
		}
		p += n;
		len -= (size_t)n;
	}
}

static char *pattern(size_t len)
{
	char *b = malloc(len ? len : 1);

	if (b == NULL)
		kp_bench_die("out of memory");
	for (size_t i = 0; i < len; i++)
		b[i] = (char)('a' + (i * 7 + i / 13) % 26);
	return b;
}

static int open_new(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		kp_bench_die("open %s: %s", path, strerror(errno));
	return fd;
}

void kp_bench_peer_write(const char *path, uint64_t records, size_t rec_bytes,
			 struct kp_bench_peer_result *out)
{
	uint64_t total = records * rec_bytes, t0;
	char *buf = pattern(CHUNK);
	int fd = open_new(path);

	t0 = kp_bench_now_ns();
	while (total > 0) {
		size_t n = total > CHUNK ? CHUNK : (size_t)total;

		write_all(fd, buf, n, path);
		total -= n;
	}
	out->seconds = (double)(kp_bench_now_ns() - t0) / 1e9;
	out->records = records;
	out->p50_ns = out->p99_ns = 0;
	close(fd);
	free(buf);
}

void kp_bench_peer_fsync(const char *path, uint64_t records, size_t rec_bytes,
			 uint32_t batch, uint32_t group,
			 struct kp_bench_peer_result *out)
{
	size_t blen = (size_t)batch * rec_bytes;
	uint64_t batches = (records + batch - 1) / batch;
	uint64_t groups = (batches + group - 1) / group, g = 0, t0;
	uint64_t *lat = calloc(groups ? groups : 1, sizeof(*lat));
	char *buf = pattern(blen);
	int fd = open_new(path);

	if (lat == NULL)
		kp_bench_die("out of memory");
	t0 = kp_bench_now_ns();
	for (uint64_t done = 0; done < batches; g++) {
		uint64_t tg = kp_bench_now_ns();

		for (uint32_t i = 0; i < group && done < batches; i++, done++)
			write_all(fd, buf, blen, path);
		if (fdatasync(fd) != 0)
			kp_bench_die("fdatasync %s: %s", path, strerror(errno));
		lat[g] = kp_bench_now_ns() - tg;
	}
	out->seconds = (double)(kp_bench_now_ns() - t0) / 1e9;
	out->records = batches * batch;
	qsort(lat, g, sizeof(*lat), kp_bench_cmp_u64);
	out->p50_ns = g ? lat[g / 2] : 0;
	out->p99_ns = g ? lat[(g * 99) / 100] : 0;
	close(fd);
	free(buf);
	free(lat);
}

void kp_bench_peer_read(const char *path, size_t rec_bytes,
			struct kp_bench_peer_result *out)
{
	char *buf = malloc(CHUNK);
	uint64_t total = 0, t0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0 || buf == NULL)
		kp_bench_die("open %s: %s", path, strerror(errno));
	t0 = kp_bench_now_ns();
	while ((n = read(fd, buf, CHUNK)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			kp_bench_die("read %s: %s", path, strerror(errno));
		}
		total += (uint64_t)n;
	}
	out->seconds = (double)(kp_bench_now_ns() - t0) / 1e9;
	out->records = total / rec_bytes;
	out->p50_ns = out->p99_ns = 0;
	close(fd);
	free(buf);
}

/* ---- Redis ---- */

static int resp_fill(struct kp_bench_conn *c)
{
	ssize_t n;

	if (c->rpos > 0) {
		memmove(c->rbuf, c->rbuf + c->rpos, c->rlen - c->rpos);
		c->rlen -= c->rpos;
		c->rpos = 0;
	}
	if (c->rlen == c->rcap)
		return -ENOBUFS;
	do
		n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ECONNRESET;
	c->rlen += (size_t)n;
	return 0;
}

/*
 * Consumes one RESP reply (simple string, integer or bulk string). Returns 0,
 * -EPROTO with the reply in why for an error reply, or -errno.
 */
static int resp_reply(struct kp_bench_conn *c, char *why, size_t why_size)
{
	for (;;) {
		char *p = c->rbuf + c->rpos;
		size_t avail = c->rlen - c->rpos;
		char *eol = avail ? memchr(p, '\n', avail) : NULL;
		int rc;

		if (eol != NULL) {
			size_t line = (size_t)(eol - p) + 1;

			if (p[0] == '-') {
				snprintf(why, why_size, "%.*s", (int)line - 2,
					 p + 1);
				return -EPROTO;
			}
			if (p[0] != '$') {
				c->rpos += line;
				return 0;
			}
			long blen = strtol(p + 1, NULL, 10);
			size_t need = line + (blen >= 0 ? (size_t)blen + 2 : 0);

			if (avail >= need) {
				c->rpos += need;
				return 0;
			}
		}
		rc = resp_fill(c);
		if (rc != 0)
			return rc;
	}
}

static void resp_append(char **buf, size_t *len, size_t *cap, const char *s,
			size_t n)
{
	if (*len + n > *cap) {
		*cap = (*len + n) * 2;
		*buf = realloc(*buf, *cap);
		if (*buf == NULL)
			kp_bench_die("out of memory");
	}
	memcpy(*buf + *len, s, n);
	*len += n;
}

static char *xadd_commands(uint32_t count, size_t value_bytes, size_t *len)
{
	char head[128];
	char *val = pattern(value_bytes);
	char *buf = NULL;
	size_t cap = 0;
	int hl;

	*len = 0;
	hl = snprintf(head, sizeof(head),
		      "*5\r\n$4\r\nXADD\r\n$5\r\nbench\r\n$1\r\n*\r\n"
		      "$1\r\nv\r\n$%zu\r\n", value_bytes);
	for (uint32_t i = 0; i < count; i++) {
		resp_append(&buf, len, &cap, head, (size_t)hl);
		resp_append(&buf, len, &cap, val, value_bytes);
		resp_append(&buf, len, &cap, "\r\n", 2);
	}
	free(val);
	return buf;
}

static pid_t start_redis(const char *redis_server, const char *dir, bool aof,
			 int port)
{
	char portstr[16], logfile[600];
	pid_t pid;

	snprintf(portstr, sizeof(portstr), "%d", port);
	snprintf(logfile, sizeof(logfile), "%s/redis.log", dir);
	fflush(NULL);
	pid = fork();
	if (pid != 0)
		return pid;
	execl(redis_server, redis_server, "--port", portstr, "--bind",
	      "127.0.0.1", "--dir", dir, "--save", "", "--appendonly",
	      aof ? "yes" : "no", "--appendfsync", "everysec",
	      "--daemonize", "no", "--logfile", logfile, (char *)NULL);
	_exit(127);
}

static int redis_connect(struct kp_bench_conn *c, int port, pid_t pid)
{
	uint64_t deadline = kp_bench_now_ns() + 10000000000ull;
	char why[256];
	int status;

	for (;;) {
		if (kp_bench_conn_open(c, port) == 0) {
			if (kp_bench_conn_send(c, "PING\r\n", 6) == 0 &&
			    resp_reply(c, why, sizeof(why)) == 0)
				return 0;
			kp_bench_conn_close(c);
		}
		if (waitpid(pid, &status, WNOHANG) == pid ||
		    kp_bench_now_ns() > deadline)
			return -1;
		nanosleep(&(struct timespec){ .tv_nsec = 20000000 }, NULL);
	}
}

int kp_bench_peer_redis(const char *redis_server, const char *dir, bool aof,
			uint64_t records, size_t value_bytes,
			uint32_t pipeline, struct kp_bench_peer_result *out,
			char *why, size_t why_size)
{
	struct kp_bench_conn c;
	uint64_t rounds = (records + pipeline - 1) / pipeline, t0;
	uint64_t *lat = calloc(rounds ? rounds : 1, sizeof(*lat));
	int port = kp_bench_free_port(), rc = 0;
	pid_t pid = start_redis(redis_server, dir, aof, port);
	size_t clen;
	char *cmds;

	if (pid < 0 || lat == NULL) {
		snprintf(why, why_size, "cannot start %s", redis_server);
		free(lat);
		return -1;
	}
	if (redis_connect(&c, port, pid) != 0) {
		snprintf(why, why_size, "%s did not answer PING (see %s)",
			 redis_server, dir);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		free(lat);
		return -1;
	}
	cmds = xadd_commands(pipeline, value_bytes, &clen);
	t0 = kp_bench_now_ns();
	for (uint64_t r = 0; r < rounds && rc == 0; r++) {
		uint64_t tr = kp_bench_now_ns();

		rc = kp_bench_conn_send(&c, cmds, clen);
		for (uint32_t i = 0; i < pipeline && rc == 0; i++)
			rc = resp_reply(&c, why, why_size);
		lat[r] = kp_bench_now_ns() - tr;
	}
	out->seconds = (double)(kp_bench_now_ns() - t0) / 1e9;
	out->records = rounds * pipeline;
	qsort(lat, rounds, sizeof(*lat), kp_bench_cmp_u64);
	out->p50_ns = rounds ? lat[rounds / 2] : 0;
	out->p99_ns = rounds ? lat[(rounds * 99) / 100] : 0;
	if (rc != 0 && rc != -EPROTO)
		snprintf(why, why_size, "redis: %s", strerror(-rc));
	kp_bench_conn_close(&c);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	free(cmds);
	free(lat);
	return rc == 0 ? 0 : -1;
}

/* ---- Redis Function: one HINCRBY per record ---- */

static const char fcall_lib[] =
	"#!lua name=kbench\n"
	"redis.register_function('count', function(keys, args)\n"
	"  return redis.call('HINCRBY', keys[1], cmsgpack.unpack(args[1]).user, 1)\n"
	"end)\n";

static uint64_t gcd_u64(uint64_t a, uint64_t b)
{
	while (b != 0) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/*
 * FCALL commands for records 0..cycle-1, back to back; offsets[i] is where
 * command i starts (offsets[cycle] the end).
 */
static char *fcall_commands(uint64_t cycle, size_t **offsets, size_t *len)
{
	char head[128], rec[KP_BENCH_RECORD_BYTES];
	char *buf = NULL;
	size_t cap = 0;

	*len = 0;
	*offsets = calloc(cycle + 1, sizeof(**offsets));
	if (*offsets == NULL)
		kp_bench_die("out of memory");
	for (uint64_t i = 0; i < cycle; i++) {
		size_t n = kp_bench_user_record(i, rec);
		int hl = snprintf(head, sizeof(head),
				  "*5\r\n$5\r\nFCALL\r\n$5\r\ncount\r\n"
				  "$1\r\n1\r\n$6\r\ncounts\r\n$%zu\r\n", n);

		(*offsets)[i] = *len;
		resp_append(&buf, len, &cap, head, (size_t)hl);
		resp_append(&buf, len, &cap, rec, n);
		resp_append(&buf, len, &cap, "\r\n", 2);
	}
	(*offsets)[cycle] = *len;
	return buf;
}

int kp_bench_peer_redis_fcall(const char *redis_server, const char *dir,
			      uint64_t records, uint32_t pipeline,
			      struct kp_bench_peer_result *out, char *why,
			      size_t why_size)
{
	struct kp_bench_conn c;
	uint64_t rounds = (records + pipeline - 1) / pipeline, t0;
	uint64_t cycle = (uint64_t)KP_BENCH_USERS * pipeline /
			 gcd_u64(KP_BENCH_USERS, pipeline);
	int port = kp_bench_free_port(), rc = 0;
	pid_t pid = start_redis(redis_server, dir, false, port);
	char head[64];
	size_t clen, *offs;
	char *cmds;

	if (pid < 0) {
		snprintf(why, why_size, "cannot start %s", redis_server);
		return -1;
	}
	if (redis_connect(&c, port, pid) != 0) {
		snprintf(why, why_size, "%s did not answer PING (see %s)",
			 redis_server, dir);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return -1;
	}
	snprintf(head, sizeof(head),
		 "*4\r\n$8\r\nFUNCTION\r\n$4\r\nLOAD\r\n$7\r\nREPLACE\r\n$%zu\r\n",
		 sizeof(fcall_lib) - 1);
	rc = kp_bench_conn_send(&c, head, strlen(head));
	if (rc == 0)
		rc = kp_bench_conn_send(&c, fcall_lib, sizeof(fcall_lib) - 1);
	if (rc == 0)
		rc = kp_bench_conn_send(&c, "\r\n", 2);
	if (rc == 0)
		rc = resp_reply(&c, why, why_size);
	cmds = fcall_commands(cycle, &offs, &clen);
	t0 = kp_bench_now_ns();
	for (uint64_t r = 0; r < rounds && rc == 0; r++) {
		uint64_t first = (r * pipeline) % cycle;

		rc = kp_bench_conn_send(&c, cmds + offs[first],
					offs[first + pipeline] - offs[first]);
		for (uint32_t i = 0; i < pipeline && rc == 0; i++)
			rc = resp_reply(&c, why, why_size);
	}
	out->seconds = (double)(kp_bench_now_ns() - t0) / 1e9;
	out->records = rounds * pipeline;
	out->p50_ns = out->p99_ns = 0;
	if (rc != 0 && rc != -EPROTO)
		snprintf(why, why_size, "redis: %s", strerror(-rc));
	kp_bench_conn_close(&c);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	free(cmds);
	free(offs);
	return rc == 0 ? 0 : -1;
}
