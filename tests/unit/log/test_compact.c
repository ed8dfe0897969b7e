/*
 * test_compact.c - compaction of a partition's sealed segments: the latest
 * record per key, keyless records, tombstones and delete_retention_ms,
 * offsets kept (reads across the gaps, by offset and by time), merging,
 * incremental runs, the recovery point that holds segments back, the map's
 * memory limit, and every crash point of the swap (kp_compact_recover).
 * Also the key map and the policy of when a partition is due.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/error.h"
#include "log/batch.h"
#include "log/compact.h"
#include "log/compact_map.h"
#include "log/partition.h"
#include "log/segment.h"
#include "support_dir.h"

#define MAX_RECORDS 4096
#define TOMBSTONE "\xc0"
#define HOUR_MS (3600LL * 1000)

/* A fresh directory per test, removed afterwards. */
static int setup(void **state)
{
	return kp_test_dir_setup(state, "compact");
}

static int teardown(void **state)
{
	return kp_test_dir_teardown(state);
}

/* ---- a model of what was written ----------------------------------------- */

/* One record as written, and as read back. */
struct rec {
	uint64_t offset;
	int64_t ts;
	int key;            /* -1: no key; -2: the empty key; else "k<key>" */
	bool tombstone;     /* value nil */
	bool headers;       /* carries headers {"n": offset} */
};

struct model {
	struct rec r[MAX_RECORDS];
	size_t n;
};

static void key_of(int key, char *out, size_t cap, const char **ptr,
		   uint32_t *len)
{
	if (key == -1) {
		*ptr = NULL;
		*len = 0;
		return;
	}
	if (key == -2) {
		out[0] = '\0';
		*ptr = out;
		*len = 0;
		return;
	}
	snprintf(out, cap, "k%d", key);
	*ptr = out;
	*len = (uint32_t)strlen(out);
}

/* A msgpack uint64 naming the offset (0xcf + 8 bytes big-endian). */
static void value_of(uint64_t offset, char *v)
{
	v[0] = (char)0xcf;
	for (int i = 0; i < 8; i++)
		v[1 + i] = (char)(offset >> (56 - 8 * i));
}

/* {"n": offset} with the offset as a msgpack uint64. */
static void headers_of(uint64_t offset, char *h)
{
	h[0] = (char)0x81;
	h[1] = (char)0xa1;
	h[2] = 'n';
	value_of(offset, h + 3);
}

static struct kp_partition *open_ok(const char *dir, uint64_t segment_bytes,
				    enum kp_fsync_mode mode)
{
	struct kp_partition_config cfg;
	struct kp_partition *p = NULL;
	struct kp_error err;

	kp_partition_config_default(&cfg);
	cfg.segment_bytes = segment_bytes;
	cfg.index_interval_bytes = 256;
	cfg.fsync = mode;
	if (kp_partition_open(dir, &cfg, &p, &err) != 0)
		fail_msg("open %s: %s", dir, err.msg);
	return p;
}

/* Appends one batch of the n records at recs (offsets assigned here). */
static void append_batch(struct kp_partition *p, struct model *m,
			 const struct rec *recs, size_t n, bool headers)
{
	struct kp_batch_builder b;
	struct kp_error err;
	struct kp_buf buf;
	uint64_t base;
	uint64_t first = m->n ? m->r[m->n - 1].offset + 1 : 0;

	kp_buf_init(&buf);
	assert_int_equal(kp_batch_begin_flags(&b, &buf, 0, 0,
					      headers ? KP_BATCH_FLAG_HEADERS
						      : 0), 0);
	for (size_t i = 0; i < n; i++) {
		char kb[32], v[9], h[12];
		const char *key;
		uint32_t key_len;

		key_of(recs[i].key, kb, sizeof(kb), &key, &key_len);
		value_of(first + i, v);
		headers_of(first + i, h);
		assert_int_equal(kp_batch_add_headers(
					 &b, recs[i].ts, key, key_len,
					 headers ? h : NULL, headers ? 12 : 0,
					 recs[i].tombstone ? TOMBSTONE : v,
					 recs[i].tombstone ? 1 : 9), 0);
	}
	kp_batch_finish(&b);
	if (kp_partition_append(p, buf.data, buf.len, kp_clock_now_ms(), &base,
				&err) != 0)
		fail_msg("append: %s", err.msg);
	kp_buf_destroy(&buf);
	assert_int_equal(base, first);
	for (size_t i = 0; i < n; i++) {
		assert_true(m->n < MAX_RECORDS);
		m->r[m->n] = recs[i];
		m->r[m->n].offset = first + i;
		m->r[m->n].headers = headers;
		m->n++;
	}
}

/* Appends n records: key = pattern(i), ts = ts0 + offset. */
static void append_keys(struct kp_partition *p, struct model *m, size_t n,
			int nkeys, int64_t ts0)
{
	struct rec batch[10];
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		uint64_t off = m->n + k;

		batch[k].ts = ts0 + (int64_t)off;
		batch[k].tombstone = false;
		batch[k].key = off % 5 == 4 ? -1 : off % 11 == 3 ? -2
						   : (int)(off % (uint64_t)nkeys);
		if (++k == 10 || i + 1 == n) {
			append_batch(p, m, batch, k, (m->n / 10) % 3 == 1);
			k = 0;
		}
	}
}

/* Reads every record from offset on into out. */
static void read_all(struct kp_partition *p, uint64_t offset,
		     struct model *out)
{
	struct kp_partition_stats st;
	struct kp_buf buf;

	out->n = 0;
	kp_buf_init(&buf);
	kp_partition_stats(p, &st);
	while (offset < st.visible_end) {
		struct kp_error err;
		uint64_t skip;
		size_t at = 0;

		kp_buf_reset(&buf);
		if (kp_partition_read(p, offset, 4096, &buf, &skip, &err) != 0)
			fail_msg("read at %" PRIu64 ": %s", offset, err.msg);
		if (buf.len == 0)
			break;
		while (at < buf.len) {
			struct kp_batch_header h;
			struct kp_record rec;
			size_t pos = 0;
			uint32_t index;

			assert_int_equal(kp_batch_header_decode(buf.data + at,
								buf.len - at,
								&h), 0);
			assert_int_equal(kp_batch_verify(buf.data + at, &h), 0);
			while (kp_batch_next(buf.data + at, &h, &pos, &index,
					     &rec) == 1) {
				struct rec *r;
				char v[9], hd[12];

				if (rec.offset < offset)
					continue;
				assert_true(out->n < MAX_RECORDS);
				r = &out->r[out->n++];
				r->offset = rec.offset;
				r->ts = rec.ts;
				r->tombstone = kp_compact_is_tombstone(
					rec.value, rec.value_len);
				if (!r->tombstone) {
					value_of(rec.offset, v);
					assert_int_equal(rec.value_len, 9);
					assert_memory_equal(rec.value, v, 9);
				}
				if (rec.key == NULL)
					r->key = -1;
				else if (rec.key_len == 0)
					r->key = -2;
				else
					r->key = atoi(rec.key + 1);
				r->headers = rec.headers != NULL;
				if (r->headers) {
					headers_of(rec.offset, hd);
					assert_int_equal(rec.headers_len, 12);
					assert_memory_equal(rec.headers, hd, 12);
				}
				offset = rec.offset + 1;
			}
			at += h.batch_len;
		}
	}
	kp_buf_destroy(&buf);
}

/* The first offset of p's active segment. */
static uint64_t active_base(struct kp_partition *p)
{
	size_t n = kp_partition_segment_count(p);

	return kp_partition_segment_at(p, n - 1)->base;
}

/*
 * What compaction of everything below `below` keeps of m (the latest of
 * each key there, keyless records, tombstones unless expired), plus
 * everything from `below` on.
 */
static void expect_compacted(const struct model *m, uint64_t below,
			     bool drop_tombstones, struct model *out)
{
	out->n = 0;
	for (size_t i = 0; i < m->n; i++) {
		const struct rec *r = &m->r[i];
		bool later = false;

		if (r->offset < below && r->key != -1) {
			for (size_t j = i + 1; j < m->n; j++) {
				if (m->r[j].offset < below &&
				    m->r[j].key == r->key)
					later = true;
			}
			if (later || (r->tombstone && drop_tombstones))
				continue;
		}
		out->r[out->n++] = *r;
	}
}

static void assert_same(const struct model *got, const struct model *want)
{
	for (size_t i = 0; i < got->n && i < want->n; i++) {
		if (got->r[i].offset != want->r[i].offset ||
		    got->r[i].key != want->r[i].key ||
		    got->r[i].ts != want->r[i].ts ||
		    got->r[i].tombstone != want->r[i].tombstone ||
		    got->r[i].headers != want->r[i].headers)
			fail_msg("record %zu: got offset %" PRIu64 " key %d, "
				 "want offset %" PRIu64 " key %d", i,
				 got->r[i].offset, got->r[i].key,
				 want->r[i].offset, want->r[i].key);
	}
	assert_int_equal(got->n, want->n);
}

/* ---- running a job as the store does ------------------------------------- */

static void settings(struct kp_compact_settings *set, int64_t now,
		     uint64_t clean_end)
{
	memset(set, 0, sizeof(*set));
	set->now_ms = now;
	set->delete_retention_ms = HOUR_MS;
	set->segment_bytes = 1 << 20;
	set->index_interval = 256;
	set->clean_end = clean_end;
}

/* A job over every sealed segment of p. */
static struct kp_compact_job *job_of(struct kp_partition *p, const char *dir,
				     const struct kp_compact_settings *set)
{
	struct kp_compact_job *job = kp_compact_job_new(dir, set);
	size_t n = kp_partition_segment_count(p);

	assert_non_null(job);
	for (size_t i = 0; i + 1 < n; i++)
		assert_int_equal(kp_compact_job_add(job,
						    kp_partition_segment_at(p, i),
						    kp_partition_segment_at(p, i + 1)
							    ->base), 0);
	return job;
}

static void install_all(struct kp_partition *p, struct kp_compact_job *job)
{
	for (size_t k = 0; k < job->nout; k++) {
		struct kp_segment *seg;

		assert_int_equal(kp_compact_install(job, k, &seg), 0);
		assert_int_equal(kp_partition_replace_segments(
					 p, job->out[k].base,
					 job->out[k].count, seg), 0);
	}
}

/* Runs a whole compaction of p; returns the finished job (to delete). */
static struct kp_compact_job *compact(struct kp_partition *p,
				      const char *dir,
				      const struct kp_compact_settings *set)
{
	struct kp_compact_job *job;

	assert_int_equal(kp_partition_write_recovery_point(p), 0);
	job = job_of(p, dir, set);
	kp_compact_run(job);
	if (job->rc != 0)
		fail_msg("compaction: %s", job->err.msg);
	install_all(p, job);
	kp_compact_finish(job);
	assert_int_equal(job->rc, 0);
	return job;
}

static bool exists(const char *dir, const char *name)
{
	char path[800];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

/* ---- tests ---------------------------------------------------------------- */

static void test_latest_per_key_keyless_and_offsets(void **state)
{
	struct fixture *f = *state;
	struct kp_compact_settings set;
	struct kp_compact_job *job;
	struct kp_partition_stats before, after;
	static struct model m, want, got;
	struct kp_partition *p;
	struct kp_error err;
	uint64_t below, at;

	m.n = 0;
	p = open_ok(f->dir, 2048, KP_FSYNC_NEVER);
	append_keys(p, &m, 900, 7, 1000);
	below = active_base(p);
	kp_partition_stats(p, &before);
	assert_true(before.segments > 5);
	settings(&set, kp_clock_now_ms(), 0);
	job = compact(p, f->dir, &set);
	expect_compacted(&m, below, false, &want);
	assert_int_equal(job->records_removed, m.n - want.n);
	assert_int_equal(job->scanned_end, below);
	assert_true(job->bytes_after < job->bytes_before);
	kp_compact_job_delete(job);

	kp_partition_stats(p, &after);
	assert_true(after.segments < before.segments);
	assert_true(after.size_bytes < before.size_bytes);
	assert_int_equal(after.start_offset, 0);
	assert_int_equal(after.end_offset, before.end_offset);
	assert_false(exists(f->dir, KP_COMPACT_MANIFEST));
	assert_false(exists(f->dir, KP_COMPACT_TMP_DIR));
	read_all(p, 0, &got);
	assert_same(&got, &want);

	/* A read at a removed offset starts at the next record kept. */
	for (size_t i = 1; i < want.n; i++) {
		if (want.r[i].offset == want.r[i - 1].offset + 1)
			continue;
		read_all(p, want.r[i - 1].offset + 1, &got);
		assert_true(got.n > 0);
		assert_int_equal(got.r[0].offset, want.r[i].offset);
		assert_int_equal(kp_partition_offset_for_time(
					 p, 1000 + (int64_t)want.r[i - 1].offset + 1,
					 &at, &err), 0);
		assert_int_equal(at, want.r[i].offset);
		break;
	}

	/* The compacted segments are what a restart finds. */
	kp_partition_close(p);
	assert_int_equal(kp_compact_recover(f->dir, &err), 0);
	p = open_ok(f->dir, 2048, KP_FSYNC_NEVER);
	read_all(p, 0, &got);
	assert_same(&got, &want);
	kp_partition_stats(p, &before);
	assert_int_equal(before.segments, after.segments);
	kp_partition_close(p);
}

static void test_tombstones_kept_until_delete_retention(void **state)
{
	struct fixture *f = *state;
	int64_t now = kp_clock_now_ms();
	struct kp_compact_settings set;
	struct kp_compact_job *job;
	static struct model m, want, got;
	struct kp_partition *p;
	struct rec r[6] = {
		{ 0, now, 101, false, false },
		{ 0, now, 101, true, false },          /* k101 deleted now */
		{ 0, now - 10 * 24 * HOUR_MS, 102, true, false }, /* old ts */
		{ 0, now, 103, false, false },
		{ 0, now, -1, true, false },           /* keyless nil: kept */
		{ 0, now, 104, true, false },          /* k104 deleted, never set */
	};

	m.n = 0;
	p = open_ok(f->dir, 1024, KP_FSYNC_NEVER);
	append_batch(p, &m, r, 6, false);
	append_keys(p, &m, 200, 3, now);  /* keys k0..k2: rolls past r */

	/* An hour's retention, now: every tombstone stays (their segment is
	 * new, also for k102's old ts), k101's value goes (its tombstone
	 * supersedes it). */
	settings(&set, now, 0);
	job = compact(p, f->dir, &set);
	assert_true(job->tombstone_due_ms > now + HOUR_MS - 60000);
	kp_compact_job_delete(job);
	read_all(p, 0, &got);
	assert_int_equal(got.r[0].offset, 1);
	assert_true(got.r[0].tombstone);
	assert_int_equal(got.r[0].key, 101);
	assert_int_equal(got.r[1].offset, 2);
	assert_true(got.r[1].tombstone && got.r[1].key == 102);
	assert_int_equal(got.r[2].offset, 3);
	assert_int_equal(got.r[3].offset, 4);
	assert_true(got.r[3].tombstone && got.r[3].key == -1);
	assert_int_equal(got.r[4].offset, 5);
	assert_true(got.r[4].tombstone && got.r[4].key == 104);

	/* Two hours later they go, the keyless nil stays. */
	settings(&set, now + 2 * HOUR_MS, 0);
	job = compact(p, f->dir, &set);
	assert_int_equal(job->tombstone_due_ms, 0);
	kp_compact_job_delete(job);
	read_all(p, 0, &got);
	assert_int_equal(got.r[0].offset, 3);
	assert_int_equal(got.r[1].offset, 4);
	assert_true(got.r[1].tombstone && got.r[1].key == -1);
	for (size_t i = 0; i < got.n; i++)
		assert_true(!got.r[i].tombstone || got.r[i].key == -1);
	(void)want;
	kp_partition_close(p);
}

static void test_everything_removed_leaves_an_empty_segment(void **state)
{
	struct fixture *f = *state;
	struct kp_compact_settings set;
	struct kp_compact_job *job;
	static struct model m, got;
	struct kp_partition_stats st;
	struct kp_partition *p;
	struct kp_error err;
	struct rec r[10];
	uint64_t below, at;

	m.n = 0;
	p = open_ok(f->dir, 1024, KP_FSYNC_NEVER);
	for (int b = 0; b < 12; b++) {
		for (int i = 0; i < 10; i++) {
			r[i].ts = 5;
			r[i].key = b * 10 + i;
			r[i].tombstone = true;
		}
		append_batch(p, &m, r, 10, false);
	}
	below = active_base(p);
	assert_true(below > 0 && below < 120);
	/* A day later every tombstone below the active segment has gone. */
	settings(&set, kp_clock_now_ms() + 24 * HOUR_MS, 0);
	job = compact(p, f->dir, &set);
	assert_int_equal(job->nout, 1);
	assert_int_equal(job->out[0].size, 0);
	assert_int_equal(job->records_removed, below);
	kp_compact_job_delete(job);
	kp_partition_stats(p, &st);
	assert_int_equal(st.start_offset, 0);
	assert_int_equal(st.segments, 2);
	read_all(p, 0, &got);
	assert_int_equal(got.n, 120 - below);
	assert_int_equal(got.r[0].offset, below);
	assert_int_equal(kp_partition_offset_for_time(p, 0, &at, &err), 0);
	assert_int_equal(at, below);
	kp_partition_close(p);
	assert_int_equal(kp_compact_recover(f->dir, &err), 0);
	p = open_ok(f->dir, 1024, KP_FSYNC_NEVER);
	read_all(p, 0, &got);
	assert_int_equal(got.r[0].offset, below);
	kp_partition_close(p);
}

static void test_incremental_runs_merge_and_keep_one_per_key(void **state)
{
	struct fixture *f = *state;
	struct kp_compact_settings set;
	struct kp_compact_job *job;
	static struct model m, want, got;
	struct kp_partition_stats st;
	struct kp_partition *p;
	uint64_t clean;

	m.n = 0;
	p = open_ok(f->dir, 2048, KP_FSYNC_NEVER);
	append_keys(p, &m, 600, 13, 0);
	settings(&set, kp_clock_now_ms(), 0);
	job = compact(p, f->dir, &set);
	clean = job->scanned_end;
	kp_compact_job_delete(job);

	append_keys(p, &m, 700, 13, 0);
	settings(&set, kp_clock_now_ms(), clean);
	job = compact(p, f->dir, &set);
	assert_true(job->scanned_end > clean);
	kp_compact_job_delete(job);
	expect_compacted(&m, active_base(p), false, &want);
	read_all(p, 0, &got);
	assert_same(&got, &want);
	kp_partition_stats(p, &st);
	/* 13 keys, the empty key and the keyless records fit one segment. */
	assert_true(st.segments <= 3);
	kp_partition_close(p);
}

static void test_recovery_point_holds_segments_back(void **state)
{
	struct fixture *f = *state;
	struct kp_compact_settings set;
	struct kp_compact_job *job;
	static struct model m;
	struct kp_partition *p;
	struct kp_sync_job *sync;
	struct kp_error err;

	m.n = 0;
	p = open_ok(f->dir, 2048, KP_FSYNC_ALWAYS);
	append_keys(p, &m, 400, 5, 0);
	settings(&set, kp_clock_now_ms(), 0);
	job = job_of(p, f->dir, &set);
	kp_compact_run(job);
	assert_int_equal(job->rc, 0);
	assert_true(job->blocked);
	assert_int_equal(job->nsrc, 0);
	assert_int_equal(job->nout, 0);
	kp_compact_job_delete(job);

	assert_int_equal(kp_partition_write_recovery_point(p), -EAGAIN);
	sync = kp_partition_sync_begin(p);
	assert_non_null(sync);
	kp_sync_job_run(sync);
	assert_int_equal(kp_partition_sync_done(p, sync, &err), 0);
	assert_int_equal(kp_partition_write_recovery_point(p), 0);
	job = job_of(p, f->dir, &set);
	kp_compact_run(job);
	assert_int_equal(job->rc, 0);
	assert_false(job->blocked);
	assert_true(job->nout > 0);
	install_all(p, job);
	kp_compact_finish(job);
	kp_compact_job_delete(job);
	kp_partition_close(p);
}

static void test_map_limit_stops_at_a_segment(void **state)
{
	struct fixture *f = *state;
	struct kp_compact_settings set;
	struct kp_compact_job *job;
	static struct model m;
	struct kp_partition *p;

	m.n = 0;
	p = open_ok(f->dir, 2048, KP_FSYNC_NEVER);
	append_keys(p, &m, 600, 300, 0);
	assert_int_equal(kp_partition_write_recovery_point(p), 0);
	settings(&set, kp_clock_now_ms(), 0);
	set.map_bytes = 1;
	job = job_of(p, f->dir, &set);
	kp_compact_run(job);
	assert_int_equal(job->rc, 0);
	assert_int_equal(job->nsrc, 1);
	assert_int_equal(job->scanned_end, kp_partition_segment_at(p, 1)->base);
	kp_compact_job_delete(job);
	kp_partition_close(p);
}

/* Runs a job up to its manifest, as if the process then died. */
static void crash_after_run(struct fixture *f, struct model *m,
			    struct model *want, bool keep_manifest)
{
	struct kp_compact_settings set;
	struct kp_compact_job *job;
	struct kp_partition *p;

	m->n = 0;
	p = open_ok(f->dir, 2048, KP_FSYNC_NEVER);
	append_keys(p, m, 800, 9, 0);
	expect_compacted(m, active_base(p), false, want);
	assert_int_equal(kp_partition_write_recovery_point(p), 0);
	settings(&set, kp_clock_now_ms(), 0);
	job = job_of(p, f->dir, &set);
	kp_compact_run(job);
	assert_int_equal(job->rc, 0);
	assert_true(job->manifest);
	assert_true(exists(f->dir, KP_COMPACT_MANIFEST));
	kp_compact_job_delete(job);
	if (!keep_manifest) {
		char path[800];

		snprintf(path, sizeof(path), "%s/%s", f->dir,
			 KP_COMPACT_MANIFEST);
		assert_int_equal(unlink(path), 0);
	}
	kp_partition_close(p);
}

static void reopen_and_read(struct fixture *f, struct model *got)
{
	struct kp_partition *p;
	struct kp_error err;

	if (kp_compact_recover(f->dir, &err) != 0)
		fail_msg("recover: %s", err.msg);
	assert_false(exists(f->dir, KP_COMPACT_MANIFEST));
	assert_false(exists(f->dir, KP_COMPACT_TMP_DIR));
	p = open_ok(f->dir, 2048, KP_FSYNC_NEVER);
	read_all(p, 0, got);
	kp_partition_close(p);
}

static void test_crash_before_manifest_keeps_the_old_segments(void **state)
{
	struct fixture *f = *state;
	static struct model m, want, got;

	crash_after_run(f, &m, &want, false);
	assert_true(exists(f->dir, KP_COMPACT_TMP_DIR));
	reopen_and_read(f, &got);
	assert_same(&got, &m);
}

static void test_crash_after_manifest_completes_the_swap(void **state)
{
	struct fixture *f = *state;
	static struct model m, want, got;

	crash_after_run(f, &m, &want, true);
	reopen_and_read(f, &got);
	assert_same(&got, &want);
}

static void test_crash_during_renames_completes_the_swap(void **state)
{
	struct fixture *f = *state;
	static struct model m, want, got;
	char from[800], to[800];
	DIR *d;
	struct dirent *e;

	crash_after_run(f, &m, &want, true);
	/* Only the first new segment's .log made it into place. */
	snprintf(from, sizeof(from), "%s/%s", f->dir, KP_COMPACT_TMP_DIR);
	d = opendir(from);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (strstr(e->d_name, ".log") == NULL)
			continue;
		snprintf(from, sizeof(from), "%s/%s/%s", f->dir,
			 KP_COMPACT_TMP_DIR, e->d_name);
		snprintf(to, sizeof(to), "%s/%s", f->dir, e->d_name);
		assert_int_equal(rename(from, to), 0);
		break;
	}
	closedir(d);
	reopen_and_read(f, &got);
	assert_same(&got, &want);
}

static void test_crash_after_swap_deletes_the_replaced(void **state)
{
	struct fixture *f = *state;
	struct kp_compact_settings set;
	struct kp_compact_job *job;
	static struct model m, want, got;
	struct kp_partition *p;
	size_t segs;

	m.n = 0;
	p = open_ok(f->dir, 2048, KP_FSYNC_NEVER);
	append_keys(p, &m, 800, 9, 0);
	expect_compacted(&m, active_base(p), false, &want);
	assert_int_equal(kp_partition_write_recovery_point(p), 0);
	settings(&set, kp_clock_now_ms(), 0);
	job = job_of(p, f->dir, &set);
	kp_compact_run(job);
	assert_int_equal(job->rc, 0);
	install_all(p, job);
	segs = kp_partition_segment_count(p);
	kp_compact_job_delete(job);  /* no kp_compact_finish: "crash" */
	kp_partition_close(p);
	reopen_and_read(f, &got);
	assert_same(&got, &want);
	p = open_ok(f->dir, 2048, KP_FSYNC_NEVER);
	assert_int_equal(kp_partition_segment_count(p), segs);
	kp_partition_close(p);
}

static void test_damaged_manifest_is_refused(void **state)
{
	struct fixture *f = *state;
	char path[800];
	struct kp_error err;
	FILE *out;

	mkdir(f->dir, 0755);
	snprintf(path, sizeof(path), "%s/%s", f->dir, KP_COMPACT_MANIFEST);
	out = fopen(path, "w");
	assert_non_null(out);
	fputs("not a manifest", out);
	fclose(out);
	assert_int_equal(kp_compact_recover(f->dir, &err), KP_ECORRUPT);
	assert_non_null(strstr(err.msg, "damaged"));
	assert_true(exists(f->dir, KP_COMPACT_MANIFEST));
}

static void test_keymap_keeps_the_highest_offset(void **state)
{
	struct kp_keymap m;
	uint64_t off;
	char key[32];

	(void)state;
	kp_keymap_init(&m);
	assert_false(kp_keymap_get(&m, "a", 1, &off));
	for (int i = 0; i < 50000; i++) {
		snprintf(key, sizeof(key), "key-%d", i % 20000);
		assert_int_equal(kp_keymap_put(&m, key, (uint32_t)strlen(key),
					       (uint64_t)i), 0);
	}
	assert_int_equal(kp_keymap_put(&m, "key-7", 5, 3), 0);
	assert_true(kp_keymap_get(&m, "key-7", 5, &off));
	assert_int_equal(off, 40007);
	assert_int_equal(kp_keymap_put(&m, "", 0, 9), 0);
	assert_true(kp_keymap_get(&m, "", 0, &off));
	assert_int_equal(off, 9);
	assert_false(kp_keymap_get(&m, "key-", 4, &off));
	assert_int_equal(m.used, 20001);
	assert_true(kp_keymap_bytes(&m) > 20000 * 8);
	kp_keymap_destroy(&m);
}

static void test_cleanup_names_and_policy(void **state)
{
	struct kp_compact_state s;
	enum kp_cleanup c;

	(void)state;
	assert_int_equal(kp_cleanup_parse("compact", 7, &c), 0);
	assert_int_equal(c, KP_CLEANUP_COMPACT);
	assert_int_equal(kp_cleanup_parse("delete,compact", 14, &c), 0);
	assert_string_equal(kp_cleanup_name(c), "compact,delete");
	assert_int_equal(kp_cleanup_parse("compacted", 9, &c), -1);
	assert_false(kp_cleanup_compacts(KP_CLEANUP_DELETE));
	assert_true(kp_compact_is_tombstone(TOMBSTONE, 1));
	assert_false(kp_compact_is_tombstone("\xc0\xc0", 2));

	memset(&s, 0, sizeof(s));
	assert_false(kp_compact_due(&s, 0, 0, 5000));      /* nothing sealed */
	assert_true(kp_compact_due(&s, 100, 100, 5000));   /* all dirty */
	assert_true(kp_compact_due(&s, 50, 100, 5000));    /* half */
	assert_false(kp_compact_due(&s, 49, 100, 5000));
	s.seen_end_ms = 1000;                              /* quiet since */
	assert_false(kp_compact_due(&s, 1, 100, 1000 + KP_COMPACT_QUIET_MS - 1));
	assert_true(kp_compact_due(&s, 1, 100, 1000 + KP_COMPACT_QUIET_MS));
	assert_false(kp_compact_due(&s, 0, 100, 1000 + KP_COMPACT_QUIET_MS));
	s.seen_end_ms = 0;
	s.last_run_ms = 4500;
	assert_false(kp_compact_due(&s, 100, 100, 5000));  /* too soon */
	assert_true(kp_compact_due(&s, 100, 100, 5500));
	s.tombstone_due_ms = 9000;
	assert_false(kp_compact_due(&s, 0, 100, 8999));
	assert_true(kp_compact_due(&s, 0, 100, 9000));
	s.running = true;
	assert_false(kp_compact_due(&s, 100, 100, 9000));
	s.running = false;
	s.retry_ms = 20000;
	assert_false(kp_compact_due(&s, 100, 100, 19999));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_latest_per_key_keyless_and_offsets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tombstones_kept_until_delete_retention, setup, teardown),
		cmocka_unit_test_setup_teardown(test_everything_removed_leaves_an_empty_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incremental_runs_merge_and_keep_one_per_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recovery_point_holds_segments_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_limit_stops_at_a_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_before_manifest_keeps_the_old_segments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_after_manifest_completes_the_swap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_during_renames_completes_the_swap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_after_swap_deletes_the_replaced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_manifest_is_refused, setup, teardown),
		cmocka_unit_test(test_keymap_keeps_the_highest_offset),
		cmocka_unit_test(test_cleanup_names_and_policy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
