/*
 * proc_version.c - the runner of one processor version: cursors, worker
 * jobs, output writing with provenance, checkpoints, the watchdog.
 */
#include "proc_version.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/fsutil.h"
#include "base/logging.h"
#include "base/mp.h"
#include "log/batch.h"
#include "log/store.h"
#include "log/writer.h"
#include "wire/slot.h"

#define READ_BYTES (256 * 1024)
#define SLICE_MS 20

static const char *const role_names[] = { "building", "live", "retired",
					  "scratch" };
static const char *const state_names[] = { "starting", "running", "paused",
					   "failed", "stopped" };

const char *kp_pv_role_name(enum pv_role role)
{
	return role_names[role];
}

const char *kp_pv_state_name(enum pv_state state)
{
	return state_names[state];
}

void kp_pv_physical_name(const char *logical, uint32_t n, char *out,
			 size_t cap)
{
	if (n <= 1)
		snprintf(out, cap, "%s", logical);
	else
		snprintf(out, cap, "%s.v%u", logical, n);
}

struct kp_topic_partition *kp_pv_find_tp(struct kp_procs *ps,
					  const char *topic, uint32_t part)
{
	struct kp_topic *t = kp_catalog_find_physical(ps->store->catalog, topic,
						      strlen(topic));

	if (t == NULL || part >= t->config.partitions)
		return NULL;
	return &t->parts[part];
}

/* ---- life cycle ------------------------------------------------------- */

struct proc_version *kp_pv_new(struct kp_proc *p, struct kp_procs *ps,
			       uint32_t n)
{
	struct proc_version *v = kp_calloc(1, sizeof(*v));
	char dlq[256];

	if (v == NULL)
		return NULL;
	v->proc = p;
	v->owner = ps;
	v->number = n;
	v->revision = 1;
	v->inst = &v->insts[0];
	v->steps.fd = -1;
	snprintf(v->dir, sizeof(v->dir), "%s/v%u", p->dir, n);
	kp_buf_init(&v->job.raw);
	kp_buf_init(&v->job.dlq);
	kp_buf_init(&v->captured);
	for (uint32_t i = 0; i < p->def.output_count; i++) {
		kp_pv_physical_name(p->def.outputs[i], n, v->outputs[i],
				    sizeof(v->outputs[i]));
		v->allowed[i] = p->def.outputs[i];
	}
	kp_proc_def_dlq(&p->def, dlq, sizeof(dlq));
	kp_pv_physical_name(dlq, n, v->outputs[p->def.output_count],
			    sizeof(v->outputs[0]));
	v->output_count = p->def.output_count + 1;
	if (kp_view_new(&v->view) != 0) {
		kp_free(v);
		return NULL;
	}
	return v;
}

void kp_pv_free(struct proc_version *v)
{
	if (v == NULL || v->zombie)
		return;
	if (v->inst_started)
		kp_instance_stop(v->inst);
	kp_proc_code_unref(v->code);
	kp_view_delete(v->view);
	if (v->role == PV_SCRATCH) {
		char dir[4200];

		kp_pv_view_dir(v, dir, sizeof(dir));
		kp_file_remove_tree(dir);
	}
	kp_free(v->cursors);
	for (uint32_t i = 0; i < v->mark_count; i++)
		kp_free(v->marks[i].written);
	kp_free(v->marks);
	kp_buf_destroy(&v->job.raw);
	kp_buf_destroy(&v->job.dlq);
	kp_buf_destroy(&v->captured);
	kp_checkpoint_destroy(&v->job.ckpt);
	kp_pv_drop_pending(v);
	kp_pv_order_close(v);
	kp_free(v);
}

void kp_pv_stop(struct proc_version *v)
{
	if (v->inst_started)
		kp_instance_stop(v->inst);
	v->inst_started = false;
	kp_view_discard(v->view);
	v->state = PV_STOPPED;
}

/* ---- the worker side --------------------------------------------------- */

/*
 * A dead letter in job->dlq: i64 ts, u64 offset, u32 key_len (UINT32_MAX =
 * none), key, u32 value_len, value (a msgpack map describing the failure).
 */
static void dlq_add(struct pv_job *job, const struct kp_proc_record *rec,
		    const char *error)
{
	struct kp_buf value;
	msgpack_packer pk;
	char num[8];

	kp_buf_init(&value);
	msgpack_packer_init(&pk, &value, kp_buf_msgpack_write);
	msgpack_pack_map(&pk, 6);
	msgpack_pack_str_with_body(&pk, "error", 5);
	msgpack_pack_str_with_body(&pk, error, strlen(error));
	msgpack_pack_str_with_body(&pk, "topic", 5);
	msgpack_pack_str_with_body(&pk, rec->topic, strlen(rec->topic));
	msgpack_pack_str_with_body(&pk, "partition", 9);
	msgpack_pack_uint32(&pk, rec->partition);
	msgpack_pack_str_with_body(&pk, "offset", 6);
	msgpack_pack_uint64(&pk, rec->offset);
	msgpack_pack_str_with_body(&pk, "ts", 2);
	msgpack_pack_int64(&pk, rec->ts);
	msgpack_pack_str_with_body(&pk, "value", 5);
	msgpack_pack_bin_body(&pk, rec->value, rec->value_len);
	kp_put_le64(num, (uint64_t)rec->ts);
	kp_buf_append(&job->dlq, num, 8);
	kp_put_le64(num, rec->offset);
	kp_buf_append(&job->dlq, num, 8);
	kp_put_le32(num, rec->key ? (uint32_t)rec->key_len : UINT32_MAX);
	kp_buf_append(&job->dlq, num, 4);
	if (rec->key)
		kp_buf_append(&job->dlq, rec->key, rec->key_len);
	kp_put_le32(num, (uint32_t)value.len);
	kp_buf_append(&job->dlq, num, 4);
	kp_buf_append(&job->dlq, value.data, value.len);
	job->dlq_count++;
	kp_buf_destroy(&value);
}

static void record_failed(struct pv_job *job, const struct kp_proc_record *rec,
			  const struct kp_error *err)
{
	job->failed++;
	snprintf(job->last_error, sizeof(job->last_error), "%s", err->msg);
	dlq_add(job, rec, err->msg);
	if (strstr(err->msg, "interrupted") != NULL)
		job->interrupted = true;
	if (strstr(err->msg, "not enough memory") != NULL)
		job->out_of_memory = true;
}

static void run_batch(struct pv_job *job)
{
	struct proc_version *v = job->v;
	const struct pv_cursor *c = &v->cursors[job->cursor_index];
	int64_t deadline = kp_workers_now_ms() + SLICE_MS;
	int64_t beat = 0, now, slack_ms;
	struct timespec ts;
	size_t pos = 0;

	/*
	 * The heartbeat after each record reads the coarse clock (a few ns,
	 * where the precise one costs ~35 ns here) plus its resolution, so
	 * that it never looks older than the record's end; stored on change.
	 */
	clock_getres(CLOCK_MONOTONIC_COARSE, &ts);
	slack_ms = (int64_t)ts.tv_sec * 1000 + (ts.tv_nsec + 999999) / 1000000;
	job->next_offset = job->start_offset;
	while (pos < job->raw.len && !job->interrupted && !job->out_of_memory) {
		struct kp_batch_header h;
		struct kp_record rec;
		size_t rpos = 0;
		uint32_t index = 0;

		if (kp_batch_header_decode(job->raw.data + pos,
					   job->raw.len - pos, &h) != 0)
			break;
		while (kp_batch_next(job->raw.data + pos, &h, &rpos, &index,
				     &rec) == 1) {
			struct kp_proc_record pr;
			struct kp_error err;

			if (rec.offset < job->start_offset)
				continue;
			if (rec.offset >= job->stop_offset)
				return;
			pr.topic = c->topic;
			pr.partition = c->partition;
			pr.offset = rec.offset;
			pr.ts = rec.ts;
			pr.key = rec.key;
			pr.key_len = rec.key_len;
			pr.value = rec.value;
			pr.value_len = rec.value_len;
			kp_error_clear(&err);
			if (kp_instance_process(v->inst, &pr, &err) != 0)
				record_failed(job, &pr, &err);
			job->processed++;
			job->next_offset = rec.offset + 1;
			clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
			now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 +
			      slack_ms;
			if (now != beat) {
				beat = now;
				atomic_store(&job->base.heartbeat_ms, now);
			}
			if (job->interrupted || job->out_of_memory)
				break;
			if (job->failed > 0 &&
			    kp_limits_error_rate_exceeded(
				    job->window_total + job->processed,
				    job->window_errors + job->failed,
				    job->window_min, job->max_error_rate))
				return;
			if ((job->processed & 63) == 0 &&
			    kp_workers_now_ms() > deadline)
				return;
		}
		pos += h.batch_len;
	}
}

/*
 * Starts the new code in the spare instance slot (in place: the processor
 * and its host services keep pointers into the instance) and switches to
 * it only when its init succeeded; the old one is stopped then.
 */
static void run_reload(struct pv_job *job)
{
	struct proc_version *v = job->v;
	struct kp_instance *fresh = v->inst == &v->insts[0] ? &v->insts[1]
							    : &v->insts[0];
	struct kp_proc_def *def = &v->proc->def;

	memset(fresh, 0, sizeof(*fresh));
	kp_error_clear(&job->err);
	job->rc = kp_instance_start(fresh, job->new_code, def->name, v->view,
				    def->config.data, def->config.len,
				    def->open_outputs ? NULL : v->allowed,
				    def->output_count,
				    (size_t)def->memory_limit, &job->err);
	if (job->rc != 0)
		return;
	if (v->inst_started)
		kp_instance_stop(v->inst);
	v->inst = fresh;
	v->inst_started = true;
}

static void on_job_run(struct kp_job *base)
{
	struct pv_job *job = (struct pv_job *)base;
	struct proc_version *v = job->v;
	struct kp_proc_def *def = &v->proc->def;

	switch (job->kind) {
	case PV_JOB_INIT:
		kp_error_clear(&job->err);
		if (v->view_error[0] != '\0') {
			job->rc = kp_error_set(&job->err, KP_EDAMAGED, "%s",
					       v->view_error);
			break;
		}
		job->rc = kp_instance_start(
			v->inst, v->code, def->name, v->view,
			def->config.data, def->config.len,
			def->open_outputs ? NULL : v->allowed,
			def->output_count, (size_t)def->memory_limit,
			&job->err);
		if (job->rc == 0 && job->write_checkpoint)
			job->rc = kp_checkpoint_save(&job->ckpt, v->view,
						     &job->err);
		break;
	case PV_JOB_BATCH:
		run_batch(job);
		kp_pv_order_record(v, job);
		break;
	case PV_JOB_CHECKPOINT: {
		int64_t t0 = kp_clock_mono_ms();

		kp_error_clear(&job->err_ckpt);
		job->rc = kp_steps_sync(&v->steps);
		if (job->rc != 0)
			kp_error_set(&job->err_ckpt, job->rc,
				     "cannot sync its steps file: %s",
				     kp_error_text(job->rc));
		else
			job->rc = kp_checkpoint_save(&job->ckpt, v->view,
						     &job->err_ckpt);
		job->ckpt_ms = kp_clock_mono_ms() - t0;
		break;
	}
	case PV_JOB_RELOAD:
		run_reload(job);
		break;
	}
}

static void set_failed(struct proc_version *v, const char *what,
		       const char *detail)
{
	v->state = PV_FAILED;
	snprintf(v->reason, sizeof(v->reason), "%s: %s", what, detail);
	kp_log_error("proc", "processor %s v%u stopped: %s", v->proc->def.name,
		     v->number, v->reason);
}

/*
 * Counts a batch into the error window and pauses the live version (stops
 * any other) past max_error_rate (proc_limits.h: judged from
 * error_window_min records on; the worker ended the batch there).
 */
static void check_error_rate(struct proc_version *v, struct pv_job *job)
{
	char reason[KP_ERROR_MSG_MAX];
	const struct kp_proc_def *def = &v->proc->def;
	double rate;

	v->window_total += job->processed;
	v->window_errors += job->failed;
	if (kp_limits_error_rate_exceeded(v->window_total, v->window_errors,
					  def->error_window_min,
					  def->max_error_rate)) {
		rate = (double)v->window_errors / (double)v->window_total;
		snprintf(reason, sizeof(reason),
			 "error rate %.0f%% over the last %llu records exceeds max_error_rate %.0f%%; last error: %s",
			 rate * 100, (unsigned long long)v->window_total,
			 def->max_error_rate * 100, v->last_error);
		if (v->role == PV_LIVE)
			v->owner->events.pause(v->proc, reason, NULL);
		else
			set_failed(v, "replay stopped", reason);
	}
	if (kp_limits_error_window_full(v->window_total, def->error_window_min))
		v->window_total = v->window_errors = 0;
}

static void batch_done(struct proc_version *v, struct pv_job *job)
{
	struct pv_cursor *c = &v->cursors[job->cursor_index];

	if (job->step_rc != 0) {
		/* Its outputs wait until its step is recorded (proc_order.c). */
		v->step_pending = true;
		v->step_unwritten = job->step_unwritten;
		snprintf(v->blocked, sizeof(v->blocked),
			 "cannot record the order of its inputs: %s; resumes by itself once it can",
			 kp_error_text(job->step_rc));
		v->blocked_total++;
	}
	kp_pv_write_outputs(v, job);
	c->offset = job->next_offset;
	kp_pv_order_done(v, job);
	v->processed += job->processed;
	v->errors += job->failed;
	v->dead_lettered += job->failed;
	v->since_checkpoint += job->processed;
	kp_pace_spend(&v->pace, job->processed);
	if (job->failed > 0)
		snprintf(v->last_error, sizeof(v->last_error), "%s",
			 job->last_error);
	kp_buf_reset(&job->raw);
	if (job->interrupted) {
		set_failed(v, "no progress within the time budget",
			   job->last_error);
		return;
	}
	if (job->out_of_memory) {
		set_failed(v, "grew past its memory budget", job->last_error);
		return;
	}
	if (v->state == PV_RUNNING)
		check_error_rate(v, job);
}

/* ---- jobs ------------------------------------------------------------- */

static void init_done(struct proc_version *v, struct pv_job *job)
{
	kp_checkpoint_destroy(&job->ckpt);
	if (job->rc != 0) {
		set_failed(v, "cannot start", job->err.msg);
		v->owner->events.init_done(v, job->rc, job->err.msg);
		return;
	}
	v->inst_started = true;
	v->last_checkpoint_ms = v->owner->now_ms();
	if (job->write_checkpoint)
		v->checkpointed_ms = v->last_checkpoint_ms;
	v->state = PV_RUNNING;
	v->owner->events.init_done(v, 0, NULL);
}

static void reload_done(struct proc_version *v, struct pv_job *job)
{
	struct kp_proc_code *code = job->new_code;

	job->new_code = NULL;
	if (job->rc != 0) {
		snprintf(v->reload_error, sizeof(v->reload_error), "%s",
			 job->err.msg);
		kp_log_warn("proc", "processor %s: reload failed, v%u rev %u keeps running: %s",
			    v->proc->def.name, v->number, v->revision,
			    job->err.msg);
		kp_proc_code_unref(code);
		v->reloads_failed++;
		v->owner->events.reload_done(v, job->rc, job->err.msg);
		return;
	}
	v->reloads_ok++;
	kp_proc_code_unref(v->code);
	v->code = code;
	snprintf(v->hash, sizeof(v->hash), "%s", code->hash);
	v->reload_error[0] = '\0';
	v->owner->events.reload_done(v, 0, NULL);
}

/*
 * A failed checkpoint is kept in checkpoint_error (status, /health,
 * /metrics) and retried a second later; the version goes on meanwhile
 * unless its view's table is full (maybe_checkpoint).
 */
static void checkpoint_done(struct proc_version *v, struct pv_job *job)
{
	kp_checkpoint_destroy(&job->ckpt);
	v->checkpoint_cost_ms = job->ckpt_ms;
	if (job->rc != 0) {
		if (v->checkpoint_error[0] == '\0')
			kp_log_error("proc", "processor %s v%u: checkpoint failed (retried every second): %s",
				     v->proc->def.name, v->number,
				     job->err_ckpt.msg);
		snprintf(v->checkpoint_error, sizeof(v->checkpoint_error),
			 "%s", job->err_ckpt.msg);
		v->checkpoint_failures++;
		/* Its records are still to be checkpointed. */
		if (v->since_checkpoint == 0)
			v->since_checkpoint = 1;
		return;
	}
	if (v->checkpoint_error[0] != '\0')
		kp_log_info("proc", "processor %s v%u: checkpoints are written again",
			    v->proc->def.name, v->number);
	v->checkpoint_error[0] = '\0';
	v->checkpointed_ms = v->owner->now_ms();
}

static void on_job_done(struct kp_job *base)
{
	struct pv_job *job = (struct pv_job *)base;
	struct proc_version *v = job->v;

	v->busy = false;
	if (v->free_when_idle) {
		/* Deleted while the job ran: drop its results, not apply them. */
		struct kp_proc *p = v->proc;
		struct kp_procs *ps = v->owner;

		kp_proc_code_unref(job->new_code);
		job->new_code = NULL;
		kp_pv_free(v);
		ps->events.freed(p);
		return;
	}
	switch (job->kind) {
	case PV_JOB_INIT:
		init_done(v, job);
		break;
	case PV_JOB_BATCH:
		batch_done(v, job);
		break;
	case PV_JOB_CHECKPOINT:
		checkpoint_done(v, job);
		break;
	case PV_JOB_RELOAD:
		reload_done(v, job);
		break;
	}
	if (v->free_when_idle) {
		/* Its processor let go of it in a hook (a failed create). */
		kp_pv_free(v);
		return;
	}
	v->owner->events.idle(v);
}

static void job_submit(struct proc_version *v, enum pv_job_kind kind)
{
	struct pv_job *job = &v->job;

	job->base.run = on_job_run;
	job->base.done = on_job_done;
	job->base.background = v->role != PV_LIVE;
	job->v = v;
	job->kind = kind;
	job->rc = 0;
	job->processed = job->failed = 0;
	job->interrupted = job->out_of_memory = false;
	if (kind == PV_JOB_BATCH)
		kp_pv_emit_policy(v);
	v->busy = true;
	v->interrupted_ms = 0;
	kp_workers_submit(v->owner->workers, &job->base);
}

bool kp_pv_checkpoint_async(struct proc_version *v)
{
	if (v->busy || v->zombie || !v->inst_started || v->role == PV_SCRATCH ||
	    kp_pv_capture_checkpoint(v, &v->job.ckpt) != 0)
		return false;
	v->since_checkpoint = 0;
	v->last_checkpoint_ms = v->owner->now_ms();
	job_submit(v, PV_JOB_CHECKPOINT);
	return true;
}

void kp_pv_start(struct proc_version *v, bool write_checkpoint)
{
	if (v->busy)
		return;
	kp_pv_open_view(v);   /* on failure, the init job reports it */
	v->state = PV_STARTING;
	v->job.write_checkpoint = write_checkpoint;
	if (write_checkpoint && kp_pv_capture_checkpoint(v, &v->job.ckpt) != 0)
		v->job.write_checkpoint = false;
	job_submit(v, PV_JOB_INIT);
}

void kp_pv_reload(struct proc_version *v, struct kp_proc_code *code)
{
	kp_proc_code_ref(code);
	v->job.new_code = code;
	job_submit(v, PV_JOB_RELOAD);
}

static bool start_batch(struct proc_version *v, uint32_t index,
			uint64_t limit)
{
	struct pv_cursor *c = &v->cursors[index];
	struct kp_topic_partition *tp = kp_pv_find_tp(v->owner, c->topic,
						c->partition);
	struct kp_partition_stats st;
	struct kp_error err;
	uint64_t skip_to = 0, allowed;
	int rc;

	if (tp == NULL || c->offset >= c->stop)
		return false;
	kp_partition_stats(tp->log, &st);
	if (c->offset < st.start_offset) {
		kp_log_warn("proc",
			    "processor %s: %s/%u offsets %llu..%llu were removed by retention; skipping them",
			    v->proc->def.name, c->topic, c->partition,
			    (unsigned long long)c->offset,
			    (unsigned long long)st.start_offset - 1);
		c->offset = st.start_offset;
	}
	if (st.visible_end <= c->offset)
		return false;
	kp_buf_reset(&v->job.raw);
	rc = kp_partition_read(tp->log, c->offset, READ_BYTES, &v->job.raw,
			       &skip_to, &err);
	if (rc == KP_ECORRUPT && skip_to > c->offset) {
		kp_log_error("proc", "processor %s: skipping corrupt batch in %s/%u at %llu",
			     v->proc->def.name, c->topic, c->partition,
			     (unsigned long long)c->offset);
		c->offset = skip_to;
		return false;
	}
	if (rc != 0) {
		set_failed(v, "cannot read input", err.msg);
		return false;
	}
	if (v->job.raw.len == 0)
		return false;
	v->job.cursor_index = index;
	v->job.window_total = v->window_total;
	v->job.window_errors = v->window_errors;
	v->job.window_min = v->proc->def.error_window_min;
	v->job.max_error_rate = v->proc->def.max_error_rate;
	v->job.start_offset = c->offset;
	v->job.stop_offset = c->stop < limit ? c->stop : limit;
	allowed = kp_pace_allowance(&v->pace, v->rate);
	if (allowed < v->job.stop_offset - c->offset)
		v->job.stop_offset = c->offset + allowed;
	kp_pv_order_prepare(v, &v->job);
	job_submit(v, PV_JOB_BATCH);
	return true;
}

static bool may_run(const struct proc_version *v)
{
	if (v->busy || v->free_when_idle || v->zombie ||
	    v->state != PV_RUNNING || v->owner->quiesced)
		return false;
	if (v->role == PV_RETIRED)
		return false;
	if (v->role == PV_LIVE && v->proc->def.paused)
		return false;
	if (kp_pace_allowance(&v->pace, v->rate) == 0)
		return false;
	if (v->pending != NULL || v->step_pending)
		return false;
	return true;
}

static bool caught_up(struct proc_version *v)
{
	for (uint32_t i = 0; i < v->cursor_count; i++) {
		struct pv_cursor *c = &v->cursors[i];
		struct kp_topic_partition *tp = kp_pv_find_tp(v->owner, c->topic,
							c->partition);
		struct kp_partition_stats st;

		if (tp == NULL || c->offset >= c->stop)
			continue;
		kp_partition_stats(tp->log, &st);
		if (c->offset < st.visible_end)
			return false;
	}
	return true;
}

static int maybe_checkpoint(struct proc_version *v, int64_t now);

/* true when a partition has no record at offset, not even an unsynced one. */
static bool beyond_written(struct proc_version *v, uint32_t index)
{
	const struct pv_cursor *c = &v->cursors[index];
	struct kp_topic_partition *tp = kp_pv_find_tp(v->owner, c->topic,
						c->partition);
	struct kp_partition_stats st;

	if (tp == NULL)
		return true;
	kp_partition_stats(tp->log, &st);
	return c->offset >= st.end_offset;
}

/*
 * Runs the recorded step v must follow, if any (proc_order.c). Returns
 * true when v follows a step, also while it waits for that step's records
 * to become visible: it never chooses freely past a recorded step.
 */
static bool follow_step(struct proc_version *v)
{
	uint32_t index;
	uint64_t stop;

	while (kp_pv_order_next(v, &index, &stop)) {
		if (start_batch(v, index, stop) || v->busy ||
		    v->state != PV_RUNNING)
			return true;
		if (!beyond_written(v, index))
			return true;
		kp_pv_order_skip(v);
	}
	return false;
}

void kp_pv_kick(struct proc_version *v)
{
	if (!may_run(v))
		return;
	/*
	 * A version with a backlog is never idle at a tick: checkpoint here,
	 * and when one is due but its outputs are still being synced, wait
	 * for that (the tick retries) rather than run ahead of it.
	 */
	if (maybe_checkpoint(v, v->owner->now_ms()) != 0)
		return;
	if (follow_step(v))
		return;
	for (uint32_t i = 0; i < v->cursor_count; i++) {
		uint32_t index = (v->rr + i) % v->cursor_count;

		if (start_batch(v, index, UINT64_MAX)) {
			v->rr = index + 1;
			return;
		}
		if (v->busy || v->state != PV_RUNNING)
			return;
	}
	if ((v->role == PV_BUILDING || v->role == PV_SCRATCH) && caught_up(v))
		v->owner->events.caught_up(v);
}

bool kp_pv_reads(const struct proc_version *v, const char *topic,
		 uint32_t partition)
{
	for (uint32_t k = 0; k < v->cursor_count; k++) {
		if (v->cursors[k].partition == partition &&
		    strcmp(v->cursors[k].topic, topic) == 0)
			return true;
	}
	return false;
}

uint64_t kp_pv_lag(struct proc_version *v)
{
	uint64_t total = 0;

	for (uint32_t i = 0; i < v->cursor_count; i++) {
		const struct pv_cursor *c = &v->cursors[i];
		struct kp_topic_partition *tp = kp_pv_find_tp(v->owner, c->topic,
							c->partition);
		struct kp_partition_stats st;
		uint64_t end;

		if (tp == NULL)
			continue;
		kp_partition_stats(tp->log, &st);
		end = st.visible_end < c->stop ? st.visible_end : c->stop;
		if (end > c->offset)
			total += end - c->offset;
	}
	return total;
}

/* ---- checkpoints, the watchdog ----------------------------------------- */

/* true when every output partition holds its writes durably. */
static bool outputs_durable(struct proc_version *v)
{
	bool durable = true;

	for (uint32_t i = 0; i < v->mark_count; i++) {
		struct kp_topic_partition *tp = kp_pv_find_tp(
			v->owner, v->marks[i].topic, v->marks[i].partition);
		struct kp_partition_stats st;

		if (tp == NULL ||
		    tp->topic->config.log.fsync != KP_FSYNC_ALWAYS)
			continue;
		kp_partition_stats(tp->log, &st);
		if (st.durable_end < st.end_offset) {
			kp_writer_sync(&v->owner->store->writer, tp);
			durable = false;
		}
	}
	return durable;
}

/*
 * Starts a checkpoint job when one is due. Returns 0 when none is due (or
 * it cannot be taken), 1 when it was submitted, 2 when it is due but the
 * outputs it would claim are still being synced, 3 when the last one
 * failed and the view's table is full: nothing may run until one commits.
 */
static int maybe_checkpoint(struct proc_version *v, int64_t now)
{
	if (v->busy || v->zombie || v->free_when_idle || !v->inst_started ||
	    v->role == PV_SCRATCH || v->since_checkpoint == 0)
		return 0;
	if (v->checkpoint_error[0] != '\0' && now - v->last_checkpoint_ms < 1000)
		return kp_pv_checkpoint_blocked(v) ? 3 : 0;
	if (!kp_pv_checkpoint_due(v, now))
		return 0;
	if (!outputs_durable(v))
		return 2;
	if (kp_pv_capture_checkpoint(v, &v->job.ckpt) != 0)
		return 0;
	v->since_checkpoint = 0;
	v->last_checkpoint_ms = now;
	job_submit(v, PV_JOB_CHECKPOINT);
	return 1;
}

static void watchdog(struct proc_version *v, int64_t mono_now)
{
	uint32_t budget = v->proc->def.time_budget_ms;
	int64_t idle;

	if (!v->busy || !atomic_load(&v->job.base.running))
		return;
	idle = mono_now - atomic_load(&v->job.base.heartbeat_ms);
	if (idle < (int64_t)budget)
		return;
	if (v->interrupted_ms == 0) {
		kp_log_warn("proc", "processor %s v%u: no progress for %lld ms; interrupting",
			    v->proc->def.name, v->number, (long long)idle);
		v->interrupted_ms = mono_now;
		kp_instance_interrupt(v->inst);
		return;
	}
	if (mono_now - v->interrupted_ms < (int64_t)budget)
		return;
	/*
	 * The call did not come back even when interrupted (a loop in
	 * compiled code): write off its thread, and the version with it.
	 */
	kp_workers_abandon(v->owner->workers, &v->job.base);
	v->busy = false;
	v->zombie = true;
	v->inst_started = false;
	v->state = PV_FAILED;
	snprintf(v->reason, sizeof(v->reason),
		 "no progress within the time budget (%u ms), and the call did not return when interrupted; its worker thread was written off",
		 budget);
	kp_log_error("proc", "processor %s v%u stopped: %s", v->proc->def.name,
		     v->number, v->reason);
	v->owner->events.idle(v);
}

void kp_pv_tick(struct proc_version *v, int64_t now_ms, int64_t mono_ms)
{
	watchdog(v, mono_ms);
	kp_pace_refill(&v->pace, v->rate, mono_ms);
	if ((v->pending != NULL || v->step_pending) && !v->busy &&
	    !kp_pv_retry_pending(v, now_ms))
		return;
	if (maybe_checkpoint(v, now_ms) == 0 && !v->busy)
		kp_pv_kick(v);
}
