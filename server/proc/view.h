/*
 * view.h - a processor's view: string keys to msgpack values.
 *
 * A view opened on a store (kp_view_open) keeps its data in LMDB
 * (view_store.h) and, in memory, only the keys changed since the last
 * commit (plus, while they fit, keys it changed before): memory follows
 * the cache budget, not the view's size. kp_view_commit writes the changed
 * keys and the caller's checkpoint records in one store transaction, so
 * its cost follows what changed. A view made by kp_view_new lives in
 * memory only (offline runs, tests).
 *
 * Reads see the live state: every change made so far, committed or not
 * (a key's latest value). Threads: one thread changes and commits a view
 * at a time (the worker running its processor); any thread may read, and
 * a read holds the view's lock only to look in the in-memory table, never
 * while the store is read or a commit is written.
 */
#ifndef KP_VIEW_H
#define KP_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/error.h"

struct kp_view;

/* Default budget of a view's in-memory table (view_cache_bytes). */
#define KP_VIEW_DEFAULT_CACHE_BYTES (64u << 20)

/* Creates an empty view in memory only. Returns 0 or -ENOMEM. */
int kp_view_new(struct kp_view **out);

/*
 * Opens the view stored in dir (created when absent), with cache_bytes
 * for its table (0: the default) and max_bytes for its store (0: the
 * default). Returns 0; KP_EDAMAGED or -errno with err.
 */
int kp_view_open(struct kp_view **out, const char *dir, size_t cache_bytes,
		 uint64_t max_bytes, struct kp_error *err);

/* Frees the view (uncommitted changes are dropped). NULL is a no-op. */
void kp_view_delete(struct kp_view *v);

/* true when the view has a store. */
bool kp_view_stored(const struct kp_view *v);

/*
 * Copies the value of key into out (replacing its contents). Returns 1
 * when present, 0 when absent, -ENOMEM, or KP_EDAMAGED (store damaged).
 */
int kp_view_get(struct kp_view *v, const char *key, size_t key_len,
		struct kp_buf *out);

/*
 * Sets key to a msgpack value (copied). Returns 0, -ENOMEM, KP_EDAMAGED
 * or KP_ETOOLARGE (a key longer than KP_VIEW_MAX_KEY).
 */
#define KP_VIEW_MAX_KEY 510
int kp_view_put(struct kp_view *v, const char *key, size_t key_len,
		const char *value, size_t value_len);

/*
 * Adds delta to the integer value at key (absent = 0), stores it and sets
 * *result. Returns 0; KP_EBADREQUEST when the value is not an integer or
 * the sum overflows int64; the errors of kp_view_put.
 */
int kp_view_incr(struct kp_view *v, const char *key, size_t key_len,
		 int64_t delta, int64_t *result);

/* Deletes key. Returns 1 when it was present, 0 when absent, or an error. */
int kp_view_del(struct kp_view *v, const char *key, size_t key_len);

/* A scan's visitor; non-zero stops the scan. */
typedef int (*kp_view_visit_fn)(void *arg, const char *key, size_t key_len,
				const char *value, size_t value_len);

/*
 * Visits keys starting with prefix in byte order, at most limit of them
 * (0 = all), until visit returns non-zero. The visit runs without the
 * view's lock on copies, so it may call other view functions. Returns the
 * number visited or an error.
 */
int kp_view_scan(struct kp_view *v, const char *prefix, size_t prefix_len,
		 size_t limit, kp_view_visit_fn visit, void *arg);

/*
 * One page of a scan: keys starting with prefix that sort after `after`
 * (after_len 0: from the first), at most limit (>= 1). *more says whether
 * further keys follow the last one visited. Returns the number visited or
 * an error.
 */
int kp_view_scan_page(struct kp_view *v, const char *prefix,
		      size_t prefix_len, const char *after, size_t after_len,
		      size_t limit, kp_view_visit_fn visit, void *arg,
		      bool *more);

/*
 * Variants for undo logs: before changing key, append its previous value
 * to prev (unless prev is NULL) and report whether it was present. Each
 * returns 1 when key was present (its old value appended to prev), 0 when
 * it was absent, or a negative error as its plain counterpart; on error
 * the view is unchanged, but prev may have grown (truncate it back).
 * When a value is appended, prev keeps room for KP_VIEW_PREV_SPARE more
 * bytes, so an undo log can close its entry without allocating.
 */
#define KP_VIEW_PREV_SPARE 8
int kp_view_put_prev(struct kp_view *v, const char *key, size_t key_len,
		     const char *value, size_t value_len, struct kp_buf *prev);
int kp_view_incr_prev(struct kp_view *v, const char *key, size_t key_len,
		      int64_t delta, int64_t *result, struct kp_buf *prev);
int kp_view_del_prev(struct kp_view *v, const char *key, size_t key_len,
		     struct kp_buf *prev);

/* Number of keys, and bytes of keys plus values (live). */
size_t kp_view_count(struct kp_view *v);
size_t kp_view_bytes(struct kp_view *v);

/* Bytes the in-memory table takes. */
size_t kp_view_cache_used(struct kp_view *v);

/* true when the table has reached its budget: commit soon. */
bool kp_view_cache_full(struct kp_view *v);

/* Bytes of the store's file on disk (0 for a view in memory). */
uint64_t kp_view_disk_bytes(struct kp_view *v);

/* Removes every key (a stored view forgets its store at the next commit). */
void kp_view_clear(struct kp_view *v);

/*
 * Drops every change since the last commit and frees the table: the view
 * is its store's last commit again. A view in memory is cleared.
 */
void kp_view_discard(struct kp_view *v);

/*
 * Commits every change since the last commit together with meta records
 * (names and values, count of them) in one durable store transaction.
 * Returns 0; -ENOSPC (nothing written, the changes stay: retry), or the
 * errors of kp_vstore_write, with err. A view in memory returns -ENOTSUP.
 */
int kp_view_commit(struct kp_view *v, const char *const *meta_names,
		   const struct kp_buf *meta_values, size_t meta_count,
		   struct kp_error *err);

/* Reads a meta record of the last commit: 1 found, 0 absent, or an error. */
int kp_view_meta(struct kp_view *v, const char *name, struct kp_buf *out);

/*
 * A snapshot of the whole view as it is now, for comparing views of any
 * size: the table's entries are copied, the store is held at its last
 * commit (kp_vstore_snap). Pages as kp_view_scan_page.
 */
struct kp_view_snap;
int kp_view_snap_begin(struct kp_view *v, struct kp_view_snap **out);
int kp_view_snap_page(struct kp_view_snap *s, const char *after,
		      size_t after_len, size_t limit, kp_view_visit_fn visit,
		      void *arg, bool *more);
void kp_view_snap_end(struct kp_view_snap *s);

/*
 * Replaces the view's contents with a snapshot written by kappa before
 * views had a store (format "KPVIEW01"); a stored view holds it as
 * uncommitted changes until the next commit. Returns 0, or KP_ECORRUPT
 * (with err) when the bytes are not a whole, valid snapshot (the view is
 * unchanged then).
 */
int kp_view_load(struct kp_view *v, const char *data, size_t len,
		 struct kp_error *err);

#endif
