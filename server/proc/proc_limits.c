/*
 * proc_limits.c - the error-rate and replay-rate policies; see
 * proc_limits.h.
 */
#include "proc_limits.h"

bool kp_limits_error_rate_exceeded(uint64_t total, uint64_t errors,
				   uint32_t min, double max)
{
	if (total == 0 || total < min || errors == 0)
		return false;
	return (double)errors / (double)total > max;
}

bool kp_limits_error_window_full(uint64_t total, uint32_t min)
{
	return total >= KP_LIMITS_ERROR_WINDOW && total >= min;
}

static uint64_t credit_max(uint64_t rate)
{
	uint64_t max = rate > UINT64_MAX / KP_LIMITS_BURST_MS
			       ? UINT64_MAX
			       : rate * KP_LIMITS_BURST_MS;

	return max < 1000 ? 1000 : max;
}

void kp_pace_refill(struct kp_pace *pc, uint64_t rate, int64_t now)
{
	uint64_t max, dt, add;

	if (rate == 0)
		return;
	max = credit_max(rate);
	if (pc->refill_ms == 0 || now < pc->refill_ms) {
		pc->refill_ms = now;
		if (pc->credit < 1000)
			pc->credit = 1000;
		return;
	}
	dt = (uint64_t)(now - pc->refill_ms);
	add = dt > 0 && rate > UINT64_MAX / dt ? UINT64_MAX : rate * dt;
	if (pc->credit > max)
		pc->credit = max;
	pc->credit = add > max - pc->credit ? max : pc->credit + add;
	pc->refill_ms = now;
}

uint64_t kp_pace_allowance(const struct kp_pace *pc, uint64_t rate)
{
	return rate == 0 ? UINT64_MAX : pc->credit / 1000;
}

void kp_pace_spend(struct kp_pace *pc, uint64_t records)
{
	uint64_t cost = records > UINT64_MAX / 1000 ? UINT64_MAX
						    : records * 1000;

	pc->credit = cost > pc->credit ? 0 : pc->credit - cost;
}
