/*
 * run_input.h - what `kappactl run --input` reads (cmd_run.c): the shape
 * of a line and the parts of a record line. Pure functions over parsed
 * JSON; no I/O, no processor.
 *
 * A line is one of
 *  - a view line: an object whose only member is "view" (the last line
 *    `kappactl run --view` prints);
 *  - a record: an object with members "topic" and "value" and none but
 *    topic, partition, offset, ts, key, value, provenance (what run and
 *    `kappactl consume` print);
 *  - a value: anything else.
 * --input-format auto decides from the first line that is not a view line
 * (records when it is a record, else values); see kp_ctl_run_rec_parse
 * for how a record line becomes a record.
 */
#ifndef KP_CTL_RUN_INPUT_H
#define KP_CTL_RUN_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/error.h"

/* The shape of a line (above). */
enum kp_ctl_run_shape {
	KP_CTL_RUN_VALUE,    /* a bare value */
	KP_CTL_RUN_RECORD,   /* a record as run and consume print it */
	KP_CTL_RUN_VIEW,     /* run --view's {"view":...} line */
};

/* The shape of the parsed line v. */
enum kp_ctl_run_shape kp_ctl_run_shape_of(const json_t *v);

/* The parts of a record line; pointers borrow from the line's JSON. */
struct kp_ctl_run_rec {
	const char *topic;     /* "topic", NULL when absent */
	int has_partition;     /* "partition" was given */
	uint32_t partition;    /* its value */
	int has_offset;        /* "offset" was given */
	uint64_t offset;       /* its value */
	int has_ts;            /* "ts" was given */
	int64_t ts;            /* its value: epoch ms */
	char *key;             /* the key's bytes, kp_malloc'd; NULL: none */
	size_t key_len;        /* bytes at key */
	const json_t *value;   /* "value" */
};

/*
 * Reads the record line v into r (which the caller destroys): an object
 * with "value" and optionally "topic" (a string), "partition" (0..2^32-1),
 * "offset" (a non-negative integer), "ts" (epoch ms, or an RFC 3339
 * string) and "key" (null: none; a string: its bytes, but "base64:B" is
 * the bytes B decodes to when they are not UTF-8, as consume prints such
 * a key; another value: its JSON text); other members are ignored, and
 * a member that is null counts as absent.
 * Returns 0, or -EINVAL with err saying which member is wrong (-ENOMEM
 * when out of memory).
 */
int kp_ctl_run_rec_parse(const json_t *v, struct kp_ctl_run_rec *r,
			 struct kp_error *err);

/* Frees what r holds (the key); r may be zeroed or parsed. */
void kp_ctl_run_rec_destroy(struct kp_ctl_run_rec *r);

/*
 * Decodes the standard base64 (with '=' padding, length a multiple of 4)
 * of the len bytes at s into out (room for len / 4 * 3 bytes); *outlen
 * gets the count. Returns 0 or -EINVAL when s is not such base64.
 */
int kp_ctl_base64_decode(const char *s, size_t len, char *out, size_t *outlen);

#endif
