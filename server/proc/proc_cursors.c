/*
 * proc_cursors.c - where a processor version is in its inputs: cursors
 * built from a start position or a checkpoint, and the checkpoint that
 * captures them with the view, the output marks and the steps done.
 */
#include "proc_version.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/logging.h"
#include "log/store.h"

uint64_t kp_pv_position(struct kp_topic_partition *tp, enum kp_proc_from from,
			int64_t value)
{
	struct kp_partition_stats st;
	uint64_t o;

	kp_partition_stats(tp->log, &st);
	switch (from) {
	case KP_FROM_LATEST:
		return st.visible_end;
	case KP_FROM_TIME:
		if (kp_partition_offset_for_time(tp->log, value, &o, NULL) == 0)
			return o;
		return st.start_offset;
	case KP_FROM_OFFSET:
		o = value < 0 ? 0 : (uint64_t)value;
		if (o < st.start_offset)
			return st.start_offset;
		return o > st.visible_end ? st.visible_end : o;
	default:
		return st.start_offset;
	}
}

static int build_cursors(struct proc_version *v, const struct kp_checkpoint *ck,
			 enum kp_proc_from from, int64_t from_ts,
			 const uint64_t *offset)
{
	struct kp_proc_def *def = &v->proc->def;
	struct kp_catalog *cat = v->owner->store->catalog;
	uint32_t n = 0;

	for (uint32_t i = 0; i < def->input_count; i++) {
		struct kp_topic *t = kp_catalog_find(cat, def->inputs[i],
						     strlen(def->inputs[i]));

		n += t ? t->config.partitions : 0;
	}
	for (uint32_t k = 0; ck && k < ck->cursor_count; k++)
		n++;
	v->cursors = kp_calloc(n ? n : 1, sizeof(*v->cursors));
	if (v->cursors == NULL)
		return -ENOMEM;
	if (ck != NULL) {
		/* A checkpoint names the physical inputs it was reading. */
		for (uint32_t k = 0; k < ck->cursor_count; k++) {
			struct pv_cursor *c = &v->cursors[v->cursor_count++];

			snprintf(c->topic, sizeof(c->topic), "%s",
				 ck->cursors[k].topic);
			c->partition = ck->cursors[k].partition;
			c->offset = ck->cursors[k].offset;
			c->stop = UINT64_MAX;
		}
		return 0;
	}
	for (uint32_t i = 0; i < def->input_count; i++) {
		struct kp_topic *t = kp_catalog_find(cat, def->inputs[i],
						     strlen(def->inputs[i]));

		for (uint32_t part = 0; t && part < t->config.partitions;
		     part++) {
			struct pv_cursor *c = &v->cursors[v->cursor_count++];

			snprintf(c->topic, sizeof(c->topic), "%s", t->name);
			c->partition = part;
			c->offset = kp_pv_position(
				&t->parts[part], from,
				from == KP_FROM_OFFSET && offset
					? (int64_t)*offset
					: from_ts);
			c->stop = UINT64_MAX;
		}
	}
	return 0;
}

uint64_t kp_pv_written_end(struct kp_procs *ps, const char *topic,
			    uint32_t part)
{
	struct kp_topic_partition *tp = kp_pv_find_tp(ps, topic, part);
	struct kp_partition_stats st;

	if (tp == NULL)
		return 0;
	kp_partition_stats(tp->log, &st);
	return st.end_offset;
}

int kp_pv_build(struct proc_version *v, const struct kp_checkpoint *ck,
		enum kp_proc_from from, int64_t from_ts, const uint64_t *offset)
{
	int rc = build_cursors(v, ck, from, from_ts, offset);

	if (ck != NULL)
		v->checkpointed_ms = ck->at_ms;
	if (rc == 0)
		rc = kp_pv_order_open(v, ck);

	for (uint32_t i = 0; i < v->output_count && rc == 0; i++)
		rc = kp_pv_add_marks(v, v->outputs[i], ck);
	for (uint32_t i = 0; i < v->mark_count; i++) {
		if (v->marks[i].suppress > 0)
			kp_log_info("proc",
				    "processor %s v%u: %llu outputs in %s/%u were written after its checkpoint; the replay will not write them again",
				    v->proc->def.name, v->number,
				    (unsigned long long)v->marks[i].suppress,
				    v->marks[i].topic, v->marks[i].partition);
	}
	if (ck != NULL) {
		v->processed = ck->processed;
		v->errors = ck->errors;
		v->dead_lettered = ck->dead_lettered;
	}
	return rc;
}

void kp_pv_set_cursors(struct proc_version *v, const struct kp_checkpoint *ck)
{
	for (uint32_t i = 0; i < v->cursor_count; i++) {
		struct pv_cursor *c = &v->cursors[i];

		for (uint32_t k = 0; k < ck->cursor_count; k++) {
			if (ck->cursors[k].partition == c->partition &&
			    strcmp(ck->cursors[k].topic, c->topic) == 0)
				c->offset = ck->cursors[k].offset;
		}
	}
}

int kp_pv_load_checkpoint(struct proc_version *v, struct kp_checkpoint *ck,
			  struct kp_error *err)
{
	memset(ck, 0, sizeof(*ck));
	if (kp_pv_open_view(v) != 0)
		return kp_error_set(err, KP_EDAMAGED, "%s", v->view_error);
	return kp_checkpoint_load(ck, v->view, v->dir, err);
}

int kp_pv_rewind(struct proc_version *v, struct kp_error *err)
{
	struct kp_checkpoint ck;
	int have = kp_pv_load_checkpoint(v, &ck, err);
	int rc;

	if (have != 0) {
		kp_checkpoint_destroy(&ck);
		return have < 0 ? err->code
				: kp_error_set(err, KP_ESTATE,
					       "it has no checkpoint to go back to; `kappactl proc reset` starts it again");
	}
	kp_free(v->cursors);
	v->cursors = NULL;
	v->cursor_count = 0;
	for (uint32_t i = 0; i < v->mark_count; i++)
		kp_free(v->marks[i].written);
	kp_free(v->marks);
	v->marks = NULL;
	v->mark_count = 0;
	kp_pv_drop_pending(v);
	v->pending = NULL;
	v->step_pending = false;
	v->blocked[0] = '\0';
	kp_pv_order_close(v);
	v->order_ready = false;
	v->since_checkpoint = 0;
	v->window_total = v->window_errors = 0;
	rc = kp_pv_build(v, &ck, KP_FROM_EARLIEST, 0, NULL);
	kp_checkpoint_destroy(&ck);
	if (rc != 0)
		return kp_error_set(err, rc, "cannot rebuild its positions: %s",
				    kp_error_text(rc));
	return 0;
}

/* true while some input has not passed the outputs found already written. */
static bool mark_pending(const struct proc_version *v, const struct pv_mark *m)
{
	for (uint32_t i = 0; i < m->written_count; i++) {
		const struct pv_written *w = &m->written[i];

		for (uint32_t k = 0; k < v->cursor_count; k++) {
			const struct pv_cursor *c = &v->cursors[k];

			if (c->partition == w->partition &&
			    strcmp(c->topic, w->topic) == 0 &&
			    c->offset <= w->upto)
				return true;
		}
	}
	return false;
}

int kp_pv_capture_checkpoint(struct proc_version *v, struct kp_checkpoint *ck)
{
	/* Never past an output (or a step) that is not written. */
	if (v->pending != NULL || v->step_pending)
		return -EAGAIN;
	kp_checkpoint_destroy(ck);
	memset(ck, 0, sizeof(*ck));
	ck->version = v->number;
	ck->cursors = kp_calloc(v->cursor_count ? v->cursor_count : 1,
				sizeof(*ck->cursors));
	ck->marks = kp_calloc(v->mark_count ? v->mark_count : 1,
			      sizeof(*ck->marks));
	if (ck->cursors == NULL || ck->marks == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < v->cursor_count; i++) {
		snprintf(ck->cursors[i].topic, sizeof(ck->cursors[i].topic),
			 "%s", v->cursors[i].topic);
		ck->cursors[i].partition = v->cursors[i].partition;
		ck->cursors[i].offset = v->cursors[i].offset;
	}
	ck->cursor_count = v->cursor_count;
	for (uint32_t i = 0; i < v->mark_count; i++) {
		struct pv_mark *m = &v->marks[i];

		snprintf(ck->marks[i].topic, sizeof(ck->marks[i].topic), "%s",
			 m->topic);
		ck->marks[i].partition = m->partition;
		/*
		 * While the replayed tail has not passed the outputs it found
		 * written, the checkpoint keeps the end they were found after,
		 * so that a crash now finds them again.
		 */
		if (mark_pending(v, m)) {
			ck->marks[i].end = m->scan_from;
		} else {
			m->written_count = 0;
			ck->marks[i].end = kp_pv_written_end(v->owner, m->topic,
							     m->partition);
		}
	}
	ck->mark_count = v->mark_count;
	ck->steps_done = v->steps_done;
	ck->at_ms = v->owner->now_ms();
	ck->processed = v->processed;
	ck->errors = v->errors;
	ck->dead_lettered = v->dead_lettered;
	return 0;
}

int kp_pv_checkpoint_now(struct proc_version *v)
{
	struct kp_checkpoint ck;
	struct kp_error err;
	int rc;

	if (v->role == PV_SCRATCH)
		return 0;
	if (v->busy || v->wk != NULL || v->view == NULL ||
	    !kp_view_stored(v->view))
		return -EBUSY;   /* its worker owns the view; or nothing to commit into */
	memset(&ck, 0, sizeof(ck));
	kp_error_clear(&err);
	rc = kp_pv_capture_checkpoint(v, &ck);
	if (rc == 0)
		rc = kp_checkpoint_save(&ck, v->view, &err);
	kp_checkpoint_destroy(&ck);
	if (rc == 0) {
		v->since_checkpoint = 0;
		v->last_checkpoint_ms = v->owner->now_ms();
		v->checkpointed_ms = v->last_checkpoint_ms;
	} else if (err.msg[0] != '\0') {
		kp_log_error("proc", "processor %s v%u: checkpoint failed: %s",
			     v->proc->def.name, v->number, err.msg);
	}
	return rc;
}

