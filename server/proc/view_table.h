/*
 * view_table.h - the in-memory part of a view: an open-addressing hash
 * table (linear probing, backward-shift deletion) of keys to values, with
 * per-entry flags saying how each relates to the view's store.
 *
 * Not thread-safe by itself: view.c holds its lock around changes.
 */
#ifndef KP_VIEW_TABLE_H
#define KP_VIEW_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VT_DIRTY 1u   /* changed since the last commit */
#define VT_TOMB 2u    /* deleted (value_len 0); only kept while VT_BASE */
#define VT_BASE 4u    /* the key is in the store's last commit */

/*
 * One key and its value, in one allocation: key bytes then value slot.
 * 16 bytes of header: a view of a million small keys fits its table in
 * the default 64 MiB.
 */
struct vt_entry {
	uint32_t hash;       /* hash of the key (its low 32 bits) */
	uint32_t value_len;
	uint32_t value_cap;  /* bytes of the value slot */
	uint16_t key_len;    /* at most KP_VIEW_MAX_KEY */
	uint8_t flags;       /* VT_* */
	uint8_t pad;
	char data[];         /* key_len key bytes, then value_cap value bytes */
};

/* A table of 2^n slots; NULL marks an empty slot. */
struct vt_table {
	struct vt_entry **slots;
	size_t mask;         /* slot count - 1 */
	size_t count;        /* entries */
	size_t mem;          /* bytes the entries and slots take, about */
	size_t dirty;        /* entries with VT_DIRTY (kept by view.c) */
};

static inline char *vt_value(struct vt_entry *e)
{
	return e->data + e->key_len;
}

/* 64-bit hash of a key. */
uint64_t vt_hash(const char *key, size_t len);

/* Makes an empty table of slots (a power of two). 0 or -ENOMEM. */
int vt_init(struct vt_table *t, size_t slots);

/* Frees the entries and the slots. */
void vt_free(struct vt_table *t);

/* Frees every entry, keeping the slots' allocation small. */
void vt_clear(struct vt_table *t);

/*
 * Builds into out a table holding only t's dirty entries (the same
 * entries, not copies): the caller swaps it in, then frees the clean ones
 * with vt_free_clean. 0 or -ENOMEM.
 */
int vt_dirty_only(const struct vt_table *t, struct vt_table *out);

/* Frees the clean entries of a table swapped out by vt_dirty_only, and
 * its slots (its dirty entries live on in the new table). */
void vt_free_clean(struct vt_table *old);

/* Bytes an entry takes in memory (its allocation, about). */
size_t vt_entry_mem(const struct vt_entry *e);

/* The slot holding key, or the empty slot where it would go. */
size_t vt_find(const struct vt_table *t, uint64_t h, const char *key,
	       size_t key_len);

/* Sorts entries by key bytes, fast for many (compares 8-byte prefixes). */
int vt_sort(struct vt_entry **items, size_t n);

/* true when the next insert would make t grow (vt_grown_slots first). */
bool vt_full(const struct vt_table *t);

/*
 * Builds t's slots at twice the size with every entry placed, reading t
 * only (so a writer can do it without the lock readers take), into *slots
 * and *mask. 0 or -ENOMEM.
 */
int vt_grown_slots(const struct vt_table *t, struct vt_entry ***slots,
		   size_t *mask);

/* Installs slots from vt_grown_slots (O(1)); returns the old array to free. */
struct vt_entry **vt_adopt_slots(struct vt_table *t, struct vt_entry **slots,
				 size_t mask);

/*
 * Inserts a key known to be absent (slot from vt_find) with a value and
 * flags (growing t first when full: callers that must not rehash under a
 * lock grow it beforehand). Returns the entry, NULL on -ENOMEM.
 */
struct vt_entry *vt_insert(struct vt_table *t, size_t slot, uint64_t h,
			   const char *key, size_t key_len, const char *value,
			   size_t value_len, uint32_t flags);

/* Sets the value of the entry at slot (it may move). 0 or -ENOMEM. */
int vt_set(struct vt_table *t, size_t slot, const char *value,
	   size_t value_len);

/* Removes and frees the entry at slot. */
void vt_remove_at(struct vt_table *t, size_t slot);

/* Orders entries by key bytes (a qsort comparator over entry pointers). */
int vt_entry_cmp(const void *a, const void *b);

#endif
