/*
 * handle_fetch.c - fetch (with long polls and logical topics' generations)
 * and list_offsets.
 *
 * fetch answers in one of two forms (docs/PROTOCOL.md): "records", every
 * record re-encoded as a msgpack map, or "batches", the stored batches
 * exactly as they are on disk in one msgpack bin. The batches are read
 * straight into the response frame, behind its head: nothing is copied or
 * re-encoded on the way from the page cache to the socket.
 */
#include "handler.h"

#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "log/batch.h"
#include "log/writer.h"

#define FETCH_DEFAULT_MAX_BYTES (1024 * 1024)
/*
 * A longer max_wait_ms waits this long (PROTOCOL.md, fetch): clamped, not
 * refused, since a poll that runs out answers empty and its reader fetches
 * again anyway, so a client that asks for "as long as you will" loses
 * nothing.
 */
#define FETCH_MAX_WAIT_MS 60000
/* msgpack bin 32: the marker byte, then the length, big-endian. */
#define MP_BIN32 0xc6
#define MP_BIN32_HEAD 5
/* Room for a batches response's head before its batches. */
#define FETCH_HEAD_ROOM 256

/* The form of a fetch response (the request's "format"). */
enum fetch_format {
	FETCH_RECORDS,   /* "records": an array of record maps */
	FETCH_BATCHES,   /* "batches": the stored batches, one bin */
};

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

/* Answers a failed read of tp into slot (rc and err from the reader). */
static void reply_read_error(struct kp_topic_partition *tp,
			     struct kp_slot *slot, int rc, uint64_t skip_to,
			     const struct kp_error *err)
{
	if (rc == KP_EOFFSET)
		reply_out_of_range(slot, tp, err->msg);
	else if (rc == KP_ECORRUPT)
		reply_corrupt(slot, skip_to, err->msg);
	else
		kp_slot_set_error(slot, rc, err->msg);
}

/* Packs the generation of a logical topic (nothing for a plain topic). */
static void pack_generation(struct kp_response *r, const struct kp_slot *slot)
{
	if (slot->generation) {
		kp_response_key(r, "generation");
		msgpack_pack_uint32(&r->pk, slot->generation);
	}
}

/* Packs start_offset and end_offset. */
static void pack_positions(struct kp_response *r,
			   const struct kp_partition_stats *st)
{
	kp_response_key(r, "start_offset");
	msgpack_pack_uint64(&r->pk, st->start_offset);
	kp_response_key(r, "end_offset");
	msgpack_pack_uint64(&r->pk, st->visible_end);
}

/*
 * The records form: reads from tp at offset and writes the whole fetch
 * response (or its error) into slot. Returns the number of records, or -1
 * when the response is an error.
 */
static int fetch_records(struct kp_topic_partition *tp, struct kp_slot *slot,
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
		reply_read_error(tp, slot, rc, skip_to, &err);
		return -1;
	}
	kp_partition_stats(tp->log, &st);
	n = count_records(&raw, offset);
	kp_buf_reset(&slot->resp);
	kp_response_begin(&r, &slot->resp, slot->id, slot->generation ? 4 : 3);
	pack_generation(&r, slot);
	kp_response_key(&r, "records");
	pack_records(&r, &raw, offset);
	pack_positions(&r, &st);
	kp_buf_destroy(&raw);
	if (kp_response_finish(&r) != 0) {
		kp_slot_set_error(slot, -ENOMEM, "out of memory");
		return -1;
	}
	return (int)n;
}

/*
 * The batches form: the response head, then a bin 32 whose bytes the
 * reader fills in place with whole verified batches, starting with the one
 * that holds offset. Returns the bytes of batches (0: none visible yet), or
 * -1 when the response is an error.
 */
static long fetch_batches(struct kp_server *s, struct kp_topic_partition *tp,
			  struct kp_slot *slot, uint64_t offset,
			  uint64_t max_bytes)
{
	static const char bin_head[MP_BIN32_HEAD] = { (char)MP_BIN32 };
	struct kp_partition_stats st;
	struct kp_response r;
	struct kp_error err;
	uint64_t skip_to = 0;
	size_t at;
	int rc;

	kp_error_clear(&err);
	kp_partition_stats(tp->log, &st);
	kp_buf_reset(&slot->resp);
	kp_conns_take_buf(&s->conns, &slot->resp, FETCH_HEAD_ROOM + max_bytes);
	kp_response_begin(&r, &slot->resp, slot->id, slot->generation ? 4 : 3);
	pack_generation(&r, slot);
	pack_positions(&r, &st);
	kp_response_key(&r, "batches");
	r.pk.callback(r.pk.data, bin_head, sizeof(bin_head));
	if (r.oom) {
		kp_slot_set_error(slot, -ENOMEM, "out of memory");
		return -1;
	}
	at = slot->resp.len;
	rc = kp_partition_read(tp->log, offset, (size_t)max_bytes, &slot->resp,
			       &skip_to, &err);
	if (rc != 0) {
		reply_read_error(tp, slot, rc, skip_to, &err);
		return -1;
	}
	kp_put_be32(slot->resp.data + at - 4, (uint32_t)(slot->resp.len - at));
	if (kp_response_finish(&r) != 0) {
		kp_slot_set_error(slot, -ENOMEM, "out of memory");
		return -1;
	}
	return (long)(slot->resp.len - at);
}

/*
 * Writes the whole fetch response (or its error) into slot in the given
 * form. Returns > 0 when it holds data, 0 when nothing at offset is visible
 * yet, -1 for an error response.
 */
static long fetch_reply(struct kp_server *s, struct kp_topic_partition *tp,
			struct kp_slot *slot, uint64_t offset,
			uint64_t max_bytes, enum fetch_format format)
{
	if (format == FETCH_BATCHES)
		return fetch_batches(s, tp, slot, offset, max_bytes);
	return fetch_records(tp, slot, offset, max_bytes);
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

/* A parked fetch answers now (data, its time is up, or the topic went). */
static void fetch_wake(struct kp_server *s, struct kp_topic_partition *tp,
		       struct kp_slot *slot, uint64_t offset,
		       uint64_t max_bytes, enum fetch_format format)
{
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
		fetch_reply(s, tp, slot, offset, max_bytes, format);
	kp_slot_ready(slot);
}

/* The wake functions of parked fetches, one per form; arg is the server. */
static void on_fetch_wake(void *arg, struct kp_topic_partition *tp,
			  struct kp_slot *slot, uint64_t offset,
			  uint64_t max_bytes)
{
	fetch_wake(arg, tp, slot, offset, max_bytes, FETCH_RECORDS);
}

static void on_fetch_wake_batches(void *arg, struct kp_topic_partition *tp,
				  struct kp_slot *slot, uint64_t offset,
				  uint64_t max_bytes)
{
	fetch_wake(arg, tp, slot, offset, max_bytes, FETCH_BATCHES);
}

/* Reads the request's "format" into *format. Returns 0 or KP_EBADREQUEST. */
static int parse_format(const struct kp_request *req,
			enum fetch_format *format, struct kp_error *err)
{
	struct kp_mp_view name;
	int rc = kp_field_str(req->map, "format", &name, err);

	*format = FETCH_RECORDS;
	if (rc < 0)
		return rc;
	if (rc == 1 || kp_mp_str_eq(name, "records"))
		return 0;
	if (kp_mp_str_eq(name, "batches")) {
		*format = FETCH_BATCHES;
		return 0;
	}
	return kp_error_set(err, KP_EBADREQUEST,
			    "field 'format' must be \"records\" or \"batches\"");
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
	enum fetch_format format;
	long got;
	int rc = kp_handler_partition(s, req, &tp, err);

	if (rc != 0)
		return rc;
	rc = parse_format(req, &format, err);
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
	got = fetch_reply(s, tp, slot, offset, max_bytes, format);
	if (got != 0 || wait_ms == 0 || s->stopping)
		return 0;
	kp_buf_reset(&slot->resp);
	rc = kp_writer_park_fetch(&s->store.writer, tp, slot, offset,
				  max_bytes, wait_ms,
				  format == FETCH_BATCHES ? on_fetch_wake_batches
							  : on_fetch_wake,
				  s);
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
