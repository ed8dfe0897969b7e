/*
 * handle_data.c - produce, fetch and list_offsets.
 */
#include "handler.h"

#include <errno.h>
#include <string.h>

#include "base/clock.h"
#include "base/alloc.h"
#include "base/logging.h"
#include "log/batch.h"
#include "log/writer.h"
#include "proc/proc.h"

#define FETCH_DEFAULT_MAX_BYTES (1024 * 1024)
#define FETCH_MAX_WAIT_MS 60000

/* The outcome of writing one partition's batch of a produce. */
struct produce_result {
	uint32_t partition;
	uint64_t base_offset;
	uint32_t count;
	bool duplicate;
};

/* What a produce request asks, decoded once. */
struct produce_req {
	struct kp_topic *topic;
	bool has_partition;
	uint64_t partition;
	uint64_t producer_id;        /* 0: not idempotent */
	uint64_t seq;
	struct kp_mp_iter records;   /* the "records" array */
	uint32_t count;
};

static int auto_create(struct kp_server *s, struct kp_mp_view name,
		       struct kp_topic **t, struct kp_error *err)
{
	struct kp_topic_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.partitions = s->cfg.default_partitions;
	cfg.fsync_interval_ms = s->cfg.fsync_interval_ms;
	cfg.log = s->cfg.topic_defaults;
	return kp_store_create_topic(&s->store, name.ptr, name.len, &cfg, t,
				     err);
}

static int produce_decode(struct kp_server *s, const struct kp_request *req,
			  struct produce_req *p, struct kp_error *err)
{
	struct kp_mp_view name;
	int rc;

	memset(p, 0, sizeof(*p));
	rc = kp_field_str(req->map, "topic", &name, err);
	if (rc < 0)
		return rc;
	if (rc == 1)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'topic' is required");
	rc = kp_field_array(req->map, "records", &p->records, &p->count, err);
	if (rc < 0)
		return rc;
	if (rc == 1 || p->count == 0)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'records' must be a non-empty array");
	rc = kp_field_uint(req->map, "partition", &p->partition, err);
	if (rc < 0)
		return rc;
	p->has_partition = rc == 0;
	rc = kp_field_uint(req->map, "producer_id", &p->producer_id, err);
	if (rc < 0)
		return rc;
	if (p->producer_id != 0) {
		rc = kp_field_uint(req->map, "seq", &p->seq, err);
		if (rc < 0)
			return rc;
		if (rc == 1 || p->seq > UINT32_MAX)
			return kp_error_set(err, KP_EBADREQUEST,
					    "field 'seq' (0..2^32-1) is required with 'producer_id'");
		if (!p->has_partition)
			return kp_error_set(err, KP_EBADREQUEST,
					    "idempotent produce needs 'partition'");
	}
	if (kp_catalog_alias_get(s->store.catalog, name.ptr, name.len, NULL,
				 NULL) ||
	    kp_procs_topic_user(s->procs, name.ptr, name.len, true) != NULL)
		return kp_error_set(err, KP_EBADREQUEST,
				    "topic '%.*s' is a processor's output: only the processor writes it",
				    (int)(name.len > 200 ? 200 : name.len),
				    name.ptr);
	p->topic = kp_catalog_find(s->store.catalog, name.ptr, name.len);
	if (p->topic == NULL) {
		if (!s->cfg.auto_create_topics)
			return kp_error_set(err, KP_ENOTOPIC,
					    "unknown topic '%.*s' (create it first, or set auto_create_topics)",
					    (int)(name.len > 200 ? 200 : name.len),
					    name.ptr);
		rc = auto_create(s, name, &p->topic, err);
		if (rc != 0)
			return rc;
	}
	if (p->has_partition && p->partition >= p->topic->config.partitions)
		return kp_error_set(err, KP_ENOPARTITION,
				    "topic '%s' has no partition %llu (it has %u)",
				    p->topic->name,
				    (unsigned long long)p->partition,
				    p->topic->config.partitions);
	return 0;
}

/* Routes a record: explicit partition, key hash, or round-robin. */
static uint32_t route(const struct produce_req *p,
		      const struct kp_produce_record *rec, uint32_t rr)
{
	uint32_t n = p->topic->config.partitions;

	if (p->has_partition)
		return (uint32_t)p->partition;
	if (rec->key != NULL)
		return kp_fnv1a32(rec->key, rec->key_len) % n;
	return rr % n;
}

/* Records of a produce grouped by the partition they route to. */
struct routing {
	struct kp_mp_view *items;  /* each record's map, by index */
	uint32_t *order;           /* record indices, grouped by partition */
	uint32_t *first;           /* partition i's run in order: first[i]..first[i+1] */
};

static void routing_destroy(struct routing *r)
{
	kp_free(r->items);
	kp_free(r->order);
	kp_free(r->first);
}

static int record_error(int rc, uint32_t i, struct kp_error *err)
{
	char msg[KP_ERROR_MSG_MAX];

	snprintf(msg, sizeof(msg), "%s", err->msg);
	return kp_error_set(err, rc, "records[%u]: %s", i, msg);
}

/*
 * Routes every record once (key hash, or round-robin rr) and groups them
 * by partition, so that building the batches costs O(records +
 * partitions). Every record is validated before anything is written.
 */
static int route_records(const struct produce_req *p, uint32_t rr,
			 struct routing *r, struct kp_error *err)
{
	uint32_t n = p->count, parts = p->topic->config.partitions, i = 0;
	struct kp_mp_iter it = p->records;
	struct kp_mp_view item;
	uint32_t *part, *next;

	memset(r, 0, sizeof(*r));
	r->items = kp_malloc(n * sizeof(*r->items));
	r->order = kp_malloc(n * sizeof(*r->order));
	r->first = kp_calloc(parts + 1, sizeof(*r->first));
	part = kp_malloc(n * sizeof(*part));
	next = kp_malloc((parts + 1) * sizeof(*next));
	if (r->items == NULL || r->order == NULL || r->first == NULL ||
	    part == NULL || next == NULL) {
		kp_free(part);
		kp_free(next);
		return kp_error_set(err, -ENOMEM, "out of memory");
	}
	for (; i < n && kp_mp_array_next(&it, &item) == 1; i++) {
		struct kp_produce_record rec;
		int rc = kp_produce_record_decode(item, &rec, err);

		if (rc != 0) {
			kp_free(part);
			kp_free(next);
			return record_error(rc, i, err);
		}
		r->items[i] = item;
		part[i] = route(p, &rec, rr);
		r->first[part[i] + 1]++;
	}
	for (uint32_t k = 0; k < parts; k++)
		r->first[k + 1] += r->first[k];
	memcpy(next, r->first, (parts + 1) * sizeof(*next));
	for (uint32_t k = 0; k < i; k++)
		r->order[next[part[k]]++] = k;
	kp_free(part);
	kp_free(next);
	return 0;
}

static int add_record(struct kp_batch_builder *b, struct kp_mp_view item,
		      uint32_t i, int64_t now_ms, struct kp_error *err)
{
	struct kp_produce_record rec;
	int rc = kp_produce_record_decode(item, &rec, err);

	if (rc != 0)
		return record_error(rc, i, err);
	rc = kp_batch_add(b, rec.has_ts ? rec.ts : now_ms, rec.key,
			  rec.key_len, rec.value, rec.value_len);
	return rc != 0 ? kp_error_set(err, rc, "out of memory") : 0;
}

/*
 * Builds the batch for `partition` into out: every record of the request
 * when r is NULL (an explicit partition), else the partition's run in r.
 * Returns the number of records added (0 when none go there) or an error.
 */
static int build_batch(const struct produce_req *p, const struct routing *r,
		       uint32_t partition, int64_t now_ms, struct kp_buf *out,
		       struct kp_error *err)
{
	struct kp_batch_builder b;
	struct kp_mp_iter it = p->records;
	struct kp_mp_view item;
	int added = 0, rc;

	if (r != NULL && r->first[partition] == r->first[partition + 1])
		return 0;
	kp_buf_reset(out);
	rc = kp_batch_begin(&b, out, p->producer_id, (uint32_t)p->seq);
	if (rc != 0)
		return kp_error_set(err, rc, "out of memory");
	if (r == NULL) {
		for (uint32_t i = 0; kp_mp_array_next(&it, &item) == 1; i++) {
			rc = add_record(&b, item, i, now_ms, err);
			if (rc != 0)
				return rc;
			added++;
		}
	} else {
		for (uint32_t k = r->first[partition];
		     k < r->first[partition + 1]; k++) {
			uint32_t i = r->order[k];

			rc = add_record(&b, r->items[i], i, now_ms, err);
			if (rc != 0)
				return rc;
			added++;
		}
	}
	if (added > 0)
		kp_batch_finish(&b);
	return added;
}

static int produce_one(struct kp_server *s, struct kp_slot *slot,
		       const struct produce_req *p, const struct routing *r,
		       uint32_t partition, int64_t now_ms, struct kp_buf *batch,
		       struct produce_result *res, struct kp_error *err)
{
	struct kp_topic_partition *tp = &p->topic->parts[partition];
	int added;
	int rc;

	res->partition = partition;
	res->duplicate = false;
	if (p->producer_id != 0) {
		uint64_t dup_base;
		uint32_t dup_count;

		rc = kp_partition_producer_check(tp->log, p->producer_id,
						 (uint32_t)p->seq, &dup_base,
						 &dup_count);
		if (rc == KP_ESEQUENCE)
			return kp_error_set(err, rc,
					    "producer %llu partition %u: seq %llu is out of order",
					    (unsigned long long)p->producer_id,
					    partition,
					    (unsigned long long)p->seq);
		if (rc == 1) {
			res->base_offset = dup_base;
			res->count = dup_count;
			res->duplicate = true;
			if (p->topic->config.log.fsync == KP_FSYNC_ALWAYS &&
			    kp_writer_wait_durable(&s->store.writer, tp, slot,
						   dup_base + dup_count) != 0)
				return kp_error_set(err, KP_ESTORAGE,
						    "partition %u stopped taking writes after a storage error; this batch is not known to be on disk",
						    partition);
			return 0;
		}
	}
	added = build_batch(p, r, partition, now_ms, batch, err);
	if (added < 0)
		return added;
	res->count = (uint32_t)added;
	if (added == 0)
		return 0;
	rc = kp_writer_append(&s->store.writer, tp, batch->data, batch->len,
			      now_ms, &res->base_offset, err);
	if (rc != 0)
		return rc;
	tp->records_appended += (uint64_t)added;
	if (p->topic->config.log.fsync == KP_FSYNC_ALWAYS &&
	    kp_writer_wait_durable(&s->store.writer, tp, slot,
				   res->base_offset + (uint64_t)added) != 0)
		return kp_error_set(err, KP_ESTORAGE,
				    "partition %u stopped taking writes after a storage error",
				    partition);
	return 0;
}

static void pack_results(struct kp_slot *slot,
			 const struct produce_result *res, uint32_t n)
{
	struct kp_response r;
	uint32_t used = 0;

	for (uint32_t i = 0; i < n; i++)
		used += res[i].count > 0;
	kp_buf_reset(&slot->resp);
	kp_response_begin(&r, &slot->resp, slot->id, 1);
	kp_response_key(&r, "results");
	msgpack_pack_array(&r.pk, used);
	for (uint32_t i = 0; i < n; i++) {
		if (res[i].count == 0)
			continue;
		msgpack_pack_map(&r.pk, 4);
		kp_response_key(&r, "partition");
		msgpack_pack_uint32(&r.pk, res[i].partition);
		kp_response_key(&r, "base_offset");
		msgpack_pack_uint64(&r.pk, res[i].base_offset);
		kp_response_key(&r, "count");
		msgpack_pack_uint32(&r.pk, res[i].count);
		kp_response_key(&r, "duplicate");
		if (res[i].duplicate)
			msgpack_pack_true(&r.pk);
		else
			msgpack_pack_false(&r.pk);
	}
	kp_response_finish(&r);
}

int kp_handle_produce(struct kp_server *s, struct kp_slot *slot,
		      const struct kp_request *req, struct kp_error *err)
{
	struct produce_req p;
	struct produce_result *res;
	struct routing routing;
	struct kp_buf batch;
	int64_t now_ms = kp_clock_now_ms();
	uint32_t nparts, first, last;
	int rc;

	rc = produce_decode(s, req, &p, err);
	if (rc != 0)
		return rc;
	nparts = p.topic->config.partitions;
	first = p.has_partition ? (uint32_t)p.partition : 0;
	last = p.has_partition ? first + 1 : nparts;
	memset(&routing, 0, sizeof(routing));
	if (!p.has_partition) {
		rc = route_records(&p, p.topic->rr_next++, &routing, err);
		if (rc != 0) {
			routing_destroy(&routing);
			return rc;
		}
	}
	res = kp_calloc(nparts, sizeof(*res));
	if (res == NULL) {
		routing_destroy(&routing);
		return kp_error_set(err, -ENOMEM, "out of memory");
	}
	kp_buf_init(&batch);
	for (uint32_t i = first; i < last && rc == 0; i++)
		rc = produce_one(s, slot, &p, p.has_partition ? NULL : &routing,
				 i, now_ms, &batch, &res[i], err);
	kp_buf_destroy(&batch);
	routing_destroy(&routing);
	if (rc == 0)
		pack_results(slot, res, nparts);
	kp_free(res);
	if (rc != 0 && slot->waits > 0) {
		kp_slot_set_error(slot, rc, err->msg);
		return 0;
	}
	return rc;
}

/*
 * Counts the records at or after offset in a run of raw batches: whole
 * batches by their count, the one straddling offset by its records'
 * offsets (offsets may have gaps).
 */
static uint32_t count_records(const struct kp_buf *raw, uint64_t offset)
{
	uint32_t n = 0;
	size_t pos = 0;

	while (pos < raw->len) {
		struct kp_batch_header h;
		struct kp_record rec;
		size_t rpos = 0;
		uint32_t index = 0;

		if (kp_batch_header_decode(raw->data + pos, raw->len - pos,
					   &h) != 0)
			break;
		if (h.base_offset >= offset) {
			n += h.count;
		} else if (kp_batch_next_offset(&h) > offset) {
			while (kp_batch_next(raw->data + pos, &h, &rpos, &index,
					     &rec) == 1)
				n += rec.offset >= offset;
		}
		pos += h.batch_len;
	}
	return n;
}

static void pack_record(struct kp_response *r, const struct kp_record *rec)
{
	msgpack_packer *pk = &r->pk;

	msgpack_pack_map(pk, rec->headers ? 5 : 4);
	kp_response_key(r, "offset");
	msgpack_pack_uint64(pk, rec->offset);
	kp_response_key(r, "ts");
	msgpack_pack_int64(pk, rec->ts);
	kp_response_key(r, "key");
	if (rec->key == NULL) {
		msgpack_pack_nil(pk);
	} else {
		msgpack_pack_bin(pk, rec->key_len);
		msgpack_pack_bin_body(pk, rec->key, rec->key_len);
	}
	kp_response_key(r, "value");
	msgpack_pack_bin_body(pk, rec->value, rec->value_len);
	if (rec->headers != NULL) {
		kp_response_key(r, "headers");
		msgpack_pack_bin_body(pk, rec->headers, rec->headers_len);
	}
}

static void pack_records(struct kp_response *r, const struct kp_buf *raw,
			 uint64_t offset)
{
	size_t pos = 0;

	msgpack_pack_array(&r->pk, count_records(raw, offset));
	while (pos < raw->len) {
		struct kp_batch_header h;
		struct kp_record rec;
		size_t rpos = 0;
		uint32_t index = 0;

		if (kp_batch_header_decode(raw->data + pos, raw->len - pos,
					   &h) != 0)
			break;
		while (kp_batch_next(raw->data + pos, &h, &rpos, &index,
				     &rec) == 1) {
			if (rec.offset >= offset)
				pack_record(r, &rec);
		}
		pos += h.batch_len;
	}
}

static void reply_out_of_range(struct kp_slot *slot,
			       struct kp_topic_partition *tp,
			       const char *message)
{
	struct kp_partition_stats st;
	struct kp_response r;

	kp_partition_stats(tp->log, &st);
	kp_buf_reset(&slot->resp);
	kp_response_begin_error(&r, &slot->resp, slot->id, KP_EOFFSET, message,
				2);
	kp_response_key(&r, "start_offset");
	msgpack_pack_uint64(&r.pk, st.start_offset);
	kp_response_key(&r, "end_offset");
	msgpack_pack_uint64(&r.pk, st.visible_end);
	kp_response_finish(&r);
}

/*
 * CORRUPT_BATCH with "offset": where reading goes on, the first offset of
 * the next readable batch (or the end offset when none follows).
 */
static void reply_corrupt(struct kp_slot *slot, uint64_t skip_to,
			  const char *message)
{
	struct kp_response r;

	kp_buf_reset(&slot->resp);
	kp_response_begin_error(&r, &slot->resp, slot->id, KP_ECORRUPT,
				message, 1);
	kp_response_key(&r, "offset");
	msgpack_pack_uint64(&r.pk, skip_to);
	kp_response_finish(&r);
}

/*
 * Reads from tp at offset and writes the whole fetch response (or its
 * error) into slot. Returns the number of records, or -1 when the response
 * is an error.
 */
static int fetch_reply(struct kp_topic_partition *tp, struct kp_slot *slot,
		       uint64_t offset, uint64_t max_bytes)
{
	struct kp_partition_stats st;
	struct kp_response r;
	struct kp_buf raw;
	struct kp_error err;
	uint64_t skip_to = 0;
	uint32_t n;
	int rc;

	kp_buf_init(&raw);
	kp_error_clear(&err);
	rc = kp_partition_read(tp->log, offset, (size_t)max_bytes, &raw,
			       &skip_to, &err);
	if (rc != 0) {
		kp_buf_destroy(&raw);
		if (rc == KP_EOFFSET)
			reply_out_of_range(slot, tp, err.msg);
		else if (rc == KP_ECORRUPT)
			reply_corrupt(slot, skip_to, err.msg);
		else
			kp_slot_set_error(slot, rc, err.msg);
		return -1;
	}
	kp_partition_stats(tp->log, &st);
	n = count_records(&raw, offset);
	kp_buf_reset(&slot->resp);
	kp_response_begin(&r, &slot->resp, slot->id, slot->generation ? 4 : 3);
	if (slot->generation) {
		kp_response_key(&r, "generation");
		msgpack_pack_uint32(&r.pk, slot->generation);
	}
	kp_response_key(&r, "records");
	pack_records(&r, &raw, offset);
	kp_response_key(&r, "start_offset");
	msgpack_pack_uint64(&r.pk, st.start_offset);
	kp_response_key(&r, "end_offset");
	msgpack_pack_uint64(&r.pk, st.visible_end);
	kp_buf_destroy(&raw);
	if (kp_response_finish(&r) != 0) {
		kp_slot_set_error(slot, -ENOMEM, "out of memory");
		return -1;
	}
	return (int)n;
}

static void reply_switched(struct kp_slot *slot, uint32_t generation)
{
	struct kp_response r;

	kp_buf_reset(&slot->resp);
	kp_response_begin_error(&r, &slot->resp, slot->id, KP_ESWITCHED,
				"the topic now holds the output of another processor version; read it again from its start",
				1);
	kp_response_key(&r, "generation");
	msgpack_pack_uint32(&r.pk, generation);
	kp_response_finish(&r);
}

static void on_fetch_wake(void *arg, struct kp_topic_partition *tp,
			  struct kp_slot *slot, uint64_t offset,
			  uint64_t max_bytes)
{
	struct kp_server *s = arg;
	uint32_t generation;

	slot->waits--;
	if (slot->logical != NULL &&
	    kp_catalog_alias_get(s->store.catalog, slot->logical,
				 strlen(slot->logical), &generation, NULL) &&
	    generation != slot->generation)
		reply_switched(slot, generation);
	else if (tp->topic->deleted)
		kp_slot_set_error(slot, KP_ENOTOPIC, "topic was deleted");
	else
		fetch_reply(tp, slot, offset, max_bytes);
	kp_slot_ready(slot);
}

/*
 * A fetch of a logical topic (a processor's output) learns its generation
 * (the version it resolves to); a fetch that names an older generation is
 * told the topic switched, with the new generation.
 */
static int check_generation(struct kp_server *s, struct kp_slot *slot,
			    const struct kp_request *req, struct kp_error *err)
{
	struct kp_mp_view name;
	uint64_t wanted;
	uint32_t generation;
	int rc;

	if (kp_field_str(req->map, "topic", &name, NULL) != 0 ||
	    !kp_catalog_alias_get(s->store.catalog, name.ptr, name.len,
				  &generation, NULL))
		return 0;
	slot->generation = generation;
	kp_free(slot->logical);
	slot->logical = kp_strndup(name.ptr, name.len);
	rc = kp_field_uint(req->map, "generation", &wanted, err);
	if (rc < 0)
		return rc;
	if (rc == 1 || wanted == generation)
		return 0;
	reply_switched(slot, generation);
	return 1;
}

int kp_handle_fetch(struct kp_server *s, struct kp_slot *slot,
		    const struct kp_request *req, struct kp_error *err)
{
	struct kp_topic_partition *tp;
	uint64_t offset, max_bytes = FETCH_DEFAULT_MAX_BYTES, wait_ms = 0;
	int rc = kp_handler_partition(s, req, &tp, err);

	if (rc != 0)
		return rc;
	rc = check_generation(s, slot, req, err);
	if (rc != 0)
		return rc < 0 ? rc : 0;
	rc = kp_field_uint(req->map, "offset", &offset, err);
	if (rc < 0)
		return rc;
	if (rc == 1)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'offset' is required");
	if (kp_field_uint(req->map, "max_bytes", &max_bytes, err) < 0 ||
	    kp_field_uint(req->map, "max_wait_ms", &wait_ms, err) < 0)
		return KP_EBADREQUEST;
	if (max_bytes == 0)
		max_bytes = 1;
	if (max_bytes > s->cfg.max_frame_bytes)
		max_bytes = s->cfg.max_frame_bytes;
	if (wait_ms > FETCH_MAX_WAIT_MS)
		wait_ms = FETCH_MAX_WAIT_MS;
	rc = fetch_reply(tp, slot, offset, max_bytes);
	if (rc != 0 || wait_ms == 0 || s->stopping)
		return 0;
	kp_buf_reset(&slot->resp);
	rc = kp_writer_park_fetch(&s->store.writer, tp, slot, offset,
				  max_bytes, wait_ms, on_fetch_wake, s);
	if (rc != 0)
		return kp_error_set(err, rc, "out of memory");
	slot->waits++;
	return 0;
}

int kp_handle_list_offsets(struct kp_server *s, struct kp_slot *slot,
			   const struct kp_request *req, struct kp_error *err)
{
	struct kp_topic_partition *tp;
	struct kp_partition_stats st;
	struct kp_mp_view at;
	struct kp_response r;
	uint64_t offset;
	int64_t ts;
	int rc = kp_handler_partition(s, req, &tp, err);

	if (rc != 0)
		return rc;
	rc = kp_field_raw(req->map, "at", &at, err);
	if (rc < 0)
		return rc;
	kp_partition_stats(tp->log, &st);
	if (rc == 1)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'at' is required: \"earliest\", \"latest\" or a timestamp in ms");
	if (kp_mp_type(at) == KP_MP_STR) {
		struct kp_mp_view name;

		kp_mp_read_str(at, &name);
		if (kp_mp_str_eq(name, "earliest"))
			offset = st.start_offset;
		else if (kp_mp_str_eq(name, "latest"))
			offset = st.visible_end;
		else
			return kp_error_set(err, KP_EBADREQUEST,
					    "field 'at' must be \"earliest\", \"latest\" or a timestamp in ms");
	} else if (kp_mp_read_int(at, &ts) == 0) {
		rc = kp_partition_offset_for_time(tp->log, ts, &offset, err);
		if (rc != 0)
			return rc;
	} else {
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'at' must be \"earliest\", \"latest\" or a timestamp in ms");
	}
	kp_response_begin(&r, &slot->resp, slot->id, 3);
	kp_response_key(&r, "offset");
	msgpack_pack_uint64(&r.pk, offset);
	kp_response_key(&r, "start_offset");
	msgpack_pack_uint64(&r.pk, st.start_offset);
	kp_response_key(&r, "end_offset");
	msgpack_pack_uint64(&r.pk, st.visible_end);
	return kp_response_finish(&r);
}
