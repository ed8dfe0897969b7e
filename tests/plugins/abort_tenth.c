/*
 * abort_tenth.c - test processor that aborts: it counts "seen" in the view
 * and calls abort() on every tenth record (offset % 10 == 9). The server
 * must survive it: the processor fails with a reason naming the worker
 * process and signal 6 (tests/integration/test_isolation.py).
 */
#include <stdio.h>
#include <stdlib.h>

#include "kappa_processor.h"

static int process(struct kp_proc_ctx *ctx, const struct kp_proc_record *rec,
		   char *err)
{
	const struct kp_proc_host *host = ctx->host;
	int64_t seen;

	if (host->state_incr(ctx->host_data, "seen", 4, 1, &seen) != 0) {
		snprintf(err, KP_PROC_ERR_MAX, "state_incr failed");
		return -1;
	}
	if (rec->offset % 10 == 9)
		abort();
	return 0;
}

static const struct kp_processor descriptor = {
	.abi_version = KP_PROC_ABI_VERSION,
	.size = sizeof(struct kp_processor),
	.name = "abort_tenth",
	.process = process,
};

__attribute__((visibility("default")))
const struct kp_processor *kappa_processor(void);

const struct kp_processor *kappa_processor(void)
{
	return &descriptor;
}
