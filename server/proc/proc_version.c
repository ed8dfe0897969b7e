/*
 * proc_version.c - the runner of one processor version: cursors, worker
 * jobs, output writing with provenance, checkpoints, the watchdog.
 */
#include "proc_version.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "wk_msg.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/fsutil.h"
#include "base/logging.h"
#include "base/mp.h"
#include "log/batch.h"
#include "log/store.h"
#include "log/writer.h"
#include "wire/slot.h"

#define READ_BYTES (1024 * 1024)
/*
 * A replay's batches are smaller: the loop reads each batch and appends
 * its outputs in one go, and 1 MiB slices of replay work there held back
 * the produce requests arriving meanwhile (p99 3.7x idle during a replay;
 * 1.2x with 64 KiB, docs/BENCHMARKS.md "End to end latency").
 */
#define REPLAY_READ_BYTES (64 * 1024)
#define STOP_GRACE_MS 2000   /* a stopping worker's fini, then it is killed */

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
	kp_buf_init(&v->job.emits);
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
	if (v == NULL)
		return;
	kp_pv_worker_release(v, v->busy ? 0 : STOP_GRACE_MS);
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
	kp_buf_destroy(&v->job.emits);
	kp_proc_code_unref(v->job.new_code);
	kp_buf_destroy(&v->captured);
	kp_checkpoint_destroy(&v->job.ckpt);
	kp_pv_drop_pending(v);
	kp_pv_order_close(v);
	kp_free(v);
}

void kp_pv_stop(struct proc_version *v)
{
	kp_pv_worker_release(v, STOP_GRACE_MS);
	v->inst_started = false;
	if (v->view != NULL)
		kp_view_discard(v->view);
	v->state = PV_STOPPED;
}

void kp_pv_set_failed(struct proc_version *v, const char *what,
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
			kp_pv_set_failed(v, "replay stopped", reason);
	}
	if (kp_limits_error_window_full(v->window_total, def->error_window_min))
		v->window_total = v->window_errors = 0;
}

/*
 * The worker did not read all of a span itself: the batch where it
 * stopped is read here and sent (where damage is found, logged and
 * stepped over); a worker that cannot read the files at all is sent every
 * batch from now on.
 */
static void input_not_read(struct proc_version *v, struct pv_cursor *c,
			   const struct pv_job *job)
{
	if (job->input_state == KP_WM_INPUT_CHANGED) {
		c->send_next = true;
		return;
	}
	v->send_input = true;
	kp_log_warn("proc", "processor %s v%u: its worker cannot read the log files (%s); its input batches are sent to it instead",
		    v->proc->def.name, v->number, job->input_error);
}

static void batch_done(struct proc_version *v, struct pv_job *job)
{
	struct pv_cursor *c = &v->cursors[job->cursor_index];

	if (job->input_state != KP_WM_INPUT_READ)
		input_not_read(v, c, job);

	kp_pv_order_record(v, job);
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
		kp_pv_set_failed(v, "no progress within the time budget",
			   job->last_error);
		return;
	}
	if (job->out_of_memory) {
		kp_pv_set_failed(v, "grew past its memory budget", job->last_error);
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
		kp_pv_set_failed(v, "cannot start", job->err.msg);
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

/*
 * A failed version lets its worker go, so that its memory and CPU come
 * back: once its last checkpoint is written when it can be (true: that job
 * runs now), else it goes back to the checkpoint it has.
 */
static bool settle_failed(struct proc_version *v)
{
	struct kp_error err;

	if (v->inst_started && v->since_checkpoint > 0 && !v->fail_commit &&
	    v->role != PV_SCRATCH && kp_pv_checkpoint_async(v)) {
		v->fail_commit = true;
		return true;
	}
	v->fail_commit = false;
	kp_pv_worker_release(v, STOP_GRACE_MS);
	v->inst_started = false;
	kp_error_clear(&err);
	if (v->since_checkpoint > 0 && v->role != PV_SCRATCH &&
	    kp_pv_rewind(v, &err) != 0)
		kp_log_error("proc", "processor %s v%u: cannot go back to its checkpoint: %s",
			     v->proc->def.name, v->number, err.msg);
	return false;
}

void kp_pv_job_done(struct proc_version *v)
{
	struct pv_job *job = &v->job;

	v->busy = false;
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
	if (v->state == PV_FAILED && v->wk != NULL && settle_failed(v))
		return;
	v->owner->events.idle(v);
}

void kp_pv_worker_lost(struct proc_version *v, const char *reason)
{
	bool was_busy = v->busy;
	enum pv_job_kind kind = v->job.kind;
	struct kp_error err;

	v->busy = false;
	v->ckpt_waits_sync = false;
	v->inst_started = false;
	v->fail_commit = false;
	if (v == v->proc->live)
		kp_proc_verify_drop_snapshot(v->proc);   /* it reads v's store */
	kp_checkpoint_destroy(&v->job.ckpt);
	kp_buf_reset(&v->job.raw);
	if (v->restart_worker) {
		/* Killed to pause it: it starts again, paused, from its
		 * checkpoint. */
		v->restart_worker = false;
		kp_error_clear(&err);
		if (kp_pv_rewind(v, &err) == 0) {
			kp_log_info("proc", "processor %s v%u: %s; it starts again from its checkpoint",
				    v->proc->def.name, v->number, reason);
			kp_pv_start(v, false);
			return;
		}
	}
	kp_pv_set_failed(v, "stopped", reason);
	/* What the worker did since its last checkpoint is gone with it. */
	kp_error_clear(&err);
	if (v->role != PV_SCRATCH && kp_pv_rewind(v, &err) != 0)
		kp_log_error("proc", "processor %s v%u: cannot go back to its checkpoint: %s",
			     v->proc->def.name, v->number, err.msg);
	if (was_busy && kind == PV_JOB_INIT) {
		v->owner->events.init_done(v, KP_EINTERNAL, v->reason);
	} else if (was_busy && kind == PV_JOB_RELOAD) {
		kp_proc_code_unref(v->job.new_code);
		v->job.new_code = NULL;
		v->reloads_failed++;
		v->owner->events.reload_done(v, KP_EINTERNAL, v->reason);
	}
	if (v->free_when_idle) {
		kp_pv_free(v);
		return;
	}
	v->owner->events.idle(v);
}

static bool outputs_durable(struct proc_version *v);

static void job_submit(struct proc_version *v, enum pv_job_kind kind)
{
	struct pv_job *job = &v->job;

	job->v = v;
	job->kind = kind;
	job->rc = 0;
	job->processed = job->failed = 0;
	job->interrupted = job->out_of_memory = false;
	job->input_state = KP_WM_INPUT_READ;
	v->busy = true;
	v->interrupted_ms = 0;
	/*
	 * A checkpoint claims the outputs written so far: those of fsync=always
	 * topics must be on disk first, or a crash could lose outputs whose
	 * inputs the checkpoint counts as done. Nothing runs meanwhile (busy).
	 */
	v->ckpt_waits_sync = kind == PV_JOB_CHECKPOINT && !outputs_durable(v);
	if (!v->ckpt_waits_sync)
		kp_pv_worker_send(v);
}

bool kp_pv_checkpoint_async(struct proc_version *v)
{
	if (v->busy || v->wk == NULL || !v->inst_started ||
	    (v->role == PV_SCRATCH && !v->committed) ||
	    kp_pv_capture_checkpoint(v, &v->job.ckpt) != 0)
		return false;
	v->since_checkpoint = 0;
	v->last_checkpoint_ms = v->owner->now_ms();
	job_submit(v, PV_JOB_CHECKPOINT);
	return true;
}

/* init cannot even be asked for: it fails at once, as a failed init would. */
static void init_refused(struct proc_version *v, int rc, const char *msg)
{
	v->job.kind = PV_JOB_INIT;
	v->job.rc = rc;
	kp_error_set(&v->job.err, rc, "%s", msg);
	v->busy = true;
	kp_pv_job_done(v);
}

void kp_pv_start(struct proc_version *v, bool write_checkpoint)
{
	struct kp_error err;

	if (v->busy)
		return;
	v->state = PV_STARTING;
	if (v->wk == NULL && kp_pv_open_view(v) != 0) {
		init_refused(v, KP_EDAMAGED, v->view_error);
		return;
	}
	v->job.write_checkpoint = write_checkpoint;
	if (write_checkpoint && kp_pv_capture_checkpoint(v, &v->job.ckpt) != 0)
		v->job.write_checkpoint = false;
	if (v->wk == NULL) {
		/* The view is the worker's from now on. */
		if (v->view != NULL)
			v->vstats = (struct pv_view_stats){
				kp_view_count(v->view), kp_view_bytes(v->view),
				0, kp_view_disk_bytes(v->view), false
			};
		kp_view_delete(v->view);
		v->view = NULL;
		kp_error_clear(&err);
		if (kp_pv_worker_spawn(v, &err) != 0) {
			kp_pv_open_view(v);
			init_refused(v, err.code, err.msg);
			return;
		}
	}
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
	size_t want = v->role == PV_BUILDING ? REPLAY_READ_BYTES : READ_BYTES;
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
	v->job.from_file = !v->send_input && !c->send_next;
	c->send_next = false;
	if (v->job.from_file)
		rc = kp_partition_locate(tp->log, c->offset, want, &v->job.span,
					 &skip_to, &err);
	else
		rc = kp_partition_read(tp->log, c->offset, want, &v->job.raw,
				       &skip_to, &err);
	if (rc == KP_ECORRUPT && skip_to > c->offset) {
		kp_log_error("proc", "processor %s: skipping corrupt batch in %s/%u at %llu",
			     v->proc->def.name, c->topic, c->partition,
			     (unsigned long long)c->offset);
		c->offset = skip_to;
		return false;
	}
	if (rc != 0) {
		kp_pv_set_failed(v, "cannot read input", err.msg);
		return false;
	}
	if (v->job.from_file ? v->job.span.len == 0 : v->job.raw.len == 0)
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
	if (v->busy || v->free_when_idle || v->wk == NULL ||
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

/*
 * A failed partition never makes durable what it took before its fsync
 * failed: the checkpoint that waits for it waits until a restart, and says
 * so, as a refused write does.
 */
static void sync_failed(struct proc_version *v, struct kp_topic_partition *tp)
{
	if (v->blocked[0] != '\0')
		return;
	v->blocked_total++;
	kp_log_error("proc", "processor %s v%u paused: output %s/%u failed before its writes were on disk; it takes writes again once kappad restarts",
		     v->proc->def.name, v->number, tp->topic->name, tp->id);
	snprintf(v->blocked, sizeof(v->blocked),
		 "output %s partition %u cannot take writes: its fsync failed; it takes writes again once kappad restarts",
		 tp->topic->name, tp->id);
}

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
			if (st.failed)
				sync_failed(v, tp);
			else
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
	if (v->busy || v->wk == NULL || v->free_when_idle || !v->inst_started ||
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

void kp_pv_tick(struct proc_version *v, int64_t now_ms, int64_t mono_ms)
{
	kp_pv_worker_watch(v, mono_ms);
	kp_pace_refill(&v->pace, v->rate, mono_ms);
	if (v->ckpt_waits_sync) {
		if (v->wk != NULL && outputs_durable(v)) {
			v->ckpt_waits_sync = false;
			kp_pv_worker_send(v);
		}
		return;
	}
	if ((v->pending != NULL || v->step_pending) && !v->busy &&
	    !kp_pv_retry_pending(v, now_ms))
		return;
	if (maybe_checkpoint(v, now_ms) == 0 && !v->busy)
		kp_pv_kick(v);
}
