/*
 * proc_steps.c - the steps file of a processor version and the queue of
 * steps a version follows (proc_steps.h).
 */
#include "proc_steps.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/crc32c.h"

void kp_step_encode(const struct kp_step *s, char out[KP_STEP_SIZE])
{
	kp_put_le32(out, s->cursor);
	kp_put_le64(out + 4, s->start);
	kp_put_le64(out + 12, s->end);
	kp_put_le32(out + 20, kp_crc32c(0, out, 20));
}

bool kp_step_decode(const char in[KP_STEP_SIZE], struct kp_step *s)
{
	if (kp_get_le32(in + 20) != kp_crc32c(0, in, 20))
		return false;
	s->cursor = kp_get_le32(in);
	s->start = kp_get_le64(in + 4);
	s->end = kp_get_le64(in + 12);
	if (kp_step_is_move(s))
		return s->end >= 1 && s->end <= UINT32_MAX;
	return s->start < s->end;
}

void kp_steps_path(const char *dir, char *out, size_t cap)
{
	snprintf(out, cap, "%s/steps", dir);
}

/* Whole, valid records at the start of fd. */
static uint64_t count_valid(int fd)
{
	char rec[KP_STEP_SIZE];
	struct kp_step s;
	uint64_t n = 0;

	while (pread(fd, rec, sizeof(rec), (off_t)(n * KP_STEP_SIZE)) ==
		       (ssize_t)sizeof(rec) &&
	       kp_step_decode(rec, &s))
		n++;
	return n;
}

int kp_steps_open(struct kp_steps_log *log, const char *dir)
{
	char path[4200];
	int fd;

	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return -errno;
	kp_steps_path(dir, path, sizeof(path));
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	log->count = count_valid(fd);
	if (ftruncate(fd, (off_t)(log->count * KP_STEP_SIZE)) != 0) {
		int rc = -errno;

		close(fd);
		return rc;
	}
	log->fd = fd;
	return 0;
}

int kp_steps_append(struct kp_steps_log *log, const struct kp_step *s)
{
	char rec[KP_STEP_SIZE];
	off_t at = (off_t)(log->count * KP_STEP_SIZE);
	ssize_t n;

	kp_step_encode(s, rec);
	do {
		n = pwrite(log->fd, rec, sizeof(rec), at);
	} while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(rec)) {
		log->count++;
		return 0;
	}
	/* count stays: the next append overwrites the piece in place. */
	return n < 0 ? -errno : -EIO;
}

int kp_steps_sync(struct kp_steps_log *log)
{
	if (log->fd < 0)
		return 0;
	return fdatasync(log->fd) == 0 ? 0 : -errno;
}

void kp_steps_close(struct kp_steps_log *log)
{
	if (log->fd >= 0)
		close(log->fd);
	log->fd = -1;
}

static int queue_push(struct kp_steps_queue *q, const struct kp_step *s)
{
	if (q->head > 0 && q->count == q->cap) {
		memmove(q->items, q->items + q->head,
			(q->count - q->head) * sizeof(*q->items));
		q->count -= q->head;
		q->head = 0;
	}
	if (q->count == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 64;
		struct kp_step *grown =
			kp_realloc(q->items, cap * sizeof(*grown));

		if (grown == NULL)
			return -ENOMEM;
		q->items = grown;
		q->cap = cap;
	}
	q->items[q->count++] = *s;
	return 0;
}

int kp_steps_read(const char *path, uint64_t *next, struct kp_steps_queue *q)
{
	char buf[KP_STEP_SIZE * 256];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return 0;
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof(buf),
				  (off_t)(*next * KP_STEP_SIZE));
		size_t whole;

		if (n <= 0)
			break;
		whole = (size_t)n / KP_STEP_SIZE;
		for (size_t i = 0; i < whole && rc == 0; i++) {
			struct kp_step s;

			if (!kp_step_decode(buf + i * KP_STEP_SIZE, &s))
				goto done;
			rc = queue_push(q, &s);
			if (rc == 0)
				(*next)++;
		}
		if (rc != 0 || whole < sizeof(buf) / KP_STEP_SIZE)
			break;
	}
done:
	close(fd);
	return rc;
}

const struct kp_step *kp_steps_queue_head(const struct kp_steps_queue *q)
{
	return q->head < q->count ? &q->items[q->head] : NULL;
}

void kp_steps_queue_pop(struct kp_steps_queue *q)
{
	if (q->head < q->count)
		q->head++;
	if (q->head == q->count)
		q->head = q->count = 0;
}

void kp_steps_queue_destroy(struct kp_steps_queue *q)
{
	kp_free(q->items);
	memset(q, 0, sizeof(*q));
}
