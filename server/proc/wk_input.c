/*
 * wk_input.c - a worker reads its input batches from the segment files
 * (wk_input.h).
 */
#include "wk_input.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wk_msg.h"
#include "log/batch.h"

void kp_wk_input_init(struct kp_wk_input *in)
{
	in->fd = -1;
	in->dev = in->ino = 0;
	kp_buf_init(&in->buf);
}

void kp_wk_input_destroy(struct kp_wk_input *in)
{
	if (in->fd >= 0)
		close(in->fd);
	in->fd = -1;
	kp_buf_destroy(&in->buf);
}

/* Opens s's file unless it is open: 0, or a KP_WM_INPUT_* with why. */
static int open_file(struct kp_wk_input *in, const struct kp_wk_span *s,
		     char *why, size_t cap)
{
	char path[sizeof(s->path) + 8];
	struct stat st;
	int fd;

	if (in->fd >= 0 && in->dev == s->dev && in->ino == s->ino)
		return 0;
	if (in->fd >= 0)
		close(in->fd);
	in->fd = -1;
	snprintf(path, sizeof(path), "%s.log", s->path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, cap, "cannot open %s: %s", path, strerror(errno));
		/* Gone (retention, a compaction's swap): kappad knows better. */
		return errno == ENOENT ? KP_WM_INPUT_CHANGED
				       : KP_WM_INPUT_UNREADABLE;
	}
	if (fstat(fd, &st) != 0 || (uint64_t)st.st_dev != s->dev ||
	    (uint64_t)st.st_ino != s->ino) {
		snprintf(why, cap, "%s is not the file kappad named", path);
		close(fd);
		return KP_WM_INPUT_CHANGED;
	}
	in->fd = fd;
	in->dev = s->dev;
	in->ino = s->ino;
	return 0;
}

/* Reads up to want bytes at pos into in->buf: the bytes read, or -errno. */
static ssize_t read_span(struct kp_wk_input *in, uint64_t pos, size_t want)
{
	size_t got = 0;

	kp_buf_reset(&in->buf);
	if (kp_buf_reserve(&in->buf, want) != 0)
		return -ENOMEM;
	while (got < want) {
		ssize_t n = pread(in->fd, in->buf.data + got, want - got,
				  (off_t)(pos + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	in->buf.len = got;
	return (ssize_t)got;
}

int kp_wk_input_read(struct kp_wk_input *in, const struct kp_wk_span *s,
		     const char **bytes, size_t *len, char *why, size_t cap)
{
	struct kp_batch_header h;
	uint64_t expect = 0;
	size_t off = 0;
	ssize_t got;
	int rc;

	*bytes = NULL;
	*len = 0;
	if (s->len > KP_WM_MAX_FRAME) {
		snprintf(why, cap, "a span of %llu bytes",
			 (unsigned long long)s->len);
		return KP_WM_INPUT_CHANGED;
	}
	rc = open_file(in, s, why, cap);
	if (rc != 0)
		return rc;
	got = read_span(in, s->pos, (size_t)s->len);
	if (got < 0) {
		snprintf(why, cap, "read of %s.log failed: %s", s->path,
			 strerror((int)-got));
		return KP_WM_INPUT_CHANGED;
	}
	*bytes = in->buf.data;
	for (;;) {
		rc = kp_batch_header_decode(in->buf.data + off,
					    (size_t)got - off, &h);
		if (rc == -EAGAIN && off > 0)
			break;            /* cut by the span's end */
		if (rc == 0 && h.base_offset >= s->end_offset && off > 0)
			break;
		if (rc != 0 || h.base_offset < expect ||
		    h.base_offset >= s->end_offset ||
		    kp_batch_next_offset(&h) > s->end_offset ||
		    kp_batch_verify(in->buf.data + off, &h) != 0) {
			snprintf(why, cap, "batch at position %llu of %s.log fails its checks",
				 (unsigned long long)(s->pos + off), s->path);
			*len = off;
			return KP_WM_INPUT_CHANGED;
		}
		expect = kp_batch_next_offset(&h);
		off += h.batch_len;
		if (off == (size_t)got)
			break;
	}
	*len = off;
	return KP_WM_INPUT_READ;
}
