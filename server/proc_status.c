/*
 * proc_status.c - the status and versions maps of a processor
 * (PROTOCOL.md, proc_status and proc_versions).
 */
#include "proc.h"

#include <string.h>

#include "proc_internal.h"
#include "proc_version.h"
#include "workers.h"

/* ---- status ----------------------------------------------------------- */

void kp_proc_pack_str(struct kp_response *r, const char *key, const char *value)
{
	kp_response_key(r, key);
	if (value == NULL)
		msgpack_pack_nil(&r->pk);
	else
		kp_response_str(r, value, strlen(value));
}

void kp_proc_pack_u64(struct kp_response *r, const char *key, uint64_t value)
{
	kp_response_key(r, key);
	msgpack_pack_uint64(&r->pk, value);
}

static const char *proc_state(struct kp_proc *p)
{
	if (p->live == NULL)
		return "failed";
	if (p->def.paused && p->live->state == PV_RUNNING)
		return "paused";
	return kp_pv_state_name(p->live->state);
}

static void pack_replay(struct kp_proc *p, struct kp_response *r)
{
	struct proc_version *b = p->building;
	uint64_t to_go, eta = 0;

	kp_response_key(r, "replay");
	if (b == NULL) {
		msgpack_pack_nil(&r->pk);
		return;
	}
	to_go = kp_pv_lag(b);
	if (p->replay_rate_rps == 0) {
		int64_t ms = kp_workers_now_ms() - p->replay_last_ms;

		if (ms >= 100)
			p->replay_rate_rps =
				(b->processed - p->replay_last_processed) *
				1000 / (uint64_t)ms;
	}
	if (p->replay_rate_rps > 0)
		eta = to_go * 1000 / p->replay_rate_rps;
	msgpack_pack_map(&r->pk, 8);
	kp_proc_pack_u64(r, "version", b->number);
	kp_proc_pack_str(r, "state", kp_pv_state_name(b->state));
	kp_proc_pack_str(r, "reason", b->reason[0] ? b->reason : NULL);
	kp_proc_pack_u64(r, "records_done", b->processed);
	kp_proc_pack_u64(r, "records_to_go", to_go);
	kp_proc_pack_u64(r, "records_per_second", p->replay_rate_rps);
	kp_proc_pack_u64(r, "eta_ms", eta);
	kp_proc_pack_u64(r, "rate_limit", b->rate);
}

void kp_proc_pack_status(struct kp_proc *p, struct kp_response *r)
{
	struct proc_version *v = p->live;
	char dlq[256];
	uint64_t lag = 0;
	const char *reason = p->def.paused ? p->def.pause_reason
			     : v && v->reason[0] ? v->reason : NULL;

	kp_proc_def_dlq(&p->def, dlq, sizeof(dlq));
	msgpack_pack_map(&r->pk, 24);
	kp_proc_pack_str(r, "name", p->def.name);
	kp_proc_pack_str(r, "file", v ? v->source : p->def.source);
	kp_proc_pack_str(r, "lang", v && v->code ? v->code->lang : NULL);
	kp_proc_pack_u64(r, "version", v ? v->number : 0);
	kp_proc_pack_u64(r, "revision", v ? v->revision : 0);
	kp_proc_pack_str(r, "hash", v ? v->hash : NULL);
	kp_proc_pack_str(r, "state", proc_state(p));
	kp_proc_pack_str(r, "reason", reason && reason[0] ? reason : NULL);
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
	kp_proc_pack_str(r, "dlq", dlq);
	kp_proc_pack_u64(r, "lag", lag);
	kp_proc_pack_u64(r, "records_processed", v ? v->processed : 0);
	kp_proc_pack_u64(r, "errors", v ? v->errors : 0);
	kp_proc_pack_u64(r, "dead_lettered", v ? v->dead_lettered : 0);
	kp_proc_pack_u64(r, "duplicates_suppressed", v ? v->suppressed : 0);
	kp_proc_pack_str(r, "last_error", v && v->last_error[0] ? v->last_error : NULL);
	kp_proc_pack_u64(r, "view_keys", kp_proc_view(p) ? kp_view_count(kp_proc_view(p)) : 0);
	kp_proc_pack_u64(r, "view_bytes", kp_proc_view(p) ? kp_view_bytes(kp_proc_view(p)) : 0);
	kp_response_key(r, "created_ms");
	msgpack_pack_int64(&r->pk, p->def.created_ms);
	kp_response_key(r, "watch");
	if (p->def.watch)
		msgpack_pack_true(&r->pk);
	else
		msgpack_pack_false(&r->pk);
	kp_proc_pack_str(r, "reload_error",
		 v && v->reload_error[0] ? v->reload_error : NULL);
	kp_proc_pack_u64(r, "versions", p->version_count);
	pack_replay(p, r);
}

void kp_proc_pack_versions(struct kp_proc *p, struct kp_response *r)
{
	msgpack_pack_array(&r->pk, p->version_count);
	for (uint32_t i = 0; i < p->version_count; i++)
		kp_pv_pack(p->versions[i], r);
}
