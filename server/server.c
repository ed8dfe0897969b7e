/*
 * server.c - wiring: loop, listener, signals, timers, group saves, stop.
 */
#include "server.h"

#include <errno.h>
#include <string.h>
#include <sys/time.h>

#include "alloc.h"
#include "conn.h"
#include "http.h"
#include "fsutil.h"
#include "log.h"
#include "proc.h"
#include "proto.h"
#include "writer.h"

#define TICK_MS 50
#define DRAIN_TIMEOUT_MS 10000

/* A save of groups.db running on a worker thread. */
struct groups_save {
	uv_work_t work;            /* data is this struct */
	struct kp_server *srv;
	struct kp_buf data;        /* the serialized table */
	uint64_t generation;       /* what it saves */
	int rc;                    /* result of the write */
};

int64_t kp_server_now_ms(const struct kp_server *s)
{
	struct timeval tv;

	(void)s;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct kp_server *s = listener->data;

	if (status != 0) {
		kp_log_warn("server", "accept failed: %s", uv_strerror(status));
		return;
	}
	kp_conn_accept(s, listener);
}

static void each_partition(struct kp_server *s,
			   void (*fn)(struct kp_server *s,
				      struct kp_topic_partition *tp))
{
	for (size_t i = 0; i < kp_catalog_count(s->catalog); i++) {
		struct kp_topic *t = kp_catalog_at(s->catalog, i);

		for (uint32_t p = 0; p < t->config.partitions; p++)
			fn(s, &t->parts[p]);
	}
}

static void sync_interval_topics(struct kp_server *s, int64_t now)
{
	for (size_t i = 0; i < kp_catalog_count(s->catalog); i++) {
		struct kp_topic *t = kp_catalog_at(s->catalog, i);

		if (t->config.log.fsync != KP_FSYNC_INTERVAL ||
		    now - t->last_interval_sync_ms < t->config.fsync_interval_ms)
			continue;
		t->last_interval_sync_ms = now;
		for (uint32_t p = 0; p < t->config.partitions; p++)
			kp_writer_sync(s, &t->parts[p]);
	}
}

static void retention_one(struct kp_server *s, struct kp_topic_partition *tp)
{
	int removed = kp_partition_enforce_retention(tp->log,
						     kp_server_now_ms(s));

	if (removed > 0)
		kp_log_info("retention", "topic %s partition %u: removed %d segments",
			    tp->topic->name, tp->id, removed);
	else if (removed < 0)
		kp_log_warn("retention", "topic %s partition %u: %s",
			    tp->topic->name, tp->id, kp_error_text(removed));
}

static void drain_check(struct kp_server *s, int64_t now);
static void groups_save_start(struct kp_server *s);

static void on_tick(uv_timer_t *timer)
{
	struct kp_server *s = timer->data;
	int64_t now = kp_server_now_ms(s);

	if (s->stopping) {
		drain_check(s, now);
		return;
	}
	sync_interval_topics(s, now);
	each_partition(s, kp_writer_retry);
	if (s->groups_generation > s->groups_saved && !s->groups_saving &&
	    now - s->last_groups_retry_ms >= 1000) {
		s->last_groups_retry_ms = now;
		groups_save_start(s);
	}
	kp_procs_tick(s->procs, now);
	kp_conn_resume_all(s);
	if (now - s->last_retention_ms >= s->cfg.retention_check_ms) {
		s->last_retention_ms = now;
		each_partition(s, retention_one);
	}
}

static void on_groups_work(uv_work_t *req)
{
	struct groups_save *job = req->data;

	job->rc = kp_file_write_atomic(kp_groups_path(job->srv->groups),
				       job->data.data ? job->data.data : "",
				       job->data.len);
}

static void groups_save_start(struct kp_server *s);

static void on_groups_done(uv_work_t *req, int status)
{
	struct groups_save *job = req->data;
	struct kp_server *s = job->srv;
	struct kp_group_waiter **link = &s->group_waiters;
	bool failed;

	(void)status;
	s->groups_saving = false;
	s->jobs_in_flight--;
	if (job->rc == 0)
		s->groups_saved = job->generation;
	else
		kp_log_error("groups", "cannot save %s: %s",
			     kp_groups_path(s->groups), strerror(-job->rc));
	while (*link != NULL) {
		struct kp_group_waiter *w = *link;

		if (w->generation > job->generation) {
			link = &w->next;
			continue;
		}
		*link = w->next;
		if (job->rc != 0)
			kp_slot_set_error(w->slot, job->rc,
					  "cannot save group offsets");
		if (--w->slot->waits == 0)
			kp_slot_ready(w->slot);
		kp_slot_unref(w->slot);
		kp_free(w);
	}
	failed = job->rc != 0;
	kp_buf_destroy(&job->data);
	kp_free(job);
	/* After a failure the tick retries, rather than spin on the disk. */
	if (!failed && s->groups_generation > s->groups_saved)
		groups_save_start(s);
}

static void groups_save_start(struct kp_server *s)
{
	struct groups_save *job;

	if (s->groups_saving)
		return;
	job = kp_calloc(1, sizeof(*job));
	if (job == NULL)
		return;
	job->work.data = job;
	job->srv = s;
	job->generation = s->groups_generation;
	kp_buf_init(&job->data);
	if (kp_groups_serialize(s->groups, &job->data) != 0) {
		kp_buf_destroy(&job->data);
		kp_free(job);
		return;
	}
	s->groups_saving = true;
	s->jobs_in_flight++;
	uv_queue_work(s->loop, &job->work, on_groups_work, on_groups_done);
}

void kp_server_save_groups(struct kp_server *s, struct kp_slot *slot)
{
	if (slot != NULL) {
		struct kp_group_waiter *w = kp_calloc(1, sizeof(*w));

		if (w == NULL) {
			kp_slot_set_error(slot, -ENOMEM, "out of memory");
			return;
		}
		w->slot = slot;
		w->generation = s->groups_generation;
		kp_slot_ref(slot);
		slot->waits++;
		w->next = s->group_waiters;
		s->group_waiters = w;
	}
	groups_save_start(s);
}

/* Removes a deleted topic's files on a worker thread. */
struct tree_removal {
	uv_work_t work;            /* data is this struct */
	struct kp_server *srv;
	char path[4200];
};

static void on_remove_work(uv_work_t *req)
{
	struct tree_removal *r = req->data;

	kp_file_remove_tree(r->path);
}

static void on_remove_done(uv_work_t *req, int status)
{
	struct tree_removal *r = req->data;

	(void)status;
	r->srv->jobs_in_flight--;
	kp_free(r);
}

static void release_topic(struct kp_server *s, struct kp_topic *t)
{
	struct tree_removal *r = kp_calloc(1, sizeof(*r));
	char aside[4200];

	if (kp_catalog_release(s->catalog, t, aside, sizeof(aside)) != 0 ||
	    r == NULL) {
		kp_free(r);
		return;  /* the next start removes what is set aside */
	}
	snprintf(r->path, sizeof(r->path), "%s", aside);
	r->work.data = r;
	r->srv = s;
	s->jobs_in_flight++;
	uv_queue_work(s->loop, &r->work, on_remove_work, on_remove_done);
}

static bool topic_busy(const struct kp_topic *t)
{
	for (uint32_t p = 0; p < t->config.partitions; p++) {
		if (kp_writer_busy(&t->parts[p]))
			return true;
	}
	return false;
}

static void topic_detach(struct kp_topic *t)
{
	for (uint32_t p = 0; p < t->config.partitions; p++)
		kp_writer_detach(&t->parts[p]);
}

void kp_server_reap_topics(struct kp_server *s)
{
	size_t keep = 0;

	for (size_t i = 0; i < s->doomed_count; i++) {
		struct kp_topic *t = s->doomed[i];

		if (topic_busy(t)) {
			s->doomed[keep++] = t;
			continue;
		}
		topic_detach(t);
		release_topic(s, t);
	}
	s->doomed_count = keep;
}

int kp_server_delete_topic(struct kp_server *s, struct kp_topic *t,
			   struct kp_error *err)
{
	struct kp_topic **grown;
	int rc;

	grown = kp_realloc(s->doomed, (s->doomed_count + 1) * sizeof(*grown));
	if (grown == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	s->doomed = grown;
	rc = kp_catalog_delete(s->catalog, t, err);
	if (rc != 0)
		return rc;
	for (uint32_t p = 0; p < t->config.partitions; p++)
		kp_writer_flush_waits(s, &t->parts[p], KP_ENOTOPIC,
				      "topic was deleted");
	kp_groups_forget_topic(s->groups, t->name);
	s->groups_generation++;
	kp_server_save_groups(s, NULL);
	s->doomed[s->doomed_count++] = t;
	kp_server_reap_topics(s);
	return 0;
}

static void on_signal(uv_signal_t *sig, int signum)
{
	struct kp_server *s = sig->data;

	kp_log_info("server", "received %s; stopping",
		    signum == SIGTERM ? "SIGTERM" : "SIGINT");
	kp_server_stop(s);
}

static void answer_fetches(struct kp_server *s, struct kp_topic_partition *tp)
{
	kp_writer_flush_waits(s, tp, 0, NULL);
}

static void on_handle_closed(uv_handle_t *h)
{
	(void)h;
}

void kp_server_stop(struct kp_server *s)
{
	if (s->stopping)
		return;
	s->stopping = true;
	s->stop_started_ms = kp_server_now_ms(s);
	uv_close((uv_handle_t *)&s->listener, on_handle_closed);
	if (s->http != NULL)
		kp_http_stop(s->http);
	for (struct kp_conn *c = s->conns; c != NULL; c = c->next)
		kp_conn_stop_reading(c);
	kp_procs_quiesce(s->procs);
	each_partition(s, answer_fetches);
	each_partition(s, kp_writer_sync);
}

static void drain_check(struct kp_server *s, int64_t now)
{
	struct kp_conn *c, *next;
	bool timed_out = now - s->stop_started_ms > DRAIN_TIMEOUT_MS;

	if ((s->jobs_in_flight > 0 || !kp_procs_idle(s->procs)) && !timed_out)
		return;
	for (c = s->conns; c != NULL; c = next) {
		next = c->next;
		if (kp_conn_idle(c) || timed_out)
			kp_conn_close(c);
	}
	if (s->conns != NULL || s->jobs_in_flight > 0)
		return;
	kp_procs_close(s->procs);
	s->procs = NULL;
	uv_close((uv_handle_t *)&s->tick, on_handle_closed);
	uv_close((uv_handle_t *)&s->sigterm, on_handle_closed);
	uv_close((uv_handle_t *)&s->sigint, on_handle_closed);
}

static int attach_writers(struct kp_server *s, struct kp_error *err)
{
	for (size_t i = 0; i < kp_catalog_count(s->catalog); i++) {
		struct kp_topic *t = kp_catalog_at(s->catalog, i);

		for (uint32_t p = 0; p < t->config.partitions; p++) {
			if (kp_writer_attach(&t->parts[p]) != 0)
				return kp_error_set(err, -ENOMEM,
						    "out of memory");
		}
	}
	return 0;
}

static int listen_on(struct kp_server *s, struct kp_error *err)
{
	struct sockaddr_storage addr;
	int rc;

	rc = uv_ip4_addr(s->cfg.listen_host, s->cfg.listen_port,
			 (struct sockaddr_in *)&addr);
	if (rc != 0)
		rc = uv_ip6_addr(s->cfg.listen_host, s->cfg.listen_port,
				 (struct sockaddr_in6 *)&addr);
	if (rc != 0)
		return kp_error_set(err, KP_ECONFIG, "bad listen host '%s'",
				    s->cfg.listen_host);
	uv_tcp_init(s->loop, &s->listener);
	s->listener.data = s;
	rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
	if (rc != 0)
		return kp_error_set(err, rc, "cannot listen on %s:%d: %s",
				    s->cfg.listen_host, s->cfg.listen_port,
				    uv_strerror(rc));
	return 0;
}

int kp_server_init(struct kp_server *s, uv_loop_t *loop,
		   const struct kp_config *cfg, struct kp_error *err)
{
	int rc;

	memset(s, 0, sizeof(*s));
	s->loop = loop;
	s->cfg = *cfg;
	rc = kp_catalog_open(cfg->data, &s->catalog, err);
	if (rc == 0)
		rc = attach_writers(s, err);
	if (rc == 0)
		rc = kp_groups_open(cfg->data, &s->groups, err);
	if (rc == 0)
		rc = kp_procs_open(s, (int)cfg->workers, &s->procs, err);
	if (rc == 0)
		rc = listen_on(s, err);
	if (rc == 0 && cfg->http_port != 0)
		rc = kp_http_start(s, &s->http, err);
	if (rc != 0) {
		if (uv_is_active((uv_handle_t *)&s->listener) ||
		    s->listener.loop != NULL)
			uv_close((uv_handle_t *)&s->listener, on_handle_closed);
		uv_run(loop, UV_RUN_NOWAIT);
		kp_server_destroy(s);
		return rc;
	}
	uv_timer_init(loop, &s->tick);
	s->tick.data = s;
	uv_timer_start(&s->tick, on_tick, TICK_MS, TICK_MS);
	uv_signal_init(loop, &s->sigterm);
	s->sigterm.data = s;
	uv_signal_start(&s->sigterm, on_signal, SIGTERM);
	uv_signal_init(loop, &s->sigint);
	s->sigint.data = s;
	uv_signal_start(&s->sigint, on_signal, SIGINT);
	s->last_retention_ms = kp_server_now_ms(s);
	kp_log_info("server", "listening on %s:%d, data in %s",
		    cfg->listen_host, cfg->listen_port, cfg->data);
	return 0;
}

int kp_server_run(struct kp_server *s)
{
	uv_run(s->loop, UV_RUN_DEFAULT);
	return 0;
}

void kp_server_destroy(struct kp_server *s)
{
	kp_procs_close(s->procs);
	s->procs = NULL;
	if (s->catalog != NULL) {
		for (size_t i = 0; i < s->doomed_count; i++) {
			char aside[4200];

			topic_detach(s->doomed[i]);
			/* The loop is over: remove in place. */
			if (kp_catalog_release(s->catalog, s->doomed[i], aside,
					       sizeof(aside)) == 0)
				kp_file_remove_tree(aside);
		}
		for (size_t i = 0; i < kp_catalog_count(s->catalog); i++)
			topic_detach(kp_catalog_at(s->catalog, i));
		kp_catalog_close(s->catalog);
		s->catalog = NULL;
	}
	kp_free(s->doomed);
	s->doomed = NULL;
	kp_groups_close(s->groups);
	s->groups = NULL;
	kp_http_free(s->http);
	s->http = NULL;
}
