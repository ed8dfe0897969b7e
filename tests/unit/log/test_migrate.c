/*
 * test_migrate.c - a partition directory written in batch format 1 is
 * rewritten in format 2 when opened: offsets, timestamps, keys, values and
 * producer state unchanged, the recovery point moved with its segment,
 * damaged old batches kept unreadable, a crash part way carried on.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/crc32c.h"
#include "base/error.h"
#include "base/fsutil.h"
#include "log/batch.h"
#include "log/batch_v1.h"
#include "log/partition.h"
#include "log/migrate.h"
#include "log/producer.h"
#include "log/recovery.h"
#include "support_dir.h"

#define VALUE_LEN 40
#define PER_BATCH 4
#define BATCHES 5
#define SEGMENTS 3
#define PER_SEGMENT (PER_BATCH * BATCHES)
#define END (PER_SEGMENT * SEGMENTS)

static int setup(void **state)
{
	int rc = kp_test_dir_setup(state, "migrate");

	if (rc == 0)
		mkdir(((struct fixture *)*state)->dir, 0755);
	return rc;
}

static int teardown(void **state)
{
	return kp_test_dir_teardown(state);
}

static void value_of(uint64_t offset, char *v)
{
	memset(v, 'y', VALUE_LEN);
	v[0] = (char)0xd9;
	v[1] = VALUE_LEN - 2;
	snprintf(v + 2, VALUE_LEN - 2, "old-%08" PRIu64, offset);
}

/* Appends a format-1 batch of PER_BATCH records at base to out. */
static void v1_batch(struct kp_buf *out, uint64_t base, uint64_t pid,
		     uint32_t seq)
{
	size_t start = out->len, at;
	char *p;

	assert_int_equal(kp_buf_reserve(out, 1024), 0);
	p = out->data + start;
	at = KP_BATCH_V1_HEADER_SIZE;
	for (uint32_t i = 0; i < PER_BATCH; i++) {
		kp_put_le32(p + at, 12 + 1 + VALUE_LEN);
		kp_put_le64(p + at + 4, (base + i) * 10);
		kp_put_le32(p + at + 12, 1);
		p[at + 16] = 'k';
		value_of(base + i, p + at + 17);
		at += 16 + 1 + VALUE_LEN;
	}
	memset(p, 0, KP_BATCH_V1_HEADER_SIZE);
	kp_put_le64(p, base);
	kp_put_le32(p + 8, (uint32_t)at);
	kp_put_le32(p + 12, KP_BATCH_V1_MAGIC);
	kp_put_le32(p + 20, PER_BATCH);
	kp_put_le64(p + 24, base * 10);
	kp_put_le64(p + 32, (base + PER_BATCH - 1) * 10);
	kp_put_le64(p + 40, pid);
	kp_put_le32(p + 48, seq);
	kp_put_le32(p + 16, kp_crc32c(0, p + 20, at - 20));
	out->len += at;
}

static void path_of(const char *dir, uint64_t base, const char *ext,
		    char *out, size_t cap)
{
	snprintf(out, cap, "%s/%020" PRIu64 "%s", dir, base, ext);
}

static void write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

/*
 * Writes an old data directory: SEGMENTS segments, producer 9's batches
 * in the last one, old-style index files, and a recovery point at the end
 * of the last segment (its position in format 1).
 */
static void write_old_dir(const char *dir)
{
	struct kp_producer_table prod;
	struct kp_ckpt ck;
	struct kp_buf seg;
	char path[700];

	kp_buf_init(&seg);
	kp_producer_table_init(&prod);
	for (uint64_t s = 0; s < SEGMENTS; s++) {
		uint64_t base = s * PER_SEGMENT;

		kp_buf_reset(&seg);
		for (uint32_t b = 0; b < BATCHES; b++) {
			bool last = s == SEGMENTS - 1;
			uint64_t at = base + (uint64_t)b * PER_BATCH;

			v1_batch(&seg, at, last ? 9 : 0, b);
			if (last)
				assert_int_equal(kp_producer_update(&prod, 9, b,
								    at,
								    PER_BATCH),
						 0);
		}
		path_of(dir, base, ".log", path, sizeof(path));
		write_file(path, seg.data, seg.len);
		path_of(dir, base, ".index", path, sizeof(path));
		write_file(path, "\x00\x00\x00\x00\x10\x00\x00\x00", 8);
		path_of(dir, base, ".timeindex", path, sizeof(path));
		write_file(path, "\x09\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00",
			   12);
	}
	ck.segment_base = (SEGMENTS - 1) * PER_SEGMENT;
	ck.position = seg.len;
	ck.next_offset = END;
	ck.max_ts = (END - 1) * 10;
	ck.created_ms = 1;
	ck.index_entries = 1;
	ck.time_entries = 1;
	assert_int_equal(kp_recovery_ckpt_write(dir, &ck, &prod, false), 0);
	kp_producer_table_destroy(&prod);
	kp_buf_destroy(&seg);
}

static struct kp_partition *open_ok(const char *dir)
{
	struct kp_partition_config cfg;
	struct kp_partition *p = NULL;
	struct kp_error err;

	kp_partition_config_default(&cfg);
	cfg.index_interval_bytes = 200;
	cfg.fsync = KP_FSYNC_NEVER;
	if (kp_partition_open(dir, &cfg, &p, &err) != 0)
		fail_msg("open %s: %s", dir, err.msg);
	return p;
}

/*
 * Reads everything from 0 following skip offsets; checks each record
 * exactly; returns how many were read, *skipped the offsets skipped.
 */
static uint64_t read_all(struct kp_partition *p, uint64_t *skipped)
{
	struct kp_partition_stats st;
	struct kp_batch_header h;
	struct kp_record rec;
	struct kp_buf out;
	char v[VALUE_LEN];
	uint64_t offset = 0, n = 0, skip;
	int rc;

	*skipped = 0;
	kp_partition_stats(p, &st);
	kp_buf_init(&out);
	while (offset < st.visible_end) {
		size_t at = 0;

		kp_buf_reset(&out);
		rc = kp_partition_read(p, offset, 300, &out, &skip, NULL);
		if (rc == KP_ECORRUPT) {
			assert_true(skip > offset);
			*skipped += skip - offset;
			offset = skip;
			continue;
		}
		assert_int_equal(rc, 0);
		while (at < out.len) {
			size_t pos = 0;
			uint32_t index;

			assert_int_equal(kp_batch_header_decode(out.data + at,
								out.len - at,
								&h), 0);
			assert_int_equal(kp_batch_verify(out.data + at, &h), 0);
			while (kp_batch_next(out.data + at, &h, &pos, &index,
					     &rec) == 1) {
				if (rec.offset < offset)
					continue;
				if (rec.offset < END) {
					value_of(rec.offset, v);
					assert_int_equal(rec.value_len,
							 VALUE_LEN);
					assert_memory_equal(rec.value, v,
							    VALUE_LEN);
					assert_int_equal(rec.ts,
							 (int64_t)rec.offset *
								 10);
					assert_int_equal(rec.key_len, 1);
					assert_int_equal(rec.key[0], 'k');
				}
				assert_int_equal(rec.offset, offset);
				offset = rec.offset + 1;
				n++;
			}
			at += h.batch_len;
		}
	}
	kp_buf_destroy(&out);
	return n;
}

static void check_format_2(const char *dir)
{
	char path[700], magic[4];
	int fd;

	for (uint64_t s = 0; s < SEGMENTS; s++) {
		path_of(dir, s * PER_SEGMENT, ".log", path, sizeof(path));
		fd = open(path, O_RDONLY);
		assert_true(fd >= 0);
		assert_int_equal(pread(fd, magic, 4, 12), 4);
		close(fd);
		assert_memory_equal(magic, "KPB2", 4);
		path_of(dir, s * PER_SEGMENT, ".index", path, sizeof(path));
		assert_int_equal(file_size(path) % KP_INDEX_ENTRY, 0);
		assert_true(file_size(path) > 0);
		path_of(dir, s * PER_SEGMENT, ".timeindex", path, sizeof(path));
		assert_int_equal(file_size(path) % KP_TIMEINDEX_ENTRY, 0);
		path_of(dir, s * PER_SEGMENT, ".log.migrate", path,
			sizeof(path));
		assert_int_not_equal(access(path, F_OK), 0);
	}
}

static void test_old_directory_is_migrated(void **state)
{
	struct fixture *f = *state;
	struct kp_producer_table prod;
	struct kp_partition_stats st;
	struct kp_partition *p;
	struct kp_ckpt ck;
	char path[700], last[700];
	uint64_t skipped, base, before;
	uint32_t count;

	write_old_dir(f->dir);
	/* A crash of an earlier migration left a half-written file. */
	path_of(f->dir, PER_SEGMENT, ".log.migrate", path, sizeof(path));
	write_file(path, "half", 4);
	p = open_ok(f->dir);
	kp_partition_stats(p, &st);
	assert_int_equal(st.start_offset, 0);
	assert_int_equal(st.end_offset, END);
	assert_int_equal(st.segments, SEGMENTS);
	assert_int_equal(read_all(p, &skipped), END);
	assert_int_equal(skipped, 0);
	/* The producer state survived: a retry is a duplicate. */
	assert_int_equal(kp_partition_producer_check(p, 9, BATCHES - 1, &base,
						     &count), 1);
	assert_int_equal(base, END - PER_BATCH);
	assert_int_equal(count, PER_BATCH);
	kp_partition_close(p);
	check_format_2(f->dir);
	/* The recovery point moved with the last segment. */
	path_of(f->dir, (SEGMENTS - 1) * PER_SEGMENT, ".log", last,
		sizeof(last));
	kp_producer_table_init(&prod);
	assert_int_equal(kp_recovery_ckpt_read(f->dir, &ck, &prod), 0);
	assert_int_equal(ck.position, file_size(last));
	assert_int_equal(ck.next_offset, END);
	kp_producer_table_destroy(&prod);
	/* Once migrated, a restart leaves the files alone. */
	before = file_size(last);
	p = open_ok(f->dir);
	assert_int_equal(read_all(p, &skipped), END);
	kp_partition_close(p);
	assert_int_equal(file_size(last), before);
}

/* Flips one bit of the old file at pos. */
static void flip(const char *path, uint64_t pos, int bit)
{
	int fd = open(path, O_RDWR);
	char c;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, (off_t)pos), 1);
	c ^= (char)(1 << bit);
	assert_int_equal(pwrite(fd, &c, 1, (off_t)pos), 1);
	close(fd);
}

/*
 * An old batch with a flipped base offset (format 1 did not check it) is
 * migrated at the offset it must have; one with a flipped record byte
 * stays damaged, and reading steps over it to the next batch.
 */
static void test_damaged_old_batches(void **state)
{
	struct fixture *f = *state;
	struct kp_partition *p;
	struct kp_buf out;
	char path[700];
	uint64_t skipped, skip, batch_len = KP_BATCH_V1_HEADER_SIZE +
					    PER_BATCH * (17 + VALUE_LEN);

	write_old_dir(f->dir);
	path_of(f->dir, 0, ".log", path, sizeof(path));
	flip(path, 1 * batch_len + 1, 3);        /* base of batch 1 */
	path_of(f->dir, PER_SEGMENT, ".log", path, sizeof(path));
	flip(path, 2 * batch_len + 100, 6);      /* a value in batch 2 */
	p = open_ok(f->dir);
	assert_int_equal(read_all(p, &skipped), END - PER_BATCH);
	assert_int_equal(skipped, PER_BATCH);
	kp_buf_init(&out);
	for (uint64_t o = PER_SEGMENT + 2 * PER_BATCH;
	     o < PER_SEGMENT + 3 * PER_BATCH; o++) {
		kp_buf_reset(&out);
		assert_int_equal(kp_partition_read(p, o, 1, &out, &skip, NULL),
				 KP_ECORRUPT);
		assert_int_equal(skip, PER_SEGMENT + 3 * PER_BATCH);
	}
	kp_buf_destroy(&out);
	kp_partition_close(p);
	/* Migrated once: the damaged bytes stay, nothing migrates again. */
	p = open_ok(f->dir);
	assert_int_equal(read_all(p, &skipped), END - PER_BATCH);
	kp_partition_close(p);
}

/* Only some segments were migrated before a crash: the rest follow. */
static void test_half_migrated_directory(void **state)
{
	struct fixture *f = *state;
	struct kp_partition *p;
	struct kp_buf seg;
	char path[700];
	uint64_t skipped;

	write_old_dir(f->dir);
	p = open_ok(f->dir);
	kp_partition_close(p);
	/* Put segment 1 back in format 1, as if its rename had not happened. */
	kp_buf_init(&seg);
	for (uint32_t b = 0; b < BATCHES; b++)
		v1_batch(&seg, PER_SEGMENT + (uint64_t)b * PER_BATCH, 0, b);
	path_of(f->dir, PER_SEGMENT, ".log", path, sizeof(path));
	write_file(path, seg.data, seg.len);
	kp_buf_destroy(&seg);
	p = open_ok(f->dir);
	assert_int_equal(read_all(p, &skipped), END);
	assert_int_equal(skipped, 0);
	kp_partition_close(p);
	check_format_2(f->dir);
}

/* A recovery point moves with its segment to the same batch boundary. */
static void test_marks_move(void **state)
{
	struct fixture *f = *state;
	const uint64_t bases[SEGMENTS] = { 0, PER_SEGMENT, 2 * PER_SEGMENT };
	const uint64_t old_len = KP_BATCH_V1_HEADER_SIZE +
				 PER_BATCH * (17 + VALUE_LEN);
	const uint64_t new_len = KP_BATCH_HEADER_SIZE +
				 PER_BATCH * (KP_RECORD_HEADER_SIZE + 1 +
					      VALUE_LEN);
	struct kp_migrate_mark mark;
	struct kp_error err;
	char path[700];

	write_old_dir(f->dir);
	memset(&mark, 0, sizeof(mark));
	mark.valid = true;
	mark.segment_base = PER_SEGMENT;
	mark.position = 2 * old_len;
	mark.next_offset = PER_SEGMENT + 2 * PER_BATCH;
	assert_int_equal(kp_migrate_segments(f->dir, bases, SEGMENTS, 200,
					     &mark, &err), 0);
	assert_true(mark.moved);
	assert_int_equal(mark.position, 2 * new_len);
	assert_int_equal(mark.next_offset, PER_SEGMENT + 2 * PER_BATCH);
	path_of(f->dir, PER_SEGMENT, ".log", path, sizeof(path));
	assert_int_equal(file_size(path), BATCHES * new_len);
	/* Not at a batch boundary: back to the segment's start. */
	write_old_dir(f->dir);
	mark.moved = false;
	mark.segment_base = 0;
	mark.position = old_len + 3;
	assert_int_equal(kp_migrate_segments(f->dir, bases, SEGMENTS, 200,
					     &mark, &err), 0);
	assert_true(mark.moved);
	assert_int_equal(mark.position, 0);
	assert_int_equal(mark.next_offset, 0);
	/* Nothing to migrate: the mark stays. */
	mark.moved = false;
	mark.position = old_len;
	assert_int_equal(kp_migrate_segments(f->dir, bases, SEGMENTS, 200,
					     &mark, &err), 0);
	assert_false(mark.moved);
	assert_int_equal(mark.position, old_len);
}

/*
 * A format-2 segment whose first header is damaged is not taken for an old
 * one, even when its records hold the old magic: it is left as it is.
 */
static void test_damaged_new_segment_is_not_migrated(void **state)
{
	struct fixture *f = *state;
	struct kp_batch_builder b;
	struct kp_partition *p;
	struct kp_buf buf, before, after;
	char path[700];
	uint64_t base, skip;

	p = open_ok(f->dir);
	kp_buf_init(&buf);
	for (int i = 0; i < 4; i++) {
		kp_buf_reset(&buf);
		assert_int_equal(kp_batch_begin(&b, &buf, 0, 0), 0);
		assert_int_equal(kp_batch_add(&b, i, NULL, 0,
					      "\xa8" "KPB1KPB1", 9), 0);
		kp_batch_finish(&b);
		assert_int_equal(kp_partition_append(p, buf.data, buf.len, 0,
						     &base, NULL), 0);
	}
	kp_partition_close(p);
	path_of(f->dir, 0, ".log", path, sizeof(path));
	flip(path, 13, 0);
	kp_buf_init(&before);
	kp_buf_init(&after);
	assert_int_equal(kp_file_read(path, &before), 0);
	p = open_ok(f->dir);
	kp_buf_reset(&buf);
	assert_int_equal(kp_partition_read(p, 0, 100, &buf, &skip, NULL),
			 KP_ECORRUPT);
	assert_int_equal(skip, 1);
	kp_partition_close(p);
	assert_int_equal(kp_file_read(path, &after), 0);
	assert_int_equal(after.len, before.len);
	assert_memory_equal(after.data, before.data, before.len);
	kp_buf_destroy(&buf);
	kp_buf_destroy(&before);
	kp_buf_destroy(&after);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_old_directory_is_migrated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_old_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_migrated_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_marks_move, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_new_segment_is_not_migrated, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
