/*
 * cmd_top.c - `kappactl top [--json] [--interval MS]`: the server at a
 * glance (top_view.h): topics with end offsets and append rates, processors
 * with version, state, rate, lag and replay progress.
 *
 * A sample is topic_list, then topic_describe of every topic (pipelined, for
 * the end offsets), then proc_list, on one connection; rates compare two
 * samples. With --json: two samples --interval apart, one JSON object
 * {"topics":[...],"processors":[...]} on stdout, exit 0. Otherwise a table
 * every --interval (default 1000 ms) until SIGINT/SIGTERM or "q" on a
 * terminal: redrawn in place (cursor home, ANSI erase) when stdout is a
 * terminal, else printed one table after another, separated by a blank
 * line. Exit 0 when stopped.
 */
#include "cmd.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "json_mp.h"
#include "mpget.h"
#include "top_view.h"

/* Most topic_describe requests in flight at once. */
#define KP_CTL_TOP_PIPELINE 64

/* Set by the SIGINT/SIGTERM handler: the one state a handler may touch. */
static volatile sig_atomic_t stop_top;

static void on_stop(int sig)
{
	(void)sig;
	stop_top = 1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs op (no fields) and returns its result field as JSON, or NULL. */
static json_t *call_json(struct kp_ctl_client *c, const char *op,
			 const char *field, struct kp_ctl_resp *resp,
			 struct kp_error *err)
{
	json_t *v;

	if (kp_ctl_client_call(c, op, NULL, resp, err) != 0)
		return NULL;
	v = kp_ctl_mp_to_json(kp_ctl_mp_get(resp->map, field));
	if (v == NULL || !json_is_array(v)) {
		json_decref(v);
		kp_error_set(err, KP_EBADMSGPACK, "%s: response without %s", op,
			     field);
		return NULL;
	}
	return v;
}

/* Sends topic_describe for topic i of names. */
static int send_describe(struct kp_ctl_client *c, const json_t *names, size_t i,
			 struct kp_error *err)
{
	json_t *f = json_pack("{sO}", "topic",
			      json_object_get(json_array_get(names, i), "name"));
	int rc;

	if (f == NULL)
		return kp_error_set(err, -ENOMEM, "topic_list: a topic without name");
	rc = kp_ctl_client_send_json(c, "topic_describe", f, err);
	json_decref(f);
	return rc;
}

/* Appends the description in resp to a, named as listed. */
static int add_described(json_t *a, const struct kp_ctl_resp *resp,
			 const json_t *listed, struct kp_error *err)
{
	json_t *d = kp_ctl_mp_to_json(kp_ctl_mp_get(resp->map, "topic"));

	if (d == NULL || !json_is_object(d) ||
	    json_object_set(d, "name", json_object_get(listed, "name")) != 0 ||
	    json_array_append_new(a, d) != 0) {
		json_decref(d);
		return kp_error_set(err, KP_EBADMSGPACK,
				    "topic_describe: response without topic");
	}
	return 0;
}

/*
 * Replaces every description in s->topics by topic_describe's, keeping the
 * listed name (describe resolves a logical name to its live version's
 * topic, whose figures it then shows). A topic deleted meanwhile
 * (UNKNOWN_TOPIC) is left out.
 */
static int describe_all(struct kp_ctl_client *c, struct kp_ctl_top_sample *s,
			struct kp_ctl_resp *resp, struct kp_error *err)
{
	json_t *described = json_array();
	size_t n = json_array_size(s->topics), sent = 0, got = 0;
	int rc = described == NULL ? kp_error_set(err, -ENOMEM, "out of memory") : 0;

	while (rc == 0 && got < n) {
		while (rc == 0 && sent < n && sent - got < KP_CTL_TOP_PIPELINE)
			rc = send_describe(c, s->topics, sent++, err);
		if (rc != 0)
			break;
		rc = kp_ctl_client_recv(c, resp, err);
		got++;
		if (rc == KP_ENOTOPIC) {
			rc = 0;
			continue;
		}
		if (rc == 0)
			rc = add_described(described, resp,
					   json_array_get(s->topics, got - 1), err);
	}
	json_decref(s->topics);
	s->topics = described;
	return rc;
}

/* Takes one sample. Returns 0, or prints the error and returns 1. */
static int sample(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c,
		  struct kp_ctl_top_sample *s)
{
	struct kp_ctl_resp resp;
	struct kp_error err;
	int rc = 0;

	kp_ctl_resp_init(&resp);
	s->at_ms = now_ms();
	s->topics = call_json(c, "topic_list", "topics", &resp, &err);
	if (s->topics == NULL || describe_all(c, s, &resp, &err) != 0)
		rc = 1;
	if (rc == 0)
		s->procs = call_json(c, "proc_list", "procs", &resp, &err);
	if (rc == 0 && s->procs == NULL)
		rc = 1;
	kp_ctl_resp_destroy(&resp);
	if (rc != 0) {
		kp_ctl_top_sample_destroy(s);
		return kp_ctl_fail(ctx, "%s", err.msg);
	}
	return 0;
}

/*
 * Waits ms, or less when stopped; with keys (a terminal in raw mode on
 * stdin) "q" stops too.
 */
static void pause_ms(int keys, uint64_t ms)
{
	uint64_t until = now_ms() + ms, now;
	struct pollfd pfd = { .fd = STDIN_FILENO, .events = POLLIN };
	char ch;

	while (!stop_top && (now = now_ms()) < until) {
		if (poll(keys ? &pfd : NULL, keys ? 1 : 0, (int)(until - now)) > 0 &&
		    read(STDIN_FILENO, &ch, 1) == 1 && (ch == 'q' || ch == 'Q'))
			stop_top = 1;
	}
}

/* Columns of the terminal on stdout (120 when unknown). */
static unsigned term_width(struct kp_ctl_ctx *ctx)
{
	struct winsize ws;

	if (ioctl(fileno(ctx->out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 120;
}

/* Draws one frame; on a terminal over the previous one. */
static void draw(struct kp_ctl_ctx *ctx, const json_t *snap, uint64_t interval,
		 int tty)
{
	char title[256], *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);

	if (mem == NULL)
		return;
	snprintf(title, sizeof(title), "kappa top  %s  every %llu ms%s", ctx->addr,
		 (unsigned long long)interval, tty ? "  (q to quit)" : "");
	kp_ctl_top_render(mem, snap, title, tty ? term_width(ctx) : 120);
	fclose(mem);
	if (tty) {
		fputs("\033[H", ctx->out);
		for (char *l = text, *nl; *l != '\0'; l = nl + 1) {
			nl = strchr(l, '\n');
			if (nl == NULL)
				nl = l + strlen(l) - 1;
			fprintf(ctx->out, "%.*s\033[K\n", (int)(nl - l), l);
		}
		fputs("\033[J", ctx->out);
	} else {
		fputs(text, ctx->out);
		fputc('\n', ctx->out);
	}
	fflush(ctx->out);
	free(text);
}

/* The live display until stopped. Returns the exit status. */
static int run_live(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c,
		    uint64_t interval)
{
	struct kp_ctl_top_sample prev = { 0 }, cur = { 0 };
	struct termios saved, raw;
	int tty = isatty(fileno(ctx->out));
	int keys = tty && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	int rc = 0;

	if (keys) {
		raw = saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 1;
		raw.c_cc[VTIME] = 0;
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	}
	if (tty)
		fputs("\033[H\033[2J", ctx->out);
	while (!stop_top && rc == 0) {
		json_t *snap;

		rc = sample(ctx, c, &cur);
		if (rc != 0)
			break;
		snap = kp_ctl_top_snapshot(prev.topics ? &prev : NULL, &cur);
		if (snap != NULL)
			draw(ctx, snap, interval, tty);
		json_decref(snap);
		kp_ctl_top_sample_destroy(&prev);
		prev = cur;
		memset(&cur, 0, sizeof(cur));
		pause_ms(keys, interval);
	}
	kp_ctl_top_sample_destroy(&prev);
	if (keys)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved);
	return rc;
}

/* Two samples interval apart, one JSON snapshot. */
static int run_json(struct kp_ctl_ctx *ctx, struct kp_ctl_client *c,
		    uint64_t interval)
{
	struct kp_ctl_top_sample a = { 0 }, b = { 0 };
	int rc = sample(ctx, c, &a);

	if (rc == 0) {
		pause_ms(0, interval);
		rc = sample(ctx, c, &b);
	}
	if (rc == 0)
		rc = kp_ctl_print(ctx, kp_ctl_top_snapshot(&a, &b));
	kp_ctl_top_sample_destroy(&a);
	kp_ctl_top_sample_destroy(&b);
	return rc;
}

int kp_ctl_cmd_top(struct kp_ctl_ctx *ctx, int argc, char **argv)
{
	const char *interval_s = NULL, *pos[1];
	int json = 0, npos, rc;
	const struct kp_ctl_opt opts[] = {
		{ "json", NULL, &json },
		{ "interval", &interval_s, NULL },
		{ NULL, NULL, NULL },
	};
	struct kp_ctl_client c = { .fd = -1 };
	struct sigaction sa, old_int, old_term;
	uint64_t interval = 1000;

	rc = kp_ctl_args_parse(ctx, argc, argv, opts, pos, 0, &npos);
	if (rc != 0)
		return rc;
	if (interval_s != NULL &&
	    (kp_ctl_parse_u64(interval_s, &interval) != 0 || interval < 10 ||
	     interval > 3600000))
		return kp_ctl_usage(ctx, "--interval wants milliseconds (10..3600000),"
				    " not '%s'", interval_s);
	rc = kp_ctl_connect(ctx, &c);
	if (rc != 0)
		return rc;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	stop_top = 0;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	rc = json ? run_json(ctx, &c, interval) : run_live(ctx, &c, interval);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	kp_ctl_client_close(&c);
	return rc;
}
