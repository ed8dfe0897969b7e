/*
 * proc_revision.c - the revisions of a processor's versions and rollback
 * along them.
 *
 * A version's first code is its revision 1; every hot reload that takes
 * effect adds the next one, noting the revision that was live before it.
 * The definition keeps them all (proc_def.h), each with its
 * content-addressed copy under <data>/code, which nothing deletes, so any
 * revision can run again. A rollback either swaps the live version's code
 * back to an earlier revision between two batches, through the reload
 * machinery (the view and the cursors stay), or makes another version live
 * with its own view and outputs (the cut-over in reverse); the version's
 * current revision is then the one gone back to, in memory and on disk.
 *
 * Access pattern: rare admin operations on the loop thread.
 */
#include "proc.h"

#include <stdio.h>
#include <string.h>

#include "proc_internal.h"
#include "proc_version.h"
#include "base/clock.h"
#include "base/logging.h"
#include "wire/slot.h"

/* ---- recording -------------------------------------------------------- */

void kp_proc_revision_first(struct kp_proc *p, struct kp_proc_def_version *dv)
{
	if (kp_proc_def_revision_note(dv, 0, dv->created_ms) != 0)
		kp_log_error("proc", "processor %s v%u: out of memory for its revisions",
			     p->def.name, dv->number);
}

/* One past the highest revision number dv ever had. */
static uint32_t next_revision(const struct kp_proc_def_version *dv)
{
	uint32_t n = dv->revision;

	for (uint32_t i = 0; i < dv->revision_count; i++) {
		if (dv->revisions[i].revision > n)
			n = dv->revisions[i].revision;
	}
	return n + 1;
}

/* Copies v's code (source, copy, hash, revision) into its entry dv. */
static void def_set_code(struct kp_proc_def_version *dv,
			 const struct proc_version *v)
{
	snprintf(dv->source, sizeof(dv->source), "%s", v->source);
	snprintf(dv->code, sizeof(dv->code), "%s", v->code->loaded_path);
	snprintf(dv->hash, sizeof(dv->hash), "%s", v->hash);
	dv->revision = v->revision;
}

void kp_proc_revision_reloaded(struct kp_proc *p, struct proc_version *v,
			       int rc)
{
	struct kp_proc_def_version *dv = kp_proc_def_version(&p->def, v->number);
	uint32_t back_to = p->reload_revision, previous;

	p->reload_revision = 0;
	if (rc != 0 || dv == NULL)
		return;
	previous = dv->revision;
	snprintf(v->source, sizeof(v->source), "%s", p->reload_source);
	v->revision = back_to != 0 ? back_to : next_revision(dv);
	def_set_code(dv, v);
	if (back_to == 0 &&
	    kp_proc_def_revision_note(dv, previous, p->owner->now_ms()) != 0)
		kp_log_error("proc", "processor %s v%u: out of memory for its revisions",
			     p->def.name, v->number);
	snprintf(p->def.source, sizeof(p->def.source), "%s", v->source);
	kp_proc_save_def(p);
	if (back_to != 0)
		kp_log_info("proc", "processor %s v%u: rolled back from revision %u to %u (code %s)",
			    p->def.name, v->number, previous, v->revision,
			    v->hash);
	else
		kp_log_info("proc", "processor %s v%u reloaded: revision %u, code %s",
			    p->def.name, v->number, v->revision, v->hash);
}

void kp_proc_revision_watch_hash(struct kp_proc *p, struct proc_version *v,
				 char hash[17])
{
	struct kp_proc_def_version *dv = kp_proc_def_version(&p->def, v->number);

	snprintf(hash, 17, "%s", v->hash);
	for (uint32_t i = 0; dv != NULL && i < dv->revision_count; i++) {
		if (strcmp(dv->revisions[i].source, v->source) == 0)
			snprintf(hash, 17, "%s", dv->revisions[i].hash);
	}
}

/* ---- listing ---------------------------------------------------------- */

/*
 * The version live before dv's: recorded when its replay began; for a
 * definition written before that was recorded, the newest version below.
 */
static struct kp_proc_def_version *previous_version(
	struct kp_proc *p, const struct kp_proc_def_version *dv)
{
	struct kp_proc_def_version *best = NULL;

	if (dv->previous_version != 0)
		return kp_proc_def_version(&p->def, dv->previous_version);
	for (uint32_t i = 0; i < p->def.version_count; i++) {
		struct kp_proc_def_version *o = &p->def.versions[i];

		if (o->number < dv->number &&
		    (best == NULL || o->number > best->number))
			best = o;
	}
	return best;
}

static void pack_uint_or_nil(struct kp_response *r, const char *key,
			     uint32_t n)
{
	kp_response_key(r, key);
	if (n == 0)
		msgpack_pack_nil(&r->pk);
	else
		msgpack_pack_uint32(&r->pk, n);
}

void kp_proc_pack_revisions(struct kp_proc *p, struct proc_version *v,
			    struct kp_response *r)
{
	struct kp_proc_def_version *dv = kp_proc_def_version(&p->def, v->number);
	struct kp_proc_def_version *pv = dv ? previous_version(p, dv) : NULL;

	pack_uint_or_nil(r, "previous_version", pv ? pv->number : 0);
	kp_response_key(r, "revisions");
	msgpack_pack_array(&r->pk, dv ? dv->revision_count : 0);
	for (uint32_t i = 0; dv != NULL && i < dv->revision_count; i++) {
		const struct kp_proc_def_revision *rev = &dv->revisions[i];

		msgpack_pack_map(&r->pk, 5);
		kp_response_pair_u64(r, "revision", rev->revision);
		pack_uint_or_nil(r, "previous", rev->previous);
		kp_response_pair_str(r, "hash", rev->hash);
		kp_response_pair_str(r, "file", rev->source);
		kp_response_key(r, "created_ms");
		msgpack_pack_int64(&r->pk, rev->created_ms);
	}
}

/* ---- rollback --------------------------------------------------------- */

/* Where a rollback goes: a version's entry and one of its revisions. */
struct target {
	struct kp_proc_def_version *dv;
	struct kp_proc_def_revision *rev;
};

static struct proc_version *find_version(struct kp_proc *p, uint32_t n)
{
	for (uint32_t i = 0; i < p->version_count; i++) {
		if (p->versions[i]->number == n)
			return p->versions[i];
	}
	return NULL;
}

/* The last change undone: the revision loaded over, else the version. */
static int default_target(struct kp_proc *p, struct target *t,
			  struct kp_error *err)
{
	struct proc_version *live = p->live;
	struct kp_proc_def_version *dv =
		live ? kp_proc_def_version(&p->def, live->number) : NULL;
	struct kp_proc_def_revision *cur =
		dv ? kp_proc_def_revision(dv, dv->revision) : NULL;

	if (dv == NULL)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s has no live version; name the version to roll back to",
				    p->def.name);
	t->dv = dv;
	t->rev = cur && cur->previous ? kp_proc_def_revision(dv, cur->previous)
				      : NULL;
	if (t->rev != NULL)
		return 0;
	t->dv = previous_version(p, dv);
	if (t->dv == NULL && dv->previous_version != 0)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s: nothing to roll back to: v%u, live before v%u, was removed by proc gc",
				    p->def.name, dv->previous_version,
				    dv->number);
	if (t->dv == NULL)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s: nothing to roll back: v%u.%u is its first code",
				    p->def.name, dv->number, dv->revision);
	t->rev = kp_proc_def_revision(t->dv, t->dv->revision);
	if (t->rev == NULL)
		return kp_error_set(err, KP_ENOTFOUND,
				    "processor %s: v%u has no record of its revision %u",
				    p->def.name, t->dv->number, t->dv->revision);
	return 0;
}

static int named_target(struct kp_proc *p, uint32_t version,
			uint32_t revision, struct target *t,
			struct kp_error *err)
{
	t->dv = kp_proc_def_version(&p->def, version);
	if (t->dv == NULL)
		return kp_error_set(err, KP_ENOTFOUND,
				    "processor %s has no version %u (proc versions lists them)",
				    p->def.name, version);
	t->rev = kp_proc_def_revision(t->dv, revision ? revision
						       : t->dv->revision);
	if (t->rev == NULL)
		return kp_error_set(err, KP_ENOTFOUND,
				    "processor %s v%u has no revision %u (proc versions lists them)",
				    p->def.name, version, revision);
	return 0;
}

/*
 * Refuses a target that cannot become live now; *busy: only because it is
 * still finishing a batch (worth waiting for).
 */
static int check_target(struct kp_proc *p, struct proc_version *k,
			const struct target *t, bool *busy,
			struct kp_error *err)
{
	struct proc_version *live = p->live;

	if (k == NULL)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s: v%u cannot run again (its thread is stuck)",
				    p->def.name, t->dv->number);
	if (k->role == PV_BUILDING)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s: v%u is a failed replay; remove it with proc gc",
				    p->def.name, k->number);
	if (k == live && t->rev->revision == k->revision)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s: v%u.%u is already live",
				    p->def.name, k->number, k->revision);
	if ((k->busy && (k != live || !k->inst_started)) ||
	    (k != live && k->retire_when_idle)) {
		*busy = true;
		return kp_error_set(err, KP_ESTATE,
				    "processor %s: v%u was still finishing its last batch after %d s",
				    p->def.name, k->number,
				    KP_PROC_ROLLBACK_WAIT_MS / 1000);
	}
	return 0;
}

/* Gives k the code of revision rev (loaded from its copy) and records it. */
static int take_code(struct kp_proc *p, struct proc_version *k,
		     struct kp_proc_def_version *dv,
		     const struct kp_proc_def_revision *rev,
		     struct kp_error *err)
{
	struct kp_proc_code *code;
	int rc = kp_proc_code_stage(rev->code, NULL, &code, err);

	if (rc != 0)
		return rc;
	kp_proc_code_unref(k->code);
	k->code = code;
	k->revision = rev->revision;
	snprintf(k->hash, sizeof(k->hash), "%s", code->hash);
	snprintf(k->source, sizeof(k->source), "%s", rev->source);
	def_set_code(dv, k);
	return 0;
}

/*
 * Another version becomes live at revision rev: from its checkpoint (view
 * and cursors), with the code of rev; the live one is retired.
 */
static int switch_version(struct kp_proc *p, struct proc_version *k,
			  const struct target *t, struct kp_error *err)
{
	struct proc_version *cur = p->live;
	uint32_t from_rev = cur ? cur->revision : 0;
	struct kp_checkpoint ck;
	int have, rc;

	have = kp_pv_load_checkpoint(k, &ck, err);
	if (have < 0)
		return err->code;
	if (have == 0)
		kp_pv_set_cursors(k, &ck);
	kp_checkpoint_destroy(&ck);
	rc = take_code(p, k, t->dv, t->rev, err);
	if (rc != 0) {
		if (k->view != NULL)
			kp_view_discard(k->view);
		return rc;
	}
	k->role = PV_LIVE;
	k->retire_when_idle = false;
	p->live = k;
	kp_proc_def_set_role(p, k->number, "live");
	if (cur != NULL)
		kp_proc_def_set_role(p, cur->number, "retired");
	snprintf(p->def.source, sizeof(p->def.source), "%s", k->source);
	kp_proc_save_def(p);
	kp_proc_point_aliases(p, k);
	if (cur != NULL) {
		kp_proc_retire(p, cur);
		kp_proc_wake_readers(p, cur);
	}
	kp_log_info("proc", "processor %s: rolled back from v%u.%u to v%u.%u",
		    p->def.name, cur ? cur->number : 0, from_rev, k->number,
		    k->revision);
	kp_pv_start(k, false);
	return 0;
}

/*
 * The live version goes back to revision rev. Running: the code is loaded
 * now and swapped between two batches like a reload (answered then). Not
 * running (its code failed to start): it starts again with rev's code.
 */
static int swap_revision(struct kp_proc *p, struct proc_version *v,
			 const struct target *t, struct kp_slot *slot,
			 struct kp_error *err)
{
	struct kp_slot *held = NULL;
	int rc;

	if (!v->inst_started) {
		rc = take_code(p, v, t->dv, t->rev, err);
		if (rc != 0)
			return rc;
		snprintf(p->def.source, sizeof(p->def.source), "%s", v->source);
		kp_proc_save_def(p);
		kp_log_info("proc", "processor %s v%u: starting again at revision %u",
			    p->def.name, v->number, v->revision);
		kp_pv_start(v, false);
		kp_proc_hold(&held, slot);
		kp_proc_answer(&held, p, 0, NULL);
		return 0;
	}
	rc = kp_proc_code_stage(t->rev->code, NULL, &p->reload_code, err);
	if (rc != 0)
		return rc;
	snprintf(p->reload_source, sizeof(p->reload_source), "%s",
		 t->rev->source);
	p->reload_revision = t->rev->revision;
	kp_proc_hold(&p->reload_slot, slot);
	kp_proc_launch_reload(p);
	return 0;
}

/*
 * One attempt at a rollback (kp_proc_rollback); *busy: it failed only
 * because a version was still busy, so that waiting may help.
 */
static int try_rollback(struct kp_proc *p, uint32_t to_version,
			uint32_t to_revision, struct kp_slot *slot, bool *busy,
			struct kp_error *err)
{
	struct kp_slot *held = NULL;
	struct proc_version *k;
	struct target t = { NULL, NULL };
	int rc;

	*busy = false;
	if (p->building != NULL && p->building->state != PV_FAILED)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s: replay v%u is running; wait for it or delete it with proc gc after it fails",
				    p->def.name, p->building->number);
	if (p->reload_slot != NULL || p->reload_code != NULL ||
	    (p->live != NULL && p->live->busy &&
	     p->live->job.kind == PV_JOB_RELOAD)) {
		*busy = true;
		return kp_error_set(err, KP_ESTATE,
				    "processor %s: a reload was still in progress after %d s",
				    p->def.name, KP_PROC_ROLLBACK_WAIT_MS / 1000);
	}
	rc = to_version != 0 ? named_target(p, to_version, to_revision, &t, err)
			     : default_target(p, &t, err);
	if (rc != 0)
		return rc;
	k = find_version(p, t.dv->number);
	rc = check_target(p, k, &t, busy, err);
	if (rc != 0)
		return rc;
	if (k == p->live)
		return swap_revision(p, k, &t, slot, err);
	rc = switch_version(p, k, &t, err);
	if (rc != 0)
		return rc;
	kp_proc_hold(&held, slot);
	kp_proc_answer(&held, p, 0, NULL);
	return 0;
}

int kp_proc_rollback(struct kp_proc *p, uint32_t to_version,
		     uint32_t to_revision, struct kp_slot *slot,
		     struct kp_error *err)
{
	bool busy;
	int rc;

	if (p->rollback_slot != NULL)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s: another rollback is waiting for its version",
				    p->def.name);
	rc = try_rollback(p, to_version, to_revision, slot, &busy, err);
	if (rc == 0 || !busy)
		return rc;
	/* Waits for the version, tried again at every tick. */
	kp_error_clear(err);
	kp_proc_hold(&p->rollback_slot, slot);
	p->rollback_version = to_version;
	p->rollback_revision = to_revision;
	p->rollback_deadline = kp_clock_mono_ms() + KP_PROC_ROLLBACK_WAIT_MS;
	return 0;
}

void kp_proc_rollback_retry(struct kp_proc *p, int64_t now_mono_ms)
{
	struct kp_error err;
	bool busy;
	int rc;

	if (p->rollback_slot == NULL)
		return;
	kp_error_clear(&err);
	rc = try_rollback(p, p->rollback_version, p->rollback_revision,
			  p->rollback_slot, &busy, &err);
	if (rc != 0 && busy && now_mono_ms < p->rollback_deadline)
		return;
	if (rc != 0) {
		kp_proc_answer(&p->rollback_slot, p, rc, err.msg);
		return;
	}
	/* Done: the attempt answered the slot or holds it until it has. */
	kp_proc_release(&p->rollback_slot);
}
