/*
 * mp.h - zero-allocation msgpack validation and reading.
 *
 * A view is a pointer and length covering exactly one msgpack object inside
 * a buffer someone else owns. Nothing here allocates: decoding a request is a
 * walk over its bytes (about 17 ns per small record, against 130 ns for
 * msgpack_unpack_next). Every length read from the input is checked against
 * the bytes that remain before it is used, and nesting is limited to
 * KP_MP_MAX_DEPTH, so hostile input cannot make the walk allocate, overrun or
 * recurse without bound.
 */
#ifndef KP_MP_H
#define KP_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define KP_MP_MAX_DEPTH 64

/* Borrowed bytes of one msgpack object (or of a string's payload). */
struct kp_mp_view {
	const char *ptr;  /* borrowed */
	size_t len;       /* bytes */
};

/* The msgpack type families a reader cares about. */
enum kp_mp_type {
	KP_MP_NIL, KP_MP_BOOL, KP_MP_UINT, KP_MP_INT, KP_MP_FLOAT,
	KP_MP_STR, KP_MP_BIN, KP_MP_ARRAY, KP_MP_MAP, KP_MP_EXT
};

/* Iterator over an array's items or a map's key/value pairs. */
struct kp_mp_iter {
	const char *pos;   /* next item */
	const char *end;   /* end of the container's bytes */
	uint32_t left;     /* items (arrays) or pairs (maps) left */
};

/*
 * Validates the object at buf and sets *size to its length in bytes.
 * Returns 0, or KP_EBADMSGPACK for truncated, reserved (0xc1) or too deeply
 * nested input, or a container whose declared length exceeds the bytes left.
 */
int kp_mp_skip(const char *buf, size_t len, size_t *size);

/*
 * kp_mp_skip for an object that sits `depth` containers deep inside a value
 * being walked piece by piece: it may open KP_MP_MAX_DEPTH - depth more, so
 * the pieces accept exactly what kp_mp_skip accepts of the whole value.
 */
int kp_mp_skip_at(const char *buf, size_t len, int depth, size_t *size);

/*
 * Reads the header of the array (want KP_MP_ARRAY) or map (KP_MP_MAP) at
 * buf, len bytes left, without walking its items: *count items or pairs,
 * *hsize header bytes. Returns 0; KP_EBADREQUEST when buf holds another
 * type; KP_EBADMSGPACK when the header is truncated or declares more items
 * than the bytes after it could hold (one byte each, at least).
 */
int kp_mp_container_header(const char *buf, size_t len, enum kp_mp_type want,
			   uint32_t *count, size_t *hsize);

/* Validates that buf holds exactly one object and nothing else. */
int kp_mp_validate_one(const char *buf, size_t len, struct kp_mp_view *obj);

/*
 * Encodes v as the shortest msgpack integer at p (room for 9 bytes) and
 * returns its length.
 */
size_t kp_mp_encode_int(char *p, int64_t v);

/*
 * Decodes buf, exactly one msgpack integer that fits int64. Returns 0, or
 * KP_EBADREQUEST for anything else (another type, trailing bytes, a uint64
 * above INT64_MAX).
 */
int kp_mp_decode_int(const char *buf, size_t len, int64_t *out);

/* The type of a (validated) view. */
enum kp_mp_type kp_mp_type(struct kp_mp_view v);

/* Human name of a type ("str", "map", ...), for error messages. */
const char *kp_mp_type_name(enum kp_mp_type t);

/*
 * Readers for validated views. Each returns 0, or KP_EBADREQUEST when the
 * view holds another type (or an integer out of range for the output).
 */
int kp_mp_read_uint(struct kp_mp_view v, uint64_t *out);  /* non-negative ints */
int kp_mp_read_int(struct kp_mp_view v, int64_t *out);    /* any int in range */
int kp_mp_read_bool(struct kp_mp_view v, bool *out);
int kp_mp_read_double(struct kp_mp_view v, double *out);  /* float or int */
int kp_mp_read_str(struct kp_mp_view v, struct kp_mp_view *payload);
int kp_mp_read_bin(struct kp_mp_view v, struct kp_mp_view *payload);
int kp_mp_is_nil(struct kp_mp_view v);                    /* 1 or 0 */

/* Starts iterating a validated array / map. Returns KP_EBADREQUEST if not. */
int kp_mp_array_begin(struct kp_mp_view v, struct kp_mp_iter *it);
int kp_mp_map_begin(struct kp_mp_view v, struct kp_mp_iter *it);

/* Next array item: 1 and *item, or 0 at the end. */
int kp_mp_array_next(struct kp_mp_iter *it, struct kp_mp_view *item);

/* Next map pair: 1 with *key and *val, or 0 at the end. */
int kp_mp_map_next(struct kp_mp_iter *it, struct kp_mp_view *key,
		   struct kp_mp_view *val);

/*
 * Looks up the value of the first pair of a validated map whose key is the
 * str `key`. Returns 1 and *val when found, 0 when absent, KP_EBADREQUEST
 * when map is not a map.
 */
int kp_mp_map_get(struct kp_mp_view map, const char *key,
		  struct kp_mp_view *val);

/*
 * Compares a str payload with a C string. Inline so that comparing with a
 * literal costs no strlen.
 */
static inline bool kp_mp_str_eq(struct kp_mp_view payload, const char *s)
{
	size_t n = strlen(s);

	return payload.len == n && (n == 0 || memcmp(payload.ptr, s, n) == 0);
}

#endif
