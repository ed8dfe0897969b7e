/*
 * view_scan.c - ordered reads of a view (view.h): pages and snapshots.
 *
 * A page merges two sorted runs: copies of the table's entries in range
 * (taken under the view's lock; a tombstone hides the stored key) and the
 * store's keys (read without the lock). The page is built into a buffer
 * first, then visited, so a visitor may call the view.
 */
#include "view.h"
#include "view_internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

/* A copied table entry; key points into copies.bytes once copying ends. */
struct copied {
	size_t off;
	const char *key;
	uint32_t key_len;
	uint32_t value_len;
	bool tomb;
};

struct copies {
	struct kp_buf bytes;
	struct copied *items;
	size_t n;
	size_t cap;
};

/* Entries already packed for visiting: u32 key_len, u32 value_len, bytes. */
struct page {
	struct kp_buf out;
	size_t n;
	size_t limit;
	bool more;
};

struct merge {
	struct copies *mine;
	size_t i;
	struct page *page;
	bool stopped;
	int err;              /* -ENOMEM while building the page */
};

struct kp_view_snap {
	struct copies mine;
	struct kp_vstore *store;
	struct kp_vstore_snap *ss;   /* NULL: nothing stored to read */
};

static int cmp_bytes(const char *a, size_t al, const char *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	return c != 0 ? c : (al > bl) - (al < bl);
}

static int cmp_copied(const void *a, const void *b)
{
	const struct copied *x = a, *y = b;

	return cmp_bytes(x->key, x->key_len, y->key, y->key_len);
}

static void copies_destroy(struct copies *c)
{
	kp_buf_destroy(&c->bytes);
	kp_free(c->items);
	memset(c, 0, sizeof(*c));
}

static bool in_range(const struct vt_entry *e, const char *prefix,
		     size_t prefix_len, const char *after, size_t after_len)
{
	if (e->key_len < prefix_len || memcmp(e->data, prefix, prefix_len) != 0)
		return false;
	return after_len == 0 ||
	       cmp_bytes(e->data, e->key_len, after, after_len) > 0;
}

/* Copies the table's entries in range (the view's lock is held). */
static int copy_matching(struct kp_view *v, const char *prefix,
			 size_t prefix_len, const char *after,
			 size_t after_len, struct copies *c)
{
	for (size_t i = 0; i <= v->t.mask; i++) {
		struct vt_entry *e = v->t.slots[i];
		struct copied *it;

		if (e == NULL ||
		    !in_range(e, prefix, prefix_len, after, after_len))
			continue;
		if (c->n == c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 64;
			struct copied *grown =
				kp_realloc(c->items, cap * sizeof(*grown));

			if (grown == NULL)
				return -ENOMEM;
			c->items = grown;
			c->cap = cap;
		}
		it = &c->items[c->n++];
		it->off = c->bytes.len;
		it->key_len = e->key_len;
		it->value_len = (e->flags & VT_TOMB) ? 0 : e->value_len;
		it->tomb = (e->flags & VT_TOMB) != 0;
		if (kp_buf_append(&c->bytes, e->data,
				  e->key_len + (size_t)it->value_len) != 0)
			return -ENOMEM;
	}
	return 0;
}

static void sort_copies(struct copies *c)
{
	for (size_t i = 0; i < c->n; i++)
		c->items[i].key = c->bytes.data + c->items[i].off;
	if (c->n > 1)
		qsort(c->items, c->n, sizeof(*c->items), cmp_copied);
}

/* Adds an entry to the page; 1 when the page is full (it stops). */
static int emit(struct page *p, const char *key, size_t key_len,
		const char *value, size_t value_len)
{
	char lens[8];

	if (p->n == p->limit) {
		p->more = true;
		return 1;
	}
	kp_put_le32(lens, (uint32_t)key_len);
	kp_put_le32(lens + 4, (uint32_t)value_len);
	if (kp_buf_append(&p->out, lens, 8) != 0 ||
	    kp_buf_append(&p->out, key, key_len) != 0 ||
	    kp_buf_append(&p->out, value, value_len) != 0)
		return -ENOMEM;
	p->n++;
	return 0;
}

static int emit_copied(struct page *p, const struct copied *it)
{
	if (it->tomb)
		return 0;
	return emit(p, it->key, it->key_len, it->key + it->key_len,
		    it->value_len);
}

/* The store's next key: table entries before it first; equal ones win. */
static int merge_store_key(void *arg, const char *key, size_t key_len,
			   const char *value, size_t value_len)
{
	struct merge *m = arg;
	struct copies *c = m->mine;
	int rc, order = 1;

	while (m->i < c->n) {
		const struct copied *it = &c->items[m->i];

		order = cmp_bytes(it->key, it->key_len, key, key_len);
		if (order > 0)
			break;
		m->i++;
		rc = emit_copied(m->page, it);
		if (rc != 0 || order == 0)
			goto out;
	}
	rc = emit(m->page, key, key_len, value, value_len);
out:
	m->stopped = rc != 0;
	if (rc < 0)
		m->err = rc;
	return rc;
}

static int drain(struct merge *m)
{
	int rc = 0;

	while (!m->stopped && m->i < m->mine->n) {
		rc = emit_copied(m->page, &m->mine->items[m->i++]);
		m->stopped = rc != 0;
	}
	return rc < 0 ? rc : 0;
}

/* Visits a built page; returns the number visited. */
static int visit_page(const struct page *p, kp_view_visit_fn visit,
		      void *arg)
{
	size_t pos = 0;
	int visited = 0;

	while (pos < p->out.len && visited < INT32_MAX) {
		uint32_t kl = kp_get_le32(p->out.data + pos);
		uint32_t vl = kp_get_le32(p->out.data + pos + 4);
		const char *k = p->out.data + pos + 8;

		visited++;
		pos += 8 + (size_t)kl + vl;
		if (visit(arg, k, kl, k + kl, vl) != 0)
			break;
	}
	return visited;
}

/* Merges mine (from index start) with store (or its snapshot) into page. */
static int merge_page(struct copies *mine, size_t start,
		      struct kp_vstore *store, struct kp_vstore_snap *ss,
		      const char *prefix, size_t prefix_len, const char *after,
		      size_t after_len, struct page *page)
{
	struct merge m = { mine, start, page, false, 0 };
	int rc = 0;

	if (store != NULL)
		rc = kp_vstore_scan(store, ss, prefix, prefix_len, after,
				    after_len, merge_store_key, &m);
	if (rc < 0)
		return rc;
	if (m.err != 0)
		return m.err;
	return drain(&m);
}

int kp_view_scan_page(struct kp_view *v, const char *prefix,
		      size_t prefix_len, const char *after, size_t after_len,
		      size_t limit, kp_view_visit_fn visit, void *arg,
		      bool *more)
{
	struct copies mine;
	struct page page;
	bool ask_store;
	int rc;

	memset(&mine, 0, sizeof(mine));
	memset(&page, 0, sizeof(page));
	page.limit = limit ? limit : SIZE_MAX;
	if (after == NULL)
		after_len = 0;
	pthread_mutex_lock(&v->lock);
	rc = copy_matching(v, prefix, prefix_len, after, after_len, &mine);
	ask_store = v->store != NULL && !v->cleared;
	pthread_mutex_unlock(&v->lock);
	if (rc == 0) {
		sort_copies(&mine);
		rc = merge_page(&mine, 0, ask_store ? v->store : NULL, NULL,
				prefix, prefix_len, after, after_len, &page);
	}
	copies_destroy(&mine);
	if (rc == 0)
		rc = visit_page(&page, visit, arg);
	if (more != NULL)
		*more = page.more;
	kp_buf_destroy(&page.out);
	return rc;
}

int kp_view_scan(struct kp_view *v, const char *prefix, size_t prefix_len,
		 size_t limit, kp_view_visit_fn visit, void *arg)
{
	return kp_view_scan_page(v, prefix, prefix_len, NULL, 0, limit, visit,
				 arg, NULL);
}

/* ---- snapshots -------------------------------------------------------- */

int kp_view_snap_begin(struct kp_view *v, struct kp_view_snap **out)
{
	struct kp_view_snap *s = kp_calloc(1, sizeof(*s));
	int rc;

	if (s == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&v->lock);
	rc = copy_matching(v, "", 0, NULL, 0, &s->mine);
	if (rc == 0 && v->store != NULL && !v->cleared) {
		s->store = v->store;
		rc = kp_vstore_snap_begin(v->store, &s->ss);
	}
	pthread_mutex_unlock(&v->lock);
	if (rc != 0) {
		kp_view_snap_end(s);
		return rc;
	}
	sort_copies(&s->mine);
	*out = s;
	return 0;
}

/* The first copied entry after `after` (binary search). */
static size_t first_after(const struct copies *c, const char *after,
			  size_t after_len)
{
	size_t lo = 0, hi = c->n;

	if (after_len == 0)
		return 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct copied *it = &c->items[mid];

		if (cmp_bytes(it->key, it->key_len, after, after_len) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int kp_view_snap_page(struct kp_view_snap *s, const char *after,
		      size_t after_len, size_t limit, kp_view_visit_fn visit,
		      void *arg, bool *more)
{
	struct page page;
	int rc;

	memset(&page, 0, sizeof(page));
	page.limit = limit ? limit : SIZE_MAX;
	if (after == NULL)
		after_len = 0;
	rc = merge_page(&s->mine, first_after(&s->mine, after, after_len),
			s->ss != NULL ? s->store : NULL, s->ss, "", 0, after,
			after_len, &page);
	if (rc == 0)
		rc = visit_page(&page, visit, arg);
	if (more != NULL)
		*more = page.more;
	kp_buf_destroy(&page.out);
	return rc;
}

void kp_view_snap_end(struct kp_view_snap *s)
{
	if (s == NULL)
		return;
	kp_vstore_snap_end(s->ss);
	copies_destroy(&s->mine);
	kp_free(s);
}
