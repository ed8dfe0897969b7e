/*
 * slot.c - pending responses: references, readiness, error answers.
 */
#include "slot.h"

#include "proto.h"
#include "base/alloc.h"

void kp_slot_ref(struct kp_slot *slot)
{
	slot->refs++;
}

void kp_slot_unref(struct kp_slot *slot)
{
	if (--slot->refs > 0)
		return;
	kp_free(slot->logical);
	kp_buf_destroy(&slot->resp);
	kp_free(slot);
}

void kp_slot_set_error(struct kp_slot *slot, int code, const char *message)
{
	kp_buf_reset(&slot->resp);
	kp_response_error(&slot->resp, slot->id, code, message);
}

void kp_slot_ready(struct kp_slot *slot)
{
	slot->ready = true;
	if (slot->conn != NULL && slot->on_ready != NULL)
		slot->on_ready(slot);
}
