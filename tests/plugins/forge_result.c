/*
 * forge_result.c - test processor that attacks kappad through its own
 * worker process: on the record whose value is the msgpack string
 * "forge-<kind>", it writes a forged job result straight onto the worker's
 * socket to kappad (descriptor 3), as hostile code in the worker can.
 * Kinds: "emit-len" (an emit whose lengths run past its buffer), "dlq-len"
 * (a dead letter likewise), "offset" (a position past the batch), "kind"
 * (the answer to another job), "value" (an emit whose value is not
 * msgpack). Every other record is counted in the view. kappad must check
 * what it is sent: kill the worker, fail the processor with a reason, and
 * stay up (tests/integration/test_worker_faults.py).
 *
 * The frame layout is kappad's (server/proc/wk_msg.h): u32 length, u8 type
 * 64 (result), u32 tag, then the result's fields. Tests only: a real
 * processor never needs this.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kappa_processor.h"

#define WORKER_FD 3

struct frame {
	unsigned char b[512];
	size_t len;
};

static void put(struct frame *f, const void *p, size_t n)
{
	memcpy(f->b + f->len, p, n);
	f->len += n;
}

static void u8(struct frame *f, uint8_t v)
{
	put(f, &v, 1);
}

static void u32(struct frame *f, uint32_t v)
{
	unsigned char p[4] = { v, v >> 8, v >> 16, v >> 24 };

	put(f, p, 4);
}

static void u64(struct frame *f, uint64_t v)
{
	u32(f, (uint32_t)v);
	u32(f, (uint32_t)(v >> 32));
}

static void bytes(struct frame *f, const void *p, uint32_t n)
{
	u32(f, n);
	put(f, p, n);
}

/* One emit as kappad's sink encodes it (server/proc/proc_host.c). */
static void emit(struct frame *f, const char *topic, uint32_t klen,
		 uint32_t vlen_said, const char *value, uint32_t vlen,
		 uint64_t offset)
{
	u32(f, (uint32_t)strlen(topic));
	u32(f, klen);
	u32(f, vlen_said);
	u64(f, 0);
	u64(f, offset);
	put(f, topic, strlen(topic));
	put(f, value, vlen);
}

static void forge(const char *kind, uint64_t offset)
{
	struct frame f = { .len = 0 };
	struct frame e = { .len = 0 };
	struct frame d = { .len = 0 };
	uint64_t next = offset + 1;
	uint32_t emits = 1, dlqs = 0;

	if (strcmp(kind, "emit-len") == 0) {
		emit(&e, "forged-out", UINT32_MAX, 0x7fffffff, "\x01", 1, offset);
	} else if (strcmp(kind, "value") == 0) {
		emit(&e, "forged-out", UINT32_MAX, 1, "\xc1", 1, offset);
	} else {
		emit(&e, "forged-out", UINT32_MAX, 1, "\x01", 1, offset);
	}
	if (strcmp(kind, "dlq-len") == 0) {
		u64(&d, 0);
		u64(&d, offset);
		u32(&d, 0x7ffffff0);   /* a key far longer than the buffer */
		dlqs = 1;
	}
	if (strcmp(kind, "offset") == 0)
		next = offset + 1000000;
	u32(&f, 0);                    /* length, filled in below */
	u8(&f, 64);                    /* a job's result */
	u32(&f, 0);
	u8(&f, strcmp(kind, "kind") == 0 ? 3 : 2);   /* checkpoint / batch */
	u32(&f, 0);                    /* rc */
	bytes(&f, "", 0);
	for (int i = 0; i < 4; i++)    /* view stats */
		u64(&f, 0);
	u8(&f, 0);
	u32(&f, 1);                    /* processed */
	u32(&f, 0);                    /* failed */
	u64(&f, next);
	u8(&f, 0);
	u8(&f, 0);
	bytes(&f, "", 0);
	bytes(&f, e.b, (uint32_t)e.len);
	u32(&f, emits);
	bytes(&f, d.b, (uint32_t)d.len);
	u32(&f, dlqs);
	f.b[0] = (unsigned char)(f.len - 4);
	f.b[1] = (unsigned char)((f.len - 4) >> 8);
	if (write(WORKER_FD, f.b, f.len) != (ssize_t)f.len)
		return;
	pause();   /* kappad kills this process now */
}

static int process(struct kp_proc_ctx *ctx, const struct kp_proc_record *rec,
		   char *err)
{
	const struct kp_proc_host *host = ctx->host;
	int64_t seen;

	/* A msgpack fixstr "forge-..." (0xa0 | length, then the bytes). */
	if (rec->value_len > 7 && (rec->value[0] & 0xe0) == 0xa0 &&
	    memcmp(rec->value + 1, "forge-", 6) == 0) {
		char kind[32];
		size_t n = (size_t)(rec->value[0] & 0x1f) - 6;

		if (n >= sizeof(kind))
			n = sizeof(kind) - 1;
		memcpy(kind, rec->value + 7, n);
		kind[n] = '\0';
		forge(kind, rec->offset);
	}
	if (host->state_incr(ctx->host_data, "seen", 4, 1, &seen) != 0) {
		snprintf(err, KP_PROC_ERR_MAX, "state_incr failed");
		return -1;
	}
	return 0;
}

static const struct kp_processor descriptor = {
	.abi_version = KP_PROC_ABI_VERSION,
	.size = sizeof(struct kp_processor),
	.name = "forge_result",
	.process = process,
};

__attribute__((visibility("default")))
const struct kp_processor *kappa_processor(void);

const struct kp_processor *kappa_processor(void)
{
	return &descriptor;
}
