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
 *
 * A cursor that follows its logical input onto another physical topic
 * (proc_pipeline.c) records the move among its steps. Recovery takes a
 * move of its own steps again where it comes, so that the steps after it
 * are of the topic they were taken in. A replay or a verify reads the
 * topic the live version reads now: when it starts at or after the live
 * version's last move onto it, it passes the live steps before that move
 * (they are of another topic). A verify that would start before it is
 * refused (proc_verify.c); a replay that does reads history the live
 * version read in the older topic and follows those steps by offset (the
 * same order when the new history is, record for record, the old one).
 */
#include "proc_version.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proc_pipeline.h"
#include "base/alloc.h"
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

/*
 * Sets, for each cursor of v, the moves of its input in the live version's
 * steps read so far to pass before they are of the topic v reads: all of
 * them when v starts at or after the last one, else none. true when an
 * input of v with records to process starts before its last move: *index
 * and *at say which one and where.
 */
static bool pass_moves(struct proc_version *v, uint32_t *index, uint64_t *at)
{
	const struct kp_steps_queue *q = &v->follow;
	uint32_t n = v->cursor_count;
	uint32_t *moves = kp_calloc(n ? n : 1, sizeof(*moves));
	uint64_t *last = kp_calloc(n ? n : 1, sizeof(*last));
	bool spans = false;

	if (moves == NULL || last == NULL) {
		kp_log_warn("proc", "processor %s v%u: out of memory reading where the live version's inputs moved",
			    v->proc->def.name, v->number);
		goto done;
	}
	for (size_t k = q->head; k < q->count; k++) {
		const struct kp_step *s = &q->items[k];

		if (kp_step_is_move(s) && kp_step_index(s) < n) {
			moves[kp_step_index(s)]++;
			last[kp_step_index(s)] = s->start;
		}
	}
	for (uint32_t i = 0; i < n; i++) {
		struct pv_cursor *c = &v->cursors[i];

		c->moves_before = 0;
		if (moves[i] == 0)
			continue;
		if (c->offset >= last[i]) {
			c->moves_before = moves[i];
		} else if (!spans && c->offset < c->stop) {
			spans = true;
			*index = i;
			*at = last[i];
		}
	}
done:
	kp_free(moves);
	kp_free(last);
	return spans;
}

bool kp_pv_order_choose(struct proc_version *v, uint32_t *index, uint64_t *at)
{
	const struct proc_version *live = v->proc->live;
	bool spans;

	v->order_ready = true;
	v->follow_path[0] = '\0';
	if ((v->role != PV_BUILDING && v->role != PV_SCRATCH) ||
	    live == NULL || live == v || !same_inputs(v, live))
		return false;
	kp_steps_path(live->dir, v->follow_path, sizeof(v->follow_path));
	v->follow_next = 0;
	if (kp_steps_read(v->follow_path, &v->follow_next, &v->follow) != 0)
		kp_log_warn("proc", "processor %s v%u: out of memory reading the live version's steps",
			    v->proc->def.name, v->number);
	spans = pass_moves(v, index, at);
	if (v->cursor_count < 2) {
		/* One input: no order to follow, only where it moved. */
		v->follow_path[0] = '\0';
		kp_steps_queue_destroy(&v->follow);
	}
	return spans;
}

/*
 * Drops the steps at the head of q that v's cursors have passed (or, for a
 * verify, that lie past where it stops), and those of a topic the cursor
 * does not read (before the moves it is to pass), counting them in
 * *dropped. Moves of the live version's steps are passed; a move at the
 * head of v's own steps is returned (kp_pv_order_next takes it).
 */
static const struct kp_step *head_to_follow(struct proc_version *v,
					    struct kp_steps_queue *q,
					    uint64_t *dropped)
{
	const struct kp_step *s;

	while ((s = kp_steps_queue_head(q)) != NULL) {
		uint32_t i = kp_step_index(s);
		struct pv_cursor *c = i < v->cursor_count ? &v->cursors[i]
							  : NULL;

		if (kp_step_is_move(s)) {
			if (c != NULL && q == &v->own_steps)
				return s;
			if (c != NULL && c->moves_before > 0)
				c->moves_before--;
		} else if (c != NULL && c->moves_before == 0 &&
			   c->offset < s->end && c->offset < c->stop) {
			return s;
		}
		kp_steps_queue_pop(q);
		(*dropped)++;
	}
	return NULL;
}

/*
 * Takes again a move at the head of v's own steps (recovery): its cursor
 * goes on where the move took it before the restart.
 */
static void take_move(struct proc_version *v, const struct kp_step *s)
{
	struct pv_cursor *c = &v->cursors[kp_step_index(s)];
	const char *logical = kp_pipeline_input_of(v->proc, c->topic);
	char name[201] = "";

	if (logical != NULL)
		kp_pv_physical_name(logical, (uint32_t)s->end, name,
				    sizeof(name));
	if (logical == NULL ||
	    kp_pv_find_tp(v->owner, name, c->partition) == NULL) {
		kp_log_warn("proc", "processor %s v%u: a recorded move of input %s/%u names a topic that is gone; going on without it",
			    v->proc->def.name, v->number, c->topic,
			    c->partition);
	} else if (strcmp(name, c->topic) != 0 || c->offset != s->start) {
		kp_log_info("proc", "processor %s v%u: input %s follows %s to %s in partition %u from offset %llu again, as recorded before the restart",
			    v->proc->def.name, v->number, logical, c->topic,
			    name, c->partition,
			    (unsigned long long)s->start);
		snprintf(c->topic, sizeof(c->topic), "%s", name);
		c->offset = s->start;
		v->since_checkpoint++;
	}
	kp_steps_queue_pop(&v->own_steps);
	v->steps_done++;
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
	uint64_t dropped = 0, at;
	uint32_t moved;

	if (v->cursor_count < 2)
		return false;
	if (!v->order_ready)
		(void)kp_pv_order_choose(v, &moved, &at);
	while ((s = head_to_follow(v, &v->own_steps, &v->steps_done)) != NULL &&
	       kp_step_is_move(s))
		take_move(v, s);
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

int kp_pv_order_move(struct proc_version *v, uint32_t index, uint32_t number,
		     uint64_t at)
{
	struct kp_step s = { KP_STEP_MOVE | index, at, number };
	int rc;

	if (v->role == PV_SCRATCH || number == 0)
		return 0;
	if (head_to_follow(v, &v->own_steps, &v->steps_done) != NULL ||
	    v->step_pending)
		return -EAGAIN;
	rc = v->steps.fd < 0 ? kp_steps_open(&v->steps, v->dir) : 0;
	if (rc == 0)
		rc = kp_steps_append(&v->steps, &s);
	if (rc == 0)
		v->steps_done++;
	return rc;
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
