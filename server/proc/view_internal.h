/*
 * view_internal.h - the parts of struct kp_view shared by view.c (changes,
 * commits), view_scan.c (ordered reads) and view_load.c (old snapshots).
 */
#ifndef KP_VIEW_INTERNAL_H
#define KP_VIEW_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>

#include "base/buf.h"
#include "view_store.h"
#include "view_table.h"

struct kp_view {
	pthread_mutex_t lock;     /* guards t, count, bytes, cleared */
	struct vt_table t;        /* changed keys (and clean ones that fit) */
	struct kp_vstore *store;  /* NULL: in memory only */
	size_t cache_bytes;       /* budget of t */
	bool cleared;             /* the store's keys are gone (uncommitted) */
	uint64_t count;           /* live keys */
	uint64_t bytes;           /* live bytes of keys and values */
	uint64_t stored_count;    /* the same, as of the last commit */
	uint64_t stored_bytes;
	struct kp_buf base;       /* the writer's copy of a stored value */
};

#endif
