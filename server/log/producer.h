/*
 * producer.h - idempotent producer state of one partition.
 *
 * For every producer id the table remembers its last KP_PRODUCER_BATCHES
 * batches (sequence number, base offset, offsets spanned), so a retried batch
 * is recognised and answered with the original offsets instead of being
 * written twice. The table is rebuilt at open from the snapshot kept in the
 * recovery point plus the batches scanned after it. Loop thread only.
 */
#ifndef KP_PRODUCER_H
#define KP_PRODUCER_H

#include <stddef.h>
#include <stdint.h>

#define KP_PRODUCER_BATCHES 5

/* One remembered batch. */
struct kp_producer_batch {
	uint32_t seq;     /* producer sequence number of the batch */
	uint32_t count;   /* offsets it spans: last delta + 1 (its records,
			     for a batch as produced) */
	uint64_t base;    /* offset assigned to its first record */
};

/* One producer: its last n batches, oldest first. pid 0 = empty slot. */
struct kp_producer {
	uint64_t pid;                                     /* producer id */
	uint32_t n;                                       /* batches held */
	struct kp_producer_batch b[KP_PRODUCER_BATCHES];  /* oldest first */
};

/* An open-addressing hash table of producers keyed by pid. */
struct kp_producer_table {
	struct kp_producer *slots;  /* owned; cap entries, NULL when cap 0 */
	size_t cap;                 /* slots, a power of two or 0 */
	size_t used;                /* slots with pid != 0 */
};

/* Initialises an empty table (no allocation). */
void kp_producer_table_init(struct kp_producer_table *t);

/* Frees the table; it is empty and reusable afterwards. */
void kp_producer_table_destroy(struct kp_producer_table *t);

/*
 * Classifies batch seq of producer pid: 0 when it is new (pid unknown, or
 * seq follows the last one); 1 when it equals one of the remembered batches
 * (then *base and *count describe it); KP_ESEQUENCE otherwise.
 */
int kp_producer_check(const struct kp_producer_table *t, uint64_t pid,
		      uint32_t seq, uint64_t *base, uint32_t *count);

/*
 * Records batch seq of pid at base spanning count offsets, forgetting the
 * oldest beyond KP_PRODUCER_BATCHES. A seq that is not after the last one
 * remembered is ignored (replaying a tail twice is harmless). pid 0 is
 * ignored. Returns 0 or -ENOMEM.
 */
int kp_producer_update(struct kp_producer_table *t, uint64_t pid,
		       uint32_t seq, uint64_t base, uint32_t count);

/* Forgets every remembered batch with base >= end (the log was cut). */
void kp_producer_truncate(struct kp_producer_table *t, uint64_t end);

/* Bytes that kp_producer_snapshot_write will produce. */
size_t kp_producer_snapshot_size(const struct kp_producer_table *t);

/* Serialises the table into out (kp_producer_snapshot_size bytes). */
void kp_producer_snapshot_write(const struct kp_producer_table *t, char *out);

/*
 * Replaces the table's contents with the snapshot in buf. Returns 0,
 * KP_ECORRUPT when the bytes are not a snapshot (table left empty), or
 * -ENOMEM.
 */
int kp_producer_snapshot_read(struct kp_producer_table *t, const char *buf,
			      size_t len);

#endif
