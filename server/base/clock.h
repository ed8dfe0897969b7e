/*
 * clock.h - the server's clocks. Only the wiring (net/, obs/, kappad.c)
 * reads them; lower layers are handed a clock function or take `now` as an
 * argument, so that their policies are tested without a fake clock.
 */
#ifndef KP_CLOCK_H
#define KP_CLOCK_H

#include <stdint.h>

/* Milliseconds since the epoch: the clock that stamps records (ts). */
int64_t kp_clock_now_ms(void);

/* Milliseconds of a monotonic clock (intervals, deadlines). */
int64_t kp_clock_mono_ms(void);

#endif
