/*
 * compact.c - compaction runs and their crash-safe swap (compact.h).
 *
 * Access pattern: a run reads its sources front to back through their
 * duplicated descriptors, at most three times (the dirty ones' keys, what
 * each source keeps, the records of the segments it rewrites), and writes
 * each new segment with one pwrite per batch of up to 1024 records into
 * compact.tmp. The loop thread only adds sources, renames files and frees.
 */
#include "compact.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "compact_map.h"
#include "recovery.h"
#include "segment.h"
#include "base/alloc.h"
#include "base/fsutil.h"
#include "base/logging.h"

#define READ_CHUNK (1u << 20)
#define OUT_BATCH_RECORDS 1024
#define OUT_BATCH_BYTES (256u << 10)
#define MAP_BYTES_DEFAULT ((size_t)256 << 20)
#define OUT_SEGMENT_MAX (1ull << 31)
#define STALL_MS 60000
#define CANCEL_EVERY 4096

/* ---- names and the policy ------------------------------------------------ */

int kp_cleanup_parse(const char *s, size_t len, enum kp_cleanup *out)
{
	static const struct {
		const char *name;
		enum kp_cleanup cleanup;
	} names[] = {
		{ "delete", KP_CLEANUP_DELETE },
		{ "compact", KP_CLEANUP_COMPACT },
		{ "compact,delete", KP_CLEANUP_COMPACT_DELETE },
		{ "delete,compact", KP_CLEANUP_COMPACT_DELETE },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strlen(names[i].name) == len &&
		    memcmp(names[i].name, s, len) == 0) {
			*out = names[i].cleanup;
			return 0;
		}
	}
	return -1;
}

const char *kp_cleanup_name(enum kp_cleanup c)
{
	switch (c) {
	case KP_CLEANUP_COMPACT:
		return "compact";
	case KP_CLEANUP_COMPACT_DELETE:
		return "compact,delete";
	default:
		return "delete";
	}
}

bool kp_cleanup_compacts(enum kp_cleanup c)
{
	return c == KP_CLEANUP_COMPACT || c == KP_CLEANUP_COMPACT_DELETE;
}

bool kp_compact_is_tombstone(const char *value, uint32_t value_len)
{
	return value_len == 1 && (unsigned char)value[0] == 0xc0;
}

bool kp_compact_due(const struct kp_compact_state *s, uint64_t dirty_bytes,
		    uint64_t total_bytes, int64_t now_ms)
{
	if (s->running || now_ms < s->retry_ms || total_bytes == 0)
		return false;
	if (s->last_run_ms != 0 &&
	    now_ms - s->last_run_ms < KP_COMPACT_MIN_INTERVAL_MS)
		return false;
	if (s->tombstone_due_ms != 0 && now_ms >= s->tombstone_due_ms)
		return true;
	if (dirty_bytes == 0)
		return false;
	if (s->seen_end_ms != 0 && now_ms - s->seen_end_ms >= KP_COMPACT_QUIET_MS)
		return true;
	return (double)dirty_bytes >=
	       KP_COMPACT_MIN_DIRTY_RATIO * (double)total_bytes;
}

/* ---- jobs ----------------------------------------------------------------- */

struct kp_compact_job *kp_compact_job_new(const char *dir,
					  const struct kp_compact_settings *set)
{
	struct kp_compact_job *job = kp_calloc(1, sizeof(*job));

	if (job == NULL)
		return NULL;
	snprintf(job->dir, sizeof(job->dir), "%s", dir);
	job->set = *set;
	if (job->set.map_bytes == 0)
		job->set.map_bytes = MAP_BYTES_DEFAULT;
	if (job->set.segment_bytes == 0 ||
	    job->set.segment_bytes > OUT_SEGMENT_MAX)
		job->set.segment_bytes = OUT_SEGMENT_MAX;
	if (job->set.delete_retention_ms < 0)
		job->set.delete_retention_ms = 0;
	atomic_init(&job->cancel, false);
	job->scanned_end = set->clean_end;
	kp_error_clear(&job->err);
	return job;
}

int kp_compact_job_add(struct kp_compact_job *job,
		       const struct kp_segment *seg, uint64_t end)
{
	struct kp_compact_source *s;
	int fd;

	if (job->nsrc == job->src_cap) {
		size_t cap = job->src_cap ? job->src_cap * 2 : 16;
		struct kp_compact_source *grown =
			kp_realloc(job->src, cap * sizeof(*grown));

		if (grown == NULL)
			return -ENOMEM;
		job->src = grown;
		job->src_cap = cap;
	}
	fd = fcntl(seg->fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	s = &job->src[job->nsrc++];
	memset(s, 0, sizeof(*s));
	s->base = seg->base;
	s->end = end;
	s->size = seg->size;
	s->mtime_ms = seg->last_write_ms;
	s->fd = fd;
	return 0;
}

static void drop_sources_from(struct kp_compact_job *job, size_t n)
{
	for (size_t i = n; i < job->nsrc; i++) {
		if (job->src[i].fd >= 0)
			close(job->src[i].fd);
		job->src[i].fd = -1;
	}
	if (n < job->nsrc)
		job->nsrc = n;
}

void kp_compact_job_delete(struct kp_compact_job *job)
{
	if (job == NULL)
		return;
	drop_sources_from(job, 0);
	for (size_t i = 0; i < job->nout; i++)
		kp_segment_close(job->out[i].seg);
	kp_free(job->out);
	kp_free(job->src);
	kp_free(job);
}

static void tmp_dir(const struct kp_compact_job *job, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", job->dir, KP_COMPACT_TMP_DIR);
}

static void sleep_ms(uint32_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000),
			       (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Test hook: waits (up to STALL_MS, or until cancelled) at phase `at`. */
static void maybe_stall(struct kp_compact_job *job, const char *at)
{
	if (job->set.stall == NULL || strcmp(job->set.stall, at) != 0)
		return;
	kp_log_info("compact", "%s: stalling at '%s' (test hook)", job->dir, at);
	for (int waited = 0;
	     waited < STALL_MS && !atomic_load(&job->cancel); waited += 100)
		sleep_ms(100);
}

/* ---- reading a source ----------------------------------------------------- */

/* The records of one source, batch by batch, each batch verified. */
struct src_iter {
	struct kp_segment view;         /* stands for the source: fd and size */
	struct kp_segment_reader r;     /* over view */
	struct kp_buf buf;              /* the reader's scratch */
	const struct kp_compact_source *src;  /* borrowed from the job */
	struct kp_batch_header h;       /* current batch */
	const char *bytes;              /* its bytes, valid until the next batch */
	size_t rpos;                    /* kp_batch_next position in it */
	uint32_t index;                 /* kp_batch_next index in it */
	uint64_t next;                  /* offsets below were seen */
	bool in_batch;                  /* h and bytes are current */
};

static void iter_open(struct src_iter *it, const struct kp_compact_source *src)
{
	memset(it, 0, sizeof(*it));
	it->view.fd = src->fd;
	it->view.index_fd = -1;
	it->view.time_fd = -1;
	it->view.base = src->base;
	it->view.next_offset = src->end;
	it->view.size = src->size;
	it->src = src;
	it->next = src->base;
	kp_buf_init(&it->buf);
	kp_segment_reader_init(&it->r, &it->view, 0, src->size, &it->buf,
			       READ_CHUNK);
}

static void iter_close(struct src_iter *it)
{
	kp_buf_destroy(&it->buf);
}

/* 1 with *rec (it->h its batch), 0 at the end, KP_ECORRUPT or -errno. */
static int iter_next(struct src_iter *it, struct kp_record *rec)
{
	int rc;

	for (;;) {
		if (it->in_batch) {
			rc = kp_batch_next(it->bytes, &it->h, &it->rpos,
					   &it->index, rec);
			if (rc == 1)
				return 1;
			if (rc < 0)
				return KP_ECORRUPT;
			kp_segment_reader_advance(&it->r, &it->h);
			it->in_batch = false;
		}
		rc = kp_segment_reader_next(&it->r, &it->h);
		if (rc == 1)
			return 0;
		if (rc == -EAGAIN)
			return KP_ECORRUPT;
		if (rc != 0)
			return rc;
		rc = kp_segment_reader_bytes(&it->r, &it->h, &it->bytes);
		if (rc != 0)
			return rc;
		if (kp_batch_verify(it->bytes, &it->h) != 0 ||
		    it->h.base_offset < it->next ||
		    kp_batch_next_offset(&it->h) > it->src->end)
			return KP_ECORRUPT;
		it->next = kp_batch_next_offset(&it->h);
		it->rpos = 0;
		it->index = 0;
		it->in_batch = true;
	}
}

static int source_error(struct kp_compact_job *job,
			const struct src_iter *it, int rc)
{
	if (rc == KP_ECORRUPT)
		return kp_error_set(&job->err, rc,
				    "%s/%020" PRIu64 ".log has a bad batch at "
				    "position %" PRIu64 "; not compacting it",
				    job->dir, it->src->base, it->r.pos);
	return kp_error_set(&job->err, rc, "read of %s/%020" PRIu64
			    ".log failed: %s", job->dir, it->src->base,
			    kp_error_text(rc));
}

/* ---- what is kept --------------------------------------------------------- */

/* The context of one run's decisions. */
struct run {
	struct kp_compact_job *job;  /* borrowed */
	struct kp_keymap map;        /* keys of the dirty sources */
};

static bool keep(struct run *run, const struct kp_compact_source *src,
		 const struct kp_record *rec)
{
	struct kp_compact_job *job = run->job;
	int64_t dr = job->set.delete_retention_ms, t, due;
	uint64_t latest;

	if (rec->key == NULL)
		return true;
	if (kp_keymap_get(&run->map, rec->key, rec->key_len, &latest) &&
	    latest > rec->offset)
		return false;
	if (!kp_compact_is_tombstone(rec->value, rec->value_len))
		return true;
	t = rec->ts > src->mtime_ms ? rec->ts : src->mtime_ms;
	if (t < job->set.now_ms - dr)
		return false;
	due = t > INT64_MAX - dr - 1 ? INT64_MAX : t + dr + 1;
	if (job->tombstone_due_ms == 0 || due < job->tombstone_due_ms)
		job->tombstone_due_ms = due;
	return true;
}

static uint64_t record_bytes(const struct kp_batch_header *h,
			     const struct kp_record *rec)
{
	return KP_RECORD_HEADER_SIZE + (uint64_t)rec->key_len +
	       rec->value_len +
	       ((h->flags & KP_BATCH_FLAG_HEADERS) ? 4 + rec->headers_len : 0);
}

/*
 * Called for every record a pass reads: true when the job was cancelled
 * (checked every CANCEL_EVERY records); sleeps delay_ms every 1000 records
 * when the test knob asks.
 */
static bool cancelled(struct kp_compact_job *job, uint64_t *n)
{
	++*n;
	if (job->set.delay_ms > 0 && *n % 1000 == 0)
		sleep_ms(job->set.delay_ms);
	if (*n % CANCEL_EVERY != 0)
		return false;
	return atomic_load(&job->cancel);
}

/*
 * Collects the keys of the dirty sources, oldest first, until the map
 * holds map_bytes: the sources after that wait for the next run.
 */
static int map_pass(struct run *run)
{
	struct kp_compact_job *job = run->job;
	bool any = false;
	uint64_t n = 0;

	for (size_t i = 0; i < job->nsrc; i++) {
		struct kp_compact_source *src = &job->src[i];
		struct kp_record rec;
		struct src_iter it;
		int rc;

		if (src->end <= job->set.clean_end)
			continue;
		if (any && kp_keymap_bytes(&run->map) >= job->set.map_bytes) {
			drop_sources_from(job, i);
			break;
		}
		any = true;
		iter_open(&it, src);
		while ((rc = iter_next(&it, &rec)) == 1) {
			if (cancelled(job, &n)) {
				rc = -ECANCELED;
				break;
			}
			if (rec.key != NULL &&
			    kp_keymap_put(&run->map, rec.key, rec.key_len,
					  rec.offset) != 0) {
				rc = -ENOMEM;
				break;
			}
		}
		if (rc != 0 && rc != -ECANCELED && rc != -ENOMEM)
			rc = source_error(job, &it, rc);
		iter_close(&it);
		if (rc == -ECANCELED || rc == -ENOMEM)
			return kp_error_set(&job->err, rc, "%s",
					    rc == -ENOMEM ? "out of memory"
							  : "cancelled");
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Counts what each source keeps and drops. */
static int count_pass(struct run *run)
{
	struct kp_compact_job *job = run->job;
	uint64_t n = 0;

	for (size_t i = 0; i < job->nsrc; i++) {
		struct kp_compact_source *src = &job->src[i];
		struct kp_record rec;
		struct src_iter it;
		int rc;

		iter_open(&it, src);
		while ((rc = iter_next(&it, &rec)) == 1) {
			if (cancelled(job, &n)) {
				rc = -ECANCELED;
				break;
			}
			if (keep(run, src, &rec)) {
				src->keep_records++;
				src->keep_bytes += record_bytes(&it.h, &rec);
			} else {
				src->drop_records++;
			}
		}
		if (rc != 0 && rc != -ECANCELED)
			rc = source_error(job, &it, rc);
		iter_close(&it);
		if (rc == -ECANCELED)
			return kp_error_set(&job->err, rc, "cancelled");
		if (rc != 0)
			return rc;
		src->keep_bytes += KP_BATCH_HEADER_SIZE *
				   ((src->keep_records + OUT_BATCH_RECORDS - 1) /
				    OUT_BATCH_RECORDS);
	}
	return 0;
}

/*
 * Groups adjacent sources into new segments of at most segment_bytes
 * (and an offset span a segment index can hold); a group of one source
 * that drops nothing is left alone.
 */
static int plan_outputs(struct kp_compact_job *job)
{
	size_t i = 0;

	job->out = kp_calloc(job->nsrc ? job->nsrc : 1, sizeof(*job->out));
	if (job->out == NULL)
		return kp_error_set(&job->err, -ENOMEM, "out of memory");
	while (i < job->nsrc) {
		uint64_t bytes = job->src[i].keep_bytes;
		uint64_t drops = job->src[i].drop_records;
		size_t j = i + 1;

		while (j < job->nsrc &&
		       bytes + job->src[j].keep_bytes <= job->set.segment_bytes &&
		       job->src[j].end - job->src[i].base <= UINT32_MAX) {
			bytes += job->src[j].keep_bytes;
			drops += job->src[j].drop_records;
			j++;
		}
		if (j - i > 1 || drops > 0) {
			struct kp_compact_output *o = &job->out[job->nout++];

			o->first = i;
			o->count = j - i;
			o->base = job->src[i].base;
			o->end = job->src[j - 1].end;
		}
		i = j;
	}
	return 0;
}

/* ---- writing a new segment ------------------------------------------------ */

/* Packs kept records into batches of the new segment. */
struct out_writer {
	struct kp_compact_job *job;    /* borrowed */
	struct kp_segment *seg;        /* being written in compact.tmp */
	struct kp_buf buf;             /* the batch being built */
	struct kp_batch_builder b;     /* builds into buf */
	bool open;                     /* b holds records */
	uint64_t base;                 /* base offset of the open batch */
	uint32_t flags;                /* its KP_BATCH_FLAG_* */
};

static int writer_flush(struct out_writer *w)
{
	struct kp_batch_header h;
	size_t len;
	int rc;

	if (!w->open)
		return 0;
	w->open = false;
	len = kp_batch_finish_at(&w->b, w->base);
	rc = kp_batch_header_decode(w->buf.data, len, &h);
	if (rc == 0)
		rc = kp_segment_append(w->seg, w->buf.data, len, &h,
				       w->job->set.now_ms);
	kp_buf_reset(&w->buf);
	return rc;
}

static int writer_add(struct out_writer *w, const struct kp_batch_header *h,
		      const struct kp_record *rec)
{
	uint32_t flags = h->flags & KP_BATCH_FLAG_HEADERS;
	int rc;

	if (w->open && (flags != w->flags || w->b.count >= OUT_BATCH_RECORDS ||
			w->buf.len >= OUT_BATCH_BYTES ||
			rec->offset - w->base > UINT32_MAX)) {
		rc = writer_flush(w);
		if (rc != 0)
			return rc;
	}
	if (!w->open) {
		rc = kp_batch_begin_flags(&w->b, &w->buf, 0, 0, flags);
		if (rc != 0)
			return rc;
		w->open = true;
		w->base = rec->offset;
		w->flags = flags;
	}
	return kp_batch_add_at(&w->b, (uint32_t)(rec->offset - w->base),
			       rec->ts, rec->key, rec->key_len,
			       flags ? rec->headers : NULL,
			       flags ? rec->headers_len : 0, rec->value,
			       rec->value_len);
}

/* Copies what the sources of o keep into w's segment. */
static int copy_sources(struct run *run, struct out_writer *w,
			const struct kp_compact_output *o)
{
	struct kp_compact_job *job = run->job;
	uint64_t n = 0;

	for (size_t i = o->first; i < o->first + o->count; i++) {
		struct kp_compact_source *src = &job->src[i];
		struct kp_record rec;
		struct src_iter it;
		int rc, wrc = 0;

		iter_open(&it, src);
		while ((rc = iter_next(&it, &rec)) == 1) {
			if (cancelled(job, &n)) {
				rc = -ECANCELED;
				break;
			}
			if (!keep(run, src, &rec))
				continue;
			wrc = writer_add(w, &it.h, &rec);
			if (wrc != 0)
				break;
		}
		if (wrc == 0 && rc != 0 && rc != -ECANCELED)
			source_error(job, &it, rc);
		iter_close(&it);
		if (rc == -ECANCELED)
			return kp_error_set(&job->err, rc, "cancelled");
		if (wrc != 0)
			return wrc;
		if (rc != 0)
			return rc;
	}
	return writer_flush(w);
}

static int sync_fd(int fd, bool meta)
{
	if (fd < 0)
		return 0;
	if ((meta ? fsync(fd) : fdatasync(fd)) != 0)
		return -errno;
	return 0;
}

/* Seals, stamps (mtime of its newest source) and fsyncs the new segment. */
static int seal_output(struct kp_compact_job *job, struct kp_segment *seg,
		       const struct kp_compact_output *o)
{
	struct timespec times[2];
	int64_t mtime = 0;
	int rc;

	for (size_t i = o->first; i < o->first + o->count; i++) {
		if (job->src[i].mtime_ms > mtime)
			mtime = job->src[i].mtime_ms;
	}
	rc = kp_segment_seal(seg);
	times[0].tv_sec = 0;
	times[0].tv_nsec = UTIME_OMIT;
	times[1].tv_sec = (time_t)(mtime / 1000);
	times[1].tv_nsec = (long)(mtime % 1000) * 1000000L;
	if (rc == 0 && mtime > 0 && futimens(seg->fd, times) != 0)
		rc = -errno;
	if (rc == 0)
		rc = sync_fd(seg->fd, true);
	if (rc == 0)
		rc = sync_fd(seg->index_fd, false);
	if (rc == 0)
		rc = sync_fd(seg->time_fd, false);
	return rc;
}

static int write_output(struct run *run, struct kp_compact_output *o)
{
	struct kp_compact_job *job = run->job;
	struct out_writer w;
	char dir[4200];
	int rc;

	memset(&w, 0, sizeof(w));
	w.job = job;
	kp_buf_init(&w.buf);
	tmp_dir(job, dir, sizeof(dir));
	rc = kp_segment_create(dir, o->base, job->set.index_interval, &w.seg);
	if (rc != 0) {
		kp_buf_destroy(&w.buf);
		return kp_error_set(&job->err, rc, "cannot create a segment in "
				    "%s: %s", dir, kp_error_text(rc));
	}
	rc = copy_sources(run, &w, o);
	if (rc == 0)
		rc = seal_output(job, w.seg, o);
	if (rc != 0 && job->err.code == 0)
		kp_error_set(&job->err, rc, "writing %s/%020" PRIu64 ".log "
			     "failed: %s", dir, o->base, kp_error_text(rc));
	kp_segment_close(w.seg);
	kp_buf_destroy(&w.buf);
	if (rc != 0)
		return rc;
	rc = kp_segment_open_sealed(dir, o->base, o->end,
				    job->set.index_interval, &o->seg);
	if (rc != 0)
		return kp_error_set(&job->err, rc, "cannot reopen %s/%020" PRIu64
				    ".log: %s", dir, o->base,
				    kp_error_text(rc));
	o->size = o->seg->size;
	for (size_t i = o->first; i < o->first + o->count; i++) {
		job->records_removed += job->src[i].drop_records;
		job->bytes_before += job->src[i].size;
	}
	job->bytes_after += o->size;
	return 0;
}

/* ---- the run -------------------------------------------------------------- */

/*
 * Holds back the sources at or after the segment the on-disk recovery
 * point describes (a restart checks those batch by batch for contiguous
 * offsets), after making that recovery point durable. Without a valid
 * one, every source waits.
 */
static int limit_by_recovery_point(struct kp_compact_job *job)
{
	struct kp_producer_table producers;
	struct kp_ckpt ck;
	uint64_t limit = 0;
	char path[4200];
	size_t n = 0;
	int rc, fd;

	kp_producer_table_init(&producers);
	rc = kp_recovery_ckpt_read(job->dir, &ck, &producers);
	kp_producer_table_destroy(&producers);
	if (rc == 0) {
		snprintf(path, sizeof(path), "%s/%s", job->dir,
			 KP_RECOVERY_CKPT);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || fdatasync(fd) != 0)
			rc = -errno;
		if (fd >= 0)
			close(fd);
		if (rc == 0)
			rc = kp_file_fsync_dir(job->dir);
		if (rc != 0)
			return kp_error_set(&job->err, rc, "cannot sync the "
					    "recovery point of %s: %s",
					    job->dir, kp_error_text(rc));
		limit = ck.segment_base;
	} else if (rc != -ENOENT && rc != KP_ECORRUPT) {
		return kp_error_set(&job->err, rc, "cannot read the recovery "
				    "point of %s: %s", job->dir,
				    kp_error_text(rc));
	}
	while (n < job->nsrc && job->src[n].end <= limit)
		n++;
	if (n < job->nsrc)
		job->blocked = true;
	drop_sources_from(job, n);
	return 0;
}

static int write_manifest(struct kp_compact_job *job)
{
	struct kp_compact_swap_entry *e =
		kp_calloc(job->nout, sizeof(*e));
	int rc;

	if (e == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < job->nout; i++) {
		e[i].base = job->out[i].base;
		e[i].end = job->out[i].end;
		e[i].size = job->out[i].size;
	}
	rc = kp_compact_manifest_write(job->dir, e, job->nout);
	kp_free(e);
	return rc;
}

static void remove_tmp(struct kp_compact_job *job)
{
	char dir[4200];

	for (size_t i = 0; i < job->nout; i++) {
		kp_segment_close(job->out[i].seg);
		job->out[i].seg = NULL;
	}
	job->nout = 0;
	tmp_dir(job, dir, sizeof(dir));
	kp_file_remove_tree(dir);
}

static int run_outputs(struct run *run)
{
	struct kp_compact_job *job = run->job;
	char dir[4200];
	int rc;

	rc = plan_outputs(job);
	if (rc != 0 || job->nout == 0)
		return rc;
	tmp_dir(job, dir, sizeof(dir));
	kp_file_remove_tree(dir);
	if (mkdir(dir, 0755) != 0)
		return kp_error_set(&job->err, -errno, "cannot create %s: %s",
				    dir, strerror(errno));
	for (size_t i = 0; i < job->nout; i++) {
		rc = write_output(run, &job->out[i]);
		if (rc != 0)
			return rc;
	}
	rc = kp_file_fsync_dir(dir);
	if (rc != 0)
		return kp_error_set(&job->err, rc, "cannot fsync %s: %s", dir,
				    kp_error_text(rc));
	maybe_stall(job, "written");
	if (atomic_load(&job->cancel))
		return kp_error_set(&job->err, -ECANCELED, "cancelled");
	rc = write_manifest(job);
	if (rc != 0)
		return kp_error_set(&job->err, rc, "cannot write %s/%s: %s",
				    job->dir, KP_COMPACT_MANIFEST,
				    kp_error_text(rc));
	job->manifest = true;
	maybe_stall(job, "manifest");
	return 0;
}

void kp_compact_run(struct kp_compact_job *job)
{
	struct run run;
	char path[4200];
	int rc;

	run.job = job;
	kp_keymap_init(&run.map);
	snprintf(path, sizeof(path), "%s/%s", job->dir, KP_COMPACT_MANIFEST);
	if (access(path, F_OK) == 0) {
		rc = kp_error_set(&job->err, KP_ESTATE, "%s exists: an earlier "
				  "compaction is not complete", path);
		goto out;
	}
	rc = limit_by_recovery_point(job);
	if (rc == 0)
		rc = map_pass(&run);
	if (rc == 0)
		rc = count_pass(&run);
	if (rc == 0 && job->nsrc > 0)
		job->scanned_end = job->src[job->nsrc - 1].end;
	if (rc == 0)
		rc = run_outputs(&run);
	if (rc != 0 && !job->manifest)
		remove_tmp(job);
out:
	kp_keymap_destroy(&run.map);
	job->rc = rc;
}

/* ---- the swap ------------------------------------------------------------- */

int kp_compact_install(struct kp_compact_job *job, size_t i,
		       struct kp_segment **seg)
{
	struct kp_compact_output *o = &job->out[i];
	char path[4200];
	char *copy;
	int rc;

	snprintf(path, sizeof(path), "%s/%020" PRIu64, job->dir, o->base);
	copy = kp_strndup(path, strlen(path));
	if (copy == NULL)
		return -ENOMEM;
	rc = kp_compact_move_into_place(job->dir, o->base);
	if (rc != 0) {
		kp_free(copy);
		return rc;
	}
	kp_free(o->seg->path);
	o->seg->path = copy;
	*seg = o->seg;
	o->seg = NULL;
	o->installed = true;
	return 0;
}

void kp_compact_finish(struct kp_compact_job *job)
{
	int rc;

	maybe_stall(job, "swapped");
	for (size_t i = 0; i < job->nout; i++) {
		const struct kp_compact_output *o = &job->out[i];

		if (!o->installed)
			continue;
		for (size_t k = o->first + 1; k < o->first + o->count; k++)
			kp_compact_remove_segment(job->dir, job->src[k].base);
	}
	rc = kp_compact_finish_dir(job->dir);
	if (rc != 0) {
		job->rc = kp_error_set(&job->err, rc, "cannot complete the "
				       "compaction of %s: %s (a restart "
				       "completes it)", job->dir,
				       kp_error_text(rc));
		return;
	}
	job->manifest = false;
}
