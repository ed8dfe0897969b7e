/*
 * proc_limits.h - the policies that hold a processor version back, apart
 * from the runner that applies them (proc_version.c): when its error rate
 * passes max_error_rate, and how many records a rate-limited replay may
 * process now. Pure: no clock is read (callers pass `now`), no I/O, so
 * they are unit-tested on numbers alone.
 */
#ifndef KP_PROC_LIMITS_H
#define KP_PROC_LIMITS_H

#include <stdbool.h>
#include <stdint.h>

/* Records per error window: it starts afresh past this many (or min). */
#define KP_LIMITS_ERROR_WINDOW 100

/* A rate-limited version holds at most this many ms of credit. */
#define KP_LIMITS_BURST_MS 100

/*
 * true when `errors` of the `total` records seen in the error window are
 * more than the fraction max (0..1), judged only once the window holds at
 * least min records; false without any error.
 */
bool kp_limits_error_rate_exceeded(uint64_t total, uint64_t errors,
				   uint32_t min, double max);

/* true when an error window of total records (min as above) is over. */
bool kp_limits_error_window_full(uint64_t total, uint32_t min);

/*
 * The credit of a replay's rate limit: `rate` records a second accrue, in
 * thousandths of a record, up to KP_LIMITS_BURST_MS worth (at least one
 * record), so that the records are spread over each second and a version
 * that waited does not make up for it in a burst. Zeroed: no credit yet.
 */
struct kp_pace {
	int64_t refill_ms;   /* when credit was last topped up (monotonic ms);
				0 = never */
	uint64_t credit;     /* records it may process now, in thousandths */
};

/*
 * Tops up pc for the time from its last top-up to now (monotonic ms) at
 * rate records/s; the first top-up gives one record. Nothing when rate is 0
 * (no limit).
 */
void kp_pace_refill(struct kp_pace *pc, uint64_t rate, int64_t now);

/* Whole records that may be processed now: UINT64_MAX when rate is 0. */
uint64_t kp_pace_allowance(const struct kp_pace *pc, uint64_t rate);

/* Takes `records` processed off the credit (down to 0). */
void kp_pace_spend(struct kp_pace *pc, uint64_t records);

#endif
