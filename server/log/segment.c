/*
 * segment.c - the files of one segment (segment.h).
 *
 * Access pattern: the active segment is written at its end by pwrite, one
 * call per batch; its indexes grow in memory and reach their files in one
 * pwrite per flush. Readers pread forward through a buffered reader. Sealed
 * segments' indexes are mmapped on first lookup and checked then.
 */
#include "segment.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/crc32c.h"
#include "base/error.h"
#include "base/logging.h"

#define PATH_EXTRA 16
#define RESYNC_CHUNK (1u << 20)

static void file_path(const struct kp_segment *seg, const char *ext,
		      char *out, size_t cap)
{
	snprintf(out, cap, "%s%s", seg->path, ext);
}

static struct kp_segment *segment_new(const char *dir, uint64_t base,
				      uint32_t interval)
{
	struct kp_segment *seg = kp_calloc(1, sizeof(*seg));
	size_t cap = strlen(dir) + 1 + 20 + 1;

	if (seg == NULL)
		return NULL;
	seg->path = kp_malloc(cap);
	if (seg->path == NULL) {
		kp_free(seg);
		return NULL;
	}
	snprintf(seg->path, cap, "%s/%020" PRIu64, dir, base);
	seg->base = base;
	seg->next_offset = base;
	seg->max_ts = INT64_MIN;
	seg->interval = interval ? interval : 1;
	seg->fd = -1;
	seg->index_fd = -1;
	seg->time_fd = -1;
	return seg;
}

static void index_free(struct kp_index *ix, size_t entry)
{
	if (ix->mapped && ix->data != NULL)
		munmap(ix->data, ix->n * entry);
	else
		kp_free(ix->data);
	memset(ix, 0, sizeof(*ix));
}

static int index_to_heap(struct kp_index *ix, size_t entry)
{
	char *data;
	size_t cap = ix->n ? ix->n : 64;

	data = kp_malloc(cap * entry);
	if (data == NULL)
		return -ENOMEM;
	if (ix->n > 0)
		memcpy(data, ix->data, ix->n * entry);
	munmap(ix->data, ix->n * entry);
	ix->data = data;
	ix->cap = cap;
	ix->mapped = false;
	return 0;
}

static int index_push(struct kp_index *ix, size_t entry, const char *e)
{
	if (ix->mapped && index_to_heap(ix, entry) != 0)
		return -ENOMEM;
	if (ix->n == ix->cap) {
		size_t cap = ix->cap ? ix->cap * 2 : 64;
		char *data = kp_realloc(ix->data, cap * entry);

		if (data == NULL)
			return -ENOMEM;
		ix->data = data;
		ix->cap = cap;
	}
	memcpy(ix->data + ix->n * entry, e, entry);
	ix->n++;
	return 0;
}

static uint32_t off_rel(const struct kp_index *ix, size_t i)
{
	return kp_get_le32(ix->data + i * KP_INDEX_ENTRY);
}

static uint32_t off_pos(const struct kp_index *ix, size_t i)
{
	return kp_get_le32(ix->data + i * KP_INDEX_ENTRY + 4);
}

static int64_t time_ts(const struct kp_index *ix, size_t i)
{
	return (int64_t)kp_get_le64(ix->data + i * KP_TIMEINDEX_ENTRY);
}

static uint32_t time_rel(const struct kp_index *ix, size_t i)
{
	return kp_get_le32(ix->data + i * KP_TIMEINDEX_ENTRY + 8);
}

/* Writes the CRC that ends an index entry of entry bytes. */
static void entry_seal(char *e, size_t entry)
{
	kp_put_le32(e + entry - 4, kp_crc32c(0, e, entry - 4));
}

/* true when entry i of ix passes its CRC. */
static bool entry_crc_ok(const struct kp_index *ix, size_t i, size_t entry)
{
	const char *e = ix->data + i * entry;

	return kp_get_le32(e + entry - 4) == kp_crc32c(0, e, entry - 4);
}

static int push_time(struct kp_segment *seg, int64_t ts, uint32_t rel)
{
	char e[KP_TIMEINDEX_ENTRY];

	if (seg->time.n > 0 && ts <= time_ts(&seg->time, seg->time.n - 1))
		return 0;
	kp_put_le64(e, (uint64_t)ts);
	kp_put_le32(e + 8, rel);
	entry_seal(e, KP_TIMEINDEX_ENTRY);
	return index_push(&seg->time, KP_TIMEINDEX_ENTRY, e);
}

static int index_batch(struct kp_segment *seg, uint64_t pos,
		       const struct kp_batch_header *h, int64_t *max_ts)
{
	uint32_t rel = (uint32_t)(h->base_offset - seg->base);
	char e[KP_INDEX_ENTRY];
	int rc;

	if (h->max_ts > *max_ts)
		*max_ts = h->max_ts;
	if (pos == 0 || pos - seg->last_index_pos < seg->interval)
		return 0;
	kp_put_le32(e, rel);
	kp_put_le32(e + 4, (uint32_t)pos);
	entry_seal(e, KP_INDEX_ENTRY);
	rc = index_push(&seg->index, KP_INDEX_ENTRY, e);
	if (rc != 0)
		return rc;
	seg->last_index_pos = pos;
	return push_time(seg, *max_ts, rel);
}

int kp_segment_note_batch(struct kp_segment *seg, uint64_t pos,
			  const struct kp_batch_header *h)
{
	int rc = index_batch(seg, pos, h, &seg->max_ts);

	seg->size = pos + h->batch_len;
	seg->next_offset = kp_batch_next_offset(h);
	return rc;
}

static int full_pwrite(int fd, const char *buf, size_t len, uint64_t pos)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, buf, len, (off_t)pos);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
		pos += (uint64_t)n;
	}
	return 0;
}

int kp_segment_pread(const struct kp_segment *seg, void *buf, size_t len,
		     uint64_t pos)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = pread(seg->fd, p, len, (off_t)pos);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		pos += (uint64_t)n;
	}
	return 0;
}

static int open_file(const struct kp_segment *seg, const char *ext, int flags)
{
	char path[4096];
	int fd;

	file_path(seg, ext, path, sizeof(path));
	do {
		fd = open(path, flags | O_CLOEXEC, 0644);
	} while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

int kp_segment_create(const char *dir, uint64_t base, uint32_t interval,
		      struct kp_segment **out)
{
	struct kp_segment *seg = segment_new(dir, base, interval);
	int rc;

	if (seg == NULL)
		return -ENOMEM;
	rc = open_file(seg, ".log", O_RDWR | O_CREAT | O_TRUNC);
	if (rc < 0)
		goto fail;
	seg->fd = rc;
	rc = open_file(seg, ".index", O_RDWR | O_CREAT | O_TRUNC);
	if (rc < 0)
		goto fail;
	seg->index_fd = rc;
	rc = open_file(seg, ".timeindex", O_RDWR | O_CREAT | O_TRUNC);
	if (rc < 0)
		goto fail;
	seg->time_fd = rc;
	seg->indexes_loaded = true;
	*out = seg;
	return 0;
fail:
	kp_segment_close(seg);
	return rc;
}

static int load_heap(int fd, struct kp_index *ix, size_t entry)
{
	struct stat st;
	size_t n;

	if (fstat(fd, &st) != 0)
		return -errno;
	n = (size_t)st.st_size / entry;
	if (n == 0)
		return 0;
	ix->data = kp_malloc(n * entry);
	if (ix->data == NULL)
		return -ENOMEM;
	ix->cap = n;
	ix->n = n;
	for (size_t done = 0; done < n * entry;) {
		ssize_t r = pread(fd, ix->data + done, n * entry - done,
				  (off_t)done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ix->n = done / entry;
			break;
		}
		done += (size_t)r;
	}
	ix->flushed = ix->n;
	return 0;
}

static size_t valid_offset_prefix(const struct kp_index *ix, uint64_t size,
				  uint64_t span)
{
	size_t i;

	for (i = 0; i < ix->n; i++) {
		if (!entry_crc_ok(ix, i, KP_INDEX_ENTRY) ||
		    off_pos(ix, i) >= size || off_rel(ix, i) >= span ||
		    off_pos(ix, i) == 0)
			break;
		if (i > 0 && (off_rel(ix, i) <= off_rel(ix, i - 1) ||
			      off_pos(ix, i) <= off_pos(ix, i - 1)))
			break;
	}
	return i;
}

static size_t valid_time_prefix(const struct kp_index *ix, uint64_t span)
{
	size_t i;

	for (i = 0; i < ix->n; i++) {
		if (!entry_crc_ok(ix, i, KP_TIMEINDEX_ENTRY) ||
		    time_rel(ix, i) >= span)
			break;
		if (i > 0 && (time_ts(ix, i) <= time_ts(ix, i - 1) ||
			      time_rel(ix, i) < time_rel(ix, i - 1)))
			break;
	}
	return i;
}

int kp_segment_open_active(const char *dir, uint64_t base, uint32_t interval,
			   struct kp_segment **out)
{
	struct kp_segment *seg = segment_new(dir, base, interval);
	struct stat st;
	int rc;

	if (seg == NULL)
		return -ENOMEM;
	rc = open_file(seg, ".log", O_RDWR);
	if (rc < 0)
		goto fail;
	seg->fd = rc;
	if (fstat(seg->fd, &st) != 0) {
		rc = -errno;
		goto fail;
	}
	seg->size = (uint64_t)st.st_size;
	seg->last_write_ms = (int64_t)st.st_mtim.tv_sec * 1000 +
			     st.st_mtim.tv_nsec / 1000000;
	rc = open_file(seg, ".index", O_RDWR | O_CREAT);
	if (rc < 0)
		goto fail;
	seg->index_fd = rc;
	rc = open_file(seg, ".timeindex", O_RDWR | O_CREAT);
	if (rc < 0)
		goto fail;
	seg->time_fd = rc;
	rc = load_heap(seg->index_fd, &seg->index, KP_INDEX_ENTRY);
	if (rc == 0)
		rc = load_heap(seg->time_fd, &seg->time, KP_TIMEINDEX_ENTRY);
	if (rc != 0)
		goto fail;
	seg->index.n = valid_offset_prefix(&seg->index, seg->size, UINT32_MAX);
	seg->time.n = valid_time_prefix(&seg->time, UINT32_MAX);
	seg->indexes_loaded = true;
	*out = seg;
	return 0;
fail:
	kp_segment_close(seg);
	return rc;
}

static int write_whole(const struct kp_segment *seg, const char *ext,
		       const struct kp_index *ix, size_t entry)
{
	int fd = open_file(seg, ext, O_WRONLY | O_CREAT | O_TRUNC);
	int rc;

	if (fd < 0)
		return fd;
	rc = full_pwrite(fd, ix->data, ix->n * entry, 0);
	close(fd);
	return rc;
}

/*
 * Indexes the batches of seg from its start: a damaged stretch (a header
 * that fails its checks, offsets out of order) is stepped over to the next
 * valid batch. Returns 0 or -errno; *damaged counts the stretches.
 */
static int index_scan(struct kp_segment *seg, struct kp_buf *buf,
		      int64_t *max_ts, int *damaged)
{
	struct kp_segment_reader r;
	struct kp_batch_header h;
	uint64_t span = seg->next_offset - seg->base, expect = seg->base;
	uint64_t pos;
	int rc;

	kp_segment_reader_init(&r, seg, 0, seg->size, buf, 1 << 20);
	while ((rc = kp_segment_reader_next(&r, &h)) != 1) {
		if (rc == 0 && (h.base_offset < expect ||
				kp_batch_next_offset(&h) - seg->base > span))
			rc = KP_ECORRUPT;
		if (rc == KP_ECORRUPT || rc == -EAGAIN) {
			(*damaged)++;
			kp_log_warn("recovery", "index rebuild of %s.log: the "
				    "batch at position %" PRIu64 " is damaged; "
				    "looking for the next valid one",
				    seg->path, r.pos);
			rc = kp_segment_resync(seg, r.pos + 1, expect, buf,
					       &pos, &h);
			if (rc != 0)
				return rc == 1 ? 0 : rc;
			kp_segment_reader_init(&r, seg, pos, seg->size, buf,
					       1 << 20);
			continue;
		}
		if (rc != 0)
			return rc;
		rc = index_batch(seg, r.pos, &h, max_ts);
		if (rc != 0)
			return rc;
		expect = kp_batch_next_offset(&h);
		kp_segment_reader_advance(&r, &h);
	}
	return 0;
}

static int rebuild(struct kp_segment *seg, const char *why)
{
	struct kp_buf buf;
	int64_t max_ts = INT64_MIN;
	uint64_t span = seg->next_offset - seg->base;
	int damaged = 0, rc;

	index_free(&seg->index, KP_INDEX_ENTRY);
	index_free(&seg->time, KP_TIMEINDEX_ENTRY);
	seg->last_index_pos = 0;
	kp_buf_init(&buf);
	rc = index_scan(seg, &buf, &max_ts, &damaged);
	kp_buf_destroy(&buf);
	if (rc != 0)
		return rc;
	if (seg->size > 0 && span > 0) {
		rc = push_time(seg, max_ts, (uint32_t)(span - 1));
		if (rc != 0)
			return rc;
	}
	seg->max_ts = max_ts;
	seg->indexes_loaded = true;
	rc = write_whole(seg, ".index", &seg->index, KP_INDEX_ENTRY);
	if (rc == 0)
		rc = write_whole(seg, ".timeindex", &seg->time,
				 KP_TIMEINDEX_ENTRY);
	seg->index.flushed = seg->index.n;
	seg->time.flushed = seg->time.n;
	kp_log_warn("recovery",
		    "rebuilt index of %s.log (%s): %zu offset and %zu time "
		    "entries%s",
		    seg->path, why, seg->index.n, seg->time.n,
		    damaged ? "; damaged batches are not indexed" : "");
	return rc;
}

/* Reads the last entry of an index file; 1 when there is none. */
static int last_entry(const struct kp_segment *seg, const char *ext,
		      size_t entry, char *e, size_t *n)
{
	struct stat st;
	int fd = open_file(seg, ext, O_RDONLY);
	int rc = 0;

	if (fd < 0)
		return fd;
	if (fstat(fd, &st) != 0)
		rc = -errno;
	else if ((size_t)st.st_size % entry != 0)
		rc = KP_ECORRUPT;
	else if (st.st_size == 0)
		rc = 1;
	else if (pread(fd, e, entry, st.st_size - (off_t)entry) !=
		 (ssize_t)entry)
		rc = -EIO;
	*n = (size_t)st.st_size / entry;
	close(fd);
	return rc;
}

static const char *cheap_check(struct kp_segment *seg)
{
	uint64_t span = seg->next_offset - seg->base;
	char e[KP_TIMEINDEX_ENTRY];
	size_t n;
	int rc;

	if (seg->size == 0)
		return NULL;
	rc = last_entry(seg, ".index", KP_INDEX_ENTRY, e, &n);
	if (rc == -ENOENT)
		return "offset index missing";
	if (rc < 0 || (rc == 0 && kp_get_le32(e + 8) !=
					  kp_crc32c(0, e, 8)))
		return "offset index damaged";
	if (rc == 0 && (kp_get_le32(e + 4) >= seg->size ||
			kp_get_le32(e) >= span))
		return "offset index points beyond the log";
	rc = last_entry(seg, ".timeindex", KP_TIMEINDEX_ENTRY, e, &n);
	if (rc == -ENOENT)
		return "time index missing";
	if (rc != 0 || kp_get_le32(e + 12) != kp_crc32c(0, e, 12))
		return "time index damaged";
	if (kp_get_le32(e + 8) >= span)
		return "time index points beyond the log";
	seg->max_ts = (int64_t)kp_get_le64(e);
	return NULL;
}

int kp_segment_open_sealed(const char *dir, uint64_t base,
			   uint64_t next_offset, uint32_t interval,
			   struct kp_segment **out)
{
	struct kp_segment *seg = segment_new(dir, base, interval);
	const char *why;
	struct stat st;
	int rc;

	if (seg == NULL)
		return -ENOMEM;
	rc = open_file(seg, ".log", O_RDONLY);
	if (rc < 0)
		goto fail;
	seg->fd = rc;
	if (fstat(seg->fd, &st) != 0) {
		rc = -errno;
		goto fail;
	}
	seg->size = (uint64_t)st.st_size;
	seg->next_offset = next_offset;
	seg->last_write_ms = (int64_t)st.st_mtim.tv_sec * 1000 +
			     st.st_mtim.tv_nsec / 1000000;
	seg->sealed = true;
	seg->created_ms = seg->last_write_ms;
	why = cheap_check(seg);
	if (why != NULL) {
		rc = rebuild(seg, why);
		if (rc != 0)
			goto fail;
	}
	*out = seg;
	return 0;
fail:
	kp_segment_close(seg);
	return rc;
}

void kp_segment_close(struct kp_segment *seg)
{
	if (seg == NULL)
		return;
	if (seg->fd >= 0)
		close(seg->fd);
	if (seg->index_fd >= 0)
		close(seg->index_fd);
	if (seg->time_fd >= 0)
		close(seg->time_fd);
	index_free(&seg->index, KP_INDEX_ENTRY);
	index_free(&seg->time, KP_TIMEINDEX_ENTRY);
	kp_free(seg->path);
	kp_free(seg);
}

void kp_segment_remove(struct kp_segment *seg)
{
	static const char *const exts[] = { ".log", ".index", ".timeindex" };
	char path[4096];

	for (int i = 0; i < 3; i++) {
		file_path(seg, exts[i], path, sizeof(path));
		if (unlink(path) != 0 && errno != ENOENT)
			kp_log_warn("partition", "cannot delete %s: %s", path,
				    strerror(errno));
	}
	kp_segment_close(seg);
}

static int trim_file(int fd, struct kp_index *ix, size_t entry)
{
	if (ix->flushed <= ix->n)
		return 0;
	ix->flushed = ix->n;
	if (fd >= 0 && ftruncate(fd, (off_t)(ix->n * entry)) != 0)
		return -errno;
	return 0;
}

int kp_segment_reset(struct kp_segment *seg, uint64_t pos,
		     uint64_t next_offset, int64_t max_ts, bool cut)
{
	uint64_t span = next_offset - seg->base;
	int rc;

	if (cut && ftruncate(seg->fd, (off_t)pos) != 0)
		return -errno;
	while (seg->index.n > 0 && off_pos(&seg->index, seg->index.n - 1) >= pos)
		seg->index.n--;
	while (seg->time.n > 0 && time_rel(&seg->time, seg->time.n - 1) >= span)
		seg->time.n--;
	rc = trim_file(seg->index_fd, &seg->index, KP_INDEX_ENTRY);
	if (rc == 0)
		rc = trim_file(seg->time_fd, &seg->time, KP_TIMEINDEX_ENTRY);
	seg->last_index_pos =
		seg->index.n ? off_pos(&seg->index, seg->index.n - 1) : 0;
	seg->size = pos;
	seg->next_offset = next_offset;
	seg->max_ts = max_ts;
	return rc;
}

int kp_segment_append(struct kp_segment *seg, const char *batch, size_t len,
		      const struct kp_batch_header *h, int64_t now_ms)
{
	uint64_t pos = seg->size;
	int rc = full_pwrite(seg->fd, batch, len, pos);

	if (rc != 0) {
		if (ftruncate(seg->fd, (off_t)pos) != 0)
			kp_log_error("partition", "cannot cut %s.log back to %"
				     PRIu64 " bytes: %s", seg->path, pos,
				     strerror(errno));
		return rc;
	}
	if (pos == 0)
		seg->created_ms = now_ms;
	seg->last_write_ms = now_ms;
	return kp_segment_note_batch(seg, pos, h);
}

static int flush_one(int fd, struct kp_index *ix, size_t entry)
{
	int rc;

	if (fd < 0 || ix->mapped || ix->flushed >= ix->n)
		return 0;
	rc = full_pwrite(fd, ix->data + ix->flushed * entry,
			 (ix->n - ix->flushed) * entry, ix->flushed * entry);
	if (rc == 0)
		ix->flushed = ix->n;
	return rc;
}

int kp_segment_flush_index(struct kp_segment *seg)
{
	int rc = flush_one(seg->index_fd, &seg->index, KP_INDEX_ENTRY);

	if (rc == 0)
		rc = flush_one(seg->time_fd, &seg->time, KP_TIMEINDEX_ENTRY);
	return rc;
}

int kp_segment_seal(struct kp_segment *seg)
{
	int rc = 0;

	if (seg->size > 0)
		rc = push_time(seg, seg->max_ts,
			       (uint32_t)(seg->next_offset - 1 - seg->base));
	if (rc == 0)
		rc = kp_segment_flush_index(seg);
	seg->sealed = true;
	seg->unsynced = true;
	return rc;
}

static int map_file(const struct kp_segment *seg, const char *ext,
		    struct kp_index *ix, size_t entry)
{
	struct stat st;
	int fd = open_file(seg, ext, O_RDONLY);
	void *m;

	if (fd < 0)
		return fd;
	if (fstat(fd, &st) != 0 || (size_t)st.st_size % entry != 0) {
		close(fd);
		return KP_ECORRUPT;
	}
	if (st.st_size > 0) {
		m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd,
			 0);
		if (m == MAP_FAILED) {
			close(fd);
			return -errno;
		}
		ix->data = m;
		ix->n = (size_t)st.st_size / entry;
		ix->flushed = ix->n;
		ix->mapped = true;
	}
	close(fd);
	return 0;
}

static void ensure_loaded(struct kp_segment *seg)
{
	uint64_t span = seg->next_offset - seg->base;
	const char *why = NULL;
	int rc;

	if (seg->indexes_loaded)
		return;
	seg->indexes_loaded = true;
	rc = map_file(seg, ".index", &seg->index, KP_INDEX_ENTRY);
	if (rc == 0)
		rc = map_file(seg, ".timeindex", &seg->time,
			      KP_TIMEINDEX_ENTRY);
	if (rc != 0)
		why = "index file unreadable";
	else if (valid_offset_prefix(&seg->index, seg->size, span) !=
		 seg->index.n)
		why = "offset index damaged or out of order";
	else if (valid_time_prefix(&seg->time, span) != seg->time.n)
		why = "time index damaged or out of order";
	if (why != NULL && rebuild(seg, why) != 0) {
		index_free(&seg->index, KP_INDEX_ENTRY);
		index_free(&seg->time, KP_TIMEINDEX_ENTRY);
	}
}

/* Entries of the offset index with a relative offset <= rel. */
static size_t entries_upto(const struct kp_index *ix, uint64_t rel)
{
	size_t lo = 0, hi = ix->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (off_rel(ix, mid) <= rel)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * true when offset index entry i points at the start of a valid batch with
 * the entry's offset. An entry at a batch that has since been damaged
 * fails too: the rebuilt index leaves damaged batches out.
 */
static bool entry_ok(struct kp_segment *seg, size_t i)
{
	char hdr[KP_BATCH_HEADER_SIZE];
	struct kp_batch_header h;
	uint64_t pos = off_pos(&seg->index, i);

	return pos + KP_BATCH_HEADER_SIZE <= seg->size &&
	       kp_segment_pread(seg, hdr, sizeof(hdr), pos) == 0 &&
	       kp_batch_header_read(hdr, &h) == 0 &&
	       h.base_offset == seg->base + off_rel(&seg->index, i);
}

uint64_t kp_segment_lookup(struct kp_segment *seg, uint64_t offset)
{
	uint64_t rel = offset - seg->base;

	ensure_loaded(seg);
	for (int attempt = 0;; attempt++) {
		size_t i = entries_upto(&seg->index, rel);

		if (i == 0)
			return 0;
		if (entry_ok(seg, i - 1))
			return off_pos(&seg->index, i - 1);
		if (attempt > 0 ||
		    rebuild(seg, "an offset entry does not point at a valid "
			    "batch with its offset") != 0) {
			kp_log_warn("recovery", "ignoring the offset index of "
				    "%s.log", seg->path);
			index_free(&seg->index, KP_INDEX_ENTRY);
			return 0;
		}
	}
}

uint64_t kp_segment_time_lookup(struct kp_segment *seg, int64_t ts)
{
	size_t lo = 0, hi;

	ensure_loaded(seg);
	hi = seg->time.n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (time_ts(&seg->time, mid) < ts)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == 0 ? seg->base : seg->base + time_rel(&seg->time, lo - 1);
}

/* true when the valid header h at pos could be a batch of seg. */
static bool plausible(const struct kp_segment *seg, uint64_t pos,
		      const struct kp_batch_header *h, uint64_t min_offset)
{
	return h->base_offset >= min_offset && h->base_offset >= seg->base &&
	       kp_batch_next_offset(h) <= seg->next_offset &&
	       h->batch_len <= seg->size - pos;
}

int kp_segment_resync(struct kp_segment *seg, uint64_t from,
		      uint64_t min_offset, struct kp_buf *buf, uint64_t *pos,
		      struct kp_batch_header *h)
{
	const size_t overlap = KP_BATCH_HEADER_SIZE - 1;
	uint64_t at = from;
	int rc;

	while (at < seg->size && seg->size - at >= KP_BATCH_HEADER_SIZE) {
		size_t want = RESYNC_CHUNK + overlap, i = 0;

		if (want > seg->size - at)
			want = (size_t)(seg->size - at);
		kp_buf_reset(buf);
		rc = kp_buf_reserve(buf, want);
		if (rc == 0)
			rc = kp_segment_pread(seg, buf->data, want, at);
		if (rc != 0)
			return rc;
		while (i + KP_BATCH_HEADER_SIZE <= want) {
			size_t j = i + kp_batch_find(buf->data + i, want - i, h);

			if (j == want)
				break;
			if (plausible(seg, at + j, h, min_offset)) {
				*pos = at + j;
				return 0;
			}
			i = j + 1;
		}
		at += want - overlap;
	}
	return 1;
}

void kp_segment_reader_init(struct kp_segment_reader *r,
			    struct kp_segment *seg, uint64_t pos,
			    uint64_t limit, struct kp_buf *buf, size_t chunk)
{
	r->seg = seg;
	r->pos = pos;
	r->limit = limit;
	r->buf = buf;
	r->buf_pos = 0;
	r->chunk = chunk;
	kp_buf_reset(buf);
}

static int ensure(struct kp_segment_reader *r, size_t n)
{
	size_t want = n > r->chunk ? n : r->chunk;
	int rc;

	if (r->pos >= r->buf_pos && r->pos + n <= r->buf_pos + r->buf->len)
		return 0;
	if (want > r->limit - r->pos)
		want = (size_t)(r->limit - r->pos);
	kp_buf_reset(r->buf);
	rc = kp_buf_reserve(r->buf, want);
	if (rc != 0)
		return rc;
	rc = kp_segment_pread(r->seg, r->buf->data, want, r->pos);
	if (rc != 0)
		return rc;
	r->buf->len = want;
	r->buf_pos = r->pos;
	return 0;
}

int kp_segment_reader_next(struct kp_segment_reader *r,
			   struct kp_batch_header *h)
{
	size_t n = KP_BATCH_HEADER_SIZE;
	int rc;

	if (r->pos >= r->limit)
		return 1;
	if (r->limit - r->pos < n)
		n = (size_t)(r->limit - r->pos);
	rc = ensure(r, n);
	if (rc != 0)
		return rc;
	rc = kp_batch_header_decode(r->buf->data + (r->pos - r->buf_pos), n,
				    h);
	if (rc == -EAGAIN && n == KP_BATCH_HEADER_SIZE)
		rc = 0;
	if (rc == 0 && h->batch_len > r->limit - r->pos)
		rc = -EAGAIN;
	return rc;
}

int kp_segment_reader_bytes(struct kp_segment_reader *r,
			    const struct kp_batch_header *h,
			    const char **bytes)
{
	int rc = ensure(r, h->batch_len);

	if (rc != 0)
		return rc;
	*bytes = r->buf->data + (r->pos - r->buf_pos);
	return 0;
}

void kp_segment_reader_advance(struct kp_segment_reader *r,
			       const struct kp_batch_header *h)
{
	r->pos += h->batch_len;
}
