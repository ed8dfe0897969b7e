/*
 * proc.c - processors: catalog, versions (create, restart, replay,
 * cut-over, rollback, gc), reload and --watch, reset, pause, status.
 */
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "conn.h"
#include "fsutil.h"
#include "log.h"
#include "proc_verify.h"
#include "proc_version.h"
#include "server.h"
#include "workers.h"
#include "writer.h"

#define WATCH_MS 500

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
	size_t at = lower_bound(ps, name, len);

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

struct kp_view *kp_proc_view(struct kp_proc *p)
{
	if (p->live == NULL || p->live->zombie)
		return NULL;
	return p->live->view;
}

static struct kp_proc *proc_alloc(struct kp_procs *ps)
{
	struct kp_proc *p = kp_calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->owner = ps;
	kp_proc_def_init(&p->def);
	kp_buf_init(&p->verify_view);
	return p;
}

/* Frees p and its versions (those a stuck thread uses are kept). */
static void proc_free(struct kp_proc *p)
{
	if (p == NULL)
		return;
	for (uint32_t i = 0; i < p->version_count; i++) {
		struct proc_version *v = p->versions[i];

		if (v->busy)
			v->free_when_idle = true;
		else
			kp_pv_free(v);
	}
	if (p->scratch != NULL) {
		if (p->scratch->busy)
			p->scratch->free_when_idle = true;
		else
			kp_pv_free(p->scratch);
	}
	kp_proc_code_unref(p->reload_code);
	kp_buf_destroy(&p->verify_view);
	kp_proc_def_destroy(&p->def);
	kp_free(p);
}

static int save_def(struct kp_proc *p)
{
	int rc = kp_proc_def_save(&p->def, p->dir);

	if (rc != 0)
		kp_log_error("proc", "processor %s: cannot save its definition: %s",
			     p->def.name, kp_error_text(rc));
	return rc;
}

static void def_set_role(struct kp_proc *p, uint32_t n, const char *role)
{
	struct kp_proc_def_version *dv = kp_proc_def_version(&p->def, n);

	if (dv != NULL)
		snprintf(dv->role, sizeof(dv->role), "%s", role);
}

static void def_add_version(struct kp_proc *p, struct proc_version *v,
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
}

static void def_update_code(struct kp_proc *p, struct proc_version *v)
{
	struct kp_proc_def_version *dv = kp_proc_def_version(&p->def, v->number);

	if (dv == NULL)
		return;
	snprintf(dv->source, sizeof(dv->source), "%s", v->source);
	snprintf(dv->code, sizeof(dv->code), "%s", v->code->loaded_path);
	snprintf(dv->hash, sizeof(dv->hash), "%s", v->hash);
	dv->revision = v->revision;
}

static void add_version(struct kp_proc *p, struct proc_version *v)
{
	p->versions[p->version_count++] = v;
}

static void remove_version(struct kp_proc *p, struct proc_version *v)
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
	}
	p->def.version_count = keep;
}

/* ---- topics and aliases ----------------------------------------------- */

static int ensure_topic(struct kp_procs *ps, const char *name,
			const struct kp_topic *like, struct kp_error *err)
{
	struct kp_server *s = ps->srv;
	struct kp_topic_config cfg;
	struct kp_topic *t;

	if (kp_catalog_find_physical(s->catalog, name, strlen(name)) != NULL)
		return 0;
	memset(&cfg, 0, sizeof(cfg));
	if (like != NULL) {
		cfg = like->config;
	} else {
		cfg.partitions = 1;
		cfg.fsync_interval_ms = s->cfg.fsync_interval_ms;
		cfg.log = s->cfg.topic_defaults;
	}
	if (kp_catalog_create(s->catalog, name, strlen(name), &cfg, &t, err) != 0)
		return err->code;
	for (uint32_t i = 0; i < cfg.partitions; i++) {
		if (kp_writer_attach(&t->parts[i]) != 0)
			return kp_error_set(err, -ENOMEM, "out of memory");
	}
	return 1;
}

/* The logical names of v's outputs, the DLQ last. */
static void logical_name(struct kp_proc *p, uint32_t i, char *out, size_t cap)
{
	if (i < p->def.output_count)
		snprintf(out, cap, "%s", p->def.outputs[i]);
	else
		kp_proc_def_dlq(&p->def, out, cap);
}

/* Creates v's physical outputs, shaped like the live version's. */
static int ensure_outputs(struct kp_proc *p, struct proc_version *v,
			  struct kp_error *err)
{
	struct kp_catalog *cat = p->owner->srv->catalog;
	int rc = 0;

	for (uint32_t i = 0; i < v->output_count && rc == 0; i++) {
		char logical[256];
		struct kp_topic *like;

		logical_name(p, i, logical, sizeof(logical));
		like = kp_catalog_find(cat, logical, strlen(logical));
		rc = ensure_topic(p->owner, v->outputs[i], like, err);
		p->created[i] = rc == 1;
		if (rc == 1)
			rc = 0;
	}
	return rc;
}

/* Undoes a create: the aliases it set and the topics it made. */
static void undo_create(struct kp_proc *p, struct proc_version *v)
{
	struct kp_server *s = p->owner->srv;
	struct kp_error err;

	for (uint32_t i = 0; i < v->output_count; i++) {
		char logical[256], v1[270];
		struct kp_topic *t;

		logical_name(p, i, logical, sizeof(logical));
		snprintf(v1, sizeof(v1), "%s.v1", logical);
		kp_catalog_alias_remove(s->catalog, logical);
		kp_catalog_alias_remove(s->catalog, v1);
		t = kp_catalog_find_physical(s->catalog, v->outputs[i],
					     strlen(v->outputs[i]));
		if (p->created[i] && t != NULL)
			kp_server_delete_topic(s, t, &err);
	}
}

/*
 * Points the logical outputs at v (generation v->number); "<logical>.v1"
 * always names version 1's outputs, which live under the logical names.
 */
static int point_aliases(struct kp_proc *p, struct proc_version *v)
{
	struct kp_catalog *cat = p->owner->srv->catalog;
	int rc = 0;

	for (uint32_t i = 0; i < v->output_count && rc == 0; i++) {
		char logical[256], v1[256];

		logical_name(p, i, logical, sizeof(logical));
		snprintf(v1, sizeof(v1), "%s.v1", logical);
		rc = kp_catalog_alias_set(cat, logical, v->outputs[i],
					  v->number);
		if (rc == 0)
			rc = kp_catalog_alias_set(cat, v1, logical, 1);
	}
	return rc;
}

/* Answers parked fetches on v's outputs, so their readers come back now. */
static void wake_readers(struct kp_proc *p, struct proc_version *v)
{
	struct kp_catalog *cat = p->owner->srv->catalog;

	for (uint32_t i = 0; i < v->output_count; i++) {
		struct kp_topic *t = kp_catalog_find_physical(
			cat, v->outputs[i], strlen(v->outputs[i]));

		for (uint32_t k = 0; t != NULL && k < t->config.partitions; k++)
			kp_writer_flush_waits(p->owner->srv, &t->parts[k], 0,
					      NULL);
	}
}

/* ---- answering requests ----------------------------------------------- */

static void answer(struct kp_slot **pslot, struct kp_proc *p, int rc,
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

static void hold(struct kp_slot **pslot, struct kp_slot *slot)
{
	*pslot = slot;
	kp_slot_ref(slot);
	slot->waits++;
}

/* ---- version hooks ---------------------------------------------------- */

static void retire(struct kp_proc *p, struct proc_version *v)
{
	v->role = PV_RETIRED;
	def_set_role(p, v->number, "retired");
	if (v->busy) {
		v->retire_when_idle = true;
		return;
	}
	if (v->inst_started && !v->zombie)
		kp_pv_checkpoint_now(v);
	kp_pv_stop(v);
	kp_log_info("proc", "processor %s v%u retired", p->def.name, v->number);
}

static void cut_over(struct kp_proc *p)
{
	struct proc_version *b = p->building, *old = p->live;

	if (kp_pv_checkpoint_now(b) != 0) {
		kp_log_error("proc", "processor %s v%u: cannot checkpoint before the cut-over; retrying",
			     p->def.name, b->number);
		return;
	}
	b->role = PV_LIVE;
	b->rate = 0;
	p->building = NULL;
	p->live = b;
	def_set_role(p, b->number, "live");
	snprintf(p->def.source, sizeof(p->def.source), "%s", b->source);
	if (point_aliases(p, b) != 0)
		kp_log_error("proc", "processor %s: cannot repoint its outputs",
			     p->def.name);
	if (old != NULL)
		retire(p, old);
	save_def(p);
	if (old != NULL)
		wake_readers(p, old);
	kp_log_info("proc", "processor %s: cut over from v%u to v%u",
		    p->def.name, old ? old->number : 0, b->number);
	kp_pv_kick(b);
}

void kp_proc_on_caught_up(struct proc_version *v)
{
	struct kp_proc *p = v->proc;

	if (v->role == PV_SCRATCH) {
		if (!v->done) {
			v->done = true;
			kp_proc_verify_finish(p, v, &p->pending_slot);
			p->scratch = NULL;
			kp_pv_free(v);
		}
		return;
	}
	if (v == p->building && !v->busy)
		cut_over(p);
}

void kp_proc_on_init_done(struct proc_version *v, int rc, const char *msg)
{
	struct kp_proc *p = v->proc;

	if (p->create_slot != NULL && v == p->live) {
		if (rc != 0) {
			/* Nothing of a processor whose first init failed stays. */
			answer(&p->create_slot, p, KP_EBADREQUEST, msg);
			undo_create(p, v);
			unlink_proc(p->owner, p);
			kp_file_remove_tree(p->dir);
			p->version_count = 0;
			p->live = NULL;
			v->free_when_idle = true;
			proc_free(p);
			return;
		}
		answer(&p->create_slot, p, 0, NULL);
	}
	if (rc == 0)
		kp_log_info("proc", "processor %s v%u (%s, %s) %s as %s",
			    p->def.name, v->number, v->code->lang, v->hash,
			    p->def.paused && v == p->live ? "paused" : "running",
			    kp_pv_role_name(v->role));
}

void kp_proc_on_reload_done(struct proc_version *v, int rc, const char *msg)
{
	struct kp_proc *p = v->proc;

	if (rc == 0) {
		snprintf(v->source, sizeof(v->source), "%s", p->reload_source);
		def_update_code(p, v);
		snprintf(p->def.source, sizeof(p->def.source), "%s", v->source);
		save_def(p);
	}
	answer(&p->reload_slot, p, rc == 0 ? 0 : KP_EBADREQUEST, msg);
}

static void run_pending(struct kp_proc *p);
static void launch_reload(struct kp_proc *p);

void kp_proc_on_version_idle(struct proc_version *v)
{
	struct kp_proc *p = v->proc;

	if (v->retire_when_idle) {
		v->retire_when_idle = false;
		retire(p, v);
		return;
	}
	if (v == p->live && p->reload_code != NULL) {
		launch_reload(p);
		return;
	}
	if (v == p->live && p->pending != PENDING_NONE) {
		run_pending(p);
		if (v->busy)
			return;
	}
	kp_pv_kick(v);
}

/* ---- creating and opening --------------------------------------------- */

static int load_code(struct kp_proc *p, struct proc_version *v,
		     const char *file, struct kp_error *err)
{
	int rc = kp_proc_code_load(file, p->owner->code_dir, &v->code, err);

	if (rc != 0)
		return rc;
	snprintf(v->source, sizeof(v->source), "%s", file);
	snprintf(v->hash, sizeof(v->hash), "%s", v->code->hash);
	return 0;
}

static int check_def(struct kp_procs *ps, const struct kp_proc_def *def,
		     struct kp_error *err)
{
	if (!kp_topic_name_valid(def->name, strlen(def->name)))
		return kp_error_set(err, KP_EBADREQUEST,
				    "bad processor name '%s': use 1..200 of A-Z a-z 0-9 . _ -",
				    def->name);
	if (kp_procs_find(ps, def->name, strlen(def->name)) != NULL)
		return kp_error_set(err, KP_EEXISTS,
				    "processor '%s' already exists", def->name);
	for (uint32_t i = 0; i < def->input_count; i++) {
		if (kp_catalog_find(ps->srv->catalog, def->inputs[i],
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
	p->def.created_ms = kp_server_now_ms(ps->srv);
	p->def.next_version = 2;
	snprintf(p->dir, sizeof(p->dir), "%s/%s", ps->dir, p->def.name);
	v = kp_pv_new(p, ps, 1);
	if (v == NULL) {
		proc_free(p);
		return kp_error_set(err, -ENOMEM, "out of memory");
	}
	add_version(p, v);
	v->role = PV_LIVE;
	v->created_ms = p->def.created_ms;
	p->live = v;
	rc = load_code(p, v, p->def.source, err);
	if (rc == 0)
		rc = ensure_outputs(p, v, err);
	if (rc == 0 && kp_pv_build(v, NULL, p->def.from, p->def.from_ts,
				   NULL) != 0)
		rc = kp_error_set(err, -ENOMEM, "out of memory");
	if (rc == 0 && mkdir(p->dir, 0755) != 0 && errno != EEXIST)
		rc = kp_error_set(err, -errno, "cannot create %s: %s", p->dir,
				  strerror(errno));
	if (rc == 0) {
		def_add_version(p, v, p->def.from, p->def.from_ts, "live");
		rc = kp_proc_def_save(&p->def, p->dir);
		if (rc == 0)
			rc = point_aliases(p, v);
		if (rc == 0)
			rc = insert(ps, p);
		if (rc != 0) {
			kp_error_set(err, rc, "cannot save processor %s: %s",
				     p->def.name, kp_error_text(rc));
			kp_file_remove_tree(p->dir);
		}
	}
	if (rc != 0) {
		undo_create(p, v);
		proc_free(p);
		return rc;
	}
	hold(&p->create_slot, slot);
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
	add_version(p, v);
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
	if (have < 0)
		kp_log_error("proc", "processor %s v%u: %s; starting it over",
			     p->def.name, v->number, err.msg);
	if (kp_pv_build(v, have == 0 ? &ck : NULL, dv->from, dv->from_value,
			&offset) != 0)
		v->state = PV_FAILED;
	kp_checkpoint_destroy(&ck);
	if (v->role == PV_RETIRED) {
		kp_view_clear(v->view);
		v->state = PV_STOPPED;
		return;
	}
	if (kp_proc_code_load(dv->code, NULL, &v->code, &err) != 0) {
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
}

int kp_procs_open(struct kp_server *s, int workers, struct kp_procs **out,
		  struct kp_error *err)
{
	struct kp_procs *ps = kp_calloc(1, sizeof(*ps));
	struct dirent *e;
	DIR *d;
	int rc;

	if (ps == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	ps->srv = s;
	snprintf(ps->dir, sizeof(ps->dir), "%s/procs", s->cfg.data);
	snprintf(ps->code_dir, sizeof(ps->code_dir), "%s/code", s->cfg.data);
	if ((mkdir(ps->dir, 0755) != 0 && errno != EEXIST) ||
	    (mkdir(ps->code_dir, 0755) != 0 && errno != EEXIST)) {
		kp_free(ps);
		return kp_error_set(err, -errno, "cannot create %s: %s",
				    ps->dir, strerror(errno));
	}
	rc = kp_workers_start(s->loop, workers, &ps->workers);
	if (rc != 0) {
		kp_free(ps);
		return kp_error_set(err, rc, "cannot start workers: %s",
				    kp_error_text(rc));
	}
	d = opendir(ps->dir);
	while (d != NULL && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' ||
		    !kp_topic_name_valid(e->d_name, strlen(e->d_name)))
			continue;
		open_one(ps, e->d_name);
	}
	if (d != NULL)
		closedir(d);
	*out = ps;
	return 0;
}

void kp_procs_quiesce(struct kp_procs *ps)
{
	if (ps != NULL)
		ps->quiesced = true;
}

bool kp_procs_idle(const struct kp_procs *ps)
{
	return ps == NULL || kp_workers_pending(ps->workers) == 0;
}

void kp_procs_close(struct kp_procs *ps)
{
	if (ps == NULL)
		return;
	kp_workers_stop(ps->workers);
	for (size_t i = 0; i < ps->count; i++) {
		struct kp_proc *p = ps->procs[i];

		for (uint32_t k = 0; k < p->version_count; k++) {
			struct proc_version *v = p->versions[k];

			if (!v->zombie && v->inst_started &&
			    v->since_checkpoint > 0)
				kp_pv_checkpoint_now(v);
		}
		answer(&p->create_slot, p, KP_ESHUTDOWN, "server is stopping");
		answer(&p->reload_slot, p, KP_ESHUTDOWN, "server is stopping");
		answer(&p->pending_slot, p, KP_ESHUTDOWN, "server is stopping");
		proc_free(p);
	}
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

static void watch_check(struct kp_proc *p, int64_t mono);
static void replay_rate(struct kp_proc *p, int64_t mono);

void kp_procs_tick(struct kp_procs *ps, int64_t now_ms)
{
	struct tick_args t = { now_ms, kp_workers_now_ms() };

	for (size_t i = 0; i < ps->count; i++) {
		each_version(ps->procs[i], tick_one, &t);
		watch_check(ps->procs[i], t.mono);
		replay_rate(ps->procs[i], t.mono);
	}
}

/* ---- pause, resume, delete -------------------------------------------- */

int kp_proc_pause(struct kp_proc *p, const char *reason, struct kp_error *err)
{
	if (p->live == NULL || p->live->state == PV_FAILED ||
	    p->live->state == PV_STARTING)
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
	save_def(p);
	return 0;
}

int kp_proc_resume(struct kp_proc *p, struct kp_error *err)
{
	struct proc_version *v = p->live;

	if (v == NULL)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s has no live version",
				    p->def.name);
	if (v->state == PV_FAILED && v->inst_started && !v->zombie)
		v->state = PV_RUNNING;
	if (v->state != PV_RUNNING)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s is %s and cannot resume (%s)",
				    p->def.name, kp_pv_state_name(v->state),
				    v->reason);
	p->def.paused = false;
	p->def.pause_reason[0] = '\0';
	v->reason[0] = '\0';
	v->window_total = v->window_errors = 0;
	save_def(p);
	kp_pv_kick(v);
	return 0;
}

/* Deletes the physical outputs of a version numbered 2 or more. */
static void drop_outputs(struct kp_proc *p, struct proc_version *v)
{
	struct kp_server *s = p->owner->srv;
	struct kp_error err;

	for (uint32_t i = 0; i < v->output_count; i++) {
		struct kp_topic *t = kp_catalog_find_physical(
			s->catalog, v->outputs[i], strlen(v->outputs[i]));
		char logical[256], alias[270];

		logical_name(p, i, logical, sizeof(logical));
		snprintf(alias, sizeof(alias), "%s.v%u", logical, v->number);
		kp_catalog_alias_remove(s->catalog, alias);
		/* Version 1's outputs are the logical names themselves. */
		if (t != NULL && v != p->live)
			kp_server_delete_topic(s, t, &err);
	}
}

int kp_proc_delete(struct kp_proc *p, struct kp_error *err)
{
	struct kp_catalog *cat = p->owner->srv->catalog;

	(void)err;
	unlink_proc(p->owner, p);
	for (uint32_t i = 0; i < p->version_count; i++) {
		if (p->versions[i] != p->live)
			drop_outputs(p, p->versions[i]);
	}
	if (p->live != NULL) {
		for (uint32_t i = 0; i <= p->def.output_count; i++) {
			char logical[256], alias[270];

			logical_name(p, i, logical, sizeof(logical));
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
	kp_log_info("proc", "deleted processor %s", p->def.name);
	answer(&p->create_slot, p, KP_ENOTFOUND, "processor was deleted");
	answer(&p->reload_slot, p, KP_ENOTFOUND, "processor was deleted");
	answer(&p->pending_slot, p, KP_ENOTFOUND, "processor was deleted");
	p->deleting = true;
	proc_free(p);
	return 0;
}

/* ---- status ----------------------------------------------------------- */

static void pack_str(struct kp_response *r, const char *key, const char *value)
{
	kp_response_key(r, key);
	if (value == NULL)
		msgpack_pack_nil(&r->pk);
	else
		kp_response_str(r, value, strlen(value));
}

static void pack_u64(struct kp_response *r, const char *key, uint64_t value)
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
	pack_u64(r, "version", b->number);
	pack_str(r, "state", kp_pv_state_name(b->state));
	pack_str(r, "reason", b->reason[0] ? b->reason : NULL);
	pack_u64(r, "records_done", b->processed);
	pack_u64(r, "records_to_go", to_go);
	pack_u64(r, "records_per_second", p->replay_rate_rps);
	pack_u64(r, "eta_ms", eta);
	pack_u64(r, "rate_limit", b->rate);
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
	pack_str(r, "name", p->def.name);
	pack_str(r, "file", v ? v->source : p->def.source);
	pack_str(r, "lang", v && v->code ? v->code->lang : NULL);
	pack_u64(r, "version", v ? v->number : 0);
	pack_u64(r, "revision", v ? v->revision : 0);
	pack_str(r, "hash", v ? v->hash : NULL);
	pack_str(r, "state", proc_state(p));
	pack_str(r, "reason", reason && reason[0] ? reason : NULL);
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
	pack_str(r, "dlq", dlq);
	pack_u64(r, "lag", lag);
	pack_u64(r, "records_processed", v ? v->processed : 0);
	pack_u64(r, "errors", v ? v->errors : 0);
	pack_u64(r, "dead_lettered", v ? v->dead_lettered : 0);
	pack_u64(r, "duplicates_suppressed", v ? v->suppressed : 0);
	pack_str(r, "last_error", v && v->last_error[0] ? v->last_error : NULL);
	pack_u64(r, "view_keys", kp_proc_view(p) ? kp_view_count(kp_proc_view(p)) : 0);
	pack_u64(r, "view_bytes", kp_proc_view(p) ? kp_view_bytes(kp_proc_view(p)) : 0);
	kp_response_key(r, "created_ms");
	msgpack_pack_int64(&r->pk, p->def.created_ms);
	kp_response_key(r, "watch");
	if (p->def.watch)
		msgpack_pack_true(&r->pk);
	else
		msgpack_pack_false(&r->pk);
	pack_str(r, "reload_error",
		 v && v->reload_error[0] ? v->reload_error : NULL);
	pack_u64(r, "versions", p->version_count);
	pack_replay(p, r);
}

void kp_proc_pack_versions(struct kp_proc *p, struct kp_response *r)
{
	msgpack_pack_array(&r->pk, p->version_count);
	for (uint32_t i = 0; i < p->version_count; i++)
		kp_pv_pack(p->versions[i], r);
}

/* ---- reload and --watch ----------------------------------------------- */

/* Hands the loaded code to the live version once it is between batches. */
static void launch_reload(struct kp_proc *p)
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

	if (v == NULL || !v->inst_started || v->zombie)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s has no running live version",
				    p->def.name);
	if (p->reload_code != NULL ||
	    (v->busy && v->job.kind == PV_JOB_RELOAD))
		return kp_error_set(err, KP_ESTATE,
				    "a reload of %s is already in progress",
				    p->def.name);
	rc = kp_proc_code_load(file, p->owner->code_dir, &p->reload_code, err);
	if (rc != 0) {
		snprintf(v->reload_error, sizeof(v->reload_error), "%s",
			 err->msg);
		v->reloads_failed++;
		return KP_EBADREQUEST;
	}
	snprintf(p->reload_source, sizeof(p->reload_source), "%s", file);
	launch_reload(p);
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
		hold(&p->reload_slot, slot);
	return 0;
}

int kp_proc_set_watch(struct kp_proc *p, bool on, struct kp_error *err)
{
	(void)err;
	p->def.watch = on;
	p->watch_hash[0] = '\0';
	return save_def(p);
}

static void watch_check(struct kp_proc *p, int64_t mono)
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
		snprintf(p->watch_hash, sizeof(p->watch_hash), "%s", v->hash);
	if (strcmp(hash, p->watch_hash) == 0)
		return;
	snprintf(p->watch_hash, sizeof(p->watch_hash), "%s", hash);
	kp_log_info("proc", "processor %s: %s changed; reloading", p->def.name,
		    v->source);
	if (start_reload(p, v->source, &err) != 0)
		kp_log_warn("proc", "processor %s: reload failed, the old code keeps running: %s",
			    p->def.name, err.msg);
}

/* ---- replay, rollback, gc --------------------------------------------- */

static struct proc_version *newest_retired(struct kp_proc *p)
{
	struct proc_version *best = NULL;

	for (uint32_t i = 0; i < p->version_count; i++) {
		struct proc_version *v = p->versions[i];

		if (v->role == PV_RETIRED && !v->zombie &&
		    (best == NULL || v->number > best->number))
			best = v;
	}
	return best;
}

/* Removes a version entirely: its topics (numbers >= 2), files, entry. */
static void drop_version(struct kp_proc *p, struct proc_version *v)
{
	drop_outputs(p, v);
	kp_file_remove_tree(v->dir);
	remove_version(p, v);
	if (p->building == v)
		p->building = NULL;
	if (v->busy)
		v->free_when_idle = true;
	else
		kp_pv_free(v);
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
	v->created_ms = kp_server_now_ms(p->owner->srv);
	rc = load_code(p, v, file ? file : p->live ? p->live->source
						   : p->def.source, err);
	if (rc == 0)
		rc = ensure_outputs(p, v, err);
	if (rc == 0 && kp_pv_build(v, NULL, from, value, &offset) != 0)
		rc = kp_error_set(err, -ENOMEM, "out of memory");
	if (rc != 0) {
		kp_pv_free(v);
		return rc;
	}
	v->replay_total = kp_pv_lag(v);
	p->def.next_version++;
	add_version(p, v);
	def_add_version(p, v, from, value, "building");
	p->building = v;
	p->replay_last_processed = 0;
	p->replay_last_ms = kp_workers_now_ms();
	p->replay_rate_rps = 0;
	save_def(p);
	kp_log_info("proc", "processor %s: replay v%u started (%llu records to go)",
		    p->def.name, v->number,
		    (unsigned long long)v->replay_total);
	kp_pv_start(v, true);
	*number = v->number;
	return 0;
}

static void replay_rate(struct kp_proc *p, int64_t mono)
{
	struct proc_version *b = p->building;
	uint64_t done, rps;

	if (b == NULL || mono - p->replay_last_ms < 1000)
		return;
	done = b->processed - p->replay_last_processed;
	rps = done * 1000 / (uint64_t)(mono - p->replay_last_ms);
	p->replay_rate_rps = p->replay_rate_rps == 0
				     ? rps
				     : (p->replay_rate_rps + rps) / 2;
	p->replay_last_processed = b->processed;
	p->replay_last_ms = mono;
}

int kp_proc_rollback(struct kp_proc *p, struct kp_error *err)
{
	struct proc_version *k = newest_retired(p), *cur = p->live;
	struct kp_checkpoint ck;
	int have;

	if (k == NULL)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s has no retired version to roll back to",
				    p->def.name);
	if (p->building != NULL && p->building->state != PV_FAILED)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s: replay v%u is running; wait for it or delete it with proc gc after it fails",
				    p->def.name, p->building->number);
	have = kp_pv_load_checkpoint(k, &ck, err);
	kp_checkpoint_destroy(&ck);
	if (have < 0)
		return err->code;
	kp_proc_code_unref(k->code);
	k->code = NULL;
	if (kp_proc_code_load(kp_proc_def_version(&p->def, k->number)->code,
			      NULL, &k->code, err) != 0)
		return err->code;
	k->role = PV_LIVE;
	p->live = k;
	def_set_role(p, k->number, "live");
	snprintf(p->def.source, sizeof(p->def.source), "%s", k->source);
	point_aliases(p, k);
	if (cur != NULL) {
		retire(p, cur);
		wake_readers(p, cur);
	}
	save_def(p);
	kp_log_info("proc", "processor %s: rolled back from v%u to v%u",
		    p->def.name, cur ? cur->number : 0, k->number);
	kp_pv_start(k, false);
	return 0;
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
	save_def(p);
	return removed;
}

/* ---- reset and verify: operations at a batch boundary of the live ----- */

/* The offset (to, value) means in the input partition of cursor c. */
static uint64_t position_for(struct kp_proc *p, const struct pv_cursor *c,
			     enum kp_proc_from to, int64_t value)
{
	struct kp_topic *t = kp_catalog_find_physical(
		p->owner->srv->catalog, c->topic, strlen(c->topic));
	struct kp_partition_stats st;
	uint64_t o;

	if (t == NULL || c->partition >= t->config.partitions)
		return c->offset;
	kp_partition_stats(t->parts[c->partition].log, &st);
	switch (to) {
	case KP_FROM_LATEST:
		return st.visible_end;
	case KP_FROM_TIME:
		if (kp_partition_offset_for_time(t->parts[c->partition].log,
						 value, &o, NULL) == 0)
			return o;
		return st.start_offset;
	case KP_FROM_OFFSET:
		o = (uint64_t)value;
		return o < st.start_offset ? st.start_offset
		       : o > st.visible_end ? st.visible_end
					    : o;
	default:
		return st.start_offset;
	}
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
		pack_str(&r, "topic", c->topic);
		pack_u64(&r, "partition", c->partition);
		pack_u64(&r, "current", executed ? p->reset_before[i] : c->offset);
		pack_u64(&r, "new", target);
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
	kp_view_clear(v->view);
	v->since_checkpoint = 1;
	kp_pv_checkpoint_now(v);
	kp_log_info("proc", "processor %s v%u reset: view cleared, inputs rewound",
		    p->def.name, v->number);
	answer_plan(p, &p->pending_slot, p->pending_from, p->pending_value,
		    true);
	kp_pv_kick(v);
}

static void run_pending(struct kp_proc *p)
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

	if (p->live == NULL || !p->live->inst_started)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s has no running live version",
				    p->def.name);
	if (p->pending != PENDING_NONE || p->pending_slot != NULL)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s is busy with another reset or verify",
				    p->def.name);
	if (p->live->cursor_count > KP_PROC_MAX_TOPICS * 64)
		return kp_error_set(err, KP_ETOOLARGE, "too many inputs");
	hold(&held, slot);
	if (!execute) {
		answer_plan(p, &held, to, value, false);
		return 0;
	}
	p->pending_slot = held;
	p->pending = PENDING_RESET;
	p->pending_from = to;
	p->pending_value = value;
	if (!p->live->busy)
		run_pending(p);
	return 0;
}

int kp_proc_verify(struct kp_proc *p, enum kp_proc_from from, int64_t value,
		   bool to_set, int64_t to_ts, struct kp_slot *slot,
		   struct kp_error *err)
{
	if (p->live == NULL || !p->live->inst_started || p->live->zombie)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s has no running live version",
				    p->def.name);
	if (p->pending != PENDING_NONE || p->pending_slot != NULL ||
	    p->scratch != NULL)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s is busy with another reset or verify",
				    p->def.name);
	hold(&p->pending_slot, slot);
	p->pending = PENDING_VERIFY;
	p->pending_from = from;
	p->pending_value = value;
	p->pending_to_set = to_set;
	p->pending_to = to_ts;
	if (!p->live->busy)
		run_pending(p);
	return 0;
}
