/*
 * failing.c - test processor for error paths.
 *
 * init: puts "init" = true into the view, then fails when the config is a
 *       non-empty map (so a test can check that a failed init leaves no
 *       trace), else succeeds.
 * process: increments "seen", puts "last" = the offset, emits the raw value
 *       to "out", and only then fails when the offset is divisible by 3,
 *       with the message "offset N is divisible by 3"; after an interrupt
 *       the next call fails with "interrupted".
 * interrupt: sets a flag (async-safe).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "kappa_processor.h"

struct state {
	atomic_int interrupted;
};

static int init(struct kp_proc_ctx *ctx, char *err)
{
	const struct kp_proc_host *host = ctx->host;
	struct state *s;

	if (host->state_put(ctx->host_data, "init", 4, "\xc3", 1) != 0) {
		snprintf(err, KP_PROC_ERR_MAX, "state_put failed");
		return -1;
	}
	if (ctx->config_len != 1 || (unsigned char)ctx->config[0] != 0x80) {
		snprintf(err, KP_PROC_ERR_MAX, "config not accepted (%zu bytes)",
			 ctx->config_len);
		return -1;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		snprintf(err, KP_PROC_ERR_MAX, "out of memory");
		return -1;
	}
	ctx->user = s;
	return 0;
}

static int process(struct kp_proc_ctx *ctx, const struct kp_proc_record *rec,
		   char *err)
{
	const struct kp_proc_host *host = ctx->host;
	struct state *s = ctx->user;
	unsigned char off[9];
	int64_t seen;

	if (atomic_exchange(&s->interrupted, 0)) {
		snprintf(err, KP_PROC_ERR_MAX, "interrupted");
		return -1;
	}
	off[0] = 0xcf;
	for (int i = 0; i < 8; i++)
		off[1 + i] = (unsigned char)(rec->offset >> (56 - 8 * i));
	if (host->state_incr(ctx->host_data, "seen", 4, 1, &seen) != 0 ||
	    host->state_put(ctx->host_data, "last", 4, (const char *)off, 9) ||
	    host->emit(ctx->host_data, "out", 3, rec->key, rec->key_len,
		       rec->value, rec->value_len) != 0) {
		snprintf(err, KP_PROC_ERR_MAX, "a host call failed");
		return -1;
	}
	if (rec->offset % 3 == 0) {
		snprintf(err, KP_PROC_ERR_MAX, "offset %llu is divisible by 3",
			 (unsigned long long)rec->offset);
		return -1;
	}
	return 0;
}

static void fini(struct kp_proc_ctx *ctx)
{
	free(ctx->user);
	ctx->user = NULL;
}

static void interrupt(struct kp_proc_ctx *ctx)
{
	struct state *s = ctx->user;

	if (s != NULL)
		atomic_store(&s->interrupted, 1);
}

static const struct kp_processor descriptor = {
	.abi_version = KP_PROC_ABI_VERSION,
	.size = sizeof(struct kp_processor),
	.name = "failing",
	.init = init,
	.process = process,
	.fini = fini,
	.interrupt = interrupt,
};

__attribute__((visibility("default")))
const struct kp_processor *kappa_processor(void);

const struct kp_processor *kappa_processor(void)
{
	return &descriptor;
}
