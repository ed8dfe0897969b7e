/*
 * migrate.c - format-1 segments rewritten in format 2 at open (migrate.h).
 *
 * Access pattern: once per old segment, at start, before the partition is
 * served: a forward read through a 1 MiB window, writes of the converted
 * batches in 1 MiB runs to <base>.log.migrate, one fdatasync, a rename and
 * a directory fsync. Segments already in format 2 cost one 16-byte pread.
 */
#include "migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch.h"
#include "batch_v1.h"
#include "segment.h"
#include "base/buf.h"
#include "base/fsutil.h"
#include "base/logging.h"

#define WINDOW (1u << 20)
#define V1_MIN_BATCH (KP_BATCH_V1_HEADER_SIZE + 16)

/* A read window over the old segment file. */
struct window {
	int fd;             /* the old .log, read-only */
	uint64_t size;      /* its size */
	uint64_t pos;       /* file position of buf.data[0] */
	struct kp_buf buf;  /* bytes [pos, pos + buf.len) */
};

/* One segment's conversion. */
struct job {
	const char *dir;        /* the partition directory */
	uint64_t base;          /* the segment's base offset */
	struct window w;        /* the old file */
	int out_fd;             /* <base>.log.migrate */
	struct kp_buf out;      /* converted bytes not yet written */
	struct kp_buf scratch;  /* candidate conversions while searching */
	uint64_t written;       /* bytes of the new file so far (with out) */
	uint64_t expect;        /* offset the next batch must start at */
	uint64_t batches;       /* batches converted */
	uint64_t repaired;      /* of them, with their base offset mended */
	uint64_t damaged;       /* bytes copied as they were */
};

/* Makes [pos, pos + n) of the old file readable at w->buf. */
static int win_load(struct window *w, uint64_t pos, size_t n)
{
	size_t want = n > WINDOW ? n : WINDOW;
	ssize_t r;
	size_t done = 0;
	int rc;

	if (pos >= w->pos && pos + n <= w->pos + w->buf.len)
		return 0;
	if (pos > w->size || n > w->size - pos)
		return -EIO;
	if (want > w->size - pos)
		want = (size_t)(w->size - pos);
	kp_buf_reset(&w->buf);
	rc = kp_buf_reserve(&w->buf, want);
	if (rc != 0)
		return rc;
	while (done < want) {
		r = pread(w->fd, w->buf.data + done, want - done,
			  (off_t)(pos + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		done += (size_t)r;
	}
	w->pos = pos;
	w->buf.len = want;
	return 0;
}

static const char *win_at(const struct window *w, uint64_t pos)
{
	return w->buf.data + (pos - w->pos);
}

/*
 * 1 format 1, 2 format 2, 0 empty or unknown, or -errno: the first
 * batch's magic, or when that is damaged, whether the first MiB holds a
 * valid format-2 header (then 2) or else a format-1 magic (then 1).
 */
static int segment_format(struct window *w)
{
	static const char v1[4] = { 'K', 'P', 'B', '1' };
	static const char v2[4] = { 'K', 'P', 'B', '2' };
	struct kp_batch_header h;
	size_t n;
	int rc;

	if (w->size < 16)
		return 0;
	n = w->size < WINDOW ? (size_t)w->size : WINDOW;
	rc = win_load(w, 0, n);
	if (rc != 0)
		return rc;
	if (memcmp(win_at(w, 12), v1, 4) == 0)
		return 1;
	if (memcmp(win_at(w, 12), v2, 4) == 0)
		return 2;
	if (kp_batch_find(win_at(w, 0), n, &h) < n)
		return 2;
	return memmem(win_at(w, 0), n, v1, 4) != NULL ? 1 : 0;
}

static int flush_out(struct job *j, bool all)
{
	int rc;

	if (j->out.len == 0 || (!all && j->out.len < WINDOW))
		return 0;
	rc = kp_file_write_all(j->out_fd, j->out.data, j->out.len);
	kp_buf_reset(&j->out);
	return rc;
}

/*
 * Converts the format-1 batch at pos into j->out. Returns 0 with *info,
 * KP_ECORRUPT when it does not pass format 1's checks, -errno.
 */
static int convert_at(struct job *j, uint64_t pos, struct kp_buf *out,
		      struct kp_batch_v1_info *info)
{
	uint64_t left = j->w.size - pos;
	size_t n = left < KP_BATCH_V1_HEADER_SIZE ? (size_t)left
						   : KP_BATCH_V1_HEADER_SIZE;
	uint32_t len;
	int rc = win_load(&j->w, pos, n);

	if (rc != 0)
		return rc;
	if (n < KP_BATCH_V1_HEADER_SIZE)
		return KP_ECORRUPT;
	len = kp_get_le32(win_at(&j->w, pos) + 8);
	if (len < V1_MIN_BATCH || len > left)
		return KP_ECORRUPT;
	rc = win_load(&j->w, pos, len);
	if (rc != 0)
		return rc;
	rc = kp_batch_v1_convert(win_at(&j->w, pos), len, out, info);
	return rc == -EAGAIN ? KP_ECORRUPT : rc;
}

/*
 * The position of the first convertible format-1 batch after from, found
 * by its magic (the file's size when there is none); *info describes it.
 */
static uint64_t find_v1(struct job *j, uint64_t from,
			struct kp_batch_v1_info *info)
{
	static const char magic[4] = { 'K', 'P', 'B', '1' };
	uint64_t c = from;

	while (c < j->w.size && j->w.size - c >= V1_MIN_BATCH) {
		size_t n = j->w.size - c > WINDOW ? WINDOW
						  : (size_t)(j->w.size - c);
		const char *m;
		uint64_t cand;

		if (win_load(&j->w, c, n) != 0)
			break;
		m = memmem(win_at(&j->w, c) + 12, n - KP_BATCH_V1_HEADER_SIZE + 4,
			   magic, sizeof(magic));
		if (m == NULL) {
			c += n - KP_BATCH_V1_HEADER_SIZE + 1;
			continue;
		}
		cand = j->w.pos + (uint64_t)(m - j->w.buf.data) - 12;
		kp_buf_reset(&j->scratch);
		if (convert_at(j, cand, &j->scratch, info) == 0)
			return cand;
		c = cand + 1;
	}
	return j->w.size;
}

/* Copies the old bytes [from, to) as they are. */
static int copy_raw(struct job *j, uint64_t from, uint64_t to)
{
	while (from < to) {
		size_t n = to - from > WINDOW ? WINDOW : (size_t)(to - from);
		int rc = win_load(&j->w, from, n);

		if (rc == 0)
			rc = kp_buf_append(&j->out, win_at(&j->w, from), n);
		if (rc == 0)
			rc = flush_out(j, false);
		if (rc != 0)
			return rc;
		j->written += n;
		j->damaged += n;
		from += n;
	}
	return 0;
}

/* Moves the mark if it is at pos of this segment. */
static void follow_mark(struct job *j, struct kp_migrate_mark *mark,
			uint64_t pos)
{
	if (mark != NULL && mark->valid && !mark->moved &&
	    mark->segment_base == j->base && mark->position == pos) {
		mark->position = j->written;
		mark->next_offset = j->expect;
		mark->moved = true;
	}
}

/* Converts the whole old file into j->out_fd. */
static int convert_all(struct job *j, const char *path,
		       struct kp_migrate_mark *mark)
{
	struct kp_batch_v1_info info;
	uint64_t pos = 0, next;
	size_t start;
	int rc;

	while (pos < j->w.size) {
		follow_mark(j, mark, pos);
		start = j->out.len;
		rc = convert_at(j, pos, &j->out, &info);
		if (rc == 0) {
			if (info.base_offset != j->expect) {
				kp_log_warn("migrate", "%s: the batch at position "
					    "%" PRIu64 " says base offset %"
					    PRIu64 " where the offsets before "
					    "it lead to %" PRIu64 "; format 1 "
					    "did not check it: migrated at %"
					    PRIu64, path, pos, info.base_offset,
					    j->expect, j->expect);
				kp_batch_set_base_offset(j->out.data + start,
							 j->expect);
				j->repaired++;
			}
			j->written += j->out.len - start;
			j->expect += info.count;
			j->batches++;
			pos += info.batch_len;
			rc = flush_out(j, false);
			if (rc != 0)
				return rc;
			continue;
		}
		if (rc != KP_ECORRUPT)
			return rc;
		next = find_v1(j, pos + 1, &info);
		kp_log_warn("migrate", "%s: bytes %" PRIu64 "..%" PRIu64 " (from "
			    "offset %" PRIu64 ") fail format 1's checks; copied "
			    "as they are, they will be reported as damaged",
			    path, pos, next, j->expect);
		rc = copy_raw(j, pos, next);
		if (rc != 0)
			return rc;
		if (next < j->w.size && info.base_offset > j->expect)
			j->expect = info.base_offset;
		pos = next;
	}
	follow_mark(j, mark, pos);
	if (mark != NULL && mark->valid && !mark->moved &&
	    mark->segment_base == j->base) {
		mark->position = 0;
		mark->next_offset = j->base;
		mark->moved = true;
	}
	return flush_out(j, true);
}

static void seg_file(char *out, size_t cap, const char *dir, uint64_t base,
		     const char *ext)
{
	snprintf(out, cap, "%s/%020" PRIu64 "%s", dir, base, ext);
}

/* Writes the new file of segment base beside the old one, then swaps them. */
static int migrate_one(const char *dir, uint64_t base, int fd, uint64_t size,
		       uint32_t interval, struct kp_migrate_mark *mark,
		       struct kp_error *err)
{
	char path[4200], tmp[4200], ix[4200];
	struct kp_migrate_mark before;
	struct kp_segment *seg = NULL;
	struct job j;
	int rc;

	memset(&j, 0, sizeof(j));
	j.dir = dir;
	j.base = base;
	j.expect = base;
	j.w.fd = fd;
	j.w.size = size;
	kp_buf_init(&j.w.buf);
	kp_buf_init(&j.out);
	kp_buf_init(&j.scratch);
	seg_file(path, sizeof(path), dir, base, ".log");
	seg_file(tmp, sizeof(tmp), dir, base, ".log" KP_MIGRATE_SUFFIX);
	j.out_fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (j.out_fd < 0) {
		rc = kp_error_set(err, -errno, "cannot create %s: %s", tmp,
				  strerror(errno));
		goto out;
	}
	memset(&before, 0, sizeof(before));
	if (mark != NULL)
		before = *mark;
	rc = convert_all(&j, path, mark);
	if (rc == 0 && fdatasync(j.out_fd) != 0)
		rc = -errno;
	close(j.out_fd);
	if (rc == 0 && j.batches == 0) {
		kp_log_warn("migrate", "%s holds no readable batch of format 1 "
			    "or 2; left as it is", path);
		unlink(tmp);
		if (mark != NULL)
			*mark = before;
		goto out;
	}
	if (rc != 0) {
		unlink(tmp);
		rc = kp_error_set(err, rc, "cannot migrate %s to batch format "
				  "%d: %s", path, KP_BATCH_FORMAT,
				  kp_error_text(rc));
		goto out;
	}
	seg_file(ix, sizeof(ix), dir, base, ".index");
	unlink(ix);
	seg_file(ix, sizeof(ix), dir, base, ".timeindex");
	unlink(ix);
	if (rename(tmp, path) != 0 || kp_file_fsync_dir(dir) != 0) {
		rc = kp_error_set(err, -errno, "cannot replace %s: %s", path,
				  strerror(errno));
		goto out;
	}
	kp_log_info("migrate", "migrated %s from batch format 1 (KPB1) to %d "
		    "(KPB2): %" PRIu64 " batches, offsets %" PRIu64 "..%"
		    PRIu64 ", %" PRIu64 " -> %" PRIu64 " bytes%s", path,
		    KP_BATCH_FORMAT, j.batches, base, j.expect, size,
		    j.written, j.damaged ? "; damaged bytes copied as they were"
					 : "");
	rc = kp_segment_open_sealed(dir, base, j.expect, interval, &seg);
	if (rc != 0)
		rc = kp_error_set(err, rc, "cannot index migrated %s: %s", path,
				  kp_error_text(rc));
	kp_segment_close(seg);
out:
	kp_buf_destroy(&j.w.buf);
	kp_buf_destroy(&j.out);
	kp_buf_destroy(&j.scratch);
	return rc;
}

int kp_migrate_segments(const char *dir, const uint64_t *bases, size_t n,
			uint32_t interval, struct kp_migrate_mark *mark,
			struct kp_error *err)
{
	char path[4200];
	struct window w;
	struct stat st;
	int rc = 0;

	kp_buf_init(&w.buf);
	for (size_t i = 0; i < n && rc == 0; i++) {
		seg_file(path, sizeof(path), dir, bases[i],
			 ".log" KP_MIGRATE_SUFFIX);
		unlink(path);
		seg_file(path, sizeof(path), dir, bases[i], ".log");
		w.fd = open(path, O_RDONLY | O_CLOEXEC);
		if (w.fd < 0) {
			rc = kp_error_set(err, -errno, "cannot open %s: %s",
					  path, strerror(errno));
			break;
		}
		if (fstat(w.fd, &st) != 0) {
			rc = kp_error_set(err, -errno, "cannot stat %s: %s",
					  path, strerror(errno));
		} else {
			w.size = (uint64_t)st.st_size;
			w.pos = 0;
			kp_buf_reset(&w.buf);
			rc = segment_format(&w);
			if (rc < 0)
				rc = kp_error_set(err, rc, "cannot read %s: %s",
						  path, kp_error_text(rc));
			else if (rc == 1)
				rc = migrate_one(dir, bases[i], w.fd, w.size,
						 interval, mark, err);
			else
				rc = 0;
		}
		close(w.fd);
	}
	kp_buf_destroy(&w.buf);
	return rc;
}
