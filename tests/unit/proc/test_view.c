/*
 * test_view.c - views: get/put/incr/del, growth and deletion over many
 * keys, ordered prefix scans that may re-enter the view, in memory and on
 * a store (with and without commits between the steps); commits that
 * persist across a reopen, tombstones, clear and discard, scan pages, the
 * snapshots verify compares, a damaged store refused, old snapshots taken
 * over (every corruption refused with the view unchanged), failed
 * allocations and a reader beside the writer.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>
#include <pthread.h>
#include <sched.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/crc32c.h"
#include "base/error.h"
#include "base/fsutil.h"
#include "base/mp.h"
#include "proc/view.h"
#include "wire/proto.h"

/* How a test's views are made (its cmocka prestate). */
enum mode { IN_MEMORY, STORED, STORED_COMMITS };
static const enum mode in_memory = IN_MEMORY, stored = STORED,
		       stored_commits = STORED_COMMITS;

/* The stores the tests opened, to remove them with their views. */
static char test_root[256];
static struct {
	struct kp_view *v;
	char dir[300];
} opened[64];

static struct kp_view *open_stored(const char *dir, size_t cache)
{
	struct kp_view *v = NULL;
	struct kp_error err;

	kp_error_clear(&err);
	if (kp_view_open(&v, dir, cache, 1ull << 30, &err) != 0)
		fail_msg("kp_view_open %s: %s", dir, err.msg);
	return v;
}

/* A new stored view in a fresh directory, remembered for drop_view. */
static struct kp_view *new_stored(size_t cache)
{
	static int n;
	int i = n++ % 64;

	snprintf(opened[i].dir, sizeof(opened[i].dir), "%s/v%d", test_root, n);
	opened[i].v = open_stored(opened[i].dir, cache);
	return opened[i].v;
}

static struct kp_view *new_view(void **state)
{
	struct kp_view *v = NULL;

	if (state != NULL && *state != NULL &&
	    *(const enum mode *)*state != IN_MEMORY)
		return new_stored(0);
	assert_int_equal(kp_view_new(&v), 0);
	assert_non_null(v);
	return v;
}

/* Deletes v and, when it is stored, its directory. */
static void drop_view(struct kp_view *v)
{
	for (int i = 0; i < 64; i++) {
		if (opened[i].v == v && v != NULL) {
			kp_view_delete(v);
			kp_file_remove_tree(opened[i].dir);
			opened[i].v = NULL;
			return;
		}
	}
	kp_view_delete(v);
}

static void commit(struct kp_view *v)
{
	struct kp_error err;

	kp_error_clear(&err);
	if (kp_view_commit(v, NULL, NULL, 0, &err) != 0)
		fail_msg("commit: %s", err.msg);
}

/* Between steps of a test: commits when the test runs with commits. */
static void step(struct kp_view *v, void **state)
{
	if (state != NULL && *state != NULL &&
	    *(const enum mode *)*state == STORED_COMMITS)
		commit(v);
}

static void put_str(struct kp_view *v, const char *key, const char *value)
{
	assert_int_equal(kp_view_put(v, key, strlen(key), value, strlen(value)),
			 0);
}

/* Asserts key holds exactly the bytes value (NULL: absent). */
static void expect(struct kp_view *v, const char *key, const char *value,
		   size_t value_len)
{
	struct kp_buf b;
	int rc;

	kp_buf_init(&b);
	rc = kp_view_get(v, key, strlen(key), &b);
	if (value == NULL) {
		assert_int_equal(rc, 0);
	} else {
		assert_int_equal(rc, 1);
		assert_int_equal(b.len, value_len);
		assert_memory_equal(b.data, value, value_len);
	}
	kp_buf_destroy(&b);
}

/* msgpack-c's encoding of an int64, the reference for incr's output. */
static size_t pack_int(int64_t x, char *out)
{
	struct kp_buf b;
	msgpack_packer pk;
	size_t n;

	kp_buf_init(&b);
	msgpack_packer_init(&pk, &b, kp_buf_msgpack_write);
	msgpack_pack_int64(&pk, x);
	n = b.len;
	memcpy(out, b.data, n);
	kp_buf_destroy(&b);
	return n;
}

static void test_put_get_del(void **state)
{
	struct kp_view *v = new_view(state);
	struct kp_buf b;

	kp_buf_init(&b);
	assert_int_equal(kp_view_get(v, "a", 1, &b), 0);
	put_str(v, "a", "\xa1x");
	put_str(v, "b", "\x01");
	step(v, state);
	expect(v, "a", "\xa1x", 2);
	assert_int_equal(kp_view_count(v), 2);
	assert_int_equal(kp_view_bytes(v), 1 + 2 + 1 + 1);
	put_str(v, "a", "\xaf" "0123456789abcde");
	expect(v, "a", "\xaf" "0123456789abcde", 16);
	assert_int_equal(kp_view_bytes(v), 1 + 16 + 1 + 1);
	put_str(v, "a", "\xc0");
	step(v, state);
	expect(v, "a", "\xc0", 1);
	assert_int_equal(kp_view_count(v), 2);
	assert_int_equal(kp_view_del(v, "a", 1), 1);
	step(v, state);
	assert_int_equal(kp_view_del(v, "a", 1), 0);
	expect(v, "a", NULL, 0);
	assert_int_equal(kp_view_count(v), 1);
	assert_int_equal(kp_view_bytes(v), 2);
	assert_int_equal(kp_view_put(v, "", 0, "\x07", 1), 0);
	assert_int_equal(kp_view_get(v, "", 0, &b), 1);
	assert_int_equal(b.data[0], 7);
	assert_int_equal(kp_view_put(v, "k\0z", 3, "\x08", 1), 0);
	assert_int_equal(kp_view_get(v, "k\0y", 3, &b), 0);
	assert_int_equal(kp_view_get(v, "k\0z", 3, &b), 1);
	step(v, state);
	kp_view_clear(v);
	assert_int_equal(kp_view_count(v), 0);
	assert_int_equal(kp_view_bytes(v), 0);
	expect(v, "b", NULL, 0);
	step(v, state);
	expect(v, "b", NULL, 0);
	assert_int_equal(kp_view_count(v), 0);
	/* Keys past the limit are refused, never cut. */
	{
		char big[KP_VIEW_MAX_KEY + 2];

		memset(big, 'x', sizeof(big));
		assert_int_equal(kp_view_put(v, big, KP_VIEW_MAX_KEY, "\x01",
					     1), 0);
		assert_int_equal(kp_view_put(v, big, KP_VIEW_MAX_KEY + 1,
					     "\x01", 1), KP_ETOOLARGE);
		step(v, state);
		assert_int_equal(kp_view_get(v, big, KP_VIEW_MAX_KEY, &b), 1);
	}
	kp_buf_destroy(&b);
	drop_view(v);
	kp_view_delete(NULL);
}

static void test_incr(void **state)
{
	static const int64_t steps[] = {
		1, 126, 1, 127, 1, 65000, 1, 1LL << 32, -(1LL << 33), -120,
		-100000, INT64_MAX / 2, -(INT64_MAX / 2) - 5,
	};
	struct kp_view *v = new_view(state);
	int64_t r = 0, sum = 0;
	char want[16];
	size_t n;

	assert_int_equal(kp_view_incr(v, "c", 1, 5, &r), 0);
	assert_int_equal(r, 5);
	expect(v, "c", "\x05", 1);
	assert_int_equal(kp_view_incr(v, "c", 1, -10, &r), 0);
	assert_int_equal(r, -5);
	expect(v, "c", "\xfb", 1);
	assert_int_equal(kp_view_del(v, "c", 1), 1);
	step(v, state);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		sum += steps[i];
		assert_int_equal(kp_view_incr(v, "c", 1, steps[i], &r), 0);
		assert_int_equal(r, sum);
		n = pack_int(sum, want);
		if (i % 3 == 0)
			step(v, state);
		expect(v, "c", want, n);
	}
	/* Any msgpack integer encoding is accepted as the starting value. */
	assert_int_equal(kp_view_put(v, "w", 1, "\xd3\0\0\0\0\0\0\0\x05", 9), 0);
	assert_int_equal(kp_view_incr(v, "w", 1, 1, &r), 0);
	assert_int_equal(r, 6);
	expect(v, "w", "\x06", 1);
	assert_int_equal(kp_view_put(v, "w", 1, "\xd0\x80", 2), 0);
	assert_int_equal(kp_view_incr(v, "w", 1, 0, &r), 0);
	assert_int_equal(r, -128);
	/* Not integers: the value stays. */
	put_str(v, "s", "\xa1x");
	assert_int_equal(kp_view_incr(v, "s", 1, 1, &r), KP_EBADREQUEST);
	expect(v, "s", "\xa1x", 2);
	put_str(v, "f", "\xca\x3f\x80\0\0");
	assert_int_equal(kp_view_incr(v, "f", 1, 1, &r), KP_EBADREQUEST);
	assert_int_equal(kp_view_put(v, "u", 1,
				     "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9),
			 0);
	assert_int_equal(kp_view_incr(v, "u", 1, -1, &r), KP_EBADREQUEST);
	/* Overflow is refused and leaves the value. */
	assert_int_equal(kp_view_incr(v, "o", 1, INT64_MAX, &r), 0);
	assert_int_equal(kp_view_incr(v, "o", 1, 1, &r), KP_EBADREQUEST);
	n = pack_int(INT64_MAX, want);
	expect(v, "o", want, n);
	assert_int_equal(kp_view_incr(v, "m", 1, INT64_MIN, &r), 0);
	assert_int_equal(kp_view_incr(v, "m", 1, -1, &r), KP_EBADREQUEST);
	assert_int_equal(r, INT64_MIN);
	drop_view(v);
}

static void test_many_keys(void **state)
{
	enum { N = 20000 };
	struct kp_view *v = new_view(state);
	char key[32];
	int64_t r;

	for (int i = 0; i < N; i++) {
		int n = snprintf(key, sizeof(key), "key-%d", i);

		assert_int_equal(kp_view_incr(v, key, (size_t)n, i, &r), 0);
	}
	assert_int_equal(kp_view_count(v), N);
	step(v, state);
	for (int i = 0; i < N; i += 2) {
		int n = snprintf(key, sizeof(key), "key-%d", i);

		assert_int_equal(kp_view_del(v, key, (size_t)n), 1);
	}
	assert_int_equal(kp_view_count(v), N / 2);
	step(v, state);
	assert_int_equal(kp_view_count(v), N / 2);
	for (int i = 0; i < N; i++) {
		int n = snprintf(key, sizeof(key), "key-%d", i);
		int rc = kp_view_incr(v, key, (size_t)n, 0, &r);

		assert_int_equal(rc, 0);
		assert_int_equal(r, i % 2 ? i : 0);
	}
	assert_int_equal(kp_view_count(v), N);
	drop_view(v);
}

struct seen {
	char keys[16][16];
	int count;
	int stop_at;
	struct kp_view *v;
};

static int on_visit(void *arg, const char *key, size_t key_len,
		    const char *value, size_t value_len)
{
	struct seen *s = arg;

	assert_true(key_len < 16);
	memcpy(s->keys[s->count], key, key_len);
	s->keys[s->count][key_len] = '\0';
	assert_int_equal(value_len, 1);
	s->count++;
	if (s->v != NULL) {
		/* Visits run without the lock: the view may be used here. */
		assert_int_equal(kp_view_put(s->v, "zz-added", 8, "\x01", 1), 0);
		assert_int_equal(kp_view_del(s->v, "user:b", 6), s->count == 1);
	}
	return s->count == s->stop_at;
}

static void test_scan(void **state)
{
	static const char *const keys[] = { "user:c", "user:a", "other",
					    "user:b", "user", "user:aa",
					    "usea" };
	struct kp_view *v = new_view(state);
	struct seen s;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		put_str(v, keys[i], "\x01");
		if (i == 3)
			step(v, state);
	}
	memset(&s, 0, sizeof(s));
	assert_int_equal(kp_view_scan(v, "user:", 5, 0, on_visit, &s), 4);
	assert_string_equal(s.keys[0], "user:a");
	assert_string_equal(s.keys[1], "user:aa");
	assert_string_equal(s.keys[2], "user:b");
	assert_string_equal(s.keys[3], "user:c");
	memset(&s, 0, sizeof(s));
	assert_int_equal(kp_view_scan(v, "", 0, 0, on_visit, &s), 7);
	assert_string_equal(s.keys[0], "other");
	assert_string_equal(s.keys[1], "usea");
	assert_string_equal(s.keys[2], "user");
	memset(&s, 0, sizeof(s));
	assert_int_equal(kp_view_scan(v, "user", 4, 2, on_visit, &s), 2);
	assert_string_equal(s.keys[1], "user:a");
	memset(&s, 0, sizeof(s));
	s.stop_at = 3;
	assert_int_equal(kp_view_scan(v, "user", 4, 0, on_visit, &s), 3);
	memset(&s, 0, sizeof(s));
	assert_int_equal(kp_view_scan(v, "nope", 4, 0, on_visit, &s), 0);
	/* The visit changes the view; it still sees the copy it was given. */
	memset(&s, 0, sizeof(s));
	s.v = v;
	assert_int_equal(kp_view_scan(v, "user:", 5, 0, on_visit, &s), 4);
	assert_string_equal(s.keys[2], "user:b");
	expect(v, "user:b", NULL, 0);
	expect(v, "zz-added", "\x01", 1);
	drop_view(v);
}

static void test_prev_variants(void **state)
{
	struct kp_view *v = new_view(state);
	struct kp_buf prev;
	int64_t r;

	kp_buf_init(&prev);
	assert_int_equal(kp_view_put_prev(v, "k", 1, "\xa1x", 2, &prev), 0);
	assert_int_equal(prev.len, 0);
	step(v, state);
	assert_int_equal(kp_view_put_prev(v, "k", 1, "\x05", 1, &prev), 1);
	assert_int_equal(prev.len, 2);
	assert_memory_equal(prev.data, "\xa1x", 2);
	assert_true(prev.cap - prev.len >= KP_VIEW_PREV_SPARE);
	assert_int_equal(kp_view_incr_prev(v, "k", 1, 2, &r, &prev), 1);
	assert_int_equal(r, 7);
	assert_int_equal(prev.len, 3);
	assert_int_equal(prev.data[2], 5);
	assert_int_equal(kp_view_incr_prev(v, "n", 1, 2, &r, &prev), 0);
	step(v, state);
	assert_int_equal(kp_view_del_prev(v, "k", 1, &prev), 1);
	assert_int_equal(prev.len, 4);
	assert_int_equal(prev.data[3], 7);
	assert_int_equal(kp_view_del_prev(v, "k", 1, &prev), 0);
	assert_int_equal(prev.len, 4);
	kp_buf_destroy(&prev);
	drop_view(v);
}

/* ---- stored views ----------------------------------------------------- */

static void test_commit_and_reopen(void **state)
{
	struct kp_view *v = new_stored(0);
	const char *names[] = { "checkpoint" };
	struct kp_buf meta, b;
	struct kp_error err;
	char dir[300];
	int64_t r;

	(void)state;
	kp_buf_init(&meta);
	kp_buf_init(&b);
	snprintf(dir, sizeof(dir), "%s", opened[0].dir);
	for (int i = 0; i < 64; i++) {
		if (opened[i].v == v)
			snprintf(dir, sizeof(dir), "%s", opened[i].dir);
	}
	put_str(v, "a", "\x01");
	put_str(v, "b", "\x02");
	put_str(v, "c", "\x03");
	kp_buf_append(&meta, "pos-1", 5);
	assert_int_equal(kp_view_commit(v, names, &meta, 1, &err), 0);
	/* Changes after the commit: a delete, an update, a new key. */
	assert_int_equal(kp_view_del(v, "b", 1), 1);
	assert_int_equal(kp_view_incr(v, "a", 1, 10, &r), 0);
	put_str(v, "d", "\x04");
	assert_int_equal(kp_view_count(v), 3);
	expect(v, "b", NULL, 0);
	/* Discarded: the view is its last commit again. */
	kp_view_discard(v);
	assert_int_equal(kp_view_count(v), 3);
	expect(v, "a", "\x01", 1);
	expect(v, "b", "\x02", 1);
	expect(v, "d", NULL, 0);
	assert_int_equal(kp_view_del(v, "b", 1), 1);
	put_str(v, "d", "\x04");
	kp_buf_reset(&meta);
	kp_buf_append(&meta, "pos-2", 5);
	assert_int_equal(kp_view_commit(v, names, &meta, 1, &err), 0);
	put_str(v, "e", "\x05");  /* never committed */
	kp_view_delete(v);
	for (int i = 0; i < 64; i++) {
		if (opened[i].v == v)
			opened[i].v = v = open_stored(dir, 0);
	}
	assert_int_equal(kp_view_count(v), 3);
	assert_int_equal(kp_view_bytes(v), 6);
	expect(v, "a", "\x01", 1);
	expect(v, "b", NULL, 0);
	expect(v, "d", "\x04", 1);
	expect(v, "e", NULL, 0);
	assert_int_equal(kp_view_meta(v, "checkpoint", &b), 1);
	assert_int_equal(b.len, 5);
	assert_memory_equal(b.data, "pos-2", 5);
	assert_int_equal(kp_view_meta(v, "nothing", &b), 0);
	/* clear, then commit: the store forgets every key. */
	kp_view_clear(v);
	put_str(v, "z", "\x09");
	commit(v);
	assert_int_equal(kp_view_count(v), 1);
	expect(v, "a", NULL, 0);
	expect(v, "z", "\x09", 1);
	assert_true(kp_view_disk_bytes(v) > 0);
	kp_buf_destroy(&meta);
	kp_buf_destroy(&b);
	drop_view(v);
}

struct page_keys {
	char keys[2100][12];
	int n;
};

static int keep_key(void *arg, const char *key, size_t key_len,
		    const char *value, size_t value_len)
{
	struct page_keys *p = arg;

	(void)value;
	(void)value_len;
	assert_true(key_len < 12);
	memcpy(p->keys[p->n], key, key_len);
	p->keys[p->n][key_len] = '\0';
	p->n++;
	return 0;
}

/* Pages through the view 7 keys at a time; checks order and completeness. */
static void check_pages(struct kp_view *v, const char *prefix, int want)
{
	struct page_keys *all = calloc(1, sizeof(*all));
	char after[12] = "";
	bool more = true;
	int pages = 0;

	while (more) {
		int before = all->n;
		int rc = kp_view_scan_page(v, prefix, strlen(prefix), after,
					   strlen(after), 7, keep_key, all,
					   &more);

		assert_true(rc >= 0 && rc <= 7);
		assert_int_equal(all->n - before, rc);
		if (rc > 0)
			snprintf(after, sizeof(after), "%s",
				 all->keys[all->n - 1]);
		assert_true(rc == 7 || !more);
		pages++;
	}
	assert_int_equal(all->n, want);
	for (int i = 1; i < all->n; i++)
		assert_true(strcmp(all->keys[i - 1], all->keys[i]) < 0);
	free(all);
}

static void test_scan_pages(void **state)
{
	struct kp_view *v = new_view(state);
	char key[16];

	/* Stored, then changed: kept, deleted, updated, added. */
	for (int i = 0; i < 1000; i++) {
		int n = snprintf(key, sizeof(key), "k%04d", i);

		assert_int_equal(kp_view_put(v, key, (size_t)n, "\x01", 1), 0);
	}
	put_str(v, "other", "\x01");
	step(v, state);
	for (int i = 0; i < 1000; i += 3) {
		int n = snprintf(key, sizeof(key), "k%04d", i);

		assert_int_equal(kp_view_del(v, key, (size_t)n), 1);
	}
	for (int i = 1000; i < 1100; i++) {
		int n = snprintf(key, sizeof(key), "k%04d", i);

		assert_int_equal(kp_view_put(v, key, (size_t)n, "\x02", 1), 0);
	}
	check_pages(v, "k", 1000 - 334 + 100);
	check_pages(v, "", 1000 - 334 + 100 + 1);
	check_pages(v, "k05", 100 - 33);
	check_pages(v, "nothing", 0);
	step(v, state);
	check_pages(v, "k", 1000 - 334 + 100);
	drop_view(v);
}

struct dump {
	struct kp_buf b;
};

static int dump_entry(void *arg, const char *key, size_t key_len,
		      const char *value, size_t value_len)
{
	struct dump *d = arg;

	kp_buf_append(&d->b, key, key_len);
	kp_buf_append(&d->b, "=", 1);
	kp_buf_append(&d->b, value, value_len);
	kp_buf_append(&d->b, ";", 1);
	return 0;
}

/* Everything a snapshot holds, as "key=value;" in order. */
static void dump_snap(struct kp_view_snap *s, struct kp_buf *out)
{
	struct dump d;
	bool more = true;
	char after[64] = "";
	size_t after_len = 0;

	kp_buf_init(&d.b);
	while (more) {
		size_t before = d.b.len;
		const char *p;

		assert_true(kp_view_snap_page(s, after, after_len, 2, dump_entry,
					      &d, &more) >= 0);
		if (d.b.len == before)
			break;
		/* The last key: between the last ';' before the end and '='. */
		p = d.b.data + d.b.len - 1;
		while (p > d.b.data && p[-1] != ';')
			p--;
		after_len = (size_t)(memchr(p, '=', (size_t)(d.b.data + d.b.len - p)) ?
			     (const char *)memchr(p, '=', (size_t)(d.b.data + d.b.len - p)) - p : 0);
		memcpy(after, p, after_len);
	}
	kp_buf_reset(out);
	kp_buf_append(out, d.b.data, d.b.len);
	kp_buf_destroy(&d.b);
}

static void test_snapshot_isolation(void **state)
{
	struct kp_view *v = new_view(state);
	struct kp_view_snap *s;
	struct kp_buf got;

	kp_buf_init(&got);
	put_str(v, "a", "1");
	put_str(v, "b", "2");
	step(v, state);
	put_str(v, "c", "3");
	assert_int_equal(kp_view_del(v, "a", 1), 1);
	assert_int_equal(kp_view_snap_begin(v, &s), 0);
	/* Later changes and commits do not reach the snapshot. */
	put_str(v, "b", "9");
	put_str(v, "d", "4");
	step(v, state);
	put_str(v, "e", "5");
	step(v, state);
	dump_snap(s, &got);
	assert_int_equal(got.len, strlen("b=2;c=3;"));
	assert_memory_equal(got.data, "b=2;c=3;", got.len);
	kp_view_snap_end(s);
	kp_buf_destroy(&got);
	drop_view(v);
}

static void test_damaged_store(void **state)
{
	struct kp_view *v = new_stored(0);
	struct kp_view *again = NULL;
	struct kp_error err;
	char dir[300] = "", path[400];
	struct kp_buf data, b;
	int hits = 0;

	(void)state;
	for (int i = 0; i < 64; i++) {
		if (opened[i].v == v)
			snprintf(dir, sizeof(dir), "%s", opened[i].dir);
	}
	put_str(v, "key-one", "\xa5" "value");
	commit(v);
	kp_view_delete(v);
	for (int i = 0; i < 64; i++) {
		if (opened[i].v == v)
			opened[i].v = NULL;
	}
	/* Flip a byte of the stored value: a read reports damage. */
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	kp_buf_init(&data);
	kp_buf_init(&b);
	assert_int_equal(kp_file_read(path, &data), 0);
	for (size_t i = 0; i + 5 <= data.len; i++) {
		if (memcmp(data.data + i, "value", 5) == 0) {
			int fd = open(path, O_WRONLY);

			assert_true(fd >= 0);
			assert_int_equal(pwrite(fd, "valuE", 5, (off_t)i), 5);
			close(fd);
			hits++;
		}
	}
	assert_true(hits > 0);
	kp_error_clear(&err);
	assert_int_equal(kp_view_open(&again, dir, 0, 1ull << 30, &err), 0);
	assert_int_equal(kp_view_get(again, "key-one", 7, &b), KP_EDAMAGED);
	kp_view_delete(again);
	/* Garbage in place of the file: the open says so. */
	{
		int fd = open(path, O_WRONLY | O_TRUNC);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, "not an lmdb file at all, sorry!!",
				       32), 32);
		close(fd);
	}
	kp_error_clear(&err);
	assert_int_equal(kp_view_open(&again, dir, 0, 1ull << 30, &err),
			 KP_EDAMAGED);
	assert_non_null(strstr(err.msg, "proc reset"));
	kp_file_remove_tree(dir);
	kp_buf_destroy(&data);
	kp_buf_destroy(&b);
}

static void test_cache_budget(void **state)
{
	enum { BUDGET = 1 << 20 };
	struct kp_view *v = new_stored(BUDGET);
	size_t most = 0;
	bool evicted = false;
	char key[32];
	int64_t r;
	int i;

	(void)state;
	/* Changes fill half the budget: a commit is due. */
	for (i = 0; !kp_view_cache_full(v); i++) {
		int n = snprintf(key, sizeof(key), "key-%d", i);

		assert_true(i < 100000);
		assert_int_equal(kp_view_incr(v, key, (size_t)n, 1, &r), 0);
	}
	assert_true(kp_view_cache_used(v) >= BUDGET / 2);
	commit(v);
	/* Committed keys stay in memory while they fit... */
	assert_false(kp_view_cache_full(v));
	assert_true(kp_view_cache_used(v) >= BUDGET / 2);
	assert_int_equal(kp_view_incr(v, "key-7", 5, 1, &r), 0);
	assert_int_equal(r, 2);
	/* ...and go when new keys need the room: memory stays bounded. */
	for (int j = 0; j < 20000; j++, i++) {
		int n = snprintf(key, sizeof(key), "key-%d", i);
		size_t used;

		assert_int_equal(kp_view_incr(v, key, (size_t)n, 1, &r), 0);
		used = kp_view_cache_used(v);
		if (used < most)
			evicted = true;
		most = used > most ? used : most;
		if (kp_view_cache_full(v))
			commit(v);
	}
	assert_true(evicted);
	assert_true(most <= BUDGET + BUDGET / 4);
	assert_int_equal(kp_view_incr(v, "key-7", 5, 0, &r), 0);
	assert_int_equal(r, 2);
	assert_int_equal(kp_view_count(v), (size_t)i);
	drop_view(v);
}

/* ---- snapshots of older kappa (view_load.c) --------------------------- */

/* A "KPVIEW01" snapshot of n keys "k000".. with values i * 1000. */
static void legacy_snapshot(struct kp_buf *out, int n)
{
	char num[8], key[8], value[16];

	kp_buf_reset(out);
	kp_buf_append(out, "KPVIEW01", 8);
	kp_put_le64(num, (uint64_t)n);
	kp_buf_append(out, num, 8);
	for (int i = 0; i < n; i++) {
		int kl = snprintf(key, sizeof(key), "k%03d", i);
		size_t vl = pack_int(i * 1000, value);

		kp_put_le32(num, (uint32_t)kl);
		kp_buf_append(out, num, 4);
		kp_buf_append(out, key, (size_t)kl);
		kp_put_le32(num, (uint32_t)vl);
		kp_buf_append(out, num, 4);
		kp_buf_append(out, value, vl);
	}
	kp_put_le32(num, kp_crc32c(0, out->data, out->len));
	kp_buf_append(out, num, 4);
}

static void test_legacy_load(void **state)
{
	struct kp_view *c = new_view(state);
	struct kp_buf s;
	struct kp_error err;

	kp_buf_init(&s);
	legacy_snapshot(&s, 300);
	put_str(c, "old", "\x01");
	step(c, state);
	assert_int_equal(kp_view_load(c, s.data, s.len, &err), 0);
	assert_int_equal(kp_view_count(c), 300);
	expect(c, "old", NULL, 0);
	expect(c, "k002", "\xcd\x07\xd0", 3);
	step(c, state);
	expect(c, "old", NULL, 0);
	expect(c, "k299", "\xce\x00\x04\x8f\xf8", 5);
	check_pages(c, "k", 300);
	legacy_snapshot(&s, 0);
	assert_int_equal(kp_view_load(c, s.data, s.len, &err), 0);
	assert_int_equal(kp_view_count(c), 0);
	kp_buf_destroy(&s);
	drop_view(c);
}

static void expect_corrupt(struct kp_view *v, const char *data, size_t len)
{
	struct kp_error err;

	kp_error_clear(&err);
	assert_int_equal(kp_view_load(v, data, len, &err), KP_ECORRUPT);
	assert_int_equal(err.code, KP_ECORRUPT);
	assert_non_null(strstr(err.msg, "view snapshot"));
	assert_int_equal(kp_view_count(v), 1);
	expect(v, "keep", "\x2a", 1);
}

/* Rewrites the trailing CRC so that only the structure is wrong. */
static void fix_crc(char *data, size_t len)
{
	kp_put_le32(data + len - 4, kp_crc32c(0, data, len - 4));
}

static void test_legacy_corrupt(void **state)
{
	struct kp_view *v = new_view(state);
	struct kp_buf s;
	char *copy;

	put_str(v, "keep", "\x2a");
	kp_buf_init(&s);
	legacy_snapshot(&s, 2);
	copy = malloc(s.len + 16);
	for (size_t n = 0; n < s.len; n++) {
		memcpy(copy, s.data, n);
		expect_corrupt(v, copy, n);
	}
	for (size_t i = 0; i < s.len; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			memcpy(copy, s.data, s.len);
			copy[i] ^= (char)(1 << bit);
			expect_corrupt(v, copy, s.len);
		}
	}
	/* Valid CRC over invalid structure. */
	memcpy(copy, s.data, s.len);
	kp_put_le64(copy + 8, 3);
	fix_crc(copy, s.len);
	expect_corrupt(v, copy, s.len);
	memcpy(copy, s.data, s.len);
	copy[16 + 4 + 4 + 4] = (char)0xc1;  /* k000's value: reserved byte */
	fix_crc(copy, s.len);
	expect_corrupt(v, copy, s.len);
	memcpy(copy, s.data, s.len - 4);  /* bytes after the last entry */
	memset(copy + s.len - 4, 0, 4);
	fix_crc(copy, s.len + 4);
	expect_corrupt(v, copy, s.len + 4);
	free(copy);
	kp_buf_destroy(&s);
	drop_view(v);
}

static void test_alloc_failures(void **state)
{
	struct kp_view *v = new_view(state);
	int64_t r;
	char key[16];

	for (int i = 0; i < 10; i++) {
		int n = snprintf(key, sizeof(key), "k%d", i);

		assert_int_equal(kp_view_incr(v, key, (size_t)n, i, &r), 0);
	}
	step(v, state);
	assert_int_equal(kp_view_incr(v, "k1", 2, 1000, &r), 0);
	kp_alloc_fail_after(0);
	assert_int_equal(kp_view_put(v, "new", 3, "\x01", 1), -ENOMEM);
	assert_int_equal(kp_view_incr(v, "k1", 2, 1000, &r), 0);  /* in place */
	assert_int_equal(kp_view_put(v, "k1", 2, "\xa9" "123456789", 10),
			 -ENOMEM);
	kp_alloc_fail_after(-1);
	expect(v, "new", NULL, 0);
	expect(v, "k1", "\xcd\x07\xd1", 3);
	assert_int_equal(kp_view_count(v), 10);
	step(v, state);
	assert_int_equal(kp_view_count(v), 10);
	drop_view(v);
}

struct reader {
	struct kp_view *v;
	volatile int stop;
	long reads;
	int64_t last;
};

static void *run_reader(void *arg)
{
	struct reader *rd = arg;
	struct kp_buf b;

	kp_buf_init(&b);
	while (!rd->stop) {
		int64_t n;

		if (kp_view_get(rd->v, "shared", 6, &b) == 1) {
			assert_int_equal(kp_mp_decode_int(b.data, b.len, &n), 0);
			/* Live reads never go back in time. */
			assert_true(n >= rd->last);
			rd->last = n;
		}
		rd->reads++;
	}
	kp_buf_destroy(&b);
	return NULL;
}

static void test_threads(void **state)
{
	struct kp_view *v = new_view(state);
	struct reader rd = { v, 0, 0, 0 };
	pthread_t t;
	int64_t r;

	assert_int_equal(pthread_create(&t, NULL, run_reader, &rd), 0);
	for (int i = 0; i < 40000; i++) {
		kp_view_incr(v, "shared", 6, 1, &r);
		if (i % 100 == 0) {
			char key[16];
			int n = snprintf(key, sizeof(key), "w-%d", i);

			kp_view_put(v, key, (size_t)n, "\x01", 1);
		}
		if (i % 5000 == 0)
			step(v, state);
	}
	while (rd.reads == 0)
		sched_yield();
	rd.stop = 1;
	pthread_join(t, NULL);
	assert_int_equal(kp_view_incr(v, "shared", 6, 0, &r), 0);
	assert_int_equal(r, 40000);
	assert_int_equal(kp_view_count(v), 1 + 400);
	assert_true(rd.reads > 0);
	drop_view(v);
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Not a benchmark gate: prints the hot path's cost for the record. */
static void test_hot_path_cost(void **state)
{
	enum { KEYS = 1000, OPS = 1000000 };
	struct kp_view *v = new_view(state);
	char keys[KEYS][16];
	size_t lens[KEYS];
	double t0, t1;
	int64_t r;

	for (int i = 0; i < KEYS; i++)
		lens[i] = (size_t)snprintf(keys[i], 16, "user-%d", i);
	t0 = now_ns();
	for (int i = 0; i < OPS; i++)
		kp_view_incr(v, keys[i % KEYS], lens[i % KEYS], 1, &r);
	t1 = now_ns();
	assert_int_equal(r, OPS / KEYS);
	print_message("kp_view_incr (%s): %.1f ns per call over %d keys\n",
		      kp_view_stored(v) ? "stored" : "in memory",
		      (t1 - t0) / OPS, KEYS);
	drop_view(v);
}

#define ALL_MODES(f)                                                   \
	cmocka_unit_test_prestate(f, (void *)&in_memory),              \
	cmocka_unit_test_prestate(f, (void *)&stored),                 \
	cmocka_unit_test_prestate(f, (void *)&stored_commits)

int main(void)
{
	const struct CMUnitTest tests[] = {
		ALL_MODES(test_put_get_del),
		ALL_MODES(test_incr),
		ALL_MODES(test_many_keys),
		ALL_MODES(test_scan),
		ALL_MODES(test_prev_variants),
		ALL_MODES(test_scan_pages),
		ALL_MODES(test_snapshot_isolation),
		ALL_MODES(test_legacy_load),
		ALL_MODES(test_legacy_corrupt),
		ALL_MODES(test_alloc_failures),
		ALL_MODES(test_threads),
		cmocka_unit_test(test_commit_and_reopen),
		cmocka_unit_test(test_damaged_store),
		cmocka_unit_test(test_cache_budget),
		cmocka_unit_test_prestate(test_hot_path_cost, (void *)&in_memory),
		cmocka_unit_test_prestate(test_hot_path_cost,
					  (void *)&stored_commits),
	};
	const char *tmp = getenv("TMPDIR");
	int rc;

	snprintf(test_root, sizeof(test_root), "%s/kp-test-view-XXXXXX",
		 tmp ? tmp : "/tmp");
	if (mkdtemp(test_root) == NULL)
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	kp_file_remove_tree(test_root);
	return rc;
}
