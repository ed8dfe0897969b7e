/*
 * proc_steps.h - the order a processor version took through its input
 * partitions, recorded so that recovery, verify and a replay follow it.
 *
 * A version with more than one input partition processes one partition at
 * a time, in batches; which one comes next depends on what had arrived when
 * it looked (live data). Each batch is recorded as a step "cursor i,
 * offsets [start, end)" appended to <version dir>/steps before the batch's
 * outputs are written, and the checkpoint holds how many steps it covers.
 * Following a list of steps reproduces the interleaving exactly: recovery
 * follows the version's own steps past its checkpoint, verify and a replay
 * follow the live version's steps from the start.
 *
 * A cursor that follows its logical input onto another physical topic
 * (proc_pipeline.c) changes what its offsets mean: that is recorded too,
 * as a move "cursor i goes on in version N's physical topic of its input
 * from offset `start`", in the order it happened. A step of cursor i is of
 * the topic that cursor read after the last move of i before the step.
 *
 * The file is 24-byte records (little-endian): u32 cursor, u64 start,
 * u64 end, u32 CRC32C of the first 20 bytes; a move has KP_STEP_MOVE set
 * in cursor and N in end. A torn last record (a crash while appending) is
 * cut off when the file is opened for appending.
 *
 * Access: a version appends from its own job only (one at a time, worker
 * thread); readers use their own descriptor (loop thread) and stop at the
 * first record that is incomplete or fails its CRC.
 */
#ifndef KP_PROC_STEPS_H
#define KP_PROC_STEPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KP_STEP_SIZE 24

/* In kp_step.cursor: the record is a move, not a step. */
#define KP_STEP_MOVE 0x80000000u

/*
 * Records [start, end) of input cursor `cursor`, in one go; or, with
 * KP_STEP_MOVE in cursor, that cursor (cursor & ~KP_STEP_MOVE) moved to
 * offset `start` of version `end`'s physical topic of its input.
 */
struct kp_step {
	uint32_t cursor;
	uint64_t start;
	uint64_t end;
};

/* true when s is a move (kp_step_index gives its cursor). */
static inline bool kp_step_is_move(const struct kp_step *s)
{
	return (s->cursor & KP_STEP_MOVE) != 0;
}

static inline uint32_t kp_step_index(const struct kp_step *s)
{
	return s->cursor & ~KP_STEP_MOVE;
}

/* A version's own steps file, open for appending. */
struct kp_steps_log {
	int fd;              /* -1 until opened */
	uint64_t count;      /* whole records in the file */
};

/* Steps still to follow, oldest first. */
struct kp_steps_queue {
	struct kp_step *items;   /* owned */
	size_t head;             /* first not yet followed */
	size_t count;            /* items in use */
	size_t cap;
};

/* The path of the steps file under a version directory. */
void kp_steps_path(const char *dir, char *out, size_t cap);

/*
 * Opens (creating dir and the file if needed) the steps file of dir for
 * appending: counts its whole records and cuts a torn tail. Returns 0 or
 * -errno.
 */
int kp_steps_open(struct kp_steps_log *log, const char *dir);

/*
 * Appends one step. Returns 0 or -errno; after a short write the next
 * append writes over it in place.
 */
int kp_steps_append(struct kp_steps_log *log, const struct kp_step *s);

/* fdatasync of the file (before a checkpoint that counts its steps). */
int kp_steps_sync(struct kp_steps_log *log);

/* Closes the file; a log that was never opened is fine. */
void kp_steps_close(struct kp_steps_log *log);

/*
 * Appends to q the records of the steps file at path from record index
 * *next on, as far as they are whole and pass their CRC, and advances *next
 * past them. A missing file reads as empty. Returns 0 or -ENOMEM.
 */
int kp_steps_read(const char *path, uint64_t *next, struct kp_steps_queue *q);

/* The step to follow now, or NULL when q is empty. */
const struct kp_step *kp_steps_queue_head(const struct kp_steps_queue *q);

/* Drops the head step. */
void kp_steps_queue_pop(struct kp_steps_queue *q);

/* Empties q and frees its memory. */
void kp_steps_queue_destroy(struct kp_steps_queue *q);

/* Encodes / decodes one record (tests, and the two functions above). */
void kp_step_encode(const struct kp_step *s, char out[KP_STEP_SIZE]);
bool kp_step_decode(const char in[KP_STEP_SIZE], struct kp_step *s);

#endif
