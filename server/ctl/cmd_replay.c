/*
 * cmd_replay.c - `kappactl proc replay NAME [--file PATH]
 * [--from earliest|OFFSET|@TIME] [--rate N] [--cascade] [--wait]`: starts
 * version K+1 of a processor from history beside the live version K
 * (docs/PROTOCOL.md, proc_replay); with --cascade also of every processor
 * downstream of it, all cut over together.
 *
 * Without --wait it prints {"version":K+1,"proc":STATUS} (plus "cascade":
 * [{"name","version"}] with --cascade). With --wait it
 * polls proc_status every KP_CTL_REPLAY_POLL_MS and shows progress until
 * the cut-over:
 *  - stderr a terminal: one bar line redrawn in place with \r
 *    (progress.h, kp_ctl_progress_bar), erased at the end;
 *  - otherwise one JSON line per second on stdout:
 *    {"version","records_done","records_to_go","records_per_second","eta_ms"}.
 * Once K+1 is live and no replay runs, it prints the final status (one JSON
 * line) and exits 0. A failed replay (the live version is untouched) is
 * reported with its reason, exit 1; so is a replay that vanished (gc,
 * rollback) or was replaced.
 */
#include "cmd_proc.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "json_mp.h"
#include "mpget.h"
#include "progress.h"

/* How often --wait asks for the status. */
#define KP_CTL_REPLAY_POLL_MS 250

/* How often --wait prints a JSON progress line when not on a terminal. */
#define KP_CTL_REPLAY_LINE_MS 1000

#define REPLAY_USAGE                                                   \
	"kappactl proc replay NAME [--file PATH]"                      \
	" [--from earliest|OFFSET|@TIME] [--rate N] [--cascade] [--wait]"

/* One --wait run. */
struct waiter {
	struct kp_ctl_ctx *ctx;   /* where to print */
	struct kp_ctl_client c;   /* the connection polled on */
	struct kp_ctl_resp resp;  /* the last response */
	const char *name;         /* the processor */
	uint64_t target;          /* the version being built (K+1) */
	int tty;                  /* stderr is a terminal: draw the bar */
	int drawn;                /* a bar line is on the terminal */
	uint64_t last_line_ms;    /* when the last JSON line was printed */
	int printed_line;         /* a JSON line was printed */
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Columns of the terminal on stderr (80 when unknown). */
static unsigned term_width(struct kp_ctl_ctx *ctx)
{
	struct winsize ws;

	if (ioctl(fileno(ctx->err), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

/* Erases the bar line, so what follows starts on a clean line. */
static void erase_bar(struct waiter *w)
{
	if (w->drawn)
		fputs("\r\033[K", w->ctx->err);
	fflush(w->ctx->err);
	w->drawn = 0;
}

static int show(struct waiter *w, const struct kp_ctl_progress *p)
{
	char line[512];
	uint64_t now = now_ms();

	if (w->tty) {
		kp_ctl_progress_bar(p, term_width(w->ctx), line, sizeof(line));
		fprintf(w->ctx->err, "\r%s\033[K", line);
		fflush(w->ctx->err);
		w->drawn = 1;
		return 0;
	}
	if (w->printed_line && now - w->last_line_ms < KP_CTL_REPLAY_LINE_MS)
		return 0;
	w->printed_line = 1;
	w->last_line_ms = now;
	if (kp_ctl_print(w->ctx, kp_ctl_progress_json(p)) != 0)
		return KP_CTL_EXIT_FAIL;
	fflush(w->ctx->out);
	return 0;
}

/* Polls until the replay ends. Returns the exit status. */
static int wait_replay(struct waiter *w)
{
	struct kp_ctl_progress p;
	struct kp_error err;
	uint64_t live;
	json_t *f;
	int rc;

	for (;;) {
		f = json_pack("{ss}", "name", w->name);
		rc = kp_ctl_client_call(&w->c, "proc_status", f, &w->resp, &err);
		json_decref(f);
		if (rc != 0) {
			erase_bar(w);
			return kp_ctl_fail(w->ctx, "%s", err.msg);
		}
		switch (kp_ctl_replay_judge(kp_ctl_mp_get(w->resp.map, "proc"),
					    w->target, &p, &live)) {
		case KP_CTL_REPLAY_RUNNING:
			if (show(w, &p) != 0)
				return KP_CTL_EXIT_FAIL;
			break;
		case KP_CTL_REPLAY_CUT_OVER:
			erase_bar(w);
			return kp_ctl_print_mp(w->ctx,
					       kp_ctl_mp_get(w->resp.map, "proc"));
		case KP_CTL_REPLAY_FAILED:
			erase_bar(w);
			return kp_ctl_fail(w->ctx,
					   "replay to version %llu failed: %s"
					   " (version %llu stays live)",
					   (unsigned long long)w->target,
					   p.reason[0] ? p.reason : p.state,
					   (unsigned long long)live);
		case KP_CTL_REPLAY_LOST:
			erase_bar(w);
			return kp_ctl_fail(w->ctx,
					   "replay to version %llu ended without a"
					   " cut-over (version %llu is live%s)",
					   (unsigned long long)w->target,
					   (unsigned long long)live,
					   p.version ? ", another replay runs" : "");
		}
		sleep_ms(KP_CTL_REPLAY_POLL_MS);
	}
}

/* Builds the request's fields from the options; 0 or an exit status. */
static int replay_fields(struct kp_ctl_ctx *ctx, json_t *f, const char *file,
			 const char *from, const char *rate)
{
	json_t *pos;
	uint64_t r;
	int rc;

	if (file != NULL && (rc = kp_ctl_proc_file(ctx, f, file)) != 0)
		return rc;
	if (from != NULL) {
		rc = kp_ctl_proc_position(ctx, "from", from,
					  KP_CTL_ALLOW_EARLIEST |
						  KP_CTL_ALLOW_OFFSET |
						  KP_CTL_ALLOW_TIME, &pos);
		if (rc != 0)
			return rc;
		json_object_set_new(f, "from", pos);
	}
	if (rate != NULL) {
		if (kp_ctl_parse_u64(rate, &r) != 0 || r > INT64_MAX)
			return kp_ctl_usage(ctx, "--rate wants records per second,"
					    " not '%s'", rate);
		json_object_set_new(f, "rate", json_integer((json_int_t)r));
	}
	return 0;
}

/* Prints {"version":K+1,"proc":STATUS} from the replay's response. */
static int print_started(struct kp_ctl_ctx *ctx, const msgpack_object *map)
{
	const msgpack_object *proc = kp_ctl_mp_get(map, "proc");
	const msgpack_object *cascade = kp_ctl_mp_get(map, "cascade");
	uint64_t version;
	json_t *out;

	if (kp_ctl_mp_get_u64(map, "version", &version) != 0 || proc == NULL)
		return kp_ctl_fail(ctx, "proc_replay: response without version");
	out = json_pack("{sIso}", "version", (json_int_t)version, "proc",
			kp_ctl_mp_to_json(proc));
	if (out != NULL && cascade != NULL)
		json_object_set_new(out, "cascade", kp_ctl_mp_to_json(cascade));
	return kp_ctl_print(ctx, out);
}

int kp_ctl_proc_replay(struct kp_ctl_ctx *ctx, int argc, char **argv)
{
	const char *file = NULL, *from = NULL, *rate = NULL, *pos[1];
	int wait = 0, cascade = 0, npos, rc;
	const struct kp_ctl_opt opts[] = {
		{ "file", &file, NULL },
		{ "from", &from, NULL },
		{ "rate", &rate, NULL },
		{ "cascade", NULL, &cascade },
		{ "wait", NULL, &wait },
		{ NULL, NULL, NULL },
	};
	struct waiter w = { .ctx = ctx, .c = { .fd = -1 } };
	struct kp_error err;
	json_t *f = NULL;

	rc = kp_ctl_args_parse(ctx, argc, argv, opts, pos, 1, &npos);
	if (rc == 0 && npos != 1)
		rc = kp_ctl_usage(ctx, REPLAY_USAGE);
	if (rc == 0 && (f = json_pack("{ss}", "name", pos[0])) == NULL)
		rc = kp_ctl_fail(ctx, "out of memory");
	if (rc == 0)
		rc = replay_fields(ctx, f, file, from, rate);
	if (rc == 0 && cascade)
		json_object_set_new(f, "cascade", json_true());
	if (rc == 0)
		rc = kp_ctl_connect(ctx, &w.c);
	if (rc != 0) {
		json_decref(f);
		return rc;
	}
	kp_ctl_resp_init(&w.resp);
	if (kp_ctl_client_call(&w.c, "proc_replay", f, &w.resp, &err) != 0)
		rc = kp_ctl_fail(ctx, "%s", err.msg);
	else if (!wait)
		rc = print_started(ctx, w.resp.map);
	else if (kp_ctl_mp_get_u64(w.resp.map, "version", &w.target) != 0)
		rc = kp_ctl_fail(ctx, "proc_replay: response without version");
	if (rc == 0 && wait) {
		w.name = pos[0];
		w.tty = isatty(fileno(ctx->err));
		rc = wait_replay(&w);
	}
	json_decref(f);
	kp_ctl_resp_destroy(&w.resp);
	kp_ctl_client_close(&w.c);
	return rc;
}
