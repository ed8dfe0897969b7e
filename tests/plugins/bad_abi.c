/*
 * bad_abi.c - test processor built "for" processor ABI 99.3: the host must
 * refuse it with a message naming both versions.
 */
#include "kappa_processor.h"

static int process(struct kp_proc_ctx *ctx, const struct kp_proc_record *rec,
		   char *err)
{
	return 0;
}

static const struct kp_processor descriptor = {
	.abi_version = (99u << 16) | 3u,
	.size = sizeof(struct kp_processor),
	.name = "bad_abi",
	.process = process,
};

__attribute__((visibility("default")))
const struct kp_processor *kappa_processor(void);

const struct kp_processor *kappa_processor(void)
{
	return &descriptor;
}
