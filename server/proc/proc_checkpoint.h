/*
 * proc_checkpoint.h - a processor's checkpoint: its view and the input
 * offsets that view reflects, committed together in one transaction of the
 * view's store (the record KP_CHECKPOINT_RECORD beside the view's changed
 * keys), plus the end offsets its outputs had at that moment, so that a
 * restart can tell which outputs of the replayed tail were already written
 * (effectively once).
 */
#ifndef KP_PROC_CHECKPOINT_H
#define KP_PROC_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "view.h"
#include "base/buf.h"
#include "base/error.h"

/* An input position: the next offset to process. */
struct kp_ckpt_cursor {
	char topic[201];
	uint32_t partition;
	uint64_t offset;
};

/* An output partition's end offset when the checkpoint was taken. */
struct kp_ckpt_mark {
	char topic[201];
	uint32_t partition;
	uint64_t end;
};

struct kp_checkpoint {
	uint32_t version;               /* code version that wrote it */
	struct kp_ckpt_cursor *cursors; /* owned */
	uint32_t cursor_count;
	struct kp_ckpt_mark *marks;     /* owned */
	uint32_t mark_count;
	uint64_t processed;             /* records processed, cumulative */
	uint64_t errors;                /* records that raised */
	uint64_t dead_lettered;         /* records sent to the DLQ */
	int64_t at_ms;                  /* when it was taken (epoch ms; 0 in
					   checkpoints written before it) */
	uint64_t steps_done;            /* records of the version's steps file
					   (proc_steps.h) the view reflects;
					   0 in checkpoints written before it */
};

/* The view store's meta record holding the checkpoint. */
#define KP_CHECKPOINT_RECORD "checkpoint"

/* Frees the arrays of c. */
void kp_checkpoint_destroy(struct kp_checkpoint *c);

/*
 * Commits view's changes with c (durable when it returns). The thread that
 * changes the view. Returns 0, or the errors of kp_view_commit (-ENOSPC:
 * nothing written, retry) with err.
 */
int kp_checkpoint_save(const struct kp_checkpoint *c, struct kp_view *view,
		       struct kp_error *err);

/* Appends c as the msgpack map a checkpoint record holds. Returns 0. */
int kp_checkpoint_encode(const struct kp_checkpoint *c, struct kp_buf *out);

/* Decodes what kp_checkpoint_encode wrote into c. Returns 0 or -1. */
int kp_checkpoint_decode(struct kp_checkpoint *c, const char *data, size_t len);

/*
 * Makes view its last commit again (kp_view_discard) and reads the
 * checkpoint committed with it into c (zeroed first); an older data
 * directory's dir/checkpoint file is moved into the store first. Returns
 * 0, 1 when there is no checkpoint, or an error (KP_EDAMAGED) with err.
 */
int kp_checkpoint_load(struct kp_checkpoint *c, struct kp_view *view,
		       const char *dir, struct kp_error *err);

#endif
