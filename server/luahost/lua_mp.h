/*
 * lua_mp.h - msgpack <-> Lua conversion, the one place where its rules live.
 *
 * Access pattern: decoding validates the bytes once with the kp_mp walker
 * (bounded depth, no allocation) and then builds Lua values in one forward
 * pass; encoding walks a Lua value with raw accesses (no metamethods run)
 * and packs it with msgpack-c into a kp_buf.
 *
 * THE RULES (docs/PROCESSORS.md repeats them for processor authors):
 *
 * Integers. LuaJIT numbers are doubles. A msgpack int (or uint) within
 *   +-2^53 decodes to a Lua number, exactly. One outside +-2^53 decodes to
 *   a Lua string holding its decimal digits ("18446744073709551615"), so
 *   no value is silently rounded; re-encoding such a string gives a msgpack
 *   str, not an int. Encoding: a Lua number with an integral value in
 *   [-2^63, 2^63) packs as a msgpack int (smallest form; -0 packs as 0);
 *   any other number (fractional, +-inf, NaN, >= 2^63) packs as float64.
 *   Floats (32 and 64 bit) decode to Lua numbers.
 * Strings. msgpack str and bin both decode to Lua strings; every Lua
 *   string encodes as str (bytes kept as they are, UTF-8 not checked).
 * Booleans map to booleans.
 * nil. A top-level msgpack nil decodes to Lua nil. A nil inside an array or
 *   as a map value decodes to the sentinel kappa.null (a lightuserdata
 *   NULL), so arrays keep their length and maps their keys. kappa.null (and
 *   Lua nil) encode as msgpack nil anywhere. A nil map key is an error.
 * Arrays and maps. Every decoded array carries the metatable kappa.array
 *   and every decoded map kappa.map, so values round-trip unchanged (an
 *   empty array stays an array, a map {1: x} stays a map). Encoding a
 *   table:
 *     - marked kappa.map (kappa.map(t)): a map of all its pairs;
 *     - marked kappa.array (kappa.array(t)): an array of t[1..n], n the
 *       largest integer key; holes encode as nil; a non-index key is an
 *       error; so is a sparse one (n > 2 * pairs + 64);
 *     - unmarked (or any other metatable): an array when its keys are
 *       exactly 1..n with n >= 1, otherwise a map; an empty unmarked table
 *       is an empty MAP (write kappa.array() / kappa.array(t) for []).
 *   Map pairs are packed in a canonical order so that the same table gives
 *   the same bytes in every run (Lua's own pairs order is not stable across
 *   states): string keys first, by bytes; then other keys by their packed
 *   bytes; keys that pack alike (tables with the same contents) by their
 *   values' packed bytes.
 * Lazy record values. A record value that is a small map with string keys
 *   reaches a processor as a proxy that decodes a field when it is read
 *   (lua_host.h); it looks like the decoded map (its metatable reads as
 *   kappa.map's) and turns into one, in place, before anything sees its
 *   raw contents: pairs, next, rawget, rawset, setmetatable, kappa.map,
 *   kappa.array, any assignment to it, and encoding.
 * Unsupported. msgpack ext decodes to an error. Functions, coroutines,
 *   userdata and lightuserdata other than kappa.null do not encode. Tables
 *   nested deeper than KP_LUAMP_MAX_DEPTH do not encode: that is also how a
 *   cycle (t.self = t) is reported.
 */
#ifndef KP_LUA_MP_H
#define KP_LUA_MP_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

#include "base/buf.h"
#include "base/mp.h"

/* Deepest nesting either direction accepts (the walker's limit). */
#define KP_LUAMP_MAX_DEPTH KP_MP_MAX_DEPTH

/* Largest magnitude of an integer that decodes to a Lua number: 2^53. */
#define KP_LUAMP_EXACT_INT 9007199254740992LL

/*
 * Registers the kappa.array / kappa.map marker metatables in L's registry
 * and pushes a table { null = kappa.null, array = fn, map = fn } for the
 * caller to expose as `kappa`. kappa.array(t) / kappa.map(t) set the marker
 * on t and return it; without an argument they return a new empty marked
 * table. Call once per state, before any other function here. May raise a
 * Lua memory error (call from a protected context).
 */
void kp_luamp_open(lua_State *L);

/*
 * Validates the len bytes at buf as exactly one msgpack object and pushes
 * its Lua value (rules above). Returns 0 with one value pushed, or
 * KP_EBADMSGPACK (malformed, trailing bytes, too deep, ext, NaN or nil map
 * key) with nothing pushed and a message in err (err_len bytes, may be 0).
 * Raises a Lua error only on memory exhaustion: call it from a protected
 * context.
 */
int kp_luamp_push(lua_State *L, const char *buf, size_t len, char *err,
		  size_t err_len);

/*
 * Appends the value at stack index idx to out as one msgpack object (rules
 * above). Never runs Lua code; raises a Lua error only when memory runs
 * out while it turns a lazy record value into its table (bindings call it
 * protected). Returns 0, or
 * KP_EBADREQUEST for a value that does not encode, or -ENOMEM; on failure
 * out->len is restored and err (err_len bytes) says why.
 */
int kp_luamp_encode(lua_State *L, int idx, struct kp_buf *out, char *err,
		    size_t err_len);

/*
 * Pushes an int64 by the integer rule: a number within +-2^53, else its
 * decimal string.
 */
void kp_luamp_push_int(lua_State *L, int64_t v);

/*
 * Converts the number at idx to an int64 when it is integral and within
 * [-2^63, 2^63): returns 1 with *out, else 0. Non-numbers give 0.
 */
int kp_luamp_to_int(lua_State *L, int idx, int64_t *out);

/*
 * Appends a number (by the integer rule) or a string as one msgpack
 * object. Returns 0 or -ENOMEM.
 */
int kp_luamp_pack_number(struct kp_buf *out, double v);
int kp_luamp_pack_string(struct kp_buf *out, const char *s, size_t len);

/*
 * A lazy proxy is a table with the proxies' metatable holding, under raw
 * keys no Lua code can forge (lightuserdata), a string (its anchor), the
 * offset of the value's msgpack bytes in it and their length: the bytes
 * of a whole job shared by its records (lua_host.h), or a record's own
 * copy (then offset and length may be absent: 0 and the whole string).
 *
 * Pushes the three keys (anchor, offset, length), then the metatable.
 */
void kp_luamp_push_lazy(lua_State *L);

/*
 * When the value at idx is a lazy proxy still holding its bytes, sets *p
 * and *len to them (borrowed from its anchor) and returns 1; else 0.
 */
int kp_luamp_lazy_bytes(lua_State *L, int idx, const char **p, size_t *len);

/*
 * When the value at idx is a lazy proxy sharing the anchor at anchor_idx,
 * gives it a copy of its own bytes (offset 0), so that it no longer holds
 * the anchor alive. May raise a Lua memory error (the proxy is unchanged).
 */
void kp_luamp_lazy_detach(lua_State *L, int idx, int anchor_idx);

/*
 * When the value at idx is a lazy proxy, decodes its bytes into it (keys
 * it already holds raw are kept), drops the bytes and marks it kappa.map.
 * Anything else is left alone. May raise a Lua memory error.
 */
void kp_luamp_materialize(lua_State *L, int idx);

/* Pushes kappa.null (the nil sentinel). */
void kp_luamp_push_null(lua_State *L);

#endif
