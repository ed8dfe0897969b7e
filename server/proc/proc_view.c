/*
 * proc_view.c - a version's view store: where it lives, opening it, and
 * when the version commits it (proc_version.h).
 */
#include "proc_version.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/fsutil.h"
#include "base/logging.h"

#define CHECKPOINT_MS 1000
#define COMMIT_SHARE 5   /* commits take at most 1/COMMIT_SHARE of the time */

void kp_pv_view_dir(const struct proc_version *v, char *out, size_t cap)
{
	if (v->role == PV_SCRATCH)
		snprintf(out, cap, "%s/verify", v->proc->dir);
	else
		snprintf(out, cap, "%s/view", v->dir);
}

static int make_dirs(const struct proc_version *v)
{
	if (mkdir(v->proc->dir, 0755) != 0 && errno != EEXIST)
		return -errno;
	if (v->role != PV_SCRATCH && mkdir(v->dir, 0755) != 0 &&
	    errno != EEXIST)
		return -errno;
	return 0;
}

int kp_pv_open_view(struct proc_version *v)
{
	struct kp_view *opened;
	struct kp_error err;
	char dir[4200];
	int rc;

	if (v->wk != NULL || (v->view != NULL && kp_view_stored(v->view)))
		return 0;   /* open here, or its worker's */
	/* One handle per store in a process: a verify's snapshot ends. */
	if (v == v->proc->live)
		kp_proc_verify_drop_snapshot(v->proc);
	kp_error_clear(&err);
	kp_pv_view_dir(v, dir, sizeof(dir));
	rc = make_dirs(v);
	if (rc == 0 && v->role == PV_SCRATCH)
		rc = kp_file_remove_tree(dir);
	if (rc != 0)
		kp_error_set(&err, rc, "cannot create %s: %s", dir,
			     kp_error_text(rc));
	else
		rc = kp_view_open(&opened, dir, v->owner->view_cache_bytes,
				  v->owner->view_max_bytes, &err);
	if (rc != 0) {
		snprintf(v->view_error, sizeof(v->view_error), "%s", err.msg);
		kp_log_error("proc", "processor %s v%u: %s", v->proc->def.name,
			     v->number, err.msg);
		return rc;
	}
	kp_view_delete(v->view);
	v->view = opened;
	v->view_error[0] = '\0';
	return 0;
}

int kp_pv_recreate_view(struct proc_version *v)
{
	char dir[4200];
	struct kp_view *fresh;
	int rc;

	if (kp_view_new(&fresh) != 0)
		return -ENOMEM;
	if (v == v->proc->live)
		kp_proc_verify_drop_snapshot(v->proc);
	kp_view_delete(v->view);
	v->view = fresh;
	kp_pv_view_dir(v, dir, sizeof(dir));
	rc = kp_file_remove_tree(dir);
	if (rc != 0) {
		snprintf(v->view_error, sizeof(v->view_error),
			 "cannot remove the damaged view store %s: %s", dir,
			 kp_error_text(rc));
		return rc;
	}
	kp_log_warn("proc", "processor %s v%u: view store %s removed; the view is rebuilt from the log",
		    v->proc->def.name, v->number, dir);
	return kp_pv_open_view(v);
}

struct pv_view_stats kp_pv_view_stats(const struct proc_version *v)
{
	struct pv_view_stats st = v->vstats;

	if (v->wk == NULL && v->view != NULL) {
		st.keys = kp_view_count(v->view);
		st.bytes = kp_view_bytes(v->view);
		st.cache_used = kp_view_cache_used(v->view);
		st.disk_bytes = kp_view_disk_bytes(v->view);
		st.cache_full = kp_view_cache_full(v->view);
	}
	return st;
}

bool kp_pv_checkpoint_blocked(const struct proc_version *v)
{
	return v->checkpoint_error[0] != '\0' && v->vstats.cache_full;
}

bool kp_pv_checkpoint_due(struct proc_version *v, int64_t now_ms)
{
	int64_t every = CHECKPOINT_MS;

	if (v->checkpoint_cost_ms * COMMIT_SHARE > every)
		every = v->checkpoint_cost_ms * COMMIT_SHARE;
	return now_ms - v->last_checkpoint_ms >= every || v->vstats.cache_full;
}
