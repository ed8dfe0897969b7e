/*
 * view_store.h - a view's on-disk store: LMDB, one environment per view in
 * its own directory (data.mdb, lock.mdb).
 *
 * Two tables: "data" (key -> value, in key byte order) and "meta" (named
 * records the view and its checkpoint keep beside the data). Every value
 * is stored with a CRC32C of its key and bytes, checked on every read, so
 * a damaged page is reported (KP_ECORRUPT) rather than served.
 *
 * Writes happen only in kp_vstore_commit: one transaction holding a sorted
 * run of changes and the meta records, durable when it returns. Reads
 * never block that writer (LMDB's readers see the last commit). The file is
 * mapped with MDB_WRITEMAP, so written pages are file pages, never the
 * process's anonymous memory. The map is exactly the file, allocated whole
 * (fallocate), and grows before a commit for the most pages it can touch:
 * a full disk fails the commit with -ENOSPC (nothing written) instead of
 * faulting on a mapped page, and a commit past the map gets MDB_MAP_FULL,
 * a bigger map and another try.
 *
 * Thread-safety: one committing thread at a time; reads from any thread
 * (two cached read transactions, then fresh ones).
 */
#ifndef KP_VIEW_STORE_H
#define KP_VIEW_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/error.h"

struct kp_vstore;

/* The longest key a view can hold (LMDB's key limit, less a tag byte). */
#define KP_VSTORE_MAX_KEY 510

/* Default largest size of one view's store (the mapping it reserves). */
#define KP_VSTORE_DEFAULT_MAX_BYTES (64ull << 30)

/*
 * Opens (creating when absent) the store in dir (created too). max_bytes
 * bounds the file (0: the default). Returns 0 and *out; KP_ECORRUPT when
 * the files are damaged or not a view store; -errno otherwise; err says
 * which file and what to do.
 */
int kp_vstore_open(struct kp_vstore **out, const char *dir,
		   uint64_t max_bytes, struct kp_error *err);

/* Closes the store. NULL is a no-op. */
void kp_vstore_close(struct kp_vstore *s);

/*
 * Looks key up in the last commit. With out, its value replaces out's
 * contents; *len (may be NULL) gets its length. Returns 1 found, 0
 * absent, KP_ECORRUPT (damaged value or page) or -errno.
 */
int kp_vstore_get(struct kp_vstore *s, const char *key, size_t key_len,
		  struct kp_buf *out, size_t *len);

/* Visitor of a scan; the bytes are valid during the call only. Non-zero stops. */
typedef int (*kp_vstore_visit_fn)(void *arg, const char *key, size_t key_len,
				  const char *value, size_t value_len);

/*
 * Visits, in key order, the keys of the last commit (or of snap, when
 * given) that start with prefix and come after `after` (all when
 * after_len is 0 and after is NULL), until visit returns non-zero.
 * Returns 0, KP_ECORRUPT or -errno.
 */
struct kp_vstore_snap;
int kp_vstore_scan(struct kp_vstore *s, struct kp_vstore_snap *snap,
		   const char *prefix, size_t prefix_len, const char *after,
		   size_t after_len, kp_vstore_visit_fn visit, void *arg);

/*
 * A snapshot: the last commit, held until kp_vstore_snap_end however many
 * commits follow (their pages are kept meanwhile, so the file grows).
 * Returns 0 or -errno.
 */
int kp_vstore_snap_begin(struct kp_vstore *s, struct kp_vstore_snap **out);
void kp_vstore_snap_end(struct kp_vstore_snap *snap);

/* Reads meta record name into out. 1 found, 0 absent, KP_ECORRUPT, -errno. */
int kp_vstore_meta_get(struct kp_vstore *s, const char *name,
		       struct kp_buf *out);

/* One change of a commit: value NULL deletes key. */
struct kp_vstore_change {
	const char *key;
	size_t key_len;
	const char *value;
	size_t value_len;
};

/* Fills c with the next change; 1 when it did, 0 at the end. */
typedef int (*kp_vstore_next_fn)(void *arg, struct kp_vstore_change *c);

/* What one commit writes. */
struct kp_vstore_commit {
	bool clear_first;          /* empty "data" before the changes */
	kp_vstore_next_fn next;    /* the changes, in key order */
	void (*rewind)(void *arg); /* next starts again from the first */
	void *arg;
	size_t change_count;       /* how many next gives (for space) */
	size_t change_bytes;       /* their keys and values */
	const char *const *meta_names;   /* meta records to set */
	const struct kp_buf *meta_values;
	size_t meta_count;
};

/*
 * Writes c in one durable transaction: all of it or none. Returns 0;
 * -ENOSPC when the disk has no room for it (nothing written: retry later);
 * KP_ETOOLARGE when the store reached its maximum size; KP_ECORRUPT or
 * -errno; err says what.
 */
int kp_vstore_write(struct kp_vstore *s, const struct kp_vstore_commit *c,
		    struct kp_error *err);

/* Bytes of the store's file on disk (allocated blocks). */
uint64_t kp_vstore_disk_bytes(struct kp_vstore *s);

#endif
