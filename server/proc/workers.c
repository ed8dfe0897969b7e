/*
 * workers.c - a fixed pool of threads with a job queue and a uv_async for
 * completions.
 */
#include "workers.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "base/alloc.h"
#include "base/logging.h"

struct kp_workers {
	uv_loop_t *loop;
	uv_async_t async;          /* wakes the loop for completions */
	pthread_mutex_t lock;      /* guards everything below */
	pthread_cond_t cond;       /* signals queued work or stop */
	struct kp_job *queue;      /* FIFO of live jobs to run */
	struct kp_job *queue_tail;
	struct kp_job *bg;         /* FIFO of background jobs */
	struct kp_job *bg_tail;
	struct kp_job *finished;   /* jobs whose run returned */
	int pending;               /* queued + running (not abandoned) */
	int threads;               /* live, not written-off threads */
	int zombies;               /* written-off threads still running */
	bool stopping;
};

int64_t kp_workers_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *worker_main(void *arg)
{
	struct kp_workers *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct kp_job *job;

		while (w->queue == NULL && w->bg == NULL && !w->stopping)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->queue != NULL) {
			job = w->queue;
			w->queue = job->next;
			if (w->queue == NULL)
				w->queue_tail = NULL;
		} else if (w->bg != NULL) {
			job = w->bg;
			w->bg = job->next;
			if (w->bg == NULL)
				w->bg_tail = NULL;
		} else {
			break;
		}
		atomic_store(&job->heartbeat_ms, kp_workers_now_ms());
		atomic_store(&job->running, true);
		pthread_mutex_unlock(&w->lock);
		job->run(job);
		pthread_mutex_lock(&w->lock);
		atomic_store(&job->running, false);
		if (job->abandoned) {
			/* This thread was written off and replaced: leave. */
			w->zombies--;
			pthread_mutex_unlock(&w->lock);
			return NULL;
		}
		job->next = w->finished;
		w->finished = job;
		uv_async_send(&w->async);
	}
	w->threads--;
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static void on_async(uv_async_t *a)
{
	struct kp_workers *w = a->data;
	struct kp_job *list, *rev = NULL;

	pthread_mutex_lock(&w->lock);
	list = w->finished;
	w->finished = NULL;
	pthread_mutex_unlock(&w->lock);
	while (list != NULL) {
		struct kp_job *next = list->next;

		list->next = rev;
		rev = list;
		list = next;
	}
	while (rev != NULL) {
		struct kp_job *next = rev->next;

		pthread_mutex_lock(&w->lock);
		w->pending--;
		pthread_mutex_unlock(&w->lock);
		rev->done(rev);
		rev = next;
	}
}

static int spawn(struct kp_workers *w)
{
	pthread_t t;
	int rc = pthread_create(&t, NULL, worker_main, w);

	if (rc != 0)
		return -rc;
	pthread_detach(t);
	w->threads++;
	return 0;
}

int kp_workers_start(uv_loop_t *loop, int n, struct kp_workers **out)
{
	struct kp_workers *w = kp_calloc(1, sizeof(*w));
	int rc;

	if (w == NULL)
		return -ENOMEM;
	w->loop = loop;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	rc = uv_async_init(loop, &w->async, on_async);
	if (rc != 0) {
		kp_free(w);
		return rc;
	}
	w->async.data = w;
	pthread_mutex_lock(&w->lock);
	for (int i = 0; i < n && rc == 0; i++)
		rc = spawn(w);
	pthread_mutex_unlock(&w->lock);
	*out = w;
	return rc;
}

void kp_workers_submit(struct kp_workers *w, struct kp_job *job)
{
	job->next = NULL;
	job->abandoned = false;
	atomic_store(&job->running, false);
	pthread_mutex_lock(&w->lock);
	if (job->background) {
		if (w->bg_tail != NULL)
			w->bg_tail->next = job;
		else
			w->bg = job;
		w->bg_tail = job;
	} else {
		if (w->queue_tail != NULL)
			w->queue_tail->next = job;
		else
			w->queue = job;
		w->queue_tail = job;
	}
	w->pending++;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

void kp_workers_abandon(struct kp_workers *w, struct kp_job *job)
{
	pthread_mutex_lock(&w->lock);
	if (atomic_load(&job->running) && !job->abandoned) {
		job->abandoned = true;
		w->pending--;
		w->threads--;
		w->zombies++;
		if (spawn(w) != 0)
			kp_log_error("workers", "cannot start a replacement worker");
	}
	pthread_mutex_unlock(&w->lock);
}

int kp_workers_pending(const struct kp_workers *w)
{
	return w->pending;
}

static void on_async_closed(uv_handle_t *h)
{
	struct kp_workers *w = h->data;

	pthread_mutex_lock(&w->lock);
	if (w->zombies > 0) {
		/* A written-off thread may still touch the pool: keep it. */
		pthread_mutex_unlock(&w->lock);
		return;
	}
	pthread_mutex_unlock(&w->lock);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	kp_free(w);
}

void kp_workers_stop(struct kp_workers *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->cond);
	while (w->threads > 0) {
		pthread_mutex_unlock(&w->lock);
		uv_sleep(1);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	on_async(&w->async);
	uv_close((uv_handle_t *)&w->async, on_async_closed);
}
