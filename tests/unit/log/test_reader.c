/*
 * test_reader.c - reading a partition whose files are damaged: no flipped
 * bit of a sealed segment is ever served, every other record stays
 * readable by following the skip offsets, a batch cut by the read window
 * is not reported as damage, offsets with gaps, damaged indexes, and
 * kp_partition_locate naming what a read returns.
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
#include "base/logging.h"
#include "log/batch.h"
#include "log/partition.h"
#include "support_dir.h"

#define VALUE_LEN 60
#define MAX_OFFSETS 4096

static int setup(void **state)
{
	return kp_test_dir_setup(state, "reader");
}

static int teardown(void **state)
{
	kp_log_set_level(KP_LOG_INFO);
	return kp_test_dir_teardown(state);
}

static void config(struct kp_partition_config *cfg, uint64_t segment_bytes)
{
	kp_partition_config_default(cfg);
	cfg->segment_bytes = segment_bytes;
	cfg->index_interval_bytes = 256;
	cfg->fsync = KP_FSYNC_NEVER;
}

static struct kp_partition *open_ok(const char *dir,
				    const struct kp_partition_config *cfg)
{
	struct kp_partition *p = NULL;
	struct kp_error err;

	if (kp_partition_open(dir, cfg, &p, &err) != 0)
		fail_msg("open %s: %s", dir, err.msg);
	return p;
}

static void value_of(uint64_t offset, char *v)
{
	memset(v, 'x', VALUE_LEN);
	v[0] = (char)0xd9;
	v[1] = VALUE_LEN - 2;
	snprintf(v + 2, VALUE_LEN - 2, "record-%08" PRIu64, offset);
}

/*
 * Appends one batch whose records sit at first + deltas[i] (n of them;
 * deltas NULL: 0..n-1), ts = 10 * offset. Returns the next offset.
 */
static uint64_t append_at(struct kp_partition *p, uint64_t first,
			  const uint32_t *deltas, uint32_t n, uint64_t pid,
			  uint32_t seq)
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
		uint32_t d = deltas ? deltas[i] : i;

		value_of(first + d, v);
		assert_int_equal(kp_batch_add_at(&b, d,
						 (int64_t)(first + d) * 10,
						 "k", 1, NULL, 0, v, VALUE_LEN),
				 0);
	}
	kp_batch_finish(&b);
	rc = kp_partition_append(p, buf.data, buf.len, 0, &base, &err);
	if (rc != 0)
		fail_msg("append: %s", err.msg);
	assert_int_equal(base, first);
	kp_buf_destroy(&buf);
	return first + (deltas ? deltas[n - 1] : n - 1) + 1;
}

/* What a reader got from a partition, by offset. */
struct seen {
	bool got[MAX_OFFSETS];       /* the record was served */
	bool skipped[MAX_OFFSETS];   /* a skip jumped over it */
	uint32_t corrupt;            /* CORRUPT answers */
};

/* Checks the records of raw batches (exact values); marks them in s. */
static uint64_t check_records(const struct kp_buf *out, uint64_t from,
			      struct seen *s)
{
	struct kp_batch_header h;
	struct kp_record rec;
	char v[VALUE_LEN];
	uint64_t next = from;
	size_t at = 0;

	while (at < out->len) {
		size_t pos = 0;
		uint32_t index;

		assert_int_equal(kp_batch_header_decode(out->data + at,
							out->len - at, &h), 0);
		assert_int_equal(kp_batch_verify(out->data + at, &h), 0);
		while (kp_batch_next(out->data + at, &h, &pos, &index, &rec) ==
		       1) {
			if (rec.offset < from)
				continue;
			assert_true(rec.offset < MAX_OFFSETS);
			value_of(rec.offset, v);
			assert_int_equal(rec.value_len, VALUE_LEN);
			assert_memory_equal(rec.value, v, VALUE_LEN);
			assert_int_equal(rec.ts, (int64_t)rec.offset * 10);
			assert_int_equal(rec.key_len, 1);
			assert_false(s->got[rec.offset]);
			s->got[rec.offset] = true;
		}
		next = kp_batch_next_offset(&h);
		at += h.batch_len;
	}
	return next;
}

/*
 * Reads the whole partition as a consumer does: from start, following
 * skip offsets. Checks every record served.
 */
static void read_following(struct kp_partition *p, size_t max_bytes,
			   struct seen *s)
{
	struct kp_partition_stats st;
	struct kp_error err;
	struct kp_buf out;
	uint64_t offset, skip;
	int rc;

	memset(s, 0, sizeof(*s));
	kp_partition_stats(p, &st);
	offset = st.start_offset;
	kp_buf_init(&out);
	while (offset < st.visible_end) {
		kp_buf_reset(&out);
		rc = kp_partition_read(p, offset, max_bytes, &out, &skip, &err);
		if (rc == KP_ECORRUPT) {
			assert_int_equal(out.len, 0);
			assert_true(skip > offset);
			assert_true(skip <= st.visible_end);
			for (uint64_t o = offset; o < skip; o++)
				s->skipped[o] = true;
			s->corrupt++;
			offset = skip;
			continue;
		}
		if (rc != 0)
			fail_msg("read at %" PRIu64 ": %s", offset, err.msg);
		assert_true(out.len > 0);
		offset = check_records(&out, offset, s);
	}
	kp_buf_destroy(&out);
}

/* The batch boundaries of a segment file: positions and base offsets. */
struct layout {
	uint64_t pos[256];
	uint64_t base[256];
	uint64_t next[256];
	size_t n;
	uint64_t size;
};

static void read_layout(const char *path, struct layout *l)
{
	char hdr[KP_BATCH_HEADER_SIZE];
	struct kp_batch_header h;
	struct stat st;
	int fd = open(path, O_RDONLY);
	uint64_t at = 0;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	l->n = 0;
	l->size = (uint64_t)st.st_size;
	while (at < l->size) {
		assert_int_equal(pread(fd, hdr, sizeof(hdr), (off_t)at),
				 (ssize_t)sizeof(hdr));
		assert_int_equal(kp_batch_header_read(hdr, &h), 0);
		assert_true(l->n < 256);
		l->pos[l->n] = at;
		l->base[l->n] = h.base_offset;
		l->next[l->n] = kp_batch_next_offset(&h);
		l->n++;
		at += h.batch_len;
	}
	close(fd);
}

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

static void seg_path(const char *dir, uint64_t base, const char *ext,
		     char *out, size_t cap)
{
	snprintf(out, cap, "%s/%020" PRIu64 "%s", dir, base, ext);
}

/* Checks one flip of the batch at l->pos[k]: see the function below. */
static void check_flip(struct kp_partition *p, const struct layout *l,
		       size_t k, uint64_t end, size_t max_bytes)
{
	static struct seen s;
	struct kp_error err;
	struct kp_buf out;
	uint64_t skip, want_skip = k + 1 < l->n ? l->base[k + 1] : l->next[k];

	read_following(p, max_bytes, &s);
	for (uint64_t o = 0; o < end; o++) {
		bool damaged = o >= l->base[k] && o < l->next[k];

		if (s.got[o] == damaged || s.skipped[o] != damaged)
			fail_msg("offset %" PRIu64 ": got %d skipped %d, "
				 "damaged batch %" PRIu64 "..%" PRIu64, o,
				 s.got[o], s.skipped[o], l->base[k],
				 l->next[k]);
	}
	assert_int_equal(s.corrupt, 1);
	/* Every offset of the damaged batch answers the same skip offset. */
	kp_buf_init(&out);
	for (uint64_t o = l->base[k]; o < l->next[k]; o++) {
		assert_int_equal(kp_partition_read(p, o, max_bytes, &out, &skip,
						   &err), KP_ECORRUPT);
		assert_int_equal(out.len, 0);
		assert_int_equal(skip, want_skip);
	}
	kp_buf_destroy(&out);
}

/*
 * In a sealed segment, a flip of any byte (every bit of the batch headers,
 * one bit of every other byte) is never served; the damaged batch alone is
 * skipped, the skip offset is the next batch's first offset (readable),
 * and every other record is read exactly.
 */
static void test_no_flipped_bit_is_served(void **state)
{
	struct fixture *f = *state;
	struct kp_partition_config cfg;
	struct kp_partition_stats st;
	struct kp_partition *p;
	struct layout l;
	char path[700];
	uint64_t end = 0;
	size_t flips = 0;

	config(&cfg, 3000);
	p = open_ok(f->dir, &cfg);
	for (int i = 0; i < 60; i++)
		end = append_at(p, end, NULL, 4, 0, 0);
	kp_partition_stats(p, &st);
	assert_true(st.segments >= 5);
	kp_partition_close(p);
	p = open_ok(f->dir, &cfg);
	/* The second segment, sealed; its neighbours stay intact. */
	seg_path(f->dir, 0, ".log", path, sizeof(path));
	read_layout(path, &l);
	seg_path(f->dir, l.next[l.n - 1], ".log", path, sizeof(path));
	read_layout(path, &l);
	assert_true(l.n >= 4);
	kp_log_set_level(KP_LOG_ERROR);
	for (size_t k = 0; k < l.n; k++) {
		uint64_t stop = k + 1 < l.n ? l.pos[k + 1] : l.size;

		for (uint64_t pos = l.pos[k]; pos < stop; pos++) {
			bool header = pos - l.pos[k] < KP_BATCH_HEADER_SIZE;

			for (int bit = 0; bit < 8; bit++) {
				if (!header && bit != (int)(pos % 8))
					continue;
				flip(path, pos, bit);
				check_flip(p, &l, k, end,
					   flips % 3 == 0 ? 1 : 700);
				flip(path, pos, bit);
				flips++;
			}
		}
	}
	kp_log_set_level(KP_LOG_INFO);
	assert_true(flips > 2000);
	kp_partition_close(p);
}

/* Damage at a segment's end, and two damaged batches in a row. */
static void test_skips_across_segments(void **state)
{
	struct fixture *f = *state;
	struct kp_partition_config cfg;
	struct kp_partition *p;
	struct layout l0, l1;
	struct kp_error err;
	struct kp_buf out;
	static struct seen s;
	char p0[700], p1[700];
	uint64_t end = 0, skip;

	config(&cfg, 3000);
	p = open_ok(f->dir, &cfg);
	for (int i = 0; i < 30; i++)
		end = append_at(p, end, NULL, 4, 0, 0);
	kp_partition_close(p);
	seg_path(f->dir, 0, ".log", p0, sizeof(p0));
	read_layout(p0, &l0);
	seg_path(f->dir, l0.next[l0.n - 1], ".log", p1, sizeof(p1));
	read_layout(p1, &l1);
	/* The last batch of segment 0 (its header) and the first of 1. */
	flip(p0, l0.pos[l0.n - 1] + 3, 1);
	flip(p1, 100, 5);
	p = open_ok(f->dir, &cfg);
	kp_buf_init(&out);
	assert_int_equal(kp_partition_read(p, l0.base[l0.n - 1], 1 << 20, &out,
					   &skip, &err), KP_ECORRUPT);
	assert_int_equal(skip, l1.base[1]);
	assert_non_null(strstr(err.msg, "goes on at offset"));
	assert_int_equal(kp_partition_read(p, skip, 1 << 20, &out, &skip,
					   &err), 0);
	assert_true(out.len > 0);
	read_following(p, 1 << 20, &s);
	assert_int_equal(s.corrupt, 1);
	for (uint64_t o = 0; o < end; o++)
		assert_true(s.got[o] ==
			    !(o >= l0.base[l0.n - 1] && o < l1.base[1]));
	kp_partition_close(p);
	/* Damage in the partition's very last batch: skip to the end. */
	kp_file_remove_tree(f->dir);
	p = open_ok(f->dir, &cfg);
	end = append_at(p, 0, NULL, 4, 0, 0);
	end = append_at(p, end, NULL, 4, 0, 0);
	kp_partition_close(p);
	flip(p0, KP_BATCH_HEADER_SIZE + 5, 0);
	read_layout(p0, &l0);
	flip(p0, l0.pos[1] + 70, 0);
	p = open_ok(f->dir, &cfg);
	kp_buf_reset(&out);
	assert_int_equal(kp_partition_read(p, 0, 100, &out, &skip, &err),
			 KP_ECORRUPT);
	assert_int_equal(skip, end);
	assert_int_equal(kp_partition_read(p, 5, 100, &out, &skip, &err),
			 KP_ECORRUPT);
	assert_int_equal(skip, end);
	assert_int_equal(kp_partition_read(p, end, 100, &out, &skip, &err), 0);
	assert_int_equal(out.len, 0);
	kp_buf_destroy(&out);
	kp_partition_close(p);
}

/* Runs fn with stderr going to a file; returns what was written. */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
	char path[] = "/tmp/kp-stderr-XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	struct stat st;
	char *text;

	assert_true(fd >= 0 && saved >= 0);
	fflush(stderr);
	dup2(fd, 2);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	fstat(fd, &st);
	text = calloc(1, (size_t)st.st_size + 1);
	assert_int_equal(pread(fd, text, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	unlink(path);
	return text;
}

struct window_case {
	struct kp_partition *p;
	struct layout *l;
};

/* Reads from 0 with windows ending at every byte of the second batch. */
static void read_cut_windows(void *arg)
{
	struct window_case *w = arg;
	uint64_t first = w->l->pos[1], second = w->l->pos[2];
	struct kp_error err;
	struct kp_buf out;
	uint64_t skip;

	kp_buf_init(&out);
	for (uint64_t want = first; want <= second + 10; want++) {
		kp_buf_reset(&out);
		assert_int_equal(kp_partition_read(w->p, 0, (size_t)want, &out,
						   &skip, &err), 0);
		if (want < second)
			assert_int_equal(out.len, first);
		else
			assert_int_equal(out.len, second);
	}
	kp_buf_destroy(&out);
}

/*
 * A window that ends inside a batch (header or records) is a short read:
 * the read stops before that batch and nothing is reported as damaged.
 * This is the 1 MiB window that ended 36 bytes into a header.
 */
static void test_window_cut_is_not_damage(void **state)
{
	struct fixture *f = *state;
	struct kp_partition_config cfg;
	struct window_case w;
	struct layout l;
	char path[700], *log;
	uint64_t end = 0;

	config(&cfg, 1 << 20);
	w.p = open_ok(f->dir, &cfg);
	for (int i = 0; i < 6; i++)
		end = append_at(w.p, end, NULL, 3, 0, 0);
	seg_path(f->dir, 0, ".log", path, sizeof(path));
	read_layout(path, &l);
	w.l = &l;
	log = capture_stderr(read_cut_windows, &w);
	if (strstr(log, "damaged") != NULL || strstr(log, "corrupt") != NULL)
		fail_msg("a cut window was reported: %s", log);
	free(log);
	kp_partition_close(w.p);
}

/*
 * Offsets with gaps (as compaction writes them): end offsets, reads from
 * a gap, offset for a time, producer dedup, and recovery all follow the
 * deltas, not the record counts.
 */
static void test_offsets_with_gaps(void **state)
{
	struct fixture *f = *state;
	static const uint32_t gaps[4] = { 0, 3, 4, 9 };
	struct kp_partition_config cfg;
	struct kp_partition_stats st;
	struct kp_partition *p;
	static struct seen s;
	struct kp_error err;
	struct kp_buf out;
	uint64_t end = 0, off, skip, base;
	uint32_t count;

	config(&cfg, 1500);
	p = open_ok(f->dir, &cfg);
	for (int i = 0; i < 20; i++)
		end = append_at(p, end, gaps, 4, 7, (uint32_t)i);
	assert_int_equal(end, 200);
	kp_partition_stats(p, &st);
	assert_int_equal(st.end_offset, 200);
	assert_true(st.segments > 2);
	/* A retried batch answers its span of offsets. */
	assert_int_equal(kp_partition_producer_check(p, 7, 19, &base, &count),
			 1);
	assert_int_equal(base, 190);
	assert_int_equal(count, 10);
	for (int round = 0; round < 3; round++) {
		read_following(p, round == 0 ? 1 : 600, &s);
		assert_int_equal(s.corrupt, 0);
		for (uint64_t o = 0; o < end; o++) {
			uint64_t d = o % 10;

			assert_true(s.got[o] == (d == 0 || d == 3 || d == 4 ||
						 d == 9));
		}
		/* From inside a gap: the batch holding it, records after. */
		kp_buf_init(&out);
		assert_int_equal(kp_partition_read(p, 25, 1, &out, &skip, &err),
				 0);
		memset(&s, 0, sizeof(s));
		assert_int_equal(check_records(&out, 25, &s), 30);
		assert_false(s.got[23]);
		assert_true(s.got[29]);
		kp_buf_destroy(&out);
		for (int64_t ts = 0; ts < 2000; ts += 7) {
			uint64_t want = (uint64_t)(ts + 9) / 10;

			while (want % 10 != 0 && want % 10 != 3 &&
			       want % 10 != 4 && want % 10 != 9)
				want++;
			assert_int_equal(kp_partition_offset_for_time(p, ts, &off,
								      NULL), 0);
			assert_int_equal(off, want > 200 ? 200 : want);
		}
		kp_partition_close(p);
		if (round == 1) {
			char path[700];

			snprintf(path, sizeof(path), "%s/recovery.ckpt",
				 f->dir);
			unlink(path);
		}
		p = open_ok(f->dir, &cfg);
		kp_partition_stats(p, &st);
		assert_int_equal(st.end_offset, 200);
		assert_int_equal(kp_partition_producer_check(p, 7, 20, NULL,
							     NULL), 0);
	}
	end = append_at(p, end, NULL, 2, 0, 0);
	assert_int_equal(end, 202);
	kp_partition_close(p);
}

static int read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, cap);
	close(fd);
	return (int)n;
}

static void write_file(const char *path, const char *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_TRUNC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* Seals entry i of an index held in buf (entry bytes each). */
static void reseal_entry(char *buf, size_t i, size_t entry)
{
	char *e = buf + i * entry;

	kp_put_le32(e + entry - 4, kp_crc32c(0, e, entry - 4));
}

/* Damages the index files of one sealed segment in one way. */
static void damage_index(const char *ix, const char *tix, int how,
			 char *buf, int n, char *tbuf, int tn)
{
	switch (how) {
	case 0: /* an entry pointing 1 byte past a batch start, CRC fine */
		kp_put_le32(buf + 12 + 4, kp_get_le32(buf + 12 + 4) + 1);
		reseal_entry(buf, 1, 12);
		break;
	case 1: /* an entry naming another batch's offset, CRC fine */
		kp_put_le32(buf + 12, kp_get_le32(buf + 24));
		kp_put_le32(buf + 24, kp_get_le32(buf + 24) + 1);
		reseal_entry(buf, 1, 12);
		reseal_entry(buf, 2, 12);
		break;
	case 2: /* entries out of order, CRCs fine */
		{
			char e[12];

			memcpy(e, buf + 12, 12);
			memcpy(buf + 12, buf + 24, 12);
			memcpy(buf + 24, e, 12);
		}
		break;
	case 3: /* the last entry pointing past the file, CRC fine */
		kp_put_le32(buf + (n / 12 - 1) * 12 + 4, 1u << 30);
		reseal_entry(buf, (size_t)(n / 12 - 1), 12);
		break;
	case 4: /* one flipped bit in an entry */
		buf[13] ^= 0x20;
		break;
	case 5: /* one flipped bit in a time entry's ts */
		tbuf[16 + 2] ^= 0x01;
		break;
	}
	write_file(ix, buf, (size_t)n);
	write_file(tix, tbuf, (size_t)tn);
}

static void offsets_for_times(struct kp_partition *p, uint64_t end)
{
	uint64_t off;

	for (int64_t ts = 0; ts < (int64_t)end * 10; ts += 13) {
		assert_int_equal(kp_partition_offset_for_time(p, ts, &off,
							      NULL), 0);
		assert_int_equal(off, (uint64_t)((ts + 9) / 10));
	}
}

/*
 * Index damage is found (entry CRCs, order, bounds, entries that do not
 * point at a batch with their offset) and the index rebuilt as it was.
 */
static void test_damaged_indexes_are_rebuilt(void **state)
{
	struct fixture *f = *state;
	struct kp_partition_config cfg;
	struct kp_partition *p;
	static struct seen s;
	char ix[700], tix[700], good[2048], tgood[2048], buf[2048];
	char tbuf[2048];
	int n, tn;
	uint64_t end = 0;

	config(&cfg, 8000);
	cfg.index_interval_bytes = 500;
	p = open_ok(f->dir, &cfg);
	for (int i = 0; i < 60; i++)
		end = append_at(p, end, NULL, 4, 0, 0);
	kp_partition_close(p);
	seg_path(f->dir, 0, ".index", ix, sizeof(ix));
	seg_path(f->dir, 0, ".timeindex", tix, sizeof(tix));
	n = read_file(ix, good, sizeof(good));
	tn = read_file(tix, tgood, sizeof(tgood));
	assert_true(n >= 36 && n % 12 == 0);
	assert_true(tn >= 32 && tn % 16 == 0);
	for (int how = 0; how < 6; how++) {
		memcpy(buf, good, (size_t)n);
		memcpy(tbuf, tgood, (size_t)tn);
		damage_index(ix, tix, how, buf, n, tbuf, tn);
		p = open_ok(f->dir, &cfg);
		read_following(p, 1, &s);
		for (uint64_t o = 0; o < end; o++)
			assert_true(s.got[o]);
		for (uint64_t o = 0; o < end; o += 3) {
			struct kp_buf out;
			uint64_t skip;

			kp_buf_init(&out);
			assert_int_equal(kp_partition_read(p, o, 1, &out, &skip,
							   NULL), 0);
			memset(&s, 0, sizeof(s));
			check_records(&out, o, &s);
			assert_true(s.got[o]);
			kp_buf_destroy(&out);
		}
		offsets_for_times(p, end);
		kp_partition_close(p);
		assert_int_equal(read_file(ix, buf, sizeof(buf)), n);
		assert_memory_equal(buf, good, (size_t)n);
		assert_int_equal(read_file(tix, tbuf, sizeof(tbuf)), tn);
		assert_memory_equal(tbuf, tgood, (size_t)tn);
	}
}

/*
 * The scan for the next valid header after a damaged one reads 1 MiB at a
 * time: a header that starts just before, at or just after a chunk's end
 * is found all the same.
 */
static void test_resync_across_chunk_boundary(void **state)
{
	struct fixture *f = *state;
	struct kp_partition_config cfg;
	struct kp_batch_builder b;
	struct kp_partition *p;
	struct kp_error err;
	struct kp_buf buf, out;
	char path[700];
	uint64_t base, skip;
	char *big = calloc(1, 1 << 21);

	assert_non_null(big);
	config(&cfg, 64 << 20);
	kp_buf_init(&buf);
	kp_buf_init(&out);
	kp_log_set_level(KP_LOG_ERROR);
	for (int64_t d = -80; d <= 80; d += 9) {
		uint64_t len = (1u << 20) + (uint64_t)d;

		kp_file_remove_tree(f->dir);
		p = open_ok(f->dir, &cfg);
		kp_buf_reset(&buf);
		assert_int_equal(kp_batch_begin(&b, &buf, 0, 0), 0);
		assert_int_equal(kp_batch_add(&b, 1, NULL, 0, big,
					      (uint32_t)(len -
							 KP_BATCH_HEADER_SIZE -
							 KP_RECORD_HEADER_SIZE)),
				 0);
		assert_int_equal(kp_batch_finish(&b), len);
		assert_int_equal(kp_partition_append(p, buf.data, buf.len, 0,
						     &base, &err), 0);
		append_at(p, 1, NULL, 3, 0, 0);
		kp_partition_close(p);
		seg_path(f->dir, 0, ".log", path, sizeof(path));
		flip(path, 12, 3);
		p = open_ok(f->dir, &cfg);
		kp_buf_reset(&out);
		assert_int_equal(kp_partition_read(p, 0, 1 << 20, &out, &skip,
						   &err), KP_ECORRUPT);
		assert_int_equal(skip, 1);
		assert_int_equal(kp_partition_read(p, 1, 1 << 20, &out, &skip,
						   &err), 0);
		assert_true(out.len > 0);
		kp_partition_close(p);
	}
	kp_log_set_level(KP_LOG_INFO);
	kp_buf_destroy(&buf);
	kp_buf_destroy(&out);
	free(big);
}

/*
 * The bytes of a span (kp_partition_locate) that a worker would take:
 * whole batches from its position below its end offset, read through its
 * fd. Appended to out.
 */
static void span_bytes(const struct kp_read_span *sp, struct kp_buf *out)
{
	struct kp_batch_header h;
	size_t at = 0;
	char *data;

	assert_int_equal(kp_buf_reserve(out, sp->len), 0);
	data = out->data + out->len;
	assert_int_equal(pread(sp->fd, data, sp->len, (off_t)sp->pos),
			 (ssize_t)sp->len);
	while (kp_batch_header_decode(data + at, sp->len - at, &h) == 0 &&
	       h.base_offset < sp->end_offset) {
		assert_int_equal(kp_batch_verify(data + at, &h), 0);
		at += h.batch_len;
		if (at == sp->len)
			break;
	}
	out->len += at;
}

/*
 * kp_partition_locate names the bytes kp_partition_read returns from the
 * same offset (up to the end of one segment, which a read may pass), at
 * every offset and read size; where the header holding the offset is
 * damaged it answers KP_ECORRUPT with the same skip offset as a read.
 */
static void test_locate_names_what_read_returns(void **state)
{
	struct fixture *f = *state;
	static const size_t sizes[] = { 1, 300, 2000, 1 << 20 };
	struct kp_partition_config cfg;
	struct kp_partition *p;
	struct kp_read_span sp;
	struct kp_error err;
	struct kp_buf got, want;
	struct layout l0;
	uint64_t end = 0, skip, skip2;
	char p0[700];

	config(&cfg, 3000);
	p = open_ok(f->dir, &cfg);
	for (int i = 0; i < 40; i++)
		end = append_at(p, end, NULL, 3, 0, 0);
	kp_buf_init(&got);
	kp_buf_init(&want);
	for (uint64_t o = 0; o <= end; o++) {
		for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
			kp_buf_reset(&got);
			kp_buf_reset(&want);
			assert_int_equal(kp_partition_locate(p, o, sizes[k], &sp,
							     &skip, &err), 0);
			assert_int_equal(kp_partition_read(p, o, sizes[k],
							   &want, &skip, &err),
					 0);
			if (o == end) {
				assert_int_equal(sp.len, 0);
				continue;
			}
			assert_true(sp.len > 0 && sp.fd >= 0);
			assert_true(sp.end_offset > o);
			span_bytes(&sp, &got);
			assert_true(got.len > 0 && got.len <= want.len);
			assert_memory_equal(got.data, want.data, got.len);
			assert_true(got.len == want.len || got.len >= sizes[k] ||
				    sp.pos + sp.len == (uint64_t)lseek(
					    sp.fd, 0, SEEK_END));
		}
	}
	kp_partition_close(p);
	/* A damaged header: the same skip as a read. */
	seg_path(f->dir, 0, ".log", p0, sizeof(p0));
	read_layout(p0, &l0);
	flip(p0, l0.pos[2] + 3, 2);
	p = open_ok(f->dir, &cfg);
	for (uint64_t o = l0.base[2]; o < l0.next[2]; o++) {
		kp_buf_reset(&want);
		assert_int_equal(kp_partition_locate(p, o, 1 << 20, &sp, &skip,
						     &err), KP_ECORRUPT);
		assert_int_equal(kp_partition_read(p, o, 1 << 20, &want,
						   &skip2, &err), KP_ECORRUPT);
		assert_int_equal(skip, skip2);
		assert_int_equal(skip, l0.base[3]);
	}
	kp_partition_close(p);
	kp_buf_destroy(&got);
	kp_buf_destroy(&want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_no_flipped_bit_is_served, setup, teardown),
		cmocka_unit_test_setup_teardown(test_skips_across_segments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_cut_is_not_damage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_offsets_with_gaps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_indexes_are_rebuilt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resync_across_chunk_boundary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_locate_names_what_read_returns, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
