/*
 * fuzz_request.c - libFuzzer target for the protocol codec.
 *
 * The input is read as a stream of frames (and, when it does not start with
 * a whole frame, also as one bare body). Each body goes through
 * kp_request_decode, every typed getter, the mp iterators and
 * kp_produce_record_decode over "records"; a response echoing the request
 * is written and checked. Whatever the walker accepts is also unpacked with
 * msgpack-c and compared value by value, so the two decoders must agree.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/mp.h"
#include "wire/proto.h"
#include "wire/records.h"
#include "fuzz_check.h"

#define FUZZ_MAX_FRAME (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const field_names[] = {
	"id", "op", "topic", "partition", "records", "offset", "key", "value",
	"ts", "at", "max_bytes", "producer_id", "seq", "group", "offsets",
	"fsync", "retention_ms", "",
};

static void all_getters(struct kp_mp_view map, const char *name)
{
	struct kp_error err;
	struct kp_mp_view v;
	struct kp_mp_iter it;
	uint64_t u;
	int64_t i;
	bool b;
	uint32_t count;
	int rc;

	rc = kp_field_str(map, name, &v, &err);
	CHECK(rc == 0 || rc == 1 || rc == KP_EBADREQUEST);
	if (rc == 0)
		CHECK(v.ptr >= map.ptr && v.ptr + v.len <= map.ptr + map.len);
	rc = kp_field_uint(map, name, &u, &err);
	CHECK(rc == 0 || rc == 1 || rc == KP_EBADREQUEST);
	rc = kp_field_int(map, name, &i, &err);
	CHECK(rc == 0 || rc == 1 || rc == KP_EBADREQUEST);
	rc = kp_field_bool(map, name, &b, &err);
	CHECK(rc == 0 || rc == 1 || rc == KP_EBADREQUEST);
	rc = kp_field_raw(map, name, &v, &err);
	CHECK(rc == 0 || rc == 1);
	if (rc == 0)
		CHECK(kp_mp_validate_one(v.ptr, v.len, NULL) == 0);
	rc = kp_field_bytes(map, name, &v, &err);
	CHECK(rc == 0 || rc == 1 || rc == KP_EBADREQUEST);
	if (rc == 0)
		CHECK(v.ptr >= map.ptr && v.ptr + v.len <= map.ptr + map.len);
	rc = kp_field_array(map, name, &it, &count, &err);
	CHECK(rc == 0 || rc == 1 || rc == KP_EBADREQUEST);
	if (rc == 0) {
		uint32_t n = 0;

		while (kp_mp_array_next(&it, &v))
			n++;
		CHECK(n == count);
	}
	rc = kp_field_map(map, name, &v, &err);
	CHECK(rc == 0 || rc == 1 || rc == KP_EBADREQUEST);
	if (rc == 0)
		CHECK(kp_mp_type(v) == KP_MP_MAP);
}

static bool same_double(double a, double b)
{
	return a == b || (isnan(a) && isnan(b));
}

static bool same_bytes(struct kp_mp_view a, const char *ptr, uint32_t len)
{
	return a.len == len && (len == 0 || memcmp(a.ptr, ptr, len) == 0);
}

/* Walks v with the iterators and compares it with msgpack-c's object. */
static int compare(struct kp_mp_view v, const msgpack_object *o, int depth)
{
	struct kp_mp_iter it;
	struct kp_mp_view item, key, payload;
	uint64_t u;
	int64_t i;
	double d;
	bool b;
	uint32_t n = 0;
	int max = depth;

	CHECK(depth <= KP_MP_MAX_DEPTH + 1);
	switch (kp_mp_type(v)) {
	case KP_MP_NIL:
		CHECK(o->type == MSGPACK_OBJECT_NIL && kp_mp_is_nil(v));
		break;
	case KP_MP_BOOL:
		CHECK(o->type == MSGPACK_OBJECT_BOOLEAN);
		CHECK(kp_mp_read_bool(v, &b) == 0 && b == o->via.boolean);
		break;
	case KP_MP_UINT:
		CHECK(o->type == MSGPACK_OBJECT_POSITIVE_INTEGER);
		CHECK(kp_mp_read_uint(v, &u) == 0 && u == o->via.u64);
		CHECK(kp_mp_read_int(v, &i) ==
		      (u > (uint64_t)INT64_MAX ? KP_EBADREQUEST : 0));
		break;
	case KP_MP_INT:
		CHECK(o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER);
		CHECK(kp_mp_read_int(v, &i) == 0 && i == o->via.i64 && i < 0);
		CHECK(kp_mp_read_uint(v, &u) == KP_EBADREQUEST);
		break;
	case KP_MP_FLOAT:
		CHECK(o->type == MSGPACK_OBJECT_FLOAT32 ||
		      o->type == MSGPACK_OBJECT_FLOAT64);
		CHECK(kp_mp_read_double(v, &d) == 0 &&
		      same_double(d, o->via.f64));
		break;
	case KP_MP_STR:
		CHECK(o->type == MSGPACK_OBJECT_STR);
		CHECK(kp_mp_read_str(v, &payload) == 0);
		CHECK(same_bytes(payload, o->via.str.ptr, o->via.str.size));
		break;
	case KP_MP_BIN:
		CHECK(o->type == MSGPACK_OBJECT_BIN);
		CHECK(kp_mp_read_bin(v, &payload) == 0);
		CHECK(same_bytes(payload, o->via.bin.ptr, o->via.bin.size));
		break;
	case KP_MP_EXT:
		CHECK(o->type == MSGPACK_OBJECT_EXT);
		break;
	case KP_MP_ARRAY:
		CHECK(o->type == MSGPACK_OBJECT_ARRAY);
		CHECK(kp_mp_array_begin(v, &it) == 0);
		CHECK(it.left == o->via.array.size);
		while (kp_mp_array_next(&it, &item)) {
			int dd = compare(item, &o->via.array.ptr[n++],
					 depth + 1);

			max = dd > max ? dd : max;
		}
		CHECK(n == o->via.array.size && it.pos == v.ptr + v.len);
		break;
	case KP_MP_MAP:
		CHECK(o->type == MSGPACK_OBJECT_MAP);
		CHECK(kp_mp_map_begin(v, &it) == 0);
		CHECK(it.left == o->via.map.size);
		while (kp_mp_map_next(&it, &key, &item)) {
			const msgpack_object_kv *kv = &o->via.map.ptr[n++];
			int dk = compare(key, &kv->key, depth + 1);
			int dv = compare(item, &kv->val, depth + 1);

			max = dk > max ? dk : max;
			max = dv > max ? dv : max;
		}
		CHECK(n == o->via.map.size && it.pos == v.ptr + v.len);
		break;
	}
	return max;
}

/*
 * Differential check of one accepted object: msgpack-c must decode the same
 * bytes to the same values (it gives up on nesting deeper than its own
 * stack, which is the only disagreement allowed).
 */
static void differential(struct kp_mp_view v)
{
	msgpack_unpacked u;
	size_t off = 0;
	msgpack_unpack_return ret;

	msgpack_unpacked_init(&u);
	ret = msgpack_unpack_next(&u, v.ptr, v.len, &off);
	if (ret == MSGPACK_UNPACK_SUCCESS) {
		CHECK(off == v.len);
		compare(v, &u.data, 0);
	} else {
		CHECK(ret == MSGPACK_UNPACK_NOMEM_ERROR ||
		      ret == MSGPACK_UNPACK_PARSE_ERROR);
	}
	msgpack_unpacked_destroy(&u);
}

/*
 * The one-walk produce decoder (wire/records.c) refuses exactly what
 * kp_request_decode refuses, with the same code.
 */
static void one_walk_agrees(const char *body, size_t len, int rc)
{
	struct kp_request req;
	struct kp_records recs;
	struct kp_error err;
	int rc2;

	kp_records_init(&recs);
	kp_error_clear(&err);
	rc2 = kp_request_decode_records(body, len, &req, &recs, &err);
	CHECK(rc2 == rc || rc2 == -ENOMEM);
	CHECK(strlen(err.msg) < sizeof(err.msg));
	kp_records_destroy(&recs);
}

static void check_records(struct kp_mp_view map)
{
	struct kp_error err;
	struct kp_mp_iter it;
	struct kp_mp_view item;
	struct kp_produce_record rec;
	uint32_t count;

	if (kp_field_array(map, "records", &it, &count, &err) != 0)
		return;
	while (kp_mp_array_next(&it, &item)) {
		int rc = kp_produce_record_decode(item, &rec, &err);

		CHECK(rc == 0 || rc == KP_EBADREQUEST);
		if (rc != 0)
			continue;
		CHECK(rec.value >= item.ptr &&
		      rec.value + rec.value_len <= item.ptr + item.len);
		CHECK(kp_mp_validate_one(rec.value, rec.value_len, NULL) == 0);
		if (rec.key != NULL) {
			CHECK(rec.key >= item.ptr &&
			      rec.key + rec.key_len <= item.ptr + item.len);
			(void)kp_fnv1a32(rec.key, rec.key_len);
		}
	}
}

/* Calls every getter with the name of each str key of the map. */
static void getters_by_key(struct kp_mp_view map)
{
	struct kp_mp_iter it;
	struct kp_mp_view key, val, payload;
	char name[64];

	if (kp_mp_map_begin(map, &it) != 0)
		return;
	while (kp_mp_map_next(&it, &key, &val)) {
		if (kp_mp_read_str(key, &payload) != 0 ||
		    payload.len >= sizeof(name) ||
		    memchr(payload.ptr, 0, payload.len) != NULL)
			continue;
		memcpy(name, payload.ptr, payload.len);
		name[payload.len] = '\0';
		all_getters(map, name);
	}
}

static void respond(const struct kp_request *req, int code,
		    const char *message)
{
	struct kp_buf out;
	struct kp_response r;
	uint32_t body;
	struct kp_mp_view v;

	kp_buf_init(&out);
	if (code == 0) {
		kp_response_begin(&r, &out, req->id, 1);
		kp_response_key(&r, "op");
		kp_response_str(&r, req->op.ptr, req->op.len);
	} else {
		kp_response_begin_error(&r, &out, req->id, code, message, 0);
	}
	CHECK(kp_response_finish(&r) == 0);
	CHECK(kp_frame_check(out.data, out.len, UINT32_MAX, &body) == 1);
	CHECK(body + KP_FRAME_HEADER_SIZE == out.len);
	CHECK(kp_mp_validate_one(out.data + 4, body, &v) == 0);
	differential(v);
	kp_buf_destroy(&out);
}

static void one_body(const char *body, size_t len);

/* Runs one body from an exact-size heap copy, so overruns are caught. */
static void one_copy(const char *body, size_t len)
{
	char *copy = malloc(len ? len : 1);

	CHECK(copy != NULL);
	memcpy(copy, body, len);
	one_body(copy, len);
	free(copy);
}

static void one_body(const char *body, size_t len)
{
	struct kp_request req;
	struct kp_error err;
	struct kp_mp_view obj;
	size_t size, i;
	int rc;

	rc = kp_mp_skip(body, len, &size);
	if (rc == 0) {
		CHECK(size <= len);
		obj.ptr = body;
		obj.len = size;
		differential(obj);
	}
	CHECK((kp_mp_validate_one(body, len, NULL) == 0) ==
	      (rc == 0 && size == len));

	rc = kp_request_decode(body, len, &req, &err);
	CHECK(rc == 0 || rc == KP_EBADMSGPACK || rc == KP_EBADREQUEST);
	CHECK(err.code == rc);
	CHECK(strlen(err.msg) < sizeof(err.msg));
	one_walk_agrees(body, len, rc);
	respond(&req, rc, err.msg);
	if (rc != 0)
		return;
	CHECK(req.op.ptr != NULL && kp_request_is(&req, "") == (req.op.len == 0));
	for (i = 0; i < sizeof(field_names) / sizeof(field_names[0]); i++)
		all_getters(req.map, field_names[i]);
	getters_by_key(req.map);
	check_records(req.map);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	size_t left = size;
	bool framed = false;

	while (left > 0) {
		uint32_t body = 0;
		int rc = kp_frame_check(p, left, FUZZ_MAX_FRAME, &body);

		CHECK(rc == 0 || rc == 1 || rc == KP_EBADFRAME);
		if (rc != 1)
			break;
		CHECK(body > 0 && body <= FUZZ_MAX_FRAME &&
		      body <= left - KP_FRAME_HEADER_SIZE);
		framed = true;
		one_copy(p + KP_FRAME_HEADER_SIZE, body);
		p += KP_FRAME_HEADER_SIZE + body;
		left -= KP_FRAME_HEADER_SIZE + body;
	}
	if (!framed)
		one_copy((const char *)data, size);
	(void)kp_fnv1a32((const char *)data, size);
	return 0;
}
