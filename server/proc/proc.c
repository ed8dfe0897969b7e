/*
 * proc.c - processors: catalog, versions (create, restart, replay,
 * cut-over, rollback, gc), reload and --watch, reset, pause, status.
 */
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc_internal.h"
#include "proc_verify.h"
#include "proc_version.h"
#include "base/clock.h"
#include "base/alloc.h"
#include "base/fsutil.h"
#include "base/logging.h"
#include "log/writer.h"
#include "wire/slot.h"

/* ---- lookup ----------------------------------------------------------- */

static size_t lower_bound(const struct kp_procs *ps, const char *name,
			  size_t len)
{
	size_t lo = 0, hi = ps->count;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const char *n = ps->procs[mid]->def.name;
		int c = strncmp(n, name, len);

		if (c == 0 && n[len] != '\0')
			c = 1;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct kp_proc *kp_procs_find(struct kp_procs *ps, const char *name,
			      size_t len)
{
	size_t at;

	if (!kp_topic_name_valid(name, len))
		return NULL;
	at = lower_bound(ps, name, len);

	if (at < ps->count &&
	    strncmp(ps->procs[at]->def.name, name, len) == 0 &&
	    ps->procs[at]->def.name[len] == '\0')
		return ps->procs[at];
	return NULL;
}

static int insert(struct kp_procs *ps, struct kp_proc *p)
{
	size_t at = lower_bound(ps, p->def.name, strlen(p->def.name));

	if (ps->count == ps->cap) {
		size_t cap = ps->cap ? ps->cap * 2 : 8;
		struct kp_proc **grown =
			kp_realloc(ps->procs, cap * sizeof(*grown));

		if (grown == NULL)
			return -ENOMEM;
		ps->procs = grown;
		ps->cap = cap;
	}
	memmove(&ps->procs[at + 1], &ps->procs[at],
		(ps->count - at) * sizeof(*ps->procs));
	ps->procs[at] = p;
	ps->count++;
	return 0;
}

static void unlink_proc(struct kp_procs *ps, struct kp_proc *p)
{
	for (size_t i = 0; i < ps->count; i++) {
		if (ps->procs[i] != p)
			continue;
		memmove(&ps->procs[i], &ps->procs[i + 1],
			(ps->count - i - 1) * sizeof(*ps->procs));
		ps->count--;
		return;
	}
}

size_t kp_procs_count(const struct kp_procs *ps)
{
	return ps->count;
}

struct kp_proc *kp_procs_at(struct kp_procs *ps, size_t i)
{
	return ps->procs[i];
}

static struct kp_proc *proc_alloc(struct kp_procs *ps)
{
	struct kp_proc *p = kp_calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->owner = ps;
	kp_proc_def_init(&p->def);
	return p;
}

static void proc_release(struct kp_proc *p)
{
	kp_proc_code_unref(p->reload_code);
	kp_proc_verify_drop_snapshot(p);
	kp_proc_def_destroy(&p->def);
	kp_free(p);
}

void kp_proc_free_version(struct kp_proc *p, struct proc_version *v)
{
	(void)p;
	kp_pv_free(v);   /* a busy worker is killed: nothing of v runs on */
}

/*
 * Frees p and its versions (a busy version's worker is killed first, so
 * nothing reads p's settings afterwards).
 */
static void proc_free(struct kp_proc *p)
{
	if (p == NULL)
		return;
	/* The snapshot reads the live version's store: end it first. */
	kp_proc_verify_drop_snapshot(p);
	for (uint32_t i = 0; i < p->version_count; i++)
		kp_proc_free_version(p, p->versions[i]);
	p->version_count = 0;
	if (p->scratch != NULL)
		kp_proc_free_version(p, p->scratch);
	p->scratch = NULL;
	p->deleting = true;
	proc_release(p);
}

int kp_proc_save_def(struct kp_proc *p)
{
	int rc = kp_proc_def_save(&p->def, p->dir);

	if (rc != 0)
		kp_log_error("proc", "processor %s: cannot save its definition: %s",
			     p->def.name, kp_error_text(rc));
	return rc;
}

void kp_proc_def_set_role(struct kp_proc *p, uint32_t n, const char *role)
{
	struct kp_proc_def_version *dv = kp_proc_def_version(&p->def, n);

	if (dv != NULL)
		snprintf(dv->role, sizeof(dv->role), "%s", role);
}

void kp_proc_def_add_version(struct kp_proc *p, struct proc_version *v,
			    enum kp_proc_from from, int64_t value,
			    const char *role)
{
	struct kp_proc_def_version *dv =
		&p->def.versions[p->def.version_count++];

	memset(dv, 0, sizeof(*dv));
	dv->number = v->number;
	snprintf(dv->role, sizeof(dv->role), "%s", role);
	snprintf(dv->source, sizeof(dv->source), "%s", v->source);
	snprintf(dv->code, sizeof(dv->code), "%s", v->code->loaded_path);
	snprintf(dv->hash, sizeof(dv->hash), "%s", v->hash);
	dv->revision = v->revision;
	dv->created_ms = v->created_ms;
	dv->rate = v->rate;
	dv->from = from;
	dv->from_value = value;
	dv->replay_total = v->replay_total;
	kp_proc_revision_first(p, dv);
}

void kp_proc_add_version(struct kp_proc *p, struct proc_version *v)
{
	p->versions[p->version_count++] = v;
}

void kp_proc_remove_version(struct kp_proc *p, struct proc_version *v)
{
	uint32_t keep = 0;

	for (uint32_t i = 0; i < p->version_count; i++) {
		if (p->versions[i] != v)
			p->versions[keep++] = p->versions[i];
	}
	p->version_count = keep;
	keep = 0;
	for (uint32_t i = 0; i < p->def.version_count; i++) {
		if (p->def.versions[i].number != v->number)
			p->def.versions[keep++] = p->def.versions[i];
		else
			kp_proc_def_version_destroy(&p->def.versions[i]);
	}
	p->def.version_count = keep;
}

/* ---- answering requests ----------------------------------------------- */

void kp_proc_answer(struct kp_slot **pslot, struct kp_proc *p, int rc,
		   const char *message)
{
	struct kp_slot *slot = *pslot;
	struct kp_response r;

	if (slot == NULL)
		return;
	*pslot = NULL;
	if (rc != 0) {
		kp_slot_set_error(slot, rc, message);
	} else {
		kp_buf_reset(&slot->resp);
		kp_response_begin(&r, &slot->resp, slot->id, 1);
		kp_response_key(&r, "proc");
		kp_proc_pack_status(p, &r);
		kp_response_finish(&r);
	}
	if (--slot->waits == 0)
		kp_slot_ready(slot);
	kp_slot_unref(slot);
}

void kp_proc_hold(struct kp_slot **pslot, struct kp_slot *slot)
{
	*pslot = slot;
	kp_slot_ref(slot);
	slot->waits++;
}

void kp_proc_release(struct kp_slot **pslot)
{
	struct kp_slot *slot = *pslot;

	if (slot == NULL)
		return;
	*pslot = NULL;
	if (--slot->waits == 0)
		kp_slot_ready(slot);
	kp_slot_unref(slot);
}

/* ---- version hooks ---------------------------------------------------- */

void kp_proc_retire(struct kp_proc *p, struct proc_version *v)
{
	v->role = PV_RETIRED;
	kp_proc_def_set_role(p, v->number, "retired");
	if (v->busy) {
		v->retire_when_idle = true;
		return;
	}
	/* Its last checkpoint is written off the loop, then it stops. */
	if (v->inst_started && v->since_checkpoint > 0 &&
	    kp_pv_checkpoint_async(v)) {
		v->stop_when_idle = true;
		return;
	}
	kp_pv_stop(v);
	kp_log_info("proc", "processor %s v%u retired", p->def.name, v->number);
}

void kp_proc_cut_over(struct kp_proc *p)
{
	struct proc_version *b = p->building, *old = p->live;

	b->role = PV_LIVE;
	b->rate = 0;
	kp_pv_worker_to_foreground(b);
	p->building = NULL;
	p->live = b;
	kp_proc_def_set_role(p, b->number, "live");
	if (old != NULL)
		kp_proc_def_set_role(p, old->number, "retired");
	snprintf(p->def.source, sizeof(p->def.source), "%s", b->source);
	/*
	 * The definition is the truth: saved first, and the aliases are
	 * repointed from it (again at the next start, should we crash now).
	 */
	kp_proc_save_def(p);
	if (kp_proc_point_aliases(p, b) != 0)
		kp_log_error("proc", "processor %s: cannot repoint its outputs",
			     p->def.name);
	if (old != NULL) {
		kp_proc_retire(p, old);
		kp_proc_wake_readers(p, old);
	}
	kp_log_info("proc", "processor %s: cut over from v%u to v%u",
		    p->def.name, old ? old->number : 0, b->number);
	kp_pv_kick(b);
}

static void on_caught_up(struct proc_version *v)
{
	struct kp_proc *p = v->proc;

	if (v->role == PV_SCRATCH) {
		if (v->done || v->busy)
			return;
		/* Its view is its worker's: committed first, to be read. */
		if (p->verify_snap != NULL && !v->committed && v->wk != NULL) {
			v->committed = true;
			if (kp_pv_checkpoint_async(v))
				return;
		}
		v->done = true;
		kp_pv_worker_release(v, 0);
		kp_proc_verify_finish(p, v, &p->pending_slot);
		p->scratch = NULL;
		kp_pv_free(v);
		return;
	}
	if (v != p->building || v->busy || kp_pipeline_caught_up(v))
		return;
	/* Checkpoint the new version first (off the loop), then switch. */
	if (v->since_checkpoint > 0 && kp_pv_checkpoint_async(v)) {
		v->cut_when_idle = true;
		return;
	}
	kp_proc_cut_over(p);
}

static void on_init_done(struct proc_version *v, int rc, const char *msg)
{
	struct kp_proc *p = v->proc;

	if (p->create_slot != NULL && v == p->live) {
		if (rc != 0) {
			/* Nothing of a processor whose first init failed stays. */
			kp_proc_undo_create(p, v);
			unlink_proc(p->owner, p);
			kp_file_remove_tree(p->dir);
			kp_procs_gc_code(p->owner);   /* its copy of the code */
			kp_proc_answer(&p->create_slot, p, KP_EBADREQUEST, msg);
			p->version_count = 0;
			p->live = NULL;
			v->free_when_idle = true;
			proc_free(p);
			return;
		}
		kp_proc_answer(&p->create_slot, p, 0, NULL);
	}
	if (rc == 0)
		kp_log_info("proc", "processor %s v%u (%s, %s) %s as %s",
			    p->def.name, v->number, v->code->lang, v->hash,
			    p->def.paused && v == p->live ? "paused" : "running",
			    kp_pv_role_name(v->role));
}

static void on_reload_done(struct proc_version *v, int rc, const char *msg)
{
	struct kp_proc *p = v->proc;

	kp_proc_revision_reloaded(p, v, rc);
	if (rc != 0)
		kp_procs_gc_code(p->owner);   /* the copy of the code that failed */
	kp_proc_answer(&p->reload_slot, p, rc == 0 ? 0 : KP_EBADREQUEST, msg);
}


static void on_version_idle(struct proc_version *v)
{
	struct kp_proc *p = v->proc;

	if (v->role == PV_SCRATCH && v->state == PV_FAILED) {
		kp_proc_verify_abort(p, v);
		return;
	}
	if (v->retire_when_idle) {
		v->retire_when_idle = false;
		kp_proc_retire(p, v);
		return;
	}
	if (v->stop_when_idle) {
		v->stop_when_idle = false;
		kp_pv_stop(v);
		kp_log_info("proc", "processor %s v%u retired", p->def.name,
			    v->number);
		return;
	}
	if (v->cut_when_idle) {
		v->cut_when_idle = false;
		if (v == p->building) {
			kp_proc_cut_over(p);
			return;
		}
	}
	if (v == p->live && p->reload_code != NULL) {
		kp_proc_launch_reload(p);
		return;
	}
	if (v == p->live && p->pending != PENDING_NONE) {
		kp_proc_run_pending(p);
		if (v->busy)
			return;
	}
	kp_pv_kick(v);
}

/* ---- creating and opening --------------------------------------------- */

int kp_proc_load_code(struct kp_proc *p, struct proc_version *v,
		     const char *file, struct kp_error *err)
{
	int rc = kp_proc_code_allowed(&p->owner->code_policy, file, true, err);

	if (rc == 0)
		rc = kp_proc_code_stage(file, p->owner->code_dir, &v->code, err);
	if (rc != 0)
		return rc;
	snprintf(v->source, sizeof(v->source), "%s", file);
	snprintf(v->hash, sizeof(v->hash), "%s", v->code->hash);
	return 0;
}

static int check_def(struct kp_procs *ps, const struct kp_proc_def *def,
		     struct kp_error *err)
{
	if (!kp_topic_name_valid(def->name, strlen(def->name)) ||
	    strlen(def->name) > KP_PROC_NAME_MAX)
		return kp_error_set(err, KP_EBADREQUEST,
				    "bad processor name '%s': use 1..%d of A-Z a-z 0-9 . _ -",
				    def->name, KP_PROC_NAME_MAX);
	if (kp_procs_find(ps, def->name, strlen(def->name)) != NULL)
		return kp_error_set(err, KP_EEXISTS,
				    "processor '%s' already exists", def->name);
	for (uint32_t i = 0; i < def->input_count; i++) {
		if (kp_catalog_find(ps->store->catalog, def->inputs[i],
				    strlen(def->inputs[i])) == NULL)
			return kp_error_set(err, KP_ENOTOPIC,
					    "input topic '%s' does not exist",
					    def->inputs[i]);
	}
	return 0;
}

int kp_procs_create(struct kp_procs *ps, struct kp_proc_def *def,
		    struct kp_slot *slot, struct kp_error *err)
{
	struct proc_version *v;
	struct kp_proc *p;
	int rc = check_def(ps, def, err);

	if (rc != 0)
		return rc;
	p = proc_alloc(ps);
	if (p == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	kp_buf_destroy(&p->def.config);
	p->def = *def;
	kp_buf_init(&def->config);
	p->def.created_ms = ps->now_ms();
	p->def.next_version = 2;
	snprintf(p->dir, sizeof(p->dir), "%s/%s", ps->dir, p->def.name);
	v = kp_pv_new(p, ps, 1);
	if (v == NULL) {
		proc_free(p);
		return kp_error_set(err, -ENOMEM, "out of memory");
	}
	kp_proc_add_version(p, v);
	v->role = PV_LIVE;
	v->created_ms = p->def.created_ms;
	p->live = v;
	rc = kp_proc_load_code(p, v, p->def.source, err);
	if (rc == 0)
		rc = kp_proc_ensure_outputs(p, v, err);
	if (rc == 0 && kp_pv_build(v, NULL, p->def.from, p->def.from_ts,
				   NULL) != 0)
		rc = kp_error_set(err, -ENOMEM, "out of memory");
	if (rc == 0 && mkdir(p->dir, 0755) != 0 && errno != EEXIST)
		rc = kp_error_set(err, -errno, "cannot create %s: %s", p->dir,
				  strerror(errno));
	if (rc == 0) {
		kp_proc_def_add_version(p, v, p->def.from, p->def.from_ts, "live");
		rc = kp_proc_def_save(&p->def, p->dir);
		if (rc == 0)
			rc = kp_proc_point_aliases(p, v);
		if (rc == 0)
			rc = insert(ps, p);
		if (rc != 0) {
			kp_error_set(err, rc, "cannot save processor %s: %s",
				     p->def.name, kp_error_text(rc));
			kp_file_remove_tree(p->dir);
		}
	}
	if (rc != 0) {
		kp_proc_undo_create(p, v);
		proc_free(p);
		kp_procs_gc_code(ps);
		return rc;
	}
	kp_proc_hold(&p->create_slot, slot);
	kp_pv_start(v, true);
	return 0;
}

static enum pv_role role_of(const char *name)
{
	if (strcmp(name, "live") == 0)
		return PV_LIVE;
	if (strcmp(name, "building") == 0)
		return PV_BUILDING;
	return PV_RETIRED;
}

/* Restores one persisted version (its checkpoint, its code) and starts it. */
static void open_version(struct kp_proc *p, struct kp_proc_def_version *dv)
{
	struct proc_version *v = kp_pv_new(p, p->owner, dv->number);
	struct kp_checkpoint ck;
	struct kp_error err;
	int have;
	uint64_t offset = (uint64_t)dv->from_value;

	if (v == NULL)
		return;
	kp_proc_add_version(p, v);
	v->role = role_of(dv->role);
	v->revision = dv->revision;
	v->created_ms = dv->created_ms;
	v->rate = dv->rate;
	v->replay_total = dv->replay_total;
	snprintf(v->source, sizeof(v->source), "%s", dv->source);
	snprintf(v->hash, sizeof(v->hash), "%s", dv->hash);
	if (v->role == PV_LIVE)
		p->live = v;
	else if (v->role == PV_BUILDING)
		p->building = v;
	have = kp_pv_load_checkpoint(v, &ck, &err);
	if (have < 0) {
		/* Its view and positions cannot be trusted: it fails, visibly,
		 * until `proc reset` rebuilds it from the log. */
		kp_log_error("proc", "processor %s v%u: %s", p->def.name,
			     v->number, err.msg);
		if (v->view_error[0] == '\0')
			snprintf(v->view_error, sizeof(v->view_error), "%s",
				 err.msg);
	}
	if (kp_pv_build(v, have == 0 ? &ck : NULL, dv->from, dv->from_value,
			&offset) != 0)
		v->state = PV_FAILED;
	kp_checkpoint_destroy(&ck);
	if (v->role == PV_RETIRED) {
		if (v->view != NULL)
			kp_view_discard(v->view);
		v->state = PV_STOPPED;
		return;
	}
	if (kp_proc_code_allowed(&p->owner->code_policy, dv->code, false,
				 &err) != 0 ||
	    kp_proc_code_stage(dv->code, NULL, &v->code, &err) != 0) {
		v->state = PV_FAILED;
		snprintf(v->reason, sizeof(v->reason), "cannot load code: %s",
			 err.msg);
		kp_log_error("proc", "processor %s v%u: %s", p->def.name,
			     v->number, v->reason);
		return;
	}
	kp_pv_start(v, false);
}

static void open_one(struct kp_procs *ps, const char *name)
{
	struct kp_proc *p = proc_alloc(ps);
	struct kp_error err;

	if (p == NULL)
		return;
	snprintf(p->dir, sizeof(p->dir), "%s/%s", ps->dir, name);
	if (kp_proc_def_load(&p->def, p->dir, &err) != 0) {
		kp_log_error("proc", "skipping processor %s: %s", name, err.msg);
		proc_free(p);
		return;
	}
	if (insert(ps, p) != 0) {
		proc_free(p);
		return;
	}
	for (uint32_t i = 0; i < p->def.version_count; i++)
		open_version(p, &p->def.versions[i]);
	/* A crash may have come between saving the definition and the aliases. */
	if (p->live != NULL)
		kp_proc_point_aliases(p, p->live);
}

/* The code policy of env, with processors_dir created and resolved. */
static int open_code_policy(struct kp_procs *ps, const struct kp_proc_env *env,
			    struct kp_error *err)
{
	struct kp_proc_code_policy *pol = &ps->code_policy;
	const char *dir = env->processors_dir;

	pol->native_plugins = env->native_plugins;
	pol->root[0] = '\0';
	if (dir == NULL)
		return 0;
	if (mkdir(dir, 0750) != 0 && errno != EEXIST)
		return kp_error_set(err, -errno, "processors_dir %s: %s", dir,
				    strerror(errno));
	if (strlen(dir) >= sizeof(pol->root) || realpath(dir, pol->root) == NULL)
		return kp_error_set(err, KP_ECONFIG,
				    "processors_dir %s cannot be resolved", dir);
	return 0;
}

int kp_procs_open(const struct kp_proc_env *env, struct kp_procs **out,
		  struct kp_error *err)
{
	struct kp_procs *ps = kp_calloc(1, sizeof(*ps));
	struct dirent *e;
	DIR *d;
	int rc;

	if (ps == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	ps->events.caught_up = on_caught_up;
	ps->events.idle = on_version_idle;
	ps->events.init_done = on_init_done;
	ps->events.reload_done = on_reload_done;
	ps->events.pause = kp_proc_pause;
	ps->events.open_output = kp_proc_open_output;
	ps->store = env->store;
	ps->now_ms = env->now_ms;
	ps->topic_defaults = env->topic_defaults;
	ps->view_cache_bytes = env->view_cache_bytes;
	ps->view_max_bytes = env->view_max_bytes;
	ps->max_value_bytes = env->max_value_bytes;
	snprintf(ps->dir, sizeof(ps->dir), "%s/procs", env->data_dir);
	snprintf(ps->code_dir, sizeof(ps->code_dir), "%s/code", env->data_dir);
	/* Code copies are the server's: nobody else reads them. */
	if ((mkdir(ps->dir, 0755) != 0 && errno != EEXIST) ||
	    (mkdir(ps->code_dir, 0700) != 0 && errno != EEXIST) ||
	    chmod(ps->code_dir, 0700) != 0) {
		kp_free(ps);
		return kp_error_set(err, -errno, "cannot create %s: %s",
				    ps->dir, strerror(errno));
	}
	rc = open_code_policy(ps, env, err);
	if (rc == 0)
		rc = kp_pipeline_open(ps, err);
	if (rc != 0) {
		kp_pipeline_close(ps);
		kp_free(ps);
		return rc;
	}
	ps->loop = env->store->loop;
	d = opendir(ps->dir);
	while (d != NULL && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' ||
		    !kp_topic_name_valid(e->d_name, strlen(e->d_name)))
			continue;
		open_one(ps, e->d_name);
	}
	if (d != NULL)
		closedir(d);
	kp_pipeline_started(ps);
	*out = ps;
	return 0;
}

void kp_procs_quiesce(struct kp_procs *ps)
{
	if (ps != NULL)
		ps->quiesced = true;
}

/* Draining: a running version commits what it did, once between jobs. */
static bool busy(struct proc_version *v)
{
	if (!v->busy && v->since_checkpoint > 0 && v->pending == NULL)
		kp_pv_checkpoint_async(v);
	return v->busy;
}

bool kp_procs_idle(struct kp_procs *ps)
{
	if (ps == NULL)
		return true;
	for (size_t i = 0; i < ps->count; i++) {
		struct kp_proc *p = ps->procs[i];

		for (uint32_t k = 0; k < p->version_count; k++)
			if (busy(p->versions[k]))
				return false;
		if (p->scratch != NULL && busy(p->scratch))
			return false;
	}
	return true;
}

void kp_procs_close(struct kp_procs *ps)
{
	if (ps == NULL)
		return;
	for (size_t i = 0; i < ps->count; i++) {
		struct kp_proc *p = ps->procs[i];

		for (uint32_t k = 0; k < p->version_count; k++) {
			struct proc_version *v = p->versions[k];

			/* Versions that never got a worker commit here;
			 * running ones committed while the server drained. */
			if (v->wk == NULL && v->view != NULL &&
			    v->inst_started && v->since_checkpoint > 0)
				kp_pv_checkpoint_now(v);
		}
		kp_proc_answer(&p->create_slot, p, KP_ESHUTDOWN, "server is stopping");
		kp_proc_answer(&p->reload_slot, p, KP_ESHUTDOWN, "server is stopping");
		kp_proc_answer(&p->rollback_slot, p, KP_ESHUTDOWN, "server is stopping");
		kp_proc_answer(&p->pending_slot, p, KP_ESHUTDOWN, "server is stopping");
		proc_free(p);
	}
	kp_pipeline_close(ps);
	kp_free(ps->procs);
	kp_free(ps);
}

/* ---- scheduling ------------------------------------------------------- */

static void each_version(struct kp_proc *p,
			 void (*fn)(struct proc_version *v, void *arg),
			 void *arg)
{
	for (uint32_t i = 0; i < p->version_count; i++)
		fn(p->versions[i], arg);
	if (p->scratch != NULL)
		fn(p->scratch, arg);
}

static void notify_one(struct proc_version *v, void *arg)
{
	struct kp_topic_partition *tp = arg;

	if (!v->busy && kp_pv_reads(v, tp->topic->name, tp->id))
		kp_pv_kick(v);
}

void kp_procs_notify(struct kp_procs *ps, struct kp_topic_partition *tp)
{
	if (ps == NULL)
		return;
	for (size_t i = 0; i < ps->count; i++)
		each_version(ps->procs[i], notify_one, tp);
}

struct tick_args {
	int64_t now;
	int64_t mono;
};

static void tick_one(struct proc_version *v, void *arg)
{
	struct tick_args *t = arg;

	kp_pv_tick(v, t->now, t->mono);
}

void kp_procs_tick(struct kp_procs *ps, int64_t now_ms)
{
	struct tick_args t = { now_ms, kp_clock_mono_ms() };


	for (size_t i = 0; i < ps->count; i++) {
		each_version(ps->procs[i], tick_one, &t);
		kp_proc_watch_check(ps->procs[i], t.mono);
		kp_proc_rollback_retry(ps->procs[i], t.mono);
		kp_proc_replay_rate(ps->procs[i], t.mono);
	}
	kp_pipeline_tick(ps);
}

/* ---- pause, resume, delete -------------------------------------------- */

int kp_proc_pause(struct kp_proc *p, const char *reason, struct kp_error *err)
{
	if (p->live == NULL || p->live->state == PV_FAILED)
		return kp_error_set(err, KP_ESTATE, "processor %s is %s",
				    p->def.name,
				    p->live ? kp_pv_state_name(p->live->state)
					    : "without a live version");
	p->def.paused = true;
	snprintf(p->def.pause_reason, sizeof(p->def.pause_reason), "%s",
		 reason);
	if (strcmp(reason, "paused by operator") != 0)
		kp_log_warn("proc", "processor %s paused: %s", p->def.name,
			    reason);
	if (kp_proc_save_def(p) != 0)
		kp_log_error("proc", "processor %s: paused, but its definition could not be saved: after a restart it runs again",
			     p->def.name);
	return 0;
}

int kp_proc_resume(struct kp_proc *p, struct kp_error *err)
{
	struct proc_version *v = p->live;

	if (v == NULL)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s has no live version",
				    p->def.name);
	if (v->state == PV_FAILED && v->inst_started)
		v->state = PV_RUNNING;
	if (v->state == PV_FAILED && v->wk == NULL && !v->busy &&
	    v->view_error[0] == '\0') {
		/* Its worker is gone: a new one from its checkpoint. */
		kp_log_info("proc", "processor %s v%u resumed: starting again from its checkpoint",
			    p->def.name, v->number);
		kp_pv_start(v, false);
		return 0;
	}
	/* Starting (its worker's init runs): it runs once that is done. */
	if (v->state != PV_RUNNING && v->state != PV_STARTING)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s is %s and cannot resume (%s)",
				    p->def.name, kp_pv_state_name(v->state),
				    v->reason);
	if (p->def.paused) {
		int rc;

		p->def.paused = false;
		rc = kp_proc_save_def(p);
		if (rc != 0) {
			/* Not resumed: a restart would pause it again. */
			p->def.paused = true;
			return kp_error_set(err, rc,
					    "processor %s stays paused: its definition cannot be saved (%s)",
					    p->def.name, kp_error_text(rc));
		}
	}
	p->def.pause_reason[0] = '\0';
	v->reason[0] = '\0';
	v->window_total = v->window_errors = 0;
	kp_pv_kick(v);
	return 0;
}

int kp_proc_delete(struct kp_proc *p, struct kp_error *err)
{
	struct kp_catalog *cat = p->owner->store->catalog;

	(void)err;
	unlink_proc(p->owner, p);
	for (uint32_t i = 0; i < p->version_count; i++) {
		if (p->versions[i] != p->live)
			kp_proc_drop_outputs(p, p->versions[i]);
	}
	if (p->live != NULL) {
		for (uint32_t i = 0; i <= p->def.output_count; i++) {
			char logical[256], alias[270];

			kp_proc_logical_name(p, i, logical, sizeof(logical));
			snprintf(alias, sizeof(alias), "%s.v1", logical);
			kp_catalog_alias_remove(cat, alias);
			/* The live outputs stay, under their logical names. */
			if (p->live->number > 1)
				kp_catalog_alias_set(cat, logical,
						     p->live->outputs[i],
						     p->live->number);
		}
	}
	kp_file_remove_tree(p->dir);
	kp_procs_gc_code(p->owner);   /* p is out of the list: its copies go */
	kp_log_info("proc", "deleted processor %s", p->def.name);
	kp_proc_answer(&p->create_slot, p, KP_ENOTFOUND, "processor was deleted");
	kp_proc_answer(&p->reload_slot, p, KP_ENOTFOUND, "processor was deleted");
	kp_proc_answer(&p->rollback_slot, p, KP_ENOTFOUND, "processor was deleted");
	kp_proc_answer(&p->pending_slot, p, KP_ENOTFOUND, "processor was deleted");
	p->deleting = true;
	proc_free(p);
	return 0;
}

