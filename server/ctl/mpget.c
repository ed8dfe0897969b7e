/*
 * mpget.c - field access on decoded msgpack maps; see mpget.h.
 */
#include "mpget.h"

#include <errno.h>
#include <string.h>

const msgpack_object *kp_ctl_mp_get(const msgpack_object *map, const char *key)
{
	size_t klen = strlen(key);
	uint32_t i;

	if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;

		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
		    memcmp(k->via.str.ptr, key, klen) == 0)
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

int kp_ctl_mp_u64(const msgpack_object *o, uint64_t *v)
{
	if (o == NULL)
		return -EINVAL;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
		*v = o->via.u64;
		return 0;
	}
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.i64 >= 0) {
		*v = (uint64_t)o->via.i64;
		return 0;
	}
	return -EINVAL;
}

int kp_ctl_mp_i64(const msgpack_object *o, int64_t *v)
{
	if (o == NULL)
		return -EINVAL;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
		*v = (int64_t)o->via.u64;
		return 0;
	}
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*v = o->via.i64;
		return 0;
	}
	return -EINVAL;
}

int kp_ctl_mp_bytes(const msgpack_object *o, const char **p, size_t *len)
{
	if (o == NULL)
		return -EINVAL;
	if (o->type == MSGPACK_OBJECT_STR) {
		*p = o->via.str.ptr;
		*len = o->via.str.size;
		return 0;
	}
	if (o->type == MSGPACK_OBJECT_BIN) {
		*p = o->via.bin.ptr;
		*len = o->via.bin.size;
		return 0;
	}
	return -EINVAL;
}

int kp_ctl_mp_get_u64(const msgpack_object *map, const char *key, uint64_t *v)
{
	return kp_ctl_mp_u64(kp_ctl_mp_get(map, key), v);
}

int kp_ctl_mp_get_i64(const msgpack_object *map, const char *key, int64_t *v)
{
	return kp_ctl_mp_i64(kp_ctl_mp_get(map, key), v);
}

int kp_ctl_mp_is_true(const msgpack_object *o)
{
	return o != NULL && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
}
