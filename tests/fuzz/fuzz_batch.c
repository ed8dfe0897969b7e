/*
 * fuzz_batch.c - libFuzzer target for the on-disk batch reader
 * (server/log/batch.c, batch_v1.c) and the open-time recovery of a
 * partition directory made from the input (server/log/recovery.c,
 * segment.c, migrate.c): what kappad runs on disk bytes when it starts.
 *
 * Input: a 16-byte control block, then the bytes of the log.
 *   0      flags: FIX_CRC (fill in the CRCs of every batch-shaped run of
 *          bytes, so that mutations reach the layout checks behind them),
 *          RECOVER (run kp_recovery_run on a directory made of the bytes),
 *          TWO_SEGMENTS, WITH_CKPT, CKPT_IN_SECOND
 *   1..2   u16 LE: where the log splits into two segments
 *   3..6   u32 LE: base offset of the second segment
 *   7..8   u16 LE: recovery point position
 *   9..12  u32 LE: recovery point next offset
 *   13     recovery point index entries
 *   14..15 u16 LE: index interval (64 + value % 8192)
 *
 * In memory, always: the sequential walk a scan does (header decode,
 * verify, iterate, resynchronise with kp_batch_find after damage), every
 * header kp_batch_find reports, and format-1 conversion. A verified batch
 * must iterate to exactly count records within its bytes, with offsets
 * strictly increasing up to last_offset_delta, and rebuilding it with the
 * builder must give the same records (the same bytes when its header's
 * timestamps are the ones the builder computes). A converted format-1
 * batch must pass every format-2 check.
 *
 * On files (RECOVER): recovery must succeed or fail cleanly; what it keeps
 * must read back as valid batches; without a recovery point, a second
 * recovery of its result must cut nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/crc32c.h"
#include "base/error.h"
#include "base/fsutil.h"
#include "base/logging.h"
#include "log/batch.h"
#include "log/batch_v1.h"
#include "log/producer.h"
#include "log/recovery.h"
#include "log/segment.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CONTROL 16
#define FLAG_FIX_CRC 0x01u
#define FLAG_RECOVER 0x02u
#define FLAG_TWO_SEGMENTS 0x04u
#define FLAG_WITH_CKPT 0x08u
#define FLAG_CKPT_IN_SECOND 0x10u
#define MAX_LOG (256u << 10)
#define MAX_WALK 4096

/* The control block, decoded. */
struct control {
	unsigned flags;
	size_t split;
	uint64_t base2;
	uint64_t ck_pos;
	uint64_t ck_next;
	uint32_t ck_index;
	uint32_t interval;
};

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* Fills in the CRCs of every run of bytes that looks like a batch. */
static void fix_crcs(char *b, size_t len)
{
	for (size_t i = 0; len >= KP_BATCH_HEADER_SIZE &&
			   i <= len - KP_BATCH_HEADER_SIZE; i++) {
		uint32_t magic = kp_get_le32(b + i + 12);
		uint32_t blen = kp_get_le32(b + i + 8);

		if (magic == KP_BATCH_MAGIC) {
			if (blen >= KP_BATCH_HEADER_SIZE && blen <= len - i)
				kp_put_le32(b + i + 16,
					    kp_crc32c(0, b + i + 64, blen - 64));
			kp_put_le32(b + i + 60, kp_crc32c(0, b + i, 60));
		} else if (magic == KP_BATCH_V1_MAGIC && blen >= 20 &&
			   blen <= len - i) {
			kp_put_le32(b + i + 16,
				    kp_crc32c(0, b + i + 20, blen - 20));
		}
	}
}

/* Iterates a verified batch and checks its records; returns how many. */
static uint32_t check_records(const char *b, const struct kp_batch_header *h,
			      struct kp_record *recs, uint32_t cap)
{
	struct kp_record rec;
	size_t pos = 0, prev_pos = 0;
	uint32_t index = 0, n = 0;
	uint64_t prev = 0;
	int rc;

	while ((rc = kp_batch_next(b, h, &pos, &index, &rec)) == 1) {
		CHECK(pos > prev_pos && pos <= h->batch_len);
		CHECK(n == 0 || rec.offset > prev);
		CHECK(rec.offset >= h->base_offset &&
		      rec.offset < kp_batch_next_offset(h));
		CHECK(rec.value >= b + KP_BATCH_HEADER_SIZE &&
		      rec.value + rec.value_len <= b + pos);
		if (rec.key != NULL)
			CHECK(rec.key >= b && rec.key + rec.key_len <= rec.value);
		else
			CHECK(rec.key_len == 0);
		if (rec.headers != NULL) {
			CHECK(h->flags & KP_BATCH_FLAG_HEADERS);
			CHECK(rec.headers_len > 0 &&
			      rec.headers + rec.headers_len <= rec.value);
		}
		if (n < cap)
			recs[n] = rec;
		prev = rec.offset;
		prev_pos = pos;
		n++;
	}
	CHECK(rc == 0);
	CHECK(n == h->count && index == h->count);
	CHECK(prev == kp_batch_next_offset(h) - 1);
	CHECK(pos == h->batch_len);
	return n;
}

static bool same_record(const struct kp_record *a, const struct kp_record *b)
{
	return a->offset == b->offset && a->ts == b->ts &&
	       (a->key == NULL) == (b->key == NULL) &&
	       a->key_len == b->key_len &&
	       (a->key_len == 0 || memcmp(a->key, b->key, a->key_len) == 0) &&
	       a->headers_len == b->headers_len &&
	       (a->headers_len == 0 ||
		memcmp(a->headers, b->headers, a->headers_len) == 0) &&
	       a->value_len == b->value_len &&
	       (a->value_len == 0 ||
		memcmp(a->value, b->value, a->value_len) == 0);
}

/* Rebuilds a verified batch with the builder and compares. */
static void rebuild(const char *b, const struct kp_batch_header *h)
{
	enum { CAP = 64 };
	struct kp_record a[CAP], c[CAP];
	struct kp_batch_builder bb;
	struct kp_batch_header h2;
	struct kp_buf out;
	int64_t max_ts;
	uint32_t n;

	n = check_records(b, h, a, CAP);
	kp_buf_init(&out);
	CHECK(kp_batch_begin_flags(&bb, &out, h->producer_id,
				   h->producer_seq, h->flags) == 0);
	max_ts = a[0].ts;
	for (uint32_t i = 0; i < n; i++) {
		CHECK(kp_batch_add_at(&bb, (uint32_t)(a[i].offset -
						       h->base_offset),
				      a[i].ts, a[i].key, a[i].key_len,
				      a[i].headers, a[i].headers_len,
				      a[i].value, a[i].value_len) == 0);
		max_ts = a[i].ts > max_ts ? a[i].ts : max_ts;
	}
	CHECK(kp_batch_finish_at(&bb, h->base_offset) == h->batch_len);
	CHECK(kp_batch_header_decode(out.data, out.len, &h2) == 0);
	CHECK(kp_batch_verify(out.data, &h2) == 0);
	CHECK(check_records(out.data, &h2, c, CAP) == n);
	for (uint32_t i = 0; i < n; i++)
		CHECK(same_record(&a[i], &c[i]));
	if (h->first_ts == a[0].ts && h->max_ts == max_ts)
		CHECK(memcmp(out.data, b, h->batch_len) == 0);
	kp_buf_destroy(&out);
}

/* One batch found at the start of b (len bytes there). */
static void one_batch(const char *b, size_t len)
{
	struct kp_batch_header h;
	char *copy;
	int rc = kp_batch_header_decode(b, len, &h);

	CHECK(rc == 0 || rc == -EAGAIN || rc == KP_ECORRUPT);
	if (rc != 0)
		return;
	CHECK(h.batch_len >= KP_BATCH_HEADER_SIZE && h.batch_len <= len);
	CHECK(h.count >= 1 && kp_batch_next_offset(&h) > h.base_offset);
	copy = malloc(h.batch_len);
	CHECK(copy != NULL);
	memcpy(copy, b, h.batch_len);
	rc = kp_batch_verify(copy, &h);
	CHECK(rc == 0 || rc == KP_ECORRUPT);
	CHECK(kp_batch_crc_ok(copy, &h) || rc != 0);
	if (rc == 0 && h.count <= 64)
		rebuild(copy, &h);
	else if (rc == 0)
		check_records(copy, &h, NULL, 0);
	free(copy);
}

/* The walk of a scan: batch after batch, resynchronising after damage. */
static void walk(const char *b, size_t len)
{
	struct kp_batch_header h;
	size_t pos = 0;

	for (int steps = 0; pos < len && steps < MAX_WALK; steps++) {
		int rc = kp_batch_header_decode(b + pos, len - pos, &h);
		size_t at;

		one_batch(b + pos, len - pos);
		if (rc == 0) {
			pos += h.batch_len;
			continue;
		}
		if (pos + 1 >= len)
			break;
		at = kp_batch_find(b + pos + 1, len - pos - 1, &h);
		CHECK(at <= len - pos - 1);
		if (at == len - pos - 1)
			break;
		CHECK(kp_batch_header_read(b + pos + 1 + at, &h) == 0);
		pos += 1 + at;
	}
}

/* Format-1 batches back to back, converted as migration does. */
static void convert_v1(const char *b, size_t len)
{
	struct kp_batch_v1_info info;
	struct kp_batch_header h;
	struct kp_buf out;
	size_t pos = 0;

	kp_buf_init(&out);
	for (int steps = 0; pos < len && steps < MAX_WALK; steps++) {
		int rc;

		kp_buf_reset(&out);
		rc = kp_batch_v1_convert(b + pos, len - pos, &out, &info);
		CHECK(rc == 0 || rc == -EAGAIN || rc == KP_ECORRUPT);
		if (rc != 0) {
			CHECK(out.len == 0);
			break;
		}
		CHECK(info.batch_len <= len - pos && info.count >= 1);
		rc = kp_batch_header_decode(out.data, out.len, &h);
		if (rc == 0) {
			CHECK(h.batch_len == out.len && h.count == info.count);
			CHECK(h.base_offset == info.base_offset);
			CHECK(h.last_offset_delta == info.count - 1);
			CHECK(kp_batch_verify(out.data, &h) == 0);
			check_records(out.data, &h, NULL, 0);
		} else {
			/* Format 1 did not bound the offsets of a batch. */
			CHECK(rc == KP_ECORRUPT);
			CHECK(info.base_offset >
			      UINT64_MAX - 1 - (info.count - 1));
		}
		pos += info.batch_len;
	}
	kp_buf_destroy(&out);
}

static void write_file(const char *dir, const char *name, const char *b,
		       size_t len)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	CHECK(kp_file_write_all(fd, b, len) == 0);
	close(fd);
}

static void seg_name(char *name, size_t cap, uint64_t base)
{
	snprintf(name, cap, "%020" PRIu64 ".log", base);
}

static char scratch_root[256];

static void remove_scratch(void)
{
	kp_file_remove_tree(scratch_root);
}

/* The directory of the run: <root>/p, made afresh. */
static const char *fresh_dir(void)
{
	static char *root = scratch_root, dir[300];

	if (root[0] == '\0') {
		const char *t = getenv("TMPDIR");

		snprintf(root, sizeof(scratch_root), "%s/fuzz_batch-%d",
			 access("/dev/shm", W_OK) == 0 ? "/dev/shm"
			 : t != NULL ? t : "/tmp", (int)getpid());
		snprintf(dir, sizeof(dir), "%s/p", root);
		kp_log_set_level(KP_LOG_ERROR);
		atexit(remove_scratch);
	}
	kp_file_remove_tree(root);
	CHECK(mkdir(root, 0700) == 0);
	return dir;
}

/*
 * Reads back the last segment recovery kept, scanned from its start: whole
 * valid batches in offset order up to its size and next offset.
 */
static void read_back(struct kp_recovered *r)
{
	struct kp_segment *seg = r->segs[r->n - 1];
	struct kp_segment_reader rd;
	struct kp_batch_header h;
	struct kp_buf buf;
	const char *bytes;
	uint64_t next = seg->base;
	int rc;

	for (size_t i = 0; i + 1 < r->n; i++)
		CHECK(r->segs[i]->base < r->segs[i + 1]->base);
	kp_buf_init(&buf);
	kp_segment_reader_init(&rd, seg, 0, seg->size, &buf, 4096);
	while ((rc = kp_segment_reader_next(&rd, &h)) == 0) {
		CHECK(kp_segment_reader_bytes(&rd, &h, &bytes) == 0);
		CHECK(kp_batch_verify(bytes, &h) == 0);
		CHECK(h.base_offset >= next);
		next = kp_batch_next_offset(&h);
		kp_segment_reader_advance(&rd, &h);
	}
	CHECK(rc == 1);
	CHECK(next == seg->next_offset);
	kp_buf_destroy(&buf);
}

static int recover(const char *dir, uint32_t interval, struct kp_recovered *r)
{
	struct kp_producer_table producers;
	struct kp_error err;
	int rc;

	kp_producer_table_init(&producers);
	kp_error_clear(&err);
	rc = kp_recovery_run(dir, interval, r, &producers, &err);
	if (rc == 0) {
		CHECK(r->n >= 1);
		CHECK(r->segs[r->n - 1]->next_offset >=
		      r->segs[r->n - 1]->base);
	} else {
		CHECK(err.code == rc && strchr(err.msg, '\n') == NULL);
	}
	kp_producer_table_destroy(&producers);
	return rc;
}

static void recover_files(const struct control *c, const char *b, size_t len)
{
	const char *dir = fresh_dir();
	struct kp_recovered r;
	char name[64];
	size_t split = c->split < len ? c->split : len;
	bool two = (c->flags & FLAG_TWO_SEGMENTS) && c->base2 > 0;
	uint64_t next;

	CHECK(mkdir(dir, 0755) == 0);
	seg_name(name, sizeof(name), 0);
	write_file(dir, name, b, two ? split : len);
	if (two) {
		seg_name(name, sizeof(name), c->base2);
		write_file(dir, name, b + split, len - split);
	}
	if (c->flags & FLAG_WITH_CKPT) {
		struct kp_producer_table none;
		struct kp_ckpt ck;

		memset(&ck, 0, sizeof(ck));
		kp_producer_table_init(&none);
		ck.segment_base = two && (c->flags & FLAG_CKPT_IN_SECOND)
					  ? c->base2 : 0;
		ck.position = c->ck_pos;
		ck.next_offset = c->ck_next;
		ck.max_ts = INT64_MIN;
		ck.index_entries = c->ck_index;
		CHECK(kp_recovery_ckpt_write(dir, &ck, &none, false) == 0);
	}
	if (recover(dir, c->interval, &r) != 0)
		return;
	if (c->flags & FLAG_WITH_CKPT) {
		/* What lies below a recovery point is trusted, not checked. */
		kp_recovery_release(&r);
		return;
	}
	read_back(&r);
	next = r.segs[r.n - 1]->next_offset;
	kp_recovery_release(&r);
	CHECK(recover(dir, c->interval, &r) == 0);
	CHECK(r.cut == 0);
	CHECK(r.segs[r.n - 1]->next_offset == next);
	read_back(&r);
	kp_recovery_release(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct control c;
	struct kp_batch_header h;
	size_t len, at;
	char *b;

	if (size < CONTROL || size - CONTROL > MAX_LOG)
		return 0;
	c.flags = data[0];
	c.split = get16(data + 1);
	c.base2 = kp_get_le32((const char *)data + 3);
	c.ck_pos = get16(data + 7);
	c.ck_next = kp_get_le32((const char *)data + 9);
	c.ck_index = data[13];
	c.interval = 64 + get16(data + 14) % 8192;
	len = size - CONTROL;
	b = malloc(len ? len : 1);
	CHECK(b != NULL);
	memcpy(b, data + CONTROL, len);
	if (c.flags & FLAG_FIX_CRC)
		fix_crcs(b, len);
	walk(b, len);
	at = kp_batch_find(b, len, &h);
	CHECK(at == len || (at + KP_BATCH_HEADER_SIZE <= len &&
			    kp_batch_header_read(b + at, &h) == 0));
	convert_v1(b, len);
	if (c.flags & FLAG_RECOVER)
		recover_files(&c, b, len);
	free(b);
	return 0;
}
