/*
 * proc_def.h - a processor's definition: what to run, on what, with which
 * settings. Persisted as <data>/procs/<name>/proc.def (one msgpack map,
 * written tmp + fsync + rename), so processors survive restarts.
 */
#ifndef KP_PROC_DEF_H
#define KP_PROC_DEF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"

#define KP_PROC_MAX_TOPICS 32

/* Where a new processor starts reading its inputs. */
enum kp_proc_from { KP_FROM_EARLIEST, KP_FROM_LATEST, KP_FROM_TIME };

struct kp_proc_def {
	char name[201];                 /* a topic-style name */
	char source[4096];              /* the file as given (absolute) */
	char code[4096];                /* the content-addressed copy it runs */
	char hash[17];                  /* code hash */
	uint32_t version;               /* 1, then +1 per code change */
	uint32_t input_count;
	char inputs[KP_PROC_MAX_TOPICS][201];
	uint32_t output_count;
	char outputs[KP_PROC_MAX_TOPICS][201];
	enum kp_proc_from from;
	int64_t from_ts;                /* with KP_FROM_TIME */
	struct kp_buf config;           /* msgpack map (owned) */
	bool paused;                    /* paused by an operator or errors */
	char pause_reason[256];         /* why, when paused */
	double max_error_rate;          /* pause past this fraction, 0..1 */
	uint32_t time_budget_ms;        /* no progress this long: stopped */
	uint64_t memory_limit;          /* bytes, 0 = none */
	int64_t created_ms;             /* wall clock at creation */
};

/* Initialises def with defaults (empty config map). */
void kp_proc_def_init(struct kp_proc_def *def);

/* Frees def's buffers. */
void kp_proc_def_destroy(struct kp_proc_def *def);

/* Writes def to dir/proc.def atomically. Returns 0 or -errno. */
int kp_proc_def_save(const struct kp_proc_def *def, const char *dir);

/* Reads dir/proc.def into def (initialised). Returns 0 or an error. */
int kp_proc_def_load(struct kp_proc_def *def, const char *dir,
		     struct kp_error *err);

/* The name of the processor's dead-letter topic: "<name>.dlq". */
void kp_proc_def_dlq(const struct kp_proc_def *def, char *out, size_t cap);

#endif
