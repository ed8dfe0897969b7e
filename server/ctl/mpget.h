/*
 * mpget.h - reading fields of decoded msgpack maps (responses from kappad).
 *
 * Borrowed views only: every pointer returned points into the object it was
 * taken from and lives as long as that object. Integer getters accept any
 * msgpack integer encoding, as the protocol allows.
 */
#ifndef KP_CTL_MPGET_H
#define KP_CTL_MPGET_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

/* The value of the str key in map, or NULL when map is not a map or lacks it. */
const msgpack_object *kp_ctl_mp_get(const msgpack_object *map, const char *key);

/* 0 and *v when o is a non-negative integer; -EINVAL otherwise (o may be NULL). */
int kp_ctl_mp_u64(const msgpack_object *o, uint64_t *v);

/* 0 and *v when o is an integer within int64; -EINVAL otherwise (o may be NULL). */
int kp_ctl_mp_i64(const msgpack_object *o, int64_t *v);

/* 0 with *p and *len when o is a str or bin; -EINVAL otherwise (o may be NULL). */
int kp_ctl_mp_bytes(const msgpack_object *o, const char **p, size_t *len);

/* kp_ctl_mp_u64 of the field key of map. */
int kp_ctl_mp_get_u64(const msgpack_object *map, const char *key, uint64_t *v);

/* kp_ctl_mp_i64 of the field key of map. */
int kp_ctl_mp_get_i64(const msgpack_object *map, const char *key, int64_t *v);

/* 1 when o is the boolean true. */
int kp_ctl_mp_is_true(const msgpack_object *o);

#endif
