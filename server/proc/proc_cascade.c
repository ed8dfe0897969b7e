/*
 * proc_cascade.c - replay and rollback of a processor together with
 * everything downstream of it (proc_pipeline.h): the chain in start order,
 * the replays of the downstream processors reading their upstreams' new
 * physical outputs, the one-step cut-over once all have caught up, what a
 * restart finds of a cascade, and the rollback of a chain.
 */
#include "proc_pipeline.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proc.h"
#include "proc_internal.h"
#include "proc_version.h"
#include "base/clock.h"
#include "base/alloc.h"
#include "base/fsutil.h"
#include "base/logging.h"
#include "log/store.h"
#include "wire/slot.h"

/* ---- the chain --------------------------------------------------------- */

/* true when u writes logical topic name (an output or its DLQ). */
static bool produces(const struct kp_proc *u, const char *name)
{
	char dlq[256];

	kp_proc_def_dlq(&u->def, dlq, sizeof(dlq));
	if (strcmp(dlq, name) == 0)
		return true;
	for (uint32_t i = 0; i < u->def.output_count; i++) {
		if (strcmp(u->def.outputs[i], name) == 0)
			return true;
	}
	return false;
}

/* true when q reads one of u's logical outputs (q downstream of u). */
static bool reads_from(const struct kp_proc *q, const struct kp_proc *u)
{
	if (q == u)
		return false;
	for (uint32_t i = 0; i < q->def.input_count; i++) {
		if (produces(u, q->def.inputs[i]))
			return true;
	}
	return false;
}

static bool listed(struct kp_proc *const *m, uint32_t n,
		   const struct kp_proc *p)
{
	for (uint32_t i = 0; i < n; i++) {
		if (m[i] == p)
			return true;
	}
	return false;
}

/*
 * root and every processor downstream of it, transitively, in an order
 * where each comes after the ones it reads (root first). A cycle through
 * them is refused.
 */
static int chain(struct kp_proc *root, struct kp_proc **out, uint32_t *n,
		 struct kp_error *err)
{
	struct kp_procs *ps = root->owner;
	struct kp_proc *found[KP_CASCADE_MAX];
	uint32_t count = 1, done = 0;

	found[0] = root;
	for (uint32_t k = 0; k < count; k++) {
		for (size_t i = 0; i < ps->count; i++) {
			struct kp_proc *q = ps->procs[i];

			if (q->deleting || listed(found, count, q) ||
			    !reads_from(q, found[k]))
				continue;
			if (count == KP_CASCADE_MAX)
				return kp_error_set(err, KP_ETOOLARGE,
						    "more than %d processors are downstream of %s",
						    KP_CASCADE_MAX - 1,
						    root->def.name);
			found[count++] = q;
		}
	}
	out[done++] = root;
	while (done < count) {
		bool progress = false;

		for (uint32_t k = 1; k < count; k++) {
			bool ready = !listed(out, done, found[k]);

			for (uint32_t j = 0; ready && j < count; j++)
				ready = !reads_from(found[k], found[j]) ||
					listed(out, done, found[j]);
			if (ready) {
				out[done++] = found[k];
				progress = true;
			}
		}
		if (!progress)
			return kp_error_set(err, KP_EBADREQUEST,
					    "the processors downstream of %s read each other in a cycle; a cascade needs a chain",
					    root->def.name);
	}
	for (uint32_t k = 1; k < count; k++) {
		if (reads_from(root, out[k]))
			return kp_error_set(err, KP_EBADREQUEST,
					    "%s reads %s, which is downstream of it: a cycle; a cascade needs a chain",
					    root->def.name, out[k]->def.name);
	}
	*n = count;
	return 0;
}

static struct kp_cascade *cascade_with(struct kp_procs *ps, const char *name,
				       uint32_t version, size_t *index)
{
	struct kp_pipeline *pl = ps->pipeline;

	for (size_t i = 0; i < pl->cascade_count; i++) {
		struct kp_cascade *c = &pl->cascades[i];

		for (uint32_t k = 0; k < c->count; k++) {
			if (strcmp(c->members[k].name, name) != 0 ||
			    (version != 0 && c->members[k].version != version))
				continue;
			if (index != NULL)
				*index = i;
			return c;
		}
	}
	return NULL;
}

const char *kp_pipeline_cascade_of(struct kp_procs *ps,
				   const struct kp_proc *p)
{
	struct kp_cascade *c;

	if (p->building == NULL)
		return NULL;
	c = cascade_with(ps, p->def.name, p->building->number, NULL);
	return c != NULL ? c->root : NULL;
}

/* ---- replay ------------------------------------------------------------ */

static int check_replay(struct kp_proc *q, struct kp_error *err)
{
	bool failed = q->building != NULL && q->building->state == PV_FAILED;

	if (q->building != NULL && !failed)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s: replay v%u is still running",
				    q->def.name, q->building->number);
	if (cascade_with(q->owner, q->def.name, 0, NULL) != NULL)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s is in a cascade replay already",
				    q->def.name);
	if (q->version_count - (failed ? 1 : 0) >= KP_PROC_MAX_VERSIONS)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s has %d versions; remove retired ones with proc gc",
				    q->def.name, KP_PROC_MAX_VERSIONS);
	return 0;
}

/* Removes q's replay (failed, or started by a cascade that is undone). */
static void drop_building(struct kp_proc *q)
{
	struct proc_version *v = q->building;

	kp_proc_drop_outputs(q, v);
	kp_file_remove_tree(v->dir);
	kp_proc_remove_version(q, v);
	q->building = NULL;
	kp_proc_free_version(q, v);
	kp_proc_save_def(q);
}

/*
 * Points v's cursors on an input that an earlier processor of the chain
 * writes at that processor's new version's output, from its start.
 */
static void read_new_outputs(struct proc_version *v, struct kp_proc **m,
			     uint32_t upto)
{
	for (uint32_t i = 0; i < v->cursor_count; i++) {
		struct pv_cursor *c = &v->cursors[i];
		const char *in = kp_pipeline_input_of(v->proc, c->topic);

		for (uint32_t j = 0; in != NULL && j < upto; j++) {
			struct proc_version *b = m[j]->building;

			for (uint32_t o = 0; b != NULL && o < b->output_count;
			     o++) {
				char logical[256];
				struct kp_topic_partition *tp;

				kp_proc_logical_name(m[j], o, logical,
						     sizeof(logical));
				if (strcmp(logical, in) != 0)
					continue;
				snprintf(c->topic, sizeof(c->topic), "%s",
					 b->outputs[o]);
				tp = kp_pv_find_tp(v->owner, c->topic,
						   c->partition);
				c->offset = tp != NULL
					? kp_pv_position(tp, KP_FROM_EARLIEST, 0)
					: 0;
			}
		}
	}
}

/*
 * Starts the replay of q, downstream of m[0..upto): as kp_proc_replay
 * does, but its inputs written by those processors are read from their
 * new versions' outputs; other inputs from the time the cascade was given
 * (from the start for the other forms).
 */
static int start_downstream(struct kp_proc *q, struct kp_proc **m,
			    uint32_t upto, enum kp_proc_from from,
			    int64_t value, uint64_t rate, struct kp_error *err)
{
	struct kp_procs *ps = q->owner;
	struct proc_version *v;
	int rc;

	if (from != KP_FROM_TIME) {
		from = KP_FROM_EARLIEST;
		value = 0;
	}
	if (q->building != NULL)
		drop_building(q);
	v = kp_pv_new(q, ps, q->def.next_version);
	if (v == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	v->role = PV_BUILDING;
	v->rate = rate;
	v->created_ms = ps->now_ms();
	rc = kp_proc_load_code(q, v, q->live ? q->live->source
					     : q->def.source, err);
	if (rc == 0)
		rc = kp_proc_ensure_outputs(q, v, err);
	if (rc == 0 && kp_pv_build(v, NULL, from, value, NULL) != 0)
		rc = kp_error_set(err, -ENOMEM, "out of memory");
	if (rc != 0) {
		kp_pv_free(v);
		return rc;
	}
	read_new_outputs(v, m, upto);
	v->replay_total = kp_pv_lag(v);
	q->def.next_version++;
	kp_proc_add_version(q, v);
	kp_proc_def_add_version(q, v, from, value, "building");
	kp_proc_def_version(&q->def, v->number)->previous_version =
		q->live != NULL ? q->live->number : 0;
	q->building = v;
	q->replay_last_processed = 0;
	q->replay_last_ms = kp_clock_mono_ms();
	q->replay_rate_rps = 0;
	kp_proc_save_def(q);
	kp_log_info("proc", "processor %s: replay v%u started in the cascade of %s, reading %s's new outputs",
		    q->def.name, v->number, m[0]->def.name,
		    m[upto - 1]->def.name);
	/* Its first checkpoint holds those cursors before anything runs. */
	if (kp_pv_checkpoint_now(v) == 0)
		kp_pv_start(v, false);
	else
		kp_pv_start(v, true);
	return 0;
}

int kp_proc_replay_cascade(struct kp_proc *p, const char *file,
			   enum kp_proc_from from, int64_t value,
			   uint64_t rate, struct kp_cascade_step *steps,
			   uint32_t *count, struct kp_error *err)
{
	struct kp_procs *ps = p->owner;
	struct kp_pipeline *pl = ps->pipeline;
	struct kp_proc *m[KP_CASCADE_MAX];
	struct kp_cascade *c;
	uint32_t n = 0, number = 0, started = 0;
	int rc = chain(p, m, &n, err);

	for (uint32_t i = 0; rc == 0 && i < n; i++)
		rc = check_replay(m[i], err);
	if (rc != 0)
		return rc;
	if (n == 1) {
		rc = kp_proc_replay(p, file, from, value, rate, &number, err);
		steps[0].name = p->def.name;
		steps[0].version = number;
		*count = 1;
		return rc;
	}
	c = kp_realloc(pl->cascades, (pl->cascade_count + 1) * sizeof(*c));
	if (c == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	pl->cascades = c;
	c = &pl->cascades[pl->cascade_count++];
	memset(c, 0, sizeof(*c));
	snprintf(c->root, sizeof(c->root), "%s", p->def.name);
	for (uint32_t i = 0; i < n; i++) {
		snprintf(c->members[i].name, sizeof(c->members[i].name), "%s",
			 m[i]->def.name);
		c->members[i].version = m[i]->def.next_version;
	}
	c->count = n;
	/* Recorded first: a restart in the middle finds what was begun. */
	rc = kp_pipeline_save(ps);
	if (rc != 0)
		rc = kp_error_set(err, rc, "cannot record the cascade: %s",
				  kp_error_text(rc));
	if (rc == 0)
		rc = kp_proc_replay(p, file, from, value, rate, &number, err);
	for (started = rc == 0 ? 1 : 0; rc == 0 && started < n; started++)
		rc = start_downstream(m[started], m, started, from, value,
				      rate, err);
	if (rc != 0) {
		for (uint32_t i = 0; i < started; i++) {
			if (m[i]->building != NULL)
				drop_building(m[i]);
		}
		kp_pipeline_cascade_remove(ps, pl->cascade_count - 1);
		kp_pipeline_save(ps);
		return rc;
	}
	for (uint32_t i = 0; i < n; i++) {
		steps[i].name = m[i]->def.name;
		steps[i].version = m[i]->building->number;
		c->members[i].version = m[i]->building->number;
	}
	*count = n;
	kp_pipeline_save(ps);
	kp_log_info("proc", "processor %s: cascade replay of %u processors started",
		    p->def.name, n);
	return 0;
}

/* ---- the cut-over of a cascade ----------------------------------------- */

/* The version of member k while it is still building, or NULL. */
static struct proc_version *member_building(struct kp_procs *ps,
					    const struct kp_cascade_member *k)
{
	struct kp_proc *q = kp_procs_find(ps, k->name, strlen(k->name));

	if (q == NULL || q->deleting || q->building == NULL ||
	    q->building->number != k->version)
		return NULL;
	return q->building;
}

/* true when every output partition of b holds its writes visibly. */
static bool outputs_visible(struct proc_version *b)
{
	for (uint32_t i = 0; i < b->mark_count; i++) {
		struct kp_topic_partition *tp = kp_pv_find_tp(
			b->owner, b->marks[i].topic, b->marks[i].partition);
		struct kp_partition_stats st;

		if (tp == NULL)
			continue;
		kp_partition_stats(tp->log, &st);
		if (st.visible_end < st.end_offset)
			return false;
	}
	return true;
}

static bool all_caught_up(struct kp_procs *ps, const struct kp_cascade *c)
{
	for (uint32_t k = 0; k < c->count; k++) {
		struct proc_version *b = member_building(ps, &c->members[k]);

		if (b == NULL || b->busy || b->state != PV_RUNNING ||
		    !b->inst_started || kp_pv_lag(b) != 0 ||
		    !outputs_visible(b))
			return false;
	}
	return true;
}

/* Cuts every member still building over (in start order), then forgets c. */
static void cut_all(struct kp_procs *ps, size_t index)
{
	struct kp_cascade *c = &ps->pipeline->cascades[index];

	c->cutting = true;
	kp_pipeline_save(ps);
	for (uint32_t k = 0; k < c->count; k++) {
		struct proc_version *b = member_building(ps, &c->members[k]);

		if (b != NULL)
			kp_proc_cut_over(b->proc);
	}
	kp_log_info("proc", "cascade of %s: %u processors cut over together",
		    c->root, c->count);
	kp_pipeline_cascade_remove(ps, index);
	kp_pipeline_save(ps);
}

bool kp_pipeline_caught_up(struct proc_version *v)
{
	struct kp_procs *ps = v->owner;
	size_t index;
	struct kp_cascade *c = cascade_with(ps, v->proc->def.name, v->number,
					    &index);

	if (c == NULL)
		return false;
	if (!c->cutting && all_caught_up(ps, c))
		cut_all(ps, index);
	return true;
}

/*
 * Gives up cascade index: the replays of its other members fail with a
 * reason naming why (one that has not started yet is removed).
 */
static void abandon(struct kp_procs *ps, size_t index, const char *why)
{
	struct kp_cascade *c = &ps->pipeline->cascades[index];

	kp_log_warn("proc", "cascade replay of %s abandoned: %s", c->root, why);
	for (uint32_t k = 0; k < c->count; k++) {
		struct proc_version *b = member_building(ps, &c->members[k]);

		if (b == NULL || b->state == PV_FAILED)
			continue;
		if (b->state == PV_STARTING) {
			drop_building(b->proc);
			continue;
		}
		b->state = PV_FAILED;
		snprintf(b->reason, sizeof(b->reason),
			 "cascade replay of %s abandoned: %s", c->root, why);
	}
	kp_pipeline_cascade_remove(ps, index);
	kp_pipeline_save(ps);
}

/* Why cascade c cannot complete any more, or NULL. */
static const char *broken(struct kp_procs *ps, const struct kp_cascade *c,
			  char *why, size_t cap)
{
	for (uint32_t k = 0; k < c->count; k++) {
		const struct kp_cascade_member *m = &c->members[k];
		struct proc_version *b = member_building(ps, m);

		if (b == NULL) {
			snprintf(why, cap, "%s v%u is gone", m->name, m->version);
			return why;
		}
		if (b->state == PV_FAILED) {
			snprintf(why, cap, "%s v%u failed: %s", m->name,
				 m->version, b->reason);
			return why;
		}
	}
	return NULL;
}

void kp_cascade_watch(struct kp_procs *ps)
{
	struct kp_pipeline *pl = ps->pipeline;
	char why[KP_ERROR_MSG_MAX];

	for (size_t i = 0; i < pl->cascade_count;) {
		if (!pl->cascades[i].cutting &&
		    broken(ps, &pl->cascades[i], why, sizeof(why)) != NULL) {
			abandon(ps, i, why);
			continue;
		}
		i++;
	}
}

void kp_cascade_resume(struct kp_procs *ps)
{
	struct kp_pipeline *pl = ps->pipeline;

	for (size_t i = 0; i < pl->cascade_count;) {
		if (pl->cascades[i].cutting) {
			kp_log_info("proc", "cascade of %s: finishing its cut-over after a restart",
				    pl->cascades[i].root);
			cut_all(ps, i);
			continue;
		}
		i++;
	}
	kp_cascade_watch(ps);
}

/* ---- rollback ---------------------------------------------------------- */

/* The version live before q's live one (its replay's), or NULL. */
static struct proc_version *previous_of(struct kp_proc *q)
{
	struct kp_proc_def_version *dv =
		q->live ? kp_proc_def_version(&q->def, q->live->number) : NULL;
	struct proc_version *best = NULL;

	for (uint32_t i = 0; dv != NULL && i < q->version_count; i++) {
		struct proc_version *v = q->versions[i];

		if (dv->previous_version != 0) {
			if (v->number == dv->previous_version)
				return v;
			continue;
		}
		if (v->number < dv->number &&
		    (best == NULL || v->number > best->number))
			best = v;
	}
	return best;
}

static int check_rollback(struct kp_proc *q, struct kp_error *err)
{
	struct proc_version *k = previous_of(q);

	if (q->building != NULL && q->building->state != PV_FAILED)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s: replay v%u is running; wait for it or delete it with proc gc after it fails",
				    q->def.name, q->building->number);
	if (k == NULL)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s has no version from before its live v%u to roll back to (roll back the processors upstream of it alone: it follows them)",
				    q->def.name, q->live ? q->live->number : 0);
	if (k->role != PV_RETIRED || k->busy || k->retire_when_idle)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s: v%u cannot become live now (%s); retry in a moment",
				    q->def.name, k->number,
				    k->role != PV_RETIRED ? "it is not retired"
							  : "it is finishing its last batch");
	if (q->reload_slot != NULL || q->reload_code != NULL)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s: a reload is in progress; retry when it is done",
				    q->def.name);
	return 0;
}

/* kp_proc_rollback of q to version n, answered to a slot of its own. */
static int rollback_one(struct kp_proc *q, uint32_t n, struct kp_error *err)
{
	struct kp_slot *own = kp_calloc(1, sizeof(*own));
	int rc;

	if (own == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	own->refs = 1;
	kp_buf_init(&own->resp);
	rc = kp_proc_rollback(q, n, 0, own, err);
	kp_slot_unref(own);
	return rc;
}

int kp_proc_rollback_cascade(struct kp_proc *p, struct kp_cascade_step *steps,
			     uint32_t *count, struct kp_error *err)
{
	struct kp_proc *m[KP_CASCADE_MAX];
	uint32_t target[KP_CASCADE_MAX];
	uint32_t n = 0;
	int rc = chain(p, m, &n, err);

	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		rc = check_rollback(m[i], err);
		if (rc == 0)
			target[i] = previous_of(m[i])->number;
	}
	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		rc = rollback_one(m[i], target[i], err);
		if (rc != 0 && i > 0)
			kp_log_error("proc", "cascade rollback of %s: %s did not roll back after %u others did: %s",
				     p->def.name, m[i]->def.name, i, err->msg);
		steps[i].name = m[i]->def.name;
		steps[i].version = target[i];
	}
	if (rc != 0)
		return rc;
	*count = n;
	kp_log_info("proc", "processor %s: %u processors rolled back together",
		    p->def.name, n);
	return 0;
}
