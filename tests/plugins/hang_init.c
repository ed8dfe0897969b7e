/*
 * hang_init.c - test processor whose init never returns (a spin with no
 * interrupt callback): creating it must end within the time budget with a
 * reason that says so, and leave nothing running
 * (tests/integration/test_isolation.py).
 */
#include "kappa_processor.h"

static volatile unsigned long spins;

static int init(struct kp_proc_ctx *ctx, char *err)
{
	(void)ctx;
	(void)err;
	for (;;)
		spins++;
	return 0;
}

static int process(struct kp_proc_ctx *ctx, const struct kp_proc_record *rec,
		   char *err)
{
	(void)ctx;
	(void)rec;
	(void)err;
	return 0;
}

static const struct kp_processor descriptor = {
	.abi_version = KP_PROC_ABI_VERSION,
	.size = sizeof(struct kp_processor),
	.name = "hang_init",
	.init = init,
	.process = process,
};

__attribute__((visibility("default")))
const struct kp_processor *kappa_processor(void);

const struct kp_processor *kappa_processor(void)
{
	return &descriptor;
}
