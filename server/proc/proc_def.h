/*
 * proc_def.h - a processor's definition: what to run, on what, with which
 * settings, and its versions. Persisted as <data>/procs/<name>/proc.def
 * (one msgpack map, written tmp + fsync + rename), so processors, replays
 * in progress and retired versions survive restarts.
 *
 * Each version keeps its revisions: its first code and every hot reload
 * (hash, file, content-addressed copy, time, and the revision that was live
 * before it), so that any of them can be listed and run again.
 */
#ifndef KP_PROC_DEF_H
#define KP_PROC_DEF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/error.h"
#include "log/topic.h"

#define KP_PROC_MAX_TOPICS 32

/*
 * The longest processor name and output topic name: every version N's
 * physical topics, NAME.dlq.vN and OUTPUT.vN (N up to 2^32-1, ten
 * digits), must be topic names (1..KP_NAME_MAX, log/topic.h), else they
 * would be cut short and two versions would share one.
 */
#define KP_PROC_NAME_MAX (KP_NAME_MAX - (int)sizeof(".dlq.v4294967295") + 1)
#define KP_PROC_OUTPUT_MAX (KP_NAME_MAX - (int)sizeof(".v4294967295") + 1)
#define KP_PROC_MAX_VERSIONS 16
#define KP_PROC_PATH_MAX 1024

/* Revisions kept per version; past it the oldest (never the live one) go. */
#define KP_PROC_MAX_REVISIONS 256

/* Records seen in the error window before max_error_rate is judged. */
#define KP_PROC_ERROR_WINDOW_MIN 20

/* Where a version starts reading its inputs. */
enum kp_proc_from { KP_FROM_EARLIEST, KP_FROM_LATEST, KP_FROM_TIME,
		    KP_FROM_OFFSET };

/* One revision of a version's code: its first load, or a hot reload. */
struct kp_proc_def_revision {
	uint32_t revision;              /* 1, 2, ... within its version */
	uint32_t previous;              /* the revision live when it was
					   loaded; 0 for the first */
	char hash[17];                  /* code hash */
	char source[KP_PROC_PATH_MAX];  /* the file it was loaded from */
	char code[KP_PROC_PATH_MAX];    /* the content-addressed copy */
	int64_t created_ms;             /* when it was loaded */
};

/* One version as persisted. */
struct kp_proc_def_version {
	uint32_t number;                /* 1, 2, ... */
	char role[12];                  /* "building", "live", "retired" */
	char source[KP_PROC_PATH_MAX];  /* the file of its current revision */
	char code[KP_PROC_PATH_MAX];    /* that revision's content-addressed
					   copy */
	char hash[17];                  /* that revision's code hash */
	uint32_t revision;              /* its current revision: the one it
					   runs (or ran last, retired) */
	int64_t created_ms;
	uint64_t rate;                  /* replay records/s, 0 = no limit */
	enum kp_proc_from from;         /* where it started */
	int64_t from_value;             /* ts or offset for TIME / OFFSET */
	uint64_t replay_total;          /* records to go when it started */
	uint32_t previous_version;      /* live when its replay began; 0 for
					   none or not recorded */
	struct kp_proc_def_revision *revisions; /* owned; ascending */
	uint32_t revision_count;
};

struct kp_proc_def {
	char name[201];                 /* a topic-style name */
	char source[KP_PROC_PATH_MAX];  /* the file of the live version */
	uint32_t input_count;
	char inputs[KP_PROC_MAX_TOPICS][201];  /* logical names */
	uint32_t output_count;
	char outputs[KP_PROC_MAX_TOPICS][201]; /* logical names */
	enum kp_proc_from from;         /* for the first version */
	int64_t from_ts;
	struct kp_buf config;           /* msgpack map (owned) */
	bool paused;                    /* paused by an operator or errors */
	char pause_reason[256];         /* why, when paused */
	bool watch;                     /* reload when the source changes */
	bool open_outputs;              /* created without outputs: emits to a
					   new topic make it an output */
	double max_error_rate;          /* pause past this fraction, 0..1 */
	uint32_t error_window_min;      /* ... judged once this many records
					   (>= 1) were seen in the window */
	uint32_t time_budget_ms;        /* no progress this long: stopped */
	uint64_t memory_limit;          /* bytes, 0 = none */
	int64_t created_ms;             /* wall clock at creation */
	uint32_t next_version;          /* number for the next version */
	uint32_t version_count;
	struct kp_proc_def_version versions[KP_PROC_MAX_VERSIONS];
};

/* Initialises def with defaults (empty config map). */
void kp_proc_def_init(struct kp_proc_def *def);

/* Frees def's buffers (and its versions' revisions). */
void kp_proc_def_destroy(struct kp_proc_def *def);

/* Writes def to dir/proc.def atomically. Returns 0 or -errno. */
int kp_proc_def_save(const struct kp_proc_def *def, const char *dir);

/* Reads dir/proc.def into def (initialised). Returns 0 or an error. */
int kp_proc_def_load(struct kp_proc_def *def, const char *dir,
		     struct kp_error *err);

/* The logical name of the processor's dead-letter topic: "<name>.dlq". */
void kp_proc_def_dlq(const struct kp_proc_def *def, char *out, size_t cap);

/*
 * Whether the len bytes at name are a version's topic name, BASE.vN (the
 * naming of kp_pv_physical_name: version N > 1 of output or dead-letter
 * topic BASE): returns BASE's length, and N in *n when n is not NULL (0
 * when the digits overflow 32 bits or start with a zero); 0 when name has
 * no ".v<digits>" suffix after a non-empty BASE.
 */
size_t kp_proc_version_base(const char *name, size_t len, uint32_t *n);

/* The persisted entry of version n, or NULL. */
struct kp_proc_def_version *kp_proc_def_version(struct kp_proc_def *def,
						uint32_t n);

/* Frees the revisions of dv (the entry itself is the caller's). */
void kp_proc_def_version_destroy(struct kp_proc_def_version *dv);

/* Revision n of dv, or NULL. The pointer lasts until the next note. */
struct kp_proc_def_revision *kp_proc_def_revision(
	struct kp_proc_def_version *dv, uint32_t n);

/*
 * Appends dv's current code (revision, hash, source, code) to its
 * revisions, loaded at created_ms over revision previous (0: none). At
 * KP_PROC_MAX_REVISIONS the oldest revision other than previous is dropped
 * first (a revision loaded over it then counts as loaded over what it was
 * loaded over). Returns 0 or -ENOMEM.
 */
int kp_proc_def_revision_note(struct kp_proc_def_version *dv,
			      uint32_t previous, int64_t created_ms);

#endif
