/*
 * proc_ops.c - operations on a processor's versions: hot reload and
 * --watch, blue/green replay, gc, in-place reset, and the entry of verify
 * (proc_verify.c does the comparing; proc_revision.c does rollback).
 */
#include "proc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proc_internal.h"
#include "proc_verify.h"
#include "proc_version.h"
#include "base/clock.h"
#include "base/alloc.h"
#include "base/fsutil.h"
#include "base/logging.h"
#include "wire/slot.h"

#define WATCH_MS 500

/* ---- reload and --watch ----------------------------------------------- */

/* Hands the loaded code to the live version once it is between batches. */
void kp_proc_launch_reload(struct kp_proc *p)
{
	struct proc_version *v = p->live;

	if (p->reload_code == NULL || v == NULL || v->busy)
		return;
	kp_pv_reload(v, p->reload_code);
	kp_proc_code_unref(p->reload_code);
	p->reload_code = NULL;
}

static int start_reload(struct kp_proc *p, const char *file,
			struct kp_error *err)
{
	struct proc_version *v = p->live;
	int rc;

	if (v == NULL || !v->inst_started)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s has no running live version",
				    p->def.name);
	if (p->reload_code != NULL ||
	    (v->busy && v->job.kind == PV_JOB_RELOAD))
		return kp_error_set(err, KP_ESTATE,
				    "a reload of %s is already in progress",
				    p->def.name);
	rc = kp_proc_code_allowed(&p->owner->code_policy, file, true, err);
	if (rc == 0)
		rc = kp_proc_code_stage(file, p->owner->code_dir,
					&p->reload_code, err);
	if (rc == KP_EFORBIDDEN)
		return rc;
	if (rc != 0) {
		snprintf(v->reload_error, sizeof(v->reload_error), "%s",
			 err->msg);
		v->reloads_failed++;
		return KP_EBADREQUEST;
	}
	snprintf(p->reload_source, sizeof(p->reload_source), "%s", file);
	kp_proc_launch_reload(p);
	return 0;
}

int kp_proc_reload(struct kp_proc *p, const char *file, struct kp_slot *slot,
		   struct kp_error *err)
{
	int rc;

	if (p->reload_slot != NULL)
		return kp_error_set(err, KP_ESTATE,
				    "a reload of %s is already in progress",
				    p->def.name);
	rc = start_reload(p, file ? file : p->live ? p->live->source
						   : p->def.source,
			  err);
	if (rc != 0)
		return rc;
	if (slot != NULL)
		kp_proc_hold(&p->reload_slot, slot);
	return 0;
}

int kp_proc_set_watch(struct kp_proc *p, bool on, struct kp_error *err)
{
	(void)err;
	p->def.watch = on;
	p->watch_hash[0] = '\0';
	return kp_proc_save_def(p);
}

void kp_proc_watch_check(struct kp_proc *p, int64_t mono)
{
	struct proc_version *v = p->live;
	struct kp_error err;
	char hash[17];

	if (!p->def.watch || v == NULL || !v->inst_started ||
	    mono - p->watch_checked_ms < WATCH_MS ||
	    p->reload_slot != NULL || p->reload_code != NULL)
		return;
	p->watch_checked_ms = mono;
	if (kp_proc_code_hash_file(v->source, hash) != 0)
		return;
	if (p->watch_hash[0] == '\0')
		kp_proc_revision_watch_hash(p, v, p->watch_hash);
	if (strcmp(hash, p->watch_hash) == 0)
		return;
	snprintf(p->watch_hash, sizeof(p->watch_hash), "%s", hash);
	kp_log_info("proc", "processor %s: %s changed; reloading", p->def.name,
		    v->source);
	if (start_reload(p, v->source, &err) != 0)
		kp_log_warn("proc", "processor %s: reload failed, the old code keeps running: %s",
			    p->def.name, err.msg);
}

/* ---- replay, gc (rollback: proc_revision.c) -------------------------- */

/* Removes a version entirely: its topics (numbers >= 2), files, entry. */
static void drop_version(struct kp_proc *p, struct proc_version *v)
{
	kp_proc_drop_outputs(p, v);
	kp_file_remove_tree(v->dir);
	kp_proc_remove_version(p, v);
	if (p->building == v)
		p->building = NULL;
	kp_proc_free_version(p, v);
}

int kp_proc_replay(struct kp_proc *p, const char *file, enum kp_proc_from from,
		   int64_t value, uint64_t rate, uint32_t *number,
		   struct kp_error *err)
{
	struct proc_version *v;
	uint64_t offset = (uint64_t)value;
	int rc;

	if (p->building != NULL && p->building->state != PV_FAILED)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s: replay v%u is still running",
				    p->def.name, p->building->number);
	if (p->building != NULL)
		drop_version(p, p->building);
	if (p->version_count >= KP_PROC_MAX_VERSIONS)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s has %d versions; remove retired ones with proc gc",
				    p->def.name, KP_PROC_MAX_VERSIONS);
	v = kp_pv_new(p, p->owner, p->def.next_version);
	if (v == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	v->role = PV_BUILDING;
	v->rate = rate;
	v->created_ms = p->owner->now_ms();
	rc = kp_proc_load_code(p, v, file ? file : p->live ? p->live->source
						   : p->def.source, err);
	if (rc == 0)
		rc = kp_proc_ensure_outputs(p, v, err);
	if (rc == 0 && kp_pv_build(v, NULL, from, value, &offset) != 0)
		rc = kp_error_set(err, -ENOMEM, "out of memory");
	if (rc != 0) {
		kp_pv_free(v);
		return rc;
	}
	v->replay_total = kp_pv_lag(v);
	p->def.next_version++;
	kp_proc_add_version(p, v);
	kp_proc_def_add_version(p, v, from, value, "building");
	kp_proc_def_version(&p->def, v->number)->previous_version =
		p->live != NULL ? p->live->number : 0;
	p->building = v;
	p->replay_last_processed = 0;
	p->replay_last_ms = kp_clock_mono_ms();
	p->replay_rate_rps = 0;
	kp_proc_save_def(p);
	kp_log_info("proc", "processor %s: replay v%u started (%llu records to go)",
		    p->def.name, v->number,
		    (unsigned long long)v->replay_total);
	kp_pv_start(v, true);
	*number = v->number;
	return 0;
}

uint64_t kp_proc_rate_capped(uint64_t rps, uint64_t limit)
{
	return limit > 0 && rps > limit ? limit : rps;
}

void kp_proc_replay_rate(struct kp_proc *p, int64_t mono)
{
	struct proc_version *b = p->building;
	uint64_t done, rps;

	if (b == NULL)
		return;
	if (p->replay_last_ms == 0 || b->processed < p->replay_last_processed) {
		/* A replay resumed after a restart: measured from now on. */
		p->replay_last_processed = b->processed;
		p->replay_last_ms = mono;
		return;
	}
	if (mono - p->replay_last_ms < 1000)
		return;
	done = b->processed - p->replay_last_processed;
	rps = done * 1000 / (uint64_t)(mono - p->replay_last_ms);
	p->replay_rate_rps = kp_proc_rate_capped(
		p->replay_rate_rps == 0 ? rps : (p->replay_rate_rps + rps) / 2,
		b->rate);
	p->replay_last_processed = b->processed;
	p->replay_last_ms = mono;
}

int kp_proc_gc(struct kp_proc *p, struct kp_error *err)
{
	int removed = 0;

	(void)err;
	for (uint32_t i = 0; i < p->version_count;) {
		struct proc_version *v = p->versions[i];

		if (v->role == PV_RETIRED ||
		    (v == p->building && v->state == PV_FAILED)) {
			kp_log_info("proc", "processor %s: removing v%u",
				    p->def.name, v->number);
			drop_version(p, v);
			removed++;
			continue;
		}
		i++;
	}
	kp_proc_save_def(p);
	if (removed > 0)
		kp_procs_gc_code(p->owner);
	return removed;
}

/* ---- reset and verify: operations at a batch boundary of the live ----- */

/* The offset (to, value) means in the input partition of cursor c. */
static uint64_t position_for(struct kp_proc *p, const struct pv_cursor *c,
			     enum kp_proc_from to, int64_t value)
{
	struct kp_topic_partition *tp = kp_pv_find_tp(p->owner, c->topic,
						      c->partition);

	return tp != NULL ? kp_pv_position(tp, to, value) : c->offset;
}

static void answer_plan(struct kp_proc *p, struct kp_slot **pslot,
			enum kp_proc_from to, int64_t value, bool executed)
{
	struct proc_version *v = p->live;
	struct kp_slot *slot = *pslot;
	struct kp_response r;

	*pslot = NULL;
	kp_buf_reset(&slot->resp);
	kp_response_begin(&r, &slot->resp, slot->id, 2);
	kp_response_key(&r, "executed");
	if (executed)
		msgpack_pack_true(&r.pk);
	else
		msgpack_pack_false(&r.pk);
	kp_response_key(&r, "plan");
	msgpack_pack_array(&r.pk, v->cursor_count);
	for (uint32_t i = 0; i < v->cursor_count; i++) {
		const struct pv_cursor *c = &v->cursors[i];
		uint64_t target = executed ? c->offset
					   : position_for(p, c, to, value);

		msgpack_pack_map(&r.pk, 4);
		kp_response_pair_str(&r, "topic", c->topic);
		kp_response_pair_u64(&r, "partition", c->partition);
		kp_response_pair_u64(&r, "current", executed ? p->reset_before[i] : c->offset);
		kp_response_pair_u64(&r, "new", target);
	}
	kp_response_finish(&r);
	if (--slot->waits == 0)
		kp_slot_ready(slot);
	kp_slot_unref(slot);
}

static void do_reset(struct kp_proc *p)
{
	struct proc_version *v = p->live;

	for (uint32_t i = 0; i < v->cursor_count; i++) {
		if (i < KP_PROC_MAX_TOPICS * 64)
			p->reset_before[i] = v->cursors[i].offset;
		v->cursors[i].offset = position_for(p, &v->cursors[i],
						    p->pending_from,
						    p->pending_value);
	}
	for (uint32_t i = 0; i < v->mark_count; i++) {
		v->marks[i].suppress = 0;
		v->marks[i].written_count = 0;
	}
	kp_pv_order_reset(v);
	/*
	 * A new, empty store and a fresh worker: the version starts again
	 * from the rewound cursors (also the way out of a damaged store).
	 */
	kp_pv_worker_release(v, 0);
	v->inst_started = false;
	kp_pv_recreate_view(v);
	kp_log_info("proc", "processor %s v%u reset: view cleared, inputs rewound",
		    p->def.name, v->number);
	answer_plan(p, &p->pending_slot, p->pending_from, p->pending_value,
		    true);
	kp_pv_start(v, true);
}

void kp_proc_run_pending(struct kp_proc *p)
{
	int op = p->pending;

	p->pending = PENDING_NONE;
	if (op == PENDING_RESET)
		do_reset(p);
	else if (op == PENDING_VERIFY)
		kp_proc_verify_start(p, p->pending_from, p->pending_value,
				     p->pending_to_set, p->pending_to,
				     &p->pending_slot);
}

int kp_proc_reset(struct kp_proc *p, enum kp_proc_from to, int64_t value,
		  bool execute, struct kp_slot *slot, struct kp_error *err)
{
	struct kp_slot *held = NULL;

	if (p->live == NULL ||
	    (!p->live->inst_started && p->live->view_error[0] == '\0'))
		return kp_error_set(err, KP_ESTATE,
				    "processor %s has no running live version",
				    p->def.name);
	if (p->pending != PENDING_NONE || p->pending_slot != NULL)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s is busy with another reset or verify",
				    p->def.name);
	if (p->live->cursor_count > KP_PROC_MAX_TOPICS * 64)
		return kp_error_set(err, KP_ETOOLARGE, "too many inputs");
	kp_proc_hold(&held, slot);
	if (!execute) {
		answer_plan(p, &held, to, value, false);
		return 0;
	}
	p->pending_slot = held;
	p->pending = PENDING_RESET;
	p->pending_from = to;
	p->pending_value = value;
	if (!p->live->busy)
		kp_proc_run_pending(p);
	return 0;
}

int kp_proc_verify(struct kp_proc *p, enum kp_proc_from from, int64_t value,
		   bool to_set, int64_t to_ts, struct kp_slot *slot,
		   struct kp_error *err)
{
	if (p->live == NULL || !p->live->inst_started)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s has no running live version",
				    p->def.name);
	if (p->pending != PENDING_NONE || p->pending_slot != NULL ||
	    p->scratch != NULL)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s is busy with another reset or verify",
				    p->def.name);
	kp_proc_hold(&p->pending_slot, slot);
	p->pending = PENDING_VERIFY;
	p->pending_from = from;
	p->pending_value = value;
	p->pending_to_set = to_set;
	p->pending_to = to_ts;
	if (!p->live->busy)
		kp_proc_run_pending(p);
	return 0;
}
