/*
 * groups.h - consumer-group offsets for external readers.
 *
 * An in-memory table of (group, topic, partition) -> next offset to read,
 * saved whole to <data>/groups.db (text lines `group topic partition
 * offset`, written tmp + fsync + rename). Saving is split so the server can
 * run the write on a worker thread: serialize on the loop, write anywhere.
 */
#ifndef KP_GROUPS_H
#define KP_GROUPS_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/error.h"

struct kp_groups;

/* One committed offset; names borrowed from the table. */
struct kp_group_offset {
	const char *group;
	const char *topic;
	uint32_t partition;
	uint64_t offset;
};

/* Loads <data_dir>/groups.db (absent = empty). Returns 0 and *out. */
int kp_groups_open(const char *data_dir, struct kp_groups **out,
		   struct kp_error *err);

/* Frees the table. NULL is a no-op. */
void kp_groups_close(struct kp_groups *g);

/* Sets a committed offset in memory. Returns 0 or -ENOMEM. */
int kp_groups_set(struct kp_groups *g, const char *group, size_t glen,
		  const char *topic, size_t tlen, uint32_t partition,
		  uint64_t offset);

/*
 * Visits the group's offsets (all topics when topic is NULL), in topic
 * and partition order. Returns the number visited.
 */
size_t kp_groups_each(struct kp_groups *g, const char *group, size_t glen,
		      const char *topic, size_t tlen,
		      void (*visit)(void *arg, const struct kp_group_offset *o),
		      void *arg);

/* Number of distinct groups, and the i-th name in sorted order. */
size_t kp_groups_count(struct kp_groups *g);
const char *kp_groups_name(struct kp_groups *g, size_t i);

/* Forgets a group. Returns 0 or KP_ENOGROUP. */
int kp_groups_delete(struct kp_groups *g, const char *group, size_t glen);

/* Forgets every offset of a topic (it was deleted). */
void kp_groups_forget_topic(struct kp_groups *g, const char *topic);

/* Serializes the table into out (replacing its contents). */
int kp_groups_serialize(struct kp_groups *g, struct kp_buf *out);

/* The path of the table's file. */
const char *kp_groups_path(const struct kp_groups *g);

#endif
