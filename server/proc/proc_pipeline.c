/*
 * proc_pipeline.c - downstream processors following their logical inputs
 * (proc_pipeline.h): the switch points and their file, moving a version's
 * cursor from an older physical topic of an input to the one its name
 * resolves to now, and the stalled report of a processor that cannot.
 */
#include "proc_pipeline.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "proc.h"
#include "proc_internal.h"
#include "proc_version.h"
#include "base/alloc.h"
#include "base/fsutil.h"
#include "base/logging.h"
#include "base/mp.h"
#include "log/store.h"
#include "log/topic.h"

#define FORMAT 1

/* ---- the file ---------------------------------------------------------- */

static void key(msgpack_packer *pk, const char *k)
{
	msgpack_pack_str_with_body(pk, k, strlen(k));
}

static void pack_str(msgpack_packer *pk, const char *k, const char *v)
{
	key(pk, k);
	msgpack_pack_str_with_body(pk, v, strlen(v));
}

static void pack_switch(msgpack_packer *pk, const struct kp_switch *sw)
{
	msgpack_pack_map(pk, 4);
	pack_str(pk, "topic", sw->topic);
	pack_str(pk, "physical", sw->physical);
	key(pk, "generation");
	msgpack_pack_uint32(pk, sw->generation);
	key(pk, "offsets");
	msgpack_pack_array(pk, sw->partitions);
	for (uint32_t i = 0; i < sw->partitions; i++)
		msgpack_pack_uint64(pk, sw->offsets[i]);
}

static void pack_cascade(msgpack_packer *pk, const struct kp_cascade *c)
{
	msgpack_pack_map(pk, 3);
	pack_str(pk, "root", c->root);
	key(pk, "cutting");
	if (c->cutting)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
	key(pk, "members");
	msgpack_pack_array(pk, c->count);
	for (uint32_t i = 0; i < c->count; i++) {
		msgpack_pack_map(pk, 2);
		pack_str(pk, "name", c->members[i].name);
		key(pk, "version");
		msgpack_pack_uint32(pk, c->members[i].version);
	}
}

int kp_pipeline_save(struct kp_procs *ps)
{
	struct kp_pipeline *pl = ps->pipeline;
	struct kp_buf out;
	msgpack_packer pk;
	int rc;

	kp_buf_init(&out);
	msgpack_packer_init(&pk, &out, kp_buf_msgpack_write);
	msgpack_pack_map(&pk, 3);
	key(&pk, "format");
	msgpack_pack_uint32(&pk, FORMAT);
	key(&pk, "switches");
	msgpack_pack_array(&pk, pl->switch_count);
	for (size_t i = 0; i < pl->switch_count; i++)
		pack_switch(&pk, &pl->switches[i]);
	key(&pk, "cascades");
	msgpack_pack_array(&pk, pl->cascade_count);
	for (size_t i = 0; i < pl->cascade_count; i++)
		pack_cascade(&pk, &pl->cascades[i]);
	rc = kp_file_write_atomic(pl->path, out.data, out.len);
	kp_buf_destroy(&out);
	if (rc != 0)
		kp_log_error("proc", "cannot write %s: %s", pl->path,
			     kp_error_text(rc));
	return rc;
}

static int get_name(struct kp_mp_view map, const char *k, char out[201])
{
	struct kp_mp_view v;

	if (kp_field_str(map, k, &v, NULL) != 0 || v.len == 0 || v.len > 200)
		return -1;
	memcpy(out, v.ptr, v.len);
	out[v.len] = '\0';
	return 0;
}

static int get_u32(struct kp_mp_view map, const char *k, uint32_t *out)
{
	uint64_t v;

	if (kp_field_uint(map, k, &v, NULL) != 0 || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int decode_switch(struct kp_mp_view map, struct kp_switch *sw)
{
	struct kp_mp_iter it;
	struct kp_mp_view item;
	uint32_t n;

	memset(sw, 0, sizeof(*sw));
	if (get_name(map, "topic", sw->topic) != 0 ||
	    get_name(map, "physical", sw->physical) != 0 ||
	    get_u32(map, "generation", &sw->generation) != 0 ||
	    kp_field_array(map, "offsets", &it, &n, NULL) != 0 ||
	    n > KP_MAX_PARTITIONS)
		return -1;
	sw->offsets = kp_calloc(n ? n : 1, sizeof(*sw->offsets));
	if (sw->offsets == NULL)
		return -1;
	while (kp_mp_array_next(&it, &item) == 1) {
		if (kp_mp_read_uint(item, &sw->offsets[sw->partitions]) != 0)
			return -1;
		sw->partitions++;
	}
	return 0;
}

static int decode_cascade(struct kp_mp_view map, struct kp_cascade *c)
{
	struct kp_mp_iter it;
	struct kp_mp_view item;
	uint32_t n;

	memset(c, 0, sizeof(*c));
	if (get_name(map, "root", c->root) != 0 ||
	    kp_field_bool(map, "cutting", &c->cutting, NULL) != 0 ||
	    kp_field_array(map, "members", &it, &n, NULL) != 0 ||
	    n > KP_CASCADE_MAX)
		return -1;
	while (kp_mp_array_next(&it, &item) == 1) {
		struct kp_cascade_member *m = &c->members[c->count];

		if (get_name(item, "name", m->name) != 0 ||
		    get_u32(item, "version", &m->version) != 0)
			return -1;
		c->count++;
	}
	return 0;
}

static int decode(struct kp_pipeline *pl, struct kp_mp_view map)
{
	struct kp_mp_iter it;
	struct kp_mp_view item;
	uint32_t n, format;

	if (get_u32(map, "format", &format) != 0 || format != FORMAT ||
	    kp_field_array(map, "switches", &it, &n, NULL) != 0)
		return -1;
	pl->switches = kp_calloc(n ? n : 1, sizeof(*pl->switches));
	if (pl->switches == NULL)
		return -1;
	while (kp_mp_array_next(&it, &item) == 1) {
		if (decode_switch(item, &pl->switches[pl->switch_count]) != 0) {
			kp_free(pl->switches[pl->switch_count].offsets);
			return -1;
		}
		pl->switch_count++;
	}
	if (kp_field_array(map, "cascades", &it, &n, NULL) != 0)
		return -1;
	pl->cascades = kp_calloc(n ? n : 1, sizeof(*pl->cascades));
	if (pl->cascades == NULL)
		return -1;
	while (kp_mp_array_next(&it, &item) == 1) {
		if (decode_cascade(item, &pl->cascades[pl->cascade_count]) != 0)
			return -1;
		pl->cascade_count++;
	}
	return 0;
}

static void clear(struct kp_pipeline *pl)
{
	for (size_t i = 0; i < pl->switch_count; i++)
		kp_free(pl->switches[i].offsets);
	kp_free(pl->switches);
	kp_free(pl->cascades);
	pl->switches = NULL;
	pl->cascades = NULL;
	pl->switch_count = pl->cascade_count = 0;
}

int kp_pipeline_open(struct kp_procs *ps, struct kp_error *err)
{
	struct kp_pipeline *pl = kp_calloc(1, sizeof(*pl));
	struct kp_mp_view map;
	struct kp_buf data;
	int rc;

	if (pl == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	ps->pipeline = pl;
	snprintf(pl->path, sizeof(pl->path), "%s/.pipeline", ps->dir);
	kp_buf_init(&data);
	rc = kp_file_read(pl->path, &data);
	if (rc == -ENOENT) {
		rc = 0;
	} else if (rc != 0) {
		rc = kp_error_set(err, rc, "%s: %s", pl->path,
				  kp_error_text(rc));
	} else if (kp_mp_validate_one(data.data, data.len, &map) != 0 ||
		   kp_mp_type(map) != KP_MP_MAP || decode(pl, map) != 0) {
		/* Downstream processors then follow from the ends they find. */
		kp_log_error("proc", "%s is damaged; starting without its switch points and cascades",
			     pl->path);
		clear(pl);
	}
	kp_buf_destroy(&data);
	return rc;
}

void kp_pipeline_close(struct kp_procs *ps)
{
	if (ps->pipeline == NULL)
		return;
	clear(ps->pipeline);
	kp_free(ps->pipeline);
	ps->pipeline = NULL;
}

void kp_pipeline_cascade_remove(struct kp_procs *ps, size_t i)
{
	struct kp_pipeline *pl = ps->pipeline;

	memmove(&pl->cascades[i], &pl->cascades[i + 1],
		(pl->cascade_count - i - 1) * sizeof(*pl->cascades));
	pl->cascade_count--;
}

/* ---- switch points ------------------------------------------------------ */

static struct kp_switch *switch_find(struct kp_pipeline *pl, const char *name)
{
	for (size_t i = 0; i < pl->switch_count; i++) {
		if (strcmp(pl->switches[i].topic, name) == 0)
			return &pl->switches[i];
	}
	return NULL;
}

const struct kp_switch *kp_pipeline_switch(struct kp_procs *ps,
					   const char *name)
{
	return switch_find(ps->pipeline, name);
}

int kp_pipeline_switching(struct kp_procs *ps, const char *name,
			  uint32_t generation, const char *physical)
{
	struct kp_pipeline *pl = ps->pipeline;
	struct kp_topic *t = kp_catalog_find_physical(ps->store->catalog,
						      physical,
						      strlen(physical));
	struct kp_switch *sw;
	uint64_t *offsets;
	uint32_t n = t != NULL ? t->config.partitions : 0;

	if (strlen(name) > 200 || strlen(physical) > 200)
		return -EINVAL;
	offsets = kp_calloc(n ? n : 1, sizeof(*offsets));
	if (offsets == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		offsets[i] = kp_pv_written_end(ps, physical, i);
	sw = switch_find(pl, name);
	if (sw == NULL) {
		sw = kp_realloc(pl->switches,
				(pl->switch_count + 1) * sizeof(*sw));
		if (sw == NULL) {
			kp_free(offsets);
			return -ENOMEM;
		}
		pl->switches = sw;
		sw = &pl->switches[pl->switch_count++];
		memset(sw, 0, sizeof(*sw));
		snprintf(sw->topic, sizeof(sw->topic), "%s", name);
	}
	kp_free(sw->offsets);
	snprintf(sw->physical, sizeof(sw->physical), "%s", physical);
	sw->generation = generation;
	sw->partitions = n;
	sw->offsets = offsets;
	return 0;
}

/* ---- who writes and reads what ------------------------------------------ */

static bool is_version_of(const char *physical, const char *logical)
{
	size_t n = strlen(logical);
	const char *p = physical + n;

	if (strncmp(physical, logical, n) != 0)
		return false;
	if (*p == '\0')
		return true;
	if (p[0] != '.' || p[1] != 'v' || !isdigit((unsigned char)p[2]))
		return false;
	for (p += 2; *p != '\0'; p++) {
		if (!isdigit((unsigned char)*p))
			return false;
	}
	return true;
}

const char *kp_pipeline_input_of(const struct kp_proc *p,
				 const char *physical)
{
	for (uint32_t i = 0; i < p->def.input_count; i++) {
		if (is_version_of(physical, p->def.inputs[i]))
			return p->def.inputs[i];
	}
	return NULL;
}

/* The version (and its output index) that writes physical topic name. */
static struct proc_version *writer_of(struct kp_procs *ps, const char *name,
				      uint32_t *index)
{
	for (size_t i = 0; i < ps->count; i++) {
		struct kp_proc *q = ps->procs[i];

		for (uint32_t k = 0; k < q->version_count; k++) {
			struct proc_version *u = q->versions[k];

			for (uint32_t o = 0; o < u->output_count; o++) {
				if (strcmp(u->outputs[o], name) != 0)
					continue;
				if (index != NULL)
					*index = o;
				return u;
			}
		}
	}
	return NULL;
}

struct kp_proc *kp_pipeline_producer(struct kp_procs *ps, const char *name)
{
	struct proc_version *u;

	for (size_t i = 0; i < ps->count; i++) {
		struct kp_proc *q = ps->procs[i];
		char dlq[256];

		kp_proc_def_dlq(&q->def, dlq, sizeof(dlq));
		for (uint32_t o = 0; o <= q->def.output_count; o++) {
			const char *out = o < q->def.output_count
						  ? q->def.outputs[o] : dlq;

			if (is_version_of(name, out))
				return q;
		}
	}
	u = writer_of(ps, name, NULL);
	return u != NULL ? u->proc : NULL;
}

/* ---- following ------------------------------------------------------------ */

enum follow { FOLLOW_NO, FOLLOW_WAIT, FOLLOW_NOW };

/* Where a cursor's input resolves to now. */
struct target {
	const char *logical;      /* the input, as its processor names it */
	const char *physical;     /* borrowed from the catalog */
	uint32_t generation;
};

/*
 * Whether cursor c of v follows its input to another physical topic: NO
 * when it reads what the input resolves to (or cannot move), WAIT while
 * the topic it reads may still grow or holds records it has not read.
 */
static enum follow follow_target(struct proc_version *v,
				 const struct pv_cursor *c, struct target *t)
{
	struct kp_procs *ps = v->owner;
	struct kp_catalog *cat = ps->store->catalog;
	struct kp_partition_stats st;
	struct kp_topic_partition *tp;
	struct proc_version *w;
	struct kp_topic *nt;

	t->logical = kp_pipeline_input_of(v->proc, c->topic);
	if (t->logical == NULL ||
	    kp_catalog_alias_get(cat, t->logical, strlen(t->logical),
				 &t->generation, &t->physical) != 1 ||
	    strcmp(t->physical, c->topic) == 0)
		return FOLLOW_NO;
	nt = kp_catalog_find_physical(cat, t->physical, strlen(t->physical));
	if (nt == NULL || c->partition >= nt->config.partitions ||
	    kp_pv_reads(v, t->physical, c->partition))
		return FOLLOW_NO;
	tp = kp_pv_find_tp(ps, c->topic, c->partition);
	if (tp == NULL)
		return FOLLOW_NOW;
	w = writer_of(ps, c->topic, NULL);
	/* A cascade's new version reads another's output before the switch. */
	if (w != NULL && (w->role == PV_LIVE || w->role == PV_BUILDING))
		return FOLLOW_NO;
	if (w != NULL && (w->busy || w->retire_when_idle || w->stop_when_idle))
		return FOLLOW_WAIT;
	kp_partition_stats(tp->log, &st);
	if (st.visible_end < st.end_offset || c->offset < st.visible_end)
		return FOLLOW_WAIT;
	return FOLLOW_NOW;
}

/* The offset of the switch to t in partition part (else the end now). */
static uint64_t switch_offset(struct kp_procs *ps, const struct target *t,
			      uint32_t part, bool *known)
{
	struct kp_switch *sw = switch_find(ps->pipeline, t->logical);

	*known = sw != NULL && sw->generation == t->generation &&
		 strcmp(sw->physical, t->physical) == 0 &&
		 part < sw->partitions;
	if (*known)
		return sw->offsets[part];
	return kp_pv_written_end(ps, t->physical, part);
}

/* The version number whose physical topic of logical is physical. */
static uint32_t version_number(const char *physical, const char *logical)
{
	const char *p = physical + strlen(logical);

	return *p == '\0' ? 1 : (uint32_t)strtoul(p + 2, NULL, 10);
}

/* Moves v's cursors that may follow their input now; true if any moved. */
static bool follow_version(struct proc_version *v)
{
	bool moved = false;

	if (v->free_when_idle ||
	    (v->busy && v->job.kind != PV_JOB_INIT) ||
	    (v->role != PV_LIVE && v->role != PV_BUILDING))
		return false;
	for (uint32_t i = 0; i < v->cursor_count; i++) {
		struct pv_cursor *c = &v->cursors[i];
		struct target t;
		bool known;
		uint64_t at;
		int rc;

		if (follow_target(v, c, &t) != FOLLOW_NOW)
			continue;
		at = switch_offset(v->owner, &t, c->partition, &known);
		rc = kp_pv_order_move(v, i,
				      version_number(t.physical, t.logical), at);
		if (rc == -EAGAIN)
			continue;       /* its own recorded steps come first */
		if (rc != 0) {
			kp_log_warn("proc", "processor %s v%u: input %s moved to %s; cannot record the move yet (%s), following it later",
				    v->proc->def.name, v->number, t.logical,
				    t.physical, kp_error_text(rc));
			continue;
		}
		if (known)
			kp_log_info("proc", "processor %s v%u: input %s moved from %s to %s (generation %u); following it in partition %u from offset %llu, where it switched",
				    v->proc->def.name, v->number, t.logical,
				    c->topic, t.physical, t.generation,
				    c->partition, (unsigned long long)at);
		else
			kp_log_warn("proc", "processor %s v%u: input %s moved from %s to %s (generation %u) at an unrecorded point; following it in partition %u from its end, offset %llu",
				    v->proc->def.name, v->number, t.logical,
				    c->topic, t.physical, t.generation,
				    c->partition, (unsigned long long)at);
		snprintf(c->topic, sizeof(c->topic), "%s", t.physical);
		c->offset = at;
		moved = true;
	}
	if (moved) {
		/* The next checkpoint records the new positions. */
		v->since_checkpoint++;
		if (!v->busy)
			kp_pv_kick(v);
	}
	return moved;
}

static void follow_all(struct kp_procs *ps)
{
	for (size_t i = 0; i < ps->count; i++) {
		struct kp_proc *p = ps->procs[i];

		for (uint32_t k = 0; k < p->version_count; k++)
			follow_version(p->versions[k]);
	}
}

void kp_pipeline_started(struct kp_procs *ps)
{
	kp_cascade_resume(ps);
	follow_all(ps);
}

void kp_pipeline_tick(struct kp_procs *ps)
{
	follow_all(ps);
	kp_cascade_watch(ps);
}

/* ---- stalled ----------------------------------------------------------- */

/* Why cursor c of v reads nothing any more while its input moved on. */
static bool cursor_stalled(struct proc_version *v, const struct pv_cursor *c,
			   char *why, size_t cap)
{
	struct kp_procs *ps = v->owner;
	struct kp_partition_stats st;
	struct kp_topic_partition *tp;
	struct proc_version *w, *now;
	struct target t;
	uint32_t o = 0;

	if (follow_target(v, c, &t) != FOLLOW_NO)
		return false;
	tp = kp_pv_find_tp(ps, c->topic, c->partition);
	if (tp == NULL) {
		snprintf(why, cap, "input topic %s was deleted; nothing is read from it",
			 c->topic);
		return true;
	}
	w = writer_of(ps, c->topic, &o);
	if (w == NULL || w->role == PV_LIVE || w->role == PV_BUILDING ||
	    w->busy)
		return false;
	now = w->proc->live;
	if (now == NULL || o >= now->output_count ||
	    strcmp(now->outputs[o], c->topic) == 0)
		return false;
	kp_partition_stats(tp->log, &st);
	if (c->offset < st.visible_end)
		return false;
	snprintf(why, cap, "it has read all of %s, which %s v%u wrote and no longer writes: %s writes %s now (v%u), which this processor does not read",
		 c->topic, w->proc->def.name, w->number, w->proc->def.name,
		 now->outputs[o], now->number);
	return true;
}

bool kp_proc_stalled(struct kp_proc *p, char *why, size_t cap)
{
	struct proc_version *v = p->live;
	struct kp_catalog *cat = p->owner->store->catalog;

	if (v == NULL || p->deleting || v->state == PV_FAILED)
		return false;
	for (uint32_t i = 0; i < p->def.input_count; i++) {
		const char *in = p->def.inputs[i];

		if (kp_catalog_find(cat, in, strlen(in)) != NULL)
			continue;
		snprintf(why, cap, "input topic %s was deleted; nothing is read from it",
			 in);
		return true;
	}
	for (uint32_t i = 0; i < v->cursor_count; i++) {
		if (cursor_stalled(v, &v->cursors[i], why, cap))
			return true;
	}
	return false;
}
