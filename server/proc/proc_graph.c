/*
 * proc_graph.c - the pipeline as a graph (PROTOCOL.md, proc_graph; the
 * dashboard draws it): processors with their versions, the topics they
 * read and write with what those resolve to, and the edges from a
 * processor to the ones that read its outputs; and the stalled gauge of
 * /metrics. Reads the runtime's structures, changes nothing.
 */
#include "proc_pipeline.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proc.h"
#include "proc_version.h"
#include "base/alloc.h"
#include "base/metrics_text.h"
#include "log/store.h"
#include "log/topic.h"

static void pack_names(struct kp_response *r, const char *k,
		       char names[][201], uint32_t n)
{
	kp_response_key(r, k);
	msgpack_pack_array(&r->pk, n);
	for (uint32_t i = 0; i < n; i++)
		kp_response_str(r, names[i], strlen(names[i]));
}

/* The state proc_status shows for p. */
static const char *state_of(const struct kp_proc *p)
{
	const struct proc_version *v = p->live;

	if (v == NULL)
		return "failed";
	if ((p->def.paused || v->blocked[0] != '\0') &&
	    v->state == PV_RUNNING)
		return "paused";
	return kp_pv_state_name(v->state);
}

/* The physical topics cursors of v read, each once, in cursor order. */
static void pack_version_inputs(struct kp_response *r,
				const struct proc_version *v)
{
	uint32_t n = 0;

	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			kp_response_key(r, "inputs");
			msgpack_pack_array(&r->pk, n);
		}
		for (uint32_t i = 0; i < v->cursor_count; i++) {
			const char *t = v->cursors[i].topic;
			bool seen = false;

			for (uint32_t k = 0; k < i && !seen; k++)
				seen = strcmp(v->cursors[k].topic, t) == 0;
			if (seen)
				continue;
			if (pass == 0)
				n++;
			else
				kp_response_str(r, t, strlen(t));
		}
	}
}

static void pack_processor(struct kp_procs *ps, struct kp_proc *p,
			   struct kp_response *r)
{
	char why[KP_ERROR_MSG_MAX], dlq[256];
	bool stalled = kp_proc_stalled(p, why, sizeof(why));

	kp_proc_def_dlq(&p->def, dlq, sizeof(dlq));
	msgpack_pack_map(&r->pk, 9);
	kp_response_pair_str(r, "name", p->def.name);
	kp_response_pair_u64(r, "version", p->live ? p->live->number : 0);
	kp_response_pair_str(r, "state", state_of(p));
	kp_response_pair_str(r, "stalled", stalled ? why : NULL);
	pack_names(r, "inputs", p->def.inputs, p->def.input_count);
	pack_names(r, "outputs", p->def.outputs, p->def.output_count);
	kp_response_pair_str(r, "dlq", dlq);
	kp_response_pair_str(r, "cascade", kp_pipeline_cascade_of(ps, p));
	kp_response_key(r, "versions");
	msgpack_pack_array(&r->pk, p->version_count);
	for (uint32_t i = 0; i < p->version_count; i++) {
		const struct proc_version *v = p->versions[i];

		msgpack_pack_map(&r->pk, 5);
		kp_response_pair_u64(r, "version", v->number);
		kp_response_pair_str(r, "role", kp_pv_role_name(v->role));
		kp_response_pair_str(r, "state", kp_pv_state_name(v->state));
		pack_version_inputs(r, v);
		kp_response_key(r, "outputs");
		msgpack_pack_array(&r->pk, v->output_count);
		for (uint32_t o = 0; o < v->output_count; o++)
			kp_response_str(r, v->outputs[o],
					strlen(v->outputs[o]));
	}
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every topic some processor reads or writes (outputs), sorted, once. */
static size_t collect_topics(struct kp_procs *ps, const char ***out)
{
	size_t cap = 0, n = 0;
	const char **names;

	for (size_t i = 0; i < ps->count; i++)
		cap += ps->procs[i]->def.input_count +
		       ps->procs[i]->def.output_count;
	names = kp_calloc(cap ? cap : 1, sizeof(*names));
	*out = names;
	if (names == NULL)
		return 0;
	for (size_t i = 0; i < ps->count; i++) {
		struct kp_proc *p = ps->procs[i];

		for (uint32_t k = 0; k < p->def.input_count; k++)
			names[n++] = p->def.inputs[k];
		for (uint32_t k = 0; k < p->def.output_count; k++)
			names[n++] = p->def.outputs[k];
	}
	qsort(names, n, sizeof(*names), by_name);
	cap = n;
	n = 0;
	for (size_t i = 0; i < cap; i++) {
		if (n == 0 || strcmp(names[n - 1], names[i]) != 0)
			names[n++] = names[i];
	}
	return n;
}

static bool reads(const struct kp_proc *q, const char *topic)
{
	for (uint32_t i = 0; i < q->def.input_count; i++) {
		if (strcmp(q->def.inputs[i], topic) == 0)
			return true;
	}
	return false;
}

static void pack_switch(struct kp_response *r, const struct kp_switch *sw)
{
	kp_response_key(r, "switch");
	if (sw == NULL) {
		msgpack_pack_nil(&r->pk);
		return;
	}
	msgpack_pack_map(&r->pk, 3);
	kp_response_pair_u64(r, "generation", sw->generation);
	kp_response_pair_str(r, "physical", sw->physical);
	kp_response_key(r, "offsets");
	msgpack_pack_array(&r->pk, sw->partitions);
	for (uint32_t i = 0; i < sw->partitions; i++)
		msgpack_pack_uint64(&r->pk, sw->offsets[i]);
}

static void pack_topic(struct kp_procs *ps, const char *name,
		       struct kp_response *r)
{
	struct kp_catalog *cat = ps->store->catalog;
	struct kp_topic *t = kp_catalog_find(cat, name, strlen(name));
	struct kp_proc *producer = kp_pipeline_producer(ps, name);
	const char *target;
	uint32_t gen, consumers = 0;
	bool alias = kp_catalog_alias_get(cat, name, strlen(name), &gen,
					  &target) == 1;

	msgpack_pack_map(&r->pk, 6);
	kp_response_pair_str(r, "name", name);
	kp_response_pair_str(r, "physical", t != NULL ? t->name : NULL);
	kp_response_key(r, "generation");
	if (alias)
		msgpack_pack_uint32(&r->pk, gen);
	else
		msgpack_pack_nil(&r->pk);
	kp_response_pair_str(r, "producer",
			     producer != NULL ? producer->def.name : NULL);
	for (size_t i = 0; i < ps->count; i++)
		consumers += reads(ps->procs[i], name) ? 1 : 0;
	kp_response_key(r, "consumers");
	msgpack_pack_array(&r->pk, consumers);
	for (size_t i = 0; i < ps->count; i++) {
		if (reads(ps->procs[i], name))
			kp_response_str(r, ps->procs[i]->def.name,
					strlen(ps->procs[i]->def.name));
	}
	pack_switch(r, alias ? kp_pipeline_switch(ps, name) : NULL);
}

/* The edges into q: (producer, q, topic) per input another one writes. */
static uint32_t pack_edges_into(struct kp_procs *ps, struct kp_proc *q,
				struct kp_response *r)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < q->def.input_count; i++) {
		struct kp_proc *u = kp_pipeline_producer(ps, q->def.inputs[i]);

		if (u == NULL || u == q)
			continue;
		n++;
		if (r == NULL)
			continue;
		msgpack_pack_map(&r->pk, 3);
		kp_response_pair_str(r, "from", u->def.name);
		kp_response_pair_str(r, "to", q->def.name);
		kp_response_pair_str(r, "topic", q->def.inputs[i]);
	}
	return n;
}

void kp_procs_pack_graph(struct kp_procs *ps, struct kp_response *r)
{
	const char **topics = NULL;
	size_t ntopics = collect_topics(ps, &topics);
	uint32_t nedges = 0;

	msgpack_pack_map(&r->pk, 3);
	kp_response_key(r, "processors");
	msgpack_pack_array(&r->pk, ps->count);
	for (size_t i = 0; i < ps->count; i++)
		pack_processor(ps, ps->procs[i], r);
	kp_response_key(r, "topics");
	msgpack_pack_array(&r->pk, topics != NULL ? ntopics : 0);
	for (size_t i = 0; topics != NULL && i < ntopics; i++)
		pack_topic(ps, topics[i], r);
	kp_free(topics);
	for (size_t i = 0; i < ps->count; i++)
		nedges += pack_edges_into(ps, ps->procs[i], NULL);
	kp_response_key(r, "edges");
	msgpack_pack_array(&r->pk, nedges);
	for (size_t i = 0; i < ps->count; i++)
		pack_edges_into(ps, ps->procs[i], r);
}

void kp_pipeline_metrics_render(struct kp_procs *ps,
				struct kp_metrics_writer *w)
{
	char why[KP_ERROR_MSG_MAX];
	struct kp_labels l;

	kp_metrics_family(w, "kappa_processor_stalled", "gauge",
			  "1 while the live version reads nothing more although its input moved on: an input topic was deleted, or its producer writes another physical topic that it does not follow.");
	for (size_t i = 0; i < ps->count; i++) {
		struct kp_proc *p = ps->procs[i];

		if (p->live == NULL || p->deleting)
			continue;
		kp_labels_init(&l);
		kp_labels_str(&l, "processor", p->def.name);
		kp_labels_u64(&l, "version", p->live->number);
		kp_metrics_u64(w, "kappa_processor_stalled", &l,
			       kp_proc_stalled(p, why, sizeof(why)) ? 1 : 0);
	}
}
