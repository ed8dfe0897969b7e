/*
 * proc_order.c - which input partition a version processes next, so that
 * the order is the same live, after a crash, in verify and in a replay
 * (proc_steps.h has the file; docs/PROCESSORS.md the contract).
 *
 * A version with one input partition has nothing to choose. With several:
 *   - its own steps past its checkpoint come first (recovery): they are in
 *     its file already and are followed, not written again;
 *   - then, for a replay (building) or a verify scratch, the live version's
 *     steps, read from its file as it grows;
 *   - else, or when those run out, it chooses freely (the runner's round
 *     robin over inputs with data), and every batch it runs, followed or
 *     chosen, is appended to its own file before its outputs are written.
 * Following a step means processing its cursor from the cursor's position
 * up to the step's end: a step already passed is dropped, one partly done
 * (a checkpoint taken inside it) goes on where it was.
 */
#include "proc_version.h"

#include <string.h>
#include <unistd.h>

#include "base/logging.h"

static bool same_inputs(const struct proc_version *a,
			const struct proc_version *b)
{
	if (a->cursor_count != b->cursor_count)
		return false;
	for (uint32_t i = 0; i < a->cursor_count; i++) {
		if (a->cursors[i].partition != b->cursors[i].partition ||
		    strcmp(a->cursors[i].topic, b->cursors[i].topic) != 0)
			return false;
	}
	return true;
}

static bool records_steps(const struct proc_version *v)
{
	return v->cursor_count > 1 && v->role != PV_SCRATCH;
}

int kp_pv_order_open(struct proc_version *v, const struct kp_checkpoint *ck)
{
	char path[4200];
	uint64_t next;

	v->steps_done = ck != NULL ? ck->steps_done : 0;
	if (!records_steps(v))
		return 0;
	kp_steps_path(v->dir, path, sizeof(path));
	next = v->steps_done;
	return kp_steps_read(path, &next, &v->own_steps);
}

/* Decides, once, whether v follows the live version's steps. */
static void choose_source(struct proc_version *v)
{
	const struct proc_version *live = v->proc->live;

	v->order_ready = true;
	v->follow_path[0] = '\0';
	if (v->cursor_count < 2 ||
	    (v->role != PV_BUILDING && v->role != PV_SCRATCH) ||
	    live == NULL || live == v || !same_inputs(v, live))
		return;
	kp_steps_path(live->dir, v->follow_path, sizeof(v->follow_path));
	v->follow_next = 0;
}

/*
 * Drops the steps at the head of q that v's cursors have passed (or, for a
 * verify, that lie past where it stops), counting them in *dropped.
 */
static const struct kp_step *head_to_follow(const struct proc_version *v,
					    struct kp_steps_queue *q,
					    uint64_t *dropped)
{
	const struct kp_step *s;

	while ((s = kp_steps_queue_head(q)) != NULL) {
		const struct pv_cursor *c = s->cursor < v->cursor_count
						    ? &v->cursors[s->cursor]
						    : NULL;

		if (c != NULL && c->offset < s->end && c->offset < c->stop)
			return s;
		kp_steps_queue_pop(q);
		(*dropped)++;
	}
	return NULL;
}

/*
 * The end of the run of steps from s on that continue the same cursor
 * without a gap: one batch may cover them all (a live version under light
 * load records many small steps; a replay need not take them one by one).
 */
static uint64_t run_end(const struct kp_steps_queue *q, const struct kp_step *s)
{
	uint64_t end = s->end;

	for (size_t i = (size_t)(s - q->items) + 1; i < q->count; i++) {
		if (q->items[i].cursor != s->cursor || q->items[i].start != end)
			break;
		end = q->items[i].end;
	}
	return end;
}

bool kp_pv_order_next(struct proc_version *v, uint32_t *index,
		      uint64_t *stop)
{
	const struct kp_step *s;
	uint64_t dropped = 0;

	if (v->cursor_count < 2)
		return false;
	if (!v->order_ready)
		choose_source(v);
	s = head_to_follow(v, &v->own_steps, &v->steps_done);
	v->following_own = s != NULL;
	if (s == NULL && v->follow_path[0] != '\0') {
		s = head_to_follow(v, &v->follow, &dropped);
		if (s == NULL) {
			if (kp_steps_read(v->follow_path, &v->follow_next,
					  &v->follow) != 0)
				kp_log_warn("proc", "processor %s v%u: out of memory reading the live version's steps",
					    v->proc->def.name, v->number);
			s = head_to_follow(v, &v->follow, &dropped);
		}
	}
	if (s == NULL)
		return false;
	*index = s->cursor;
	*stop = run_end(v->following_own ? &v->own_steps : &v->follow, s);
	return true;
}

void kp_pv_order_skip(struct proc_version *v)
{
	kp_log_warn("proc", "processor %s v%u: a recorded step names input records that are gone; going on without it",
		    v->proc->def.name, v->number);
	if (v->following_own) {
		kp_steps_queue_pop(&v->own_steps);
		v->steps_done++;
	} else {
		kp_steps_queue_pop(&v->follow);
	}
}

void kp_pv_order_prepare(struct proc_version *v, struct pv_job *job)
{
	job->record_step = records_steps(v) && !v->following_own;
	job->step_rc = 0;
}

void kp_pv_order_record(struct proc_version *v, struct pv_job *job)
{
	struct kp_step s;

	if (!job->record_step || job->next_offset <= job->start_offset)
		return;
	if (v->steps.fd < 0) {
		job->step_rc = kp_steps_open(&v->steps, v->dir);
		if (job->step_rc != 0)
			return;
	}
	s.cursor = job->cursor_index;
	s.start = job->start_offset;
	s.end = job->next_offset;
	job->step_rc = kp_steps_append(&v->steps, &s);
	if (job->step_rc != 0)
		job->step_unwritten = s;
}

void kp_pv_order_done(struct proc_version *v, struct pv_job *job)
{
	if (job->record_step && job->next_offset > job->start_offset &&
	    job->step_rc == 0)
		v->steps_done++;
	if (v->following_own)
		head_to_follow(v, &v->own_steps, &v->steps_done);
}

int kp_pv_order_write_unwritten(struct proc_version *v,
				const struct kp_step *s)
{
	int rc = v->steps.fd < 0 ? kp_steps_open(&v->steps, v->dir) : 0;

	if (rc == 0)
		rc = kp_steps_append(&v->steps, s);
	if (rc == 0)
		v->steps_done++;
	return rc;
}

void kp_pv_order_close(struct proc_version *v)
{
	kp_steps_close(&v->steps);
	kp_steps_queue_destroy(&v->own_steps);
	kp_steps_queue_destroy(&v->follow);
}

void kp_pv_order_reset(struct proc_version *v)
{
	char path[4200];

	kp_pv_order_close(v);
	v->steps_done = 0;
	v->order_ready = false;
	kp_steps_path(v->dir, path, sizeof(path));
	unlink(path);
}
