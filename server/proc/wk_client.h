/*
 * wk_client.h - kappad's side of a processor's worker process: starting
 * it (kappad re-executed with --worker, wk_main.h), sending it frames
 * (wk_msg.h), receiving its results and questions on the loop, and
 * killing it.
 *
 * The worker is a child process with a socket pair on its descriptor 3;
 * whatever it does (crash, loop, allocate without bound, write garbage),
 * kappad sees at worst a frame it refuses or the process's exit, and
 * reports that through the events. Loop thread only.
 */
#ifndef KP_WK_CLIENT_H
#define KP_WK_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "wk_msg.h"
#include "base/buf.h"
#include "base/error.h"

struct kp_wk;

/* What a worker tells its owner (arg). None is called after release. */
struct kp_wk_events {
	/* A job's result (KP_WM_RESULT), readable until the call returns. */
	void (*result)(void *arg, struct kp_wm_reader *r);
	/* The processor emits to topic: answer with kp_wk_answer_claim. */
	void (*claim)(void *arg, uint32_t tag, const char *topic, size_t len);
	/*
	 * The process is gone: its exit status, or the signal that ended it
	 * (0 when none); why holds kappad's own reason when kappad killed it
	 * or refused what it wrote ("" otherwise).
	 */
	void (*exited)(void *arg, int64_t status, int signal, const char *why);
};

/* A query's answer: rc 0 with the response frame, or the error. */
typedef void (*kp_wk_query_fn)(void *arg, int rc, const char *message,
			       const char *resp, size_t resp_len);

/*
 * Starts a worker process whose data segment is capped at data_limit bytes
 * (0: none); idle: under SCHED_IDLE (it runs only when a CPU has nothing
 * else to do; kp_wk_set_normal ends that). Returns 0 and *out, or an
 * error with err.
 */
int kp_wk_spawn(uv_loop_t *loop, uint64_t data_limit, bool idle,
		const struct kp_wk_events *ev, void *arg, struct kp_wk **out,
		struct kp_error *err);

/*
 * Puts every thread of w's process back under SCHED_OTHER. Returns 0, or
 * -errno of the first thread that could not be moved (EPERM without
 * CAP_SYS_NICE or an RLIMIT_NICE of 20).
 */
int kp_wk_set_normal(struct kp_wk *w);

/*
 * true when this process may move a worker from SCHED_IDLE back to
 * SCHED_OTHER (CAP_SYS_NICE, or an RLIMIT_NICE of at least 20), so that
 * kp_wk_spawn's idle is worth asking for.
 */
bool kp_wk_may_unidle(void);

/* Sends a whole frame (or several), copied. A dead worker drops it. */
void kp_wk_send(struct kp_wk *w, const struct kp_buf *frames);

/* A tag for a new query or claim answer. */
uint32_t kp_wk_tag(struct kp_wk *w);

/*
 * Sends the query frame q (tagged with kp_wk_tag) and calls cb(arg, ...)
 * once with its answer, or with an error when the worker dies or is
 * released first.
 */
void kp_wk_query(struct kp_wk *w, uint32_t tag, const struct kp_buf *q,
		 kp_wk_query_fn cb, void *arg);

/* Answers the claim tag: 0 lets the emit through, else its error. */
void kp_wk_answer_claim(struct kp_wk *w, uint32_t tag, int rc);

/* Asks the running call to stop (KP_WM_INTERRUPT). */
void kp_wk_interrupt(struct kp_wk *w);

/*
 * Kills the worker (SIGKILL) for the reason why; exited follows with it.
 */
void kp_wk_kill(struct kp_wk *w, const char *why);

/*
 * Lets go of w: no event is called any more, pending queries are answered
 * with an error, the process is asked to stop (graceful: KP_WM_STOP, then
 * killed if it is still there after grace_ms; 0: killed now) and w is
 * freed once it is gone.
 */
void kp_wk_release(struct kp_wk *w, uint32_t grace_ms);

/* Its process id, 0 once it is gone. */
int kp_wk_pid(const struct kp_wk *w);

/*
 * Resident anonymous memory of the process (RssAnon of /proc/PID/status)
 * in bytes, 0 when unknown.
 */
uint64_t kp_wk_rss_anon(const struct kp_wk *w);

/* The name of a signal, for reasons ("Segmentation fault"). */
const char *kp_wk_signal_name(int sig);

#endif
