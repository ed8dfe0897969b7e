/*
 * slot.h - a request's pending response.
 *
 * Every request read gets a slot; whoever answers it (a handler now, or
 * later the write path, the group saver or the processor runtime) writes
 * the whole response frame into resp and calls kp_slot_ready. Asynchronous
 * answers are counted in waits: the slot is made ready when the last wait
 * completes. A slot is reference-counted (the connection's queue holds one
 * reference, each wait one more), so a connection can close while its
 * requests still wait on the disk.
 *
 * The transport that created the slot (net/conn.c) is told of readiness
 * through on_ready; nothing here knows sockets.
 */
#ifndef KP_SLOT_H
#define KP_SLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

struct kp_conn;
struct kp_slot;

/* Called by kp_slot_ready while the slot's connection is there. */
typedef void (*kp_slot_ready_fn)(struct kp_slot *slot);

struct kp_slot {
	struct kp_slot *next;    /* next in the connection's queue */
	struct kp_conn *conn;    /* NULL once the connection is gone */
	kp_slot_ready_fn on_ready; /* the connection's; called with conn set */
	struct kp_buf resp;      /* the whole response frame, once ready */
	uint64_t id;             /* the request's id */
	size_t cost;             /* bytes counted against the connection */
	int refs;                /* queue + waits */
	int waits;               /* waits still outstanding */
	bool ready;              /* resp holds the final response */
	size_t resp_cost;        /* response bytes counted while queued */
	uint32_t generation;     /* fetch of a logical topic: its version */
	char *logical;           /* that topic's name (owned), else NULL */
};

/*
 * Marks slot ready with the response now in slot->resp and tells its
 * connection. Safe on a slot whose connection is gone (it is just dropped).
 */
void kp_slot_ready(struct kp_slot *slot);

/* Takes / drops a reference on a slot (drop frees at zero). */
void kp_slot_ref(struct kp_slot *slot);
void kp_slot_unref(struct kp_slot *slot);

/* Replaces the response of a waiting slot with an error frame. */
void kp_slot_set_error(struct kp_slot *slot, int code, const char *message);

#endif
