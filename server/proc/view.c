/*
 * view.c - a view's changes and commits (view.h): a table of changed keys
 * in front of an LMDB store.
 *
 * Each change looks its key up in the table, else (without the lock: only
 * the one writing thread changes the table) in the store, then changes the
 * table under the lock. An entry remembers whether its key is in the
 * store's last commit (VT_BASE), so a delete of a stored key is kept as a
 * tombstone until the commit, and the live count and bytes stay exact.
 *
 * A commit sorts the dirty entries, writes them and the caller's meta
 * records in one store transaction, then marks them clean. Clean entries
 * stay (a working set that fits is read from memory) until the table
 * reaches its budget; then they are evicted, the table rebuilt off the
 * lock and swapped in. A commit is due once dirty entries take three
 * quarters of the budget (kp_view_cache_full).
 *
 * The stats meta record: u64 count, u64 bytes (little-endian).
 */
#include "view.h"
#include "view_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/mp.h"

_Static_assert(KP_VIEW_MAX_KEY == KP_VSTORE_MAX_KEY,
	       "a view holds what its store can");

#define STATS_NAME "stats"
#define MAX_META 8
/*
 * Of view_cache_bytes: clean entries go when the table reaches TRIM_AT,
 * a commit is due when dirty ones take COMMIT_AT; a commit's sorted list
 * (16 bytes per dirty key) fits in what is left.
 */
#define TRIM_AT(budget) ((budget) / 20 * 17)
#define COMMIT_AT(budget) ((budget) / 20 * 13)

/* A key's state before a change. */
struct lookup {
	size_t slot;
	struct vt_entry *e;       /* the table's entry, or NULL */
	int present;
	const char *value;        /* its value when present */
	size_t value_len;
};

static int view_alloc(struct kp_view **out)
{
	struct kp_view *v = kp_calloc(1, sizeof(*v));

	if (v == NULL)
		return -ENOMEM;
	if (vt_init(&v->t, 0) != 0) {
		kp_free(v);
		return -ENOMEM;
	}
	pthread_mutex_init(&v->lock, NULL);
	kp_buf_init(&v->base);
	v->cache_bytes = KP_VIEW_DEFAULT_CACHE_BYTES;
	*out = v;
	return 0;
}

int kp_view_new(struct kp_view **out)
{
	return view_alloc(out);
}

static int read_stats(struct kp_view *v, struct kp_error *err)
{
	int rc = kp_vstore_meta_get(v->store, STATS_NAME, &v->base);

	if (rc < 0)
		return kp_error_set(err, rc, "view store: cannot read its stats: %s",
				    kp_error_text(rc));
	if (rc == 1 && v->base.len == 16) {
		v->stored_count = kp_get_le64(v->base.data);
		v->stored_bytes = kp_get_le64(v->base.data + 8);
	} else if (rc == 1) {
		return kp_error_set(err, KP_EDAMAGED,
				    "view store: its stats record is damaged; `kappactl proc reset` rebuilds it from the log");
	}
	v->count = v->stored_count;
	v->bytes = v->stored_bytes;
	kp_buf_reset(&v->base);
	return 0;
}

int kp_view_open(struct kp_view **out, const char *dir, size_t cache_bytes,
		 uint64_t max_bytes, struct kp_error *err)
{
	struct kp_view *v;
	int rc = view_alloc(&v);

	if (rc != 0)
		return kp_error_set(err, rc, "out of memory");
	if (cache_bytes != 0)
		v->cache_bytes = cache_bytes;
	rc = kp_vstore_open(&v->store, dir, max_bytes, err);
	if (rc == 0)
		rc = read_stats(v, err);
	if (rc != 0) {
		kp_view_delete(v);
		return rc;
	}
	*out = v;
	return 0;
}

void kp_view_delete(struct kp_view *v)
{
	if (v == NULL)
		return;
	vt_free(&v->t);
	kp_vstore_close(v->store);
	kp_buf_destroy(&v->base);
	pthread_mutex_destroy(&v->lock);
	kp_free(v);
}

bool kp_view_stored(const struct kp_view *v)
{
	return v->store != NULL;
}

int kp_view_get(struct kp_view *v, const char *key, size_t key_len,
		struct kp_buf *out)
{
	uint64_t h = vt_hash(key, key_len);
	struct vt_entry *e;
	bool ask_store;
	int rc = 0;

	pthread_mutex_lock(&v->lock);
	e = v->t.slots[vt_find(&v->t, h, key, key_len)];
	if (e != NULL && !(e->flags & VT_TOMB)) {
		kp_buf_reset(out);
		rc = kp_buf_append(out, vt_value(e), e->value_len);
		rc = rc != 0 ? rc : 1;
	}
	ask_store = e == NULL && v->store != NULL && !v->cleared;
	pthread_mutex_unlock(&v->lock);
	if (ask_store)
		rc = kp_vstore_get(v->store, key, key_len, out, NULL);
	return rc;
}

/* Finds key's state before a change (the writing thread only). */
static int lookup(struct kp_view *v, uint64_t h, const char *key,
		  size_t key_len, struct lookup *l)
{
	int rc;

	l->slot = vt_find(&v->t, h, key, key_len);
	l->e = v->t.slots[l->slot];
	l->present = 0;
	l->value = NULL;
	l->value_len = 0;
	if (l->e != NULL) {
		l->present = !(l->e->flags & VT_TOMB);
		l->value = vt_value(l->e);
		l->value_len = l->e->value_len;
		return 0;
	}
	if (v->store == NULL || v->cleared)
		return 0;
	rc = kp_vstore_get(v->store, key, key_len, &v->base, NULL);
	if (rc < 0)
		return rc;
	l->present = rc;
	l->value = v->base.data;
	l->value_len = v->base.len;
	return 0;
}

/* Appends l's value to prev (with the spare room view.h promises). */
static int save_prev(const struct lookup *l, struct kp_buf *prev)
{
	if (!l->present || prev == NULL)
		return 0;
	if (kp_buf_reserve(prev, l->value_len + (size_t)KP_VIEW_PREV_SPARE))
		return -ENOMEM;
	memcpy(prev->data + prev->len, l->value, l->value_len);
	prev->len += l->value_len;
	return 0;
}

/* Sets key to value (the lock is held). */
static int set_locked(struct kp_view *v, const struct lookup *l, uint64_t h,
		      const char *key, size_t key_len, const char *value,
		      size_t value_len)
{
	struct vt_entry *e = l->e;
	int rc;

	if (e != NULL) {
		rc = vt_set(&v->t, l->slot, value, value_len);
		if (rc != 0)
			return rc;
		e = v->t.slots[l->slot];
	} else {
		e = vt_insert(&v->t, l->slot, h, key, key_len, value,
			      value_len, VT_DIRTY | (l->present ? VT_BASE : 0));
		if (e == NULL)
			return -ENOMEM;
	}
	if (!(e->flags & VT_DIRTY))
		v->t.dirty++;
	if (l->present) {
		v->bytes = v->bytes + value_len - l->value_len;
	} else {
		v->count++;
		v->bytes += key_len + value_len;
	}
	e->flags = (e->flags & ~VT_TOMB) | VT_DIRTY;
	return 0;
}

/* Deletes a present key (the lock is held). */
static int del_locked(struct kp_view *v, const struct lookup *l, uint64_t h,
		      const char *key, size_t key_len)
{
	struct vt_entry *e = l->e;

	if (e == NULL) {
		/* In the store only: remember the delete. */
		e = vt_insert(&v->t, l->slot, h, key, key_len, NULL, 0,
			      VT_BASE | VT_TOMB | VT_DIRTY);
		if (e == NULL)
			return -ENOMEM;
	} else if (e->flags & VT_BASE) {
		if (!(e->flags & VT_DIRTY))
			v->t.dirty++;
		e->value_len = 0;
		e->flags |= VT_TOMB | VT_DIRTY;
	} else {
		vt_remove_at(&v->t, l->slot);
	}
	v->count--;
	v->bytes -= key_len + l->value_len;
	return 0;
}

/*
 * Before an insert that would make the table grow: the bigger slot array
 * is built without the lock (only this thread changes the table) and
 * swapped in under it, so readers never wait for a rehash. l's slot is
 * found again in the new array.
 */
static void make_room(struct kp_view *v, struct lookup *l, uint64_t h,
		      const char *key, size_t key_len)
{
	struct vt_entry **slots, **old;
	size_t mask;

	if (l->e != NULL || !vt_full(&v->t) ||
	    vt_grown_slots(&v->t, &slots, &mask) != 0)
		return;   /* (on -ENOMEM the insert grows, or fails, itself) */
	pthread_mutex_lock(&v->lock);
	old = vt_adopt_slots(&v->t, slots, mask);
	pthread_mutex_unlock(&v->lock);
	kp_free(old);
	l->slot = vt_find(&v->t, h, key, key_len);
}

/*
 * At its budget, the table lets its clean entries go (the writing thread,
 * after a change): the dirty ones are indexed anew off the lock, swapped
 * in under it, and the clean ones freed.
 */
static void trim(struct kp_view *v)
{
	struct vt_table fresh, old;

	if (v->store == NULL || v->t.mem < TRIM_AT(v->cache_bytes) ||
	    v->t.dirty == v->t.count || vt_dirty_only(&v->t, &fresh) != 0)
		return;
	pthread_mutex_lock(&v->lock);
	old = v->t;
	v->t = fresh;
	pthread_mutex_unlock(&v->lock);
	vt_free_clean(&old);
}

int kp_view_put_prev(struct kp_view *v, const char *key, size_t key_len,
		     const char *value, size_t value_len, struct kp_buf *prev)
{
	uint64_t h = vt_hash(key, key_len);
	struct lookup l;
	int rc;

	if (key_len > KP_VIEW_MAX_KEY)
		return KP_ETOOLARGE;
	rc = lookup(v, h, key, key_len, &l);
	if (rc == 0)
		rc = save_prev(&l, prev);
	if (rc != 0)
		return rc;
	make_room(v, &l, h, key, key_len);
	pthread_mutex_lock(&v->lock);
	rc = set_locked(v, &l, h, key, key_len, value, value_len);
	pthread_mutex_unlock(&v->lock);
	if (l.e == NULL)
		trim(v);
	return rc != 0 ? rc : l.present;
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
	uint64_t h = vt_hash(key, key_len);
	char enc[9];
	int64_t cur = 0, sum;
	struct lookup l;
	int rc;

	if (key_len > KP_VIEW_MAX_KEY)
		return KP_ETOOLARGE;
	rc = lookup(v, h, key, key_len, &l);
	if (rc == 0 && l.present &&
	    kp_mp_decode_int(l.value, l.value_len, &cur) != 0)
		rc = KP_EBADREQUEST;
	if (rc == 0 && __builtin_add_overflow(cur, delta, &sum))
		rc = KP_EBADREQUEST;
	if (rc == 0)
		rc = save_prev(&l, prev);
	if (rc != 0)
		return rc;
	make_room(v, &l, h, key, key_len);
	pthread_mutex_lock(&v->lock);
	rc = set_locked(v, &l, h, key, key_len, enc,
			kp_mp_encode_int(enc, sum));
	pthread_mutex_unlock(&v->lock);
	if (rc != 0)
		return rc;
	if (l.e == NULL)
		trim(v);
	*result = sum;
	return l.present;
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
	uint64_t h = vt_hash(key, key_len);
	struct lookup l;
	int rc;

	if (key_len > KP_VIEW_MAX_KEY)
		return 0;
	rc = lookup(v, h, key, key_len, &l);
	if (rc == 0)
		rc = save_prev(&l, prev);
	if (rc != 0 || !l.present)
		return rc;
	make_room(v, &l, h, key, key_len);
	pthread_mutex_lock(&v->lock);
	rc = del_locked(v, &l, h, key, key_len);
	pthread_mutex_unlock(&v->lock);
	if (l.e == NULL)
		trim(v);
	return rc != 0 ? rc : 1;
}

int kp_view_del(struct kp_view *v, const char *key, size_t key_len)
{
	return kp_view_del_prev(v, key, key_len, NULL);
}

size_t kp_view_count(struct kp_view *v)
{
	size_t n;

	pthread_mutex_lock(&v->lock);
	n = (size_t)v->count;
	pthread_mutex_unlock(&v->lock);
	return n;
}

size_t kp_view_bytes(struct kp_view *v)
{
	size_t n;

	pthread_mutex_lock(&v->lock);
	n = (size_t)v->bytes;
	pthread_mutex_unlock(&v->lock);
	return n;
}

size_t kp_view_cache_used(struct kp_view *v)
{
	size_t n;

	pthread_mutex_lock(&v->lock);
	n = v->t.mem;
	pthread_mutex_unlock(&v->lock);
	return n;
}

bool kp_view_cache_full(struct kp_view *v)
{
	size_t mem, count, dirty;

	if (v->store == NULL)
		return false;
	pthread_mutex_lock(&v->lock);
	mem = v->t.mem;
	count = v->t.count;
	dirty = v->t.dirty;
	pthread_mutex_unlock(&v->lock);
	/*
	 * Dirty entries' share of the table's memory, against COMMIT_AT:
	 * fewer, larger commits touch each store page fewer times (a B-tree
	 * rewrites whole pages), and clean entries make room.
	 */
	return count > 0 && (double)mem * (double)dirty / (double)count >=
				    (double)COMMIT_AT(v->cache_bytes);
}

uint64_t kp_view_disk_bytes(struct kp_view *v)
{
	return v->store != NULL ? kp_vstore_disk_bytes(v->store) : 0;
}

void kp_view_clear(struct kp_view *v)
{
	pthread_mutex_lock(&v->lock);
	vt_clear(&v->t);
	v->cleared = v->store != NULL;
	v->count = 0;
	v->bytes = 0;
	pthread_mutex_unlock(&v->lock);
}

void kp_view_discard(struct kp_view *v)
{
	pthread_mutex_lock(&v->lock);
	vt_clear(&v->t);
	v->cleared = false;
	v->count = v->store != NULL ? v->stored_count : 0;
	v->bytes = v->store != NULL ? v->stored_bytes : 0;
	pthread_mutex_unlock(&v->lock);
	kp_buf_destroy(&v->base);
	kp_buf_init(&v->base);
}

/* ---- commits ---------------------------------------------------------- */

struct dirty_list {
	struct vt_entry **items;
	size_t n;
	size_t next;
	size_t bytes;
};

static void rewind_changes(void *arg)
{
	((struct dirty_list *)arg)->next = 0;
}

static int next_change(void *arg, struct kp_vstore_change *c)
{
	struct dirty_list *d = arg;
	struct vt_entry *e;

	if (d->next == d->n)
		return 0;
	e = d->items[d->next++];
	c->key = e->data;
	c->key_len = e->key_len;
	c->value = (e->flags & VT_TOMB) ? NULL : vt_value(e);
	c->value_len = e->value_len;
	return 1;
}

/* The dirty entries, sorted by key (the writing thread: no lock needed). */
static int collect_dirty(struct kp_view *v, struct dirty_list *d)
{
	memset(d, 0, sizeof(*d));
	d->items = kp_malloc((v->t.count ? v->t.count : 1) * sizeof(*d->items));
	if (d->items == NULL)
		return -ENOMEM;
	for (size_t i = 0; i <= v->t.mask; i++) {
		struct vt_entry *e = v->t.slots[i];

		if (e != NULL && (e->flags & VT_DIRTY)) {
			d->items[d->n++] = e;
			d->bytes += e->key_len + (size_t)e->value_len;
		}
	}
	vt_sort(d->items, d->n);
	return 0;
}

#define MARK_CHUNK 1024

/*
 * After a commit: dirty entries become clean (tombstones go), under the
 * lock a chunk at a time so that readers never wait for long. When the
 * table holds more than half its budget it is dropped whole instead (the
 * store has every key now), swapped out in O(1) and freed unlocked.
 */
static void mark_committed(struct kp_view *v, const struct dirty_list *d)
{
	struct vt_table old = { 0 }, fresh;
	bool drop = v->t.mem >= TRIM_AT(v->cache_bytes) &&
		    vt_init(&fresh, 0) == 0;

	pthread_mutex_lock(&v->lock);
	v->cleared = false;
	v->stored_count = v->count;
	v->stored_bytes = v->bytes;
	if (drop) {
		old = v->t;
		v->t = fresh;
	}
	pthread_mutex_unlock(&v->lock);
	if (drop) {
		vt_free(&old);
		return;
	}
	for (size_t i = 0; i < d->n; i += MARK_CHUNK) {
		size_t end = i + MARK_CHUNK < d->n ? i + MARK_CHUNK : d->n;

		pthread_mutex_lock(&v->lock);
		for (size_t j = i; j < end; j++) {
			struct vt_entry *e = d->items[j];

			if (e->flags & VT_TOMB) {
				vt_remove_at(&v->t, vt_find(&v->t, e->hash,
							    e->data,
							    e->key_len));
				continue;
			}
			e->flags = VT_BASE;
		}
		if (end == d->n)
			v->t.dirty = 0;
		pthread_mutex_unlock(&v->lock);
	}
}

int kp_view_commit(struct kp_view *v, const char *const *meta_names,
		   const struct kp_buf *meta_values, size_t meta_count,
		   struct kp_error *err)
{
	const char *names[MAX_META + 1];
	struct kp_buf values[MAX_META + 1];
	struct kp_vstore_commit c;
	struct dirty_list d;
	char stats[16];
	int rc;

	if (v->store == NULL)
		return kp_error_set(err, -ENOTSUP, "the view has no store");
	if (meta_count > MAX_META)
		return kp_error_set(err, KP_EINTERNAL, "too many meta records");
	if (collect_dirty(v, &d) != 0)
		return kp_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < meta_count; i++) {
		names[i] = meta_names[i];
		values[i] = meta_values[i];
	}
	kp_put_le64(stats, v->count);
	kp_put_le64(stats + 8, v->bytes);
	names[meta_count] = STATS_NAME;
	values[meta_count].data = stats;
	values[meta_count].len = sizeof(stats);
	values[meta_count].cap = sizeof(stats);
	memset(&c, 0, sizeof(c));
	c.clear_first = v->cleared;
	c.next = next_change;
	c.rewind = rewind_changes;
	c.arg = &d;
	c.change_count = d.n;
	c.change_bytes = d.bytes;
	c.meta_names = names;
	c.meta_values = values;
	c.meta_count = meta_count + 1;
	rc = kp_vstore_write(v->store, &c, err);
	if (rc == 0)
		mark_committed(v, &d);
	kp_free(d.items);
	return rc;
}

int kp_view_meta(struct kp_view *v, const char *name, struct kp_buf *out)
{
	if (v->store == NULL)
		return 0;
	return kp_vstore_meta_get(v->store, name, out);
}
