/*
 * store.c - the log's service on the loop: opening, topic creation and
 * deletion, group saves on worker threads, and the log's periodic work.
 */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/fsutil.h"
#include "base/logging.h"
#include "wire/slot.h"

/* A save of groups.db running on a worker thread. */
struct groups_save {
	uv_work_t work;            /* data is this struct */
	struct kp_store *st;
	struct kp_buf data;        /* the serialized table */
	uint64_t generation;       /* what it saves */
	int rc;                    /* result of the write */
};

/* Removes a deleted topic's files on a worker thread. */
struct tree_removal {
	uv_work_t work;            /* data is this struct */
	struct kp_store *st;
	char path[4200];
};

static void each_partition(struct kp_store *st,
			   void (*fn)(struct kp_writer *w,
				      struct kp_topic_partition *tp))
{
	for (size_t i = 0; i < kp_catalog_count(st->catalog); i++) {
		struct kp_topic *t = kp_catalog_at(st->catalog, i);

		for (uint32_t p = 0; p < t->config.partitions; p++)
			fn(&st->writer, &t->parts[p]);
	}
}

/* ---- group offsets ------------------------------------------------------ */

static void groups_save_start(struct kp_store *st);

static void on_groups_work(uv_work_t *req)
{
	struct groups_save *job = req->data;

	job->rc = kp_file_write_atomic(kp_groups_path(job->st->groups),
				       job->data.data ? job->data.data : "",
				       job->data.len);
}

static void on_groups_done(uv_work_t *req, int status)
{
	struct groups_save *job = req->data;
	struct kp_store *st = job->st;
	struct kp_group_waiter **link = &st->group_waiters;
	bool failed;

	(void)status;
	st->groups_saving = false;
	st->jobs_in_flight--;
	if (job->rc == 0)
		st->groups_saved = job->generation;
	else
		kp_log_error("groups", "cannot save %s: %s",
			     kp_groups_path(st->groups), strerror(-job->rc));
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
	if (!failed && st->groups_generation > st->groups_saved)
		groups_save_start(st);
}

static void groups_save_start(struct kp_store *st)
{
	struct groups_save *job;

	if (st->groups_saving)
		return;
	job = kp_calloc(1, sizeof(*job));
	if (job == NULL)
		return;
	job->work.data = job;
	job->st = st;
	job->generation = st->groups_generation;
	kp_buf_init(&job->data);
	if (kp_groups_serialize(st->groups, &job->data) != 0) {
		kp_buf_destroy(&job->data);
		kp_free(job);
		return;
	}
	st->groups_saving = true;
	st->jobs_in_flight++;
	uv_queue_work(st->loop, &job->work, on_groups_work, on_groups_done);
}

void kp_store_save_groups(struct kp_store *st, struct kp_slot *slot)
{
	if (slot != NULL) {
		struct kp_group_waiter *w = kp_calloc(1, sizeof(*w));

		if (w == NULL) {
			kp_slot_set_error(slot, -ENOMEM, "out of memory");
			return;
		}
		w->slot = slot;
		w->generation = st->groups_generation;
		kp_slot_ref(slot);
		slot->waits++;
		w->next = st->group_waiters;
		st->group_waiters = w;
	}
	groups_save_start(st);
}

/* ---- topics ------------------------------------------------------------- */

static void on_remove_work(uv_work_t *req)
{
	struct tree_removal *r = req->data;

	kp_file_remove_tree(r->path);
}

static void on_remove_done(uv_work_t *req, int status)
{
	struct tree_removal *r = req->data;

	(void)status;
	r->st->jobs_in_flight--;
	kp_free(r);
}

static void release_topic(struct kp_store *st, struct kp_topic *t)
{
	struct tree_removal *r = kp_calloc(1, sizeof(*r));
	char aside[4200];

	if (kp_catalog_release(st->catalog, t, aside, sizeof(aside)) != 0 ||
	    r == NULL) {
		kp_free(r);
		return;  /* the next start removes what is set aside */
	}
	snprintf(r->path, sizeof(r->path), "%s", aside);
	r->work.data = r;
	r->st = st;
	st->jobs_in_flight++;
	uv_queue_work(st->loop, &r->work, on_remove_work, on_remove_done);
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

static int topic_attach(struct kp_topic *t, struct kp_error *err)
{
	for (uint32_t p = 0; p < t->config.partitions; p++) {
		if (kp_writer_attach(&t->parts[p]) != 0)
			return kp_error_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

/* Releases deleted topics that no sync job uses any more. */
static void reap_topics(void *arg)
{
	struct kp_store *st = arg;
	size_t keep = 0;

	for (size_t i = 0; i < st->doomed_count; i++) {
		struct kp_topic *t = st->doomed[i];

		if (topic_busy(t)) {
			st->doomed[keep++] = t;
			continue;
		}
		topic_detach(t);
		release_topic(st, t);
	}
	st->doomed_count = keep;
}

int kp_store_create_topic(struct kp_store *st, const char *name, size_t len,
			  const struct kp_topic_config *cfg,
			  struct kp_topic **out, struct kp_error *err)
{
	int rc = kp_catalog_create(st->catalog, name, len, cfg, out, err);

	if (rc != 0)
		return rc;
	return topic_attach(*out, err);
}

int kp_store_delete_topic(struct kp_store *st, struct kp_topic *t,
			  struct kp_error *err)
{
	struct kp_topic **grown;
	int rc;

	grown = kp_realloc(st->doomed, (st->doomed_count + 1) * sizeof(*grown));
	if (grown == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	st->doomed = grown;
	rc = kp_catalog_delete(st->catalog, t, err);
	if (rc != 0)
		return rc;
	for (uint32_t p = 0; p < t->config.partitions; p++)
		kp_writer_flush_waits(&st->writer, &t->parts[p], KP_ENOTOPIC,
				      "topic was deleted");
	kp_groups_forget_topic(st->groups, t->name);
	st->groups_generation++;
	kp_store_save_groups(st, NULL);
	st->doomed[st->doomed_count++] = t;
	reap_topics(st);
	return 0;
}

/* ---- periodic work ------------------------------------------------------ */

static void sync_interval_topics(struct kp_store *st, int64_t now)
{
	for (size_t i = 0; i < kp_catalog_count(st->catalog); i++) {
		struct kp_topic *t = kp_catalog_at(st->catalog, i);

		if (t->config.log.fsync != KP_FSYNC_INTERVAL ||
		    now - t->last_interval_sync_ms <
			    t->config.fsync_interval_ms)
			continue;
		t->last_interval_sync_ms = now;
		for (uint32_t p = 0; p < t->config.partitions; p++)
			kp_writer_sync(&st->writer, &t->parts[p]);
	}
}

static void retention_one(struct kp_topic_partition *tp, int64_t now)
{
	int removed = kp_partition_enforce_retention(tp->log, now);

	if (removed > 0)
		kp_log_info("retention",
			    "topic %s partition %u: removed %d segments",
			    tp->topic->name, tp->id, removed);
	else if (removed < 0)
		kp_log_warn("retention", "topic %s partition %u: %s",
			    tp->topic->name, tp->id, kp_error_text(removed));
}

static void retention_all(struct kp_store *st, int64_t now)
{
	for (size_t i = 0; i < kp_catalog_count(st->catalog); i++) {
		struct kp_topic *t = kp_catalog_at(st->catalog, i);

		for (uint32_t p = 0; p < t->config.partitions; p++)
			retention_one(&t->parts[p], now);
	}
}

void kp_store_tick(struct kp_store *st, int64_t now_ms)
{
	sync_interval_topics(st, now_ms);
	each_partition(st, kp_writer_retry);
	if (st->groups_generation > st->groups_saved && !st->groups_saving &&
	    now_ms - st->last_groups_retry_ms >= 1000) {
		st->last_groups_retry_ms = now_ms;
		groups_save_start(st);
	}
	if (now_ms - st->last_retention_ms >= st->retention_check_ms) {
		st->last_retention_ms = now_ms;
		retention_all(st, now_ms);
	}
}

void kp_store_sync_all(struct kp_store *st)
{
	each_partition(st, kp_writer_sync);
}

static void answer_fetches(struct kp_writer *w, struct kp_topic_partition *tp)
{
	kp_writer_flush_waits(w, tp, 0, NULL);
}

void kp_store_answer_fetches(struct kp_store *st)
{
	each_partition(st, answer_fetches);
}

bool kp_store_busy(const struct kp_store *st)
{
	return st->jobs_in_flight > 0 || st->writer.jobs_in_flight > 0;
}

/* ---- open and close ----------------------------------------------------- */

int kp_store_open(struct kp_store *st, uv_loop_t *loop, const char *data_dir,
		  uint32_t retention_check_ms, int64_t now_ms,
		  struct kp_error *err)
{
	int rc;

	memset(st, 0, sizeof(*st));
	st->loop = loop;
	st->writer.loop = loop;
	st->writer.on_deleted_idle = reap_topics;
	st->writer.on_deleted_idle_arg = st;
	st->retention_check_ms = retention_check_ms;
	st->last_retention_ms = now_ms;
	rc = kp_catalog_open(data_dir, &st->catalog, err);
	for (size_t i = 0; rc == 0 && i < kp_catalog_count(st->catalog); i++)
		rc = topic_attach(kp_catalog_at(st->catalog, i), err);
	if (rc == 0)
		rc = kp_groups_open(data_dir, &st->groups, err);
	if (rc != 0)
		kp_store_close(st);
	return rc;
}

void kp_store_close(struct kp_store *st)
{
	if (st->catalog != NULL) {
		for (size_t i = 0; i < st->doomed_count; i++) {
			char aside[4200];

			topic_detach(st->doomed[i]);
			/* The loop is over: remove in place. */
			if (kp_catalog_release(st->catalog, st->doomed[i],
					       aside, sizeof(aside)) == 0)
				kp_file_remove_tree(aside);
		}
		for (size_t i = 0; i < kp_catalog_count(st->catalog); i++)
			topic_detach(kp_catalog_at(st->catalog, i));
		kp_catalog_close(st->catalog);
		st->catalog = NULL;
	}
	kp_free(st->doomed);
	st->doomed = NULL;
	st->doomed_count = 0;
	kp_groups_close(st->groups);
	st->groups = NULL;
}
