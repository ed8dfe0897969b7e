/*
 * proc_worker.c - a version's worker process (proc_version.h): starting
 * it, sending it jobs and queries, taking its results, and what happens
 * when it dies, stops making progress or grows past its memory limit.
 *
 * A version runs its code only in its worker (wk_exec.h); kappad keeps the
 * cursors, the outputs and the decisions. While the worker runs, the view
 * is the worker's (v->view is NULL); when the worker is gone, kappad opens
 * the view's store again at its last checkpoint and the version's
 * positions go back to that checkpoint, as after a crash of the server,
 * so that nothing the dead worker did counts.
 */
#include "proc_version.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "wk_client.h"
#include "wk_msg.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/logging.h"
#include "base/mp.h"
#include "log/batch.h"
#include "log/topic.h"
#include "wire/slot.h"

#define RUNTIME_ALLOWANCE (32ull << 20) /* the worker's own memory */
#define RSS_CHECK_MS 100
#define PAUSE_WAIT_MS 800    /* a pause waits this long for the call */
#define MIB (1024.0 * 1024.0)

static uint64_t cache_bytes(const struct proc_version *v)
{
	return v->owner->view_cache_bytes ? v->owner->view_cache_bytes
					  : KP_VIEW_DEFAULT_CACHE_BYTES;
}

/* The memory a worker may hold: the processor's, its view's table, its own. */
static uint64_t memory_ceiling(const struct proc_version *v)
{
	uint64_t limit = v->proc->def.memory_limit;

	if (limit == 0)
		return 0;
	return limit + cache_bytes(v) + RUNTIME_ALLOWANCE;
}

/* ---- results ------------------------------------------------------------ */

static void read_stats(struct proc_version *v, struct kp_wm_reader *r)
{
	v->vstats.keys = kp_wm_get_u64(r);
	v->vstats.bytes = kp_wm_get_u64(r);
	v->vstats.cache_used = kp_wm_get_u64(r);
	v->vstats.disk_bytes = kp_wm_get_u64(r);
	v->vstats.cache_full = kp_wm_get_u8(r) != 0;
}

static void copy_bytes(struct kp_wm_reader *r, struct kp_buf *out)
{
	size_t len;
	const char *p = kp_wm_get_bytes(r, &len);

	kp_buf_reset(out);
	kp_buf_append(out, p, len);
}

static const uint8_t frame_of[PV_JOB_RELOAD + 1];

/* A value a worker emitted must be one msgpack object: readers decode it. */
static bool one_object(const struct kp_emit *e)
{
	struct kp_mp_view obj;

	return kp_mp_validate_one(e->value, e->value_len, &obj) == 0;
}

/*
 * Checks what a worker sent back for a batch before anything of it is
 * written: its positions inside the batch it was given, its emits and
 * dead letters whole, as many as it says, each value one msgpack object.
 * A worker runs untrusted code: a result that fails is not its
 * processor's doing but a broken or hostile process. Returns NULL, or
 * what is wrong.
 */
/*
 * One past the last offset of the batches a job was given. Of a span the
 * worker reads itself, the span's end offset: a worker may claim to have
 * read more of it than the span's bytes hold, which only skips inputs of
 * its own processor (as a processor that ignores records may).
 */
static uint64_t raw_end(const struct pv_job *job)
{
	uint64_t end = job->start_offset;
	size_t pos = 0;
	struct kp_batch_header h;

	if (job->from_file)
		return job->span.end_offset;
	while (pos < job->raw.len &&
	       kp_batch_header_decode(job->raw.data + pos, job->raw.len - pos,
				      &h) == 0 &&
	       h.batch_len <= job->raw.len - pos) {
		end = kp_batch_next_offset(&h);
		pos += h.batch_len;
	}
	return end;
}

static const char *batch_result_wrong(const struct pv_job *job)
{
	struct kp_emit e;
	size_t pos = 0;
	uint32_t n = 0;
	int rc;

	if (job->next_offset < job->start_offset ||
	    job->next_offset > job->stop_offset ||
	    job->next_offset > raw_end(job))
		return "a position outside its batch";
	if (job->failed > job->processed ||
	    job->processed > job->next_offset - job->start_offset)
		return "more records than its batch holds";
	while ((rc = kp_emits_next(&job->emits, &pos, &e)) == 1) {
		if (!one_object(&e) ||
		    !kp_topic_name_valid(e.topic, e.topic_len) ||
		    e.offset < job->start_offset ||
		    e.offset >= job->next_offset)
			return "an emit that is not a record of its batch";
		n++;
	}
	if (rc < 0 || n != job->emit_count)
		return "cut or miscounted emits";
	pos = 0;
	n = 0;
	while ((rc = kp_dlq_next(&job->dlq, &pos, &e)) == 1) {
		if (!one_object(&e))
			return "a dead letter that is not one msgpack object";
		n++;
	}
	if (rc < 0 || n != job->dlq_count)
		return "cut or miscounted dead letters";
	return NULL;
}

static void on_result(void *arg, struct kp_wm_reader *r)
{
	struct proc_version *v = arg;
	struct pv_job *job = &v->job;
	uint8_t kind = kp_wm_get_u8(r);
	char msg[KP_ERROR_MSG_MAX];
	const char *wrong;

	if (!v->busy)
		return;
	job->rc = (int)kp_wm_get_u32(r);
	kp_wm_get_str(r, msg, sizeof(msg));
	read_stats(v, r);
	switch (kind) {
	case KP_WM_BATCH:
		job->processed = kp_wm_get_u32(r);
		job->failed = kp_wm_get_u32(r);
		job->next_offset = kp_wm_get_u64(r);
		job->interrupted = kp_wm_get_u8(r) != 0;
		job->out_of_memory = kp_wm_get_u8(r) != 0;
		kp_wm_get_str(r, job->last_error, sizeof(job->last_error));
		copy_bytes(r, &job->emits);
		job->emit_count = kp_wm_get_u32(r);
		copy_bytes(r, &job->dlq);
		job->dlq_count = kp_wm_get_u32(r);
		job->input_state = kp_wm_get_u8(r);
		kp_wm_get_str(r, job->input_error, sizeof(job->input_error));
		if (!job->from_file || job->input_state > KP_WM_INPUT_UNREADABLE)
			job->input_state = KP_WM_INPUT_READ;
		if (job->rc != 0) {
			/* A batch that failed as a whole emitted nothing. */
			job->next_offset = job->start_offset;
			job->processed = job->failed = 0;
			kp_buf_reset(&job->emits);
			kp_buf_reset(&job->dlq);
			job->emit_count = job->dlq_count = 0;
		}
		break;
	case KP_WM_CHECKPOINT:
		job->ckpt_ms = (int64_t)kp_wm_get_u64(r);
		kp_error_set(&job->err_ckpt, job->rc, "%s", msg);
		break;
	default:
		break;
	}
	kp_error_set(&job->err, job->rc, "%s", msg);
	wrong = r->bad ? "a frame cut short"
	      : kind != frame_of[job->kind] ? "the answer to another job"
	      : kind == KP_WM_BATCH ? batch_result_wrong(job)
	      : NULL;
	if (wrong != NULL) {
		char why[KP_ERROR_MSG_MAX];

		snprintf(why, sizeof(why),
			 "its worker process sent a malformed result (%s) and was killed",
			 wrong);
		kp_buf_reset(&job->emits);
		kp_buf_reset(&job->dlq);
		job->emit_count = job->dlq_count = 0;
		kp_wk_kill(v->wk, why);
		return;
	}
	kp_pv_job_done(v);
}

static void on_claim(void *arg, uint32_t tag, const char *topic, size_t len)
{
	struct proc_version *v = arg;

	kp_wk_answer_claim(v->wk, tag, kp_pv_claim_topic(v, topic, len));
}

/* Why the worker ended, in words for status and the log. */
static void describe_exit(struct proc_version *v, int64_t status, int sig,
			  const char *why, char *out, size_t cap)
{
	uint64_t ceiling = memory_ceiling(v);

	if (why[0] != '\0')
		snprintf(out, cap, "%s", why);
	else if (sig != 0)
		snprintf(out, cap, "its worker process died (signal %d: %s)%s",
			 sig, kp_wk_signal_name(sig),
			 ceiling > 0 && v->rss_anon * 10 >= ceiling * 8
				 ? "; it was near its memory limit"
				 : "");
	else
		snprintf(out, cap, "its worker process exited with status %lld",
			 (long long)status);
}

static void on_exited(void *arg, int64_t status, int sig, const char *why)
{
	struct proc_version *v = arg;
	char reason[KP_ERROR_MSG_MAX];

	describe_exit(v, status, sig, why, reason, sizeof(reason));
	kp_wk_release(v->wk, 0);
	v->wk = NULL;
	v->worker_failures++;
	snprintf(v->worker_failure, sizeof(v->worker_failure), "%s", reason);
	kp_pv_worker_lost(v, reason);
}

static const struct kp_wk_events events = { on_result, on_claim, on_exited };

/* ---- starting, stopping -------------------------------------------------- */

int kp_pv_worker_spawn(struct proc_version *v, struct kp_error *err)
{
	uint64_t ceiling = memory_ceiling(v);
	int rc;

	bool idle = v->role == PV_BUILDING && kp_wk_may_unidle();

	if (v->wk != NULL)
		return 0;
	rc = kp_wk_spawn(v->owner->loop, ceiling, idle, &events, v, &v->wk,
			 err);
	if (rc != 0)
		return rc;
	v->wk_idle = idle;
	v->rss_anon = v->rss_base = 0;
	v->rss_checked_ms = 0;
	return 0;
}

void kp_pv_worker_to_foreground(struct proc_version *v)
{
	int rc;

	if (v->wk == NULL || !v->wk_idle)
		return;
	v->wk_idle = false;
	rc = kp_wk_set_normal(v->wk);
	if (rc != 0)
		kp_log_warn("proc", "processor %s v%u: its worker stays under SCHED_IDLE: %s",
			    v->proc->def.name, v->number, kp_error_text(rc));
}

void kp_pv_worker_release(struct proc_version *v, uint32_t grace_ms)
{
	if (v->wk == NULL)
		return;
	kp_wk_release(v->wk, grace_ms);
	v->wk = NULL;
}

/* ---- jobs ------------------------------------------------------------- */

static void put_names(struct kp_buf *b, const char *const *names, uint32_t n)
{
	kp_wm_put_u32(b, n);
	for (uint32_t i = 0; i < n; i++)
		kp_wm_put_str(b, names[i]);
}

static void put_checkpoint(struct kp_buf *b, const struct kp_checkpoint *ck)
{
	struct kp_buf enc;

	kp_buf_init(&enc);
	kp_checkpoint_encode(ck, &enc);
	kp_wm_put_bytes(b, enc.data, enc.len);
	kp_buf_destroy(&enc);
}

static void encode_init(struct proc_version *v, struct kp_buf *b)
{
	const struct kp_proc_def *def = &v->proc->def;
	char dir[4200], steps[4200];

	kp_wm_put_str(b, def->name);
	kp_wm_put_str(b, v->code->loaded_path);
	kp_wm_put_bytes(b, def->config.data, def->config.len);
	if (def->open_outputs)
		kp_wm_put_u32(b, UINT32_MAX);
	else
		put_names(b, v->allowed, def->output_count);
	kp_wm_put_u32(b, def->output_count);
	kp_wm_put_u64(b, def->memory_limit);
	kp_wm_put_u32(b, v->owner->max_value_bytes);
	kp_pv_view_dir(v, dir, sizeof(dir));
	kp_wm_put_str(b, dir);
	kp_wm_put_u64(b, cache_bytes(v));
	kp_wm_put_u64(b, v->owner->view_max_bytes);
	kp_steps_path(v->dir, steps, sizeof(steps));
	kp_wm_put_str(b, v->role == PV_SCRATCH ? "" : steps);
	kp_wm_put_u8(b, v->job.write_checkpoint);
	if (v->job.write_checkpoint)
		put_checkpoint(b, &v->job.ckpt);
	else
		kp_wm_put_bytes(b, NULL, 0);
}

/*
 * The input of a batch job: its bytes, or where the worker reads them,
 * with the file's identity (a segment replaced by compaction between here
 * and the worker's open is another file: the worker asks for the bytes).
 */
static void put_input(struct kp_buf *b, const struct pv_job *job)
{
	struct stat st;

	if (!job->from_file) {
		kp_wm_put_u8(b, KP_WM_INPUT_BYTES);
		kp_wm_put_bytes(b, job->raw.data, job->raw.len);
		return;
	}
	if (fstat(job->span.fd, &st) != 0)
		memset(&st, 0, sizeof(st));  /* no identity: the worker asks */
	kp_wm_put_u8(b, KP_WM_INPUT_FILE);
	kp_wm_put_str(b, job->span.path);
	kp_wm_put_u64(b, (uint64_t)st.st_dev);
	kp_wm_put_u64(b, (uint64_t)st.st_ino);
	kp_wm_put_u64(b, job->span.pos);
	kp_wm_put_u64(b, job->span.len);
	kp_wm_put_u64(b, job->span.end_offset);
}

static void encode_batch(struct proc_version *v, struct kp_buf *b)
{
	const struct pv_job *job = &v->job;
	const struct pv_cursor *c = &v->cursors[job->cursor_index];

	kp_wm_put_str(b, c->topic);
	kp_wm_put_u32(b, c->partition);
	kp_wm_put_u64(b, job->start_offset);
	kp_wm_put_u64(b, job->stop_offset);
	kp_wm_put_u64(b, job->window_total);
	kp_wm_put_u64(b, job->window_errors);
	kp_wm_put_u32(b, job->window_min);
	kp_wm_put_f64(b, job->max_error_rate);
	if (v->proc->def.open_outputs)
		put_names(b, v->allowed, v->proc->def.output_count);
	else
		kp_wm_put_u32(b, UINT32_MAX);
	put_input(b, job);
}

static const uint8_t frame_of[PV_JOB_RELOAD + 1] = {
	[PV_JOB_INIT] = KP_WM_INIT,
	[PV_JOB_BATCH] = KP_WM_BATCH,
	[PV_JOB_CHECKPOINT] = KP_WM_CHECKPOINT,
	[PV_JOB_RELOAD] = KP_WM_RELOAD,
};

void kp_pv_worker_send(struct proc_version *v)
{
	struct pv_job *job = &v->job;
	struct kp_buf b;
	size_t start;

	kp_buf_init(&b);
	start = kp_wm_begin(&b, frame_of[job->kind], 0);
	switch (job->kind) {
	case PV_JOB_INIT:
		encode_init(v, &b);
		break;
	case PV_JOB_BATCH:
		encode_batch(v, &b);
		break;
	case PV_JOB_CHECKPOINT:
		put_checkpoint(&b, &job->ckpt);
		break;
	case PV_JOB_RELOAD:
		kp_wm_put_str(&b, job->new_code->loaded_path);
		break;
	}
	kp_wm_finish(&b, start);
	v->job_started_ms = kp_clock_mono_ms();
	kp_wk_send(v->wk, &b);
	kp_buf_destroy(&b);
}

/* ---- the watchdog ------------------------------------------------------- */

/*
 * A job past the time budget is interrupted (an interpreted Lua loop
 * stops there); one still running a budget later is killed with its
 * worker, whatever it is doing. A worker past its memory ceiling is
 * killed too.
 */
void kp_pv_worker_watch(struct proc_version *v, int64_t mono_now)
{
	uint32_t budget = v->proc->def.time_budget_ms;
	uint64_t ceiling = memory_ceiling(v);
	char why[KP_ERROR_MSG_MAX];

	if (v->wk == NULL)
		return;
	if (mono_now - v->rss_checked_ms >= RSS_CHECK_MS) {
		v->rss_checked_ms = mono_now;
		v->rss_anon = kp_wk_rss_anon(v->wk);
		if (ceiling > 0 && v->rss_anon > ceiling) {
			snprintf(why, sizeof(why),
				 "grew past its memory limit (%.0f MiB anonymous memory; memory_limit %.0f MiB + view cache %.0f MiB + %.0f MiB for the runtime); its worker process was killed",
				 v->rss_anon / MIB,
				 v->proc->def.memory_limit / MIB,
				 cache_bytes(v) / MIB,
				 RUNTIME_ALLOWANCE / MIB);
			kp_wk_kill(v->wk, why);
			return;
		}
	}
	if (!v->busy || v->job.kind == PV_JOB_CHECKPOINT)
		return;   /* commits run no processor code */
	if (v->job.kind == PV_JOB_BATCH && v == v->proc->live &&
	    v->proc->def.paused &&
	    mono_now - v->job_started_ms >= PAUSE_WAIT_MS) {
		/* A pause takes effect within a second, whatever runs. */
		v->restart_worker = true;
		kp_wk_kill(v->wk, "paused while a call did not return; its worker process was stopped");
		return;
	}
	if (budget == 0)
		return;
	if (mono_now - v->job_started_ms < (int64_t)budget)
		return;
	if (v->interrupted_ms == 0) {
		kp_log_warn("proc", "processor %s v%u: no progress for %lld ms; interrupting",
			    v->proc->def.name, v->number,
			    (long long)(mono_now - v->job_started_ms));
		v->interrupted_ms = mono_now;
		kp_wk_interrupt(v->wk);
		return;
	}
	if (mono_now - v->interrupted_ms < (int64_t)budget)
		return;
	snprintf(why, sizeof(why),
		 "no progress within the time budget (%u ms), and the call did not return when interrupted; its worker process was killed",
		 budget);
	kp_wk_kill(v->wk, why);
}

/* ---- queries ------------------------------------------------------------ */

static void on_answer(void *arg, int rc, const char *message,
		      const char *resp, size_t resp_len)
{
	struct kp_slot *slot = arg;

	if (rc != 0) {
		kp_slot_set_error(slot, rc, message);
	} else {
		kp_buf_reset(&slot->resp);
		kp_buf_append(&slot->resp, resp, resp_len);
	}
	if (--slot->waits == 0)
		kp_slot_ready(slot);
	kp_slot_unref(slot);
}

void kp_pv_worker_query(struct proc_version *v, struct kp_slot *slot,
			const struct kp_buf *frame, uint32_t tag)
{
	kp_slot_ref(slot);
	slot->waits++;
	kp_wk_query(v->wk, tag, frame, on_answer, slot);
}

uint32_t kp_pv_worker_tag(struct proc_version *v)
{
	return kp_wk_tag(v->wk);
}

int kp_pv_worker_pid(const struct proc_version *v)
{
	return kp_wk_pid(v->wk);
}
