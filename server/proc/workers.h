/*
 * workers.h - the processor worker pool: threads that run processor jobs
 * off the event loop, with completions delivered back on the loop.
 *
 * Separate from libuv's thread pool so that a long processor batch never
 * delays an fsync job. A job whose thread is stuck (a processor that does
 * not return even when interrupted) can be abandoned: its thread is written
 * off and a new one takes its place, so the other processors go on.
 */
#ifndef KP_WORKERS_H
#define KP_WORKERS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

struct kp_workers;

struct kp_job {
	struct kp_job *next;              /* queue link (pool-owned) */
	void (*run)(struct kp_job *job);  /* on a worker thread */
	void (*done)(struct kp_job *job); /* on the loop thread, after run */
	atomic_int_fast64_t heartbeat_ms; /* run sets it as it makes progress */
	atomic_bool running;              /* run has started, not finished */
	int background;                   /* 1: runs only when no live job waits */
	bool abandoned;                   /* written off; done never called */
};

/*
 * Starts n worker threads (n >= 1) whose completions run on loop.
 * Returns 0 and *out, or -errno.
 */
int kp_workers_start(uv_loop_t *loop, int n, struct kp_workers **out);

/*
 * Queues a job. Loop thread. Jobs with background = 0 (live work) are
 * taken before any background job (replays), so a replay never delays
 * live processing by more than one job.
 */
void kp_workers_submit(struct kp_workers *w, struct kp_job *job);

/*
 * Writes off a running job whose thread does not come back: a replacement
 * thread starts; if the job ever finishes, its done is not called and the
 * job is not touched again by the pool. Loop thread.
 */
void kp_workers_abandon(struct kp_workers *w, struct kp_job *job);

/* Number of jobs queued or running. */
int kp_workers_pending(const struct kp_workers *w);

/*
 * Stops the pool: waits for queued and running jobs (not abandoned ones),
 * delivers their completions, joins the threads, frees the pool. Must be
 * called while loop is still running or before uv_run returns for good;
 * on_closed is called on the loop once the pool's handle is closed.
 */
void kp_workers_stop(struct kp_workers *w);

/* Milliseconds on a monotonic clock, for heartbeats. */
int64_t kp_workers_now_ms(void);

#endif
