/*
 * topic.h - the topic catalog: which topics exist, their settings, and
 * their open partitions.
 *
 * Layout under the data directory:
 *   topics/<name>/topic.conf      settings, `key = value` lines (a file
 *                                 without the newer keys, such as cleanup,
 *                                 reads with their defaults)
 *   topics/<name>/<partition>/    one partition (partition.h)
 *
 * A topic's settings are written (tmp + fsync + rename) before its
 * partitions are created, so a crash leaves either no topic or a whole one.
 * Deleting a topic takes it out of the catalog at once and removes its
 * files (renamed aside first) when the caller is done with it.
 * Loop thread only.
 */
#ifndef KP_TOPIC_H
#define KP_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compact.h"
#include "partition.h"
#include "base/error.h"

#define KP_NAME_MAX 200
#define KP_MAX_PARTITIONS 1024

/*
 * A topic's settings, as created and as described. A zeroed cleanup is
 * "delete"; a delete_retention_ms of 0 means the default
 * (KP_DELETE_RETENTION_DEFAULT_MS), filled in at creation.
 */
struct kp_topic_config {
	uint32_t partitions;             /* 1..KP_MAX_PARTITIONS */
	uint32_t fsync_interval_ms;      /* with fsync=interval */
	struct kp_partition_config log;  /* fsync, segments, retention */
	enum kp_cleanup cleanup;         /* retention, compaction or both */
	int64_t delete_retention_ms;     /* compaction keeps tombstones this
					    long (ms, >= 1) */
};

struct kp_topic;

/*
 * Runtime state of one partition of a topic, owned by the topic. The
 * write path (writer.h) keeps its group-commit state here.
 */
struct kp_topic_partition {
	struct kp_partition *log;        /* owned; the storage */
	struct kp_topic *topic;          /* back pointer */
	uint32_t id;                     /* partition number */
	void *writer_state;              /* owned by writer.c */
	uint64_t records_appended;       /* since start, for metrics */
	struct kp_compact_state compact; /* compaction bookkeeping (store.c) */
};

struct kp_topic {
	char name[KP_NAME_MAX + 1];      /* validated name */
	char dir[4096];                  /* its directory */
	struct kp_topic_config config;   /* settings */
	struct kp_topic_partition *parts; /* config.partitions entries */
	uint32_t rr_next;                /* round-robin for keyless records */
	int64_t last_interval_sync_ms;   /* fsync=interval bookkeeping */
	bool deleted;                    /* removed from the catalog */
};

struct kp_catalog;

/* true when name is 1..200 of [A-Za-z0-9._-] and not "." or "..". */
bool kp_topic_name_valid(const char *name, size_t len);

/*
 * Opens the catalog under data_dir (creating topics/), opening and
 * recovering every topic's partitions. Returns 0 and *out or an error.
 */
int kp_catalog_open(const char *data_dir, struct kp_catalog **out,
		    struct kp_error *err);

/* Closes every partition (fsync, clean recovery point) and frees. */
void kp_catalog_close(struct kp_catalog *cat);

/*
 * The topic called name, or NULL. A logical name (an alias, see below)
 * resolves to the topic it currently points at.
 */
struct kp_topic *kp_catalog_find(struct kp_catalog *cat, const char *name,
				 size_t len);

/*
 * true when name is a topic or an alias. The one catalog function that may
 * run off the loop thread: processor workers ask it before an emit to a
 * topic that is not yet one of the processor's outputs.
 */
bool kp_catalog_name_taken(struct kp_catalog *cat, const char *name,
			   size_t len);

/* The physical topic called name, ignoring aliases, or NULL. */
struct kp_topic *kp_catalog_find_physical(struct kp_catalog *cat,
					  const char *name, size_t len);

/*
 * Aliases: logical names of processor outputs that resolve to the physical
 * topic of one version (generation) of the processor; a cut-over repoints
 * them. Persisted in <data>/aliases (tmp + fsync + rename) before return.
 * Set creates or repoints; returns 0 or -errno.
 */
int kp_catalog_alias_set(struct kp_catalog *cat, const char *name,
			 const char *target, uint32_t generation);

/* Removes an alias (absent is fine). Returns 0 or -errno. */
int kp_catalog_alias_remove(struct kp_catalog *cat, const char *name);

/*
 * When name is an alias: returns 1 and sets *generation (and *target to
 * the physical name, borrowed). Otherwise 0.
 */
int kp_catalog_alias_get(struct kp_catalog *cat, const char *name, size_t len,
			 uint32_t *generation, const char **target);

/*
 * Creates a topic (directory, settings, partitions). KP_ETOPICEXISTS when
 * it exists; KP_EBADREQUEST for a bad name or settings.
 */
int kp_catalog_create(struct kp_catalog *cat, const char *name, size_t len,
		      const struct kp_topic_config *cfg,
		      struct kp_topic **out, struct kp_error *err);

/*
 * Removes the topic from the catalog: lookups no longer find it. The topic
 * stays allocated and on disk (deleted = true) until kp_catalog_release;
 * the caller releases it once nothing (a sync job, a waiter) refers to it.
 * Creating the same name before then fails with KP_ESTATE.
 */
int kp_catalog_delete(struct kp_catalog *cat, struct kp_topic *topic,
		      struct kp_error *err);

/*
 * Closes a deleted topic's partitions (without syncing what is about to be
 * removed), renames its directory aside (so a crash never leaves half a
 * topic; catalogs remove such directories when they open) and frees it.
 * Writes the aside path to aside: the caller removes that tree, off the
 * event loop. Returns 0 or -errno (the rename failed; nothing to remove).
 */
int kp_catalog_release(struct kp_catalog *cat, struct kp_topic *topic,
		       char *aside, size_t cap);

/* Number of topics, and the i-th in name order (i < count). */
size_t kp_catalog_count(const struct kp_catalog *cat);
struct kp_topic *kp_catalog_at(struct kp_catalog *cat, size_t i);

#endif
