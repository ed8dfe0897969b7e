/*
 * batches.h - the records of a fetch answered with format "batches"
 * (docs/PROTOCOL.md): the stored batches back to back in one msgpack bin,
 * each checked by its header CRC and its records' CRC before any of its
 * records is handed out.
 *
 * Access pattern: init over the bin's bytes (borrowed), then next until it
 * returns 0 (the end) or KP_ECORRUPT (a batch that fails its checks: the
 * records before it were good, nothing from it or after it is returned).
 */
#ifndef KP_CTL_BATCHES_H
#define KP_CTL_BATCHES_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "log/batch.h"

/* A walk over the records of a run of batches. */
struct kp_ctl_batches {
	const char *data;             /* the batches (borrowed) */
	size_t len;                   /* their bytes */
	size_t pos;                   /* start of the current batch */
	struct kp_batch_header h;     /* the current batch's header */
	size_t rpos;                  /* kp_batch_next's position in it */
	uint32_t index;               /* kp_batch_next's record count */
	int in_batch;                 /* h is checked and being walked */
	uint64_t batches;             /* batches checked so far */
};

/* Starts a walk over len bytes of batches at data (borrowed). */
void kp_ctl_batches_init(struct kp_ctl_batches *it, const char *data,
			 size_t len);

/*
 * The next record, in stored order (rec's pointers borrow from data).
 * Returns 1 with *rec; 0 at the end; KP_ECORRUPT with err saying which
 * batch (its position, and its base offset when its header is intact)
 * failed which check: header CRC or fields, records' CRC or layout, or a
 * batch cut short by the end of the bin.
 */
int kp_ctl_batches_next(struct kp_ctl_batches *it, struct kp_record *rec,
			struct kp_error *err);

#endif
