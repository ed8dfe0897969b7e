/*
 * wk_msg.h - the messages between kappad and a processor's worker process
 * (wk_client.h, wk_main.c): length-prefixed frames over a Unix socket.
 *
 * A frame is u32 length (of what follows, little-endian), u8 type, u32 tag,
 * then fields written in order by the kp_wm_put_* functions and read back
 * in the same order by the kp_wm_get_* ones. Both ends are the same
 * program (kappad re-executed as a worker), so the layout needs no version;
 * a reader still checks every length against the frame, so a worker that
 * writes garbage is a failed worker, never a crash of kappad.
 */
#ifndef KP_WK_MSG_H
#define KP_WK_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define KP_WM_HEADER 9                /* u32 length, u8 type, u32 tag */
#define KP_WM_MAX_FRAME (256u << 20)  /* larger frames fail the worker */

/* Frame types. Requests go to the worker; the rest come back. */
enum kp_wm_type {
	KP_WM_INIT = 1,        /* job: start the instance (and the view) */
	KP_WM_BATCH,           /* job: process input batches */
	KP_WM_CHECKPOINT,      /* job: commit the view with a checkpoint */
	KP_WM_RELOAD,          /* job: start new code beside the old */
	KP_WM_INTERRUPT,       /* stop the running call (time budget) */
	KP_WM_GET,             /* query: keys of the view */
	KP_WM_SCAN,            /* query: a page of the view */
	KP_WM_CLAIM_ANSWER,    /* may the processor emit to that topic */
	KP_WM_STOP,            /* stop the instance and exit */
	KP_WM_RESULT = 64,     /* a job's result */
	KP_WM_QUERY_RESULT,    /* a query's result (same tag) */
	KP_WM_CLAIM,           /* the processor emits to a topic not its own */
	KP_WM_FATAL            /* why the worker is about to die (a string) */
};

/*
 * How a batch job gives its input: the bytes in the frame, or where they
 * are in a segment file that the worker reads (and checks) itself.
 */
enum kp_wm_input_form { KP_WM_INPUT_BYTES = 0, KP_WM_INPUT_FILE };

/* What a worker says of reading a batch's input from its file. */
enum kp_wm_input_state {
	KP_WM_INPUT_READ = 0,     /* read and checked (or sent as bytes) */
	KP_WM_INPUT_CHANGED,      /* not the file, or damaged there: send the
				     batch from that offset as bytes */
	KP_WM_INPUT_UNREADABLE    /* the worker cannot read the files */
};

/* Starts a frame of type and tag at the end of b. Returns its start. */
size_t kp_wm_begin(struct kp_buf *b, uint8_t type, uint32_t tag);

/* Fills in the length of the frame started at start. */
void kp_wm_finish(struct kp_buf *b, size_t start);

/* Appends one field (ENOMEM is seen by kp_wm_ok). */
void kp_wm_put_u8(struct kp_buf *b, uint8_t v);
void kp_wm_put_u32(struct kp_buf *b, uint32_t v);
void kp_wm_put_u64(struct kp_buf *b, uint64_t v);
void kp_wm_put_f64(struct kp_buf *b, double v);
void kp_wm_put_bytes(struct kp_buf *b, const void *p, size_t len);
void kp_wm_put_str(struct kp_buf *b, const char *s);

/*
 * How much of data is one whole frame: 1 with *len (header included), 0
 * when more bytes are needed, -1 when the length is impossible.
 */
int kp_wm_frame(const char *data, size_t avail, size_t *len);

/* Reads the fields of one frame. */
struct kp_wm_reader {
	uint8_t type;
	uint32_t tag;
	const char *p;        /* next field */
	size_t left;          /* bytes of the frame after p */
	bool bad;             /* a field ran past the frame */
};

/* Starts reading the frame at data (kp_wm_frame said it is whole). */
void kp_wm_read(struct kp_wm_reader *r, const char *data, size_t len);

uint8_t kp_wm_get_u8(struct kp_wm_reader *r);
uint32_t kp_wm_get_u32(struct kp_wm_reader *r);
uint64_t kp_wm_get_u64(struct kp_wm_reader *r);
double kp_wm_get_f64(struct kp_wm_reader *r);
/* A byte string, borrowed from the frame (*len 0 and "" when bad). */
const char *kp_wm_get_bytes(struct kp_wm_reader *r, size_t *len);
/* A string into out (cut to cap - 1 bytes, NUL-terminated). */
void kp_wm_get_str(struct kp_wm_reader *r, char *out, size_t cap);

#endif
