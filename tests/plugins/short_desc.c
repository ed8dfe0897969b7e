/*
 * short_desc.c - test processor built by an "older" plugin whose descriptor
 * ends before interrupt: its size says so, and the host must copy only that
 * many bytes, leaving interrupt NULL even though the memory after the
 * declared size holds a pointer.
 */
#include <stddef.h>
#include <stdlib.h>

#include "kappa_processor.h"

static int process(struct kp_proc_ctx *ctx, const struct kp_proc_record *rec,
		   char *err)
{
	return 0;
}

static void interrupt(struct kp_proc_ctx *ctx)
{
	abort();
}

static const struct kp_processor descriptor = {
	.abi_version = KP_PROC_ABI_VERSION,
	.size = offsetof(struct kp_processor, interrupt),
	.name = "short_desc",
	.process = process,
	.interrupt = interrupt,
};

__attribute__((visibility("default")))
const struct kp_processor *kappa_processor(void);

const struct kp_processor *kappa_processor(void)
{
	return &descriptor;
}
