/*
 * writer.c - appends, group commit on worker threads, and parked requests.
 */
#include "writer.h"

#include <errno.h>
#include <stdlib.h>

#include <uv.h>

#include "partition.h"
#include "base/alloc.h"
#include "base/histogram.h"
#include "base/logging.h"
#include "wire/slot.h"

/* A produce waiting for the durable end to reach `end`. */
struct durable_wait {
	struct durable_wait *next;
	struct kp_slot *slot;        /* referenced */
	uint64_t end;                /* exclusive */
};

struct kp_fetch_wait {
	uv_timer_t timer;            /* the deadline; data is this struct */
	struct kp_fetch_wait *next;  /* in the partition's list */
	struct kp_fetch_wait *prev;
	struct kp_writer *wr;
	struct kp_topic_partition *tp;
	struct kp_slot *slot;        /* referenced */
	uint64_t offset;
	uint64_t max_bytes;
	kp_fetch_wake_fn wake;
	void *wake_arg;
};

struct writer_state {
	struct durable_wait *head;   /* FIFO, ascending end */
	struct durable_wait *tail;
	struct kp_fetch_wait *fetches;
	uv_work_t work;              /* the sync job's work request */
	struct kp_sync_job *job;     /* in flight, or NULL */
	struct kp_writer *wr;        /* set while a job is in flight */
	struct kp_topic_partition *tp;
	uint64_t sync_ns;            /* the job's fdatasyncs took this long */
	struct kp_histogram append_latency; /* kp_partition_append, ns */
	struct kp_histogram fsync_latency;  /* sync jobs, ns */
};

static struct writer_state *state_of(const struct kp_topic_partition *tp)
{
	return tp->writer_state;
}

int kp_writer_attach(struct kp_topic_partition *tp)
{
	struct writer_state *w = kp_calloc(1, sizeof(*w));

	if (w == NULL)
		return -ENOMEM;
	w->tp = tp;
	w->work.data = w;
	tp->writer_state = w;
	return 0;
}

void kp_writer_detach(struct kp_topic_partition *tp)
{
	kp_free(tp->writer_state);
	tp->writer_state = NULL;
}

static void on_timer_closed(uv_handle_t *h)
{
	kp_free(h->data);
}

static void fetch_unlink(struct writer_state *w, struct kp_fetch_wait *f)
{
	if (f->prev != NULL)
		f->prev->next = f->next;
	else
		w->fetches = f->next;
	if (f->next != NULL)
		f->next->prev = f->prev;
	f->next = f->prev = NULL;
}

static void fetch_fire(struct kp_fetch_wait *f)
{
	struct writer_state *w = state_of(f->tp);

	fetch_unlink(w, f);
	uv_timer_stop(&f->timer);
	f->wake(f->wake_arg, f->tp, f->slot, f->offset, f->max_bytes);
	kp_slot_unref(f->slot);
	uv_close((uv_handle_t *)&f->timer, on_timer_closed);
}

static void on_fetch_timeout(uv_timer_t *t)
{
	fetch_fire(t->data);
}

static void wake_fetches(struct kp_writer *s, struct kp_topic_partition *tp)
{
	struct writer_state *w = state_of(tp);
	struct kp_partition_stats st;
	struct kp_fetch_wait *f, *next;

	if (s->on_visible != NULL)
		s->on_visible(s->on_visible_arg, tp);
	if (w->fetches == NULL)
		return;
	kp_partition_stats(tp->log, &st);
	for (f = w->fetches; f != NULL; f = next) {
		next = f->next;
		if (st.visible_end > f->offset)
			fetch_fire(f);
	}
}

int kp_writer_park_fetch(struct kp_writer *s, struct kp_topic_partition *tp,
			 struct kp_slot *slot, uint64_t offset,
			 uint64_t max_bytes, uint64_t wait_ms,
			 kp_fetch_wake_fn wake, void *wake_arg)
{
	struct writer_state *w = state_of(tp);
	struct kp_fetch_wait *f = kp_calloc(1, sizeof(*f));

	if (f == NULL)
		return -ENOMEM;
	uv_timer_init(s->loop, &f->timer);
	f->timer.data = f;
	f->wr = s;
	f->tp = tp;
	f->slot = slot;
	f->offset = offset;
	f->max_bytes = max_bytes;
	f->wake = wake;
	f->wake_arg = wake_arg;
	kp_slot_ref(slot);
	f->next = w->fetches;
	if (w->fetches != NULL)
		w->fetches->prev = f;
	w->fetches = f;
	uv_timer_start(&f->timer, on_fetch_timeout, wait_ms, 0);
	return 0;
}

static void complete_durable(struct writer_state *w, uint64_t durable_end,
			     int code, const char *message)
{
	while (w->head != NULL && (code != 0 || w->head->end <= durable_end)) {
		struct durable_wait *d = w->head;

		w->head = d->next;
		if (w->head == NULL)
			w->tail = NULL;
		if (code != 0)
			kp_slot_set_error(d->slot, code, message);
		if (--d->slot->waits == 0)
			kp_slot_ready(d->slot);
		kp_slot_unref(d->slot);
		kp_free(d);
	}
}

int kp_writer_wait_durable(struct kp_writer *s, struct kp_topic_partition *tp,
			    struct kp_slot *slot, uint64_t end)
{
	struct writer_state *w = state_of(tp);
	struct kp_partition_stats st;
	struct durable_wait *d;

	kp_partition_stats(tp->log, &st);
	if (st.durable_end >= end)
		return 0;
	if (st.failed)
		return KP_ESTORAGE;  /* no sync will ever run here again */
	d = kp_calloc(1, sizeof(*d));
	if (d == NULL)
		return -ENOMEM;
	d->slot = slot;
	d->end = end;
	kp_slot_ref(slot);
	slot->waits++;
	if (w->tail != NULL)
		w->tail->next = d;
	else
		w->head = d;
	w->tail = d;
	kp_writer_sync(s, tp);
	return 0;
}

static void on_sync_work(uv_work_t *req)
{
	struct writer_state *w = req->data;
	uint64_t start = uv_hrtime();

	kp_sync_job_run(w->job);
	w->sync_ns = uv_hrtime() - start;
}

static void on_sync_done(uv_work_t *req, int status)
{
	struct writer_state *w = req->data;
	struct kp_topic_partition *tp = w->tp;
	struct kp_writer *s = w->wr;
	struct kp_partition_stats st;
	struct kp_error err;
	int rc;

	(void)status;
	rc = kp_partition_sync_done(tp->log, w->job, &err);
	w->job = NULL;
	s->jobs_in_flight--;
	s->fsyncs++;
	kp_histogram_observe(&w->fsync_latency, w->sync_ns);
	if (rc != 0) {
		kp_log_error("writer", "topic %s partition %u: %s; writes stopped",
			     tp->topic->name, tp->id, err.msg);
		complete_durable(w, 0, KP_ESTORAGE, err.msg);
	} else {
		kp_partition_stats(tp->log, &st);
		complete_durable(w, st.durable_end, 0, NULL);
		wake_fetches(s, tp);
	}
	if (tp->topic->deleted) {
		if (s->on_deleted_idle != NULL)
			s->on_deleted_idle(s->on_deleted_idle_arg);
		return;
	}
	/*
	 * Whatever was appended while this job ran (produces, processor
	 * outputs) rides on the next one: with fsync=always it is not visible
	 * until then.
	 */
	if (rc == 0 && tp->topic->config.log.fsync == KP_FSYNC_ALWAYS) {
		kp_partition_stats(tp->log, &st);
		if (st.durable_end < st.end_offset)
			kp_writer_sync(s, tp);
	}
}

void kp_writer_sync(struct kp_writer *s, struct kp_topic_partition *tp)
{
	struct writer_state *w = state_of(tp);

	if (w->job != NULL)
		return;
	w->job = kp_partition_sync_begin(tp->log);
	if (w->job == NULL)
		return;
	w->wr = s;
	s->jobs_in_flight++;
	uv_queue_work(s->loop, &w->work, on_sync_work, on_sync_done);
}

const struct kp_histogram *
kp_writer_append_latency(const struct kp_topic_partition *tp)
{
	const struct writer_state *w = state_of(tp);

	return w != NULL ? &w->append_latency : NULL;
}

const struct kp_histogram *
kp_writer_fsync_latency(const struct kp_topic_partition *tp)
{
	const struct writer_state *w = state_of(tp);

	return w != NULL ? &w->fsync_latency : NULL;
}

bool kp_writer_busy(const struct kp_topic_partition *tp)
{
	const struct writer_state *w = state_of(tp);

	return w != NULL && w->job != NULL;
}

int kp_writer_append(struct kp_writer *s, struct kp_topic_partition *tp,
		     char *batch, size_t len, int64_t now_ms,
		     uint64_t *base_offset, struct kp_error *err)
{
	uint64_t start = uv_hrtime();
	struct kp_partition_stats st;
	int rc = kp_partition_append(tp->log, batch, len, now_ms, base_offset,
				     err);

	if (rc != 0) {
		kp_partition_stats(tp->log, &st);
		if (st.failed) {
			/* Whatever waited for a sync of this partition never gets one. */
			kp_writer_flush_waits(s, tp, KP_ESTORAGE,
					      "partition stopped taking writes after a storage error");
			if (rc != KP_ESTORAGE) {
				char msg[KP_ERROR_MSG_MAX];

				snprintf(msg, sizeof(msg), "%s", err->msg);
				rc = kp_error_set(err, KP_ESTORAGE,
						  "%s; the partition takes no more writes",
						  msg);
			}
		}
		return rc;
	}
	kp_histogram_observe(&state_of(tp)->append_latency,
			     uv_hrtime() - start);
	if (tp->topic->config.log.fsync == KP_FSYNC_ALWAYS)
		kp_writer_sync(s, tp);
	else
		wake_fetches(s, tp);
	return 0;
}

void kp_writer_flush_waits(struct kp_writer *s, struct kp_topic_partition *tp,
			   int code, const char *message)
{
	struct writer_state *w = state_of(tp);

	(void)s;
	if (w == NULL)
		return;
	if (code != 0)
		complete_durable(w, UINT64_MAX, code, message);
	while (w->fetches != NULL)
		fetch_fire(w->fetches);
}

void kp_writer_retry(struct kp_writer *s, struct kp_topic_partition *tp)
{
	struct writer_state *w = state_of(tp);

	if (w != NULL && w->head != NULL && w->job == NULL)
		kp_writer_sync(s, tp);
}
