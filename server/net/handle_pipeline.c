/*
 * handle_pipeline.c - the operations on pipelines (docs/PROTOCOL.md):
 * proc_graph, and the cascade forms of proc_replay and proc_rollback
 * (proc/proc_pipeline.h does the work).
 */
#include "handler.h"

#include <string.h>

#include "proc/proc.h"
#include "proc/proc_pipeline.h"

int kp_handle_proc_graph(struct kp_server *s, struct kp_slot *slot,
			 const struct kp_request *req, struct kp_error *err)
{
	struct kp_response r;

	(void)req;
	(void)err;
	kp_response_begin(&r, &slot->resp, slot->id, 1);
	kp_response_key(&r, "graph");
	kp_procs_pack_graph(s->procs, &r);
	return kp_response_finish(&r);
}

/* Answers with `proc` (p's status), `cascade` ([{name, version}]), and
 * `version` (p's new one) when with_version. */
static int answer_cascade(struct kp_slot *slot, struct kp_proc *p,
			  const struct kp_cascade_step *steps, uint32_t n,
			  bool with_version)
{
	struct kp_response r;

	kp_response_begin(&r, &slot->resp, slot->id, with_version ? 3 : 2);
	if (with_version) {
		kp_response_key(&r, "version");
		msgpack_pack_uint32(&r.pk, steps[0].version);
	}
	kp_response_key(&r, "proc");
	kp_proc_pack_status(p, &r);
	kp_response_key(&r, "cascade");
	msgpack_pack_array(&r.pk, n);
	for (uint32_t i = 0; i < n; i++) {
		msgpack_pack_map(&r.pk, 2);
		kp_response_pair_str(&r, "name", steps[i].name);
		kp_response_pair_u64(&r, "version", steps[i].version);
	}
	return kp_response_finish(&r);
}

int kp_handle_replay_cascade(struct kp_slot *slot, struct kp_proc *p,
			     const char *file, enum kp_proc_from from,
			     int64_t value, uint64_t rate,
			     struct kp_error *err)
{
	struct kp_cascade_step steps[KP_CASCADE_MAX];
	uint32_t n = 0;
	int rc = kp_proc_replay_cascade(p, file, from, value, rate, steps, &n,
					err);

	return rc != 0 ? rc : answer_cascade(slot, p, steps, n, true);
}

int kp_handle_proc_rollback_any(struct kp_server *s, struct kp_slot *slot,
				const struct kp_request *req,
				struct kp_error *err)
{
	struct kp_cascade_step steps[KP_CASCADE_MAX];
	struct kp_mp_view name;
	struct kp_proc *p;
	bool cascade = false;
	uint32_t n = 0;
	int rc = kp_field_bool(req->map, "cascade", &cascade, err);

	if (rc < 0)
		return rc;
	if (!cascade)
		return kp_handle_proc_rollback(s, slot, req, err);
	if (kp_field_raw(req->map, "to_version", &name, NULL) == 0 ||
	    kp_field_raw(req->map, "to_revision", &name, NULL) == 0)
		return kp_error_set(err, KP_EBADREQUEST,
				    "a cascade rollback takes every processor back to its previous version; it takes no 'to_version' or 'to_revision'");
	rc = kp_field_str(req->map, "name", &name, err);
	if (rc < 0)
		return rc;
	if (rc == 1)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'name' is required");
	p = kp_procs_find(s->procs, name.ptr, name.len);
	if (p == NULL)
		return kp_error_set(err, KP_ENOTFOUND,
				    "no processor named '%.*s'",
				    (int)(name.len > 200 ? 200 : name.len),
				    name.ptr);
	rc = kp_proc_rollback_cascade(p, steps, &n, err);
	return rc != 0 ? rc : answer_cascade(slot, p, steps, n, false);
}
