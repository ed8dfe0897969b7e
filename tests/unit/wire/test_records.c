/*
 * test_records.c - a produce request's records decoded in the walk that
 * validates the body: the decoded records, the first bad record named by
 * its index, malformed bytes anywhere refused as BAD_MSGPACK exactly as a
 * whole-body kp_mp_skip refuses them, and the request's field index.
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

#include "base/buf.h"
#include "base/error.h"
#include "base/mp.h"
#include "wire/proto.h"
#include "wire/records.h"

#include "support_packed.h"

/* A good record {value: bin(3) "v<i>", key: "k<i>"}. */
static void pack_record(struct packed *p, uint32_t i)
{
	char v[3] = { 'v', (char)('0' + i % 10), (char)('0' + i / 10 % 10) };

	msgpack_pack_map(&p->pk, 2);
	pack_str(p, "value");
	msgpack_pack_bin_with_body(&p->pk, v, sizeof(v));
	pack_str(p, "key");
	pack_str(p, "k");
}

/* A produce request whose record `bad` (or none: UINT32_MAX) is bad_fn's. */
static void pack_produce(struct packed *p, uint32_t n, uint32_t bad,
			 void (*bad_fn)(struct packed *p), bool records_first)
{
	msgpack_pack_map(&p->pk, 4);
	if (records_first) {
		pack_str(p, "records");
		msgpack_pack_array(&p->pk, n);
		for (uint32_t i = 0; i < n; i++) {
			if (i == bad)
				bad_fn(p);
			else
				pack_record(p, i);
		}
	}
	pack_str(p, "id");
	msgpack_pack_uint32(&p->pk, 77);
	pack_str(p, "op");
	pack_str(p, "produce");
	pack_str(p, "topic");
	pack_str(p, "t");
	if (!records_first) {
		pack_str(p, "records");
		msgpack_pack_array(&p->pk, n);
		for (uint32_t i = 0; i < n; i++) {
			if (i == bad)
				bad_fn(p);
			else
				pack_record(p, i);
		}
	}
}

static void bad_no_value(struct packed *p)
{
	msgpack_pack_map(&p->pk, 1);
	pack_str(p, "key");
	pack_str(p, "k");
}

static void bad_key_type(struct packed *p)
{
	msgpack_pack_map(&p->pk, 2);
	pack_str(p, "value");
	msgpack_pack_int(&p->pk, 1);
	pack_str(p, "key");
	msgpack_pack_int(&p->pk, 5);
}

static void bad_ts_type(struct packed *p)
{
	msgpack_pack_map(&p->pk, 2);
	pack_str(p, "value");
	msgpack_pack_int(&p->pk, 1);
	pack_str(p, "ts");
	pack_str(p, "now");
}

static void bad_not_map(struct packed *p)
{
	msgpack_pack_array(&p->pk, 1);
	msgpack_pack_int(&p->pk, 1);
}

static void test_records_decoded(void **state)
{
	struct packed p;
	struct kp_request req;
	struct kp_records recs;
	struct kp_error err;

	(void)state;
	for (int first = 0; first < 2; first++) {
		packed_init(&p);
		kp_records_init(&recs);
		pack_produce(&p, 40, UINT32_MAX, NULL, first);
		assert_int_equal(kp_request_decode_records(p.buf.data, p.buf.len,
							   &req, &recs, &err),
				 0);
		assert_true(req.id == 77);
		assert_true(kp_request_is(&req, "produce"));
		assert_ptr_equal(req.records, &recs);
		assert_int_equal(recs.count, 40);
		assert_int_equal(recs.ok, 40);
		assert_int_equal(recs.err.code, 0);
		for (uint32_t i = 0; i < 40; i++) {
			const struct kp_produce_record *r = &recs.rec[i];

			/* value is the whole msgpack bin object */
			assert_int_equal(r->value_len, 5);
			assert_int_equal((unsigned char)r->value[0], 0xc4);
			assert_int_equal(r->value[3], (char)('0' + i % 10));
			assert_int_equal(r->key_len, 1);
			assert_memory_equal(r->key, "k", 1);
			assert_false(r->has_ts);
		}
		/* Without recs the same body decodes, records not kept. */
		assert_int_equal(kp_request_decode(p.buf.data, p.buf.len, &req,
						   &err), 0);
		assert_null(req.records);
		kp_records_destroy(&recs);
		kp_buf_destroy(&p.buf);
	}
}

/* Record k of many is bad: named by its index, the ones before decoded. */
static void test_bad_record_at_index(void **state)
{
	static const struct {
		void (*fn)(struct packed *p);
		const char *msg;
	} cases[] = {
		{ bad_no_value, "field 'value' is required" },
		{ bad_key_type, "field 'key' must be str or bin, got" },
		{ bad_ts_type, "field 'ts' must be int, got str" },
		{ bad_not_map, "each record must be a map, got array" },
	};
	static const uint32_t at[] = { 0, 1, 17, 99 };

	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		for (size_t a = 0; a < sizeof(at) / sizeof(at[0]); a++) {
			struct packed p;
			struct kp_request req;
			struct kp_records recs;
			struct kp_error err;
			char want[64];

			packed_init(&p);
			kp_records_init(&recs);
			pack_produce(&p, 100, at[a], cases[c].fn, a % 2 == 0);
			/* The body is well-formed: decoding succeeds. */
			assert_int_equal(kp_request_decode_records(p.buf.data,
								   p.buf.len,
								   &req, &recs,
								   &err), 0);
			assert_int_equal(recs.count, 100);
			assert_int_equal(recs.ok, at[a]);
			assert_int_equal(recs.err.code, KP_EBADREQUEST);
			snprintf(want, sizeof(want), "records[%u]: ", at[a]);
			assert_true(strncmp(recs.err.msg, want, strlen(want)) == 0);
			assert_non_null(strstr(recs.err.msg, cases[c].msg));
			kp_records_destroy(&recs);
			kp_buf_destroy(&p.buf);
		}
	}
}

/*
 * Every truncation of a produce body, and a body with bytes after its
 * value, is BAD_MSGPACK, exactly when kp_mp_skip refuses the whole body;
 * nothing is left in req->records.
 */
static void test_malformed_is_bad_msgpack(void **state)
{
	struct packed p;
	struct kp_request req;
	struct kp_records recs;
	struct kp_error err;
	size_t size;

	(void)state;
	packed_init(&p);
	pack_produce(&p, 5, UINT32_MAX, NULL, true);
	for (size_t cut = 1; cut < p.buf.len; cut++) {
		kp_records_init(&recs);
		assert_int_not_equal(kp_mp_skip(p.buf.data, cut, &size), 0);
		assert_int_equal(kp_request_decode_records(p.buf.data, cut, &req,
							   &recs, &err),
				 KP_EBADMSGPACK);
		assert_null(req.records);
		kp_records_destroy(&recs);
	}
	/* A record value whose declared length runs past the frame. */
	{
		struct packed q;

		packed_init(&q);
		msgpack_pack_map(&q.pk, 3);
		pack_str(&q, "id");
		msgpack_pack_uint32(&q.pk, 5);
		pack_str(&q, "op");
		pack_str(&q, "produce");
		pack_str(&q, "records");
		msgpack_pack_array(&q.pk, 2);
		pack_record(&q, 0);
		msgpack_pack_map(&q.pk, 1);
		pack_str(&q, "value");
		kp_buf_append(&q.buf, "\xc6\x00\x10\x00\x00", 5);
		kp_records_init(&recs);
		assert_int_equal(kp_request_decode_records(q.buf.data, q.buf.len,
							   &req, &recs, &err),
				 KP_EBADMSGPACK);
		/* The id is not trusted from a malformed body. */
		assert_true(req.id == 0);
		kp_records_destroy(&recs);
		kp_buf_destroy(&q.buf);
	}
	kp_buf_append(&p.buf, "\xc0", 1);
	kp_records_init(&recs);
	assert_int_equal(kp_request_decode_records(p.buf.data, p.buf.len, &req,
						   &recs, &err),
			 KP_EBADMSGPACK);
	assert_non_null(strstr(err.msg, "1 bytes after the request value"));
	assert_true(req.id == 77);
	kp_records_destroy(&recs);
	kp_buf_destroy(&p.buf);
}

/* The piecewise walk keeps the depth limit of the whole-body walk. */
static void test_depth_limit_kept(void **state)
{
	(void)state;
	for (int extra = 58; extra <= 64; extra++) {
		struct packed p;
		struct kp_request req;
		struct kp_records recs;
		struct kp_error err;
		size_t size;
		int whole, rc;

		packed_init(&p);
		msgpack_pack_map(&p.pk, 3);
		pack_str(&p, "id");
		msgpack_pack_uint32(&p.pk, 1);
		pack_str(&p, "op");
		pack_str(&p, "produce");
		pack_str(&p, "records");
		msgpack_pack_array(&p.pk, 1);
		msgpack_pack_map(&p.pk, 1);
		pack_str(&p, "value");
		for (int i = 0; i < extra; i++)
			msgpack_pack_array(&p.pk, 1);
		msgpack_pack_nil(&p.pk);
		whole = kp_mp_skip(p.buf.data, p.buf.len, &size);
		kp_records_init(&recs);
		rc = kp_request_decode_records(p.buf.data, p.buf.len, &req,
					       &recs, &err);
		assert_int_equal(rc, whole == 0 ? 0 : KP_EBADMSGPACK);
		if (extra == 58)
			assert_int_equal(rc, 0);
		if (extra == 64)
			assert_int_equal(rc, KP_EBADMSGPACK);
		kp_records_destroy(&recs);
		kp_buf_destroy(&p.buf);
	}
}

/* Lying array lengths are refused before anything is allocated. */
static void test_lying_count(void **state)
{
	static const char body[] = "\x83\xa2id\x01\xa2op\xa7produce"
				   "\xa7records\xdd\xff\xff\xff\xff";
	struct kp_request req;
	struct kp_records recs;
	struct kp_error err;

	(void)state;
	kp_records_init(&recs);
	assert_int_equal(kp_request_decode_records(body, sizeof(body) - 1, &req,
						   &recs, &err),
			 KP_EBADMSGPACK);
	assert_null(recs.rec);
	kp_records_destroy(&recs);
}

/* The field index answers like a walk, first occurrence winning. */
static void test_field_index(void **state)
{
	struct packed p;
	struct kp_request req;
	struct kp_error err;
	struct kp_mp_view v;
	uint64_t u;

	(void)state;
	packed_init(&p);
	msgpack_pack_map(&p.pk, 24);
	pack_str(&p, "id");
	msgpack_pack_uint32(&p.pk, 3);
	pack_str(&p, "op");
	pack_str(&p, "ping");
	pack_str(&p, "topic");
	pack_str(&p, "first");
	pack_str(&p, "topic");
	pack_str(&p, "second");
	msgpack_pack_int(&p.pk, 9);          /* a non-str key is skipped */
	pack_str(&p, "x");
	pack_str(&p, "nothing");
	msgpack_pack_nil(&p.pk);
	for (int i = 0; i < 17; i++) {
		char name[8];

		snprintf(name, sizeof(name), "f%d", i);
		pack_str(&p, name);
		msgpack_pack_uint32(&p.pk, (uint32_t)i);
	}
	pack_str(&p, "late");
	msgpack_pack_uint32(&p.pk, 1234);
	assert_int_equal(kp_request_decode(p.buf.data, p.buf.len, &req, &err),
			 0);
	assert_int_equal(req.nfields, KP_REQUEST_FIELDS);
	assert_false(req.all_fields);
	assert_int_equal(kp_request_field_str(&req, "topic", &v, &err), 0);
	assert_true(kp_mp_str_eq(v, "first"));
	assert_int_equal(kp_request_field_str(&req, "nothing", &v, &err), 1);
	assert_int_equal(kp_request_field_str(&req, "absent", &v, &err), 1);
	/* Past the index: found by a walk. */
	assert_int_equal(kp_request_field_uint(&req, "late", &u, &err), 0);
	assert_true(u == 1234);
	assert_int_equal(kp_request_field_uint(&req, "f16", &u, &err), 0);
	assert_true(u == 16);
	assert_int_equal(kp_request_field_uint(&req, "topic", &u, &err),
			 KP_EBADREQUEST);
	assert_non_null(strstr(err.msg, "field 'topic' must be uint, got str"));
	kp_buf_destroy(&p.buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_records_decoded),
		cmocka_unit_test(test_bad_record_at_index),
		cmocka_unit_test(test_malformed_is_bad_msgpack),
		cmocka_unit_test(test_depth_limit_kept),
		cmocka_unit_test(test_lying_count),
		cmocka_unit_test(test_field_index),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
