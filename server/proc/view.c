/*
 * view.c - the view store: an open-addressing hash table (linear probing,
 * backward-shift deletion, no tombstones) of string keys to msgpack values,
 * behind one mutex per view.
 *
 * Access pattern: get / put / incr on single keys per record (the hot
 * path: one lock, one hash, one probe, a memcpy); scans and snapshots are
 * rare and pay for a sort. Each entry is one allocation holding the key and
 * an inline value slot of at least 9 bytes, so incr of an existing key never
 * allocates and a value that shrinks keeps its slot.
 *
 * Snapshot format (all integers little-endian):
 *
 *   "KPVIEW01"          8 bytes magic (the version is its last two digits)
 *   count               u64
 *   count times:        u32 key_len, key bytes, u32 value_len, value bytes
 *   crc                 u32 CRC32C of every byte before it
 *
 * Entries are written in key byte order, so equal views give equal bytes.
 */
#include "view.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/crc32c.h"
#include "base/mp.h"

#define SNAP_MAGIC "KPVIEW01"
#define SNAP_MAGIC_LEN 8
#define SNAP_HEADER (SNAP_MAGIC_LEN + 8)
#define MIN_VALUE_CAP 9   /* the longest msgpack integer */
#define MIN_SLOTS 16

/* One key and its value, in one allocation: key bytes then value slot. */
struct entry {
	uint64_t hash;       /* hash of the key */
	uint32_t key_len;
	uint32_t value_len;
	uint32_t value_cap;  /* bytes of the value slot */
	char data[];         /* key_len key bytes, then value_cap value bytes */
};

/* A table of 2^n slots; NULL marks an empty slot. */
struct table {
	struct entry **slots;
	size_t mask;         /* slot count - 1 */
	size_t count;        /* entries */
	size_t bytes;        /* sum of key_len + value_len */
};

struct kp_view {
	pthread_mutex_t lock;  /* guards table */
	struct table t;
};

static inline char *entry_value(struct entry *e)
{
	return e->data + e->key_len;
}

/* 64-bit hash: 8 bytes at a time, multiply-xorshift mixing. */
static uint64_t hash_key(const char *key, size_t len)
{
	const uint64_t m = 0x9e3779b97f4a7c15ull;
	uint64_t h = 0x2545f4914f6cdd1dull ^ (len * m);
	uint64_t w;

	while (len >= 8) {
		memcpy(&w, key, 8);
		h = (h ^ (w * m)) * 0xbf58476d1ce4e5b9ull;
		h ^= h >> 31;
		key += 8;
		len -= 8;
	}
	if (len > 0) {
		w = 0;
		memcpy(&w, key, len);
		h = (h ^ (w * m)) * 0xbf58476d1ce4e5b9ull;
	}
	h ^= h >> 29;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 32;
	return h;
}

static int table_init(struct table *t, size_t slots)
{
	t->slots = kp_calloc(slots, sizeof(*t->slots));
	if (t->slots == NULL)
		return -ENOMEM;
	t->mask = slots - 1;
	t->count = 0;
	t->bytes = 0;
	return 0;
}

static void table_free(struct table *t)
{
	if (t->slots == NULL)
		return;
	for (size_t i = 0; i <= t->mask; i++)
		kp_free(t->slots[i]);
	kp_free(t->slots);
	t->slots = NULL;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t table_find(const struct table *t, uint64_t h, const char *key,
			 size_t key_len)
{
	size_t i = (size_t)h & t->mask;

	for (;;) {
		const struct entry *e = t->slots[i];

		if (e == NULL)
			return i;
		if (e->hash == h && e->key_len == key_len &&
		    memcmp(e->data, key, key_len) == 0)
			return i;
		i = (i + 1) & t->mask;
	}
}

/* Places e in the first empty slot of its probe sequence (key absent). */
static void table_place(struct table *t, struct entry *e)
{
	size_t i = (size_t)e->hash & t->mask;

	while (t->slots[i] != NULL)
		i = (i + 1) & t->mask;
	t->slots[i] = e;
}

static int table_grow(struct table *t)
{
	struct table bigger;
	int rc = table_init(&bigger, (t->mask + 1) * 2);

	if (rc != 0)
		return rc;
	for (size_t i = 0; i <= t->mask; i++) {
		if (t->slots[i] != NULL)
			table_place(&bigger, t->slots[i]);
	}
	bigger.count = t->count;
	bigger.bytes = t->bytes;
	kp_free(t->slots);
	*t = bigger;
	return 0;
}

/* Removes the entry at slot i, shifting later members of its run back. */
static void table_remove_at(struct table *t, size_t i)
{
	size_t j = i;

	t->bytes -= t->slots[i]->key_len + (size_t)t->slots[i]->value_len;
	t->count--;
	kp_free(t->slots[i]);
	t->slots[i] = NULL;
	for (;;) {
		size_t home;

		j = (j + 1) & t->mask;
		if (t->slots[j] == NULL)
			return;
		home = (size_t)t->slots[j]->hash & t->mask;
		if (((j - home) & t->mask) >= ((j - i) & t->mask)) {
			t->slots[i] = t->slots[j];
			t->slots[j] = NULL;
			i = j;
		}
	}
}

static struct entry *entry_new(uint64_t h, const char *key, size_t key_len,
			       const char *value, size_t value_len)
{
	size_t cap = value_len < MIN_VALUE_CAP ? MIN_VALUE_CAP : value_len;
	struct entry *e;

	if (key_len > UINT32_MAX || value_len > UINT32_MAX)
		return NULL;
	e = kp_malloc(sizeof(*e) + key_len + cap);
	if (e == NULL)
		return NULL;
	e->hash = h;
	e->key_len = (uint32_t)key_len;
	e->value_len = (uint32_t)value_len;
	e->value_cap = (uint32_t)cap;
	memcpy(e->data, key, key_len);
	memcpy(entry_value(e), value, value_len);
	return e;
}

/*
 * Sets the value of the entry at slot i (the entry may move when its slot
 * is too small). Returns 0 or -ENOMEM, leaving the old value.
 */
static int entry_set(struct table *t, size_t i, const char *value,
		     size_t value_len)
{
	struct entry *e = t->slots[i];

	if (value_len > e->value_cap) {
		if (value_len > UINT32_MAX)
			return -ENOMEM;
		e = kp_realloc(e, sizeof(*e) + e->key_len + value_len);
		if (e == NULL)
			return -ENOMEM;
		e->value_cap = (uint32_t)value_len;
		t->slots[i] = e;
	}
	t->bytes = t->bytes - e->value_len + value_len;
	memcpy(entry_value(e), value, value_len);
	e->value_len = (uint32_t)value_len;
	return 0;
}

/* Inserts a key known to be absent; slot is where table_find put it. */
static int table_insert(struct table *t, size_t slot, uint64_t h,
			const char *key, size_t key_len, const char *value,
			size_t value_len)
{
	struct entry *e;

	if ((t->count + 1) * 4 > (t->mask + 1) * 3) {
		if (table_grow(t) != 0)
			return -ENOMEM;
		slot = table_find(t, h, key, key_len);
	}
	e = entry_new(h, key, key_len, value, value_len);
	if (e == NULL)
		return -ENOMEM;
	t->slots[slot] = e;
	t->count++;
	t->bytes += key_len + value_len;
	return 0;
}

/*
 * Appends the value of slot's entry to prev, leaving room for
 * KP_VIEW_PREV_SPARE more bytes; 1 when present, 0 when absent, -ENOMEM.
 */
static int save_prev(struct table *t, size_t slot, struct kp_buf *prev)
{
	struct entry *e = t->slots[slot];

	if (e == NULL)
		return 0;
	if (prev == NULL)
		return 1;
	if (kp_buf_reserve(prev, e->value_len + (size_t)KP_VIEW_PREV_SPARE))
		return -ENOMEM;
	memcpy(prev->data + prev->len, entry_value(e), e->value_len);
	prev->len += e->value_len;
	return 1;
}

/* Encodes v as the shortest msgpack integer; returns the length. */
static size_t encode_int(char *p, int64_t v)
{
	unsigned char *u = (unsigned char *)p;
	uint64_t x = (uint64_t)v;
	size_t n;

	if (v >= 0 && v < 128) {
		u[0] = (unsigned char)v;
		return 1;
	}
	if (v < 0 && v >= -32) {
		u[0] = (unsigned char)(0xe0 | (v & 0x1f));
		return 1;
	}
	if (v >= 0) {
		if (v <= UINT8_MAX)
			u[0] = 0xcc, n = 1;
		else if (v <= UINT16_MAX)
			u[0] = 0xcd, n = 2;
		else if (v <= (int64_t)UINT32_MAX)
			u[0] = 0xce, n = 4;
		else
			u[0] = 0xcf, n = 8;
	} else {
		if (v >= INT8_MIN)
			u[0] = 0xd0, n = 1;
		else if (v >= INT16_MIN)
			u[0] = 0xd1, n = 2;
		else if (v >= INT32_MIN)
			u[0] = 0xd2, n = 4;
		else
			u[0] = 0xd3, n = 8;
	}
	for (size_t i = 0; i < n; i++)
		u[1 + i] = (unsigned char)(x >> (8 * (n - 1 - i)));
	return 1 + n;
}

/* Decodes a msgpack integer that fits int64; 0 or KP_EBADREQUEST. */
static int decode_int(const char *p, size_t len, int64_t *out)
{
	const unsigned char *u = (const unsigned char *)p;
	uint64_t x = 0;
	size_t n;
	int is_signed;

	if (len == 0)
		return KP_EBADREQUEST;
	if (u[0] < 0x80 || u[0] >= 0xe0) {
		if (len != 1)
			return KP_EBADREQUEST;
		*out = (int8_t)u[0];
		return 0;
	}
	switch (u[0]) {
	case 0xcc: case 0xcd: case 0xce: case 0xcf:
		n = (size_t)1 << (u[0] - 0xcc);
		is_signed = 0;
		break;
	case 0xd0: case 0xd1: case 0xd2: case 0xd3:
		n = (size_t)1 << (u[0] - 0xd0);
		is_signed = 1;
		break;
	default:
		return KP_EBADREQUEST;
	}
	if (len != 1 + n)
		return KP_EBADREQUEST;
	for (size_t i = 0; i < n; i++)
		x = (x << 8) | u[1 + i];
	if (is_signed) {
		if (n < 8 && (x >> (8 * n - 1)) & 1)
			x |= ~(uint64_t)0 << (8 * n);
		*out = (int64_t)x;
		return 0;
	}
	if (x > (uint64_t)INT64_MAX)
		return KP_EBADREQUEST;
	*out = (int64_t)x;
	return 0;
}

int kp_view_new(struct kp_view **out)
{
	struct kp_view *v = kp_calloc(1, sizeof(*v));

	if (v == NULL)
		return -ENOMEM;
	if (table_init(&v->t, MIN_SLOTS) != 0) {
		kp_free(v);
		return -ENOMEM;
	}
	pthread_mutex_init(&v->lock, NULL);
	*out = v;
	return 0;
}

void kp_view_delete(struct kp_view *v)
{
	if (v == NULL)
		return;
	table_free(&v->t);
	pthread_mutex_destroy(&v->lock);
	kp_free(v);
}

int kp_view_get(struct kp_view *v, const char *key, size_t key_len,
		struct kp_buf *out)
{
	uint64_t h = hash_key(key, key_len);
	struct entry *e;
	int rc = 0;

	pthread_mutex_lock(&v->lock);
	e = v->t.slots[table_find(&v->t, h, key, key_len)];
	if (e != NULL) {
		kp_buf_reset(out);
		rc = kp_buf_append(out, entry_value(e), e->value_len);
		rc = rc != 0 ? rc : 1;
	}
	pthread_mutex_unlock(&v->lock);
	return rc;
}

int kp_view_put_prev(struct kp_view *v, const char *key, size_t key_len,
		     const char *value, size_t value_len, struct kp_buf *prev)
{
	uint64_t h = hash_key(key, key_len);
	size_t slot;
	int had, rc;

	pthread_mutex_lock(&v->lock);
	slot = table_find(&v->t, h, key, key_len);
	had = save_prev(&v->t, slot, prev);
	if (had < 0)
		rc = had;
	else if (had)
		rc = entry_set(&v->t, slot, value, value_len);
	else
		rc = table_insert(&v->t, slot, h, key, key_len, value,
				  value_len);
	pthread_mutex_unlock(&v->lock);
	return rc != 0 ? rc : had;
}

int kp_view_put(struct kp_view *v, const char *key, size_t key_len,
		const char *value, size_t value_len)
{
	int rc = kp_view_put_prev(v, key, key_len, value, value_len, NULL);

	return rc < 0 ? rc : 0;
}

int kp_view_incr_prev(struct kp_view *v, const char *key, size_t key_len,
		      int64_t delta, int64_t *result, struct kp_buf *prev)
{
	uint64_t h = hash_key(key, key_len);
	char enc[MIN_VALUE_CAP];
	int64_t cur = 0, sum;
	struct entry *e;
	size_t slot, n;
	int had, rc = 0;

	pthread_mutex_lock(&v->lock);
	slot = table_find(&v->t, h, key, key_len);
	e = v->t.slots[slot];
	if (e != NULL)
		rc = decode_int(entry_value(e), e->value_len, &cur);
	if (rc == 0 && __builtin_add_overflow(cur, delta, &sum))
		rc = KP_EBADREQUEST;
	if (rc != 0)
		goto out;
	had = save_prev(&v->t, slot, prev);
	if (had < 0) {
		rc = had;
		goto out;
	}
	n = encode_int(enc, sum);
	if (e != NULL)
		rc = entry_set(&v->t, slot, enc, n);
	else
		rc = table_insert(&v->t, slot, h, key, key_len, enc, n);
	if (rc == 0) {
		*result = sum;
		rc = had;
	}
out:
	pthread_mutex_unlock(&v->lock);
	return rc;
}

int kp_view_incr(struct kp_view *v, const char *key, size_t key_len,
		 int64_t delta, int64_t *result)
{
	int rc = kp_view_incr_prev(v, key, key_len, delta, result, NULL);

	return rc < 0 ? rc : 0;
}

int kp_view_del_prev(struct kp_view *v, const char *key, size_t key_len,
		     struct kp_buf *prev)
{
	uint64_t h = hash_key(key, key_len);
	size_t slot;
	int had;

	pthread_mutex_lock(&v->lock);
	slot = table_find(&v->t, h, key, key_len);
	had = save_prev(&v->t, slot, prev);
	if (had > 0)
		table_remove_at(&v->t, slot);
	pthread_mutex_unlock(&v->lock);
	return had;
}

int kp_view_del(struct kp_view *v, const char *key, size_t key_len)
{
	return kp_view_del_prev(v, key, key_len, NULL);
}

static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = *(const struct entry *const *)a;
	const struct entry *y = *(const struct entry *const *)b;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(x->data, y->data, n);

	if (c != 0)
		return c;
	return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/*
 * Collects the entries whose key starts with prefix, sorted by key, into a
 * new array (caller frees). The view's lock must be held.
 */
static int collect_sorted(struct table *t, const char *prefix,
			  size_t prefix_len, struct entry ***out, size_t *n)
{
	struct entry **list = NULL;
	size_t count = 0;

	if (t->count > 0) {
		list = kp_malloc(t->count * sizeof(*list));
		if (list == NULL)
			return -ENOMEM;
	}
	for (size_t i = 0; i <= t->mask; i++) {
		struct entry *e = t->slots[i];

		if (e != NULL && e->key_len >= prefix_len &&
		    memcmp(e->data, prefix, prefix_len) == 0)
			list[count++] = e;
	}
	if (count > 1)
		qsort(list, count, sizeof(*list), entry_cmp);
	*out = list;
	*n = count;
	return 0;
}

int kp_view_scan(struct kp_view *v, const char *prefix, size_t prefix_len,
		 size_t limit,
		 int (*visit)(void *arg, const char *key, size_t key_len,
			      const char *value, size_t value_len),
		 void *arg)
{
	struct entry **list = NULL;
	struct kp_buf copy;
	size_t n = 0, pos = 0;
	int rc, visited = 0;

	kp_buf_init(&copy);
	pthread_mutex_lock(&v->lock);
	rc = collect_sorted(&v->t, prefix, prefix_len, &list, &n);
	if (rc == 0 && limit != 0 && n > limit)
		n = limit;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct entry *e = list[i];
		char lens[8];

		kp_put_le32(lens, e->key_len);
		kp_put_le32(lens + 4, e->value_len);
		if (kp_buf_append(&copy, lens, 8) != 0 ||
		    kp_buf_append(&copy, e->data,
				  e->key_len + (size_t)e->value_len) != 0)
			rc = -ENOMEM;
	}
	pthread_mutex_unlock(&v->lock);
	kp_free(list);
	if (rc != 0) {
		kp_buf_destroy(&copy);
		return rc;
	}
	while (pos < copy.len && visited < INT32_MAX) {
		uint32_t kl = kp_get_le32(copy.data + pos);
		uint32_t vl = kp_get_le32(copy.data + pos + 4);
		const char *k = copy.data + pos + 8;

		visited++;
		pos += 8 + (size_t)kl + vl;
		if (visit(arg, k, kl, k + kl, vl) != 0)
			break;
	}
	kp_buf_destroy(&copy);
	return visited;
}

size_t kp_view_count(struct kp_view *v)
{
	size_t n;

	pthread_mutex_lock(&v->lock);
	n = v->t.count;
	pthread_mutex_unlock(&v->lock);
	return n;
}

size_t kp_view_bytes(struct kp_view *v)
{
	size_t n;

	pthread_mutex_lock(&v->lock);
	n = v->t.bytes;
	pthread_mutex_unlock(&v->lock);
	return n;
}

void kp_view_clear(struct kp_view *v)
{
	pthread_mutex_lock(&v->lock);
	for (size_t i = 0; i <= v->t.mask; i++) {
		kp_free(v->t.slots[i]);
		v->t.slots[i] = NULL;
	}
	v->t.count = 0;
	v->t.bytes = 0;
	pthread_mutex_unlock(&v->lock);
}

int kp_view_serialize(struct kp_view *v, struct kp_buf *out)
{
	size_t start = out->len, n = 0;
	struct entry **list = NULL;
	char num[8];
	int rc;

	pthread_mutex_lock(&v->lock);
	rc = collect_sorted(&v->t, "", 0, &list, &n);
	if (rc == 0)
		rc = kp_buf_reserve(out, SNAP_HEADER + 4 + 8 * n + v->t.bytes);
	if (rc == 0) {
		kp_buf_append(out, SNAP_MAGIC, SNAP_MAGIC_LEN);
		kp_put_le64(num, n);
		kp_buf_append(out, num, 8);
		for (size_t i = 0; i < n; i++) {
			struct entry *e = list[i];

			kp_put_le32(num, e->key_len);
			kp_buf_append(out, num, 4);
			kp_buf_append(out, e->data, e->key_len);
			kp_put_le32(num, e->value_len);
			kp_buf_append(out, num, 4);
			kp_buf_append(out, entry_value(e), e->value_len);
		}
		kp_put_le32(num, kp_crc32c(0, out->data + start,
					   out->len - start));
		kp_buf_append(out, num, 4);
	}
	pthread_mutex_unlock(&v->lock);
	kp_free(list);
	return rc;
}

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

/* Builds a table from a snapshot's entries; the caller has checked the CRC. */
static int load_entries(struct table *t, const char *data, size_t end,
			uint64_t count, struct kp_error *err)
{
	size_t pos = SNAP_HEADER, slots = MIN_SLOTS;

	if (count > (end - pos) / 8)
		return kp_error_set(err, KP_ECORRUPT,
				    "view snapshot: count %llu exceeds its size",
				    (unsigned long long)count);
	while (slots * 3 < count * 4)
		slots *= 2;
	if (table_init(t, slots) != 0)
		return kp_error_set(err, -ENOMEM, "view snapshot: out of memory");
	for (uint64_t i = 0; i < count; i++) {
		const char *key, *value;
		size_t key_len, value_len, slot, size;
		uint64_t h;

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
		h = hash_key(key, key_len);
		slot = table_find(t, h, key, key_len);
		if (t->slots[slot] != NULL)
			return kp_error_set(err, KP_ECORRUPT,
					    "view snapshot: duplicate key at entry %llu",
					    (unsigned long long)i);
		if (table_insert(t, slot, h, key, key_len, value,
				 value_len) != 0)
			return kp_error_set(err, -ENOMEM,
					    "view snapshot: out of memory");
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
	struct table fresh = { 0 };
	struct table old;
	uint32_t crc;
	int rc;

	if (len < SNAP_HEADER + 4 ||
	    memcmp(data, SNAP_MAGIC, SNAP_MAGIC_LEN) != 0)
		return kp_error_set(err, KP_ECORRUPT,
				    "view snapshot: bad magic or too short (%zu bytes)",
				    len);
	crc = kp_get_le32(data + len - 4);
	if (kp_crc32c(0, data, len - 4) != crc)
		return kp_error_set(err, KP_ECORRUPT,
				    "view snapshot: CRC mismatch");
	rc = load_entries(&fresh, data, len - 4, kp_get_le64(data + SNAP_MAGIC_LEN),
			  err);
	if (rc != 0) {
		table_free(&fresh);
		return rc;
	}
	pthread_mutex_lock(&v->lock);
	old = v->t;
	v->t = fresh;
	pthread_mutex_unlock(&v->lock);
	table_free(&old);
	return 0;
}
