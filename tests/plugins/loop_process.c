/*
 * loop_process.c - test processor whose process never returns: it spins on
 * the first record it is given and has no interrupt callback, so only the
 * host stopping it (time budget, pause, delete, shutdown) ends the loop
 * (tests/integration/test_isolation.py).
 */
#include "kappa_processor.h"

static volatile unsigned long spins;

static int process(struct kp_proc_ctx *ctx, const struct kp_proc_record *rec,
		   char *err)
{
	(void)ctx;
	(void)rec;
	(void)err;
	for (;;)
		spins++;
	return 0;
}

static const struct kp_processor descriptor = {
	.abi_version = KP_PROC_ABI_VERSION,
	.size = sizeof(struct kp_processor),
	.name = "loop_process",
	.process = process,
};

__attribute__((visibility("default")))
const struct kp_processor *kappa_processor(void);

const struct kp_processor *kappa_processor(void)
{
	return &descriptor;
}
