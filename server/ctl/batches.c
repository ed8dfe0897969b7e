/*
 * batches.c - walking the batches of a "batches" fetch (batches.h) with the
 * log's own decoder: kp_batch_header_decode checks the header CRC and its
 * fields, kp_batch_verify the records' CRC and layout.
 */
#include "batches.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

void kp_ctl_batches_init(struct kp_ctl_batches *it, const char *data,
			 size_t len)
{
	memset(it, 0, sizeof(*it));
	it->data = data;
	it->len = len;
}

/* Checks the batch at it->pos; 0, or KP_ECORRUPT with err. */
static int open_batch(struct kp_ctl_batches *it, struct kp_error *err)
{
	const char *b = it->data + it->pos;
	int rc = kp_batch_header_decode(b, it->len - it->pos, &it->h);

	if (rc == -EAGAIN && it->len - it->pos < KP_BATCH_HEADER_SIZE)
		return kp_error_set(err, KP_ECORRUPT,
				    "batch at byte %zu of the response is cut "
				    "short: %zu bytes of a %d-byte header",
				    it->pos, it->len - it->pos,
				    KP_BATCH_HEADER_SIZE);
	if (rc == -EAGAIN)
		return kp_error_set(err, KP_ECORRUPT,
				    "batch at offset %" PRIu64 " is cut short: "
				    "%zu of its %" PRIu32 " bytes in the response",
				    it->h.base_offset, it->len - it->pos,
				    it->h.batch_len);
	if (rc != 0)
		return kp_error_set(err, KP_ECORRUPT,
				    "batch at byte %zu of the response fails its "
				    "header CRC", it->pos);
	if (kp_batch_verify(b, &it->h) != 0)
		return kp_error_set(err, KP_ECORRUPT,
				    "batch at offset %" PRIu64 " fails its "
				    "records' CRC", it->h.base_offset);
	it->rpos = 0;
	it->index = 0;
	it->in_batch = 1;
	it->batches++;
	return 0;
}

int kp_ctl_batches_next(struct kp_ctl_batches *it, struct kp_record *rec,
			struct kp_error *err)
{
	for (;;) {
		int rc;

		if (!it->in_batch) {
			if (it->pos == it->len)
				return 0;
			rc = open_batch(it, err);
			if (rc != 0)
				return rc;
		}
		rc = kp_batch_next(it->data + it->pos, &it->h, &it->rpos,
				   &it->index, rec);
		if (rc == 1)
			return 1;
		if (rc < 0)
			return kp_error_set(err, KP_ECORRUPT,
					    "batch at offset %" PRIu64 " has a "
					    "malformed record",
					    it->h.base_offset);
		it->pos += it->h.batch_len;
		it->in_batch = 0;
	}
}
