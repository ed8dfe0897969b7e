/*
 * store.c - the log's service on the loop: opening, topic creation and
 * deletion, group saves on worker threads, and the log's periodic work:
 * fsync=interval, retention and compaction.
 *
 * Compaction of a partition (compact.h) is one run at a time in the whole
 * store, so that it takes at most one of libuv's worker threads from the
 * sync jobs: the tick picks a due partition, hands its sealed, durable
 * segments to a job that rewrites them on a worker; back on the loop the
 * new segments are renamed into place and swapped into the partition in
 * the same callback (every reader runs on the loop, so none sees half a
 * swap); a second, short worker step deletes the replaced files and the
 * manifest. Retention skips a partition while it is compacted, and a
 * deleted topic is released only once its run is over.
 */
#include "store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "segment.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/fsutil.h"
#include "base/logging.h"
#include "wire/slot.h"

/* How often the tick looks for a partition due for compaction. */
#define COMPACT_CHECK_MS 250

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
		if (kp_writer_busy(&t->parts[p]) || t->parts[p].compact.running)
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
	int removed;

	if (tp->topic->config.cleanup == KP_CLEANUP_COMPACT ||
	    tp->compact.running)
		return;
	removed = kp_partition_enforce_retention(tp->log, now);

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

/* ---- compaction --------------------------------------------------------- */

/* A compaction run of one partition: the job, then its completion. */
struct compact_run {
	uv_work_t work;                 /* data is this struct */
	struct kp_store *st;            /* borrowed */
	struct kp_topic_partition *tp;  /* the partition it compacts */
	struct kp_compact_job *job;     /* owned */
	bool finishing;                 /* second step: kp_compact_finish */
};

/*
 * true when segment i of p is sealed and on disk (or, with fsync=never,
 * sealed): a run may read it.
 */
static bool compactable(struct kp_partition *p, size_t i,
			const struct kp_partition_stats *ps,
			enum kp_fsync_mode mode)
{
	const struct kp_segment *seg, *next;

	if (i + 1 >= kp_partition_segment_count(p))
		return false;
	seg = kp_partition_segment_at(p, i);
	next = kp_partition_segment_at(p, i + 1);
	if (mode == KP_FSYNC_NEVER)
		return true;
	return !seg->unsynced && next->base <= ps->durable_end;
}

/* Bytes of tp's compactable segments, and of those not yet compacted. */
static void compactable_bytes(struct kp_topic_partition *tp, uint64_t *dirty,
			      uint64_t *total)
{
	struct kp_partition_stats ps;
	enum kp_fsync_mode mode = tp->topic->config.log.fsync;

	*dirty = 0;
	*total = 0;
	kp_partition_stats(tp->log, &ps);
	for (size_t i = 0; compactable(tp->log, i, &ps, mode); i++) {
		const struct kp_segment *seg = kp_partition_segment_at(tp->log, i);
		const struct kp_segment *next =
			kp_partition_segment_at(tp->log, i + 1);

		*total += seg->size;
		if (next->base > tp->compact.clean_end)
			*dirty += seg->size;
	}
}

static struct kp_compact_job *compact_job_for(struct kp_store *st,
					      struct kp_topic_partition *tp,
					      int64_t now)
{
	const struct kp_topic_config *c = &tp->topic->config;
	struct kp_compact_settings set;
	struct kp_partition_stats ps;
	struct kp_compact_job *job;
	char dir[4200];

	memset(&set, 0, sizeof(set));
	set.now_ms = now;
	set.delete_retention_ms = c->delete_retention_ms;
	set.segment_bytes = c->log.segment_bytes;
	set.index_interval = c->log.index_interval_bytes;
	set.clean_end = tp->compact.clean_end;
	set.delay_ms = st->compact_delay_ms;
	set.stall = st->compact_stall[0] ? st->compact_stall : NULL;
	snprintf(dir, sizeof(dir), "%s/%u", tp->topic->dir, tp->id);
	job = kp_compact_job_new(dir, &set);
	if (job == NULL)
		return NULL;
	kp_partition_stats(tp->log, &ps);
	for (size_t i = 0; compactable(tp->log, i, &ps, c->log.fsync); i++) {
		if (kp_compact_job_add(job, kp_partition_segment_at(tp->log, i),
				       kp_partition_segment_at(tp->log, i + 1)
					       ->base) != 0) {
			kp_compact_job_delete(job);
			return NULL;
		}
	}
	return job;
}

/*
 * true when the sources of every new segment of the job are still the
 * segments of tp (nothing else changes sealed segments; checked anyway
 * before a file is renamed).
 */
static bool sources_still_there(struct kp_topic_partition *tp,
				const struct kp_compact_job *job)
{
	size_t n = kp_partition_segment_count(tp->log), i = 0;

	for (size_t k = 0; k < job->nout; k++) {
		const struct kp_compact_output *o = &job->out[k];

		while (i < n && kp_partition_segment_at(tp->log, i)->base <
					o->base)
			i++;
		if (i + o->count >= n)
			return false;
		for (size_t j = 0; j < o->count; j++) {
			if (kp_partition_segment_at(tp->log, i + j)->base !=
			    job->src[o->first + j].base)
				return false;
		}
		if (kp_partition_segment_at(tp->log, i + o->count)->base !=
		    o->end)
			return false;
	}
	return true;
}

/* Renames the new segments into place and swaps them into tp. */
static int compact_install(struct kp_topic_partition *tp,
			   struct kp_compact_job *job)
{
	if (!sources_still_there(tp, job))
		return kp_error_set(&job->err, KP_ESTATE, "the segments of %s "
				    "changed during its compaction", job->dir);
	for (size_t k = 0; k < job->nout; k++) {
		struct kp_segment *seg;
		int rc = kp_compact_install(job, k, &seg);

		if (rc != 0)
			return kp_error_set(&job->err, rc, "cannot move the "
					    "compacted segment %020" PRIu64
					    " of %s into place: %s (a restart "
					    "completes it)", job->out[k].base,
					    job->dir, kp_error_text(rc));
		rc = kp_partition_replace_segments(tp->log, job->out[k].base,
						   job->out[k].count, seg);
		if (rc != 0) {
			kp_segment_close(seg);
			return kp_error_set(&job->err, rc, "cannot swap the "
					    "compacted segment %020" PRIu64
					    " into %s", job->out[k].base,
					    job->dir);
		}
	}
	return 0;
}

static void compact_settle(struct kp_topic_partition *tp,
			   const struct kp_compact_job *job, int64_t now)
{
	struct kp_compact_state *s = &tp->compact;

	if (job->rc == -ECANCELED)
		return;
	if (job->rc != 0) {
		uint32_t shift = s->failures < 6 ? s->failures : 6;

		kp_log_warn("compact", "topic %s partition %u: %s",
			    tp->topic->name, tp->id, job->err.msg);
		s->failures++;
		s->retry_ms = job->manifest ? INT64_MAX
					    : now + ((int64_t)KP_COMPACT_RETRY_MS
						     << shift);
		return;
	}
	s->failures = 0;
	s->runs++;
	s->records_removed += job->records_removed;
	if (job->bytes_before > job->bytes_after)
		s->bytes_removed += job->bytes_before - job->bytes_after;
	s->clean_end = job->scanned_end;
	s->tombstone_due_ms = job->tombstone_due_ms;
	s->last_run_ms = now;
	if (job->nout > 0)
		kp_log_info("compact", "topic %s partition %u: %zu segments "
			    "now %zu: removed %" PRIu64 " records, %" PRIu64
			    " -> %" PRIu64 " bytes", tp->topic->name, tp->id,
			    job->nsrc, job->nout, job->records_removed,
			    job->bytes_before, job->bytes_after);
	s->needs_ckpt = job->blocked &&
			kp_partition_write_recovery_point(tp->log) != 0;
}

static void on_compact_work(uv_work_t *req)
{
	struct compact_run *run = req->data;

	if (run->finishing)
		kp_compact_finish(run->job);
	else
		kp_compact_run(run->job);
}

static void on_compact_done(uv_work_t *req, int status)
{
	struct compact_run *run = req->data;
	struct kp_store *st = run->st;
	struct kp_topic_partition *tp = run->tp;
	struct kp_compact_job *job = run->job;

	(void)status;
	if (!run->finishing && !tp->topic->deleted && job->rc == 0 &&
	    job->nout > 0) {
		job->rc = compact_install(tp, job);
		if (job->rc == 0) {
			run->finishing = true;
			uv_queue_work(st->loop, &run->work, on_compact_work,
				      on_compact_done);
			return;
		}
	}
	tp->compact.running = false;
	st->compact_job = NULL;
	st->jobs_in_flight--;
	if (!tp->topic->deleted)
		compact_settle(tp, job, kp_clock_now_ms());
	kp_compact_job_delete(job);
	kp_free(run);
	if (tp->topic->deleted)
		reap_topics(st);
}

static void compact_start(struct kp_store *st, struct kp_topic_partition *tp,
			  int64_t now)
{
	struct compact_run *run = kp_calloc(1, sizeof(*run));

	if (run == NULL)
		return;
	run->job = compact_job_for(st, tp, now);
	if (run->job == NULL) {
		kp_free(run);
		tp->compact.retry_ms = now + KP_COMPACT_RETRY_MS;
		return;
	}
	run->work.data = run;
	run->st = st;
	run->tp = tp;
	tp->compact.running = true;
	st->compact_job = run->job;
	st->jobs_in_flight++;
	uv_queue_work(st->loop, &run->work, on_compact_work, on_compact_done);
}

/* true when it started a run for tp. */
static bool compact_maybe(struct kp_store *st, struct kp_topic_partition *tp,
			  int64_t now)
{
	struct kp_compact_state *s = &tp->compact;
	struct kp_partition_stats ps;
	uint64_t dirty, all;

	if (!kp_cleanup_compacts(tp->topic->config.cleanup))
		return false;
	kp_partition_stats(tp->log, &ps);
	if (s->seen_end_ms == 0 || ps.end_offset != s->seen_end) {
		s->seen_end = ps.end_offset;
		s->seen_end_ms = now;
	}
	if (s->needs_ckpt && !s->running &&
	    kp_partition_write_recovery_point(tp->log) == 0)
		s->needs_ckpt = false;
	compactable_bytes(tp, &dirty, &all);
	if (!kp_compact_due(&tp->compact, dirty, all, now))
		return false;
	compact_start(st, tp, now);
	return true;
}

/*
 * Starts a run for the first due partition, in catalog order from the one
 * after the partition of the last run (round robin).
 */
static void compact_tick(struct kp_store *st, int64_t now)
{
	size_t start = st->compact_next;

	if (st->stopping || st->compact_job != NULL ||
	    now - st->last_compact_check_ms < COMPACT_CHECK_MS)
		return;
	st->last_compact_check_ms = now;
	for (int pass = 0; pass < 2; pass++) {
		size_t seen = 0;

		for (size_t i = 0; i < kp_catalog_count(st->catalog); i++) {
			struct kp_topic *t = kp_catalog_at(st->catalog, i);

			for (uint32_t p = 0; p < t->config.partitions;
			     p++, seen++) {
				if ((pass == 0) != (seen >= start))
					continue;
				if (compact_maybe(st, &t->parts[p], now)) {
					st->compact_next = seen + 1;
					return;
				}
			}
		}
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
	compact_tick(st, now_ms);
}

void kp_store_sync_all(struct kp_store *st)
{
	st->stopping = true;
	if (st->compact_job != NULL)
		atomic_store(&st->compact_job->cancel, true);
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

/* Compaction's test knobs, from the environment (README, "Compaction"). */
static void test_knobs(struct kp_store *st)
{
	const char *delay = getenv("KAPPA_TEST_COMPACT_DELAY_MS");
	const char *stall = getenv("KAPPA_TEST_COMPACT_STALL");

	if (delay != NULL)
		st->compact_delay_ms = (uint32_t)strtoul(delay, NULL, 10);
	if (stall != NULL)
		snprintf(st->compact_stall, sizeof(st->compact_stall), "%s",
			 stall);
}

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
	test_knobs(st);
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
