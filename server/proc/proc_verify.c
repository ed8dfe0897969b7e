/*
 * proc_verify.c - replay in a scratch version, then compare outputs by
 * provenance and views by snapshot.
 */
#include "proc_verify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proc_version.h"
#include "base/alloc.h"
#include "base/logging.h"
#include "base/mp.h"
#include "log/batch.h"
#include "log/store.h"
#include "wire/slot.h"

/* One output, as offsets into an arena (the arena may move). */
struct entry {
	size_t itopic;      /* input topic name (NUL-terminated) */
	uint32_t ipart;
	uint64_t ioff;
	size_t otopic;      /* logical output topic (NUL-terminated) */
	size_t key;         /* key bytes */
	uint32_t key_len;   /* UINT32_MAX: no key */
	size_t value;       /* msgpack value */
	uint32_t value_len;
};

struct side {
	struct kp_buf arena;
	struct entry *items;
	size_t count;
	size_t cap;
};

/* The arena being sorted, for qsort's comparator. */
static __thread const char *sort_arena;

static size_t put(struct kp_buf *arena, const void *p, size_t len, int nul)
{
	size_t at = arena->len;

	kp_buf_append(arena, p, len);
	if (nul)
		kp_buf_append(arena, "", 1);
	return at;
}

static int add(struct side *s, const char *itopic, uint32_t ipart,
	       uint64_t ioff, const char *otopic, size_t otopic_len,
	       const char *key, uint32_t key_len, const char *value,
	       uint32_t value_len)
{
	struct entry *e;

	if (s->count == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		struct entry *grown = kp_realloc(s->items, cap * sizeof(*grown));

		if (grown == NULL)
			return -ENOMEM;
		s->items = grown;
		s->cap = cap;
	}
	e = &s->items[s->count++];
	e->itopic = put(&s->arena, itopic, strlen(itopic), 1);
	e->ipart = ipart;
	e->ioff = ioff;
	e->otopic = put(&s->arena, otopic, otopic_len, 1);
	e->key_len = key ? key_len : UINT32_MAX;
	e->key = put(&s->arena, key ? key : "", key ? key_len : 0, 0);
	e->value = put(&s->arena, value, value_len, 0);
	e->value_len = value_len;
	return 0;
}

/* Byte order, shorter first on a tie; either side may be (NULL, 0). */
static int cmp_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = alen < blen ? alen : blen;
	int c = n > 0 ? memcmp(a, b, n) : 0;

	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* Orders by input position first: the first difference is the earliest. */
static int cmp_entry_in(const char *a, const struct entry *x,
			const char *b, const struct entry *y)
{
	int c = strcmp(a + x->itopic, b + y->itopic);

	if (c != 0)
		return c;
	if (x->ipart != y->ipart)
		return x->ipart < y->ipart ? -1 : 1;
	if (x->ioff != y->ioff)
		return x->ioff < y->ioff ? -1 : 1;
	c = strcmp(a + x->otopic, b + y->otopic);
	if (c != 0)
		return c;
	c = cmp_bytes(a + x->key, x->key_len == UINT32_MAX ? 0 : x->key_len,
		      b + y->key, y->key_len == UINT32_MAX ? 0 : y->key_len);
	if (c != 0)
		return c;
	return cmp_bytes(a + x->value, x->value_len, b + y->value,
			 y->value_len);
}

static int cmp_sort(const void *pa, const void *pb)
{
	return cmp_entry_in(sort_arena, pa, sort_arena, pb);
}

/* A side with no output has no items array: nothing to sort. */
static void side_sort(struct side *s)
{
	if (s->count < 2)
		return;
	sort_arena = s->arena.data;
	qsort(s->items, s->count, sizeof(*s->items), cmp_sort);
}

static void side_destroy(struct side *s)
{
	kp_buf_destroy(&s->arena);
	kp_free(s->items);
}

/* ---- starting --------------------------------------------------------- */

static uint64_t offset_at(struct kp_proc *p, const struct pv_cursor *c,
			  enum kp_proc_from from, int64_t value)
{
	struct kp_topic_partition *tp = kp_pv_find_tp(p->owner, c->topic,
						      c->partition);

	return tp != NULL ? kp_pv_position(tp, from, value) : 0;
}

static void fail(struct kp_slot **pslot, int code, const char *message)
{
	struct kp_slot *slot = *pslot;

	*pslot = NULL;
	if (slot == NULL)
		return;
	kp_slot_set_error(slot, code, message);
	if (--slot->waits == 0)
		kp_slot_ready(slot);
	kp_slot_unref(slot);
}

void kp_proc_verify_drop_snapshot(struct kp_proc *p)
{
	/* Without its snapshot the view cannot be compared. */
	kp_view_snap_end(p->verify_snap);
	p->verify_snap = NULL;
	kp_view_delete(p->verify_view);
	p->verify_view = NULL;
}

/*
 * Opens view's store (not v->view: a second handle for reading) in dir.
 * Returns 0 or an error.
 */
static int open_store(struct kp_proc *p, const char *dir, struct kp_view **out)
{
	struct kp_error err;

	kp_error_clear(&err);
	if (kp_view_open(out, dir, p->owner->view_cache_bytes,
			 p->owner->view_max_bytes, &err) != 0) {
		kp_log_warn("proc", "processor %s: verify cannot open %s: %s",
			    p->def.name, dir, err.msg);
		return -1;
	}
	return 0;
}

/*
 * The live view as it is now, held for the comparison, from a handle of
 * its own on the store its worker committed just before
 * (kp_proc_verify_start). Never kappad's v->view: that one is closed and
 * opened again as the version's worker comes and goes.
 */
static int snapshot_live(struct kp_proc *p, struct proc_version *live)
{
	char dir[4200];

	if (live->wk == NULL)
		return -1;
	kp_pv_view_dir(live, dir, sizeof(dir));
	if (open_store(p, dir, &p->verify_view) != 0)
		return -1;
	return kp_view_snap_begin(p->verify_view, &p->verify_snap);
}

/*
 * true when the scratch s would start an input before the point where the
 * live version followed it onto the physical topic it reads now: up to
 * there the live version read another topic, and a run over this one
 * cannot be compared with it (why says so).
 */
static bool spans_move(struct kp_proc *p, const struct proc_version *live,
		       struct proc_version *s, char *why, size_t cap)
{
	const struct pv_cursor *c;
	uint32_t i;
	uint64_t at;

	if (!kp_pv_order_choose(s, &i, &at))
		return false;
	c = &s->cursors[i];
	snprintf(why, cap,
		 "cannot compare from before an input's switch: %s v%u read another physical topic before %s partition %u offset %llu; verify --from a time after the switch",
		 p->def.name, live->number, c->topic, c->partition,
		 (unsigned long long)at);
	return true;
}

void kp_proc_verify_start(struct kp_proc *p, enum kp_proc_from from,
			  int64_t value, bool to_set, int64_t to_ts,
			  struct kp_slot **pslot)
{
	struct proc_version *live = p->live, *s;
	bool from_start = from == KP_FROM_EARLIEST;
	char why[KP_ERROR_MSG_MAX];

	/* A verify that waited for the live version finds it stopped. */
	if (live->state == PV_FAILED || !live->inst_started ||
	    live->wk == NULL) {
		snprintf(why, sizeof(why),
			 "processor %s v%u stopped before the verify could start: %s",
			 p->def.name, live->number,
			 live->reason[0] ? live->reason : "it is not running");
		fail(pslot, KP_ESTATE, why);
		return;
	}

	/* The live view is compared as committed: commit it first. */
	if (from_start && !to_set && live->wk != NULL &&
	    live->since_checkpoint > 0) {
		if (live->checkpoint_error[0] != '\0') {
			fail(pslot, KP_ESTATE, "cannot verify the view: its checkpoints fail");
			return;
		}
		if (kp_pv_checkpoint_async(live)) {
			p->pending = PENDING_VERIFY;   /* again once it is done */
			return;
		}
	}

	if (live->cursor_count > KP_PROC_MAX_TOPICS * 64) {
		fail(pslot, KP_ETOOLARGE, "too many input partitions");
		return;
	}
	s = kp_pv_new(p, p->owner, live->number);
	if (s == NULL) {
		fail(pslot, -ENOMEM, "out of memory");
		return;
	}
	s->role = PV_SCRATCH;
	s->code = live->code;
	kp_proc_code_ref(s->code);
	snprintf(s->source, sizeof(s->source), "%s", live->source);
	snprintf(s->hash, sizeof(s->hash), "%s", live->hash);
	s->cursors = kp_calloc(live->cursor_count ? live->cursor_count : 1,
			       sizeof(*s->cursors));
	if (s->cursors == NULL) {
		kp_pv_free(s);
		fail(pslot, -ENOMEM, "out of memory");
		return;
	}
	for (uint32_t i = 0; i < live->cursor_count; i++) {
		struct pv_cursor *c = &s->cursors[i];

		*c = live->cursors[i];
		c->moves_before = 0;
		c->offset = offset_at(p, &live->cursors[i], from, value);
		c->stop = live->cursors[i].offset;
		if (to_set) {
			uint64_t t = offset_at(p, &live->cursors[i],
					       KP_FROM_TIME, to_ts);

			if (t < c->stop)
				c->stop = t;
		}
		if (c->offset > c->stop)
			c->offset = c->stop;
		p->reset_before[i] = c->offset;
	}
	s->cursor_count = live->cursor_count;
	if (spans_move(p, live, s, why, sizeof(why))) {
		kp_pv_free(s);
		fail(pslot, KP_ESTATE, why);
		return;
	}
	kp_proc_verify_drop_snapshot(p);
	/* The view is compared (verify_snap kept) only for a whole replay. */
	if (!from_start || to_set || snapshot_live(p, live) != 0)
		kp_proc_verify_drop_snapshot(p);
	p->scratch = s;
	kp_log_info("proc", "processor %s: verifying v%u in a scratch instance",
		    p->def.name, live->number);
	kp_pv_start(s, false);
}

/* ---- comparing -------------------------------------------------------- */

/* The scratch cursor an input position belongs to, or NULL. */
static const struct pv_cursor *in_range(const struct proc_version *s,
					const char *topic, size_t topic_len,
					uint32_t part, uint64_t offset,
					uint64_t *start)
{
	for (uint32_t i = 0; i < s->cursor_count; i++) {
		const struct pv_cursor *c = &s->cursors[i];

		if (c->partition == part && strlen(c->topic) == topic_len &&
		    memcmp(c->topic, topic, topic_len) == 0 &&
		    offset >= start[i] && offset < c->stop)
			return c;
	}
	return NULL;
}

/* Collects into a side the live outputs whose input is in the range. */
struct collect {
	const struct proc_version *scratch;
	uint64_t *start;             /* scratch cursors' first offsets */
	const char *logical;         /* the output's logical name */
	struct side *live;
};

static int on_live_output(void *arg, const struct kp_record *rec,
			  const struct kp_provenance *prov)
{
	struct collect *c = arg;
	char topic[201];

	if (in_range(c->scratch, prov->topic.ptr, prov->topic.len,
		     prov->partition, prov->offset, c->start) == NULL)
		return 0;
	snprintf(topic, sizeof(topic), "%.*s", (int)prov->topic.len,
		 prov->topic.ptr);
	return add(c->live, topic, prov->partition, prov->offset, c->logical,
		   strlen(c->logical), rec->key, rec->key_len, rec->value,
		   rec->value_len);
}

static int collect_live(struct kp_proc *p, struct proc_version *s,
			uint64_t *start, struct side *live)
{
	struct kp_catalog *cat = p->owner->store->catalog;
	int rc = 0;

	for (uint32_t i = 0; i < p->def.output_count && rc == 0; i++) {
		char physical[256];
		struct kp_topic *t;

		kp_pv_physical_name(p->def.outputs[i], s->number, physical,
				    sizeof(physical));
		t = kp_catalog_find_physical(cat, physical, strlen(physical));
		struct collect c = { s, start, p->def.outputs[i], live };

		for (uint32_t k = 0; t != NULL && k < t->config.partitions &&
				     rc == 0;
		     k++) {
			struct kp_partition_stats st;

			kp_partition_stats(t->parts[k].log, &st);
			rc = kp_pv_scan_outputs(s, &t->parts[k],
						st.start_offset,
						on_live_output, &c);
		}
	}
	return rc;
}

static int collect_scratch(const struct proc_version *s, struct side *out)
{
	const char *p, *end;
	int rc = 0;

	if (s->captured.len == 0)
		return 0;
	p = s->captured.data;
	end = p + s->captured.len;
	while (p + 24 <= end && rc == 0) {
		uint32_t index = kp_get_le32(p);
		uint64_t offset = kp_get_le64(p + 4);
		uint32_t tlen = kp_get_le32(p + 12), klen, vlen;
		const char *topic = p + 16, *key;

		p = topic + tlen;
		klen = kp_get_le32(p);
		key = klen == UINT32_MAX ? NULL : p + 4;
		p += 4 + (key ? klen : 0);
		vlen = kp_get_le32(p);
		rc = add(out, s->cursors[index].topic,
			 s->cursors[index].partition, offset, topic, tlen, key,
			 klen, p + 4, vlen);
		p += 4 + vlen;
	}
	return rc;
}

/* The verdict being written. */
struct verdict {
	struct kp_response r;
	bool identical;
};

static void pack_value(struct kp_response *r, const char *key,
		       const char *value, uint32_t len)
{
	kp_response_key(r, key);
	if (value == NULL)
		msgpack_pack_nil(&r->pk);
	else
		msgpack_pack_bin_body(&r->pk, value, len);
}

static void pack_output_diff(struct kp_response *r, const struct side *a,
			     const struct entry *x, const struct side *b,
			     const struct entry *y)
{
	const struct entry *e = x ? x : y;
	const char *arena = x ? a->arena.data : b->arena.data;

	msgpack_pack_map(&r->pk, 7);
	kp_response_key(r, "kind");
	kp_response_str(r, "output", 6);
	kp_response_key(r, "topic");
	kp_response_str(r, arena + e->itopic, strlen(arena + e->itopic));
	kp_response_key(r, "partition");
	msgpack_pack_uint32(&r->pk, e->ipart);
	kp_response_key(r, "offset");
	msgpack_pack_uint64(&r->pk, e->ioff);
	kp_response_key(r, "output_topic");
	kp_response_str(r, arena + e->otopic, strlen(arena + e->otopic));
	pack_value(r, "live", x ? a->arena.data + x->value : NULL,
		   x ? x->value_len : 0);
	pack_value(r, "replay", y ? b->arena.data + y->value : NULL,
		   y ? y->value_len : 0);
}

/*
 * Finds the first difference of the sorted sides: returns 1 with *x / *y
 * (either may be NULL when one side has an output the other lacks), 0 when
 * they are equal.
 */
static int first_difference(const struct side *live, const struct side *replay,
			    const struct entry **x, const struct entry **y)
{
	size_t i = 0, j = 0;

	while (i < live->count || j < replay->count) {
		const struct entry *a = i < live->count ? &live->items[i] : NULL;
		const struct entry *b = j < replay->count ? &replay->items[j]
							 : NULL;
		int c;

		if (a == NULL || b == NULL) {
			*x = a;
			*y = b;
			return 1;
		}
		c = cmp_entry_in(live->arena.data, a, replay->arena.data, b);
		if (c == 0) {
			i++;
			j++;
			continue;
		}
		/* Report the earlier input position, both values there. */
		*x = a;
		*y = b;
		if (a->ioff != b->ioff || a->ipart != b->ipart) {
			if (c < 0)
				*y = NULL;
			else
				*x = NULL;
		}
		return 1;
	}
	return 0;
}

/* One side of a view comparison: pages of a snapshot, read in turn. */
struct view_side {
	struct kp_view_snap *snap;
	struct kp_buf page;      /* u32 key_len, u32 value_len, key, value */
	size_t pos;
	struct kp_buf last;      /* the last key of the page */
	bool more;               /* pages follow this one */
	bool started;
	int err;
};

#define VIEW_PAGE 1024

static int keep_entry(void *arg, const char *key, size_t key_len,
		      const char *value, size_t value_len)
{
	struct view_side *s = arg;
	char lens[8];

	kp_put_le32(lens, (uint32_t)key_len);
	kp_put_le32(lens + 4, (uint32_t)value_len);
	if (kp_buf_append(&s->page, lens, 8) != 0 ||
	    kp_buf_append(&s->page, key, key_len) != 0 ||
	    kp_buf_append(&s->page, value, value_len) != 0) {
		s->err = -ENOMEM;
		return 1;
	}
	kp_buf_reset(&s->last);
	kp_buf_append(&s->last, key, key_len);
	return 0;
}

/* The side's next entry: 1, 0 at the end, or an error. */
static int side_next(struct view_side *s, const char **key, uint32_t *klen,
		     const char **value, uint32_t *vlen)
{
	int rc;

	if (s->pos >= s->page.len) {
		if (s->started && !s->more)
			return 0;
		kp_buf_reset(&s->page);
		s->pos = 0;
		rc = kp_view_snap_page(s->snap, s->last.data, s->last.len,
				       VIEW_PAGE, keep_entry, s, &s->more);
		s->started = true;
		if (rc < 0)
			return rc;
		if (s->err != 0)
			return s->err;
		if (s->page.len == 0)
			return 0;
	}
	*klen = kp_get_le32(s->page.data + s->pos);
	*vlen = kp_get_le32(s->page.data + s->pos + 4);
	*key = s->page.data + s->pos + 8;
	*value = *key + *klen;
	s->pos += 8 + (size_t)*klen + *vlen;
	return 1;
}

/*
 * Compares two views in key order, a page at a time (so neither is held
 * in memory); the first difference is packed into r. Returns 1 when they
 * differ, 0 when equal, or an error.
 */
static int view_difference(struct kp_response *r, struct kp_view_snap *live,
			   struct kp_view_snap *replay)
{
	struct view_side a = { .snap = live }, b = { .snap = replay };
	const char *ka = NULL, *va = NULL, *kb = NULL, *vb = NULL;
	uint32_t kal = 0, val = 0, kbl = 0, vbl = 0;
	int ha, hb, rc = 0;

	ha = side_next(&a, &ka, &kal, &va, &val);
	hb = side_next(&b, &kb, &kbl, &vb, &vbl);
	while (ha > 0 || hb > 0) {
		int c = ha <= 0 ? 1 : hb <= 0 ? -1 : cmp_bytes(ka, kal, kb, kbl);

		if (c == 0 && cmp_bytes(va, val, vb, vbl) == 0) {
			ha = side_next(&a, &ka, &kal, &va, &val);
			hb = side_next(&b, &kb, &kbl, &vb, &vbl);
			continue;
		}
		msgpack_pack_map(&r->pk, 4);
		kp_response_key(r, "kind");
		kp_response_str(r, "view", 4);
		kp_response_key(r, "key");
		if (c <= 0)
			kp_response_str(r, ka, kal);
		else
			kp_response_str(r, kb, kbl);
		pack_value(r, "live", c <= 0 ? va : NULL, val);
		pack_value(r, "replay", c >= 0 ? vb : NULL, vbl);
		rc = 1;
		break;
	}
	if (rc == 0 && (ha < 0 || hb < 0))
		rc = ha < 0 ? ha : hb;
	kp_buf_destroy(&a.page);
	kp_buf_destroy(&a.last);
	kp_buf_destroy(&b.page);
	kp_buf_destroy(&b.last);
	return rc;
}

/*
 * Compares the live view at verify start with the scratch's, packing the
 * first difference into diff. Returns 1 when they differ, 0, or an error.
 */
static int compare_views(struct kp_proc *p, struct proc_version *scratch,
			 struct kp_buf *diff)
{
	struct kp_view_snap *replay = NULL;
	struct kp_view *store = NULL;
	struct kp_response tmp;
	char dir[4200];
	int rc;

	/* Its worker committed it and is gone: read the store it left. */
	kp_pv_view_dir(scratch, dir, sizeof(dir));
	if (scratch->view == NULL && open_store(p, dir, &store) != 0)
		return -EIO;
	rc = kp_view_snap_begin(store != NULL ? store : scratch->view, &replay);
	if (rc != 0) {
		kp_view_delete(store);
		return rc;
	}
	memset(&tmp, 0, sizeof(tmp));
	tmp.out = diff;
	msgpack_packer_init(&tmp.pk, diff, kp_buf_msgpack_write);
	rc = view_difference(&tmp, p->verify_snap, replay);
	kp_view_snap_end(replay);
	kp_view_delete(store);
	return rc;
}

void kp_proc_verify_abort(struct kp_proc *p, struct proc_version *scratch)
{
	char why[KP_ERROR_MSG_MAX];

	snprintf(why, sizeof(why), "the verify's replay of v%u stopped: %s",
		 scratch->number,
		 scratch->reason[0] ? scratch->reason : "it failed");
	kp_log_warn("proc", "processor %s: %s", p->def.name, why);
	fail(&p->pending_slot, KP_ESTATE, why);
	kp_proc_verify_drop_snapshot(p);
	if (p->scratch == scratch)
		p->scratch = NULL;
	kp_pv_free(scratch);
}

void kp_proc_verify_finish(struct kp_proc *p, struct proc_version *scratch,
			   struct kp_slot **pslot)
{
	struct kp_slot *slot = *pslot;
	struct side live, replay;
	const struct entry *x = NULL, *y = NULL;
	struct kp_buf diff;
	struct kp_response r;
	int outputs_differ = 0, view_differs = 0, rc;

	*pslot = NULL;
	if (slot == NULL)
		goto end_snap;
	memset(&live, 0, sizeof(live));
	memset(&replay, 0, sizeof(replay));
	kp_buf_init(&diff);
	rc = collect_live(p, scratch, p->reset_before, &live);
	if (rc == 0)
		rc = collect_scratch(scratch, &replay);
	if (rc != 0) {
		*pslot = slot;
		fail(pslot, rc, "out of memory while verifying");
		goto done;
	}
	side_sort(&live);
	side_sort(&replay);
	outputs_differ = first_difference(&live, &replay, &x, &y);
	if (!outputs_differ && p->verify_snap != NULL) {
		view_differs = compare_views(p, scratch, &diff);
		if (view_differs < 0) {
			*pslot = slot;
			fail(pslot, view_differs,
			     "cannot read a view while verifying");
			goto done;
		}
	}
	kp_buf_reset(&slot->resp);
	kp_response_begin(&r, &slot->resp, slot->id, 5);
	kp_response_key(&r, "identical");
	if (outputs_differ || view_differs)
		msgpack_pack_false(&r.pk);
	else
		msgpack_pack_true(&r.pk);
	kp_response_key(&r, "records");
	msgpack_pack_uint64(&r.pk, scratch->processed);
	kp_response_key(&r, "outputs");
	msgpack_pack_uint64(&r.pk, replay.count);
	kp_response_key(&r, "view_compared");
	if (p->verify_snap != NULL)
		msgpack_pack_true(&r.pk);
	else
		msgpack_pack_false(&r.pk);
	kp_response_key(&r, "difference");
	if (outputs_differ)
		pack_output_diff(&r, &live, x, &replay, y);
	else if (view_differs)
		kp_buf_append(&slot->resp, diff.data, diff.len);
	else
		msgpack_pack_nil(&r.pk);
	kp_response_finish(&r);
	kp_log_info("proc", "processor %s: verify of v%u: %s", p->def.name,
		    scratch->number,
		    outputs_differ || view_differs ? "different" : "identical");
	if (--slot->waits == 0)
		kp_slot_ready(slot);
	kp_slot_unref(slot);
done:
	kp_buf_destroy(&diff);
	side_destroy(&live);
	side_destroy(&replay);
end_snap:
	kp_proc_verify_drop_snapshot(p);
}
