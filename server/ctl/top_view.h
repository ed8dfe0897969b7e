/*
 * top_view.h - what `kappactl top` shows, computed from two samples of the
 * server: per topic its end offsets and append rate, per processor its
 * version, state, processing rate, lag and replay progress; as a JSON
 * snapshot and as a text table.
 *
 * Pure: samples come in as JSON (the protocol's topic descriptions and
 * processor statuses) with the time they were taken, so every figure is
 * unit-tested without a server or a clock.
 */
#ifndef KP_CTL_TOP_VIEW_H
#define KP_CTL_TOP_VIEW_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* One sample of the server. */
struct kp_ctl_top_sample {
	json_t *topics;  /* owned: array of topic_describe "topic" maps, each
			    with partition_stats */
	json_t *procs;   /* owned: array of proc_list statuses */
	uint64_t at_ms;  /* when it was taken, monotonic ms */
};

/* Frees what the sample owns and empties it (safe on an empty one). */
void kp_ctl_top_sample_destroy(struct kp_ctl_top_sample *s);

/*
 * The snapshot of cur, rates measured against prev (NULL, or taken at the
 * same time: rates are null). A new reference, NULL only when out of
 * memory:
 *   {"topics":[{"name","partitions","end_offsets":[N,...],
 *               "append_rate":R|null}],
 *    "processors":[{"name","version","state","records_processed",
 *                   "records_per_second":R|null,"lag",
 *                   "replay":null|{"version","state","records_done",
 *                   "records_to_go","records_per_second","eta_ms"}}]}
 * append_rate is records/s appended across partitions; a rate is null
 * without an earlier sample of the same topic (or processor version), or
 * when a counter went back (a topic recreated, a cut-over).
 */
json_t *kp_ctl_top_snapshot(const struct kp_ctl_top_sample *prev,
			    const struct kp_ctl_top_sample *cur);

/*
 * Writes the snapshot as a text table of lines at most width columns
 * (the replay column shrinks to fit), "-" for unknown rates. The first
 * line is title (printed as given).
 */
void kp_ctl_top_render(FILE *f, const json_t *snapshot, const char *title,
		       unsigned width);

#endif
