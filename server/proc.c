/*
 * proc.c - processor catalog, scheduling, checkpoints and status.
 */
#include "proc.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "batch.h"
#include "conn.h"
#include "log.h"
#include "proc_checkpoint.h"
#include "proc_code.h"
#include "proc_instance.h"
#include "server.h"
#include "workers.h"
#include "writer.h"

#define READ_BYTES (256 * 1024)
#define SLICE_MS 20
#define CHECKPOINT_MS 1000
#define CHECKPOINT_RECORDS 200000
#define ERROR_WINDOW 100
#define ERROR_WINDOW_MIN 20

enum proc_state { PS_STARTING, PS_RUNNING, PS_PAUSED, PS_FAILED };

static const char *const state_names[] = { "starting", "running", "paused",
					   "failed" };

/* The next offset to process in one input partition. */
struct cursor {
	char topic[201];
	uint32_t partition;
	uint64_t offset;
};

/* An output partition and how many replayed outputs to drop there. */
struct mark {
	char topic[201];
	uint32_t partition;
	uint64_t suppress;
};

enum job_kind { JOB_INIT, JOB_BATCH, JOB_CHECKPOINT };

struct proc_job {
	struct kp_job base;          /* first: the pool's view of the job */
	struct kp_proc *proc;
	enum job_kind kind;
	int rc;                      /* init / checkpoint result */
	struct kp_error err;
	bool write_checkpoint;       /* init: also write the first checkpoint */
	struct kp_checkpoint ckpt;   /* checkpoint (and init) jobs */
	struct kp_buf raw;           /* batch: input batches */
	uint32_t cursor_index;       /* batch: which input */
	uint64_t start_offset;       /* batch: first offset to process */
	uint64_t next_offset;        /* batch: after the last processed */
	uint32_t processed;
	uint32_t failed;
	struct kp_buf dlq;           /* batch: dead letters, see dlq_add */
	uint32_t dlq_count;
	bool interrupted;            /* a record hit the time budget */
	bool out_of_memory;          /* a record hit the memory budget */
	char last_error[KP_ERROR_MSG_MAX];
};

struct kp_proc {
	struct kp_procs *owner;
	struct kp_proc_def def;
	char dir[4096];              /* <data>/procs/<name> */
	struct kp_proc_code *code;   /* referenced */
	struct kp_instance inst;
	bool inst_started;
	struct kp_view *view;        /* owned */
	struct cursor *cursors;      /* owned */
	uint32_t cursor_count;
	uint32_t rr;                 /* next input to look at */
	struct mark *marks;          /* owned: outputs and the DLQ */
	uint32_t mark_count;
	enum proc_state state;
	char reason[KP_ERROR_MSG_MAX];
	bool busy;                   /* job in flight */
	bool deleting;               /* free when the job returns */
	bool zombie;                 /* its thread was written off: never freed */
	struct proc_job job;
	struct kp_slot *create_slot; /* answered when init is done */
	uint64_t processed;
	uint64_t errors;
	uint64_t dead_lettered;
	uint64_t suppressed;         /* replayed outputs not written again */
	uint64_t since_checkpoint;
	int64_t last_checkpoint_ms;
	uint32_t window_total;
	uint32_t window_errors;
	char last_error[KP_ERROR_MSG_MAX];
	int64_t interrupted_ms;      /* when the watchdog interrupted */
	const char *outputs[KP_PROC_MAX_TOPICS]; /* for the sink */
};

struct kp_procs {
	struct kp_server *srv;
	struct kp_workers *workers;
	char dir[4096];              /* <data>/procs */
	char code_dir[4096];         /* <data>/code */
	struct kp_proc **procs;      /* sorted by name */
	size_t count;
	size_t cap;
	bool quiesced;
};

static void kick(struct kp_proc *p);
static void job_submit(struct kp_proc *p, enum job_kind kind);

/* ---- lookup and bookkeeping ------------------------------------------ */

static struct kp_topic_partition *find_tp(struct kp_procs *ps,
					  const char *topic, uint32_t part)
{
	struct kp_topic *t = kp_catalog_find(ps->srv->catalog, topic,
					     strlen(topic));

	if (t == NULL || part >= t->config.partitions)
		return NULL;
	return &t->parts[part];
}

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
	return p->view;
}

static void proc_free(struct kp_proc *p)
{
	if (p == NULL || p->zombie)
		return;
	if (p->inst_started)
		kp_instance_stop(&p->inst);
	kp_proc_code_unref(p->code);
	kp_view_delete(p->view);
	kp_free(p->cursors);
	kp_free(p->marks);
	kp_buf_destroy(&p->job.raw);
	kp_buf_destroy(&p->job.dlq);
	kp_checkpoint_destroy(&p->job.ckpt);
	kp_proc_def_destroy(&p->def);
	kp_free(p);
}

static void set_failed(struct kp_proc *p, const char *what, const char *detail)
{
	p->state = PS_FAILED;
	snprintf(p->reason, sizeof(p->reason), "%s: %s", what, detail);
	kp_log_error("proc", "processor %s stopped: %s", p->def.name,
		     p->reason);
}

/* ---- positions -------------------------------------------------------- */

static uint64_t start_position(struct kp_procs *ps,
			       const struct kp_proc_def *def,
			       struct kp_topic_partition *tp)
{
	struct kp_partition_stats st;
	uint64_t offset;

	kp_partition_stats(tp->log, &st);
	if (def->from == KP_FROM_LATEST)
		return st.visible_end;
	if (def->from == KP_FROM_TIME &&
	    kp_partition_offset_for_time(tp->log, def->from_ts, &offset,
					 NULL) == 0)
		return offset;
	(void)ps;
	return st.start_offset;
}

static int build_cursors(struct kp_proc *p, const struct kp_checkpoint *ck)
{
	struct kp_procs *ps = p->owner;
	uint32_t n = 0;

	for (uint32_t i = 0; i < p->def.input_count; i++) {
		struct kp_topic *t = kp_catalog_find(
			ps->srv->catalog, p->def.inputs[i],
			strlen(p->def.inputs[i]));

		n += t ? t->config.partitions : 0;
	}
	p->cursors = kp_calloc(n ? n : 1, sizeof(*p->cursors));
	if (p->cursors == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < p->def.input_count; i++) {
		const char *name = p->def.inputs[i];
		struct kp_topic *t = kp_catalog_find(ps->srv->catalog, name,
						     strlen(name));

		for (uint32_t part = 0; t && part < t->config.partitions;
		     part++) {
			struct cursor *c = &p->cursors[p->cursor_count++];
			bool found = false;

			snprintf(c->topic, sizeof(c->topic), "%s", name);
			c->partition = part;
			for (uint32_t k = 0; ck && k < ck->cursor_count; k++) {
				if (strcmp(ck->cursors[k].topic, name) == 0 &&
				    ck->cursors[k].partition == part) {
					c->offset = ck->cursors[k].offset;
					found = true;
				}
			}
			if (!found)
				c->offset = start_position(ps, &p->def,
							   &t->parts[part]);
		}
	}
	return 0;
}

static uint64_t written_end(struct kp_procs *ps, const char *topic,
			    uint32_t part)
{
	struct kp_topic_partition *tp = find_tp(ps, topic, part);
	struct kp_partition_stats st;

	if (tp == NULL)
		return 0;
	kp_partition_stats(tp->log, &st);
	return st.end_offset;
}

static int add_marks_for(struct kp_proc *p, const char *topic,
			 const struct kp_checkpoint *ck)
{
	struct kp_topic *t = kp_catalog_find(p->owner->srv->catalog, topic,
					     strlen(topic));
	struct mark *grown;

	if (t == NULL)
		return 0;
	grown = kp_realloc(p->marks, (p->mark_count + t->config.partitions) *
					     sizeof(*grown));
	if (grown == NULL)
		return -ENOMEM;
	p->marks = grown;
	for (uint32_t part = 0; part < t->config.partitions; part++) {
		struct mark *m = &p->marks[p->mark_count++];
		uint64_t end = written_end(p->owner, topic, part);

		snprintf(m->topic, sizeof(m->topic), "%s", topic);
		m->partition = part;
		m->suppress = 0;
		for (uint32_t k = 0; ck && k < ck->mark_count; k++) {
			if (strcmp(ck->marks[k].topic, topic) == 0 &&
			    ck->marks[k].partition == part &&
			    end > ck->marks[k].end)
				m->suppress = end - ck->marks[k].end;
		}
	}
	return 0;
}

static int build_marks(struct kp_proc *p, const struct kp_checkpoint *ck)
{
	char dlq[256];
	int rc = 0;

	for (uint32_t i = 0; i < p->def.output_count && rc == 0; i++)
		rc = add_marks_for(p, p->def.outputs[i], ck);
	kp_proc_def_dlq(&p->def, dlq, sizeof(dlq));
	if (rc == 0)
		rc = add_marks_for(p, dlq, ck);
	return rc;
}

static struct mark *find_mark(struct kp_proc *p, const char *topic,
			      uint32_t part)
{
	for (uint32_t i = 0; i < p->mark_count; i++) {
		if (p->marks[i].partition == part &&
		    strcmp(p->marks[i].topic, topic) == 0)
			return &p->marks[i];
	}
	return NULL;
}

/* Fills ck with the current cursors and output ends. */
static int capture_checkpoint(struct kp_proc *p, struct kp_checkpoint *ck)
{
	kp_checkpoint_destroy(ck);
	memset(ck, 0, sizeof(*ck));
	ck->version = p->def.version;
	ck->cursors = kp_calloc(p->cursor_count ? p->cursor_count : 1,
				sizeof(*ck->cursors));
	ck->marks = kp_calloc(p->mark_count ? p->mark_count : 1,
			      sizeof(*ck->marks));
	if (ck->cursors == NULL || ck->marks == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < p->cursor_count; i++) {
		snprintf(ck->cursors[i].topic, sizeof(ck->cursors[i].topic),
			 "%s", p->cursors[i].topic);
		ck->cursors[i].partition = p->cursors[i].partition;
		ck->cursors[i].offset = p->cursors[i].offset;
	}
	ck->cursor_count = p->cursor_count;
	for (uint32_t i = 0; i < p->mark_count; i++) {
		snprintf(ck->marks[i].topic, sizeof(ck->marks[i].topic), "%s",
			 p->marks[i].topic);
		ck->marks[i].partition = p->marks[i].partition;
		ck->marks[i].end = written_end(p->owner, p->marks[i].topic,
					       p->marks[i].partition);
	}
	ck->mark_count = p->mark_count;
	ck->processed = p->processed;
	ck->errors = p->errors;
	ck->dead_lettered = p->dead_lettered;
	return 0;
}

/* ---- the worker side --------------------------------------------------- */

/*
 * A dead letter in job->dlq: i64 ts, u32 key_len (UINT32_MAX = none), key,
 * u32 value_len, value (a msgpack map describing the failure).
 */
static void dlq_add(struct proc_job *job, const struct kp_proc_record *rec,
		    const char *error)
{
	struct kp_buf value;
	msgpack_packer pk;
	char len[8];

	kp_buf_init(&value);
	msgpack_packer_init(&pk, &value, kp_buf_msgpack_write);
	msgpack_pack_map(&pk, 6);
	msgpack_pack_str_with_body(&pk, "error", 5);
	msgpack_pack_str_with_body(&pk, error, strlen(error));
	msgpack_pack_str_with_body(&pk, "topic", 5);
	msgpack_pack_str_with_body(&pk, rec->topic, strlen(rec->topic));
	msgpack_pack_str_with_body(&pk, "partition", 9);
	msgpack_pack_uint32(&pk, rec->partition);
	msgpack_pack_str_with_body(&pk, "offset", 6);
	msgpack_pack_uint64(&pk, rec->offset);
	msgpack_pack_str_with_body(&pk, "ts", 2);
	msgpack_pack_int64(&pk, rec->ts);
	msgpack_pack_str_with_body(&pk, "value", 5);
	msgpack_pack_bin_body(&pk, rec->value, rec->value_len);
	kp_put_le64(len, (uint64_t)rec->ts);
	kp_buf_append(&job->dlq, len, 8);
	kp_put_le32(len, rec->key ? (uint32_t)rec->key_len : UINT32_MAX);
	kp_buf_append(&job->dlq, len, 4);
	if (rec->key)
		kp_buf_append(&job->dlq, rec->key, rec->key_len);
	kp_put_le32(len, (uint32_t)value.len);
	kp_buf_append(&job->dlq, len, 4);
	kp_buf_append(&job->dlq, value.data, value.len);
	job->dlq_count++;
	kp_buf_destroy(&value);
}

static void record_failed(struct proc_job *job, const struct kp_proc_record *rec,
			  const struct kp_error *err)
{
	job->failed++;
	snprintf(job->last_error, sizeof(job->last_error), "%s", err->msg);
	dlq_add(job, rec, err->msg);
	if (strstr(err->msg, "interrupted") != NULL)
		job->interrupted = true;
	if (strstr(err->msg, "not enough memory") != NULL)
		job->out_of_memory = true;
}

static void run_batch(struct proc_job *job)
{
	struct kp_proc *p = job->proc;
	const struct cursor *c = &p->cursors[job->cursor_index];
	int64_t deadline = kp_workers_now_ms() + SLICE_MS;
	size_t pos = 0;

	job->next_offset = job->start_offset;
	while (pos < job->raw.len && !job->interrupted && !job->out_of_memory) {
		struct kp_batch_header h;
		struct kp_record rec;
		size_t rpos = 0;
		uint32_t index = 0;

		if (kp_batch_header_decode(job->raw.data + pos,
					   job->raw.len - pos, &h) != 0)
			break;
		while (kp_batch_next(job->raw.data + pos, &h, &rpos, &index,
				     &rec) == 1) {
			struct kp_proc_record pr;
			struct kp_error err;

			if (rec.offset < job->start_offset)
				continue;
			pr.topic = c->topic;
			pr.partition = c->partition;
			pr.offset = rec.offset;
			pr.ts = rec.ts;
			pr.key = rec.key;
			pr.key_len = rec.key_len;
			pr.value = rec.value;
			pr.value_len = rec.value_len;
			kp_error_clear(&err);
			if (kp_instance_process(&p->inst, &pr, &err) != 0)
				record_failed(job, &pr, &err);
			job->processed++;
			job->next_offset = rec.offset + 1;
			atomic_store(&job->base.heartbeat_ms,
				     kp_workers_now_ms());
			if (job->interrupted || job->out_of_memory)
				break;
			if ((job->processed & 63) == 0 &&
			    kp_workers_now_ms() > deadline)
				return;
		}
		pos += h.batch_len;
	}
}

static void on_job_run(struct kp_job *base)
{
	struct proc_job *job = (struct proc_job *)base;
	struct kp_proc *p = job->proc;

	switch (job->kind) {
	case JOB_INIT:
		kp_error_clear(&job->err);
		job->rc = kp_instance_start(
			&p->inst, p->code, p->def.name, p->view,
			p->def.config.data, p->def.config.len,
			p->outputs, p->def.output_count, (size_t)p->def.memory_limit,
			&job->err);
		if (job->rc == 0 && job->write_checkpoint)
			job->rc = kp_checkpoint_save(&job->ckpt, p->view,
						     p->dir);
		break;
	case JOB_BATCH:
		run_batch(job);
		break;
	case JOB_CHECKPOINT:
		job->rc = kp_checkpoint_save(&job->ckpt, p->view, p->dir);
		break;
	}
}

/* ---- the loop side: applying a batch ---------------------------------- */

/* A batch being built for one output partition. */
struct out_batch {
	struct kp_topic_partition *tp;
	struct kp_buf buf;
	struct kp_batch_builder b;
	uint32_t count;
};

struct out_set {
	struct out_batch *items;
	size_t count;
	size_t cap;
};

static struct out_batch *out_for(struct out_set *set,
				 struct kp_topic_partition *tp)
{
	struct out_batch *ob;

	for (size_t i = 0; i < set->count; i++) {
		if (set->items[i].tp == tp)
			return &set->items[i];
	}
	if (set->count == set->cap) {
		size_t cap = set->cap ? set->cap * 2 : 8;
		struct out_batch *grown =
			kp_realloc(set->items, cap * sizeof(*grown));

		if (grown == NULL)
			return NULL;
		set->items = grown;
		set->cap = cap;
	}
	ob = &set->items[set->count++];
	memset(ob, 0, sizeof(*ob));
	ob->tp = tp;
	kp_buf_init(&ob->buf);
	if (kp_batch_begin(&ob->b, &ob->buf, 0, 0) != 0) {
		set->count--;
		return NULL;
	}
	return ob;
}

/*
 * Routes one output record (key hash, else value hash, so a replay routes
 * it the same way), drops it if it was already written before a crash, and
 * adds it to its partition's batch.
 */
static int out_add(struct kp_proc *p, struct out_set *set, const char *topic,
		   size_t topic_len, const char *key, uint32_t key_len,
		   const char *value, uint32_t value_len, int64_t ts)
{
	struct kp_topic *t = kp_catalog_find(p->owner->srv->catalog, topic,
					     topic_len);
	struct out_batch *ob;
	struct mark *m;
	uint32_t part;

	if (t == NULL)
		return KP_ENOTOPIC;
	part = key ? kp_fnv1a32(key, key_len) % t->config.partitions
		   : kp_fnv1a32(value, value_len) % t->config.partitions;
	m = find_mark(p, t->name, part);
	if (m != NULL && m->suppress > 0) {
		m->suppress--;
		p->suppressed++;
		return 0;
	}
	ob = out_for(set, &t->parts[part]);
	if (ob == NULL)
		return -ENOMEM;
	ob->count++;
	return kp_batch_add(&ob->b, ts, key, key_len, value, value_len);
}

static void out_flush(struct kp_proc *p, struct out_set *set, int64_t now)
{
	for (size_t i = 0; i < set->count; i++) {
		struct out_batch *ob = &set->items[i];
		struct kp_error err;
		uint64_t base;

		if (ob->count > 0) {
			kp_batch_finish(&ob->b);
			if (kp_writer_append(p->owner->srv, ob->tp, ob->buf.data,
					     ob->buf.len, now, &base,
					     &err) != 0)
				kp_log_error("proc",
					     "processor %s: cannot write to %s/%u: %s",
					     p->def.name, ob->tp->topic->name,
					     ob->tp->id, err.msg);
			else
				ob->tp->records_appended += ob->count;
		}
		kp_buf_destroy(&ob->buf);
	}
	kp_free(set->items);
}

static void write_outputs(struct kp_proc *p, struct proc_job *job)
{
	struct out_set set = { NULL, 0, 0 };
	struct kp_emit e;
	size_t pos = 0;
	char dlq[256];
	int64_t now = kp_server_now_ms(p->owner->srv);

	while (kp_sink_next_emit(&p->inst.sink, &pos, &e) == 1) {
		if (out_add(p, &set, e.topic, e.topic_len, e.key, e.key_len,
			    e.value, e.value_len, e.ts) != 0)
			kp_log_warn("proc", "processor %s: emit to '%.*s' dropped",
				    p->def.name, (int)e.topic_len, e.topic);
	}
	kp_proc_def_dlq(&p->def, dlq, sizeof(dlq));
	pos = 0;
	for (uint32_t i = 0; i < job->dlq_count; i++) {
		int64_t ts = (int64_t)kp_get_le64(job->dlq.data + pos);
		uint32_t klen = kp_get_le32(job->dlq.data + pos + 8);
		const char *key = klen == UINT32_MAX ? NULL
						     : job->dlq.data + pos + 12;
		uint32_t vlen;

		pos += 12 + (key ? klen : 0);
		vlen = kp_get_le32(job->dlq.data + pos);
		out_add(p, &set, dlq, strlen(dlq), key, key ? klen : 0,
			job->dlq.data + pos + 4, vlen, ts);
		pos += 4 + vlen;
	}
	out_flush(p, &set, now);
	kp_sink_clear_emits(&p->inst.sink);
	kp_buf_reset(&job->dlq);
	job->dlq_count = 0;
}

static void check_error_rate(struct kp_proc *p, struct proc_job *job)
{
	char reason[KP_ERROR_MSG_MAX];
	double rate;

	p->window_total += job->processed;
	p->window_errors += job->failed;
	if (p->window_total < ERROR_WINDOW_MIN)
		return;
	rate = (double)p->window_errors / (double)p->window_total;
	if (rate > p->def.max_error_rate && p->window_errors > 0) {
		snprintf(reason, sizeof(reason),
			 "error rate %.0f%% over the last %u records exceeds max_error_rate %.0f%%; last error: %s",
			 rate * 100, p->window_total,
			 p->def.max_error_rate * 100, p->last_error);
		kp_proc_pause(p, reason, NULL);
	}
	if (p->window_total >= ERROR_WINDOW)
		p->window_total = p->window_errors = 0;
}

static void batch_done(struct kp_proc *p, struct proc_job *job)
{
	struct cursor *c = &p->cursors[job->cursor_index];

	write_outputs(p, job);
	c->offset = job->next_offset;
	p->processed += job->processed;
	p->errors += job->failed;
	p->dead_lettered += job->failed;
	p->since_checkpoint += job->processed;
	if (job->failed > 0)
		snprintf(p->last_error, sizeof(p->last_error), "%s",
			 job->last_error);
	kp_buf_reset(&job->raw);
	if (job->interrupted) {
		set_failed(p, "no progress within the time budget",
			   job->last_error);
		return;
	}
	if (job->out_of_memory) {
		set_failed(p, "grew past its memory budget",
			   job->last_error);
		return;
	}
	if (p->state == PS_RUNNING)
		check_error_rate(p, job);
}

/* ---- jobs ------------------------------------------------------------- */

static void reply_create(struct kp_proc *p, int rc, const char *message)
{
	struct kp_slot *slot = p->create_slot;
	struct kp_response r;

	if (slot == NULL)
		return;
	p->create_slot = NULL;
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

static void init_done(struct kp_proc *p, struct proc_job *job)
{
	kp_checkpoint_destroy(&job->ckpt);
	if (job->rc != 0) {
		bool creating = p->create_slot != NULL;

		reply_create(p, KP_EBADREQUEST, job->err.msg);
		if (creating) {
			unlink_proc(p->owner, p);
			kp_remove_tree(p->dir);
			p->deleting = true;
			return;
		}
		set_failed(p, "init failed", job->err.msg);
		return;
	}
	p->inst_started = true;
	p->last_checkpoint_ms = kp_server_now_ms(p->owner->srv);
	p->state = p->def.paused ? PS_PAUSED : PS_RUNNING;
	if (p->def.paused)
		snprintf(p->reason, sizeof(p->reason), "%s",
			 p->def.pause_reason);
	reply_create(p, 0, NULL);
	kp_log_info("proc", "processor %s v%u (%s, %s) %s", p->def.name,
		    p->def.version, p->code->lang, p->def.hash,
		    state_names[p->state]);
}

static void on_job_done(struct kp_job *base)
{
	struct proc_job *job = (struct proc_job *)base;
	struct kp_proc *p = job->proc;

	p->busy = false;
	switch (job->kind) {
	case JOB_INIT:
		init_done(p, job);
		break;
	case JOB_BATCH:
		batch_done(p, job);
		break;
	case JOB_CHECKPOINT:
		if (job->rc != 0)
			kp_log_error("proc", "processor %s: checkpoint failed: %s",
				     p->def.name, kp_error_text(job->rc));
		kp_checkpoint_destroy(&job->ckpt);
		break;
	}
	if (p->deleting) {
		proc_free(p);
		return;
	}
	kick(p);
}

static void job_submit(struct kp_proc *p, enum job_kind kind)
{
	struct proc_job *job = &p->job;

	job->base.run = on_job_run;
	job->base.done = on_job_done;
	job->proc = p;
	job->kind = kind;
	job->rc = 0;
	job->processed = job->failed = 0;
	job->interrupted = job->out_of_memory = false;
	p->busy = true;
	p->interrupted_ms = 0;
	kp_workers_submit(p->owner->workers, &job->base);
}

static bool start_batch(struct kp_proc *p, uint32_t index)
{
	struct cursor *c = &p->cursors[index];
	struct kp_topic_partition *tp = find_tp(p->owner, c->topic,
						c->partition);
	struct kp_partition_stats st;
	struct kp_error err;
	uint64_t skip_to = 0;
	int rc;

	if (tp == NULL)
		return false;
	kp_partition_stats(tp->log, &st);
	if (c->offset < st.start_offset) {
		kp_log_warn("proc",
			    "processor %s: %s/%u offsets %llu..%llu were removed by retention; skipping them",
			    p->def.name, c->topic, c->partition,
			    (unsigned long long)c->offset,
			    (unsigned long long)st.start_offset - 1);
		c->offset = st.start_offset;
	}
	if (st.visible_end <= c->offset)
		return false;
	kp_buf_reset(&p->job.raw);
	rc = kp_partition_read(tp->log, c->offset, READ_BYTES, &p->job.raw,
			       &skip_to, &err);
	if (rc == KP_ECORRUPT && skip_to > c->offset) {
		kp_log_error("proc", "processor %s: skipping corrupt batch in %s/%u at %llu",
			     p->def.name, c->topic, c->partition,
			     (unsigned long long)c->offset);
		c->offset = skip_to;
		return false;
	}
	if (rc != 0) {
		kp_proc_pause(p, err.msg, NULL);
		return false;
	}
	if (p->job.raw.len == 0)
		return false;
	p->job.cursor_index = index;
	p->job.start_offset = c->offset;
	job_submit(p, JOB_BATCH);
	return true;
}

static void kick(struct kp_proc *p)
{
	if (p->busy || p->deleting || p->state != PS_RUNNING ||
	    p->owner->quiesced)
		return;
	for (uint32_t i = 0; i < p->cursor_count; i++) {
		uint32_t index = (p->rr + i) % p->cursor_count;

		if (start_batch(p, index)) {
			p->rr = index + 1;
			return;
		}
		if (p->busy || p->state != PS_RUNNING)
			return;
	}
}

void kp_procs_notify(struct kp_procs *ps, struct kp_topic_partition *tp)
{
	if (ps == NULL)
		return;
	for (size_t i = 0; i < ps->count; i++) {
		struct kp_proc *p = ps->procs[i];

		if (p->busy || p->state != PS_RUNNING)
			continue;
		for (uint32_t k = 0; k < p->cursor_count; k++) {
			if (p->cursors[k].partition == tp->id &&
			    strcmp(p->cursors[k].topic, tp->topic->name) == 0) {
				kick(p);
				break;
			}
		}
	}
}

/* ---- checkpoints and the watchdog ------------------------------------- */

/* true when every output partition holds its writes durably. */
static bool outputs_durable(struct kp_proc *p)
{
	bool durable = true;

	for (uint32_t i = 0; i < p->mark_count; i++) {
		struct kp_topic_partition *tp = find_tp(
			p->owner, p->marks[i].topic, p->marks[i].partition);
		struct kp_partition_stats st;

		if (tp == NULL ||
		    tp->topic->config.log.fsync != KP_FSYNC_ALWAYS)
			continue;
		kp_partition_stats(tp->log, &st);
		if (st.durable_end < st.end_offset) {
			kp_writer_sync(p->owner->srv, tp);
			durable = false;
		}
	}
	return durable;
}

static void maybe_checkpoint(struct kp_proc *p, int64_t now, bool force)
{
	if (p->busy || p->deleting || !p->inst_started ||
	    p->since_checkpoint == 0)
		return;
	if (!force && now - p->last_checkpoint_ms < CHECKPOINT_MS &&
	    p->since_checkpoint < CHECKPOINT_RECORDS)
		return;
	if (!outputs_durable(p))
		return;
	if (capture_checkpoint(p, &p->job.ckpt) != 0)
		return;
	p->since_checkpoint = 0;
	p->last_checkpoint_ms = now;
	job_submit(p, JOB_CHECKPOINT);
}

static void watchdog(struct kp_proc *p, int64_t mono_now)
{
	int64_t idle;

	if (!p->busy || !atomic_load(&p->job.base.running))
		return;
	idle = mono_now - atomic_load(&p->job.base.heartbeat_ms);
	if (idle < (int64_t)p->def.time_budget_ms)
		return;
	if (p->interrupted_ms == 0) {
		kp_log_warn("proc", "processor %s: no progress for %lld ms; interrupting",
			    p->def.name, (long long)idle);
		p->interrupted_ms = mono_now;
		kp_instance_interrupt(&p->inst);
		return;
	}
	if (mono_now - p->interrupted_ms < (int64_t)p->def.time_budget_ms)
		return;
	/*
	 * The call did not come back even when interrupted (a loop in
	 * compiled code): write off its thread, and the instance with it.
	 */
	kp_workers_abandon(p->owner->workers, &p->job.base);
	p->busy = false;
	p->inst_started = false;
	p->state = PS_FAILED;
	snprintf(p->reason, sizeof(p->reason),
		 "no progress within the time budget (%u ms), and the call did not return when interrupted; its worker thread was written off",
		 p->def.time_budget_ms);
	kp_log_error("proc", "processor %s stopped: %s", p->def.name,
		     p->reason);
	p->zombie = true;
}

void kp_procs_tick(struct kp_procs *ps, int64_t now_ms)
{
	int64_t mono = kp_workers_now_ms();

	for (size_t i = 0; i < ps->count; i++) {
		watchdog(ps->procs[i], mono);
		maybe_checkpoint(ps->procs[i], now_ms, false);
	}
}

/* ---- lifecycle -------------------------------------------------------- */

static struct kp_proc *proc_alloc(struct kp_procs *ps)
{
	struct kp_proc *p = kp_calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->owner = ps;
	kp_proc_def_init(&p->def);
	kp_buf_init(&p->job.raw);
	kp_buf_init(&p->job.dlq);
	if (kp_view_new(&p->view) != 0) {
		kp_proc_def_destroy(&p->def);
		kp_free(p);
		return NULL;
	}
	return p;
}

static void set_outputs(struct kp_proc *p)
{
	for (uint32_t i = 0; i < p->def.output_count; i++)
		p->outputs[i] = p->def.outputs[i];
}

static int ensure_topic(struct kp_procs *ps, const char *name,
			uint32_t partitions, struct kp_error *err)
{
	struct kp_server *s = ps->srv;
	struct kp_topic_config cfg;
	struct kp_topic *t;

	if (kp_catalog_find(s->catalog, name, strlen(name)) != NULL)
		return 0;
	memset(&cfg, 0, sizeof(cfg));
	cfg.partitions = partitions;
	cfg.fsync_interval_ms = s->cfg.fsync_interval_ms;
	cfg.log = s->cfg.topic_defaults;
	if (kp_catalog_create(s->catalog, name, strlen(name), &cfg, &t, err) != 0)
		return err->code;
	for (uint32_t i = 0; i < partitions; i++) {
		if (kp_writer_attach(&t->parts[i]) != 0)
			return kp_error_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

int kp_procs_create(struct kp_procs *ps, struct kp_proc_def *def,
		    struct kp_slot *slot, struct kp_error *err)
{
	struct kp_proc *p;
	char dlq[256];
	int rc;

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
	p = proc_alloc(ps);
	if (p == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	kp_buf_destroy(&p->def.config);
	p->def = *def;
	kp_buf_init(&def->config);
	p->def.created_ms = kp_server_now_ms(ps->srv);
	snprintf(p->dir, sizeof(p->dir), "%s/%s", ps->dir, p->def.name);
	rc = kp_proc_code_load(p->def.source, ps->code_dir, &p->code, err);
	if (rc != 0)
		goto fail;
	snprintf(p->def.code, sizeof(p->def.code), "%s", p->code->loaded_path);
	snprintf(p->def.hash, sizeof(p->def.hash), "%s", p->code->hash);
	for (uint32_t i = 0; i < p->def.output_count && rc == 0; i++)
		rc = ensure_topic(ps, p->def.outputs[i], 1, err);
	kp_proc_def_dlq(&p->def, dlq, sizeof(dlq));
	if (rc == 0)
		rc = ensure_topic(ps, dlq, 1, err);
	if (rc != 0)
		goto fail;
	set_outputs(p);
	if (build_cursors(p, NULL) != 0 || build_marks(p, NULL) != 0) {
		rc = kp_error_set(err, -ENOMEM, "out of memory");
		goto fail;
	}
	if (mkdir(p->dir, 0755) != 0 && errno != EEXIST) {
		rc = kp_error_set(err, -errno, "cannot create %s: %s", p->dir,
				  strerror(errno));
		goto fail;
	}
	rc = kp_proc_def_save(&p->def, p->dir);
	if (rc == 0)
		rc = capture_checkpoint(p, &p->job.ckpt);
	if (rc == 0)
		rc = insert(ps, p);
	if (rc != 0) {
		kp_error_set(err, rc, "cannot save processor %s: %s",
			     p->def.name, kp_error_text(rc));
		kp_remove_tree(p->dir);
		goto fail;
	}
	p->state = PS_STARTING;
	p->create_slot = slot;
	kp_slot_ref(slot);
	slot->waits++;
	p->job.write_checkpoint = true;
	job_submit(p, JOB_INIT);
	return 0;
fail:
	proc_free(p);
	return rc;
}

static int open_one(struct kp_procs *ps, const char *name)
{
	struct kp_proc *p = proc_alloc(ps);
	struct kp_checkpoint ck;
	struct kp_error err;
	int rc, have;

	if (p == NULL)
		return -ENOMEM;
	snprintf(p->dir, sizeof(p->dir), "%s/%s", ps->dir, name);
	rc = kp_proc_def_load(&p->def, p->dir, &err);
	if (rc != 0) {
		kp_log_error("proc", "skipping processor %s: %s", name, err.msg);
		proc_free(p);
		return 0;
	}
	set_outputs(p);
	have = kp_checkpoint_load(&ck, p->view, p->dir, &err);
	if (have < 0) {
		kp_log_error("proc", "processor %s: %s; starting from its definition",
			     name, err.msg);
		kp_view_clear(p->view);
	}
	if (have == 0) {
		p->processed = ck.processed;
		p->errors = ck.errors;
		p->dead_lettered = ck.dead_lettered;
	}
	rc = build_cursors(p, have == 0 ? &ck : NULL);
	if (rc == 0)
		rc = build_marks(p, have == 0 ? &ck : NULL);
	kp_checkpoint_destroy(&ck);
	if (rc == 0)
		rc = insert(ps, p);
	if (rc != 0) {
		proc_free(p);
		return rc;
	}
	for (uint32_t i = 0; i < p->mark_count; i++) {
		if (p->marks[i].suppress > 0)
			kp_log_info("proc",
				    "processor %s: %llu outputs in %s/%u were written after its checkpoint; the replay will not write them again",
				    name,
				    (unsigned long long)p->marks[i].suppress,
				    p->marks[i].topic, p->marks[i].partition);
	}
	rc = kp_proc_code_load(p->def.code, NULL, &p->code, &err);
	if (rc != 0) {
		p->state = PS_FAILED;
		snprintf(p->reason, sizeof(p->reason), "cannot load code: %s",
			 err.msg);
		kp_log_error("proc", "processor %s: %s", name, p->reason);
		return 0;
	}
	p->state = PS_STARTING;
	job_submit(p, JOB_INIT);
	return 0;
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
		struct kp_checkpoint ck;

		memset(&ck, 0, sizeof(ck));
		if (!p->zombie && p->inst_started && p->since_checkpoint > 0 &&
		    capture_checkpoint(p, &ck) == 0)
			kp_checkpoint_save(&ck, p->view, p->dir);
		kp_checkpoint_destroy(&ck);
		proc_free(p);
	}
	kp_free(ps->procs);
	kp_free(ps);
}

int kp_proc_pause(struct kp_proc *p, const char *reason, struct kp_error *err)
{
	if (p->state == PS_FAILED || p->state == PS_STARTING)
		return kp_error_set(err, KP_ESTATE, "processor %s is %s",
				    p->def.name, state_names[p->state]);
	p->state = PS_PAUSED;
	p->def.paused = true;
	snprintf(p->def.pause_reason, sizeof(p->def.pause_reason), "%s",
		 reason);
	snprintf(p->reason, sizeof(p->reason), "%s", reason);
	if (strcmp(reason, "paused by operator") != 0)
		kp_log_warn("proc", "processor %s paused: %s", p->def.name,
			    reason);
	kp_proc_def_save(&p->def, p->dir);
	return 0;
}

int kp_proc_resume(struct kp_proc *p, struct kp_error *err)
{
	if (p->state == PS_FAILED && p->inst_started) {
		p->state = PS_PAUSED;
	}
	if (p->state != PS_PAUSED && p->state != PS_RUNNING)
		return kp_error_set(err, KP_ESTATE,
				    "processor %s is %s and cannot resume (%s)",
				    p->def.name, state_names[p->state],
				    p->reason);
	p->state = PS_RUNNING;
	p->def.paused = false;
	p->def.pause_reason[0] = '\0';
	p->reason[0] = '\0';
	p->window_total = p->window_errors = 0;
	kp_proc_def_save(&p->def, p->dir);
	kick(p);
	return 0;
}

int kp_proc_delete(struct kp_proc *p, struct kp_error *err)
{
	(void)err;
	unlink_proc(p->owner, p);
	kp_remove_tree(p->dir);
	kp_log_info("proc", "deleted processor %s", p->def.name);
	if (p->busy) {
		p->deleting = true;
		return 0;
	}
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

static uint64_t pack_inputs(struct kp_proc *p, struct kp_response *r)
{
	uint64_t total = 0;

	kp_response_key(r, "inputs");
	msgpack_pack_array(&r->pk, p->cursor_count);
	for (uint32_t i = 0; i < p->cursor_count; i++) {
		const struct cursor *c = &p->cursors[i];
		struct kp_topic_partition *tp = find_tp(p->owner, c->topic,
							c->partition);
		struct kp_partition_stats st;
		uint64_t end = 0, lag;

		if (tp != NULL) {
			kp_partition_stats(tp->log, &st);
			end = st.visible_end;
		}
		lag = end > c->offset ? end - c->offset : 0;
		total += lag;
		msgpack_pack_map(&r->pk, 5);
		pack_str(r, "topic", c->topic);
		pack_u64(r, "partition", c->partition);
		pack_u64(r, "offset", c->offset);
		pack_u64(r, "end_offset", end);
		pack_u64(r, "lag", lag);
	}
	return total;
}

void kp_proc_pack_status(struct kp_proc *p, struct kp_response *r)
{
	char dlq[256];
	uint64_t lag;

	kp_proc_def_dlq(&p->def, dlq, sizeof(dlq));
	msgpack_pack_map(&r->pk, 19);
	pack_str(r, "name", p->def.name);
	pack_str(r, "file", p->def.source);
	pack_str(r, "lang", p->code ? p->code->lang : NULL);
	pack_u64(r, "version", p->def.version);
	pack_str(r, "hash", p->def.hash);
	pack_str(r, "state", state_names[p->state]);
	pack_str(r, "reason", p->reason[0] ? p->reason : NULL);
	lag = pack_inputs(p, r);
	kp_response_key(r, "outputs");
	msgpack_pack_array(&r->pk, p->def.output_count);
	for (uint32_t i = 0; i < p->def.output_count; i++)
		kp_response_str(r, p->def.outputs[i],
				strlen(p->def.outputs[i]));
	pack_str(r, "dlq", dlq);
	pack_u64(r, "lag", lag);
	pack_u64(r, "records_processed", p->processed);
	pack_u64(r, "errors", p->errors);
	pack_u64(r, "dead_lettered", p->dead_lettered);
	pack_u64(r, "duplicates_suppressed", p->suppressed);
	pack_str(r, "last_error", p->last_error[0] ? p->last_error : NULL);
	pack_u64(r, "view_keys", p->view && !p->zombie ? kp_view_count(p->view) : 0);
	pack_u64(r, "view_bytes", p->view && !p->zombie ? kp_view_bytes(p->view) : 0);
	kp_response_key(r, "created_ms");
	msgpack_pack_int64(&r->pk, p->def.created_ms);
}
