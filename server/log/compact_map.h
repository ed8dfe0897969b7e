/*
 * compact_map.h - the table a compaction run builds from its dirty
 * segments: for each key (compared as bytes), the highest offset it was
 * written at.
 *
 * Open addressing with linear probing over 64-bit FNV-1a hashes; the keys
 * are copied into one arena, so memory is the keys' bytes plus 32 bytes per
 * slot, and kp_keymap_bytes tells the run when to stop adding segments.
 * One thread at a time (a run's worker).
 */
#ifndef KP_COMPACT_MAP_H
#define KP_COMPACT_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* One slot; hash 0 with key_len UINT32_MAX marks an empty one. */
struct kp_keymap_slot {
	uint64_t hash;       /* FNV-1a of the key */
	uint64_t offset;     /* highest offset seen for the key */
	uint64_t key_pos;    /* where its bytes start in the arena */
	uint32_t key_len;    /* bytes of the key; UINT32_MAX = empty slot */
	uint32_t unused;     /* padding */
};

struct kp_keymap {
	struct kp_keymap_slot *slots;  /* owned; cap entries */
	size_t cap;                    /* a power of two, or 0 */
	size_t used;                   /* keys held */
	struct kp_buf arena;           /* the keys' bytes, owned */
};

/* Initialises an empty map (no allocation). */
void kp_keymap_init(struct kp_keymap *m);

/* Frees the map's memory; it is empty afterwards. */
void kp_keymap_destroy(struct kp_keymap *m);

/*
 * Notes that key (len bytes, may be 0) was written at offset: the map
 * keeps the highest offset per key. Returns 0 or -ENOMEM.
 */
int kp_keymap_put(struct kp_keymap *m, const char *key, uint32_t len,
		  uint64_t offset);

/* true with *offset when the key is in the map. */
bool kp_keymap_get(const struct kp_keymap *m, const char *key, uint32_t len,
		   uint64_t *offset);

/* Bytes the map holds (slots and keys). */
size_t kp_keymap_bytes(const struct kp_keymap *m);

#endif
