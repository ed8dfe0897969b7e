/*
 * view_load.c - reads the whole-view snapshots that checkpoints held
 * before views had a store, so that an older data directory's views are
 * taken over (view.h, kp_view_load).
 *
 * Snapshot format (all integers little-endian):
 *
 *   "KPVIEW01"          8 bytes magic
 *   count               u64
 *   count times:        u32 key_len, key bytes, u32 value_len, value bytes
 *   crc                 u32 CRC32C of every byte before it
 */
#include "view.h"
#include "view_internal.h"

#include <string.h>

#include "base/crc32c.h"
#include "base/mp.h"

#define SNAP_MAGIC "KPVIEW01"
#define SNAP_MAGIC_LEN 8
#define SNAP_HEADER (SNAP_MAGIC_LEN + 8)

/* Reads a u32-length-prefixed field at *pos; 0 or -1 when it overruns. */
static int read_field(const char *data, size_t end, size_t *pos,
		      const char **field, size_t *len)
{
	uint32_t n;

	if (end - *pos < 4)
		return -1;
	n = kp_get_le32(data + *pos);
	*pos += 4;
	if (end - *pos < n)
		return -1;
	*field = data + *pos;
	*len = n;
	*pos += n;
	return 0;
}

/*
 * Walks the entries of a snapshot whose CRC was checked: with v NULL it
 * only validates, else it puts each entry into v.
 */
static int walk(struct kp_view *v, const char *data, size_t end,
		uint64_t count, struct kp_error *err)
{
	size_t pos = SNAP_HEADER;

	if (count > (end - pos) / 8)
		return kp_error_set(err, KP_ECORRUPT,
				    "view snapshot: count %llu exceeds its size",
				    (unsigned long long)count);
	for (uint64_t i = 0; i < count; i++) {
		const char *key, *value;
		size_t key_len, value_len, size;
		int rc;

		if (read_field(data, end, &pos, &key, &key_len) != 0 ||
		    read_field(data, end, &pos, &value, &value_len) != 0)
			return kp_error_set(err, KP_ECORRUPT,
					    "view snapshot: entry %llu truncated",
					    (unsigned long long)i);
		if (kp_mp_skip(value, value_len, &size) != 0 ||
		    size != value_len)
			return kp_error_set(err, KP_ECORRUPT,
					    "view snapshot: entry %llu is not one msgpack value",
					    (unsigned long long)i);
		if (key_len > KP_VIEW_MAX_KEY)
			return kp_error_set(err, KP_ETOOLARGE,
					    "view snapshot: entry %llu has a key of %zu bytes; views now hold keys of at most %d",
					    (unsigned long long)i, key_len,
					    KP_VIEW_MAX_KEY);
		if (v == NULL)
			continue;
		rc = kp_view_put(v, key, key_len, value, value_len);
		if (rc != 0)
			return kp_error_set(err, rc, "view snapshot: entry %llu: %s",
					    (unsigned long long)i,
					    kp_error_text(rc));
	}
	if (pos != end)
		return kp_error_set(err, KP_ECORRUPT,
				    "view snapshot: %zu bytes after the last entry",
				    end - pos);
	return 0;
}

int kp_view_load(struct kp_view *v, const char *data, size_t len,
		 struct kp_error *err)
{
	uint64_t count;
	int rc;

	if (len < SNAP_HEADER + 4 ||
	    memcmp(data, SNAP_MAGIC, SNAP_MAGIC_LEN) != 0)
		return kp_error_set(err, KP_ECORRUPT,
				    "view snapshot: bad magic or too short (%zu bytes)",
				    len);
	if (kp_crc32c(0, data, len - 4) != kp_get_le32(data + len - 4))
		return kp_error_set(err, KP_ECORRUPT,
				    "view snapshot: CRC mismatch");
	count = kp_get_le64(data + SNAP_MAGIC_LEN);
	rc = walk(NULL, data, len - 4, count, err);
	if (rc != 0)
		return rc;
	kp_view_clear(v);
	return walk(v, data, len - 4, count, err);
}
