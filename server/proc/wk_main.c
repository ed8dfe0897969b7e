/*
 * wk_main.c - the worker process: kappad re-executed with --worker, one per
 * running processor version (wk_client.h starts it). It holds the
 * version's code and view (wk_exec.h) and talks to kappad over the socket
 * on descriptor 3 (wk_msg.h).
 *
 * Threads: the reader thread reads every frame; jobs go to the main thread
 * one at a time, queries and interrupts are handled on the reader thread
 * itself, so a query never waits for a batch and an interrupt reaches a
 * running call. Replies from both threads are written under one lock.
 * When kappad goes away (end of file on the socket, or its death through
 * PR_SET_PDEATHSIG) the worker exits at once: it never outlives kappad.
 */
#include "wk_main.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "wk_exec.h"
#include "wk_msg.h"
#include "wk_seccomp.h"
#include "base/alloc.h"
#include "base/sanitize.h"
#include "base/buf.h"
#include "base/fsutil.h"


struct job {
	struct job *next;
	char *frame;
	size_t len;
};

#define MEMORY_CHECK_US 10000

struct worker {
	int fd;
	unsigned long long memory_limit;  /* RssAnon ceiling, 0: none */
	struct kp_wx x;
	pthread_mutex_t lock;        /* jobs, claim answer, writes */
	pthread_cond_t cond;
	struct job *head, *tail;
	bool stop;
	bool eof;
	uint32_t claim_tag;          /* the claim waited for (0: none) */
	bool claim_answered;
	int claim_rc;
	uint32_t next_tag;
};

/* Writes a frame; a worker that cannot talk to kappad has no purpose. */
static void send_frame(struct worker *w, const struct kp_buf *b)
{
	pthread_mutex_lock(&w->lock);
	if (kp_file_write_all(w->fd, b->data, b->len) != 0)
		_exit(0);
	pthread_mutex_unlock(&w->lock);
}

static int read_all(int fd, char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Asks kappad whether the processor may emit to topic (main thread). */
static int ask_claim(void *arg, const char *topic, size_t len)
{
	struct worker *w = arg;
	struct kp_buf b;
	size_t start;
	int rc;

	kp_buf_init(&b);
	pthread_mutex_lock(&w->lock);
	w->claim_tag = ++w->next_tag;
	w->claim_answered = false;
	pthread_mutex_unlock(&w->lock);
	start = kp_wm_begin(&b, KP_WM_CLAIM, w->claim_tag);
	kp_wm_put_bytes(&b, topic, len);
	kp_wm_finish(&b, start);
	send_frame(w, &b);
	kp_buf_destroy(&b);
	pthread_mutex_lock(&w->lock);
	while (!w->claim_answered && !w->eof)
		pthread_cond_wait(&w->cond, &w->lock);
	rc = w->claim_answered ? w->claim_rc : KP_ESHUTDOWN;
	w->claim_tag = 0;
	pthread_mutex_unlock(&w->lock);
	return rc;
}

static void *reader(void *arg)
{
	struct worker *w = arg;

	for (;;) {
		char head[4];
		size_t len;
		char *frame;
		struct kp_wm_reader r;
		struct kp_buf out;

		if (read_all(w->fd, head, 4) != 0 ||
		    kp_wm_frame(head, 4, &len) < 0)
			_exit(0);
		len = (size_t)kp_get_le32(head) + 4;
		frame = kp_malloc(len);
		if (frame == NULL)
			_exit(3);
		memcpy(frame, head, 4);
		if (read_all(w->fd, frame + 4, len - 4) != 0)
			_exit(0);
		kp_wm_read(&r, frame, len);
		switch (r.type) {
		case KP_WM_INTERRUPT:
			kp_wx_interrupt(&w->x);
			kp_free(frame);
			break;
		case KP_WM_GET:
		case KP_WM_SCAN:
			kp_buf_init(&out);
			kp_wx_query(&w->x, &r, &out);
			send_frame(w, &out);
			kp_buf_destroy(&out);
			kp_free(frame);
			break;
		case KP_WM_CLAIM_ANSWER:
			pthread_mutex_lock(&w->lock);
			if (r.tag == w->claim_tag) {
				w->claim_rc = (int)kp_wm_get_u32(&r);
				w->claim_answered = true;
				pthread_cond_broadcast(&w->cond);
			}
			pthread_mutex_unlock(&w->lock);
			kp_free(frame);
			break;
		case KP_WM_STOP:
			kp_free(frame);
			pthread_mutex_lock(&w->lock);
			w->stop = true;
			w->eof = true;
			pthread_cond_broadcast(&w->cond);
			pthread_mutex_unlock(&w->lock);
			return NULL;
		default: {
			struct job *j = kp_malloc(sizeof(*j));

			if (j == NULL)
				_exit(3);
			j->next = NULL;
			j->frame = frame;
			j->len = len;
			pthread_mutex_lock(&w->lock);
			if (w->tail != NULL)
				w->tail->next = j;
			else
				w->head = j;
			w->tail = j;
			pthread_cond_broadcast(&w->cond);
			pthread_mutex_unlock(&w->lock);
		}
		}
	}
}

/* A field ("RssAnon:", "VmData:") of /proc/self/status in bytes. */
static unsigned long long status_bytes(const char *field)
{
	char buf[4096];
	ssize_t n;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	const char *p;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strstr(buf, field);
	return p != NULL ? strtoull(p + strlen(field), NULL, 10) * 1024 : 0;
}

/* The worker's socket and limit, for the crash handler. */
static int crash_fd = -1;
static unsigned long long crash_limit;

static size_t put_text(char *out, size_t at, size_t cap, const char *s)
{
	while (*s != '\0' && at < cap)
		out[at++] = *s++;
	return at;
}

static size_t put_number(char *out, size_t at, size_t cap,
			 unsigned long long v)
{
	char digits[24];
	int n = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	while (n > 0 && at < cap)
		out[at++] = digits[--n];
	return at;
}

/*
 * A fatal signal: when the data segment had reached its limit, the crash
 * is most likely a failed allocation the processor did not check; kappad
 * is told so (a KP_WM_FATAL frame) before the signal ends the process.
 * Only system calls and stack memory here.
 */
static void on_fatal_signal(int sig)
{
#ifdef KP_UNDER_ASAN
	/* The sanitizer's shadow is in VmData: judge by what is used. */
	unsigned long long data = status_bytes("RssAnon:");
#else
	unsigned long long data = status_bytes("VmData:");
#endif
	char text[200], frame[256];
	size_t n = 0;

	if (crash_fd >= 0 && crash_limit > 0 && data * 10 >= crash_limit * 9) {
		n = put_text(text, n, sizeof(text),
			     "grew to its memory limit (");
		n = put_number(text, n, sizeof(text), data >> 20);
		n = put_text(text, n, sizeof(text), " MiB of ");
		n = put_number(text, n, sizeof(text), crash_limit >> 20);
		n = put_text(text, n, sizeof(text),
			     " MiB: memory_limit + view cache + runtime), then its worker process died of signal ");
		n = put_number(text, n, sizeof(text), (unsigned)sig);
		kp_put_le32(frame, (uint32_t)(KP_WM_HEADER - 4 + 4 + n));
		frame[4] = (char)KP_WM_FATAL;
		kp_put_le32(frame + 5, 0);
		kp_put_le32(frame + KP_WM_HEADER, (uint32_t)n);
		memcpy(frame + KP_WM_HEADER + 4, text, n);
		(void)!write(crash_fd, frame, KP_WM_HEADER + 4 + n);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void catch_fatal_signals(int fd, unsigned long long limit)
{
	static char alt[64 * 1024];
	stack_t ss = { .ss_sp = alt, .ss_size = sizeof(alt) };
	struct sigaction sa;
	static const int sigs[] = { SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE };

	crash_fd = fd;
	crash_limit = limit;
	sigaltstack(&ss, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fatal_signal;
	sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

/*
 * Watches this process's anonymous memory: past the ceiling it tells
 * kappad why and dies, before a processor that allocates fast hits the
 * hard limit and crashes on a failed malloc with no word about memory.
 */
static void *memory_watch(void *arg)
{
	struct worker *w = arg;

	for (;;) {
		unsigned long long rss = status_bytes("RssAnon:");

		if (rss > w->memory_limit) {
			struct kp_buf b;
			char why[256];
			size_t start;

			snprintf(why, sizeof(why),
				 "grew past its memory limit (%llu MiB of anonymous memory, %llu MiB allowed: memory_limit + view cache + runtime); its worker process was stopped",
				 rss >> 20, w->memory_limit >> 20);
			kp_buf_init(&b);
			start = kp_wm_begin(&b, KP_WM_FATAL, 0);
			kp_wm_put_str(&b, why);
			kp_wm_finish(&b, start);
			pthread_mutex_lock(&w->lock);
			if (kp_file_write_all(w->fd, b.data, b.len) != 0)
				_exit(0);
			kill(getpid(), SIGKILL);
		}
		usleep(MEMORY_CHECK_US);
	}
	return NULL;
}

/* Caps the data segment (RLIMIT_DATA, so mapped files do not count). */
static void set_limits(unsigned long long limit)
{
	struct rlimit no_core = { 0, 0 };

	setrlimit(RLIMIT_CORE, &no_core);
#ifndef KP_UNDER_ASAN
	if (limit > 0) {
		struct rlimit rl = { (rlim_t)limit, (rlim_t)limit };

		setrlimit(RLIMIT_DATA, &rl);
	}
#else
	(void)limit;
#endif
}

int kp_worker_main(int argc, char **argv)
{
	struct worker *w = kp_calloc(1, sizeof(*w));
	pthread_t th, watch;

	/* kappad died before the death signal was set: nobody to serve. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (argc < 4 || getppid() != (pid_t)strtol(argv[3], NULL, 10) ||
	    w == NULL) {
		kp_free(w);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	if (argc > 4 && strcmp(argv[4], KP_WORKER_IDLE_ARG) == 0) {
		struct sched_param sp = { 0 };

		/* Before any thread starts: they all inherit it. */
		if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0)
			fprintf(stderr, "kappad worker: cannot run under SCHED_IDLE: %s\n",
				strerror(errno));
	}
	w->memory_limit = argc > 2 ? strtoull(argv[2], NULL, 10) : 0;
	set_limits(w->memory_limit);
	w->fd = KP_WORKER_FD;
	catch_fatal_signals(w->fd, w->memory_limit);
	if (kp_wk_seccomp_install() != 0)
		fprintf(stderr, "kappad worker: cannot install its seccomp filter; processors run without it\n");
	kp_wx_init(&w->x);
	w->x.claim = ask_claim;
	w->x.claim_arg = w;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	if (pthread_create(&th, NULL, reader, w) != 0)
		return 3;
	if (w->memory_limit > 0 &&
	    pthread_create(&watch, NULL, memory_watch, w) != 0)
		return 3;
	for (;;) {
		struct job *j;
		struct kp_wm_reader r;
		struct kp_buf out;

		pthread_mutex_lock(&w->lock);
		while (w->head == NULL && !w->stop)
			pthread_cond_wait(&w->cond, &w->lock);
		j = w->head;
		if (j == NULL) {
			pthread_mutex_unlock(&w->lock);
			break;
		}
		w->head = j->next;
		if (w->head == NULL)
			w->tail = NULL;
		pthread_mutex_unlock(&w->lock);
		kp_wm_read(&r, j->frame, j->len);
		kp_buf_init(&out);
		kp_wx_job(&w->x, &r, &out);
		send_frame(w, &out);
		kp_buf_destroy(&out);
		kp_free(j->frame);
		kp_free(j);
	}
	pthread_join(th, NULL);
	kp_wx_destroy(&w->x);
	close(w->fd);
	/* w stays: the memory watch may still look at it until exit. */
	return 0;
}
