/*
 * proc_output.c - where a version's emits go: routed to its physical
 * output topics with their provenance, or captured (verify); and, after a
 * crash, which outputs of the replayed tail are already in the log (found
 * by their provenance) so that they are not written again.
 */
#include "proc_version.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/logging.h"
#include "base/mp.h"
#include "log/batch.h"
#include "log/partition.h"
#include "log/store.h"
#include "log/writer.h"

/* Notes that outputs of input (topic, partition) up to offset exist. */
static int note_written(struct pv_mark *m, const char *topic, size_t len,
			uint32_t partition, uint64_t offset)
{
	struct pv_written *w;

	for (uint32_t i = 0; i < m->written_count; i++) {
		w = &m->written[i];
		if (w->partition == partition && strlen(w->topic) == len &&
		    memcmp(w->topic, topic, len) == 0) {
			if (offset > w->upto)
				w->upto = offset;
			return 0;
		}
	}
	if (len > 200)
		return 0;
	w = kp_realloc(m->written, (m->written_count + 1) * sizeof(*w));
	if (w == NULL)
		return -ENOMEM;
	m->written = w;
	w = &m->written[m->written_count++];
	memcpy(w->topic, topic, len);
	w->topic[len] = '\0';
	w->partition = partition;
	w->upto = offset;
	return 0;
}

int kp_pv_scan_outputs(struct proc_version *v, struct kp_topic_partition *tp,
		       uint64_t from,
		       int (*visit)(void *arg, const struct kp_record *rec,
				    const struct kp_provenance *prov),
		       void *arg)
{
	struct kp_partition_stats st;
	struct kp_buf raw;
	uint64_t at = from;
	int rc = 0;

	kp_partition_stats(tp->log, &st);
	kp_buf_init(&raw);
	while (at < st.end_offset && rc == 0) {
		size_t pos = 0;
		uint64_t skip = 0;

		kp_buf_reset(&raw);
		if (kp_partition_read(tp->log, at, 1 << 20, &raw, &skip,
				      NULL) != 0 || raw.len == 0) {
			if (skip <= at)
				break;
			at = skip;
			continue;
		}
		while (pos < raw.len && rc == 0) {
			struct kp_batch_header h;
			struct kp_record rec;
			size_t rpos = 0;
			uint32_t index = 0;

			if (kp_batch_header_decode(raw.data + pos,
						   raw.len - pos, &h) != 0)
				break;
			while (rc == 0 && kp_batch_next(raw.data + pos, &h, &rpos,
							&index, &rec) == 1) {
				struct kp_provenance prov;
				struct kp_mp_view map, proc;
				uint64_t version, part;

				at = rec.offset + 1;
				if (rec.offset < from || rec.headers == NULL ||
				    kp_mp_validate_one(rec.headers,
						       rec.headers_len,
						       &map) != 0 ||
				    kp_field_str(map, "proc", &proc, NULL) != 0 ||
				    kp_field_uint(map, "version", &version,
						  NULL) != 0 ||
				    kp_field_str(map, "topic", &prov.topic,
						 NULL) != 0 ||
				    kp_field_uint(map, "partition", &part,
						  NULL) != 0 ||
				    kp_field_uint(map, "offset", &prov.offset,
						  NULL) != 0 ||
				    !kp_mp_str_eq(proc, v->proc->def.name) ||
				    version != v->number)
					continue;
				prov.partition = (uint32_t)part;
				rc = visit(arg, &rec, &prov);
			}
			pos += h.batch_len;
		}
	}
	kp_buf_destroy(&raw);
	return rc;
}

static int on_written(void *arg, const struct kp_record *rec,
		      const struct kp_provenance *prov)
{
	struct pv_mark *m = arg;

	(void)rec;
	m->suppress++;
	return note_written(m, prov->topic.ptr, prov->topic.len,
			    prov->partition, prov->offset);
}

int kp_pv_add_marks(struct proc_version *v, const char *topic,
			 const struct kp_checkpoint *ck)
{
	struct kp_topic *t = kp_catalog_find_physical(v->owner->store->catalog,
						      topic, strlen(topic));
	struct pv_mark *grown;
	int rc = 0;

	if (t == NULL)
		return 0;
	grown = kp_realloc(v->marks, (v->mark_count + t->config.partitions) *
					     sizeof(*grown));
	if (grown == NULL)
		return -ENOMEM;
	v->marks = grown;
	for (uint32_t part = 0; part < t->config.partitions && rc == 0;
	     part++) {
		struct pv_mark *m = &v->marks[v->mark_count++];
		uint64_t end = kp_pv_written_end(v->owner, topic, part);

		memset(m, 0, sizeof(*m));
		snprintf(m->topic, sizeof(m->topic), "%s", topic);
		m->partition = part;
		bool found = false;

		for (uint32_t k = 0; ck && k < ck->mark_count; k++) {
			if (strcmp(ck->marks[k].topic, topic) != 0 ||
			    ck->marks[k].partition != part)
				continue;
			found = true;
			if (end > ck->marks[k].end) {
				m->scan_from = ck->marks[k].end;
				rc = kp_pv_scan_outputs(v, &t->parts[part],
							ck->marks[k].end,
							on_written, m);
			}
		}
		/* An output newer than the checkpoint: all of it is after it. */
		if (ck != NULL && !found && end > 0) {
			m->scan_from = 0;
			rc = kp_pv_scan_outputs(v, &t->parts[part], 0,
						on_written, m);
		}
	}
	return rc;
}

static struct pv_mark *find_mark(struct proc_version *v, const char *topic,
				 uint32_t part)
{
	for (uint32_t i = 0; i < v->mark_count; i++) {
		if (v->marks[i].partition == part &&
		    strcmp(v->marks[i].topic, topic) == 0)
			return &v->marks[i];
	}
	return NULL;
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
	struct proc_version *v;
	const struct pv_cursor *input;   /* where the records came from */
	struct out_batch *items;
	size_t count;
	size_t cap;
	struct kp_buf headers;           /* scratch for one record's headers */
	size_t headers_prefix;           /* its bytes up to the offset's */
	const char *physical;            /* the last emit's topic ... */
	struct kp_topic *topic;          /* ... and its catalog entry */
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
		/* Each builder points at its own buffer, which just moved. */
		for (size_t i = 0; i < set->count; i++)
			grown[i].b.out = &grown[i].buf;
		set->items = grown;
		set->cap = cap;
	}
	ob = &set->items[set->count++];
	memset(ob, 0, sizeof(*ob));
	ob->tp = tp;
	kp_buf_init(&ob->buf);
	if (kp_batch_begin_flags(&ob->b, &ob->buf, 0, 0,
				 KP_BATCH_FLAG_HEADERS) != 0) {
		set->count--;
		return NULL;
	}
	return ob;
}

/* Packs the provenance of an output: {proc, version, topic, partition, offset}. */
static void pack_provenance(struct out_set *set, uint64_t offset)
{
	struct proc_version *v = set->v;
	const char *name = v->proc->def.name;
	msgpack_packer pk;

	msgpack_packer_init(&pk, &set->headers, kp_buf_msgpack_write);
	/* All but the offset is the same for every record of the set. */
	if (set->headers_prefix == 0) {
		kp_buf_reset(&set->headers);
		msgpack_pack_map(&pk, 5);
		msgpack_pack_str_with_body(&pk, "proc", 4);
		msgpack_pack_str_with_body(&pk, name, strlen(name));
		msgpack_pack_str_with_body(&pk, "version", 7);
		msgpack_pack_uint32(&pk, v->number);
		msgpack_pack_str_with_body(&pk, "topic", 5);
		msgpack_pack_str_with_body(&pk, set->input->topic,
					   strlen(set->input->topic));
		msgpack_pack_str_with_body(&pk, "partition", 9);
		msgpack_pack_uint32(&pk, set->input->partition);
		msgpack_pack_str_with_body(&pk, "offset", 6);
		set->headers_prefix = set->headers.len;
	}
	set->headers.len = set->headers_prefix;
	msgpack_pack_uint64(&pk, offset);
}

/* The physical topic of logical output name for v, or NULL. */
static const char *physical_output(struct proc_version *v, const char *name,
				   size_t len)
{
	for (uint32_t i = 0; i < v->output_count; i++) {
		const char *logical = i + 1 < v->output_count
					      ? v->proc->def.outputs[i]
					      : NULL;

		if (logical != NULL && strlen(logical) == len &&
		    memcmp(logical, name, len) == 0)
			return v->outputs[i];
	}
	return NULL;
}

static void capture(struct proc_version *v, const struct out_set *set,
		    const char *topic, size_t topic_len, const char *key,
		    uint32_t key_len, const char *value, uint32_t value_len,
		    uint64_t offset)
{
	char num[8];
	uint32_t index = (uint32_t)(set->input - v->cursors);

	kp_put_le32(num, index);
	kp_buf_append(&v->captured, num, 4);
	kp_put_le64(num, offset);
	kp_buf_append(&v->captured, num, 8);
	kp_put_le32(num, (uint32_t)topic_len);
	kp_buf_append(&v->captured, num, 4);
	kp_buf_append(&v->captured, topic, topic_len);
	kp_put_le32(num, key ? key_len : UINT32_MAX);
	kp_buf_append(&v->captured, num, 4);
	if (key)
		kp_buf_append(&v->captured, key, key_len);
	kp_put_le32(num, value_len);
	kp_buf_append(&v->captured, num, 4);
	kp_buf_append(&v->captured, value, value_len);
}

/*
 * Routes one output record (key hash, else value hash, so a replay routes
 * it the same way), drops it if it was already written before a crash, and
 * adds it with its provenance to its partition's batch.
 */
static int out_add(struct out_set *set, const char *physical, const char *key,
		   uint32_t key_len, const char *value, uint32_t value_len,
		   int64_t ts, uint64_t offset)
{
	struct proc_version *v = set->v;
	struct kp_topic *t = set->topic;
	struct out_batch *ob;
	struct pv_mark *m;
	uint32_t part;

	if (physical != set->physical || t == NULL) {
		t = kp_catalog_find_physical(v->owner->store->catalog,
					     physical, strlen(physical));
		set->physical = t != NULL ? physical : NULL;
		set->topic = t;
	}
	if (t == NULL)
		return KP_ENOTOPIC;
	part = key ? kp_fnv1a32(key, key_len) % t->config.partitions
		   : kp_fnv1a32(value, value_len) % t->config.partitions;
	m = find_mark(v, t->name, part);
	for (uint32_t i = 0; m != NULL && i < m->written_count; i++) {
		const struct pv_written *w = &m->written[i];

		if (w->partition == set->input->partition &&
		    offset <= w->upto &&
		    strcmp(w->topic, set->input->topic) == 0) {
			v->suppressed++;
			return 0;
		}
	}
	ob = out_for(set, &t->parts[part]);
	if (ob == NULL)
		return -ENOMEM;
	pack_provenance(set, offset);
	ob->count++;
	return kp_batch_add_headers(&ob->b, ts, key, key_len, set->headers.data,
				    (uint32_t)set->headers.len, value,
				    value_len);
}

/* ---- refused writes: kept and retried ---------------------------------- */

/*
 * The reason names what ends the pause (a failed partition takes writes
 * again only after a restart) and cuts the error, never that, to fit.
 */
static void block(struct proc_version *v, struct kp_topic_partition *tp,
		  const struct kp_error *err)
{
	const char *topic = tp->topic->name;
	struct kp_partition_stats st;
	const char *until;
	int head, room;

	kp_partition_stats(tp->log, &st);
	until = st.failed ? "; it takes writes again once kappad restarts"
			  : "; resumes by itself once it can";

	if (v->blocked[0] == '\0') {
		v->blocked_total++;
		kp_log_error("proc", "processor %s v%u paused: output %s/%u cannot take writes (%s)%s",
			     v->proc->def.name, v->number, topic, tp->id,
			     err->msg, until);
	}
	head = snprintf(v->blocked, sizeof(v->blocked),
			"output %s partition %u cannot take writes: ", topic,
			tp->id);
	room = (int)sizeof(v->blocked) - head - (int)strlen(until) - 1;
	snprintf(v->blocked, sizeof(v->blocked),
		 "output %s partition %u cannot take writes: %.*s%s", topic,
		 tp->id, room > 0 ? room : 0, err->msg, until);
}

/* Keeps a finished batch (its bytes move into the list). */
static int keep_pending(struct proc_version *v, struct kp_topic_partition *tp,
			struct kp_buf *batch, uint32_t count)
{
	struct pv_pending *pd = kp_calloc(1, sizeof(*pd));

	if (pd == NULL)
		return -ENOMEM;
	snprintf(pd->topic, sizeof(pd->topic), "%s", tp->topic->name);
	pd->partition = tp->id;
	pd->count = count;
	pd->batch = *batch;
	kp_buf_init(batch);
	if (v->pending_tail != NULL)
		v->pending_tail->next = pd;
	else
		v->pending = pd;
	v->pending_tail = pd;
	return 0;
}

static int append_one(struct proc_version *v, struct kp_topic_partition *tp,
		      struct kp_buf *batch, uint32_t count, int64_t now,
		      struct kp_error *err)
{
	uint64_t base;
	int rc = kp_writer_append(&v->owner->store->writer, tp, batch->data,
				  batch->len, now, &base, err);

	if (rc == 0)
		tp->records_appended += count;
	return rc;
}

bool kp_pv_retry_pending(struct proc_version *v, int64_t now_ms)
{
	if (v->step_pending) {
		int rc = kp_pv_order_write_unwritten(v, &v->step_unwritten);

		if (rc != 0) {
			snprintf(v->blocked, sizeof(v->blocked),
				 "cannot record the order of its inputs: %s; resumes by itself once it can",
				 kp_error_text(rc));
			return false;
		}
		v->step_pending = false;
	}
	while (v->pending != NULL) {
		struct pv_pending *pd = v->pending;
		struct kp_topic_partition *tp =
			kp_pv_find_tp(v->owner, pd->topic, pd->partition);
		struct kp_error err;

		if (tp == NULL) {
			kp_log_error("proc", "processor %s v%u: output %s/%u is gone; %u records not written",
				     v->proc->def.name, v->number, pd->topic,
				     pd->partition, pd->count);
		} else if (append_one(v, tp, &pd->batch, pd->count, now_ms,
				      &err) != 0) {
			block(v, tp, &err);
			return false;
		}
		v->pending = pd->next;
		if (v->pending == NULL)
			v->pending_tail = NULL;
		kp_buf_destroy(&pd->batch);
		kp_free(pd);
	}
	if (v->blocked[0] != '\0')
		kp_log_info("proc", "processor %s v%u: its outputs take writes again; resuming",
			    v->proc->def.name, v->number);
	v->blocked[0] = '\0';
	return true;
}

void kp_pv_drop_pending(struct proc_version *v)
{
	while (v->pending != NULL) {
		struct pv_pending *pd = v->pending;

		v->pending = pd->next;
		kp_buf_destroy(&pd->batch);
		kp_free(pd);
	}
	v->pending_tail = NULL;
}

/*
 * Appends each partition's batch; from the first one refused on, the
 * batches are kept for kp_pv_retry_pending, so that nothing is checkpointed
 * past an output that is not written and the order per partition holds.
 */
static void out_flush(struct out_set *set, int64_t now)
{
	struct proc_version *v = set->v;

	for (size_t i = 0; i < set->count; i++) {
		struct out_batch *ob = &set->items[i];
		struct kp_error err;

		if (ob->count > 0) {
			kp_batch_finish(&ob->b);
			if (v->pending == NULL && v->blocked[0] == '\0' &&
			    append_one(v, ob->tp, &ob->buf, ob->count, now,
				       &err) != 0)
				block(v, ob->tp, &err);
			if (v->blocked[0] != '\0' &&
			    keep_pending(v, ob->tp, &ob->buf, ob->count) != 0)
				kp_log_error("proc", "processor %s v%u: out of memory keeping %u outputs for %s/%u",
					     v->proc->def.name, v->number,
					     ob->count, ob->tp->topic->name,
					     ob->tp->id);
		}
		kp_buf_destroy(&ob->buf);
	}
	kp_free(set->items);
	kp_buf_destroy(&set->headers);
}

/*
 * The claim opens the output at once (not when the batch's outputs are
 * written): a later emit of the same batch, or another processor's claim,
 * then sees the topic taken, and is refused instead of dropped at write.
 */
int kp_pv_claim_topic(struct proc_version *v, const char *topic, size_t len)
{
	if (physical_output(v, topic, len) != NULL)
		return 0;
	if (kp_proc_version_base(topic, len, NULL) > 0 ||
	    kp_catalog_name_taken(v->owner->store->catalog, topic, len))
		return KP_ENOTOWNER;
	if (v->role == PV_SCRATCH || !v->proc->def.open_outputs)
		return 0;
	return v->owner->events.open_output(v->proc, topic, len) == 0
		       ? 0
		       : KP_ENOTOWNER;
}

void kp_pv_write_outputs(struct proc_version *v, struct pv_job *job)
{
	struct out_set set;
	struct kp_emit e;
	size_t pos = 0;
	const char *dlq;

	memset(&set, 0, sizeof(set));
	set.v = v;
	set.input = &v->cursors[job->cursor_index];
	kp_buf_init(&set.headers);
	while (kp_emits_next(&job->emits, &pos, &e) == 1) {
		const char *physical = physical_output(v, e.topic, e.topic_len);

		if (physical == NULL && v->role != PV_SCRATCH &&
		    v->proc->def.open_outputs) {
			/* Opening an output may move outputs and topics. */
			set.physical = NULL;
			set.topic = NULL;
			if (v->owner->events.open_output(v->proc, e.topic,
							 e.topic_len) == 0)
				physical = physical_output(v, e.topic,
							   e.topic_len);
		}

		if (v->role == PV_SCRATCH) {
			capture(v, &set, e.topic, e.topic_len, e.key, e.key_len,
				e.value, e.value_len, e.offset);
			continue;
		}
		if ((physical == NULL ||
		     out_add(&set, physical, e.key, e.key_len, e.value,
			     e.value_len, e.ts, e.offset) != 0) &&
		    v->emits_dropped++ % 10000 == 0)
			kp_log_warn("proc", "processor %s v%u: emit to '%.*s' dropped (its topic is gone); %llu so far",
				    v->proc->def.name, v->number,
				    (int)e.topic_len, e.topic,
				    (unsigned long long)v->emits_dropped);
	}
	/* After the emits: an output they opened moved the DLQ to the end. */
	dlq = v->outputs[v->output_count - 1];
	pos = 0;
	while (v->role != PV_SCRATCH && kp_dlq_next(&job->dlq, &pos, &e) == 1)
		out_add(&set, dlq, e.key, e.key_len, e.value, e.value_len, e.ts,
			e.offset);
	out_flush(&set, v->owner->now_ms());
	kp_buf_reset(&job->emits);
	job->emit_count = 0;
	kp_buf_reset(&job->dlq);
	job->dlq_count = 0;
}
