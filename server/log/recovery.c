/*
 * recovery.c - the recovery point and the open-time recovery of a
 * partition directory (recovery.h).
 *
 * recovery.ckpt, little-endian:
 *   u32 magic "KPRC", u32 version, u64 segment_base, u64 position,
 *   u64 next_offset, i64 max_ts, i64 created_ms, u32 index_entries,
 *   u32 time_entries, u32 snapshot_len,
 *   snapshot (producer.h), u32 CRC32C of everything before it.
 */
#include "recovery.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch.h"
#include "migrate.h"
#include "base/alloc.h"
#include "base/buf.h"
#include "base/crc32c.h"
#include "base/fsutil.h"
#include "base/logging.h"

#define CKPT_MAGIC 0x4352504bu /* "KPRC" */
#define CKPT_VERSION 1u
#define CKPT_HEAD 60
#define CKPT_MAX (64u << 20)
#define SCAN_CHUNK (1u << 20)

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

int kp_recovery_ckpt_write(const char *dir, const struct kp_ckpt *ck,
			   const struct kp_producer_table *producers,
			   bool sync)
{
	size_t snap = kp_producer_snapshot_size(producers);
	size_t len = CKPT_HEAD + snap + 4;
	char tmp[4096], path[4096];
	char *buf;
	int fd, rc;

	buf = kp_malloc(len);
	if (buf == NULL)
		return -ENOMEM;
	kp_put_le32(buf, CKPT_MAGIC);
	kp_put_le32(buf + 4, CKPT_VERSION);
	kp_put_le64(buf + 8, ck->segment_base);
	kp_put_le64(buf + 16, ck->position);
	kp_put_le64(buf + 24, ck->next_offset);
	kp_put_le64(buf + 32, (uint64_t)ck->max_ts);
	kp_put_le64(buf + 40, (uint64_t)ck->created_ms);
	kp_put_le32(buf + 48, ck->index_entries);
	kp_put_le32(buf + 52, ck->time_entries);
	kp_put_le32(buf + 56, (uint32_t)snap);
	kp_producer_snapshot_write(producers, buf + CKPT_HEAD);
	kp_put_le32(buf + len - 4, kp_crc32c(0, buf, len - 4));
	snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, KP_RECOVERY_CKPT);
	snprintf(path, sizeof(path), "%s/%s", dir, KP_RECOVERY_CKPT);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	rc = kp_file_write_all(fd, buf, len);
	if (rc == 0 && sync && fdatasync(fd) != 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && rename(tmp, path) != 0)
		rc = -errno;
	if (rc == 0 && sync)
		rc = fsync_dir(dir);
out:
	kp_free(buf);
	return rc;
}

int kp_recovery_ckpt_read(const char *dir, struct kp_ckpt *ck,
			  struct kp_producer_table *producers)
{
	char path[4096];
	struct stat st;
	char *buf = NULL;
	size_t len, snap;
	int fd, rc = KP_ECORRUPT;

	kp_producer_table_destroy(producers);
	snprintf(path, sizeof(path), "%s/%s", dir, KP_RECOVERY_CKPT);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto out;
	}
	len = (size_t)st.st_size;
	if (len < CKPT_HEAD + 8 || len > CKPT_MAX)
		goto out;
	buf = kp_malloc(len);
	if (buf == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (pread(fd, buf, len, 0) != (ssize_t)len)
		goto out;
	snap = kp_get_le32(buf + 56);
	if (kp_get_le32(buf) != CKPT_MAGIC ||
	    kp_get_le32(buf + 4) != CKPT_VERSION ||
	    snap != len - CKPT_HEAD - 4 ||
	    kp_crc32c(0, buf, len - 4) != kp_get_le32(buf + len - 4))
		goto out;
	ck->segment_base = kp_get_le64(buf + 8);
	ck->position = kp_get_le64(buf + 16);
	ck->next_offset = kp_get_le64(buf + 24);
	ck->max_ts = (int64_t)kp_get_le64(buf + 32);
	ck->created_ms = (int64_t)kp_get_le64(buf + 40);
	ck->index_entries = kp_get_le32(buf + 48);
	ck->time_entries = kp_get_le32(buf + 52);
	rc = kp_producer_snapshot_read(producers, buf + CKPT_HEAD, snap);
out:
	kp_free(buf);
	close(fd);
	return rc;
}

static int push_segment(struct kp_recovered *r, struct kp_segment *seg)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 8;
		struct kp_segment **segs =
			kp_realloc(r->segs, cap * sizeof(*segs));

		if (segs == NULL)
			return -ENOMEM;
		r->segs = segs;
		r->cap = cap;
	}
	r->segs[r->n++] = seg;
	return 0;
}

void kp_recovery_release(struct kp_recovered *r)
{
	for (size_t i = 0; i < r->n; i++)
		kp_segment_close(r->segs[i]);
	kp_free(r->segs);
	memset(r, 0, sizeof(*r));
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static bool parse_log_name(const char *name, uint64_t *base)
{
	uint64_t v = 0;

	if (strlen(name) != 24 || strcmp(name + 20, ".log") != 0)
		return false;
	for (int i = 0; i < 20; i++) {
		if (name[i] < '0' || name[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	*base = v;
	return true;
}

/* Lists the base offsets of dir's .log files, sorted. */
static int list_segments(const char *dir, uint64_t **bases, size_t *n)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t cap = 0;
	uint64_t base;

	*bases = NULL;
	*n = 0;
	if (d == NULL)
		return -errno;
	while ((e = readdir(d)) != NULL) {
		if (!parse_log_name(e->d_name, &base))
			continue;
		if (*n == cap) {
			uint64_t *grown;

			cap = cap ? cap * 2 : 16;
			grown = kp_realloc(*bases, cap * sizeof(**bases));
			if (grown == NULL) {
				closedir(d);
				return -ENOMEM;
			}
			*bases = grown;
		}
		(*bases)[(*n)++] = base;
	}
	closedir(d);
	if (*n > 1)
		qsort(*bases, *n, sizeof(**bases), cmp_u64);
	return 0;
}

/* The state a tail scan starts from. */
struct scan_start {
	uint64_t pos;        /* position of the first batch to check */
	uint64_t next;       /* its expected base offset */
	int64_t max_ts;      /* largest ts below pos */
	int64_t created_ms;  /* segment's first append time, 0 unknown */
};

/* Checks that the batch header at pos of seg starts at offset next. */
static bool batch_at(struct kp_segment *seg, uint64_t pos, uint64_t next,
		     uint64_t file_size)
{
	char hdr[KP_BATCH_HEADER_SIZE];
	struct kp_batch_header h;
	int rc;

	if (pos + KP_BATCH_HEADER_SIZE > file_size ||
	    kp_segment_pread(seg, hdr, sizeof(hdr), pos) != 0)
		return false;
	rc = kp_batch_header_read(hdr, &h);
	return rc == 0 && h.base_offset == next;
}

/*
 * Picks where to scan from: the recovery point when it describes this
 * segment and is consistent with the file, else the segment's start.
 */
static void choose_start(struct kp_segment *seg, const struct kp_ckpt *ck,
			 bool ck_ok, uint64_t file_size, struct scan_start *s)
{
	s->pos = 0;
	s->next = seg->base;
	s->max_ts = INT64_MIN;
	s->created_ms = 0;
	if (!ck_ok || ck->segment_base != seg->base)
		return;
	if (ck->next_offset < seg->base ||
	    ck->next_offset - seg->base > UINT32_MAX ||
	    (ck->position == 0) != (ck->next_offset == seg->base)) {
		kp_log_warn("recovery",
			    "recovery point of %s.log is inconsistent; "
			    "scanning it all", seg->path);
		return;
	}
	if (ck->position > file_size) {
		kp_log_warn("recovery",
			    "recovery point claims %" PRIu64 " bytes of %s.log "
			    "but the file holds %" PRIu64 "; scanning it all",
			    ck->position, seg->path, file_size);
		return;
	}
	if (ck->position < file_size &&
	    !batch_at(seg, ck->position, ck->next_offset, file_size)) {
		kp_log_warn("recovery",
			    "recovery point of %s.log does not fall on a batch "
			    "boundary; scanning it all", seg->path);
		return;
	}
	s->pos = ck->position;
	s->next = ck->next_offset;
	s->max_ts = ck->max_ts;
	s->created_ms = ck->created_ms;
}

/* Drops in-memory index entries the file does not back up. */
static bool indexes_agree(struct kp_segment *seg, uint64_t file_size)
{
	size_t n = seg->index.n;
	uint64_t pos, rel;

	if (n == 0)
		return true;
	rel = kp_get_le32(seg->index.data + (n - 1) * KP_INDEX_ENTRY);
	pos = kp_get_le32(seg->index.data + (n - 1) * KP_INDEX_ENTRY + 4);
	return batch_at(seg, pos, seg->base + rel, file_size);
}

/*
 * Scans seg from s to file_size, checking every batch, noting it in the
 * segment and the producer table; cuts the file at the first bad batch.
 */
static int scan_tail(struct kp_segment *seg, const struct scan_start *s,
		     uint64_t file_size, struct kp_producer_table *producers,
		     struct kp_recovered *out)
{
	struct kp_segment_reader r;
	struct kp_batch_header h;
	const char *why = NULL, *bytes;
	uint64_t next = s->next;
	struct kp_buf buf;
	int rc;

	kp_buf_init(&buf);
	kp_segment_reader_init(&r, seg, s->pos, file_size, &buf, SCAN_CHUNK);
	for (;;) {
		rc = kp_segment_reader_next(&r, &h);
		if (rc == 1) {
			rc = 0;
			break;
		}
		if (rc == -EAGAIN || rc == KP_ECORRUPT) {
			why = rc == -EAGAIN ? "short batch" : "bad batch header";
			rc = 0;
			break;
		}
		if (rc != 0)
			break;
		if (h.base_offset < next ||
		    kp_batch_next_offset(&h) - seg->base > UINT32_MAX) {
			why = "offset out of sequence";
			break;
		}
		rc = kp_segment_reader_bytes(&r, &h, &bytes);
		if (rc != 0)
			break;
		if (kp_batch_verify(bytes, &h) != 0) {
			why = "CRC mismatch";
			break;
		}
		if (r.pos == 0 && seg->created_ms == 0)
			seg->created_ms = h.first_ts;
		rc = kp_segment_note_batch(seg, r.pos, &h);
		if (rc == 0)
			rc = kp_producer_update(producers, h.producer_id,
						h.producer_seq, h.base_offset,
						h.last_offset_delta + 1);
		if (rc != 0)
			break;
		next = kp_batch_next_offset(&h);
		kp_segment_reader_advance(&r, &h);
	}
	kp_buf_destroy(&buf);
	out->scanned = r.pos - s->pos;
	if (rc != 0)
		return rc;
	if (r.pos < file_size) {
		out->cut = file_size - r.pos;
		kp_log_warn("recovery",
			    "cut %" PRIu64 " bytes from %s.log at position %"
			    PRIu64 " (offset %" PRIu64 "): %s",
			    out->cut, seg->path, r.pos, next,
			    why ? why : "unreadable");
		rc = kp_segment_reset(seg, r.pos, next, seg->max_ts, true);
	}
	return rc;
}

static int recover_last(const char *dir, uint64_t base, uint32_t interval,
			const struct kp_ckpt *ck, bool ck_ok,
			struct kp_producer_table *producers,
			struct kp_recovered *out)
{
	struct kp_segment *seg;
	struct scan_start s;
	uint64_t file_size;
	int rc;

	rc = kp_segment_open_active(dir, base, interval, &seg);
	if (rc != 0)
		return rc;
	rc = push_segment(out, seg);
	if (rc != 0) {
		kp_segment_close(seg);
		return rc;
	}
	file_size = seg->size;
	choose_start(seg, ck, ck_ok, file_size, &s);
	rc = kp_segment_reset(seg, s.pos, s.next, s.max_ts, false);
	if (rc == 0 && s.pos > 0 &&
	    (seg->index.n < ck->index_entries ||
	     seg->time.n < ck->time_entries ||
	     !indexes_agree(seg, file_size))) {
		kp_log_warn("recovery", "index of %s.log is short or disagrees "
			    "with the log; rebuilding it", seg->path);
		s.pos = 0;
		s.next = base;
		s.max_ts = INT64_MIN;
		rc = kp_segment_reset(seg, 0, base, INT64_MIN, false);
	}
	if (rc != 0)
		return rc;
	seg->created_ms = s.created_ms;
	return scan_tail(seg, &s, file_size, producers, out);
}

/*
 * true when the sealed segment seg holds whole, valid batches (offsets in
 * sequence from next, CRCs right) from pos to its end.
 */
static bool sealed_tail_ok(struct kp_segment *seg, uint64_t pos, uint64_t next)
{
	struct kp_segment_reader r;
	struct kp_batch_header h;
	const char *bytes;
	struct kp_buf buf;
	bool ok = false;
	int rc;

	kp_buf_init(&buf);
	kp_segment_reader_init(&r, seg, pos, seg->size, &buf, SCAN_CHUNK);
	for (;;) {
		rc = kp_segment_reader_next(&r, &h);
		if (rc == 1) {
			ok = r.pos == seg->size && next == seg->next_offset;
			break;
		}
		if (rc != 0 || h.base_offset < next ||
		    kp_segment_reader_bytes(&r, &h, &bytes) != 0 ||
		    kp_batch_verify(bytes, &h) != 0)
			break;
		next = kp_batch_next_offset(&h);
		kp_segment_reader_advance(&r, &h);
	}
	kp_buf_destroy(&buf);
	return ok;
}

/* Deletes the files of the segment at base (not opened). */
static void remove_segment_files(const char *dir, uint64_t base)
{
	static const char *const ext[] = { "log", "index", "timeindex" };
	char path[4200];

	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%020" PRIu64 ".%s", dir, base,
			 ext[i]);
		unlink(path);
	}
}

/*
 * Segments rolled after the recovery point are not known to be on disk:
 * they are checked batch by batch (from the recovery point in its own
 * segment). At the first one that is not whole, it and every later segment
 * are cut there (what follows was never acknowledged with fsync=always).
 * Returns how many segments remain; *full_scan is set when the last of
 * them must be scanned from its start.
 */
static size_t check_unsynced(const char *dir, const struct kp_ckpt *ck,
			     const uint64_t *bases, size_t n,
			     struct kp_recovered *out, bool *full_scan)
{
	size_t first = n;

	*full_scan = false;
	for (size_t i = 0; i + 1 < n; i++) {
		if (bases[i] == ck->segment_base)
			first = i;
	}
	for (size_t j = first; j + 1 < n; j++) {
		uint64_t pos = j == first ? ck->position : 0;
		uint64_t next = j == first ? ck->next_offset : bases[j];

		if (sealed_tail_ok(out->segs[j], pos, next))
			continue;
		kp_log_warn("recovery",
			    "%s.log was not whole on disk after the crash; "
			    "cutting it and removing the %zu segments after it",
			    out->segs[j]->path, n - 1 - j);
		remove_segment_files(dir, bases[n - 1]);
		for (size_t k = n - 2; k > j; k--)
			kp_segment_remove(out->segs[k]);
		kp_segment_close(out->segs[j]);
		out->n = j;
		*full_scan = true;
		return j + 1;
	}
	return n;
}

/*
 * Rewrites format-1 segments (migrate.h); a recovery point in one of them
 * moves with it and is written again.
 */
static int migrate(const char *dir, const uint64_t *bases, size_t n,
		   uint32_t interval, struct kp_ckpt *ck, bool ck_ok,
		   const struct kp_producer_table *producers,
		   struct kp_error *err)
{
	struct kp_migrate_mark mark;
	int rc;

	memset(&mark, 0, sizeof(mark));
	mark.valid = ck_ok;
	mark.segment_base = ck->segment_base;
	mark.position = ck->position;
	mark.next_offset = ck->next_offset;
	rc = kp_migrate_segments(dir, bases, n, interval, &mark, err);
	if (rc != 0 || !mark.moved)
		return rc;
	ck->position = mark.position;
	ck->next_offset = mark.next_offset;
	if (ck->position == 0)
		ck->max_ts = INT64_MIN;
	ck->index_entries = 0;
	ck->time_entries = 0;
	rc = kp_recovery_ckpt_write(dir, ck, producers, true);
	if (rc != 0)
		kp_log_warn("recovery", "cannot write the recovery point of %s "
			    "after migrating it: %s", dir, kp_error_text(rc));
	return 0;
}

int kp_recovery_run(const char *dir, uint32_t interval,
		    struct kp_recovered *out,
		    struct kp_producer_table *producers, struct kp_error *err)
{
	struct kp_ckpt ck;
	struct kp_segment *seg;
	uint64_t *bases = NULL;
	char tmp[4096];
	size_t n = 0;
	bool ck_ok;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&ck, 0, sizeof(ck));
	if (mkdir(dir, 0755) == 0)
		out->created = true;
	else if (errno != EEXIST)
		return kp_error_set(err, -errno, "cannot create %s: %s", dir,
				    strerror(errno));
	snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, KP_RECOVERY_CKPT);
	unlink(tmp);
	rc = kp_recovery_ckpt_read(dir, &ck, producers);
	ck_ok = rc == 0;
	if (rc != 0 && rc != -ENOENT)
		kp_log_warn("recovery", "ignoring the recovery point of %s: %s",
			    dir, kp_error_text(rc));
	rc = list_segments(dir, &bases, &n);
	if (rc != 0) {
		kp_error_set(err, rc, "cannot list %s: %s", dir,
			     kp_error_text(rc));
		goto fail;
	}
	rc = migrate(dir, bases, n, interval, &ck, ck_ok, producers, err);
	if (rc != 0)
		goto fail;
	if (n == 0) {
		uint64_t base = ck_ok ? ck.next_offset : 0;

		rc = kp_segment_create(dir, base, interval, &seg);
		if (rc == 0)
			rc = push_segment(out, seg);
		if (rc != 0) {
			kp_segment_close(seg);
			kp_error_set(err, rc, "cannot create a segment in %s: %s",
				     dir, kp_error_text(rc));
			goto fail;
		}
		out->created = true;
		kp_free(bases);
		return 0;
	}
	for (size_t i = 0; i + 1 < n; i++) {
		rc = kp_segment_open_sealed(dir, bases[i], bases[i + 1],
					    interval, &seg);
		if (rc == 0) {
			rc = push_segment(out, seg);
			if (rc != 0)
				kp_segment_close(seg);
		}
		if (rc != 0) {
			kp_error_set(err, rc, "cannot open segment %020" PRIu64
				     " of %s: %s", bases[i], dir,
				     kp_error_text(rc));
			goto fail;
		}
	}
	out->unclean_from = n - 1;
	if (ck_ok && ck.segment_base != bases[n - 1]) {
		bool full_scan;

		for (size_t i = 0; i + 1 < n; i++) {
			if (bases[i] == ck.segment_base)
				out->unclean_from = i;
		}
		n = check_unsynced(dir, &ck, bases, n, out, &full_scan);
		if (full_scan)
			ck_ok = false;
		if (out->unclean_from > n - 1)
			out->unclean_from = n - 1;
	}
	rc = recover_last(dir, bases[n - 1], interval, &ck, ck_ok, producers,
			  out);
	if (rc != 0) {
		kp_error_set(err, rc, "cannot recover segment %020" PRIu64
			     " of %s: %s", bases[n - 1], dir, kp_error_text(rc));
		goto fail;
	}
	kp_producer_truncate(producers, out->segs[out->n - 1]->next_offset);
	if (out->scanned > 0 || out->cut > 0)
		kp_log_info("recovery",
			    "recovered %s: %zu segments, scanned %" PRIu64
			    " bytes of tail, cut %" PRIu64 ", next offset %"
			    PRIu64, dir, out->n, out->scanned, out->cut,
			    out->segs[out->n - 1]->next_offset);
	kp_free(bases);
	return 0;
fail:
	kp_free(bases);
	kp_recovery_release(out);
	kp_producer_table_destroy(producers);
	return rc;
}
