/*
 * proc_verify.h - determinism verification: replay a range of a
 * processor's input through its live code in a scratch version and compare
 * what it emits (matched by provenance) and the view it builds with what
 * the live version produced. Internal to the processor runtime.
 */
#ifndef KP_PROC_VERIFY_H
#define KP_PROC_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "proc_def.h"

struct kp_proc;
struct kp_slot;
struct proc_version;

/*
 * Starts verifying p's live version (which must be between batches) from
 * (from, value) up to its current input positions, or to the first record
 * with ts >= to_ts when to_set. *pslot is answered when it is done (or at
 * once on failure).
 */
void kp_proc_verify_start(struct kp_proc *p, enum kp_proc_from from,
			  int64_t value, bool to_set, int64_t to_ts,
			  struct kp_slot **pslot);

/*
 * Ends a verify whose scratch version failed (its replay stopped, its
 * worker died): answers p's pending verify with why, frees the scratch.
 */
void kp_proc_verify_abort(struct kp_proc *p, struct proc_version *scratch);

/* Compares the finished scratch version with the live one; answers *pslot. */
void kp_proc_verify_finish(struct kp_proc *p, struct proc_version *scratch,
			   struct kp_slot **pslot);

#endif
