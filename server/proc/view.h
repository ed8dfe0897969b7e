/*
 * view.h - a processor's view: string keys to msgpack values, in memory,
 * with snapshots for checkpoints.
 *
 * Thread-safe: one worker thread writes while the loop thread answers
 * queries; every call takes the view's mutex for its own duration only.
 * Values are copied in and out, so nothing borrowed outlives a call.
 */
#ifndef KP_VIEW_H
#define KP_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/error.h"

struct kp_view;

/* Creates an empty view. Returns 0 or -ENOMEM. */
int kp_view_new(struct kp_view **out);

/* Frees the view. NULL is a no-op. */
void kp_view_delete(struct kp_view *v);

/*
 * Copies the value of key into out (replacing its contents). Returns 1
 * when present, 0 when absent, -ENOMEM.
 */
int kp_view_get(struct kp_view *v, const char *key, size_t key_len,
		struct kp_buf *out);

/* Sets key to a msgpack value (copied). Returns 0 or -ENOMEM. */
int kp_view_put(struct kp_view *v, const char *key, size_t key_len,
		const char *value, size_t value_len);

/*
 * Adds delta to the integer value at key (absent = 0), stores it and sets
 * *result. Returns 0; KP_EBADREQUEST when the value is not an integer or
 * the sum overflows int64.
 */
int kp_view_incr(struct kp_view *v, const char *key, size_t key_len,
		 int64_t delta, int64_t *result);

/* Deletes key. Returns 1 when it was present, 0 when absent. */
int kp_view_del(struct kp_view *v, const char *key, size_t key_len);

/*
 * Visits keys starting with prefix in byte order, at most limit of them
 * (0 = all), until visit returns non-zero. The visit runs without the
 * view's lock on copies, so it may call other view functions. Returns the
 * number visited or -ENOMEM.
 */
int kp_view_scan(struct kp_view *v, const char *prefix, size_t prefix_len,
		 size_t limit,
		 int (*visit)(void *arg, const char *key, size_t key_len,
			      const char *value, size_t value_len),
		 void *arg);

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

/* Number of keys, and bytes of keys plus values. */
size_t kp_view_count(struct kp_view *v);
size_t kp_view_bytes(struct kp_view *v);

/* Removes every key. */
void kp_view_clear(struct kp_view *v);

/*
 * Appends a snapshot of the whole view to out: a self-describing, CRC'd
 * byte string that kp_view_load reads back. Returns 0 or -ENOMEM.
 */
int kp_view_serialize(struct kp_view *v, struct kp_buf *out);

/*
 * Replaces the view's contents with a snapshot. Returns 0, or KP_ECORRUPT
 * (with err) when the bytes are not a whole, valid snapshot; the view is
 * unchanged then.
 */
int kp_view_load(struct kp_view *v, const char *data, size_t len,
		 struct kp_error *err);

#endif
