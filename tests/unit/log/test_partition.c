/*
 * test_partition.c - the durable log of one partition: append and read
 * across rolls, indexes, retention, sync jobs, idempotent producers,
 * failure, and recovery from torn tails, corrupt batches and lost indexes.
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
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/error.h"
#include "log/batch.h"
#include "log/partition.h"
#include "support_dir.h"

#define VALUE_LEN 84

/* A fresh directory per test, removed afterwards. */
static int setup(void **state)
{
	return kp_test_dir_setup(state, "partition");
}

static int teardown(void **state)
{
	return kp_test_dir_teardown(state);
}

static void config(struct kp_partition_config *cfg, uint64_t segment_bytes,
		   enum kp_fsync_mode mode)
{
	kp_partition_config_default(cfg);
	cfg->segment_bytes = segment_bytes;
	cfg->index_interval_bytes = 256;
	cfg->fsync = mode;
}

static struct kp_partition *open_ok(const char *dir,
				    const struct kp_partition_config *cfg)
{
	struct kp_partition *p = NULL;
	struct kp_error err;
	int rc = kp_partition_open(dir, cfg, &p, &err);

	if (rc != 0)
		fail_msg("open %s: %s", dir, err.msg);
	return p;
}

/* The value of record `offset`: a msgpack str naming it. */
static void value_of(uint64_t offset, char *v)
{
	memset(v, 'x', VALUE_LEN);
	v[0] = (char)0xd9;
	v[1] = VALUE_LEN - 2;
	snprintf(v + 2, VALUE_LEN - 2, "record-%08" PRIu64, offset);
}

/* Appends a batch of n records for offsets first.., ts = 10 * offset. */
static uint64_t append(struct kp_partition *p, uint64_t first, uint32_t n,
		       int64_t now, uint64_t pid, uint32_t seq)
{
	struct kp_batch_builder b;
	struct kp_error err;
	struct kp_buf buf;
	char v[VALUE_LEN];
	uint64_t base;
	int rc;

	kp_buf_init(&buf);
	assert_int_equal(kp_batch_begin(&b, &buf, pid, seq), 0);
	for (uint32_t i = 0; i < n; i++) {
		value_of(first + i, v);
		assert_int_equal(kp_batch_add(&b, (int64_t)(first + i) * 10,
					      "k", 1, v, VALUE_LEN), 0);
	}
	kp_batch_finish(&b);
	rc = kp_partition_append(p, buf.data, buf.len, now, &base, &err);
	if (rc != 0)
		fail_msg("append: %s", err.msg);
	assert_int_equal(base, first);
	kp_buf_destroy(&buf);
	return base + n;
}

/* Appends `batches` batches of `per` records starting at offset 0. */
static uint64_t fill(struct kp_partition *p, int batches, uint32_t per)
{
	uint64_t next = 0;

	for (int i = 0; i < batches; i++)
		next = append(p, next, per, 0, 0, 0);
	return next;
}

/*
 * Reads batches from offset with max_bytes and checks every record in
 * them. Returns the offset after the last record read (offset when none).
 */
static uint64_t read_check(struct kp_partition *p, uint64_t offset,
			   size_t max_bytes, uint32_t *batches)
{
	struct kp_batch_header h;
	struct kp_record rec;
	struct kp_error err;
	struct kp_buf out;
	uint64_t next = offset, skip;
	char v[VALUE_LEN];
	size_t at = 0;
	int rc;

	kp_buf_init(&out);
	rc = kp_partition_read(p, offset, max_bytes, &out, &skip, &err);
	if (rc != 0)
		fail_msg("read at %" PRIu64 ": %s", offset, err.msg);
	if (batches != NULL)
		*batches = 0;
	while (at < out.len) {
		size_t pos = 0;
		uint32_t index;
		bool first = at == 0;

		assert_int_equal(kp_batch_header_decode(out.data + at,
							out.len - at, &h), 0);
		assert_true(kp_batch_crc_ok(out.data + at, &h));
		if (first) {
			assert_true(h.base_offset <= offset);
			assert_true(offset < h.base_offset + h.count);
		} else {
			assert_int_equal(h.base_offset, next);
		}
		while (kp_batch_next(out.data + at, &h, &pos, &index, &rec) ==
		       1) {
			value_of(rec.offset, v);
			assert_int_equal(rec.value_len, VALUE_LEN);
			assert_memory_equal(rec.value, v, VALUE_LEN);
			assert_int_equal(rec.ts, (int64_t)rec.offset * 10);
		}
		next = h.base_offset + h.count;
		at += h.batch_len;
		if (batches != NULL)
			(*batches)++;
	}
	kp_buf_destroy(&out);
	return next;
}

/* Reads everything from offset to the visible end; returns the end. */
static uint64_t read_all(struct kp_partition *p, uint64_t offset)
{
	struct kp_partition_stats st;

	kp_partition_stats(p, &st);
	while (offset < st.visible_end) {
		uint64_t next = read_check(p, offset, 1000, NULL);

		assert_true(next > offset);
		offset = next;
	}
	return offset;
}

static int count_files(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		size_t l = strlen(e->d_name), s = strlen(suffix);

		if (l > s && strcmp(e->d_name + l - s, suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static void seg_path(const char *dir, uint64_t base, const char *ext,
		     char *out, size_t cap)
{
	snprintf(out, cap, "%s/%020" PRIu64 "%s", dir, base, ext);
}

static void stats(struct kp_partition *p, struct kp_partition_stats *st)
{
	kp_partition_stats(p, st);
}

static void test_round_trip_across_size_rolls(void **state)
{
	struct fixture *f = *state;
	struct kp_partition_config cfg;
	struct kp_partition_stats st;
	struct kp_partition *p;
	uint64_t end;

	config(&cfg, 4096, KP_FSYNC_NEVER);
	p = open_ok(f->dir, &cfg);
	end = fill(p, 120, 5);
	stats(p, &st);
	assert_int_equal(st.end_offset, 600);
	assert_int_equal(st.visible_end, 600);
	assert_true(st.segments > 10);
	assert_int_equal(count_files(f->dir, ".log"), (int)st.segments);
	/* Every offset, as the first record of a 1-byte read. */
	for (uint64_t o = 0; o < end; o++) {
		uint32_t batches;

		read_check(p, o, 1, &batches);
		assert_int_equal(batches, 1);
	}
	assert_int_equal(read_all(p, 0), end);
	/* A large read crosses segment boundaries. */
	assert_int_equal(read_check(p, 0, 1 << 20, NULL), end);
	{
		struct kp_buf out;
		uint64_t skip;

		kp_buf_init(&out);
		assert_int_equal(kp_partition_read(p, end, 100, &out, &skip,
						   NULL), 0);
		assert_int_equal(out.len, 0);
		assert_int_equal(kp_partition_read(p, end + 1, 100, &out,
						   &skip, NULL), KP_EOFFSET);
		kp_buf_destroy(&out);
	}
	kp_partition_close(p);
}

static void test_roll_by_age(void **state)
{
	struct fixture *f = *state;
	struct kp_partition_config cfg;
	struct kp_partition_stats st;
	struct kp_partition *p;
	uint64_t next = 0;

	config(&cfg, 1 << 20, KP_FSYNC_NEVER);
	cfg.segment_ms = 1000;
	p = open_ok(f->dir, &cfg);
	next = append(p, next, 2, 5000, 0, 0);
	next = append(p, next, 2, 5999, 0, 0);
	stats(p, &st);
	assert_int_equal(st.segments, 1);
	next = append(p, next, 2, 6000, 0, 0);
	stats(p, &st);
	assert_int_equal(st.segments, 2);
	next = append(p, next, 2, 6999, 0, 0);
	stats(p, &st);
	assert_int_equal(st.segments, 2);
	kp_partition_close(p);
	/* The age survives a reopen. */
	p = open_ok(f->dir, &cfg);
	next = append(p, next, 2, 6500, 0, 0);
	stats(p, &st);
	assert_int_equal(st.segments, 2);
	next = append(p, next, 2, 7000, 0, 0);
	stats(p, &st);
	assert_int_equal(st.segments, 3);
	assert_int_equal(read_all(p, 0), next);
	kp_partition_close(p);
}

static void test_offset_for_time(void **state)
{
	struct fixture *f = *state;
	struct kp_partition_config cfg;
	struct kp_partition *p;
	uint64_t end, off;

	config(&cfg, 4096, KP_FSYNC_NEVER);
	p = open_ok(f->dir, &cfg);
	end = fill(p, 60, 5);
	for (int64_t ts = -5; ts <= (int64_t)end * 10 + 20; ts += 3) {
		uint64_t want = ts <= 0 ? 0 : (uint64_t)((ts + 9) / 10);

		if (want > end)
			want = end;
		assert_int_equal(kp_partition_offset_for_time(p, ts, &off,
							      NULL), 0);
		assert_int_equal(off, want);
	}
	kp_partition_close(p);
	p = open_ok(f->dir, &cfg);
	assert_int_equal(kp_partition_offset_for_time(p, 1234, &off, NULL), 0);
	assert_int_equal(off, 124);
	kp_partition_close(p);
}

static void test_retention_by_age(void **state)
{
	struct fixture *f = *state;
	struct kp_partition_config cfg;
	struct kp_partition_stats st, before;
	struct kp_partition *p;
	struct kp_buf out;
	uint64_t end, skip;
	int removed;

	config(&cfg, 4096, KP_FSYNC_NEVER);
	cfg.retention_ms = 1000;
	p = open_ok(f->dir, &cfg);
	end = fill(p, 60, 5); /* ts 0 .. 2990 */
	stats(p, &before);
	assert_true(before.segments >= 5);
	/* Nothing is older than 1 s at now = 1000. */
	assert_int_equal(kp_partition_enforce_retention(p, 1000), 0);
	/* At now = 3500 segments whose newest record is < 2500 go. */
	removed = kp_partition_enforce_retention(p, 3500);
	assert_true(removed > 0);
	stats(p, &st);
	assert_int_equal(st.segments, before.segments - (uint32_t)removed);
	assert_true(st.start_offset > 0);
	assert_true(st.start_offset <= 250);
	assert_true(st.size_bytes < before.size_bytes);
	assert_int_equal(count_files(f->dir, ".log"), (int)st.segments);
	assert_int_equal(count_files(f->dir, ".index"), (int)st.segments);
	kp_buf_init(&out);
	assert_int_equal(kp_partition_read(p, st.start_offset - 1, 100, &out,
					   &skip, NULL), KP_EOFFSET);
	kp_buf_destroy(&out);
	assert_int_equal(read_all(p, st.start_offset), end);
	/* Far in the future everything is old, but the active one stays. */
	kp_partition_enforce_retention(p, 1000000);
	stats(p, &st);
	assert_int_equal(st.segments, 1);
	assert_int_equal(st.end_offset, end);
	assert_int_equal(read_all(p, st.start_offset), end);
	assert_int_equal(append(p, end, 1, 1000000, 0, 0), end + 1);
	kp_partition_close(p);
	/* Default: keep everything. */
	config(&cfg, 4096, KP_FSYNC_NEVER);
	p = open_ok(f->dir, &cfg);
	assert_int_equal(kp_partition_enforce_retention(p, INT64_MAX / 2), 0);
	kp_partition_close(p);
}

static void test_retention_by_size(void **state)
{
	struct fixture *f = *state;
	struct kp_partition_config cfg;
	struct kp_partition_stats st;
	struct kp_partition *p;
	uint64_t end;

	config(&cfg, 4096, KP_FSYNC_NEVER);
	p = open_ok(f->dir, &cfg);
	end = fill(p, 100, 5);
	cfg.retention_bytes = 10000;
	kp_partition_configure(p, &cfg);
	assert_true(kp_partition_enforce_retention(p, 0) > 0);
	stats(p, &st);
	assert_true(st.size_bytes <= 10000);
	assert_true(st.segments >= 2);
	assert_int_equal(count_files(f->dir, ".log"), (int)st.segments);
	assert_int_equal(read_all(p, st.start_offset), end);
	cfg.retention_bytes = 0;
	kp_partition_configure(p, &cfg);
	kp_partition_enforce_retention(p, 0);
	stats(p, &st);
	assert_int_equal(st.segments, 1);
	assert_true(st.size_bytes > 0);
	kp_partition_close(p);
	/* The start offset survives a reopen. */
	p = open_ok(f->dir, &cfg);
	stats(p, &st);
	assert_int_equal(st.end_offset, end);
	assert_true(st.start_offset > 0);
	assert_int_equal(read_all(p, st.start_offset), end);
	kp_partition_close(p);
}

static void *run_job(void *job)
{
	kp_sync_job_run(job);
	return NULL;
}

static void test_sync_job_advances_durable_end(void **state)
{
	struct fixture *f = *state;
	struct kp_partition_config cfg;
	struct kp_partition_stats st;
	struct kp_partition *p;
	struct kp_sync_job *job;
	struct kp_error err;
	struct kp_buf out;
	pthread_t t;
	uint64_t skip, next;

	config(&cfg, 4096, KP_FSYNC_ALWAYS);
	p = open_ok(f->dir, &cfg);
	assert_null(kp_partition_sync_begin(p));
	next = fill(p, 30, 5);
	stats(p, &st);
	assert_int_equal(st.end_offset, 150);
	assert_int_equal(st.durable_end, 0);
	assert_int_equal(st.visible_end, 0);
	/* Nothing is readable before it is durable. */
	kp_buf_init(&out);
	assert_int_equal(kp_partition_read(p, 0, 1000, &out, &skip, NULL), 0);
	assert_int_equal(out.len, 0);
	job = kp_partition_sync_begin(p);
	assert_non_null(job);
	assert_true(kp_partition_syncing(p));
	assert_null(kp_partition_sync_begin(p));
	/* Appends during the sync are not covered by it. */
	next = append(p, next, 5, 0, 0, 0);
	assert_int_equal(pthread_create(&t, NULL, run_job, job), 0);
	pthread_join(t, NULL);
	assert_int_equal(kp_partition_sync_done(p, job, &err), 0);
	assert_false(kp_partition_syncing(p));
	stats(p, &st);
	assert_int_equal(st.durable_end, 150);
	assert_int_equal(st.visible_end, 150);
	assert_int_equal(read_all(p, 0), 150);
	job = kp_partition_sync_begin(p);
	assert_non_null(job);
	kp_sync_job_run(job);
	assert_int_equal(kp_partition_sync_done(p, job, &err), 0);
	stats(p, &st);
	assert_int_equal(st.visible_end, next);
	assert_null(kp_partition_sync_begin(p));
	kp_buf_destroy(&out);
	kp_partition_close(p);

	/* fsync=never: visible when written. */
	cfg.fsync = KP_FSYNC_NEVER;
	p = open_ok(f->dir, &cfg);
	next = append(p, next, 5, 0, 0, 0);
	stats(p, &st);
	assert_int_equal(st.visible_end, next);
	assert_true(st.durable_end < next);
	kp_partition_close(p);
}

static void test_reopen_keeps_everything(void **state)
{
	struct fixture *f = *state;
	struct kp_partition_config cfg;
	struct kp_partition_stats a, b;
	struct kp_partition *p;
	uint64_t end;

	config(&cfg, 4096, KP_FSYNC_NEVER);
	p = open_ok(f->dir, &cfg);
	end = fill(p, 70, 5);
	stats(p, &a);
	kp_partition_close(p);
	p = open_ok(f->dir, &cfg);
	stats(p, &b);
	assert_int_equal(b.end_offset, end);
	assert_int_equal(b.visible_end, end);
	assert_int_equal(b.segments, a.segments);
	assert_int_equal(b.size_bytes, a.size_bytes);
	assert_int_equal(read_all(p, 0), end);
	for (uint64_t o = 0; o < end; o += 7)
		read_check(p, o, 1, NULL);
	end = append(p, end, 3, 0, 0, 0);
	kp_partition_close(p);
	p = open_ok(f->dir, &cfg);
	assert_int_equal(read_all(p, 0), end);
	kp_partition_close(p);
}

static void test_producer_idempotence(void **state)
{
	struct fixture *f = *state;
	struct kp_partition_config cfg;
	struct kp_partition_stats st;
	struct kp_partition *p;
	uint64_t next = 0, dup_base;
	uint32_t dup_count;

	config(&cfg, 4096, KP_FSYNC_NEVER);
	p = open_ok(f->dir, &cfg);
	assert_int_equal(kp_partition_producer_check(p, 42, 0, &dup_base,
						     &dup_count), 0);
	next = append(p, next, 3, 0, 42, 0);
	assert_int_equal(kp_partition_producer_check(p, 42, 0, &dup_base,
						     &dup_count), 1);
	assert_int_equal(dup_base, 0);
	assert_int_equal(dup_count, 3);
	assert_int_equal(kp_partition_producer_check(p, 42, 2, NULL, NULL),
			 KP_ESEQUENCE);
	for (uint32_t seq = 1; seq <= 6; seq++) {
		assert_int_equal(kp_partition_producer_check(p, 42, seq, NULL,
							     NULL), 0);
		next = append(p, next, 2, 0, 42, seq);
		next = append(p, next, 1, 0, 7, seq - 1);
	}
	/* seq 0 and 1 are older than the last five. */
	assert_int_equal(kp_partition_producer_check(p, 42, 0, NULL, NULL),
			 KP_ESEQUENCE);
	assert_int_equal(kp_partition_producer_check(p, 42, 1, NULL, NULL),
			 KP_ESEQUENCE);
	assert_int_equal(kp_partition_producer_check(p, 42, 2, &dup_base,
						     &dup_count), 1);
	assert_int_equal(dup_base, 6);
	assert_int_equal(dup_count, 2);
	stats(p, &st);
	assert_int_equal(st.duplicates, 2);
	kp_partition_close(p);

	p = open_ok(f->dir, &cfg);
	assert_int_equal(kp_partition_producer_check(p, 42, 6, &dup_base,
						     &dup_count), 1);
	assert_int_equal(dup_base, 18);
	assert_int_equal(kp_partition_producer_check(p, 7, 5, &dup_base,
						     &dup_count), 1);
	assert_int_equal(dup_base, 20);
	assert_int_equal(kp_partition_producer_check(p, 42, 7, NULL, NULL), 0);
	assert_int_equal(kp_partition_producer_check(p, 42, 9, NULL, NULL),
			 KP_ESEQUENCE);
	kp_partition_close(p);
}

static void test_fsync_failure_stops_the_partition(void **state)
{
	struct fixture *f = *state;
	struct kp_partition_config cfg;
	struct kp_partition_stats st;
	struct kp_partition *p;
	struct kp_sync_job *job;
	struct kp_batch_builder b;
	struct kp_error err;
	struct kp_buf buf;
	uint64_t base;

	config(&cfg, 4096, KP_FSYNC_ALWAYS);
	p = open_ok(f->dir, &cfg);
	fill(p, 3, 5);
	job = kp_partition_sync_begin(p);
	assert_non_null(job);
	kp_sync_job_inject_error(job, -EIO);
	kp_sync_job_run(job);
	assert_int_equal(kp_partition_sync_done(p, job, &err), -EIO);
	assert_non_null(strstr(err.msg, "fdatasync"));
	assert_non_null(strstr(err.msg, ".log"));
	stats(p, &st);
	assert_true(st.failed);
	assert_int_equal(st.durable_end, 0);
	assert_int_equal(st.visible_end, 0);
	kp_buf_init(&buf);
	assert_int_equal(kp_batch_begin(&b, &buf, 0, 0), 0);
	assert_int_equal(kp_batch_add(&b, 1, NULL, 0, "\xc0", 1), 0);
	kp_batch_finish(&b);
	assert_int_equal(kp_partition_append(p, buf.data, buf.len, 0, &base,
					     &err), KP_ESTORAGE);
	assert_non_null(strstr(err.msg, "stopped accepting writes"));
	assert_null(kp_partition_sync_begin(p));
	kp_buf_destroy(&buf);
	kp_partition_close(p);
}

/* Length and position of the last batch of a segment file. */
static void last_batch(const char *path, uint64_t *pos, uint64_t *len)
{
	struct kp_batch_header h;
	char hdr[KP_BATCH_HEADER_SIZE];
	int fd = open(path, O_RDONLY);
	struct stat st;
	uint64_t at = 0;

	assert_true(fd >= 0);
	fstat(fd, &st);
	while (at < (uint64_t)st.st_size) {
		assert_int_equal(pread(fd, hdr, sizeof(hdr), (off_t)at),
				 (ssize_t)sizeof(hdr));
		kp_batch_header_decode(hdr, sizeof(hdr), &h);
		*pos = at;
		*len = h.batch_len;
		at += h.batch_len;
	}
	close(fd);
}

static void check_torn(const char *dir, const struct kp_partition_config *cfg,
		       uint64_t keep, uint64_t pid, uint32_t seq)
{
	struct kp_partition_stats st;
	struct kp_partition *p = open_ok(dir, cfg);

	stats(p, &st);
	assert_int_equal(st.end_offset, keep);
	assert_int_equal(read_all(p, 0), keep);
	/* The producer's cut batch is new again, not a duplicate. */
	if (pid != 0)
		assert_int_equal(kp_partition_producer_check(p, pid, seq, NULL,
							     NULL), 0);
	assert_int_equal(append(p, keep, 4, 0, pid, seq), keep + 4);
	assert_int_equal(read_all(p, 0), keep + 4);
	kp_partition_close(p);
	p = open_ok(dir, cfg);
	assert_int_equal(read_all(p, 0), keep + 4);
	kp_partition_close(p);
}

static void test_torn_tail_at_every_byte(void **state)
{
	struct fixture *f = *state;
	struct kp_partition_config cfg;
	struct kp_partition *p;
	char path[700];
	uint64_t pos = 0, len = 0;

	config(&cfg, 1 << 20, KP_FSYNC_NEVER);
	p = open_ok(f->dir, &cfg);
	fill(p, 3, 2);
	kp_partition_close(p);
	seg_path(f->dir, 0, ".log", path, sizeof(path));
	last_batch(path, &pos, &len);
	assert_true(len > 200);
	for (uint64_t cut = pos; cut < pos + len; cut++) {
		kp_file_remove_tree(f->dir);
		p = open_ok(f->dir, &cfg);
		append(p, 0, 2, 0, 9, 0);
		append(p, 2, 2, 0, 9, 1);
		append(p, 4, 2, 0, 9, 2);
		kp_partition_close(p);
		assert_int_equal(truncate(path, (off_t)cut), 0);
		check_torn(f->dir, &cfg, 4, 9, 2);
	}
}

/*
 * Simulates a crash: a child appends, syncs (writing a recovery point),
 * appends more and exits without closing.
 */
static void crash_after(const char *dir, const struct kp_partition_config *cfg,
			int synced, int unsynced)
{
	pid_t child = fork();
	int status;

	assert_true(child >= 0);
	if (child == 0) {
		struct kp_partition *p = NULL;
		struct kp_sync_job *job;
		uint64_t next = 0, base;
		struct kp_batch_builder b;
		struct kp_buf buf;
		char v[VALUE_LEN];

		if (kp_partition_open(dir, cfg, &p, NULL) != 0)
			_exit(2);
		for (int i = 0; i < synced + unsynced; i++) {
			if (i == synced) {
				job = kp_partition_sync_begin(p);
				kp_sync_job_run(job);
				if (kp_partition_sync_done(p, job, NULL) != 0)
					_exit(3);
			}
			kp_buf_init(&buf);
			kp_batch_begin(&b, &buf, 5, (uint32_t)i);
			for (int r = 0; r < 4; r++) {
				value_of(next + (uint64_t)r, v);
				kp_batch_add(&b, (int64_t)(next + (uint64_t)r) * 10,
					     "k", 1, v, VALUE_LEN);
			}
			kp_batch_finish(&b);
			if (kp_partition_append(p, buf.data, buf.len, 0, &base,
						NULL) != 0)
				_exit(4);
			kp_buf_destroy(&buf);
			next += 4;
		}
		_exit(0);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_crash_torn_tail_after_recovery_point(void **state)
{
	struct fixture *f = *state;
	struct kp_partition_config cfg;
	char path[700];
	uint64_t pos = 0, len = 0;

	config(&cfg, 1 << 20, KP_FSYNC_NEVER);
	seg_path(f->dir, 0, ".log", path, sizeof(path));
	for (uint64_t k = 0;; k += 13) {
		kp_file_remove_tree(f->dir);
		crash_after(f->dir, &cfg, 20, 2);
		last_batch(path, &pos, &len);
		if (k >= len)
			break;
		assert_int_equal(truncate(path, (off_t)(pos + k)), 0);
		/* 20 synced batches + 1 whole unsynced one survive. */
		check_torn(f->dir, &cfg, 84, 5, 21);
	}
	/* A crash with nothing torn keeps everything. */
	kp_file_remove_tree(f->dir);
	crash_after(f->dir, &cfg, 20, 2);
	check_torn(f->dir, &cfg, 88, 5, 22);
}

/*
 * A power loss can tear a segment that was rolled before its tail was
 * synced: with fsync=always, the rolled segments after the recovery point
 * are checked batch by batch, and the first torn one is cut together with
 * every segment after it (none of it was acknowledged).
 */
/* Reopens: keep records, all readable, producer 5's batch seq new again. */
static void check_kept(const char *dir, const struct kp_partition_config *cfg,
		       uint64_t keep, uint32_t seq)
{
	struct kp_partition_stats st;
	struct kp_partition *p = open_ok(dir, cfg);

	stats(p, &st);
	assert_int_equal(st.end_offset, keep);
	assert_int_equal(read_all(p, 0), keep);
	assert_int_equal(kp_partition_producer_check(p, 5, seq, NULL, NULL), 0);
	kp_partition_close(p);
}

/* The base offset of the first segment after the one at 0, or 0. */
static uint64_t second_segment(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	uint64_t best = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		unsigned long long base;
		char ext[16];

		if (sscanf(e->d_name, "%20llu.%15s", &base, ext) == 2 &&
		    strcmp(ext, "log") == 0 && base > 0 &&
		    (best == 0 || base < best))
			best = base;
	}
	closedir(d);
	return best;
}

static void test_crash_torn_rolled_segment(void **state)
{
	struct fixture *f = *state;
	struct kp_partition_config cfg;
	char path[700], later[700];
	uint64_t pos = 0, len = 0, first, keep, next;

	config(&cfg, 1200, KP_FSYNC_ALWAYS);
	/* 2 synced batches, then 6 more that roll over several segments. */
	crash_after(f->dir, &cfg, 2, 6);
	first = second_segment(f->dir);
	assert_true(first > 0 && first <= 8);
	seg_path(f->dir, first, ".log", path, sizeof(path));
	last_batch(path, &pos, &len);
	keep = first + 4 * (pos / len);
	next = first + 4 * (pos / len + 1);
	/* The torn segment was sealed: a later one exists. */
	seg_path(f->dir, next, ".log", later, sizeof(later));
	assert_int_equal(access(later, F_OK), 0);
	assert_int_equal(truncate(path, (off_t)(pos + len / 2)), 0);
	check_kept(f->dir, &cfg, keep, (uint32_t)(keep / 4));
	assert_int_not_equal(access(later, F_OK), 0);
	/* Nothing torn: everything written before the crash stays. */
	kp_file_remove_tree(f->dir);
	crash_after(f->dir, &cfg, 2, 6);
	check_kept(f->dir, &cfg, 32, 8);
}

static void flip_bit(const char *path, uint64_t pos)
{
	int fd = open(path, O_RDWR);
	char c;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, (off_t)pos), 1);
	c ^= 0x10;
	assert_int_equal(pwrite(fd, &c, 1, (off_t)pos), 1);
	close(fd);
}

static void test_corrupt_sealed_batch_is_never_served(void **state)
{
	struct fixture *f = *state;
	struct kp_partition_config cfg;
	struct kp_partition *p;
	struct kp_error err;
	struct kp_buf out;
	char path[700];
	uint64_t end, skip, pos = 0, len = 0;
	uint32_t batches;

	config(&cfg, 4096, KP_FSYNC_NEVER);
	p = open_ok(f->dir, &cfg);
	end = fill(p, 40, 5);
	kp_partition_close(p);
	/* Batch 2 (offsets 10..14) of the first, sealed segment. */
	seg_path(f->dir, 0, ".log", path, sizeof(path));
	last_batch(path, &pos, &len);
	flip_bit(path, 2 * len + 200);
	p = open_ok(f->dir, &cfg);
	kp_buf_init(&out);
	for (uint64_t o = 10; o < 15; o++) {
		assert_int_equal(kp_partition_read(p, o, 1000, &out, &skip,
						   &err), KP_ECORRUPT);
		assert_int_equal(out.len, 0);
		assert_int_equal(skip, 15);
		assert_non_null(strstr(err.msg, "00000000000000000000.log"));
	}
	/* Reads before it stop short of it; reads after it are fine. */
	assert_int_equal(read_check(p, 0, 1 << 20, &batches), 10);
	assert_int_equal(batches, 2);
	assert_int_equal(read_all(p, 15), end);
	for (uint64_t o = 0; o < end; o++) {
		if (o < 10 || o >= 15)
			read_check(p, o, 1, NULL);
	}
	kp_buf_destroy(&out);
	kp_partition_close(p);
}

static void test_lost_and_garbled_indexes_are_rebuilt(void **state)
{
	struct fixture *f = *state;
	struct kp_partition_config cfg;
	struct kp_partition_stats st;
	struct kp_partition *p;
	char path[700];
	struct stat sb;
	uint64_t end, off, bases[4];
	int fd;

	config(&cfg, 4096, KP_FSYNC_NEVER);
	cfg.index_interval_bytes = 300;
	p = open_ok(f->dir, &cfg);
	end = fill(p, 60, 5);
	stats(p, &st);
	assert_true(st.segments >= 5);
	kp_partition_close(p);
	/* Find the first four segments' bases from the directory. */
	{
		uint64_t next = 0;
		int n = 0;

		while (n < 4) {
			seg_path(f->dir, next, ".log", path, sizeof(path));
			if (stat(path, &sb) == 0)
				bases[n++] = next;
			next++;
		}
	}
	/* Segment 0: index deleted. */
	seg_path(f->dir, bases[0], ".index", path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	/* Segment 1: index garbled to an impossible size. */
	seg_path(f->dir, bases[1], ".index", path, sizeof(path));
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "garbage!!", 9), 9);
	close(fd);
	/* Segment 2: right size, entries out of order. */
	seg_path(f->dir, bases[2], ".index", path, sizeof(path));
	stat(path, &sb);
	assert_true(sb.st_size >= 16);
	fd = open(path, O_WRONLY);
	assert_int_equal(pwrite(fd, "\xff\xff\x00\x00\xff\xff\x00\x00", 8, 0),
			 8);
	close(fd);
	/* Segment 3: time index deleted. */
	seg_path(f->dir, bases[3], ".timeindex", path, sizeof(path));
	assert_int_equal(unlink(path), 0);

	p = open_ok(f->dir, &cfg);
	for (uint64_t o = 0; o < end; o++)
		read_check(p, o, 1, NULL);
	assert_int_equal(read_all(p, 0), end);
	for (int64_t ts = 0; ts < (int64_t)end * 10; ts += 17) {
		assert_int_equal(kp_partition_offset_for_time(p, ts, &off,
							      NULL), 0);
		assert_int_equal(off, (uint64_t)((ts + 9) / 10));
	}
	kp_partition_close(p);
	for (int i = 0; i < 4; i++) {
		seg_path(f->dir, bases[i], ".index", path, sizeof(path));
		assert_int_equal(stat(path, &sb), 0);
		assert_true(sb.st_size > 0);
		assert_int_equal(sb.st_size % 12, 0);
		seg_path(f->dir, bases[i], ".timeindex", path, sizeof(path));
		assert_int_equal(stat(path, &sb), 0);
		assert_true(sb.st_size > 0);
		assert_int_equal(sb.st_size % 16, 0);
	}
	/* Deleting the active segment's index is recovered too. */
	stats(p = open_ok(f->dir, &cfg), &st);
	kp_partition_close(p);
	{
		uint64_t next = end;

		while (next > 0) {
			seg_path(f->dir, next, ".log", path, sizeof(path));
			if (stat(path, &sb) == 0)
				break;
			next--;
		}
		seg_path(f->dir, next, ".index", path, sizeof(path));
		assert_int_equal(unlink(path), 0);
	}
	p = open_ok(f->dir, &cfg);
	for (uint64_t o = 0; o < end; o++)
		read_check(p, o, 1, NULL);
	kp_partition_close(p);
	assert_int_equal(stat(path, &sb), 0);
	assert_true(sb.st_size > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip_across_size_rolls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roll_by_age, setup, teardown),
		cmocka_unit_test_setup_teardown(test_offset_for_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_by_age, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_by_size, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_job_advances_durable_end, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_everything, setup, teardown),
		cmocka_unit_test_setup_teardown(test_producer_idempotence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fsync_failure_stops_the_partition, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail_at_every_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_torn_tail_after_recovery_point, setup, teardown),
		cmocka_unit_test_setup_teardown(test_crash_torn_rolled_segment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_sealed_batch_is_never_served, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lost_and_garbled_indexes_are_rebuilt, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
