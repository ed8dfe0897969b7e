/*
 * proc_topics.c - which processor uses a topic: its inputs (as named and as
 * resolved by each version), its logical outputs and dead-letter topic, and
 * every version's physical outputs. The protocol server asks before it
 * deletes a topic or takes a client's produce. Loop thread only.
 */
#include "proc.h"

#include <string.h>

#include "proc_version.h"

static bool same(const char *a, const char *name, size_t len)
{
	return strlen(a) == len && memcmp(a, name, len) == 0;
}

static bool writes(const struct kp_proc *p, const char *name, size_t len)
{
	char dlq[256];

	kp_proc_def_dlq(&p->def, dlq, sizeof(dlq));
	if (same(dlq, name, len))
		return true;
	for (uint32_t i = 0; i < p->def.output_count; i++) {
		if (same(p->def.outputs[i], name, len))
			return true;
	}
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
