/*
 * handler.h - request handlers: decode a frame body, run the operation,
 * write the response into the request's slot.
 *
 * A handler either fills slot->resp (the slot is then made ready by the
 * caller) or registers waits on the slot (writer.h) that make it ready
 * later. Every failure becomes an error response; nothing here closes the
 * connection.
 */
#ifndef KP_HANDLER_H
#define KP_HANDLER_H

#include <stddef.h>
#include <stdint.h>

#include "server.h"
#include "base/error.h"
#include "log/topic.h"
#include "proc/proc_def.h"
#include "wire/proto.h"
#include "wire/slot.h"

struct kp_proc;

/* Decodes and handles one frame body. */
void kp_handle_frame(struct kp_server *s, struct kp_slot *slot,
		     const char *body, size_t len);

/* Data operations (handle_produce.c, handle_fetch.c). */
int kp_handle_produce(struct kp_server *s, struct kp_slot *slot,
		      const struct kp_request *req, struct kp_error *err);
int kp_handle_fetch(struct kp_server *s, struct kp_slot *slot,
		    const struct kp_request *req, struct kp_error *err);
int kp_handle_list_offsets(struct kp_server *s, struct kp_slot *slot,
			   const struct kp_request *req, struct kp_error *err);

/* Topic operations (handle_topic.c). */
int kp_handle_topic_create(struct kp_server *s, struct kp_slot *slot,
			   const struct kp_request *req, struct kp_error *err);
int kp_handle_topic_list(struct kp_server *s, struct kp_slot *slot,
			 const struct kp_request *req, struct kp_error *err);
int kp_handle_topic_describe(struct kp_server *s, struct kp_slot *slot,
			     const struct kp_request *req,
			     struct kp_error *err);
int kp_handle_topic_delete(struct kp_server *s, struct kp_slot *slot,
			   const struct kp_request *req, struct kp_error *err);

/* Consumer-group operations (handle_group.c). */
int kp_handle_group_commit(struct kp_server *s, struct kp_slot *slot,
			   const struct kp_request *req, struct kp_error *err);
int kp_handle_group_fetch(struct kp_server *s, struct kp_slot *slot,
			  const struct kp_request *req, struct kp_error *err);
int kp_handle_group_list(struct kp_server *s, struct kp_slot *slot,
			 const struct kp_request *req, struct kp_error *err);
int kp_handle_group_delete(struct kp_server *s, struct kp_slot *slot,
			   const struct kp_request *req, struct kp_error *err);

/* Processor and view operations (handle_proc.c). */
int kp_handle_proc_create(struct kp_server *s, struct kp_slot *slot,
			  const struct kp_request *req, struct kp_error *err);
int kp_handle_proc_list(struct kp_server *s, struct kp_slot *slot,
			const struct kp_request *req, struct kp_error *err);
int kp_handle_proc_status(struct kp_server *s, struct kp_slot *slot,
			  const struct kp_request *req, struct kp_error *err);
int kp_handle_proc_pause(struct kp_server *s, struct kp_slot *slot,
			 const struct kp_request *req, struct kp_error *err);
int kp_handle_proc_resume(struct kp_server *s, struct kp_slot *slot,
			  const struct kp_request *req, struct kp_error *err);
int kp_handle_proc_delete(struct kp_server *s, struct kp_slot *slot,
			  const struct kp_request *req, struct kp_error *err);
int kp_handle_proc_reload(struct kp_server *s, struct kp_slot *slot,
			  const struct kp_request *req, struct kp_error *err);
int kp_handle_proc_replay(struct kp_server *s, struct kp_slot *slot,
			  const struct kp_request *req, struct kp_error *err);
int kp_handle_proc_rollback(struct kp_server *s, struct kp_slot *slot,
			    const struct kp_request *req, struct kp_error *err);
int kp_handle_proc_versions(struct kp_server *s, struct kp_slot *slot,
			    const struct kp_request *req, struct kp_error *err);
int kp_handle_proc_gc(struct kp_server *s, struct kp_slot *slot,
		      const struct kp_request *req, struct kp_error *err);
int kp_handle_proc_reset(struct kp_server *s, struct kp_slot *slot,
			 const struct kp_request *req, struct kp_error *err);
int kp_handle_proc_verify(struct kp_server *s, struct kp_slot *slot,
			  const struct kp_request *req, struct kp_error *err);
int kp_handle_view_get(struct kp_server *s, struct kp_slot *slot,
		       const struct kp_request *req, struct kp_error *err);
int kp_handle_view_scan(struct kp_server *s, struct kp_slot *slot,
			const struct kp_request *req, struct kp_error *err);

/*
 * Pipelines (handle_pipeline.c): proc_graph; proc_rollback, which with
 * `cascade` rolls the chain back and otherwise is kp_handle_proc_rollback;
 * and proc_replay with `cascade` (its fields read by the caller).
 */
int kp_handle_proc_graph(struct kp_server *s, struct kp_slot *slot,
			 const struct kp_request *req, struct kp_error *err);
int kp_handle_proc_rollback_any(struct kp_server *s, struct kp_slot *slot,
				const struct kp_request *req,
				struct kp_error *err);
int kp_handle_replay_cascade(struct kp_slot *slot, struct kp_proc *p,
			     const char *file, enum kp_proc_from from,
			     int64_t value, uint64_t rate,
			     struct kp_error *err);

/*
 * Looks up the request's "topic" field and "partition" (default 0).
 * Returns 0 with *tp, or UNKNOWN_TOPIC / UNKNOWN_PARTITION / BAD_REQUEST.
 */
int kp_handler_partition(struct kp_server *s, const struct kp_request *req,
			 struct kp_topic_partition **tp, struct kp_error *err);

/* Looks up the request's required "topic" field. */
int kp_handler_topic(struct kp_server *s, const struct kp_request *req,
		     struct kp_topic **t, struct kp_error *err);

/* Packs a topic description map (PROTOCOL.md, topic_describe). */
void kp_handler_pack_topic(struct kp_response *r, struct kp_topic *t);

/* Writes an ok response with no result fields into slot. */
int kp_handler_ok(struct kp_slot *slot);

#endif
