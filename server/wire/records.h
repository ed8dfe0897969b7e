/*
 * records.h - the records of a produce request (docs/PROTOCOL.md,
 * "produce"), decoded in the same walk that validates them.
 *
 * A produce request's "records" array is the bulk of its bytes. It is
 * walked once: each item is checked to be well-formed msgpack exactly as
 * kp_mp_skip checks a whole body, and while its bytes are read its "value",
 * "key" and "ts" are picked out and checked. Routing and batch building
 * then read the decoded records, never the msgpack again. No sockets, no
 * loop: unit-tested and fuzzed on (const char *, size_t).
 */
#ifndef KP_RECORDS_H
#define KP_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/mp.h"

/* A record of a produce request, borrowed from the frame. */
struct kp_produce_record {
	bool has_ts;            /* false: the server stamps it */
	int64_t ts;             /* ms since the epoch, when has_ts */
	const char *key;        /* NULL when absent or nil */
	uint32_t key_len;
	const char *value;      /* msgpack bytes of "value" */
	uint32_t value_len;
};

/*
 * The smallest well-formed record, {"value": <1 byte>}, in bytes: a bound
 * on how many records a frame can hold, hence on what decoding allocates
 * (sizeof(struct kp_produce_record) per KP_RECORD_MIN_BYTES of frame).
 */
#define KP_RECORD_MIN_BYTES 8

/* A produce request's records array, decoded. */
struct kp_records {
	struct kp_produce_record *rec;  /* owned: rec[0, ok) are the records */
	uint32_t count;                 /* items in the array */
	uint32_t ok;                    /* leading items that are valid records */
	uint32_t cap;                   /* entries allocated in rec */
	struct kp_error err;            /* code 0 when ok == count, else why
					   item `ok` is not a record, as
					   "records[<ok>]: ..." */
};

/* An empty kp_records. */
void kp_records_init(struct kp_records *r);

/* Frees what r holds; r may be reused after kp_records_init. NULL is fine. */
void kp_records_destroy(struct kp_records *r);

/*
 * Walks the array at buf (len bytes left) that sits `depth` containers deep
 * in a body (1 for a field of the request map): validates it as
 * kp_mp_skip_at(buf, len, depth, size) would, and sets *size to its bytes.
 * Each item up to the first that is not a valid record is decoded into
 * r->rec; that item's problem goes to r->err (and r->ok is its index); the
 * items after it are only validated. Returns 0 (whatever r->err says),
 * KP_EBADREQUEST when buf holds no array (r untouched), KP_EBADMSGPACK for
 * malformed bytes, -ENOMEM.
 */
int kp_records_scan(const char *buf, size_t len, int depth,
		    struct kp_records *r, size_t *size);

/*
 * Decodes one item of a produce request's "records" array: a map with
 * "value" (required), "key" (str, bin or nil) and "ts" (int). Returns 0,
 * or KP_EBADREQUEST / KP_ETOOLARGE with err naming the field.
 */
int kp_produce_record_decode(struct kp_mp_view item,
			     struct kp_produce_record *rec,
			     struct kp_error *err);

#endif
