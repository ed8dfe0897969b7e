/*
 * wk_input.h - a worker process reads the input of a batch job from the
 * log's segment file itself (wk_input.c), so that kappad's loop neither
 * reads nor copies the bytes: kappad finds where the batches are
 * (kp_partition_locate), the worker reads them and checks every batch as
 * kappad's reader would.
 *
 * Access pattern: one per worker, used by its job thread only; it keeps
 * the last file open (by identity, so a replaced file is never read for
 * the one named), until the next span names another.
 */
#ifndef KP_WK_INPUT_H
#define KP_WK_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* Where a batch job's input is (KP_WM_INPUT_FILE in wk_msg.h). */
struct kp_wk_span {
	char path[4096];       /* segment, without ".log" */
	uint64_t dev, ino;     /* the file's identity when kappad sent it */
	uint64_t pos;          /* position of the first batch */
	uint64_t len;          /* bytes that may be read from pos */
	uint64_t end_offset;   /* serve no batch from this offset on */
};

struct kp_wk_input {
	int fd;                /* the last file read, or -1 */
	uint64_t dev, ino;     /* its identity */
	struct kp_buf buf;     /* the bytes of the last span */
};

/* Initialises in (no file, an empty buffer). */
void kp_wk_input_init(struct kp_wk_input *in);

/* Closes the file and frees the buffer. */
void kp_wk_input_destroy(struct kp_wk_input *in);

/*
 * Reads span s into in->buf and checks its batches: whole batches that
 * start below s->end_offset, each with base offsets rising, its header
 * and its records' CRC and layout checked (kp_batch_verify), so that
 * kp_batch_next cannot fail on them. *bytes and *len are the checked
 * prefix (valid until the next read). Returns KP_WM_INPUT_READ when the
 * span was checked to its end (a batch cut by its end, or one from
 * end_offset on, ends it); KP_WM_INPUT_CHANGED when the file is not the one
 * s names or a batch fails its checks (the prefix before it is good), or a
 * read failed; KP_WM_INPUT_UNREADABLE when the worker cannot open the
 * files at all. why (cap bytes) says what, for anything but READ.
 */
int kp_wk_input_read(struct kp_wk_input *in, const struct kp_wk_span *s,
		     const char **bytes, size_t *len, char *why, size_t cap);

#endif
