/*
 * proc_topics.c - a processor's topics: its physical output topics (created
 * shaped like the logical ones, dropped with their version), the aliases
 * that point its logical outputs at a version, and which processor uses a
 * topic: its inputs (as named and as resolved by each version), its
 * logical outputs and dead-letter topic, and every version's physical
 * outputs (the protocol server asks before it deletes a topic or takes a
 * client's produce). Loop thread only.
 */
#include "proc.h"

#include <stdio.h>
#include <string.h>

#include "proc_internal.h"
#include "proc_pipeline.h"
#include "proc_version.h"
#include "base/logging.h"
#include "log/store.h"
#include "log/writer.h"

/* ---- topics and aliases ----------------------------------------------- */

static int ensure_topic(struct kp_procs *ps, const char *name,
			const struct kp_topic *like, struct kp_error *err)
{
	struct kp_topic_config cfg;
	struct kp_topic *t;

	if (kp_catalog_find_physical(ps->store->catalog, name, strlen(name)) !=
	    NULL)
		return 0;
	cfg = like != NULL ? like->config : ps->topic_defaults;
	if (kp_store_create_topic(ps->store, name, strlen(name), &cfg, &t,
				  err) != 0)
		return err->code;
	return 1;
}

/* The logical names of v's outputs, the DLQ last. */
void kp_proc_logical_name(struct kp_proc *p, uint32_t i, char *out, size_t cap)
{
	if (i < p->def.output_count)
		snprintf(out, cap, "%s", p->def.outputs[i]);
	else
		kp_proc_def_dlq(&p->def, out, cap);
}

/* Creates v's physical outputs, shaped like the live version's. */
int kp_proc_ensure_outputs(struct kp_proc *p, struct proc_version *v,
			  struct kp_error *err)
{
	struct kp_catalog *cat = p->owner->store->catalog;
	int rc = 0;

	for (uint32_t i = 0; i < v->output_count && rc == 0; i++) {
		char logical[256];
		struct kp_topic *like;

		kp_proc_logical_name(p, i, logical, sizeof(logical));
		like = kp_catalog_find(cat, logical, strlen(logical));
		rc = ensure_topic(p->owner, v->outputs[i], like, err);
		p->created[i] = rc == 1;
		if (rc == 1)
			rc = 0;
	}
	return rc;
}

int kp_proc_open_output(struct kp_proc *p, const char *name, size_t len)
{
	uint32_t i = p->def.output_count;
	char dlq[256];
	struct kp_error err;

	kp_proc_def_dlq(&p->def, dlq, sizeof(dlq));
	if (!p->def.open_outputs || !kp_topic_name_valid(name, len) ||
	    len > KP_PROC_OUTPUT_MAX || i >= KP_PROC_MAX_TOPICS ||
	    (strlen(dlq) == len && memcmp(dlq, name, len) == 0) ||
	    kp_catalog_name_taken(p->owner->store->catalog, name, len))
		return -1;
	memcpy(p->def.outputs[i], name, len);
	p->def.outputs[i][len] = '\0';
	p->def.output_count++;
	for (uint32_t k = 0; k < p->version_count; k++) {
		struct proc_version *u = p->versions[k];
		struct kp_topic *like;

		/* The DLQ stays the last output. */
		memcpy(u->outputs[u->output_count], u->outputs[u->output_count - 1],
		       sizeof(u->outputs[0]));
		kp_pv_physical_name(p->def.outputs[i], u->number, u->outputs[i],
				    sizeof(u->outputs[i]));
		u->allowed[i] = p->def.outputs[i];
		u->output_count++;
		if (u->role == PV_RETIRED)
			continue;
		like = kp_catalog_find(p->owner->store->catalog,
				       p->def.outputs[i],
				       strlen(p->def.outputs[i]));
		if (ensure_topic(p->owner, u->outputs[i], like, &err) < 0)
			kp_log_error("proc", "processor %s: cannot create output %s: %s",
				     p->def.name, u->outputs[i], err.msg);
		kp_pv_add_marks(u, u->outputs[i], NULL);
	}
	kp_proc_save_def(p);
	if (p->live != NULL)
		kp_proc_point_aliases(p, p->live);
	kp_log_info("proc", "processor %s: %s is now one of its outputs",
		    p->def.name, p->def.outputs[i]);
	return 0;
}

/* Undoes a create: the aliases it set and the topics it made. */
void kp_proc_undo_create(struct kp_proc *p, struct proc_version *v)
{
	struct kp_store *s = p->owner->store;
	struct kp_error err;

	for (uint32_t i = 0; i < v->output_count; i++) {
		char logical[256], v1[270];
		struct kp_topic *t;

		kp_proc_logical_name(p, i, logical, sizeof(logical));
		snprintf(v1, sizeof(v1), "%s.v1", logical);
		kp_catalog_alias_remove(s->catalog, logical);
		kp_catalog_alias_remove(s->catalog, v1);
		t = kp_catalog_find_physical(s->catalog, v->outputs[i],
					     strlen(v->outputs[i]));
		if (p->created[i] && t != NULL)
			kp_store_delete_topic(s, t, &err);
	}
}

/*
 * Records where the outputs that v's aliases will repoint switch (their
 * new physical topics' ends now), durably, before they are repointed.
 */
static void note_switches(struct kp_proc *p, struct proc_version *v)
{
	struct kp_catalog *cat = p->owner->store->catalog;
	bool noted = false;

	for (uint32_t i = 0; i < v->output_count; i++) {
		char logical[256];
		const char *target;
		uint32_t gen;

		kp_proc_logical_name(p, i, logical, sizeof(logical));
		if (kp_catalog_alias_get(cat, logical, strlen(logical), &gen,
					 &target) != 1 ||
		    (gen == v->number && strcmp(target, v->outputs[i]) == 0))
			continue;
		if (kp_pipeline_switching(p->owner, logical, v->number,
					  v->outputs[i]) != 0)
			kp_log_error("proc", "processor %s: cannot note where %s switches to %s",
				     p->def.name, logical, v->outputs[i]);
		noted = true;
	}
	if (noted)
		kp_pipeline_save(p->owner);
}

/*
 * Points the logical outputs at v (generation v->number); "<logical>.v1"
 * always names version 1's outputs, which live under the logical names.
 */
int kp_proc_point_aliases(struct kp_proc *p, struct proc_version *v)
{
	struct kp_catalog *cat = p->owner->store->catalog;
	int rc = 0;

	note_switches(p, v);
	for (uint32_t i = 0; i < v->output_count && rc == 0; i++) {
		char logical[256], v1[256];

		kp_proc_logical_name(p, i, logical, sizeof(logical));
		snprintf(v1, sizeof(v1), "%s.v1", logical);
		rc = kp_catalog_alias_set(cat, logical, v->outputs[i],
					  v->number);
		if (rc == 0)
			rc = kp_catalog_alias_set(cat, v1, logical, 1);
	}
	return rc;
}

/* Answers parked fetches on v's outputs, so their readers come back now. */
void kp_proc_wake_readers(struct kp_proc *p, struct proc_version *v)
{
	struct kp_catalog *cat = p->owner->store->catalog;

	for (uint32_t i = 0; i < v->output_count; i++) {
		struct kp_topic *t = kp_catalog_find_physical(
			cat, v->outputs[i], strlen(v->outputs[i]));

		for (uint32_t k = 0; t != NULL && k < t->config.partitions; k++)
			kp_writer_flush_waits(&p->owner->store->writer,
					      &t->parts[k], 0, NULL);
	}
}

/* Deletes the physical outputs of a version numbered 2 or more. */
void kp_proc_drop_outputs(struct kp_proc *p, struct proc_version *v)
{
	struct kp_store *s = p->owner->store;
	struct kp_error err;

	for (uint32_t i = 0; i < v->output_count; i++) {
		struct kp_topic *t = kp_catalog_find_physical(
			s->catalog, v->outputs[i], strlen(v->outputs[i]));
		char logical[256], alias[270];

		kp_proc_logical_name(p, i, logical, sizeof(logical));
		snprintf(alias, sizeof(alias), "%s.v%u", logical, v->number);
		kp_catalog_alias_remove(s->catalog, alias);
		/* Version 1's outputs are the logical names themselves. */
		if (t != NULL && v != p->live)
			kp_store_delete_topic(s, t, &err);
	}
}

/* ---- who uses a topic ------------------------------------------------- */

static bool same(const char *a, const char *name, size_t len)
{
	return strlen(a) == len && memcmp(a, name, len) == 0;
}

/* name is one of p's logical outputs or its dead-letter topic. */
static bool writes_logical(const struct kp_proc *p, const char *name,
			   size_t len)
{
	char dlq[256];

	kp_proc_def_dlq(&p->def, dlq, sizeof(dlq));
	if (same(dlq, name, len))
		return true;
	for (uint32_t i = 0; i < p->def.output_count; i++) {
		if (same(p->def.outputs[i], name, len))
			return true;
	}
	return false;
}

/*
 * p writes name: a logical output, its dead-letter topic, any version's
 * physical one, or a name a future version's would take (BASE.vN of one
 * of those), which nobody else may have.
 */
static bool writes(const struct kp_proc *p, const char *name, size_t len)
{
	size_t base = kp_proc_version_base(name, len, NULL);

	if (writes_logical(p, name, len) ||
	    (base > 0 && writes_logical(p, name, base)))
		return true;
	for (uint32_t k = 0; k < p->version_count; k++) {
		const struct proc_version *v = p->versions[k];

		for (uint32_t i = 0; i < v->output_count; i++) {
			if (same(v->outputs[i], name, len))
				return true;
		}
	}
	return false;
}

static bool reads(const struct kp_proc *p, const char *name, size_t len)
{
	for (uint32_t i = 0; i < p->def.input_count; i++) {
		if (same(p->def.inputs[i], name, len))
			return true;
	}
	for (uint32_t k = 0; k < p->version_count; k++) {
		const struct proc_version *v = p->versions[k];

		for (uint32_t i = 0; i < v->cursor_count; i++) {
			if (same(v->cursors[i].topic, name, len))
				return true;
		}
	}
	return false;
}

const char *kp_procs_topic_user(struct kp_procs *ps, const char *name,
				size_t len, bool writers_only)
{
	for (size_t i = 0; ps != NULL && i < ps->count; i++) {
		const struct kp_proc *p = ps->procs[i];

		if (writes(p, name, len) ||
		    (!writers_only && reads(p, name, len)))
			return p->def.name;
	}
	return NULL;
}
