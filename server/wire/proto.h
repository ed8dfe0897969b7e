/*
 * proto.h - the client protocol codec (docs/PROTOCOL.md). No sockets.
 *
 * Frames are a big-endian u32 length and a msgpack map. This file turns a
 * frame body into a struct kp_request (a validated view plus id and op) and
 * reads its fields with typed getters whose errors name the field; it also
 * writes responses. Everything works on (const char *, size_t), so it is
 * unit-tested and fuzzed without a loop.
 */
#ifndef KP_PROTO_H
#define KP_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "base/buf.h"
#include "base/error.h"
#include "base/mp.h"
#include "records.h"

#define KP_FRAME_HEADER_SIZE 4
#define KP_DEFAULT_MAX_FRAME (16u * 1024 * 1024)

/*
 * Looks at the start of a stream buffer. Returns 1 and sets *body_len when a
 * whole frame (header + body) is in buf; 0 when more bytes are needed;
 * KP_EBADFRAME when the declared length is 0 or above max_frame.
 */
int kp_frame_check(const char *buf, size_t len, uint32_t max_frame,
		   uint32_t *body_len);

/* Top-level fields a request keeps an index of (more are looked up). */
#define KP_REQUEST_FIELDS 16

/* One str-keyed pair of a request map. */
struct kp_request_field {
	struct kp_mp_view name;  /* the key's str payload */
	struct kp_mp_view val;   /* the value's bytes */
};

/*
 * A decoded request: views borrowed from the frame body, and an index of
 * its top-level fields built by the same walk that validated the body, so
 * that the kp_request_field_* getters do not walk the body again.
 */
struct kp_request {
	uint64_t id;            /* echoed in the response; 0 if unreadable */
	struct kp_mp_view op;   /* payload of the "op" str */
	struct kp_mp_view map;  /* the whole body, a validated map */
	struct kp_request_field fields[KP_REQUEST_FIELDS]; /* the first
				   str-keyed pairs, in order */
	uint32_t nfields;       /* entries of fields */
	bool all_fields;        /* every str-keyed pair is in fields */
	struct kp_records *records; /* borrowed: the first "records" field,
				   decoded, when the caller asked and it is
				   an array; else NULL */
};

/*
 * Decodes a frame body. On success returns 0. On failure returns
 * KP_EBADMSGPACK (not one well-formed object) or KP_EBADREQUEST (not a map,
 * id or op missing or mistyped), with err set; req->id is still set when it
 * could be read, so the error response can carry it.
 */
int kp_request_decode(const char *body, size_t len, struct kp_request *req,
		      struct kp_error *err);

/*
 * kp_request_decode, and in the same walk the first "records" field, when
 * it is an array, is decoded into recs (kp_records_scan) and req->records
 * points at it. A record that is not valid is no error here: recs->err
 * says which and why, for the op to report. Also -ENOMEM.
 */
int kp_request_decode_records(const char *body, size_t len,
			      struct kp_request *req, struct kp_records *recs,
			      struct kp_error *err);

/* true when the request's op is the given name. */
bool kp_request_is(const struct kp_request *req, const char *op);

/*
 * Typed field getters over a map view (a request body, or a map nested in
 * one such as a record). Each returns 0 and sets *out when the field is
 * present with the right type; 1 when the field is absent (or nil) and
 * *out is untouched; KP_EBADREQUEST with err naming the field
 * ("field 'partition' must be uint, got str") otherwise.
 */
int kp_field_str(struct kp_mp_view map, const char *field,
		 struct kp_mp_view *out, struct kp_error *err);
int kp_field_uint(struct kp_mp_view map, const char *field, uint64_t *out,
		  struct kp_error *err);
int kp_field_int(struct kp_mp_view map, const char *field, int64_t *out,
		 struct kp_error *err);
int kp_field_bool(struct kp_mp_view map, const char *field, bool *out,
		  struct kp_error *err);
/* Any value, as raw msgpack bytes. */
int kp_field_raw(struct kp_mp_view map, const char *field,
		 struct kp_mp_view *out, struct kp_error *err);
/* str or bin: the payload bytes. */
int kp_field_bytes(struct kp_mp_view map, const char *field,
		   struct kp_mp_view *out, struct kp_error *err);
int kp_field_array(struct kp_mp_view map, const char *field,
		   struct kp_mp_iter *out, uint32_t *count,
		   struct kp_error *err);
int kp_field_map(struct kp_mp_view map, const char *field,
		 struct kp_mp_view *out, struct kp_error *err);

/*
 * The same getters for a top-level field of a decoded request, read from
 * its index (no walk over the body): same returns and messages.
 */
int kp_request_field_str(const struct kp_request *req, const char *field,
			 struct kp_mp_view *out, struct kp_error *err);
int kp_request_field_uint(const struct kp_request *req, const char *field,
			  uint64_t *out, struct kp_error *err);
int kp_request_field_raw(const struct kp_request *req, const char *field,
			 struct kp_mp_view *out, struct kp_error *err);
int kp_request_field_array(const struct kp_request *req, const char *field,
			   struct kp_mp_iter *out, uint32_t *count,
			   struct kp_error *err);

/*
 * Response writing. A response is built in a kp_buf as a whole frame
 * (length header included):
 *
 *   struct kp_response r;
 *   kp_response_begin(&r, out, id, 2);        // ok:true + 2 result fields
 *   kp_response_key(&r, "offset"); msgpack_pack_uint64(&r.pk, 42);
 *   kp_response_key(&r, "count");  msgpack_pack_uint32(&r.pk, 1);
 *   kp_response_finish(&r);
 *
 * The caller packs exactly the number of result fields it announced.
 */
struct kp_response {
	msgpack_packer pk;      /* packs into out */
	struct kp_buf *out;     /* borrowed */
	size_t start;           /* where this frame's header is */
	int oom;                /* set when a write failed for memory */
};

/* Starts a success response with `fields` result fields after id and ok. */
void kp_response_begin(struct kp_response *r, struct kp_buf *out, uint64_t id,
		       uint32_t fields);

/*
 * Starts an error response: id, ok:false, error (kp_error_name(code)) and
 * message, plus `extra` fields the caller packs (such as start_offset).
 */
void kp_response_begin_error(struct kp_response *r, struct kp_buf *out,
			     uint64_t id, int code, const char *message,
			     uint32_t extra);

/* Packs a str map key. */
void kp_response_key(struct kp_response *r, const char *key);

/* Packs a str value. */
void kp_response_str(struct kp_response *r, const char *s, size_t len);

/* Packs key and a str value (nil when value is NULL) / a uint value. */
void kp_response_pair_str(struct kp_response *r, const char *key,
			  const char *value);
void kp_response_pair_u64(struct kp_response *r, const char *key,
			  uint64_t value);

/*
 * Patches the frame length. Returns 0, or -ENOMEM when any write failed (the
 * partial frame is removed from out).
 */
int kp_response_finish(struct kp_response *r);

/* Convenience: a whole error response frame with no extra fields. */
int kp_response_error(struct kp_buf *out, uint64_t id, int code,
		      const char *message);

/* Packs into a kp_buf: the msgpack_packer write callback. */
int kp_buf_msgpack_write(void *data, const char *buf, size_t len);

/* 32-bit FNV-1a over len bytes, the key routing hash of PROTOCOL.md. */
uint32_t kp_fnv1a32(const char *key, size_t len);

#endif
