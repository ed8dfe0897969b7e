/*
 * no_process.c - test processor whose descriptor has no process callback:
 * the host must refuse to load it.
 */
#include "kappa_processor.h"

static int init(struct kp_proc_ctx *ctx, char *err)
{
	return 0;
}

static const struct kp_processor descriptor = {
	.abi_version = KP_PROC_ABI_VERSION,
	.size = sizeof(struct kp_processor),
	.name = "no_process",
	.init = init,
};

__attribute__((visibility("default")))
const struct kp_processor *kappa_processor(void);

const struct kp_processor *kappa_processor(void)
{
	return &descriptor;
}
