/*
 * handle_produce.c - produce: decode the request, route each record to its
 * partition, build one batch per partition and append it (idempotent
 * producers' duplicates answered from the dedup table).
 *
 * Access pattern: the records were validated and decoded by the walk that
 * validated the frame (kp_request_decode_records, wire/records.c); routing
 * and batch building read that array of small structs, and the only pass
 * over the records' bytes here is the copy into the batch (with its CRC).
 * Every record is known valid before anything is written.
 */
#include "handler.h"

#include <errno.h>
#include <string.h>

#include "base/clock.h"
#include "base/alloc.h"
#include "log/batch.h"
#include "log/writer.h"
#include "proc/proc.h"

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
	const struct kp_records *records;  /* decoded, all valid */
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

/*
 * The request's records, decoded: those of its decode walk, or (a request
 * decoded without them) decoded here into local.
 */
static int records_of(const struct kp_request *req, struct kp_records *local,
		      const struct kp_records **out, struct kp_error *err)
{
	struct kp_mp_view arr;
	size_t size;
	int rc;

	if (req->records != NULL) {
		*out = req->records;
		return 0;
	}
	rc = kp_request_field_raw(req, "records", &arr, err);
	if (rc != 0)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'records' must be a non-empty array");
	rc = kp_records_scan(arr.ptr, arr.len, 1, local, &size);
	if (rc == -ENOMEM)
		return kp_error_set(err, rc, "out of memory");
	if (rc != 0)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'records' must be a non-empty array");
	*out = local;
	return 0;
}

/* The first record that is not valid, as the request's error. */
static int records_check(const struct kp_records *r, struct kp_error *err)
{
	if (r->err.code == 0)
		return 0;
	return kp_error_set(err, r->err.code, "%s", r->err.msg);
}

/*
 * producer_id (1..2^64-1) and seq (0..2^32-1: a batch stores it in 32
 * bits, log/batch.h), both or neither, and then partition too.
 */
static int read_idempotence(const struct kp_request *req,
			    struct produce_req *p, struct kp_error *err)
{
	int has_id = kp_request_field_uint(req, "producer_id", &p->producer_id,
					   err);
	int has_seq;

	if (has_id < 0)
		return has_id;
	has_seq = kp_request_field_uint(req, "seq", &p->seq, err);
	if (has_seq < 0)
		return has_seq;
	if (has_id == 1)
		return has_seq == 1 ? 0
				    : kp_error_set(err, KP_EBADREQUEST,
						   "field 'seq' needs 'producer_id'");
	if (p->producer_id == 0)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'producer_id' must be non-zero (1..2^64-1)");
	if (has_seq == 1)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'seq' is required with 'producer_id'");
	if (p->seq > UINT32_MAX)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'seq' must be 0..4294967295 (2^32-1), got %llu",
				    (unsigned long long)p->seq);
	if (!p->has_partition)
		return kp_error_set(err, KP_EBADREQUEST,
				    "idempotent produce needs 'partition'");
	return 0;
}

static int produce_decode(struct kp_server *s, const struct kp_request *req,
			  struct kp_records *local, struct produce_req *p,
			  struct kp_error *err)
{
	struct kp_mp_view name;
	struct kp_mp_iter it;
	const char *writer;
	int rc;

	memset(p, 0, sizeof(*p));
	rc = kp_request_field_str(req, "topic", &name, err);
	if (rc < 0)
		return rc;
	if (rc == 1)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'topic' is required");
	rc = kp_request_field_array(req, "records", &it, &p->count, err);
	if (rc < 0)
		return rc;
	if (rc == 1 || p->count == 0)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'records' must be a non-empty array");
	rc = records_of(req, local, &p->records, err);
	if (rc != 0)
		return rc;
	rc = kp_request_field_uint(req, "partition", &p->partition, err);
	if (rc < 0)
		return rc;
	p->has_partition = rc == 0;
	rc = read_idempotence(req, p, err);
	if (rc != 0)
		return rc;
	writer = kp_procs_topic_user(s->procs, name.ptr, name.len, true);
	if (writer != NULL)
		return kp_error_set(err, KP_EBADREQUEST,
				    "topic '%.*s' is processor %s's output: only the processor writes it",
				    (int)(name.len > 200 ? 200 : name.len),
				    name.ptr, writer);
	if (kp_catalog_alias_get(s->store.catalog, name.ptr, name.len, NULL,
				 NULL))
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
		/* A malformed produce does not create its topic. */
		rc = records_check(p->records, err);
		if (rc != 0)
			return rc;
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
	return records_check(p->records, err);
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
	uint32_t *order;           /* record indices, grouped by partition */
	uint32_t *first;           /* partition i's run in order: first[i]..first[i+1] */
};

static void routing_destroy(struct routing *r)
{
	kp_free(r->order);
	kp_free(r->first);
}

/*
 * Routes every record once (key hash, or round-robin rr) and groups them
 * by partition (a counting sort), so that building the batches costs
 * O(records + partitions).
 */
static int route_records(const struct produce_req *p, uint32_t rr,
			 struct routing *r, struct kp_error *err)
{
	uint32_t n = p->count, parts = p->topic->config.partitions;
	const struct kp_produce_record *rec = p->records->rec;
	uint32_t *part, *next;

	memset(r, 0, sizeof(*r));
	r->order = kp_malloc(n * sizeof(*r->order));
	r->first = kp_calloc(parts + 1, sizeof(*r->first));
	part = kp_malloc(n * sizeof(*part));
	next = kp_malloc((parts + 1) * sizeof(*next));
	if (r->order == NULL || r->first == NULL || part == NULL ||
	    next == NULL) {
		kp_free(part);
		kp_free(next);
		return kp_error_set(err, -ENOMEM, "out of memory");
	}
	for (uint32_t i = 0; i < n; i++) {
		part[i] = route(p, &rec[i], rr);
		r->first[part[i] + 1]++;
	}
	for (uint32_t k = 0; k < parts; k++)
		r->first[k + 1] += r->first[k];
	memcpy(next, r->first, (parts + 1) * sizeof(*next));
	for (uint32_t k = 0; k < n; k++)
		r->order[next[part[k]]++] = k;
	kp_free(part);
	kp_free(next);
	return 0;
}

/* Bytes a record takes in a batch (kp_batch_add's layout, batch.h). */
static size_t record_bytes(const struct kp_produce_record *rec)
{
	return KP_RECORD_HEADER_SIZE + (size_t)rec->key_len + rec->value_len;
}

static int add_record(struct kp_batch_builder *b,
		      const struct kp_produce_record *rec, int64_t now_ms,
		      struct kp_error *err)
{
	int rc = kp_batch_add(b, rec->has_ts ? rec->ts : now_ms, rec->key,
			      rec->key_len, rec->value, rec->value_len);

	if (rc == -EINVAL)
		return kp_error_set(err, KP_ETOOLARGE,
				    "the records for one partition exceed a batch's 4 GiB");
	return rc != 0 ? kp_error_set(err, rc, "out of memory") : 0;
}

/*
 * Builds the batch for `partition` into out: every record of the request
 * when r is NULL (an explicit partition), else the partition's run in r.
 * The batch's size is known from the decoded records, so out grows once.
 * Returns the number of records added (0 when none go there) or an error.
 */
static int build_batch(const struct produce_req *p, const struct routing *r,
		       uint32_t partition, int64_t now_ms, struct kp_buf *out,
		       struct kp_error *err)
{
	const struct kp_produce_record *rec = p->records->rec;
	struct kp_batch_builder b;
	uint32_t from = 0, to = p->count;
	size_t bytes = KP_BATCH_HEADER_SIZE;
	int rc;

	if (r != NULL) {
		from = r->first[partition];
		to = r->first[partition + 1];
	}
	if (from == to)
		return 0;
	for (uint32_t k = from; k < to; k++)
		bytes += record_bytes(&rec[r != NULL ? r->order[k] : k]);
	kp_buf_reset(out);
	rc = kp_buf_reserve(out, bytes);
	if (rc == 0)
		rc = kp_batch_begin(&b, out, p->producer_id, (uint32_t)p->seq);
	if (rc != 0)
		return kp_error_set(err, rc, "out of memory");
	for (uint32_t k = from; k < to; k++) {
		rc = add_record(&b, &rec[r != NULL ? r->order[k] : k], now_ms,
				err);
		if (rc != 0)
			return rc;
	}
	kp_batch_finish(&b);
	return (int)(to - from);
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
	struct kp_records local;
	struct kp_buf batch;
	int64_t now_ms = kp_clock_now_ms();
	uint32_t nparts, first, last;
	int rc;

	kp_records_init(&local);
	memset(&routing, 0, sizeof(routing));
	res = NULL;
	rc = produce_decode(s, req, &local, &p, err);
	if (rc != 0)
		goto out;
	nparts = p.topic->config.partitions;
	first = p.has_partition ? (uint32_t)p.partition : 0;
	last = p.has_partition ? first + 1 : nparts;
	if (!p.has_partition) {
		rc = route_records(&p, p.topic->rr_next++, &routing, err);
		if (rc != 0)
			goto out;
	}
	res = kp_calloc(nparts, sizeof(*res));
	if (res == NULL) {
		rc = kp_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	kp_buf_init(&batch);
	for (uint32_t i = first; i < last && rc == 0; i++)
		rc = produce_one(s, slot, &p, p.has_partition ? NULL : &routing,
				 i, now_ms, &batch, &res[i], err);
	kp_buf_destroy(&batch);
	if (rc == 0)
		pack_results(slot, res, nparts);
out:
	kp_free(res);
	routing_destroy(&routing);
	kp_records_destroy(&local);
	if (rc != 0 && slot->waits > 0) {
		kp_slot_set_error(slot, rc, err->msg);
		return 0;
	}
	return rc;
}
