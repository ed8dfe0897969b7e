/*
 * partition.c - one partition: orchestration of its segments (partition.h).
 *
 * Access pattern: the loop thread appends at the end of the last (active)
 * segment, rolls it by size or age, reads forward from an index lookup,
 * and deletes whole old segments for retention. Durability runs through
 * sync jobs: begin (loop) dups the descriptors that need an fdatasync, run
 * (worker) syncs them, done (loop) advances the durable end and, at most
 * once a second, writes the recovery point. Bytes on disk are segment.c's
 * business; open-time recovery is recovery.c's.
 */
#include "partition.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "producer.h"
#include "reader.h"
#include "recovery.h"
#include "segment.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/logging.h"

#define CKPT_EVERY_MS 1000

struct kp_partition {
	char *dir;                         /* owned path of the directory */
	struct kp_partition_config cfg;    /* current settings */
	struct kp_segment **segs;          /* owned, oldest first; last active */
	size_t nsegs;                      /* segments, >= 1 */
	size_t cap;                        /* capacity of segs */
	struct kp_producer_table producers;/* idempotent producer state */
	uint64_t end_offset;               /* next offset to assign */
	uint64_t durable_end;              /* fsynced below this */
	uint64_t visible_end;              /* readers see below this */
	uint64_t size_bytes;               /* sum of segment sizes */
	uint64_t duplicates;               /* duplicate batches answered */
	bool failed;                       /* storage failed: no more writes */
	struct kp_error failure;           /* why it failed */
	bool full;                         /* the last write found no space */
	bool syncing;                      /* a sync job is in flight */
	bool dir_dirty;                    /* entries created since last sync */
	bool parent_dirty;                 /* the directory itself is new */
	int64_t ckpt_mono_ms;              /* when the last recovery point was */
	struct kp_buf scratch;             /* read buffer for scans */
};

/* One descriptor to fdatasync. */
struct sync_fd {
	int fd;            /* dup'd, owned by the job; -1 once closed */
	uint64_t base;     /* segment it belongs to */
	const char *what;  /* ".log", ".index", ".timeindex", "" for a dir */
};

struct kp_sync_job {
	uint64_t end;          /* end_offset when the job began */
	struct kp_ckpt ck;     /* recovery point the job makes true */
	int inject;            /* test hook: error to report, 0 = none */
	int error;             /* first failure, -errno; 0 = success */
	size_t failed;         /* index in fds of the failure */
	size_t n;              /* descriptors */
	struct sync_fd fds[];  /* n descriptors */
};

void kp_partition_config_default(struct kp_partition_config *cfg)
{
	cfg->segment_bytes = 128ull << 20;
	cfg->segment_ms = 7ll * 24 * 3600 * 1000;
	cfg->retention_ms = -1;
	cfg->retention_bytes = -1;
	cfg->index_interval_bytes = 4096;
	cfg->fsync = KP_FSYNC_ALWAYS;
}

int kp_fsync_mode_parse(const char *s, enum kp_fsync_mode *mode)
{
	if (strcmp(s, "always") == 0)
		*mode = KP_FSYNC_ALWAYS;
	else if (strcmp(s, "interval") == 0)
		*mode = KP_FSYNC_INTERVAL;
	else if (strcmp(s, "never") == 0)
		*mode = KP_FSYNC_NEVER;
	else
		return -1;
	return 0;
}

const char *kp_fsync_mode_name(enum kp_fsync_mode mode)
{
	switch (mode) {
	case KP_FSYNC_ALWAYS:
		return "always";
	case KP_FSYNC_INTERVAL:
		return "interval";
	default:
		return "never";
	}
}

static struct kp_segment *active(const struct kp_partition *p)
{
	return p->segs[p->nsegs - 1];
}

static void set_config(struct kp_partition *p,
		       const struct kp_partition_config *cfg)
{
	p->cfg = *cfg;
	if (p->cfg.segment_bytes > UINT32_MAX)
		p->cfg.segment_bytes = UINT32_MAX;
	if (p->cfg.index_interval_bytes == 0)
		p->cfg.index_interval_bytes = 1;
}

static void update_visible(struct kp_partition *p)
{
	uint64_t v = p->cfg.fsync == KP_FSYNC_ALWAYS ? p->durable_end
						      : p->end_offset;

	if (v > p->visible_end)
		p->visible_end = v;
}

static void fail(struct kp_partition *p, int code, const char *what,
		 int error)
{
	p->failed = true;
	kp_error_set(&p->failure, KP_ESTORAGE,
		     "partition %s stopped accepting writes: %s failed: %s",
		     p->dir, what, kp_error_text(error));
	kp_log_error("partition", "%s", p->failure.msg);
	(void)code;
}

static void ckpt_of_active(const struct kp_partition *p, struct kp_ckpt *ck)
{
	const struct kp_segment *seg = active(p);

	ck->segment_base = seg->base;
	ck->position = seg->size;
	ck->next_offset = seg->next_offset;
	ck->max_ts = seg->max_ts;
	ck->created_ms = seg->created_ms;
	ck->index_entries = (uint32_t)seg->index.flushed;
	ck->time_entries = (uint32_t)seg->time.flushed;
}

static void write_ckpt(struct kp_partition *p, const struct kp_ckpt *ck,
		       bool sync)
{
	int rc = kp_recovery_ckpt_write(p->dir, ck, &p->producers, sync);

	if (rc != 0)
		kp_log_warn("partition", "cannot write the recovery point of "
			    "%s: %s", p->dir, kp_error_text(rc));
	p->ckpt_mono_ms = kp_clock_mono_ms();
}

int kp_partition_open(const char *dir, const struct kp_partition_config *cfg,
		      struct kp_partition **out, struct kp_error *err)
{
	struct kp_partition *p = kp_calloc(1, sizeof(*p));
	struct kp_recovered rec;
	int rc;

	if (p == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	p->dir = kp_strndup(dir, strlen(dir));
	if (p->dir == NULL) {
		kp_free(p);
		return kp_error_set(err, -ENOMEM, "out of memory");
	}
	set_config(p, cfg);
	kp_buf_init(&p->scratch);
	kp_producer_table_init(&p->producers);
	rc = kp_recovery_run(dir, p->cfg.index_interval_bytes, &rec,
			     &p->producers, err);
	if (rc != 0) {
		kp_free(p->dir);
		kp_free(p);
		return rc;
	}
	p->segs = rec.segs;
	p->nsegs = rec.n;
	p->cap = rec.cap;
	for (size_t i = 0; i < p->nsegs; i++)
		p->size_bytes += p->segs[i]->size;
	p->end_offset = active(p)->next_offset;
	/*
	 * What recovery found beyond the recovery point is made durable before
	 * it is served (it may still be only in the page cache after a crash).
	 */
	for (size_t i = rec.unclean_from;
	     (rec.scanned > 0 || rec.cut > 0 || i + 1 < p->nsegs) &&
	     i < p->nsegs; i++) {
		if (fdatasync(p->segs[i]->fd) != 0) {
			rc = kp_error_set(err, -errno,
					  "fdatasync of %s.log failed: %s",
					  p->segs[i]->path, strerror(errno));
			p->failed = true;
			kp_partition_close(p);
			return rc;
		}
	}
	p->durable_end = p->end_offset;
	p->visible_end = p->end_offset;
	p->dir_dirty = rec.created;
	p->parent_dirty = rec.created;
	p->ckpt_mono_ms = kp_clock_mono_ms() - CKPT_EVERY_MS;
	kp_log_info("partition", "opened %s: offsets %" PRIu64 "..%" PRIu64
		    " in %zu segments", dir, p->segs[0]->base, p->end_offset,
		    p->nsegs);
	*out = p;
	return 0;
}

static int sync_fd_now(int fd)
{
	return fdatasync(fd) == 0 ? 0 : -errno;
}

static int sync_dir_now(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -errno;
	rc = fsync(fd) == 0 ? 0 : -errno;
	close(fd);
	return rc;
}

static int sync_everything(struct kp_partition *p)
{
	int rc = kp_segment_flush_index(active(p));

	for (size_t i = 0; rc == 0 && i < p->nsegs; i++) {
		struct kp_segment *seg = p->segs[i];

		if (!seg->unsynced && seg != active(p))
			continue;
		rc = sync_fd_now(seg->fd);
		if (rc == 0 && seg->index_fd >= 0)
			rc = sync_fd_now(seg->index_fd);
		if (rc == 0 && seg->time_fd >= 0)
			rc = sync_fd_now(seg->time_fd);
		seg->unsynced = false;
	}
	if (rc == 0 && p->dir_dirty)
		rc = sync_dir_now(p->dir);
	return rc;
}

void kp_partition_discard(struct kp_partition *p)
{
	if (p == NULL)
		return;
	p->failed = true;  /* nothing to keep: skip the sync and the checkpoint */
	kp_partition_close(p);
}

void kp_partition_close(struct kp_partition *p)
{
	struct kp_ckpt ck;
	int rc;

	if (p == NULL)
		return;
	if (!p->failed) {
		rc = sync_everything(p);
		if (rc == 0) {
			ckpt_of_active(p, &ck);
			write_ckpt(p, &ck, true);
		} else {
			kp_log_error("partition", "closing %s: sync failed: %s",
				     p->dir, kp_error_text(rc));
		}
	}
	for (size_t i = 0; i < p->nsegs; i++)
		kp_segment_close(p->segs[i]);
	kp_free(p->segs);
	kp_producer_table_destroy(&p->producers);
	kp_buf_destroy(&p->scratch);
	kp_free(p->dir);
	kp_free(p);
}

void kp_partition_configure(struct kp_partition *p,
			    const struct kp_partition_config *cfg)
{
	set_config(p, cfg);
	active(p)->interval = p->cfg.index_interval_bytes;
	update_visible(p);
}

int kp_partition_producer_check(struct kp_partition *p, uint64_t pid,
				uint32_t seq, uint64_t *dup_base,
				uint32_t *dup_count)
{
	int rc = kp_producer_check(&p->producers, pid, seq, dup_base,
				   dup_count);

	if (rc == 1)
		p->duplicates++;
	return rc;
}

static bool should_roll(const struct kp_partition *p, size_t len,
			uint64_t span, int64_t now_ms)
{
	const struct kp_segment *seg = active(p);

	if (seg->size == 0)
		return false;
	return seg->size + len > p->cfg.segment_bytes ||
	       seg->size + len > UINT32_MAX ||
	       now_ms - seg->created_ms >= p->cfg.segment_ms ||
	       p->end_offset + span - seg->base > UINT32_MAX;
}

static int roll(struct kp_partition *p, int64_t now_ms, struct kp_error *err)
{
	struct kp_segment *old = active(p), *seg;
	int rc;

	if (p->nsegs == p->cap) {
		size_t cap = p->cap * 2;
		struct kp_segment **segs =
			kp_realloc(p->segs, cap * sizeof(*segs));

		if (segs == NULL)
			return kp_error_set(err, -ENOMEM, "out of memory");
		p->segs = segs;
		p->cap = cap;
	}
	rc = kp_segment_create(p->dir, p->end_offset,
			       p->cfg.index_interval_bytes, &seg);
	if (rc != 0) {
		if (rc == -ENOSPC || rc == -EDQUOT)
			p->full = true;
		return kp_error_set(err, KP_ESTORAGE, "cannot create segment %020"
				    PRIu64 " in %s: %s", p->end_offset, p->dir,
				    kp_error_text(rc));
	}
	rc = kp_segment_seal(old);
	if (rc != 0)
		kp_log_warn("partition", "cannot write the index of %s.log: %s",
			    old->path, kp_error_text(rc));
	p->segs[p->nsegs++] = seg;
	p->dir_dirty = true;
	kp_log_debug("partition", "rolled %s.log at %" PRIu64 " bytes",
		     old->path, old->size);
	/*
	 * With fsync, no recovery point here: the old segment's tail may not
	 * be on disk yet. The next sync writes one in the new segment; until
	 * then a restart checks the rolled segments batch by batch. Without
	 * fsync nothing is promised after a power loss, and the recovery
	 * point keeps a restart from rereading everything rolled since.
	 */
	if (p->cfg.fsync == KP_FSYNC_NEVER) {
		struct kp_ckpt ck;

		ck.segment_base = seg->base;
		ck.position = 0;
		ck.next_offset = seg->base;
		ck.max_ts = INT64_MIN;
		ck.created_ms = now_ms;
		ck.index_entries = 0;
		ck.time_entries = 0;
		write_ckpt(p, &ck, false);
	}
	return 0;
}

int kp_partition_append(struct kp_partition *p, char *batch, size_t len,
			int64_t now_ms, uint64_t *base_offset,
			struct kp_error *err)
{
	struct kp_batch_header h;
	uint64_t span;
	int rc;

	if (p->failed)
		return kp_error_set(err, KP_ESTORAGE, "%s", p->failure.msg);
	rc = kp_batch_header_decode(batch, len, &h);
	if (rc != 0 || h.batch_len != len)
		return kp_error_set(err, KP_ECORRUPT, "malformed batch");
	span = (uint64_t)h.last_offset_delta + 1;
	if (should_roll(p, len, span, now_ms)) {
		rc = roll(p, now_ms, err);
		if (rc != 0)
			return rc;
	}
	h.base_offset = p->end_offset;
	kp_batch_set_base_offset(batch, h.base_offset);
	rc = kp_segment_append(active(p), batch, len, &h, now_ms);
	if (rc == -ENOSPC || rc == -EDQUOT) {
		if (!p->full)
			kp_log_error("partition", "%s: no space for a write (%s); "
				     "writes are refused until there is",
				     p->dir, kp_error_text(rc));
		p->full = true;
		return kp_error_set(err, KP_ESTORAGE,
				    "write to %s.log failed: %s (writes resume once there is space)",
				    active(p)->path, kp_error_text(rc));
	}
	if (rc != 0) {
		fail(p, rc, "write", rc);
		return kp_error_set(err, rc, "write to %s.log failed: %s",
				    active(p)->path, kp_error_text(rc));
	}
	if (p->full)
		kp_log_info("partition", "%s takes writes again", p->dir);
	p->full = false;
	p->end_offset = kp_batch_next_offset(&h);
	p->size_bytes += len;
	update_visible(p);
	if (kp_producer_update(&p->producers, h.producer_id, h.producer_seq,
			       h.base_offset, (uint32_t)span) != 0)
		kp_log_warn("partition", "out of memory recording producer %"
			    PRIu64 " of %s", h.producer_id, p->dir);
	*base_offset = h.base_offset;
	return 0;
}

static bool add_fd(struct kp_sync_job *job, int fd, uint64_t base,
		   const char *what)
{
	int d;

	if (fd < 0)
		return true;
	d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (d < 0)
		return false;
	job->fds[job->n].fd = d;
	job->fds[job->n].base = base;
	job->fds[job->n].what = what;
	job->n++;
	return true;
}

static int open_dir_fd(const char *dir, bool parent)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s%s", dir, parent ? "/.." : "");
	return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static void job_close(struct kp_sync_job *job)
{
	for (size_t i = 0; i < job->n; i++) {
		if (job->fds[i].fd >= 0)
			close(job->fds[i].fd);
		job->fds[i].fd = -1;
	}
}

struct kp_sync_job *kp_partition_sync_begin(struct kp_partition *p)
{
	struct kp_sync_job *job;
	size_t first = p->nsegs - 1, max;
	bool ok = true;
	int rc;

	if (p->failed || p->syncing || p->durable_end == p->end_offset)
		return NULL;
	while (first > 0 && p->segs[first - 1]->unsynced)
		first--;
	max = 1 + 3 * (p->nsegs - 1 - first) + 2;
	job = kp_calloc(1, sizeof(*job) + max * sizeof(job->fds[0]));
	if (job == NULL)
		return NULL;
	rc = kp_segment_flush_index(active(p));
	if (rc != 0)
		kp_log_warn("partition", "cannot write the index of %s.log: %s",
			    active(p)->path, kp_error_text(rc));
	for (size_t i = first; ok && i < p->nsegs - 1; i++) {
		struct kp_segment *seg = p->segs[i];

		ok = add_fd(job, seg->fd, seg->base, ".log") &&
		     add_fd(job, seg->index_fd, seg->base, ".index") &&
		     add_fd(job, seg->time_fd, seg->base, ".timeindex");
	}
	ok = ok && add_fd(job, active(p)->fd, active(p)->base, ".log");
	if (ok && p->dir_dirty) {
		int fd = open_dir_fd(p->dir, false);

		ok = fd >= 0 && add_fd(job, fd, 0, "");
		if (fd >= 0)
			close(fd);
	}
	if (ok && p->parent_dirty) {
		int fd = open_dir_fd(p->dir, true);

		ok = fd >= 0 && add_fd(job, fd, 0, "/..");
		if (fd >= 0)
			close(fd);
	}
	if (!ok) {
		kp_log_warn("partition", "cannot start a sync of %s: %s",
			    p->dir, strerror(errno));
		job_close(job);
		kp_free(job);
		return NULL;
	}
	for (size_t i = first; i < p->nsegs - 1; i++)
		p->segs[i]->unsynced = false;
	p->dir_dirty = false;
	p->parent_dirty = false;
	job->end = p->end_offset;
	ckpt_of_active(p, &job->ck);
	p->syncing = true;
	return job;
}

void kp_sync_job_run(struct kp_sync_job *job)
{
	for (size_t i = 0; i < job->n && job->error == 0; i++) {
		if (i == 0 && job->inject != 0)
			job->error = job->inject;
		else if (fdatasync(job->fds[i].fd) != 0)
			job->error = -errno;
		if (job->error != 0)
			job->failed = i;
	}
	job_close(job);
}

void kp_sync_job_inject_error(struct kp_sync_job *job, int error)
{
	job->inject = error;
}

int kp_partition_sync_done(struct kp_partition *p, struct kp_sync_job *job,
			   struct kp_error *err)
{
	char what[4200];
	int rc = job->error;

	p->syncing = false;
	if (rc != 0) {
		const struct sync_fd *f = &job->fds[job->failed];

		if (f->what[0] == '.')
			snprintf(what, sizeof(what), "fdatasync of %s/%020"
				 PRIu64 "%s", p->dir, f->base, f->what);
		else
			snprintf(what, sizeof(what), "fsync of directory %s%s",
				 p->dir, f->what);
		fail(p, rc, what, rc);
		kp_error_set(err, rc, "%s", p->failure.msg);
	} else {
		if (job->end > p->durable_end)
			p->durable_end = job->end;
		update_visible(p);
		if (job->ck.segment_base == active(p)->base &&
		    kp_clock_mono_ms() - p->ckpt_mono_ms >= CKPT_EVERY_MS)
			write_ckpt(p, &job->ck, false);
	}
	job_close(job);
	kp_free(job);
	return rc;
}

bool kp_partition_syncing(const struct kp_partition *p)
{
	return p->syncing;
}

static void log_view(struct kp_partition *p, struct kp_log_view *lv)
{
	lv->segs = p->segs;
	lv->n = p->nsegs;
	lv->visible_end = p->visible_end;
	lv->scratch = &p->scratch;
}

/* KP_EOFFSET for a read at offset outside the partition's range. */
static int outside(const struct kp_partition *p, uint64_t offset,
		   struct kp_error *err)
{
	return kp_error_set(err, KP_EOFFSET, "offset %" PRIu64
			    " is outside %" PRIu64 "..%" PRIu64, offset,
			    p->segs[0]->base, p->visible_end);
}

int kp_partition_read(struct kp_partition *p, uint64_t offset,
		      size_t max_bytes, struct kp_buf *out, uint64_t *skip_to,
		      struct kp_error *err)
{
	struct kp_log_view lv;

	if (skip_to != NULL)
		*skip_to = 0;
	if (offset < p->segs[0]->base || offset > p->visible_end)
		return outside(p, offset, err);
	if (offset == p->visible_end)
		return 0;
	log_view(p, &lv);
	return kp_reader_read(&lv, offset, max_bytes, out, skip_to, err);
}

int kp_partition_locate(struct kp_partition *p, uint64_t offset,
			size_t max_bytes, struct kp_read_span *span,
			uint64_t *skip_to, struct kp_error *err)
{
	struct kp_log_view lv;

	memset(span, 0, sizeof(*span));
	span->fd = -1;
	if (skip_to != NULL)
		*skip_to = 0;
	if (offset < p->segs[0]->base || offset > p->visible_end)
		return outside(p, offset, err);
	if (offset == p->visible_end)
		return 0;
	log_view(p, &lv);
	return kp_reader_locate(&lv, offset, max_bytes, span, skip_to, err);
}

int kp_partition_offset_for_time(struct kp_partition *p, int64_t ts,
				 uint64_t *offset, struct kp_error *err)
{
	struct kp_log_view lv;

	log_view(p, &lv);
	return kp_reader_offset_for_time(&lv, ts, offset, err);
}

int kp_partition_enforce_retention(struct kp_partition *p, int64_t now_ms)
{
	int removed = 0;

	while (p->nsegs > 1) {
		struct kp_segment *seg = p->segs[0];
		bool old = p->cfg.retention_ms >= 0 && seg->size > 0 &&
			   seg->max_ts < now_ms - p->cfg.retention_ms;
		bool big = p->cfg.retention_bytes >= 0 &&
			   p->size_bytes > (uint64_t)p->cfg.retention_bytes;

		if (!old && !big)
			break;
		kp_log_info("partition", "deleting %s.log (offsets %" PRIu64
			    "..%" PRIu64 ", %" PRIu64 " bytes): retention by %s",
			    seg->path, seg->base, seg->next_offset, seg->size,
			    old ? "age" : "size");
		p->size_bytes -= seg->size;
		kp_segment_remove(seg);
		memmove(&p->segs[0], &p->segs[1],
			(p->nsegs - 1) * sizeof(p->segs[0]));
		p->nsegs--;
		removed++;
	}
	return removed;
}

void kp_partition_stats(const struct kp_partition *p,
			struct kp_partition_stats *st)
{
	st->start_offset = p->segs[0]->base;
	st->end_offset = p->end_offset;
	st->durable_end = p->durable_end;
	st->visible_end = p->visible_end;
	st->size_bytes = p->size_bytes;
	st->segments = (uint32_t)p->nsegs;
	st->duplicates = p->duplicates;
	st->failed = p->failed;
	st->full = p->full;
}

/* ---- for compaction (compact.h; store.c runs it) ------------------------ */

size_t kp_partition_segment_count(const struct kp_partition *p)
{
	return p->nsegs;
}

struct kp_segment *kp_partition_segment_at(const struct kp_partition *p,
					   size_t i)
{
	return p->segs[i];
}

int kp_partition_replace_segments(struct kp_partition *p, uint64_t base,
				  size_t count, struct kp_segment *seg)
{
	uint64_t old = 0;
	size_t i = 0;

	while (i < p->nsegs && p->segs[i]->base != base)
		i++;
	if (count == 0 || i + count >= p->nsegs || seg->base != base)
		return -EINVAL;
	for (size_t k = i; k < i + count; k++) {
		old += p->segs[k]->size;
		kp_segment_close(p->segs[k]);
	}
	p->segs[i] = seg;
	memmove(&p->segs[i + 1], &p->segs[i + count],
		(p->nsegs - i - count) * sizeof(p->segs[0]));
	p->nsegs -= count - 1;
	p->size_bytes = p->size_bytes - old + seg->size;
	return 0;
}

int kp_partition_write_recovery_point(struct kp_partition *p)
{
	struct kp_segment *seg = active(p);
	struct kp_ckpt ck;

	if (p->failed || p->syncing)
		return -EAGAIN;
	if (p->cfg.fsync == KP_FSYNC_NEVER) {
		memset(&ck, 0, sizeof(ck));
		ck.segment_base = seg->base;
		ck.next_offset = seg->base;
		ck.max_ts = INT64_MIN;
		ck.created_ms = seg->created_ms;
	} else {
		if (p->durable_end != p->end_offset)
			return -EAGAIN;
		ckpt_of_active(p, &ck);
	}
	write_ckpt(p, &ck, false);
	return 0;
}
