/*
 * test_proto.c - the protocol codec: framing, request decoding, typed field
 * getters and their messages, produce records, responses as any msgpack
 * client decodes them, and the key routing hash.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/error.h"
#include "base/mp.h"
#include "wire/proto.h"

#include "support_packed.h"

/* ---- framing ---- */

static void test_frame_check(void **state)
{
	char buf[64];
	uint32_t body = 0;

	(void)state;
	memset(buf, 0, sizeof(buf));
	assert_int_equal(kp_frame_check(buf, 0, 100, &body), 0);
	assert_int_equal(kp_frame_check(buf, 3, 100, &body), 0);
	/* Length 0 is a framing error as soon as the header is whole. */
	assert_int_equal(kp_frame_check(buf, 4, 100, &body), KP_EBADFRAME);

	kp_put_be32(buf, 101);
	assert_int_equal(kp_frame_check(buf, 4, 100, &body), KP_EBADFRAME);
	assert_int_equal(kp_frame_check(buf, 2, 100, &body), 0);
	kp_put_be32(buf, UINT32_MAX);
	assert_int_equal(kp_frame_check(buf, 4, KP_DEFAULT_MAX_FRAME, &body),
			 KP_EBADFRAME);

	kp_put_be32(buf, 10);
	body = 0;
	assert_int_equal(kp_frame_check(buf, 4, 100, &body), 0);
	assert_int_equal(kp_frame_check(buf, 13, 100, &body), 0);
	assert_int_equal(body, 0);
	assert_int_equal(kp_frame_check(buf, 14, 100, &body), 1);
	assert_int_equal(body, 10);
	/* A following frame's bytes do not matter. */
	assert_int_equal(kp_frame_check(buf, 64, 100, &body), 1);
	assert_int_equal(body, 10);

	kp_put_be32(buf, 100);
	assert_int_equal(kp_frame_check(buf, 64, 100, &body), 0);
}

/* ---- requests ---- */

static void test_request_ok(void **state)
{
	struct packed p;
	struct kp_request req;
	struct kp_error err;

	(void)state;
	packed_init(&p);
	msgpack_pack_map(&p.pk, 3);
	pack_str(&p, "op");
	pack_str(&p, "produce");
	pack_str(&p, "extra");
	msgpack_pack_array(&p.pk, 0);
	pack_str(&p, "id");
	msgpack_pack_uint64(&p.pk, 1ull << 40);
	assert_int_equal(kp_request_decode(p.buf.data, p.buf.len, &req, &err),
			 0);
	assert_int_equal(err.code, 0);
	assert_true(req.id == 1ull << 40);
	assert_true(kp_request_is(&req, "produce"));
	assert_false(kp_request_is(&req, "produc"));
	assert_false(kp_request_is(&req, "fetch"));
	assert_ptr_equal(req.map.ptr, p.buf.data);
	assert_int_equal(req.map.len, p.buf.len);

	/* An id in a signed encoding is still a uint. */
	kp_buf_reset(&p.buf);
	msgpack_pack_map(&p.pk, 2);
	pack_str(&p, "id");
	msgpack_pack_fix_int16(&p.pk, 7);
	pack_str(&p, "op");
	pack_str(&p, "ping");
	assert_int_equal(kp_request_decode(p.buf.data, p.buf.len, &req, &err),
			 0);
	assert_true(req.id == 7);
	assert_true(kp_request_is(&req, "ping"));
	kp_buf_destroy(&p.buf);
}

static void check_decode_error(struct packed *p, int code, uint64_t id,
			       const char *msg)
{
	struct kp_request req;
	struct kp_error err;

	req.id = 12345;
	assert_int_equal(kp_request_decode(p->buf.data, p->buf.len, &req, &err),
			 code);
	assert_int_equal(err.code, code);
	assert_true(req.id == id);
	if (msg != NULL)
		assert_string_equal(err.msg, msg);
	assert_false(kp_request_is(&req, "ping"));
}

static void test_request_errors(void **state)
{
	struct packed p;

	(void)state;
	packed_init(&p);

	/* Empty and malformed bodies. */
	check_decode_error(&p, KP_EBADMSGPACK, 0, NULL);
	msgpack_pack_map(&p.pk, 2);
	pack_str(&p, "id");
	check_decode_error(&p, KP_EBADMSGPACK, 0, NULL);

	kp_buf_reset(&p.buf);
	msgpack_pack_array(&p.pk, 1);
	msgpack_pack_uint8(&p.pk, 1);
	check_decode_error(&p, KP_EBADREQUEST, 0,
			   "request must be a map, got array");

	kp_buf_reset(&p.buf);
	msgpack_pack_map(&p.pk, 1);
	pack_str(&p, "op");
	pack_str(&p, "ping");
	check_decode_error(&p, KP_EBADREQUEST, 0, "field 'id' is required");

	kp_buf_reset(&p.buf);
	msgpack_pack_map(&p.pk, 2);
	pack_str(&p, "id");
	msgpack_pack_nil(&p.pk);
	pack_str(&p, "op");
	pack_str(&p, "ping");
	check_decode_error(&p, KP_EBADREQUEST, 0, "field 'id' is required");

	kp_buf_reset(&p.buf);
	msgpack_pack_map(&p.pk, 2);
	pack_str(&p, "id");
	pack_str(&p, "7");
	pack_str(&p, "op");
	pack_str(&p, "ping");
	check_decode_error(&p, KP_EBADREQUEST, 0,
			   "field 'id' must be uint, got str");

	kp_buf_reset(&p.buf);
	msgpack_pack_map(&p.pk, 2);
	pack_str(&p, "id");
	msgpack_pack_int64(&p.pk, -7);
	pack_str(&p, "op");
	pack_str(&p, "ping");
	check_decode_error(&p, KP_EBADREQUEST, 0,
			   "field 'id' must be uint, got int");

	kp_buf_reset(&p.buf);
	msgpack_pack_map(&p.pk, 1);
	pack_str(&p, "id");
	msgpack_pack_uint8(&p.pk, 9);
	check_decode_error(&p, KP_EBADREQUEST, 9, "field 'op' is required");

	kp_buf_reset(&p.buf);
	msgpack_pack_map(&p.pk, 2);
	pack_str(&p, "id");
	msgpack_pack_uint8(&p.pk, 9);
	pack_str(&p, "op");
	msgpack_pack_bin_with_body(&p.pk, "ping", 4);
	check_decode_error(&p, KP_EBADREQUEST, 9,
			   "field 'op' must be str, got bin");

	/* Trailing bytes: BAD_MSGPACK, but the id is still read. */
	kp_buf_reset(&p.buf);
	msgpack_pack_map(&p.pk, 2);
	pack_str(&p, "id");
	msgpack_pack_uint8(&p.pk, 42);
	pack_str(&p, "op");
	pack_str(&p, "ping");
	msgpack_pack_nil(&p.pk);
	check_decode_error(&p, KP_EBADMSGPACK, 42,
			   "1 bytes after the request value");

	/* A huge declared map in a tiny body. */
	kp_buf_reset(&p.buf);
	msgpack_pack_map(&p.pk, UINT32_MAX);
	check_decode_error(&p, KP_EBADMSGPACK, 0, NULL);
	kp_buf_destroy(&p.buf);
}

/* ---- field getters ---- */

/* A map with one field of each type; "n" is nil. */
static void pack_fields(struct packed *p)
{
	msgpack_pack_map(&p->pk, 12);
	pack_str(p, "s");
	pack_str(p, "hello");
	pack_str(p, "u");
	msgpack_pack_uint64(&p->pk, UINT64_MAX);
	pack_str(p, "i");
	msgpack_pack_int64(&p->pk, -5);
	pack_str(p, "big");
	msgpack_pack_uint64(&p->pk, (uint64_t)INT64_MAX);
	pack_str(p, "b");
	msgpack_pack_true(&p->pk);
	pack_str(p, "bin");
	msgpack_pack_bin_with_body(&p->pk, "\0\1", 2);
	pack_str(p, "a");
	msgpack_pack_array(&p->pk, 2);
	msgpack_pack_uint8(&p->pk, 1);
	msgpack_pack_uint8(&p->pk, 2);
	pack_str(p, "m");
	msgpack_pack_map(&p->pk, 1);
	pack_str(p, "x");
	msgpack_pack_uint8(&p->pk, 3);
	pack_str(p, "n");
	msgpack_pack_nil(&p->pk);
	pack_str(p, "f");
	msgpack_pack_double(&p->pk, 0.5);
	msgpack_pack_uint8(&p->pk, 1);  /* non-str key, ignored */
	pack_str(p, "skipped");
	pack_str(p, "e");
	msgpack_pack_ext_with_body(&p->pk, "abcd", 4, 3);
}

static void test_field_getters(void **state)
{
	struct packed p;
	struct kp_mp_view m, v, item;
	struct kp_mp_iter it;
	struct kp_error err;
	uint64_t u;
	int64_t i;
	bool b;
	uint32_t count;

	(void)state;
	packed_init(&p);
	pack_fields(&p);
	m = view_of(&p);

	assert_int_equal(kp_field_str(m, "s", &v, &err), 0);
	assert_true(kp_mp_str_eq(v, "hello"));
	assert_int_equal(kp_field_uint(m, "u", &u, &err), 0);
	assert_true(u == UINT64_MAX);
	assert_int_equal(kp_field_int(m, "i", &i, &err), 0);
	assert_true(i == -5);
	assert_int_equal(kp_field_int(m, "big", &i, &err), 0);
	assert_true(i == INT64_MAX);
	assert_int_equal(kp_field_bool(m, "b", &b, &err), 0);
	assert_true(b);
	assert_int_equal(kp_field_bytes(m, "bin", &v, &err), 0);
	assert_int_equal(v.len, 2);
	assert_memory_equal(v.ptr, "\0\1", 2);
	assert_int_equal(kp_field_bytes(m, "s", &v, &err), 0);
	assert_true(kp_mp_str_eq(v, "hello"));
	assert_int_equal(kp_field_array(m, "a", &it, &count, &err), 0);
	assert_int_equal(count, 2);
	assert_int_equal(kp_mp_array_next(&it, &item), 1);
	assert_int_equal(kp_mp_array_next(&it, &item), 1);
	assert_int_equal(kp_mp_read_uint(item, &u), 0);
	assert_true(u == 2);
	assert_int_equal(kp_mp_array_next(&it, &item), 0);
	assert_int_equal(kp_field_map(m, "m", &v, &err), 0);
	assert_int_equal(kp_field_uint(v, "x", &u, &err), 0);
	assert_true(u == 3);
	assert_int_equal(kp_field_raw(m, "f", &v, &err), 0);
	assert_int_equal(kp_mp_type(v), KP_MP_FLOAT);
	assert_int_equal(v.len, 9);
	assert_int_equal(kp_field_raw(m, "e", &v, &err), 0);
	assert_int_equal(kp_mp_type(v), KP_MP_EXT);

	/* Absent and nil fields: 1, output untouched. */
	u = 77;
	assert_int_equal(kp_field_uint(m, "nope", &u, &err), 1);
	assert_int_equal(kp_field_uint(m, "n", &u, &err), 1);
	assert_true(u == 77);
	assert_int_equal(kp_field_str(m, "n", &v, &err), 1);
	assert_int_equal(kp_field_int(m, "n", &i, &err), 1);
	assert_int_equal(kp_field_bool(m, "n", &b, &err), 1);
	assert_int_equal(kp_field_raw(m, "n", &v, &err), 1);
	assert_int_equal(kp_field_bytes(m, "n", &v, &err), 1);
	assert_int_equal(kp_field_array(m, "n", &it, &count, &err), 1);
	assert_int_equal(kp_field_map(m, "n", &v, &err), 1);
	assert_int_equal(kp_field_str(m, "skipped", &v, &err), 1);

	/* Getters on something that is not a map. */
	assert_int_equal(kp_field_map(m, "a", &v, &err), KP_EBADREQUEST);
	kp_field_raw(m, "a", &v, &err);
	assert_int_equal(kp_field_uint(v, "x", &u, &err), KP_EBADREQUEST);
	kp_buf_destroy(&p.buf);
}

static void check_wrong(int rc, struct kp_error *err, const char *msg)
{
	assert_int_equal(rc, KP_EBADREQUEST);
	assert_int_equal(err->code, KP_EBADREQUEST);
	assert_string_equal(err->msg, msg);
}

static void test_field_wrong_types(void **state)
{
	struct packed p;
	struct kp_mp_view m, v;
	struct kp_mp_iter it;
	struct kp_error err;
	uint64_t u;
	int64_t i;
	bool b;

	(void)state;
	packed_init(&p);
	pack_fields(&p);
	m = view_of(&p);

	check_wrong(kp_field_uint(m, "s", &u, &err), &err,
		    "field 's' must be uint, got str");
	check_wrong(kp_field_uint(m, "i", &u, &err), &err,
		    "field 'i' must be uint, got int");
	check_wrong(kp_field_uint(m, "f", &u, &err), &err,
		    "field 'f' must be uint, got float");
	check_wrong(kp_field_int(m, "u", &i, &err), &err,
		    "field 'u' must be int, got uint above the int64 range");
	check_wrong(kp_field_int(m, "b", &i, &err), &err,
		    "field 'b' must be int, got bool");
	check_wrong(kp_field_str(m, "bin", &v, &err), &err,
		    "field 'bin' must be str, got bin");
	check_wrong(kp_field_str(m, "e", &v, &err), &err,
		    "field 'e' must be str, got ext");
	check_wrong(kp_field_bool(m, "u", &b, &err), &err,
		    "field 'u' must be bool, got uint");
	check_wrong(kp_field_bytes(m, "a", &v, &err), &err,
		    "field 'a' must be str or bin, got array");
	check_wrong(kp_field_array(m, "m", &it, NULL, &err), &err,
		    "field 'm' must be array, got map");
	check_wrong(kp_field_map(m, "a", &v, &err), &err,
		    "field 'a' must be map, got array");
	kp_buf_destroy(&p.buf);
}

/* ---- produce records ---- */

static void test_produce_record(void **state)
{
	struct packed p;
	struct kp_produce_record rec;
	struct kp_error err;
	struct kp_mp_view item;

	(void)state;
	packed_init(&p);
	msgpack_pack_map(&p.pk, 3);
	pack_str(&p, "value");
	msgpack_pack_map(&p.pk, 1);
	pack_str(&p, "user");
	pack_str(&p, "ann");
	pack_str(&p, "key");
	pack_str(&p, "ann");
	pack_str(&p, "ts");
	msgpack_pack_int64(&p.pk, 1700000000000);
	item = view_of(&p);
	assert_int_equal(kp_produce_record_decode(item, &rec, &err), 0);
	assert_true(rec.has_ts);
	assert_true(rec.ts == 1700000000000);
	assert_int_equal(rec.key_len, 3);
	assert_memory_equal(rec.key, "ann", 3);
	assert_int_equal(rec.value_len, 10);
	assert_memory_equal(rec.value, "\x81\xa4user\xa3" "ann", 10);

	/* Key as bin, negative ts. */
	kp_buf_reset(&p.buf);
	msgpack_pack_map(&p.pk, 3);
	pack_str(&p, "ts");
	msgpack_pack_int64(&p.pk, -1);
	pack_str(&p, "key");
	msgpack_pack_bin_with_body(&p.pk, "\xff\x00", 2);
	pack_str(&p, "value");
	msgpack_pack_uint8(&p.pk, 1);
	item = view_of(&p);
	assert_int_equal(kp_produce_record_decode(item, &rec, &err), 0);
	assert_true(rec.has_ts && rec.ts == -1);
	assert_int_equal(rec.key_len, 2);
	assert_memory_equal(rec.key, "\xff\x00", 2);
	assert_int_equal(rec.value_len, 1);

	/* Nil key, no ts, nil value (a value like any other). */
	kp_buf_reset(&p.buf);
	msgpack_pack_map(&p.pk, 2);
	pack_str(&p, "key");
	msgpack_pack_nil(&p.pk);
	pack_str(&p, "value");
	msgpack_pack_nil(&p.pk);
	item = view_of(&p);
	assert_int_equal(kp_produce_record_decode(item, &rec, &err), 0);
	assert_false(rec.has_ts);
	assert_null(rec.key);
	assert_int_equal(rec.key_len, 0);
	assert_int_equal(rec.value_len, 1);
	assert_int_equal((unsigned char)rec.value[0], 0xc0);

	/* Empty key is a key. */
	kp_buf_reset(&p.buf);
	msgpack_pack_map(&p.pk, 2);
	pack_str(&p, "key");
	pack_str(&p, "");
	pack_str(&p, "value");
	pack_str(&p, "v");
	item = view_of(&p);
	assert_int_equal(kp_produce_record_decode(item, &rec, &err), 0);
	assert_non_null(rec.key);
	assert_int_equal(rec.key_len, 0);

	/* Errors. */
	kp_buf_reset(&p.buf);
	msgpack_pack_map(&p.pk, 1);
	pack_str(&p, "key");
	pack_str(&p, "k");
	item = view_of(&p);
	check_wrong(kp_produce_record_decode(item, &rec, &err), &err,
		    "field 'value' is required in each record");

	kp_buf_reset(&p.buf);
	msgpack_pack_map(&p.pk, 2);
	pack_str(&p, "value");
	msgpack_pack_uint8(&p.pk, 1);
	pack_str(&p, "key");
	msgpack_pack_uint8(&p.pk, 1);
	item = view_of(&p);
	check_wrong(kp_produce_record_decode(item, &rec, &err), &err,
		    "field 'key' must be str or bin, got uint");

	kp_buf_reset(&p.buf);
	msgpack_pack_map(&p.pk, 2);
	pack_str(&p, "value");
	msgpack_pack_uint8(&p.pk, 1);
	pack_str(&p, "ts");
	pack_str(&p, "yesterday");
	item = view_of(&p);
	check_wrong(kp_produce_record_decode(item, &rec, &err), &err,
		    "field 'ts' must be int, got str");

	kp_buf_reset(&p.buf);
	msgpack_pack_array(&p.pk, 0);
	item = view_of(&p);
	check_wrong(kp_produce_record_decode(item, &rec, &err), &err,
		    "each record must be a map, got array");
	kp_buf_destroy(&p.buf);
}

/* ---- responses ---- */

/* Checks the frame at out[start..], unpacks it and returns the map. */
static msgpack_object unpack_frame(const struct kp_buf *out, size_t start,
				   msgpack_unpacked *u)
{
	uint32_t body;
	size_t off = 0;

	assert_int_equal(kp_frame_check(out->data + start, out->len - start,
					 KP_DEFAULT_MAX_FRAME, &body), 1);
	assert_int_equal(body + KP_FRAME_HEADER_SIZE, out->len - start);
	msgpack_unpacked_init(u);
	assert_int_equal(msgpack_unpack_next(u, out->data + start + 4, body,
					     &off), MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, body);
	assert_int_equal(u->data.type, MSGPACK_OBJECT_MAP);
	return u->data;
}

static const msgpack_object *get(msgpack_object map, size_t i,
				 const char *key)
{
	const msgpack_object_kv *kv = &map.via.map.ptr[i];

	assert_int_equal(kv->key.type, MSGPACK_OBJECT_STR);
	assert_int_equal(kv->key.via.str.size, strlen(key));
	assert_memory_equal(kv->key.via.str.ptr, key, strlen(key));
	return &kv->val;
}

static void assert_str(const msgpack_object *o, const char *s)
{
	assert_int_equal(o->type, MSGPACK_OBJECT_STR);
	assert_int_equal(o->via.str.size, strlen(s));
	assert_memory_equal(o->via.str.ptr, s, strlen(s));
}

static void test_response_ok(void **state)
{
	struct kp_buf out;
	struct kp_response r;
	msgpack_unpacked u;
	msgpack_object m;
	const msgpack_object *o;

	(void)state;
	kp_buf_init(&out);
	kp_buf_append(&out, "xy", 2);  /* an earlier frame's bytes */
	kp_response_begin(&r, &out, 99, 2);
	kp_response_key(&r, "offset");
	msgpack_pack_uint64(&r.pk, 42);
	kp_response_key(&r, "topic");
	kp_response_str(&r, "events", 6);
	assert_int_equal(kp_response_finish(&r), 0);
	assert_memory_equal(out.data, "xy", 2);

	m = unpack_frame(&out, 2, &u);
	assert_int_equal(m.via.map.size, 4);
	o = get(m, 0, "id");
	assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_int_equal(o->via.u64, 99);
	o = get(m, 1, "ok");
	assert_int_equal(o->type, MSGPACK_OBJECT_BOOLEAN);
	assert_true(o->via.boolean);
	o = get(m, 2, "offset");
	assert_int_equal(o->via.u64, 42);
	assert_str(get(m, 3, "topic"), "events");
	msgpack_unpacked_destroy(&u);

	/* The codec reads its own responses too. */
	{
		struct kp_mp_view body = { out.data + 6, out.len - 6 };
		bool ok = false;

		assert_int_equal(kp_mp_validate_one(body.ptr, body.len, NULL),
				 0);
		assert_int_equal(kp_field_bool(body, "ok", &ok, NULL), 0);
		assert_true(ok);
	}
	kp_buf_destroy(&out);
}

static void test_response_error(void **state)
{
	struct kp_buf out;
	struct kp_response r;
	msgpack_unpacked u;
	msgpack_object m;
	const msgpack_object *o;
	size_t second;

	(void)state;
	kp_buf_init(&out);
	kp_response_begin_error(&r, &out, 5, KP_EOFFSET, "offset 9 is past 3",
				2);
	kp_response_key(&r, "start_offset");
	msgpack_pack_uint64(&r.pk, 0);
	kp_response_key(&r, "end_offset");
	msgpack_pack_uint64(&r.pk, 3);
	assert_int_equal(kp_response_finish(&r), 0);
	second = out.len;
	assert_int_equal(kp_response_error(&out, 0, KP_EBADFRAME, NULL), 0);
	assert_int_equal(kp_response_error(&out, 1, -ENOENT, "open x"), 0);

	m = unpack_frame(&(struct kp_buf){ out.data, second, second }, 0, &u);
	assert_int_equal(m.via.map.size, 6);
	o = get(m, 0, "id");
	assert_int_equal(o->via.u64, 5);
	o = get(m, 1, "ok");
	assert_int_equal(o->type, MSGPACK_OBJECT_BOOLEAN);
	assert_false(o->via.boolean);
	assert_str(get(m, 2, "error"), "OFFSET_OUT_OF_RANGE");
	assert_str(get(m, 3, "message"), "offset 9 is past 3");
	assert_int_equal(get(m, 4, "start_offset")->via.u64, 0);
	assert_int_equal(get(m, 5, "end_offset")->via.u64, 3);
	msgpack_unpacked_destroy(&u);

	{
		uint32_t len2 = kp_get_be32(out.data + second);
		struct kp_buf second_frame = {
			out.data + second, 4 + len2, 4 + len2
		};
		struct kp_buf third_frame = {
			out.data + second + 4 + len2, out.len - second - 4 - len2,
			out.len - second - 4 - len2
		};

		m = unpack_frame(&second_frame, 0, &u);
		assert_int_equal(m.via.map.size, 4);
		assert_int_equal(get(m, 0, "id")->via.u64, 0);
		assert_str(get(m, 2, "error"), "BAD_FRAME");
		assert_str(get(m, 3, "message"), "malformed frame");
		msgpack_unpacked_destroy(&u);

		m = unpack_frame(&third_frame, 0, &u);
		assert_int_equal(get(m, 0, "id")->via.u64, 1);
		assert_str(get(m, 2, "error"), "IO_ERROR");
		assert_str(get(m, 3, "message"), "open x");
		msgpack_unpacked_destroy(&u);
	}
	kp_buf_destroy(&out);
}

static void test_response_oom(void **state)
{
	struct kp_buf out;
	struct kp_response r;
	char big[1000];
	long n;

	(void)state;
	memset(big, 'z', sizeof(big));
	kp_buf_init(&out);
	kp_buf_append(&out, "keep", 4);
	for (n = 0; n < 3; n++) {
		kp_alloc_fail_after(n);
		kp_response_begin(&r, &out, 1, 1);
		kp_response_key(&r, "blob");
		kp_response_str(&r, big, sizeof(big));
		assert_int_equal(kp_response_finish(&r), n == 0 ? -ENOMEM : 0);
		kp_alloc_fail_after(-1);
		if (n == 0) {
			assert_int_equal(out.len, 4);
			assert_memory_equal(out.data, "keep", 4);
		}
		out.len = 4;
	}
	kp_buf_destroy(&out);

	/* A fresh buffer whose very first growth fails. */
	kp_alloc_fail_after(0);
	assert_int_equal(kp_response_error(&out, 1, KP_EINTERNAL, "x"),
			 -ENOMEM);
	kp_alloc_fail_after(-1);
	assert_int_equal(out.len, 0);
	kp_buf_destroy(&out);
}

static void test_fnv1a32(void **state)
{
	(void)state;
	assert_true(kp_fnv1a32("", 0) == 2166136261u);
	assert_true(kp_fnv1a32("a", 1) == 0xe40c292cu);
	assert_true(kp_fnv1a32("foobar", 6) == 0xbf9cf968u);
	assert_true(kp_fnv1a32("\xff\x00", 2) != kp_fnv1a32("\xff", 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_frame_check),
		cmocka_unit_test(test_request_ok),
		cmocka_unit_test(test_request_errors),
		cmocka_unit_test(test_field_getters),
		cmocka_unit_test(test_field_wrong_types),
		cmocka_unit_test(test_produce_record),
		cmocka_unit_test(test_response_ok),
		cmocka_unit_test(test_response_error),
		cmocka_unit_test(test_response_oom),
		cmocka_unit_test(test_fnv1a32),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
