/*
 * wk_client.c - starting, talking to and stopping a worker process
 * (wk_client.h).
 */
#include "wk_client.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wk_main.h"
#include "base/alloc.h"
#include "base/sanitize.h"
#include "base/logging.h"

#define READ_CHUNK (64 * 1024)


extern char **environ;

#ifdef KP_UNDER_ASAN
/*
 * Under AddressSanitizer a worker keeps a small quarantine of freed
 * memory, so that its anonymous memory (which its limit counts) is the
 * processor's and not the sanitizer's. NULL-terminated; free with
 * free_env.
 */
static char **worker_env(void)
{
	static const char extra[] =
		"quarantine_size_mb=8:thread_local_quarantine_size_kb=64";
	const char *old = getenv("ASAN_OPTIONS");
	size_t n = 0, k = 0;
	char **env;

	while (environ[n] != NULL)
		n++;
	env = kp_calloc(n + 2, sizeof(*env));
	if (env == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "ASAN_OPTIONS=", 13) != 0)
			env[k++] = environ[i];
	env[k] = kp_malloc(sizeof(extra) + 16 + (old ? strlen(old) + 1 : 0));
	if (env[k] != NULL)
		sprintf(env[k], "ASAN_OPTIONS=%s%s%s", old ? old : "",
			old ? ":" : "", extra);
	return env;
}

static void free_env(char **env)
{
	size_t k = 0;

	if (env == NULL)
		return;
	while (env[k] != NULL && strncmp(env[k], "ASAN_OPTIONS=", 13) != 0)
		k++;
	kp_free(env[k]);
	kp_free(env);
}
#else
static char **worker_env(void)
{
	return NULL;
}

static void free_env(char **env)
{
	(void)env;
}
#endif

struct query {
	struct query *next;
	uint32_t tag;
	kp_wk_query_fn cb;
	void *arg;
};

struct kp_wk {
	uv_loop_t *loop;
	uv_process_t proc;
	uv_pipe_t pipe;
	uv_timer_t grace;
	const struct kp_wk_events *ev;  /* NULL once released */
	void *arg;
	struct kp_buf in;
	struct query *queries;
	uint32_t next_tag;
	int pid;                        /* 0 once it exited */
	bool pipe_open;
	bool released;
	int closing;                    /* handles still closing */
	char why[KP_ERROR_MSG_MAX];     /* kappad's reason to kill it */
};

struct write_req {
	uv_write_t req;
	char *data;
};

const char *kp_wk_signal_name(int sig)
{
	const char *s = strsignal(sig);

	return s != NULL ? s : "unknown signal";
}

static void answer_queries(struct kp_wk *w, const char *why)
{
	while (w->queries != NULL) {
		struct query *q = w->queries;

		w->queries = q->next;
		q->cb(q->arg, KP_ESTATE, why, NULL, 0);
		kp_free(q);
	}
}

static void maybe_free(struct kp_wk *w)
{
	if (w->released && w->pid == 0 && w->closing == 0) {
		kp_buf_destroy(&w->in);
		kp_free(w);
	}
}

static void on_closed(uv_handle_t *h)
{
	struct kp_wk *w = h->data;

	w->closing--;
	maybe_free(w);
}

static void close_pipe(struct kp_wk *w)
{
	if (!w->pipe_open)
		return;
	w->pipe_open = false;
	w->closing++;
	uv_close((uv_handle_t *)&w->pipe, on_closed);
}

static void on_process_exit(uv_process_t *p, int64_t status, int term_signal)
{
	struct kp_wk *w = p->data;

	w->pid = 0;
	close_pipe(w);
	uv_timer_stop(&w->grace);
	w->closing += 2;
	uv_close((uv_handle_t *)&w->proc, on_closed);
	uv_close((uv_handle_t *)&w->grace, on_closed);
	answer_queries(w, "the processor's worker process is gone");
	if (w->ev != NULL)
		w->ev->exited(w->arg, status, term_signal, w->why);
	maybe_free(w);
}

void kp_wk_kill(struct kp_wk *w, const char *why)
{
	if (w->pid == 0)
		return;
	if (w->why[0] == '\0' && why != NULL)
		snprintf(w->why, sizeof(w->why), "%s", why);
	uv_process_kill(&w->proc, SIGKILL);
	close_pipe(w);
}

static void dispatch(struct kp_wk *w, const char *frame, size_t len)
{
	struct kp_wm_reader r;

	kp_wm_read(&r, frame, len);
	if (r.type == KP_WM_RESULT) {
		if (w->ev != NULL)
			w->ev->result(w->arg, &r);
	} else if (r.type == KP_WM_QUERY_RESULT) {
		struct query **pq = &w->queries;

		while (*pq != NULL && (*pq)->tag != r.tag)
			pq = &(*pq)->next;
		if (*pq != NULL) {
			struct query *q = *pq;
			int rc = (int)kp_wm_get_u32(&r);
			char msg[KP_ERROR_MSG_MAX];
			size_t rlen;
			const char *resp;

			kp_wm_get_str(&r, msg, sizeof(msg));
			resp = kp_wm_get_bytes(&r, &rlen);
			*pq = q->next;
			if (r.bad)
				q->cb(q->arg, KP_EINTERNAL,
				      "the worker's answer was malformed", NULL,
				      0);
			else
				q->cb(q->arg, rc, msg, resp, rlen);
			kp_free(q);
		}
	} else if (r.type == KP_WM_CLAIM) {
		size_t tlen;
		const char *topic = kp_wm_get_bytes(&r, &tlen);

		if (w->ev != NULL && !r.bad)
			w->ev->claim(w->arg, r.tag, topic, tlen);
		else
			kp_wk_answer_claim(w, r.tag, KP_ESTATE);
	} else if (r.type == KP_WM_FATAL) {
		char why[KP_ERROR_MSG_MAX];

		kp_wm_get_str(&r, why, sizeof(why));
		kp_wk_kill(w, why);
	} else {
		kp_wk_kill(w, "its worker process sent a frame kappad does not know");
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct kp_wk *w = h->data;

	(void)suggested;
	if (kp_buf_reserve(&w->in, READ_CHUNK) != 0) {
		buf->base = NULL;
		buf->len = 0;
		return;
	}
	buf->base = w->in.data + w->in.len;
	buf->len = w->in.cap - w->in.len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct kp_wk *w = s->data;
	size_t pos = 0, len;
	int rc;

	(void)buf;
	if (nread < 0) {
		close_pipe(w);
		return;
	}
	w->in.len += (size_t)nread;
	while ((rc = kp_wm_frame(w->in.data + pos, w->in.len - pos, &len)) ==
	       1) {
		dispatch(w, w->in.data + pos, len);
		pos += len;
		if (!w->pipe_open)
			return;
	}
	if (rc < 0) {
		kp_wk_kill(w, "its worker process wrote a malformed frame");
		return;
	}
	kp_buf_consume(&w->in, pos);
}

int kp_wk_spawn(uv_loop_t *loop, uint64_t data_limit, bool idle,
		const struct kp_wk_events *ev, void *arg, struct kp_wk **out,
		struct kp_error *err)
{
	struct kp_wk *w = kp_calloc(1, sizeof(*w));
	uv_process_options_t opt;
	uv_stdio_container_t io[4];
	char limit[32], parent[32], *args[6];
	int sv[2], rc;

	if (w == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		rc = -errno;
		kp_free(w);
		return kp_error_set(err, rc, "cannot make a socket pair: %s",
				    kp_error_text(rc));
	}
	w->loop = loop;
	w->ev = ev;
	w->arg = arg;
	kp_buf_init(&w->in);
	snprintf(limit, sizeof(limit), "%" PRIu64, data_limit);
	args[0] = "kappad";
	args[1] = KP_WORKER_ARG;
	args[2] = limit;
	snprintf(parent, sizeof(parent), "%ld", (long)getpid());
	args[3] = parent;
	args[4] = idle ? KP_WORKER_IDLE_ARG : NULL;
	args[5] = NULL;
	memset(&opt, 0, sizeof(opt));
	memset(io, 0, sizeof(io));
	io[0].flags = UV_IGNORE;
	io[1].flags = UV_INHERIT_FD;
	io[1].data.fd = 1;
	io[2].flags = UV_INHERIT_FD;
	io[2].data.fd = 2;
	io[3].flags = UV_INHERIT_FD;
	io[3].data.fd = sv[1];
	opt.file = "/proc/self/exe";
	opt.args = args;
	opt.stdio = io;
	opt.stdio_count = 4;
	opt.exit_cb = on_process_exit;
	/*
	 * A session of its own: a terminal's Ctrl-C (SIGINT to the foreground
	 * process group) stops kappad cleanly, and kappad stops its workers;
	 * it must not kill them first and fail every processor. The worker
	 * still dies with kappad (PR_SET_PDEATHSIG in wk_main.c).
	 */
	opt.flags = UV_PROCESS_DETACHED;
	opt.env = worker_env();
	w->proc.data = w;
	rc = uv_spawn(loop, &w->proc, &opt);
	free_env(opt.env);
	close(sv[1]);
	if (rc != 0) {
		close(sv[0]);
		/* A handle that failed to spawn must still be closed. */
		w->released = true;
		w->closing = 1;
		uv_close((uv_handle_t *)&w->proc, on_closed);
		return kp_error_set(err, rc, "cannot start a worker process: %s",
				    uv_strerror(rc));
	}
	w->pid = w->proc.pid;
	uv_timer_init(loop, &w->grace);
	w->grace.data = w;
	uv_pipe_init(loop, &w->pipe, 0);
	w->pipe.data = w;
	uv_pipe_open(&w->pipe, sv[0]);
	w->pipe_open = true;
	uv_read_start((uv_stream_t *)&w->pipe, on_alloc, on_read);
	*out = w;
	return 0;
}

static void on_written(uv_write_t *req, int status)
{
	struct write_req *wr = (struct write_req *)req;

	(void)status;
	kp_free(wr->data);
	kp_free(wr);
}

void kp_wk_send(struct kp_wk *w, const struct kp_buf *frames)
{
	struct write_req *wr;
	uv_buf_t b;

	if (!w->pipe_open || frames->len == 0)
		return;
	wr = kp_malloc(sizeof(*wr));
	if (wr == NULL || (wr->data = kp_malloc(frames->len)) == NULL) {
		kp_free(wr);
		kp_wk_kill(w, "out of memory sending to its worker process");
		return;
	}
	memcpy(wr->data, frames->data, frames->len);
	b = uv_buf_init(wr->data, (unsigned)frames->len);
	if (uv_write(&wr->req, (uv_stream_t *)&w->pipe, &b, 1, on_written) !=
	    0) {
		kp_free(wr->data);
		kp_free(wr);
		kp_wk_kill(w, "cannot write to its worker process");
	}
}

uint32_t kp_wk_tag(struct kp_wk *w)
{
	return ++w->next_tag;
}

void kp_wk_query(struct kp_wk *w, uint32_t tag, const struct kp_buf *q,
		 kp_wk_query_fn cb, void *arg)
{
	struct query *item;

	if (!w->pipe_open || (item = kp_malloc(sizeof(*item))) == NULL) {
		cb(arg, KP_ESTATE, "the processor's worker process is gone",
		   NULL, 0);
		return;
	}
	item->tag = tag;
	item->cb = cb;
	item->arg = arg;
	item->next = w->queries;
	w->queries = item;
	kp_wk_send(w, q);
}

static void send_small(struct kp_wk *w, uint8_t type, uint32_t tag, int rc,
		       bool with_rc)
{
	struct kp_buf b;
	size_t start;

	kp_buf_init(&b);
	start = kp_wm_begin(&b, type, tag);
	if (with_rc)
		kp_wm_put_u32(&b, (uint32_t)rc);
	kp_wm_finish(&b, start);
	kp_wk_send(w, &b);
	kp_buf_destroy(&b);
}

void kp_wk_answer_claim(struct kp_wk *w, uint32_t tag, int rc)
{
	send_small(w, KP_WM_CLAIM_ANSWER, tag, rc, true);
}

void kp_wk_interrupt(struct kp_wk *w)
{
	send_small(w, KP_WM_INTERRUPT, 0, 0, false);
}

static void on_grace(uv_timer_t *t)
{
	kp_wk_kill(t->data, "it did not stop when asked");
}

void kp_wk_release(struct kp_wk *w, uint32_t grace_ms)
{
	if (w == NULL || w->released)
		return;
	w->released = true;
	w->ev = NULL;
	answer_queries(w, "the processor's worker process was stopped");
	if (w->pid == 0) {
		maybe_free(w);
		return;
	}
	if (grace_ms == 0) {
		kp_wk_kill(w, "released");
		return;
	}
	send_small(w, KP_WM_STOP, 0, 0, false);
	uv_timer_start(&w->grace, on_grace, grace_ms, 0);
}

int kp_wk_pid(const struct kp_wk *w)
{
	return w != NULL ? w->pid : 0;
}

uint64_t kp_wk_rss_anon(const struct kp_wk *w)
{
	char path[64], line[256];
	unsigned long long kb = 0;
	FILE *f;

	if (w == NULL || w->pid == 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/status", w->pid);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "RssAnon: %llu kB", &kb) == 1)
			break;
	}
	fclose(f);
	return (uint64_t)kb * 1024;
}

int kp_wk_set_normal(struct kp_wk *w)
{
	struct sched_param sp = { 0 };
	char dir[64];
	struct dirent *d;
	DIR *tasks;
	int rc = 0;

	snprintf(dir, sizeof(dir), "/proc/%d/task", w->proc.pid);
	tasks = opendir(dir);
	if (tasks == NULL)
		return -errno;
	while ((d = readdir(tasks)) != NULL) {
		long tid = strtol(d->d_name, NULL, 10);

		if (tid <= 0)
			continue;
		if (sched_setscheduler((pid_t)tid, SCHED_OTHER, &sp) != 0 &&
		    errno != ESRCH && rc == 0)
			rc = -errno;
	}
	closedir(tasks);
	return rc;
}

/* CAP_SYS_NICE in the effective set (/proc/self/status CapEff). */
static bool has_cap_sys_nice(void)
{
	char line[256];
	unsigned long long caps = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return false;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "CapEff:", 7) == 0) {
			caps = strtoull(line + 7, NULL, 16);
			break;
		}
	}
	fclose(f);
	return (caps >> 23) & 1;       /* CAP_SYS_NICE */
}

bool kp_wk_may_unidle(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NICE, &rl) == 0 &&
	    (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= 20))
		return true;
	return has_cap_sys_nice();
}
