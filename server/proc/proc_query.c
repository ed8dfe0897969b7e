/*
 * proc_query.c - view queries of a processor (proc.h): answered by the
 * live version's worker process, which holds the view the processor is
 * writing (live reads), or, when the version has no worker (it failed or
 * stopped), by kappad from the store at its last checkpoint.
 */
#include "proc_version.h"

#include <string.h>

#include "proc.h"
#include "view_query.h"
#include "wk_msg.h"
#include "wire/slot.h"

/* The live version to answer from, with its view or its worker ready. */
static struct proc_version *answering(struct kp_proc *p, struct kp_error *err)
{
	struct proc_version *v = p->live;

	if (v == NULL) {
		kp_error_set(err, KP_ESTATE,
			     "processor has no live version to answer from");
		return NULL;
	}
	if (v->wk == NULL && v->view == NULL && kp_pv_open_view(v) != 0) {
		kp_vq_error(KP_EDAMAGED, err);
		return NULL;
	}
	return v;
}

int kp_proc_view_get(struct kp_proc *p, struct kp_slot *slot,
		     const struct kp_vq_key *keys, uint32_t n, bool many,
		     struct kp_error *err)
{
	struct proc_version *v = answering(p, err);
	struct kp_buf q;
	uint32_t tag;
	size_t start;

	if (v == NULL)
		return err->code;
	if (v->wk == NULL) {
		kp_buf_reset(&slot->resp);
		return kp_vq_get(v->view, slot->id, keys, n, many, &slot->resp,
				 err);
	}
	kp_buf_init(&q);
	tag = kp_pv_worker_tag(v);
	start = kp_wm_begin(&q, KP_WM_GET, tag);
	kp_wm_put_u64(&q, slot->id);
	kp_wm_put_u8(&q, many);
	kp_wm_put_u32(&q, n);
	for (uint32_t i = 0; i < n; i++)
		kp_wm_put_bytes(&q, keys[i].ptr, keys[i].len);
	kp_wm_finish(&q, start);
	kp_pv_worker_query(v, slot, &q, tag);
	kp_buf_destroy(&q);
	return 0;
}

int kp_proc_view_scan(struct kp_proc *p, struct kp_slot *slot,
		      const char *prefix, size_t prefix_len, const char *after,
		      size_t after_len, uint32_t limit, struct kp_error *err)
{
	struct proc_version *v = answering(p, err);
	struct kp_buf q;
	uint32_t tag;
	size_t start;

	if (v == NULL)
		return err->code;
	if (v->wk == NULL) {
		kp_buf_reset(&slot->resp);
		return kp_vq_scan(v->view, slot->id, prefix, prefix_len, after,
				  after_len, limit, &slot->resp, err);
	}
	kp_buf_init(&q);
	tag = kp_pv_worker_tag(v);
	start = kp_wm_begin(&q, KP_WM_SCAN, tag);
	kp_wm_put_u64(&q, slot->id);
	kp_wm_put_bytes(&q, prefix, prefix_len);
	kp_wm_put_bytes(&q, after, after_len);
	kp_wm_put_u32(&q, limit);
	kp_wm_finish(&q, start);
	kp_pv_worker_query(v, slot, &q, tag);
	kp_buf_destroy(&q);
	return 0;
}
