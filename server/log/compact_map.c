/*
 * compact_map.c - key -> highest offset, for a compaction run
 * (compact_map.h).
 *
 * Access pattern: one insert per record of the dirty segments, one lookup
 * per record of every segment the run reads; grows by doubling at 70 %
 * load.
 */
#include "compact_map.h"

#include <errno.h>
#include <string.h>

#include "base/alloc.h"

#define EMPTY UINT32_MAX

static uint64_t hash_key(const char *key, uint32_t len)
{
	uint64_t h = 14695981039346656037ull;

	for (uint32_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 1099511628211ull;
	}
	return h;
}

void kp_keymap_init(struct kp_keymap *m)
{
	m->slots = NULL;
	m->cap = 0;
	m->used = 0;
	kp_buf_init(&m->arena);
}

void kp_keymap_destroy(struct kp_keymap *m)
{
	kp_free(m->slots);
	kp_buf_destroy(&m->arena);
	kp_keymap_init(m);
}

static bool slot_is(const struct kp_keymap *m, const struct kp_keymap_slot *s,
		    uint64_t hash, const char *key, uint32_t len)
{
	return s->hash == hash && s->key_len == len &&
	       (len == 0 || memcmp(m->arena.data + s->key_pos, key, len) == 0);
}

/* The slot holding key, or the empty slot where it would go. */
static struct kp_keymap_slot *probe(const struct kp_keymap *m, uint64_t hash,
				    const char *key, uint32_t len)
{
	size_t i = (size_t)hash & (m->cap - 1);

	for (;;) {
		struct kp_keymap_slot *s = &m->slots[i];

		if (s->key_len == EMPTY || slot_is(m, s, hash, key, len))
			return s;
		i = (i + 1) & (m->cap - 1);
	}
}

static int grow(struct kp_keymap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 1024;
	struct kp_keymap_slot *old = m->slots, *slots;
	size_t old_cap = m->cap;

	slots = kp_malloc(cap * sizeof(*slots));
	if (slots == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < cap; i++) {
		slots[i].key_len = EMPTY;
		slots[i].hash = 0;
	}
	m->slots = slots;
	m->cap = cap;
	for (size_t i = 0; i < old_cap; i++) {
		struct kp_keymap_slot *s = &old[i];
		size_t j;

		if (s->key_len == EMPTY)
			continue;
		j = (size_t)s->hash & (cap - 1);
		while (slots[j].key_len != EMPTY)
			j = (j + 1) & (cap - 1);
		slots[j] = *s;
	}
	kp_free(old);
	return 0;
}

int kp_keymap_put(struct kp_keymap *m, const char *key, uint32_t len,
		  uint64_t offset)
{
	uint64_t hash = hash_key(key, len);
	struct kp_keymap_slot *s;
	int rc;

	if (len == EMPTY)
		return -EINVAL;
	if ((m->used + 1) * 10 > m->cap * 7) {
		rc = grow(m);
		if (rc != 0)
			return rc;
	}
	s = probe(m, hash, key, len);
	if (s->key_len != EMPTY) {
		if (offset > s->offset)
			s->offset = offset;
		return 0;
	}
	rc = kp_buf_append(&m->arena, key, len);
	if (rc != 0)
		return rc;
	s->hash = hash;
	s->offset = offset;
	s->key_pos = m->arena.len - len;
	s->key_len = len;
	s->unused = 0;
	m->used++;
	return 0;
}

bool kp_keymap_get(const struct kp_keymap *m, const char *key, uint32_t len,
		   uint64_t *offset)
{
	const struct kp_keymap_slot *s;

	if (m->cap == 0 || len == EMPTY)
		return false;
	s = probe(m, hash_key(key, len), key, len);
	if (s->key_len == EMPTY)
		return false;
	*offset = s->offset;
	return true;
}

size_t kp_keymap_bytes(const struct kp_keymap *m)
{
	return m->cap * sizeof(struct kp_keymap_slot) + m->arena.cap;
}
