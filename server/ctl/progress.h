/*
 * progress.h - replay progress for `kappactl proc replay --wait` and
 * `kappactl top`: read from a processor status (docs/PROTOCOL.md,
 * proc_status and its "replay" field), judged, and formatted as a terminal
 * bar or a JSON line.
 *
 * Pure: no I/O and no clock, so that every format is unit-tested.
 */
#ifndef KP_CTL_PROGRESS_H
#define KP_CTL_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <msgpack.h>

/* The progress of one replay, as a status's "replay" field gives it. */
struct kp_ctl_progress {
	uint64_t version;  /* the version being built */
	char state[16];    /* its state: "starting", "running", "failed", ... */
	char reason[512];  /* why it failed; "" when no reason was given */
	uint64_t done;     /* records it has processed */
	uint64_t to_go;    /* records left until it has caught up */
	uint64_t rps;      /* records per second lately; 0 when not known */
	uint64_t eta_ms;   /* estimated ms until caught up; valid when rps > 0 */
	uint64_t rate_limit; /* the replay's --rate, records/s; 0 = none */
};

/*
 * Reads the replay map (a status's "replay" field) into p. A rate above
 * the replay's rate_limit is shown as the limit, and the ETA computed from
 * it (a server measuring over a burst overstated it). Returns 0, 1 when
 * replay is NULL or nil (no replay runs), or -EINVAL when it is not a map
 * with a version.
 */
int kp_ctl_progress_read(const msgpack_object *replay,
			 struct kp_ctl_progress *p);

/* What a status says about the replay to version `target`. */
enum kp_ctl_replay_outcome {
	KP_CTL_REPLAY_RUNNING,   /* still building; p holds its progress */
	KP_CTL_REPLAY_CUT_OVER,  /* target is live and no replay runs */
	KP_CTL_REPLAY_FAILED,    /* target failed; p holds its reason */
	KP_CTL_REPLAY_LOST,      /* neither: gone (gc, rollback) or replaced */
};

/*
 * Judges the status map (proc_status's "proc") for the replay to version
 * target; fills p when a replay runs. *live gets the live version (0 when
 * the status lacks it).
 */
enum kp_ctl_replay_outcome kp_ctl_replay_judge(const msgpack_object *status,
					       uint64_t target,
					       struct kp_ctl_progress *p,
					       uint64_t *live);

/*
 * The progress as a JSON line's object: {"version","records_done",
 * "records_to_go","records_per_second","eta_ms"}, eta_ms null while the
 * rate is not known and records remain. NULL only when out of memory.
 */
json_t *kp_ctl_progress_json(const struct kp_ctl_progress *p);

/*
 * Writes a duration as the terminal shows it: "0:07", "4:05", "1:02:03"
 * (hours unbounded), into buf (len bytes, NUL-terminated).
 */
void kp_ctl_duration_format(uint64_t ms, char *buf, size_t len);

/*
 * Writes the progress as one terminal line of at most width columns,
 * without \r or \n:
 *   v2 [########............]  40%   4000/10000 records    1234 rec/s  ETA 0:05
 * (records done padded to the width of the total, the rate to 6 columns and
 * the ETA to 5, so the bar keeps its size while it fills; "ETA ?" while the
 * rate is not known; the bar shrinks to fit width and is left out below 10
 * columns of bar). buf gets len bytes, NUL-terminated.
 * Returns the line's length.
 */
size_t kp_ctl_progress_bar(const struct kp_ctl_progress *p, unsigned width,
			   char *buf, size_t len);

#endif
