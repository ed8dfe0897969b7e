/*
 * proc_status.c - the status and versions maps of a processor
 * (PROTOCOL.md, proc_status and proc_versions).
 */
#include "proc.h"

#include <string.h>

#include "proc_internal.h"
#include "proc_pipeline.h"
#include "proc_version.h"
#include "base/clock.h"

/* ---- one version ------------------------------------------------------ */

uint64_t kp_pv_pack_inputs(struct proc_version *v, struct kp_response *r)
{
	uint64_t total = 0;

	kp_response_key(r, "inputs");
	msgpack_pack_array(&r->pk, v->cursor_count);
	for (uint32_t i = 0; i < v->cursor_count; i++) {
		const struct pv_cursor *c = &v->cursors[i];
		struct kp_topic_partition *tp = kp_pv_find_tp(v->owner, c->topic,
							c->partition);
		struct kp_partition_stats st;
		uint64_t end = 0, lag;

		if (tp != NULL) {
			kp_partition_stats(tp->log, &st);
			end = st.visible_end;
		}
		lag = end > c->offset ? end - c->offset : 0;
		total += lag;
		msgpack_pack_map(&r->pk, 5);
		kp_response_pair_str(r, "topic", c->topic);
		kp_response_pair_u64(r, "partition", c->partition);
		kp_response_pair_u64(r, "offset", c->offset);
		kp_response_pair_u64(r, "end_offset", end);
		kp_response_pair_u64(r, "lag", lag);
	}
	return total;
}

void kp_pv_pack(struct proc_version *v, struct kp_response *r)
{
	uint64_t lag;

	msgpack_pack_map(&r->pk, 16);
	kp_response_pair_u64(r, "version", v->number);
	kp_response_pair_str(r, "role", kp_pv_role_name(v->role));
	kp_response_pair_str(r, "state", kp_pv_state_name(v->state));
	kp_response_pair_str(r, "reason", v->reason[0] ? v->reason : NULL);
	kp_response_pair_u64(r, "revision", v->revision);
	kp_response_pair_str(r, "hash", v->hash);
	kp_response_pair_str(r, "file", v->source);
	kp_response_key(r, "created_ms");
	msgpack_pack_int64(&r->pk, v->created_ms);
	lag = kp_pv_pack_inputs(v, r);
	kp_response_pair_u64(r, "lag", lag);
	kp_response_pair_u64(r, "records_processed", v->processed);
	kp_response_pair_u64(r, "errors", v->errors);
	kp_response_key(r, "outputs");
	msgpack_pack_array(&r->pk, v->output_count);
	for (uint32_t i = 0; i < v->output_count; i++)
		kp_response_str(r, v->outputs[i], strlen(v->outputs[i]));
	kp_response_pair_u64(r, "rate", v->rate);
	kp_proc_pack_revisions(v->proc, v, r);
}

/* ---- status ----------------------------------------------------------- */

static const char *proc_state(struct kp_proc *p)
{
	if (p->live == NULL)
		return "failed";
	if ((p->def.paused || p->live->blocked[0] ||
	     kp_pv_checkpoint_blocked(p->live)) &&
	    p->live->state == PV_RUNNING)
		return "paused";
	return kp_pv_state_name(p->live->state);
}

/*
 * The records/s a replay reports: the smoothed rate, or before the first
 * whole second an estimate since it started (0 before 100 ms), never above
 * its rate limit.
 */
static uint64_t replay_rps(const struct kp_proc *p,
			   const struct proc_version *b)
{
	int64_t ms = kp_clock_mono_ms() - p->replay_last_ms;
	uint64_t rps = p->replay_rate_rps;

	if (rps == 0 && p->replay_last_ms != 0 && ms >= 100 &&
	    b->processed >= p->replay_last_processed)
		rps = (b->processed - p->replay_last_processed) * 1000 /
		      (uint64_t)ms;
	return kp_proc_rate_capped(rps, b->rate);
}

static void pack_replay(struct kp_proc *p, struct kp_response *r)
{
	struct proc_version *b = p->building;
	uint64_t to_go, eta = 0, rps;

	kp_response_key(r, "replay");
	if (b == NULL) {
		msgpack_pack_nil(&r->pk);
		return;
	}
	to_go = kp_pv_lag(b);
	rps = replay_rps(p, b);
	if (rps > 0)
		eta = to_go * 1000 / rps;
	msgpack_pack_map(&r->pk, 9);
	kp_response_pair_u64(r, "version", b->number);
	kp_response_pair_str(r, "state", kp_pv_state_name(b->state));
	kp_response_pair_str(r, "reason", b->reason[0] ? b->reason : NULL);
	kp_response_pair_u64(r, "records_done", b->processed);
	kp_response_pair_u64(r, "records_to_go", to_go);
	kp_response_pair_u64(r, "records_per_second", rps);
	kp_response_pair_u64(r, "eta_ms", eta);
	kp_response_pair_u64(r, "rate_limit", b->rate);
	kp_response_pair_str(r, "scheduling", b->wk_idle ? "idle" : "normal");
}

/*
 * checkpoint: {at_ms (0: none yet), duration_ms, failures, error}; and the
 * view's memory and disk.
 */
static void pack_checkpoint(struct proc_version *v, struct kp_response *r)
{
	kp_response_key(r, "checkpoint");
	if (v == NULL) {
		msgpack_pack_nil(&r->pk);
	} else {
		msgpack_pack_map(&r->pk, 4);
		kp_response_key(r, "at_ms");
		msgpack_pack_int64(&r->pk, v->checkpointed_ms);
		kp_response_key(r, "duration_ms");
		msgpack_pack_int64(&r->pk, v->checkpoint_cost_ms);
		kp_response_pair_u64(r, "failures", v->checkpoint_failures);
		kp_response_pair_str(r, "error",
				     v->checkpoint_error[0] ? v->checkpoint_error
							    : NULL);
	}
	kp_response_pair_u64(r, "view_cache_bytes",
			     v ? kp_pv_view_stats(v).cache_used : 0);
	kp_response_pair_u64(r, "view_disk_bytes",
			     v ? kp_pv_view_stats(v).disk_bytes : 0);
}

/*
 * worker: {pid (0: none), rss_anon_bytes, failures, last_failure}: the
 * live version's worker process and the ones that died or were killed.
 */
static void pack_worker(struct proc_version *v, struct kp_response *r)
{
	kp_response_key(r, "worker");
	if (v == NULL) {
		msgpack_pack_nil(&r->pk);
		return;
	}
	msgpack_pack_map(&r->pk, 4);
	kp_response_pair_u64(r, "pid", (uint64_t)kp_pv_worker_pid(v));
	kp_response_pair_u64(r, "rss_anon_bytes", v->wk ? v->rss_anon : 0);
	kp_response_pair_u64(r, "failures", v->worker_failures);
	kp_response_pair_str(r, "last_failure",
			     v->worker_failure[0] ? v->worker_failure : NULL);
}

void kp_proc_pack_status(struct kp_proc *p, struct kp_response *r)
{
	struct proc_version *v = p->live;
	char dlq[256], stalled[KP_ERROR_MSG_MAX], ckpt[KP_ERROR_MSG_MAX];
	uint64_t lag = 0;
	const char *reason = p->def.paused ? p->def.pause_reason
			     : v && v->blocked[0] ? v->blocked
			     : v && v->reason[0] ? v->reason : NULL;

	if (v != NULL && kp_pv_checkpoint_blocked(v) && !p->def.paused &&
	    !v->blocked[0]) {
		snprintf(ckpt, sizeof(ckpt),
			 "cannot checkpoint: %s; its view's changes fill view_cache_bytes, so it waits and resumes by itself once a checkpoint commits",
			 v->checkpoint_error);
		reason = ckpt;
	}
	kp_proc_def_dlq(&p->def, dlq, sizeof(dlq));
	msgpack_pack_map(&r->pk, 29);
	kp_response_pair_str(r, "name", p->def.name);
	kp_response_pair_str(r, "file", v ? v->source : p->def.source);
	kp_response_pair_str(r, "lang", v && v->code ? v->code->lang : NULL);
	kp_response_pair_u64(r, "version", v ? v->number : 0);
	kp_response_pair_u64(r, "revision", v ? v->revision : 0);
	kp_response_pair_str(r, "hash", v ? v->hash : NULL);
	kp_response_pair_str(r, "state", proc_state(p));
	kp_response_pair_str(r, "reason", reason && reason[0] ? reason : NULL);
	if (v != NULL) {
		lag = kp_pv_pack_inputs(v, r);
	} else {
		kp_response_key(r, "inputs");
		msgpack_pack_array(&r->pk, 0);
	}
	kp_response_key(r, "outputs");
	msgpack_pack_array(&r->pk, p->def.output_count);
	for (uint32_t i = 0; i < p->def.output_count; i++)
		kp_response_str(r, p->def.outputs[i],
				strlen(p->def.outputs[i]));
	kp_response_pair_str(r, "dlq", dlq);
	kp_response_pair_u64(r, "lag", lag);
	kp_response_pair_u64(r, "records_processed", v ? v->processed : 0);
	kp_response_pair_u64(r, "errors", v ? v->errors : 0);
	kp_response_pair_u64(r, "dead_lettered", v ? v->dead_lettered : 0);
	kp_response_pair_u64(r, "duplicates_suppressed", v ? v->suppressed : 0);
	kp_response_pair_str(r, "last_error", v && v->last_error[0] ? v->last_error : NULL);
	kp_response_pair_u64(r, "view_keys", v ? kp_pv_view_stats(v).keys : 0);
	kp_response_pair_u64(r, "view_bytes", v ? kp_pv_view_stats(v).bytes : 0);
	kp_response_key(r, "created_ms");
	msgpack_pack_int64(&r->pk, p->def.created_ms);
	kp_response_key(r, "watch");
	if (p->def.watch)
		msgpack_pack_true(&r->pk);
	else
		msgpack_pack_false(&r->pk);
	kp_response_pair_str(r, "reload_error",
		 v && v->reload_error[0] ? v->reload_error : NULL);
	kp_response_pair_u64(r, "versions", p->version_count);
	pack_replay(p, r);
	pack_checkpoint(v, r);
	pack_worker(v, r);
	kp_response_pair_str(r, "stalled",
			     kp_proc_stalled(p, stalled, sizeof(stalled))
				     ? stalled : NULL);
}

void kp_proc_pack_versions(struct kp_proc *p, struct kp_response *r)
{
	msgpack_pack_array(&r->pk, p->version_count);
	for (uint32_t i = 0; i < p->version_count; i++)
		kp_pv_pack(p->versions[i], r);
}
