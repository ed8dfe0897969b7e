/*
 * producer.c - the idempotent producer table (producer.h).
 *
 * Snapshot format, little-endian:
 *   u32 producers, then per producer: u64 pid, u32 n,
 *   n times (u32 seq, u32 count, u64 base).
 */
#include "producer.h"

#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/error.h"

#define ENTRY_HEAD 12
#define ENTRY_BATCH 16

void kp_producer_table_init(struct kp_producer_table *t)
{
	t->slots = NULL;
	t->cap = 0;
	t->used = 0;
}

void kp_producer_table_destroy(struct kp_producer_table *t)
{
	kp_free(t->slots);
	kp_producer_table_init(t);
}

static size_t slot_of(uint64_t pid, size_t cap)
{
	uint64_t h = pid * 0x9e3779b97f4a7c15ull;

	return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

static struct kp_producer *find(const struct kp_producer_table *t,
				uint64_t pid)
{
	size_t i;

	if (t->cap == 0)
		return NULL;
	for (i = slot_of(pid, t->cap);; i = (i + 1) & (t->cap - 1)) {
		if (t->slots[i].pid == pid)
			return &t->slots[i];
		if (t->slots[i].pid == 0)
			return NULL;
	}
}

static struct kp_producer *insert_slot(struct kp_producer *slots, size_t cap,
				       uint64_t pid)
{
	size_t i = slot_of(pid, cap);

	while (slots[i].pid != 0 && slots[i].pid != pid)
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

static int grow(struct kp_producer_table *t)
{
	size_t cap = t->cap ? t->cap * 2 : 16;
	struct kp_producer *slots = kp_calloc(cap, sizeof(*slots));

	if (slots == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < t->cap; i++) {
		if (t->slots[i].pid != 0)
			*insert_slot(slots, cap, t->slots[i].pid) = t->slots[i];
	}
	kp_free(t->slots);
	t->slots = slots;
	t->cap = cap;
	return 0;
}

static struct kp_producer *get_or_add(struct kp_producer_table *t,
				      uint64_t pid)
{
	struct kp_producer *pr = find(t, pid);

	if (pr != NULL)
		return pr;
	if ((t->used + 1) * 10 > t->cap * 7 && grow(t) != 0)
		return NULL;
	pr = insert_slot(t->slots, t->cap, pid);
	pr->pid = pid;
	pr->n = 0;
	t->used++;
	return pr;
}

int kp_producer_check(const struct kp_producer_table *t, uint64_t pid,
		      uint32_t seq, uint64_t *base, uint32_t *count)
{
	const struct kp_producer *pr = find(t, pid);

	if (pr == NULL || pr->n == 0)
		return 0;
	if (seq == pr->b[pr->n - 1].seq + 1)
		return 0;
	for (uint32_t i = 0; i < pr->n; i++) {
		if (pr->b[i].seq == seq) {
			if (base != NULL)
				*base = pr->b[i].base;
			if (count != NULL)
				*count = pr->b[i].count;
			return 1;
		}
	}
	return KP_ESEQUENCE;
}

int kp_producer_update(struct kp_producer_table *t, uint64_t pid,
		       uint32_t seq, uint64_t base, uint32_t count)
{
	struct kp_producer *pr;

	if (pid == 0)
		return 0;
	pr = get_or_add(t, pid);
	if (pr == NULL)
		return -ENOMEM;
	if (pr->n > 0 && (int32_t)(seq - pr->b[pr->n - 1].seq) <= 0)
		return 0;
	if (pr->n == KP_PRODUCER_BATCHES) {
		memmove(&pr->b[0], &pr->b[1],
			(KP_PRODUCER_BATCHES - 1) * sizeof(pr->b[0]));
		pr->n--;
	}
	pr->b[pr->n].seq = seq;
	pr->b[pr->n].count = count;
	pr->b[pr->n].base = base;
	pr->n++;
	return 0;
}

void kp_producer_truncate(struct kp_producer_table *t, uint64_t end)
{
	for (size_t i = 0; i < t->cap; i++) {
		struct kp_producer *pr = &t->slots[i];

		while (pr->pid != 0 && pr->n > 0 &&
		       pr->b[pr->n - 1].base >= end)
			pr->n--;
	}
}

size_t kp_producer_snapshot_size(const struct kp_producer_table *t)
{
	size_t size = 4;

	for (size_t i = 0; i < t->cap; i++) {
		if (t->slots[i].pid != 0 && t->slots[i].n > 0)
			size += ENTRY_HEAD + (size_t)t->slots[i].n * ENTRY_BATCH;
	}
	return size;
}

void kp_producer_snapshot_write(const struct kp_producer_table *t, char *out)
{
	char *p = out + 4;
	uint32_t producers = 0;

	for (size_t i = 0; i < t->cap; i++) {
		const struct kp_producer *pr = &t->slots[i];

		if (pr->pid == 0 || pr->n == 0)
			continue;
		kp_put_le64(p, pr->pid);
		kp_put_le32(p + 8, pr->n);
		p += ENTRY_HEAD;
		for (uint32_t j = 0; j < pr->n; j++) {
			kp_put_le32(p, pr->b[j].seq);
			kp_put_le32(p + 4, pr->b[j].count);
			kp_put_le64(p + 8, pr->b[j].base);
			p += ENTRY_BATCH;
		}
		producers++;
	}
	kp_put_le32(out, producers);
}

int kp_producer_snapshot_read(struct kp_producer_table *t, const char *buf,
			      size_t len)
{
	const char *p = buf + 4, *end = buf + len;
	uint32_t producers;
	int rc;

	kp_producer_table_destroy(t);
	if (len < 4)
		return KP_ECORRUPT;
	producers = kp_get_le32(buf);
	for (uint32_t i = 0; i < producers; i++) {
		uint64_t pid;
		uint32_t n;

		if (end - p < ENTRY_HEAD)
			goto corrupt;
		pid = kp_get_le64(p);
		n = kp_get_le32(p + 8);
		p += ENTRY_HEAD;
		if (pid == 0 || n > KP_PRODUCER_BATCHES ||
		    (size_t)(end - p) < (size_t)n * ENTRY_BATCH)
			goto corrupt;
		for (uint32_t j = 0; j < n; j++) {
			rc = kp_producer_update(t, pid, kp_get_le32(p),
						kp_get_le64(p + 8),
						kp_get_le32(p + 4));
			if (rc != 0) {
				kp_producer_table_destroy(t);
				return rc;
			}
			p += ENTRY_BATCH;
		}
	}
	if (p != end)
		goto corrupt;
	return 0;
corrupt:
	kp_producer_table_destroy(t);
	return KP_ECORRUPT;
}
