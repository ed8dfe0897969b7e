/*
 * grow_memory.c - test processor that grows without bound like a careless
 * plugin: each call mallocs 1 MiB, touches all of it (memset) and keeps it;
 * when malloc returns NULL it writes through the NULL pointer anyway. With
 * --memory-limit the host must stop it near the limit, with a reason naming
 * memory, and give the memory back (tests/integration/test_isolation.py).
 *
 * Guard for a host that enforces no limit at all: past 1 GiB the plugin
 * behaves as if malloc had returned NULL, so a test run cannot take the
 * machine's memory.
 */
#include <stdlib.h>
#include <string.h>

#include "kappa_processor.h"

#define CHUNK (1u << 20)
#define GUARD_BYTES ((size_t)1 << 30)

/* The chunks kept so far, linked through their first bytes. */
static void *kept;
static size_t kept_bytes;

/* Read through a volatile so the compiler cannot turn the store into a trap. */
static char *volatile careless;

static int process(struct kp_proc_ctx *ctx, const struct kp_proc_record *rec,
		   char *err)
{
	char *p;

	(void)ctx;
	(void)rec;
	(void)err;
	p = kept_bytes < GUARD_BYTES ? malloc(CHUNK) : NULL;
	careless = p;
	if (p == NULL) {
		*careless = 1;
		return 0;
	}
	memset(p, 0x5a, CHUNK);
	memcpy(p, &kept, sizeof(kept));
	kept = p;
	kept_bytes += CHUNK;
	return 0;
}

static const struct kp_processor descriptor = {
	.abi_version = KP_PROC_ABI_VERSION,
	.size = sizeof(struct kp_processor),
	.name = "grow_memory",
	.process = process,
};

__attribute__((visibility("default")))
const struct kp_processor *kappa_processor(void);

const struct kp_processor *kappa_processor(void)
{
	return &descriptor;
}
