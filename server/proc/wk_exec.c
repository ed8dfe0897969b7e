/*
 * wk_exec.c - a worker process's jobs and queries (wk_exec.h): the code
 * that used to run on kappad's worker threads, now behind a process
 * boundary.
 */
#include "wk_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "proc_checkpoint.h"
#include "proc_limits.h"
#include "view_query.h"
#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "log/batch.h"
#include "wire/proto.h"

#define SLICE_MS 50

void kp_wx_init(struct kp_wx *x)
{
	memset(x, 0, sizeof(*x));
	x->inst = &x->insts[0];
	atomic_store(&x->calling, NULL);
	pthread_rwlock_init(&x->view_lock, NULL);
	pthread_mutex_init(&x->ready_lock, NULL);
	pthread_cond_init(&x->ready_cond, NULL);
	kp_buf_init(&x->config);
	kp_wk_input_init(&x->input);
}

/* The first init opened the view, or cannot: queries stop waiting. */
static void set_ready(struct kp_wx *x)
{
	pthread_mutex_lock(&x->ready_lock);
	x->ready = true;
	pthread_cond_broadcast(&x->ready_cond);
	pthread_mutex_unlock(&x->ready_lock);
}

/*
 * A query sent right after the worker started waits for the view that
 * its init job opens first (a few ms), not for the processor's init.
 */
static void wait_ready(struct kp_wx *x)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&x->ready_lock);
	while (!x->ready &&
	       pthread_cond_timedwait(&x->ready_cond, &x->ready_lock,
				      &until) == 0)
		;
	pthread_mutex_unlock(&x->ready_lock);
}

static void free_names(char **names, uint32_t n)
{
	if (names == NULL)
		return;
	for (uint32_t i = 0; i < n; i++)
		kp_free(names[i]);
	kp_free(names);
}

void kp_wx_destroy(struct kp_wx *x)
{
	if (x->inst_started)
		kp_instance_stop(x->inst);
	x->inst_started = false;
	pthread_rwlock_wrlock(&x->view_lock);
	kp_view_delete(x->view);
	x->view = NULL;
	pthread_rwlock_unlock(&x->view_lock);
	kp_proc_code_unref(x->code);
	x->code = NULL;
	free_names(x->allowed, x->output_count);
	free_names(x->owned, x->owned_count);
	kp_wk_input_destroy(&x->input);
	kp_buf_destroy(&x->config);
	pthread_rwlock_destroy(&x->view_lock);
	pthread_mutex_destroy(&x->ready_lock);
	pthread_cond_destroy(&x->ready_cond);
}

/* Reads u32 n (UINT32_MAX: none) then n strings. */
static int get_names(struct kp_wm_reader *r, char ***out, uint32_t *count)
{
	uint32_t n = kp_wm_get_u32(r);
	char **names;

	*out = NULL;
	*count = 0;
	if (n == UINT32_MAX || r->bad)
		return 0;
	if (n > 4096)
		return -1;
	names = kp_calloc(n ? n : 1, sizeof(*names));
	if (names == NULL)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		size_t len;
		const char *s = kp_wm_get_bytes(r, &len);

		names[i] = kp_strndup(s, len);
		if (names[i] == NULL) {
			free_names(names, i);
			return -1;
		}
	}
	*out = names;
	*count = n;
	return 0;
}

static void put_stats(struct kp_wx *x, struct kp_buf *out)
{
	struct kp_view *v = x->view;

	kp_wm_put_u64(out, v ? kp_view_count(v) : 0);
	kp_wm_put_u64(out, v ? kp_view_bytes(v) : 0);
	kp_wm_put_u64(out, v ? kp_view_cache_used(v) : 0);
	kp_wm_put_u64(out, v ? kp_view_disk_bytes(v) : 0);
	kp_wm_put_u8(out, v ? kp_view_cache_full(v) : 0);
}

/* Starts the result frame of a job: kind, rc, error, view stats. */
static size_t result_begin(struct kp_wx *x, struct kp_buf *out, uint8_t kind,
			   uint32_t tag, int rc, const struct kp_error *err)
{
	size_t start = kp_wm_begin(out, KP_WM_RESULT, tag);

	kp_wm_put_u8(out, kind);
	kp_wm_put_u32(out, (uint32_t)rc);
	kp_wm_put_str(out, rc != 0 ? err->msg : "");
	put_stats(x, out);
	return start;
}

static int sync_steps(const char *path, struct kp_error *err)
{
	int fd, rc = 0;

	if (path[0] == '\0')
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : kp_error_set(err, -errno,
			"cannot sync its steps file: %s", kp_error_text(-errno));
	if (fdatasync(fd) != 0)
		rc = kp_error_set(err, -errno, "cannot sync its steps file: %s",
				  kp_error_text(-errno));
	close(fd);
	return rc;
}

static int save_checkpoint(struct kp_wx *x, const char *data, size_t len,
			   struct kp_error *err)
{
	struct kp_checkpoint ck;
	int rc;

	if (x->view == NULL)
		return kp_error_set(err, KP_ESTATE, "the view is not open");
	if (kp_checkpoint_decode(&ck, data, len) != 0)
		return kp_error_set(err, KP_EINTERNAL,
				    "checkpoint request is malformed");
	rc = kp_checkpoint_save(&ck, x->view, err);
	kp_checkpoint_destroy(&ck);
	return rc;
}

static int open_view(struct kp_wx *x, const char *dir, uint64_t cache_bytes,
		     uint64_t max_bytes, struct kp_error *err)
{
	struct kp_view *view = NULL;
	int rc = dir[0] != '\0'
			 ? kp_view_open(&view, dir, (size_t)cache_bytes,
					max_bytes, err)
			 : kp_view_new(&view);

	if (rc != 0) {
		if (dir[0] == '\0')
			kp_error_set(err, rc, "out of memory");
		return rc;
	}
	pthread_rwlock_wrlock(&x->view_lock);
	kp_view_delete(x->view);
	x->view = view;
	pthread_rwlock_unlock(&x->view_lock);
	return 0;
}

static int start_instance(struct kp_wx *x, struct kp_instance *inst,
			  struct kp_proc_code *code, struct kp_error *err)
{
	int rc;

	atomic_store(&x->calling, inst);
	rc = kp_instance_start(inst, code, x->name, x->view, x->config.data,
			       x->config.len,
			       (const char *const *)x->allowed,
			       x->output_count, (size_t)x->memory_limit,
			       x->max_value_bytes, err);
	atomic_store(&x->calling, NULL);
	return rc;
}

static void run_init(struct kp_wx *x, struct kp_wm_reader *r,
		     struct kp_buf *out)
{
	char code_path[4200], dir[4200];
	const char *cfg, *ckpt;
	size_t cfg_len, ckpt_len;
	uint64_t cache_bytes, max_bytes;
	uint8_t write_ckpt;
	struct kp_error err;
	int rc;

	kp_error_clear(&err);
	kp_wm_get_str(r, x->name, sizeof(x->name));
	kp_wm_get_str(r, code_path, sizeof(code_path));
	cfg = kp_wm_get_bytes(r, &cfg_len);
	kp_buf_reset(&x->config);
	kp_buf_append(&x->config, cfg, cfg_len);
	free_names(x->allowed, x->output_count);
	rc = get_names(r, &x->allowed, &x->output_count);
	if (x->allowed == NULL)
		x->output_count = kp_wm_get_u32(r);
	else
		(void)kp_wm_get_u32(r);
	x->memory_limit = kp_wm_get_u64(r);
	x->max_value_bytes = kp_wm_get_u32(r);
	kp_wm_get_str(r, dir, sizeof(dir));
	cache_bytes = kp_wm_get_u64(r);
	max_bytes = kp_wm_get_u64(r);
	kp_wm_get_str(r, x->steps_path, sizeof(x->steps_path));
	write_ckpt = kp_wm_get_u8(r);
	ckpt = kp_wm_get_bytes(r, &ckpt_len);
	if (rc != 0 || r->bad) {
		rc = kp_error_set(&err, KP_EINTERNAL, "init request is malformed");
		goto done;
	}
	rc = open_view(x, dir, cache_bytes, max_bytes, &err);
	set_ready(x);
	if (rc != 0)
		goto done;
	kp_proc_code_unref(x->code);
	x->code = NULL;
	rc = kp_proc_code_load(code_path, NULL, &x->code, &err);
	if (rc != 0)
		goto done;
	if (x->inst_started)
		kp_instance_stop(x->inst);
	x->inst_started = false;
	rc = start_instance(x, x->inst, x->code, &err);
	if (rc != 0)
		goto done;
	x->inst_started = true;
	if (write_ckpt)
		rc = save_checkpoint(x, ckpt, ckpt_len, &err);
done:
	set_ready(x);
	kp_wm_finish(out, result_begin(x, out, KP_WM_INIT, r->tag, rc, &err));
}

/* ---- batches ---------------------------------------------------------- */

struct batch {
	uint32_t processed, failed;
	uint64_t next_offset;
	bool interrupted, out_of_memory;
	bool read_all;               /* its feed reached the end of its bytes */
	char last_error[KP_ERROR_MSG_MAX];
	struct kp_buf dlq;
	uint32_t dlq_count;
};

/*
 * A dead letter in b->dlq: i64 ts, u64 offset, u32 key_len (UINT32_MAX =
 * none), key, u32 value_len, value (a msgpack map describing the failure).
 */
static void dlq_add(struct batch *b, const struct kp_proc_record *rec,
		    const char *error)
{
	struct kp_buf value;
	msgpack_packer pk;
	char num[8];

	kp_buf_init(&value);
	msgpack_packer_init(&pk, &value, kp_buf_msgpack_write);
	msgpack_pack_map(&pk, 6);
	msgpack_pack_str_with_body(&pk, "error", 5);
	msgpack_pack_str_with_body(&pk, error, strlen(error));
	msgpack_pack_str_with_body(&pk, "topic", 5);
	msgpack_pack_str_with_body(&pk, rec->topic, strlen(rec->topic));
	msgpack_pack_str_with_body(&pk, "partition", 9);
	msgpack_pack_uint32(&pk, rec->partition);
	msgpack_pack_str_with_body(&pk, "offset", 6);
	msgpack_pack_uint64(&pk, rec->offset);
	msgpack_pack_str_with_body(&pk, "ts", 2);
	msgpack_pack_int64(&pk, rec->ts);
	msgpack_pack_str_with_body(&pk, "value", 5);
	msgpack_pack_bin_body(&pk, rec->value, rec->value_len);
	kp_put_le64(num, (uint64_t)rec->ts);
	kp_buf_append(&b->dlq, num, 8);
	kp_put_le64(num, rec->offset);
	kp_buf_append(&b->dlq, num, 8);
	kp_put_le32(num, rec->key ? (uint32_t)rec->key_len : UINT32_MAX);
	kp_buf_append(&b->dlq, num, 4);
	if (rec->key)
		kp_buf_append(&b->dlq, rec->key, rec->key_len);
	kp_put_le32(num, (uint32_t)value.len);
	kp_buf_append(&b->dlq, num, 4);
	kp_buf_append(&b->dlq, value.data, value.len);
	b->dlq_count++;
	kp_buf_destroy(&value);
}

static void record_failed(struct batch *b, const struct kp_proc_record *rec,
			  const struct kp_error *err)
{
	b->failed++;
	snprintf(b->last_error, sizeof(b->last_error), "%s", err->msg);
	dlq_add(b, rec, err->msg);
	if (strstr(err->msg, "interrupted") != NULL)
		b->interrupted = true;
	if (strstr(err->msg, "not enough memory") != NULL)
		b->out_of_memory = true;
}

/* The batch request's fields after the owned names. */
struct batch_req {
	char topic[256];
	uint32_t partition;
	uint64_t start, stop, window_total, window_errors;
	uint32_t window_min;
	double max_error_rate;
	const char *raw;
	size_t raw_len;
	uint8_t input_state;         /* KP_WM_INPUT_*, of reading the file */
	char input_error[KP_ERROR_MSG_MAX];
};

/* The coarse monotonic clock (a few ns; ticks of a few ms) in ms. */
static int64_t coarse_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * The records of the batches in [start, stop), fed to the instance one at
 * a time (struct kp_record_feed) for a slice of time, checked after every
 * record, so that a job lasts a slice plus one record: a job that runs
 * longer than the time budget is a call that does not come back
 * (proc_worker.c).
 */
struct batch_feed {
	const struct batch_req *q;
	struct batch *b;
	int64_t deadline;
	size_t pos;                  /* the batch being read, in q->raw */
	struct kp_batch_header h;
	size_t rpos;                 /* the next record in it */
	uint32_t index;
	uint64_t offset;             /* the current record's */
	bool in_batch, current, over;
};

/* The current record is done: its accounting, then whether to go on. */
static bool record_done(struct batch_feed *f, uint64_t offset)
{
	const struct batch_req *q = f->q;
	struct batch *b = f->b;

	b->processed++;
	b->next_offset = offset + 1;
	if (b->interrupted || b->out_of_memory)
		return false;
	if (b->failed > 0 &&
	    kp_limits_error_rate_exceeded(q->window_total + b->processed,
					  q->window_errors + b->failed,
					  q->window_min, q->max_error_rate))
		return false;
	return coarse_ms() <= f->deadline;
}

static int feed_next(void *arg, struct kp_proc_record *pr)
{
	struct batch_feed *f = arg;
	const struct batch_req *q = f->q;
	struct kp_record rec;

	if (f->current && !record_done(f, f->offset))
		f->over = true;
	f->current = false;
	while (!f->over) {
		if (!f->in_batch) {
			if (f->pos >= q->raw_len ||
			    kp_batch_header_decode(q->raw + f->pos,
						   q->raw_len - f->pos,
						   &f->h) != 0 ||
			    f->h.batch_len > q->raw_len - f->pos) {
				f->b->read_all = f->pos >= q->raw_len;
				f->over = true;
				break;
			}
			f->in_batch = true;
			f->rpos = 0;
			f->index = 0;
		}
		if (kp_batch_next(q->raw + f->pos, &f->h, &f->rpos, &f->index,
				  &rec) != 1) {
			f->pos += f->h.batch_len;
			f->in_batch = false;
			continue;
		}
		if (rec.offset < q->start)
			continue;
		if (rec.offset >= q->stop) {
			f->over = true;
			break;
		}
		pr->topic = q->topic;
		pr->partition = q->partition;
		pr->offset = rec.offset;
		pr->ts = rec.ts;
		pr->key = rec.key;
		pr->key_len = rec.key_len;
		pr->value = rec.value;
		pr->value_len = rec.value_len;
		f->offset = rec.offset;
		f->current = true;
		return 1;
	}
	return 0;
}

static void feed_failed(void *arg, const struct kp_proc_record *rec,
			const struct kp_error *err)
{
	struct batch_feed *f = arg;

	record_failed(f->b, rec, err);
}

static void process_batches(struct kp_wx *x, const struct batch_req *q,
			    struct batch *b)
{
	struct batch_feed f;
	struct kp_record_feed feed = { feed_next, feed_failed, &f, q->raw,
				       q->raw_len };

	memset(&f, 0, sizeof(f));
	f.q = q;
	f.b = b;
	f.deadline = coarse_ms() + SLICE_MS;
	b->next_offset = q->start;
	atomic_store(&x->calling, x->inst);
	kp_instance_run(x->inst, &feed);
	atomic_store(&x->calling, NULL);
}

/*
 * The batches of a request: in the frame, or read from the segment file
 * it names (wk_input.h). A malformed request is r->bad.
 */
static void get_input(struct kp_wx *x, struct kp_wm_reader *r,
		      struct batch_req *q)
{
	struct kp_wk_span s;

	q->input_state = KP_WM_INPUT_READ;
	q->input_error[0] = '\0';
	q->raw = NULL;
	q->raw_len = 0;
	if (kp_wm_get_u8(r) == KP_WM_INPUT_BYTES) {
		q->raw = kp_wm_get_bytes(r, &q->raw_len);
		return;
	}
	kp_wm_get_str(r, s.path, sizeof(s.path));
	s.dev = kp_wm_get_u64(r);
	s.ino = kp_wm_get_u64(r);
	s.pos = kp_wm_get_u64(r);
	s.len = kp_wm_get_u64(r);
	s.end_offset = kp_wm_get_u64(r);
	if (r->bad)
		return;
	q->input_state = (uint8_t)kp_wk_input_read(&x->input, &s, &q->raw,
						   &q->raw_len, q->input_error,
						   sizeof(q->input_error));
}

static int claim(void *arg, const char *topic, size_t len)
{
	struct kp_wx *x = arg;

	return x->claim != NULL ? x->claim(x->claim_arg, topic, len) : 0;
}

static void run_batch(struct kp_wx *x, struct kp_wm_reader *r,
		      struct kp_buf *out)
{
	struct batch_req q;
	struct batch b;
	struct kp_error err;
	struct kp_sink *sink = &x->inst->sink;
	int rc = 0;
	size_t start;
	char **owned;
	uint32_t owned_count;

	memset(&b, 0, sizeof(b));
	kp_buf_init(&b.dlq);
	kp_error_clear(&err);
	kp_wm_get_str(r, q.topic, sizeof(q.topic));
	q.partition = kp_wm_get_u32(r);
	q.start = kp_wm_get_u64(r);
	q.stop = kp_wm_get_u64(r);
	q.window_total = kp_wm_get_u64(r);
	q.window_errors = kp_wm_get_u64(r);
	q.window_min = kp_wm_get_u32(r);
	q.max_error_rate = kp_wm_get_f64(r);
	if (get_names(r, &owned, &owned_count) != 0)
		r->bad = true;
	get_input(x, r, &q);
	if (r->bad) {
		rc = kp_error_set(&err, KP_EINTERNAL, "batch request is malformed");
	} else if (!x->inst_started) {
		rc = kp_error_set(&err, KP_ESTATE, "processor not started");
	} else {
		free_names(x->owned, x->owned_count);
		x->owned = owned;
		x->owned_count = owned_count;
		owned = NULL;
		if (x->owned != NULL) {
			sink->owned = (const char *const *)x->owned;
			sink->owned_count = x->owned_count;
			sink->claim = claim;
			sink->claim_arg = x;
		}
		process_batches(x, &q, &b);
	}
	free_names(owned, owned_count);
	start = result_begin(x, out, KP_WM_BATCH, r->tag, rc, &err);
	kp_wm_put_u32(out, b.processed);
	kp_wm_put_u32(out, b.failed);
	kp_wm_put_u64(out, b.next_offset);
	kp_wm_put_u8(out, b.interrupted);
	kp_wm_put_u8(out, b.out_of_memory);
	kp_wm_put_str(out, b.last_error);
	if (x->inst_started) {
		kp_wm_put_bytes(out, sink->emits.data, sink->emits.len);
		kp_wm_put_u32(out, sink->emit_count);
		kp_sink_clear_emits(sink);
	} else {
		kp_wm_put_bytes(out, NULL, 0);
		kp_wm_put_u32(out, 0);
	}
	kp_wm_put_bytes(out, b.dlq.data, b.dlq.len);
	kp_wm_put_u32(out, b.dlq_count);
	/* Damage after what it processed is not its business yet. */
	if (q.input_state == KP_WM_INPUT_CHANGED && !b.read_all)
		q.input_state = KP_WM_INPUT_READ;
	kp_wm_put_u8(out, q.input_state);
	kp_wm_put_str(out, q.input_error);
	kp_wm_finish(out, start);
	kp_buf_destroy(&b.dlq);
}

/* ---- checkpoints, reloads --------------------------------------------- */

static void run_checkpoint(struct kp_wx *x, struct kp_wm_reader *r,
			   struct kp_buf *out)
{
	int64_t t0 = kp_clock_mono_ms();
	struct kp_error err;
	size_t len, start;
	const char *ckpt = kp_wm_get_bytes(r, &len);
	int rc;

	kp_error_clear(&err);
	rc = sync_steps(x->steps_path, &err);
	if (rc == 0)
		rc = save_checkpoint(x, ckpt, len, &err);
	start = result_begin(x, out, KP_WM_CHECKPOINT, r->tag, rc, &err);
	kp_wm_put_u64(out, (uint64_t)(kp_clock_mono_ms() - t0));
	kp_wm_finish(out, start);
}

/*
 * Starts the new code in the spare instance slot (in place: the processor
 * and its host services keep pointers into the instance) and switches to
 * it only when its init succeeded; the old one is stopped then.
 */
static void run_reload(struct kp_wx *x, struct kp_wm_reader *r,
		       struct kp_buf *out)
{
	struct kp_instance *fresh = x->inst == &x->insts[0] ? &x->insts[1]
							    : &x->insts[0];
	struct kp_proc_code *code = NULL;
	char path[4200];
	struct kp_error err;
	int rc;

	kp_error_clear(&err);
	kp_wm_get_str(r, path, sizeof(path));
	rc = kp_proc_code_load(path, NULL, &code, &err);
	if (rc == 0) {
		memset(fresh, 0, sizeof(*fresh));
		rc = start_instance(x, fresh, code, &err);
	}
	if (rc == 0) {
		if (x->inst_started)
			kp_instance_stop(x->inst);
		x->inst = fresh;
		x->inst_started = true;
		kp_proc_code_unref(x->code);
		x->code = code;
		code = NULL;
	}
	kp_proc_code_unref(code);
	kp_wm_finish(out, result_begin(x, out, KP_WM_RELOAD, r->tag, rc, &err));
}

void kp_wx_job(struct kp_wx *x, struct kp_wm_reader *r, struct kp_buf *out)
{
	struct kp_error err;

	switch (r->type) {
	case KP_WM_INIT:
		run_init(x, r, out);
		break;
	case KP_WM_BATCH:
		run_batch(x, r, out);
		break;
	case KP_WM_CHECKPOINT:
		run_checkpoint(x, r, out);
		break;
	case KP_WM_RELOAD:
		run_reload(x, r, out);
		break;
	default:
		kp_error_set(&err, KP_EINTERNAL, "unknown job %u", r->type);
		kp_wm_finish(out, result_begin(x, out, r->type, r->tag,
					       KP_EINTERNAL, &err));
	}
}

/* ---- queries (reader thread) ------------------------------------------ */

void kp_wx_query(struct kp_wx *x, struct kp_wm_reader *r, struct kp_buf *out)
{
	struct kp_vq_key *keys = NULL;
	struct kp_buf resp;
	struct kp_error err;
	uint64_t id = kp_wm_get_u64(r);
	size_t start;
	int rc = 0;

	kp_buf_init(&resp);
	kp_error_clear(&err);
	wait_ready(x);
	pthread_rwlock_rdlock(&x->view_lock);
	if (x->view == NULL) {
		rc = kp_error_set(&err, KP_ESTATE, "the view is not open yet");
	} else if (r->type == KP_WM_GET) {
		uint8_t many = kp_wm_get_u8(r);
		uint32_t n = kp_wm_get_u32(r);

		if (n > KP_VIEW_GET_MAX_KEYS || n == 0 ||
		    (keys = kp_calloc(n, sizeof(*keys))) == NULL) {
			rc = kp_error_set(&err, KP_EINTERNAL, "bad query");
		} else {
			for (uint32_t i = 0; i < n; i++)
				keys[i].ptr = kp_wm_get_bytes(r, &keys[i].len);
			rc = r->bad ? kp_error_set(&err, KP_EINTERNAL,
						   "bad query")
				    : kp_vq_get(x->view, id, keys, n, many != 0,
						&resp, &err);
		}
	} else {
		size_t plen, alen;
		const char *prefix = kp_wm_get_bytes(r, &plen);
		const char *after = kp_wm_get_bytes(r, &alen);
		uint32_t limit = kp_wm_get_u32(r);

		rc = r->bad || limit == 0
			     ? kp_error_set(&err, KP_EINTERNAL, "bad query")
			     : kp_vq_scan(x->view, id, prefix, plen, after,
					  alen, limit, &resp, &err);
	}
	pthread_rwlock_unlock(&x->view_lock);
	start = kp_wm_begin(out, KP_WM_QUERY_RESULT, r->tag);
	kp_wm_put_u32(out, (uint32_t)rc);
	kp_wm_put_str(out, rc != 0 ? err.msg : "");
	kp_wm_put_bytes(out, resp.data, resp.len);
	kp_wm_finish(out, start);
	kp_buf_destroy(&resp);
	kp_free(keys);
}

void kp_wx_interrupt(struct kp_wx *x)
{
	struct kp_instance *inst = atomic_load(&x->calling);

	if (inst != NULL)
		kp_instance_interrupt(inst);
}
