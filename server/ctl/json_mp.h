/*
 * json_mp.h - JSON <-> msgpack conversions and time parsing for kappactl.
 *
 * kappactl reads JSON lines and sends msgpack; it receives msgpack and prints
 * JSON lines. The rules are fixed here, once:
 *
 * JSON -> msgpack (produce):
 *   integer -> int (non-negative as uint, negative as int; smallest encoding)
 *   real -> float64, string -> str, true/false -> bool, null -> nil,
 *   array -> array, object -> map with str keys (in the object's order).
 *   Integers beyond the 64-bit signed range are rejected by the JSON parser.
 *
 * msgpack -> JSON (consume, admin output):
 *   int/uint -> integer; a uint above INT64_MAX -> a real (nearest double);
 *   float32/float64 -> real (NaN and infinities -> null);
 *   str, bin -> string when the bytes are valid UTF-8, else the string
 *   "base64:" followed by the standard base64 of the bytes;
 *   nil -> null, bool -> true/false, array -> array, ext -> null;
 *   map -> object; a key that is not a str is turned into a string: bin as
 *   above, an integer as its decimal text, anything else as its compact JSON
 *   text. With duplicate keys the last one wins.
 *
 * Printing (kp_ctl_json_dump) writes compact JSON (no spaces), object members
 * in their order, reals in the shortest form that reads back to the same
 * double (always with a '.' or an exponent, so 1.0 stays a real).
 */
#ifndef KP_CTL_JSON_MP_H
#define KP_CTL_JSON_MP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <msgpack.h>

/*
 * Packs the JSON value v with pk. Returns 0, or -ENOMEM when the packer's
 * writer failed (the packed bytes are then incomplete).
 */
int kp_ctl_json_pack(msgpack_packer *pk, const json_t *v);

/*
 * Converts the msgpack object o to a new JSON value (the caller owns the
 * reference). Returns NULL only when out of memory.
 */
json_t *kp_ctl_mp_to_json(const msgpack_object *o);

/*
 * Returns a new JSON string for the len bytes at p: the bytes themselves
 * when they are valid UTF-8 (NUL bytes allowed), else "base64:<base64>".
 * NULL only when out of memory.
 */
json_t *kp_ctl_bytes_to_json(const char *p, size_t len);

/* 1 when the len bytes at p are valid UTF-8 (no overlongs, no surrogates). */
int kp_ctl_utf8_valid(const char *p, size_t len);

/*
 * Parses one line of JSON text (any JSON value, not only objects; \u0000 is
 * allowed in strings). Returns the new value, or NULL with a one-line
 * description of the problem in errbuf (errlen bytes, NUL-terminated).
 */
json_t *kp_ctl_json_parse(const char *text, size_t len, char *errbuf,
			  size_t errlen);

/*
 * Writes the value as compact JSON text to f (no newline). Returns 0 or
 * -EIO when f reported a write error.
 */
int kp_ctl_json_dump(FILE *f, const json_t *v);

/*
 * The bytes of a record key taken from a JSON value: a string is its UTF-8
 * bytes as-is; any other value is its compact JSON text. Sets *out to a
 * kp_malloc'd buffer (caller frees with kp_free) and *len. Returns 0 or
 * -ENOMEM.
 */
int kp_ctl_json_key_bytes(const json_t *v, char **out, size_t *len);

/*
 * Parses an RFC 3339 date-time: YYYY-MM-DD"T"hh:mm:ss[.frac](Z|+hh:mm|-hh:mm)
 * ("t", "z" and a space instead of "T" are accepted; frac has any number
 * of digits and is truncated to milliseconds; second 60 is accepted).
 * Sets *ms to milliseconds since the Unix epoch. Returns 0 or -EINVAL.
 */
int kp_ctl_rfc3339_parse(const char *s, int64_t *ms);

/*
 * Parses a point in time as given on the command line or in a record's ts
 * field: an integer (epoch milliseconds, optionally negative) or an RFC 3339
 * date-time. Returns 0 with *ms set, or -EINVAL.
 */
int kp_ctl_time_parse(const char *s, int64_t *ms);

#endif
