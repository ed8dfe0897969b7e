/*
 * view_table.c - the hash table under a view (view_table.h).
 *
 * Each entry is one allocation holding the key and an inline value slot of
 * at least 9 bytes, so an integer that changes never reallocates and a
 * value that shrinks keeps its slot.
 */
#include "view_table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

#define MIN_VALUE_CAP 9   /* the longest msgpack integer */
#define MIN_SLOTS 16

/* glibc's chunk for a request: 8 bytes of header, 16-byte granules. */
static size_t entry_mem(const struct vt_entry *e)
{
	size_t n = sizeof(*e) + e->key_len + e->value_cap + 8;

	return n < 32 ? 32 : (n + 15) & ~(size_t)15;
}

size_t vt_entry_mem(const struct vt_entry *e)
{
	return entry_mem(e);
}

uint64_t vt_hash(const char *key, size_t len)
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

int vt_init(struct vt_table *t, size_t slots)
{
	if (slots < MIN_SLOTS)
		slots = MIN_SLOTS;
	t->slots = kp_calloc(slots, sizeof(*t->slots));
	if (t->slots == NULL)
		return -ENOMEM;
	t->mask = slots - 1;
	t->count = 0;
	t->dirty = 0;
	t->mem = slots * sizeof(*t->slots);
	return 0;
}

void vt_free(struct vt_table *t)
{
	if (t->slots == NULL)
		return;
	for (size_t i = 0; i <= t->mask; i++)
		kp_free(t->slots[i]);
	kp_free(t->slots);
	t->slots = NULL;
	t->count = 0;
	t->dirty = 0;
	t->mem = 0;
}

void vt_clear(struct vt_table *t)
{
	struct vt_table fresh;

	if (vt_init(&fresh, MIN_SLOTS) != 0) {
		/* Keep the slots; free the entries. */
		for (size_t i = 0; i <= t->mask; i++) {
			kp_free(t->slots[i]);
			t->slots[i] = NULL;
		}
		t->count = 0;
		t->dirty = 0;
		t->mem = (t->mask + 1) * sizeof(*t->slots);
		return;
	}
	vt_free(t);
	*t = fresh;
}

size_t vt_find(const struct vt_table *t, uint64_t h, const char *key,
	       size_t key_len)
{
	uint32_t h32 = (uint32_t)h;
	size_t i = (size_t)h32 & t->mask;

	for (;;) {
		const struct vt_entry *e = t->slots[i];

		if (e == NULL)
			return i;
		if (e->hash == h32 && e->key_len == key_len &&
		    memcmp(e->data, key, key_len) == 0)
			return i;
		i = (i + 1) & t->mask;
	}
}

/* Places e in the first empty slot of its probe sequence (key absent). */
static void place(struct vt_table *t, struct vt_entry *e)
{
	size_t i = (size_t)e->hash & t->mask;

	while (t->slots[i] != NULL)
		i = (i + 1) & t->mask;
	t->slots[i] = e;
}

bool vt_full(const struct vt_table *t)
{
	return (t->count + 1) * 4 > (t->mask + 1) * 3;
}

int vt_grown_slots(const struct vt_table *t, struct vt_entry ***slots,
		   size_t *mask)
{
	struct vt_table tmp;

	tmp.slots = kp_calloc((t->mask + 1) * 2, sizeof(*tmp.slots));
	if (tmp.slots == NULL)
		return -ENOMEM;
	tmp.mask = (t->mask + 1) * 2 - 1;
	for (size_t i = 0; i <= t->mask; i++) {
		if (t->slots[i] != NULL)
			place(&tmp, t->slots[i]);
	}
	*slots = tmp.slots;
	*mask = tmp.mask;
	return 0;
}

struct vt_entry **vt_adopt_slots(struct vt_table *t, struct vt_entry **slots,
				 size_t mask)
{
	struct vt_entry **old = t->slots;

	t->mem += (mask - t->mask) * sizeof(*slots);
	t->slots = slots;
	t->mask = mask;
	return old;
}

static int grow(struct vt_table *t)
{
	size_t slots = (t->mask + 1) * 2;
	struct vt_entry **bigger = kp_calloc(slots, sizeof(*bigger));
	struct vt_entry **old = t->slots;
	size_t old_slots = t->mask + 1;

	if (bigger == NULL)
		return -ENOMEM;
	t->slots = bigger;
	t->mask = slots - 1;
	for (size_t i = 0; i < old_slots; i++) {
		if (old[i] != NULL)
			place(t, old[i]);
	}
	kp_free(old);
	t->mem += (slots - old_slots) * sizeof(*bigger);
	return 0;
}

struct vt_entry *vt_insert(struct vt_table *t, size_t slot, uint64_t h,
			   const char *key, size_t key_len, const char *value,
			   size_t value_len, uint32_t flags)
{
	size_t cap = value_len < MIN_VALUE_CAP ? MIN_VALUE_CAP : value_len;
	struct vt_entry *e;

	if (key_len > UINT16_MAX || value_len > UINT32_MAX)
		return NULL;
	if ((t->count + 1) * 4 > (t->mask + 1) * 3) {
		if (grow(t) != 0)
			return NULL;
		slot = vt_find(t, h, key, key_len);
	}
	e = kp_malloc(sizeof(*e) + key_len + cap);
	if (e == NULL)
		return NULL;
	e->hash = (uint32_t)h;
	e->key_len = (uint16_t)key_len;
	e->value_len = (uint32_t)value_len;
	e->value_cap = (uint32_t)cap;
	e->flags = (uint8_t)flags;
	e->pad = 0;
	memcpy(e->data, key, key_len);
	if (value_len > 0)
		memcpy(vt_value(e), value, value_len);
	t->slots[slot] = e;
	t->count++;
	if (flags & VT_DIRTY)
		t->dirty++;
	t->mem += entry_mem(e);
	return e;
}

int vt_set(struct vt_table *t, size_t slot, const char *value,
	   size_t value_len)
{
	struct vt_entry *e = t->slots[slot];

	if (value_len > e->value_cap) {
		size_t before = entry_mem(e);

		if (value_len > UINT32_MAX)
			return -ENOMEM;
		e = kp_realloc(e, sizeof(*e) + e->key_len + value_len);
		if (e == NULL)
			return -ENOMEM;
		e->value_cap = (uint32_t)value_len;
		t->slots[slot] = e;
		t->mem += entry_mem(e) - before;
	}
	if (value_len > 0)
		memcpy(vt_value(e), value, value_len);
	e->value_len = (uint32_t)value_len;
	return 0;
}

void vt_remove_at(struct vt_table *t, size_t i)
{
	size_t j = i;

	t->mem -= entry_mem(t->slots[i]);
	if (t->slots[i]->flags & VT_DIRTY)
		t->dirty--;
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

int vt_entry_cmp(const void *a, const void *b)
{
	const struct vt_entry *x = *(const struct vt_entry *const *)a;
	const struct vt_entry *y = *(const struct vt_entry *const *)b;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(x->data, y->data, n);

	if (c != 0)
		return c;
	return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

int vt_dirty_only(const struct vt_table *t, struct vt_table *out)
{
	size_t slots = 16;

	while (slots * 3 < t->dirty * 4 + 4)
		slots *= 2;
	if (vt_init(out, slots) != 0)
		return -ENOMEM;
	for (size_t i = 0; i <= t->mask; i++) {
		struct vt_entry *e = t->slots[i];

		if (e == NULL || !(e->flags & VT_DIRTY))
			continue;
		place(out, e);
		out->count++;
		out->dirty++;
		out->mem += entry_mem(e);
	}
	return 0;
}

void vt_free_clean(struct vt_table *old)
{
	for (size_t i = 0; i <= old->mask; i++) {
		struct vt_entry *e = old->slots[i];

		if (e != NULL && !(e->flags & VT_DIRTY))
			kp_free(e);
	}
	kp_free(old->slots);
	old->slots = NULL;
}

/* An entry and the first 8 bytes of its key, big-endian: sorts as bytes. */
struct sort_item {
	uint64_t prefix;
	struct vt_entry *e;
};

static int cmp_item(const void *a, const void *b)
{
	const struct sort_item *x = a, *y = b;

	if (x->prefix != y->prefix)
		return x->prefix < y->prefix ? -1 : 1;
	return vt_entry_cmp(&x->e, &y->e);
}

int vt_sort(struct vt_entry **items, size_t n)
{
	struct sort_item *tmp;

	if (n < 2)
		return 0;
	tmp = kp_malloc(n * sizeof(*tmp));
	if (tmp == NULL) {
		qsort(items, n, sizeof(*items), vt_entry_cmp);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		const unsigned char *k = (const unsigned char *)items[i]->data;
		uint64_t p = 0;

		for (size_t j = 0; j < 8; j++)
			p = (p << 8) | (j < items[i]->key_len ? k[j] : 0);
		tmp[i].prefix = p;
		tmp[i].e = items[i];
	}
	qsort(tmp, n, sizeof(*tmp), cmp_item);
	for (size_t i = 0; i < n; i++)
		items[i] = tmp[i].e;
	kp_free(tmp);
	return 0;
}
