/*
 * proc_version.h - one version of a processor running over the log: its
 * code, view, input cursors and physical output topics. Internal to the
 * processor runtime (proc.c, proc_verify.c).
 *
 * Versions are blue/green: a processor has one live version and may have a
 * building one (a replay) running beside it from an earlier position into
 * its own view and output topics, plus retired ones kept for rollback. A
 * version's runner reads input batches on the loop thread, runs them on a
 * worker (live first, replays in the background, optionally rate-limited),
 * writes its emits to its own physical outputs, and checkpoints its view
 * with its cursors (effectively once, see proc.h).
 *
 * Physical output names: version 1 writes to the logical names themselves;
 * version N >= 2 writes to "<logical>.v<N>". The dead-letter topic is one
 * more output, "<name>.dlq".
 */
#ifndef KP_PROC_VERSION_H
#define KP_PROC_VERSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "proc_checkpoint.h"
#include "proc_code.h"
#include "proc_def.h"
#include "proc_instance.h"
#include "proc_limits.h"
#include "proc_steps.h"
#include "view.h"
#include "base/buf.h"
#include "base/error.h"
#include "base/mp.h"
#include "log/batch.h"
#include "log/reader.h"
#include "log/topic.h"
#include "wire/proto.h"

struct kp_pipeline;
struct kp_proc;
struct kp_procs;
struct kp_topic_partition;
struct kp_slot;

/* What the version is to its processor. */
enum pv_role {
	PV_BUILDING,   /* a replay catching up beside the live version */
	PV_LIVE,       /* answers view queries; its outputs are the logical ones */
	PV_RETIRED,    /* stopped; kept on disk for rollback until gc */
	PV_SCRATCH     /* a verify run: outputs captured, nothing persisted */
};

/* How the version is doing. */
enum pv_state { PV_STARTING, PV_RUNNING, PV_PAUSED, PV_FAILED, PV_STOPPED };

/* A view's figures, as its worker process last reported them. */
struct pv_view_stats {
	uint64_t keys;
	uint64_t bytes;
	uint64_t cache_used;
	uint64_t disk_bytes;
	bool cache_full;
};

/* The next offset to process in one input partition. */
struct pv_cursor {
	char topic[201];       /* physical topic */
	uint32_t partition;
	uint64_t offset;
	uint64_t stop;         /* scratch runs: stop here (exclusive) */
	uint32_t moves_before; /* replay, verify: moves of this input in the
				  live version's steps to pass before they
				  are of the topic it reads (proc_order.c) */
	bool send_next;        /* its next batch is read here and sent: the
				  worker found the file changed or damaged */
};

/*
 * Outputs already written for an input partition: after a crash, outputs
 * of that input up to offset `upto` are in the log and not written again.
 */
struct pv_written {
	char topic[201];       /* physical input topic */
	uint32_t partition;
	uint64_t upto;         /* highest input offset with outputs written */
};

/*
 * An output partition, and what of it was written after the last
 * checkpoint (found by the outputs' provenance at recovery).
 */
struct pv_mark {
	char topic[201];       /* physical topic */
	uint32_t partition;
	uint64_t suppress;     /* records found after the checkpoint */
	struct pv_written *written; /* owned; per input partition */
	uint32_t written_count;
	uint64_t scan_from;    /* the checkpoint end `written` was found after */
};

/*
 * An output batch that its partition refused (a full disk, a failed fsync):
 * kept, in order, and appended again before the version runs anything else.
 */
struct pv_pending {
	struct pv_pending *next;
	char topic[201];       /* physical output topic */
	uint32_t partition;
	uint32_t count;        /* records in it */
	struct kp_buf batch;   /* the finished batch */
};

enum pv_job_kind { PV_JOB_INIT, PV_JOB_BATCH, PV_JOB_CHECKPOINT, PV_JOB_RELOAD };

struct pv_job {
	struct proc_version *v;
	enum pv_job_kind kind;
	int rc;                      /* init / checkpoint / reload result */
	struct kp_error err;
	bool write_checkpoint;       /* init: also write the first checkpoint */
	struct kp_checkpoint ckpt;   /* checkpoint (and init) jobs */
	struct kp_buf raw;           /* batch: input batches, when sent */
	bool from_file;              /* batch: the worker reads them itself */
	struct kp_read_span span;    /* batch: where, when from_file (its
					path borrowed until the job is sent) */
	uint8_t input_state;         /* batch: KP_WM_INPUT_* of the result */
	char input_error[KP_ERROR_MSG_MAX]; /* batch: why not READ */
	uint32_t cursor_index;       /* batch: which input */
	uint64_t start_offset;       /* batch: first offset to process */
	uint64_t stop_offset;        /* batch: do not process from here */
	uint64_t next_offset;        /* batch: after the last processed */
	uint64_t window_total;       /* batch: records in the error window
					before it (the version's) */
	uint64_t window_errors;      /* batch: failures among them */
	uint32_t window_min;         /* batch: error_window_min of the def */
	double max_error_rate;       /* batch: max_error_rate of the def */
	uint32_t processed;
	uint32_t failed;
	struct kp_buf dlq;           /* batch: dead letters */
	uint32_t dlq_count;
	bool interrupted;            /* a record hit the time budget */
	bool out_of_memory;          /* a record hit the memory budget */
	char last_error[KP_ERROR_MSG_MAX];
	struct kp_buf emits;         /* batch: what it emitted (proc_host.h) */
	uint32_t emit_count;
	struct kp_proc_code *new_code; /* reload: the code to switch to */
	bool record_step;            /* batch: append its step (proc_order.c) */
	int step_rc;                 /* batch: 0, or why the append failed */
	struct kp_step step_unwritten; /* batch: the step it could not append */
	struct kp_error err_ckpt;    /* checkpoint: why it failed */
	int64_t ckpt_ms;             /* checkpoint: how long the commit took */
};

struct proc_version {
	struct kp_proc *proc;        /* the processor it belongs to */
	struct kp_procs *owner;
	uint32_t number;             /* 1, 2, ... */
	enum pv_role role;
	enum pv_state state;
	char reason[KP_ERROR_MSG_MAX];
	char dir[4096];              /* <proc dir>/v<number> */
	char source[4096];           /* the file it was loaded from */
	char hash[17];               /* code hash */
	uint32_t revision;           /* the code's revision (numbered by the
					reload_done event's handler) */
	int64_t created_ms;
	uint64_t rate;               /* records/s for a replay; 0 = no limit */
	struct kp_pace pace;         /* the credit of its rate */
	uint32_t output_count;       /* logical outputs + the DLQ */
	char outputs[KP_PROC_MAX_TOPICS + 1][201]; /* physical names */
	const char *allowed[KP_PROC_MAX_TOPICS];   /* logical names for emit */
	struct kp_proc_code *code;   /* referenced */
	struct kp_instance insts[2]; /* current and, during a reload, the next */
	struct kp_instance *inst;    /* the current one, in insts */
	bool inst_started;
	struct kp_view *view;        /* owned */
	struct pv_cursor *cursors;   /* owned */
	uint32_t cursor_count;
	uint32_t rr;                 /* next input to look at */
	struct pv_mark *marks;       /* owned */
	uint32_t mark_count;
	bool busy;                   /* a job in flight */
	bool send_input;             /* its worker cannot read the log files:
					input batches are read and sent */
	struct kp_wk *wk;            /* its worker process while it runs
					(proc_worker.c); v->view is NULL then */
	bool wk_idle;                /* that worker runs under SCHED_IDLE (a
					replay's: live work goes first) */
	struct pv_view_stats vstats; /* its view, as the worker last said */
	int64_t job_started_ms;      /* monotonic: when the job was sent */
	int64_t rss_checked_ms;      /* monotonic: last memory sample */
	uint64_t rss_anon;           /* its worker's RssAnon, last sample */
	uint64_t rss_base;           /* its worker's RssAnon after init */
	uint64_t worker_failures;    /* worker processes that died or were
					killed */
	bool fail_commit;            /* failed: its last checkpoint is being
					written before its worker goes */
	bool restart_worker;         /* its worker was killed to pause it: a
					new one starts from the checkpoint */
	bool ckpt_waits_sync;        /* busy with a checkpoint job that is
					sent once the outputs it claims are
					on disk (kp_pv_tick) */
	char worker_failure[KP_ERROR_MSG_MAX]; /* the last one, or "" */
	bool free_when_idle;         /* its processor let go of it in a hook
					(a failed create): freed after it */
	bool retire_when_idle;       /* retire once the job returns */
	bool stop_when_idle;         /* retired: stop once its checkpoint is written */
	bool cut_when_idle;          /* replay: cut over once its checkpoint is written */
	struct pv_job job;
	struct kp_slot *slot;        /* a request answered when the job is done */
	uint64_t processed;
	uint64_t errors;
	uint64_t dead_lettered;
	uint64_t suppressed;         /* replayed outputs not written again */
	uint64_t emits_dropped;      /* emits whose topic no longer exists */
	uint64_t since_checkpoint;
	int64_t last_checkpoint_ms;
	int64_t checkpoint_cost_ms;  /* how long the last commit took */
	int64_t checkpointed_ms;     /* when the last one committed (epoch) */
	char checkpoint_error[KP_ERROR_MSG_MAX]; /* the last failed one, or "" */
	uint64_t checkpoint_failures; /* checkpoints that could not commit */
	char view_error[KP_ERROR_MSG_MAX]; /* its store would not open, or "" */
	uint64_t replay_total;       /* records to process when the replay began */
	uint64_t window_total;       /* records in the error window */
	uint64_t window_errors;      /* failures among them */
	char last_error[KP_ERROR_MSG_MAX];
	char reload_error[KP_ERROR_MSG_MAX]; /* last failed reload (watch) */
	uint64_t reloads_ok;         /* reloads that took effect */
	uint64_t reloads_failed;     /* reloads refused (old code kept) */
	int64_t interrupted_ms;      /* when the watchdog interrupted */
	struct kp_buf captured;      /* scratch: emits kept for verify */
	bool done;                   /* scratch: reached its stop offsets */
	bool committed;              /* scratch: its view was committed for
					the comparison */
	struct pv_pending *pending;  /* output batches not written yet, oldest
					first (owned); while any is left the
					version runs nothing and takes no
					checkpoint */
	struct pv_pending *pending_tail;
	char blocked[KP_ERROR_MSG_MAX]; /* why pending is not empty, or "" */
	uint64_t blocked_total;      /* times it was blocked by its outputs */
	bool step_pending;           /* step_unwritten must be appended before
					the pending outputs */
	struct kp_step step_unwritten;
	/* the order across input partitions (proc_order.c) */
	struct kp_steps_log steps;   /* its own steps file (several inputs) */
	uint64_t steps_done;         /* steps of that file the view reflects */
	struct kp_steps_queue own_steps; /* its steps past the checkpoint,
					    followed first (recovery) */
	struct kp_steps_queue follow; /* the live version's steps (replay,
					 verify) */
	char follow_path[4200];      /* their file, "" when none */
	uint64_t follow_next;        /* next record of it to read */
	bool order_ready;            /* follow_path was decided */
	bool following_own;          /* the batch follows own_steps */
};

/* A logical processor: its definition and its versions (proc.c). */
struct kp_proc {
	struct kp_procs *owner;
	struct kp_proc_def def;      /* persisted settings and version list */
	char dir[4096];              /* <data>/procs/<name> */
	struct proc_version *versions[KP_PROC_MAX_VERSIONS]; /* by age */
	uint32_t version_count;
	struct proc_version *live;   /* answers queries; may be NULL (failed) */
	struct proc_version *building; /* a replay in progress, or NULL */
	struct proc_version *scratch;  /* a verify in progress, or NULL */
	struct kp_slot *create_slot; /* answered when the first init ends */
	bool created[KP_PROC_MAX_TOPICS + 1]; /* outputs its create made */
	struct kp_slot *reload_slot; /* answered when the reload ends */
	struct kp_slot *rollback_slot; /* a rollback waiting for a busy
					  version (kp_proc_rollback) */
	uint32_t rollback_version;   /* its target (0: the default one) */
	uint32_t rollback_revision;
	int64_t rollback_deadline;   /* monotonic ms: then it is refused */
	struct kp_proc_code *reload_code; /* loaded, waiting for a batch end */
	char reload_source[KP_PROC_PATH_MAX]; /* the file being reloaded */
	uint32_t reload_revision;    /* a rollback's: the revision it goes back
					to (0: a reload, a new revision) */
	int pending;                 /* PENDING_* op waiting for live idle */
	enum kp_proc_from pending_from; /* its position */
	int64_t pending_value;
	bool pending_to_set;         /* verify: an explicit end time */
	int64_t pending_to;
	struct kp_slot *pending_slot; /* answered when the op is done */
	uint64_t reset_before[KP_PROC_MAX_TOPICS * 64]; /* plan of a reset */
	struct kp_view_snap *verify_snap; /* live view at verify start (owned);
					     NULL: the verify compares no
					     view */
	struct kp_view *verify_view; /* the store it reads, when kappad opened
					one for it (the live view is its
					worker's), or NULL */
	char watch_hash[17];         /* --watch: hash last seen of source */
	int64_t watch_checked_ms;    /* --watch: when last looked at */
	uint64_t replay_rate_rps;    /* smoothed records/s of the replay */
	uint64_t replay_last_processed; /* for the smoothing */
	int64_t replay_last_ms;
	bool deleting;               /* unlinked, being freed */
};

/* Operations that wait for the live version to be between batches. */
enum { PENDING_NONE, PENDING_RESET, PENDING_VERIFY };

/*
 * What a version tells its processor: the runner (this file's .c and
 * proc_output.c) sits below the processor level (proc.c) and reaches it
 * only through these, filled by kp_procs_open.
 */
struct kp_proc_events {
	/* A replay reached the tail of its inputs. */
	void (*caught_up)(struct proc_version *v);
	/* Its job returned (the version is between batches). */
	void (*idle)(struct proc_version *v);
	/* init / a reload's init finished: rc 0, or the error and message. */
	void (*init_done)(struct proc_version *v, int rc, const char *msg);
	void (*reload_done)(struct proc_version *v, int rc, const char *msg);
	/* The live version's error rate passed max_error_rate. */
	int (*pause)(struct kp_proc *p, const char *reason, struct kp_error *err);
	/* An emit named a topic that is not an output yet: 0 when it now is. */
	int (*open_output)(struct kp_proc *p, const char *name, size_t len);
};

/* All processors of a server (proc.c). */
struct kp_procs {
	struct kp_proc_events events; /* the processor level's (proc.c) */
	struct kp_store *store;      /* borrowed: the log */
	int64_t (*now_ms)(void);     /* the wall clock, epoch ms */
	struct kp_topic_config topic_defaults; /* for topics it creates */
	size_t view_cache_bytes;     /* per view (0: view.h's default) */
	uint64_t view_max_bytes;     /* per view's store (0: the default) */
	uv_loop_t *loop;             /* where worker processes are watched */
	char dir[4096];              /* <data>/procs */
	char code_dir[4096];         /* <data>/code */
	struct kp_proc_code_policy code_policy; /* what code may load */
	uint32_t max_value_bytes;    /* emits and state values (0: none) */
	struct kp_proc **procs;      /* sorted by name */
	size_t count;
	size_t cap;
	bool quiesced;
	struct kp_pipeline *pipeline; /* owned: switch points of logical
					 topics, cascades (proc_pipeline.h) */
};


/*
 * Allocates a version of p numbered n with a fresh view; physical outputs
 * are derived from p's definition. Returns NULL when out of memory.
 */
struct proc_version *kp_pv_new(struct kp_proc *p, struct kp_procs *ps,
			       uint32_t n);

/* Frees a version (unless a written-off thread may still use it). */
void kp_pv_free(struct proc_version *v);

/*
 * Builds cursors (from a checkpoint when ck is not NULL, else from the
 * start position), and output marks (suppression from ck). Inputs are
 * resolved through aliases now and kept as physical names.
 */
int kp_pv_build(struct proc_version *v, const struct kp_checkpoint *ck,
		enum kp_proc_from from, int64_t from_ts, const uint64_t *offset);

/*
 * Fills ck with v's positions, counters, output marks and steps done.
 * Returns 0, -EAGAIN while v keeps outputs or a step it could not write
 * (a checkpoint then would pass them), or -ENOMEM.
 */
int kp_pv_capture_checkpoint(struct proc_version *v, struct kp_checkpoint *ck);

/*
 * Opens v's view store (proc_view.c) unless it is open: <v dir>/view, or
 * for a verify's scratch version <proc dir>/verify (made empty first).
 * On failure v->view_error says why and v keeps an empty view in memory,
 * which makes its start fail with that reason. Returns 0 or the error.
 */
int kp_pv_open_view(struct proc_version *v);

/* v's view figures: its worker's last report, or its store's. */
struct pv_view_stats kp_pv_view_stats(const struct proc_version *v);

/* Removes v's view store and opens an empty one (a reset of a damaged
 * store). Returns 0 or the error (in v->view_error). */
int kp_pv_recreate_view(struct proc_version *v);

/* The directory of v's view store. */
void kp_pv_view_dir(const struct proc_version *v, char *out, size_t cap);

/*
 * true when v should checkpoint now: a second since the last one (longer
 * when its commits are slow, so that they take at most a fifth of its
 * time), or its view's table is at its budget.
 */
bool kp_pv_checkpoint_due(struct proc_version *v, int64_t now_ms);

/*
 * true when v runs nothing until a checkpoint commits: the last one
 * failed and its view's table is full (status and metrics say "paused").
 */
bool kp_pv_checkpoint_blocked(const struct proc_version *v);

/* Loads v's checkpoint from its dir (1 when there is none). */
int kp_pv_load_checkpoint(struct proc_version *v, struct kp_checkpoint *ck,
			  struct kp_error *err);

/*
 * Puts v back where its last checkpoint left it (cursors, counters,
 * output marks; kept outputs dropped), as a restart of the server would:
 * its worker died and what it did since is gone. Opens v->view. Returns 0
 * or an error with err.
 */
int kp_pv_rewind(struct proc_version *v, struct kp_error *err);

/* Sets v's cursors to the positions in ck (matched by topic and partition). */
void kp_pv_set_cursors(struct proc_version *v, const struct kp_checkpoint *ck);

/* Submits the init job (the first checkpoint too when write_checkpoint). */
void kp_pv_start(struct proc_version *v, bool write_checkpoint);

/* Starts work if there is input to process and the version may run. */
void kp_pv_kick(struct proc_version *v);

/* true when v reads the physical partition (topic, partition). */
bool kp_pv_reads(const struct proc_version *v, const char *topic,
		 uint32_t partition);

/* Total lag of v's inputs, in records. */
uint64_t kp_pv_lag(struct proc_version *v);

/* Periodic: the watchdog, checkpoints and the replay rate limit's credit. */
void kp_pv_tick(struct proc_version *v, int64_t now_ms, int64_t mono_ms);

/*
 * Writes a checkpoint now, on the calling thread (shutdown, retirement,
 * cut-over). Returns 0 or -errno. v must not be busy.
 */
int kp_pv_checkpoint_now(struct proc_version *v);

/*
 * Starts writing a checkpoint on a worker (v must be idle). Returns true
 * when the job was submitted; the version's idle hook runs when it is done.
 */
bool kp_pv_checkpoint_async(struct proc_version *v);

/* Marks v failed: reason "what: detail" (logged). */
void kp_pv_set_failed(struct proc_version *v, const char *what,
		      const char *detail);

/* A job's result is in v->job: applies it (loop thread; proc_worker.c). */
void kp_pv_job_done(struct proc_version *v);

/*
 * v's worker process is gone for reason (it died or was killed): v fails
 * with that reason, goes back to its checkpoint and tells its processor
 * (a pending init or reload fails).
 */
void kp_pv_worker_lost(struct proc_version *v, const char *reason);

/* ---- its worker process (proc_worker.c) ------------------------------- */

/*
 * Starts v's worker process if it has none. A replay's (role building)
 * runs under SCHED_IDLE, so that live versions and the event loop go
 * first, when kappad may take it back to normal at the cut-over
 * (kp_wk_may_unidle). Returns 0 or an error.
 */
int kp_pv_worker_spawn(struct proc_version *v, struct kp_error *err);

/*
 * v became live (a cut-over): its worker, if under SCHED_IDLE, is put
 * back to normal scheduling (a warning in the log when that fails).
 */
void kp_pv_worker_to_foreground(struct proc_version *v);

/*
 * Lets v's worker go: asked to stop (its fini runs) and killed after
 * grace_ms (0: killed now). No event of it reaches v afterwards.
 */
void kp_pv_worker_release(struct proc_version *v, uint32_t grace_ms);

/* Sends v->job (its kind set, v busy) to v's worker. */
void kp_pv_worker_send(struct proc_version *v);

/* Periodic: the time budget of the running call and the memory limit. */
void kp_pv_worker_watch(struct proc_version *v, int64_t mono_now);

/*
 * Sends a view query frame (KP_WM_GET / _SCAN, tagged with tag from
 * kp_pv_worker_tag) and answers slot with the worker's response (a wait
 * on slot is held until then).
 */
void kp_pv_worker_query(struct proc_version *v, struct kp_slot *slot,
			const struct kp_buf *frame, uint32_t tag);
uint32_t kp_pv_worker_tag(struct proc_version *v);

/* The worker's process id, 0 when it has none. */
int kp_pv_worker_pid(const struct proc_version *v);

/* Stops v's instance and frees its view (retirement). v must not be busy. */
void kp_pv_stop(struct proc_version *v);

/* Submits a reload of v to code (a reference is taken). */
void kp_pv_reload(struct proc_version *v, struct kp_proc_code *code);

/*
 * The offset in tp where a position starts: earliest, latest, the first
 * record with ts >= value (TIME), or offset value kept within the retained
 * range (OFFSET).
 */
uint64_t kp_pv_position(struct kp_topic_partition *tp, enum kp_proc_from from,
			int64_t value);

/* The physical topic partition (topic, part), or NULL. */
struct kp_topic_partition *kp_pv_find_tp(struct kp_procs *ps,
					 const char *topic, uint32_t part);

/* The written end offset of a physical partition (0 when absent). */
uint64_t kp_pv_written_end(struct kp_procs *ps, const char *topic,
			   uint32_t part);

/*
 * Adds v's marks for the partitions of physical output topic; with a
 * checkpoint, notes which outputs were written after it (proc_output.c).
 */
int kp_pv_add_marks(struct proc_version *v, const char *topic,
		    const struct kp_checkpoint *ck);

/*
 * Whether v may emit to topic: yes to one of its outputs; for a processor
 * created without --output, to a name no topic has and that is not a
 * version's (X.vN), which becomes its output at once (created now, so
 * that a later claim of the name by anyone is refused). Returns 0 or
 * KP_ENOTOWNER (proc_output.c).
 */
int kp_pv_claim_topic(struct proc_version *v, const char *topic, size_t len);

/* ---- the order across input partitions (proc_order.c) --------------- */

/*
 * At build: the version's own steps past the checkpoint ck (NULL: none),
 * to follow before anything else. Returns 0 or -ENOMEM.
 */
int kp_pv_order_open(struct proc_version *v, const struct kp_checkpoint *ck);

/*
 * The step to follow next: true with the cursor index and the offset to
 * stop at; false when v chooses freely.
 */
bool kp_pv_order_next(struct proc_version *v, uint32_t *index,
		      uint64_t *stop);

/*
 * For a replay or a verify's scratch v: decides, once, whether v follows
 * the live version's steps, and reads those it has. true when an input of
 * v starts before the point where the live version followed it onto the
 * physical topic v reads (what the live version read up to there was
 * another topic): *index is the first such input, *at that point.
 */
bool kp_pv_order_choose(struct proc_version *v, uint32_t *index,
			uint64_t *at);

/*
 * Cursor index of v follows its input to offset `at` of version number's
 * physical topic (proc_pipeline.c, loop thread, v between batches): the
 * move is recorded first. Returns 0 (move it now), -EAGAIN while v has
 * recorded steps of its own to follow first (they include this move when
 * it was made before a crash: it is taken again from there), or -errno
 * when it cannot be recorded (move it later).
 */
int kp_pv_order_move(struct proc_version *v, uint32_t index, uint32_t number,
		     uint64_t at);

/* Drops the step kp_pv_order_next gave when its records are gone. */
void kp_pv_order_skip(struct proc_version *v);

/* Before a batch job is submitted (loop): whether it records its step. */
void kp_pv_order_prepare(struct proc_version *v, struct pv_job *job);

/* At the end of a batch job (worker): appends its step if it records it. */
void kp_pv_order_record(struct proc_version *v, struct pv_job *job);

/* After a batch (loop, cursor moved): counts the steps now done. */
void kp_pv_order_done(struct proc_version *v, struct pv_job *job);

/* Appends a step a batch could not append (loop, v idle). 0 or -errno. */
int kp_pv_order_write_unwritten(struct proc_version *v,
				const struct kp_step *s);

/* Closes the steps file and frees the queues. */
void kp_pv_order_close(struct proc_version *v);

/*
 * An in-place reset rewound v: its recorded order starts again (the steps
 * file is removed; the checkpoint written next says 0 steps).
 */
void kp_pv_order_reset(struct proc_version *v);

/*
 * Appends what v keeps for a refused write, oldest first: a step it could
 * not record, then its output batches; stops at the first refusal (loop
 * thread; proc_output.c). Returns true when none is left (v may run).
 */
bool kp_pv_retry_pending(struct proc_version *v, int64_t now_ms);

/* Ends a verify's snapshot of the live view and closes its store. */
void kp_proc_verify_drop_snapshot(struct kp_proc *p);

/* Frees the pending batches of v (the version is going away). */
void kp_pv_drop_pending(struct proc_version *v);

/*
 * Writes a finished batch job's emits and dead letters to v's outputs
 * (or captures them for a verify run) and clears them (proc_output.c).
 */
void kp_pv_write_outputs(struct proc_version *v, struct pv_job *job);

/* Where an output record came from (its provenance headers). */
struct kp_provenance {
	struct kp_mp_view topic;   /* input topic (borrowed from the record) */
	uint32_t partition;
	uint64_t offset;
};

/*
 * Visits the records of output partition tp from offset `from` on that
 * version v wrote, with their provenance, until visit returns non-zero
 * (returned). Loop thread.
 */
int kp_pv_scan_outputs(struct proc_version *v, struct kp_topic_partition *tp,
		       uint64_t from,
		       int (*visit)(void *arg, const struct kp_record *rec,
				    const struct kp_provenance *prov),
		       void *arg);

/* The name of a role and a state. */
const char *kp_pv_role_name(enum pv_role role);
const char *kp_pv_state_name(enum pv_state state);

/* Packs {topic, partition, offset, end_offset, lag} per input. */
uint64_t kp_pv_pack_inputs(struct proc_version *v, struct kp_response *r);

/* Packs the version's entry of proc_versions. */
void kp_pv_pack(struct proc_version *v, struct kp_response *r);

/* The physical name of output i (logical name) for version number n. */
void kp_pv_physical_name(const char *logical, uint32_t n, char *out,
			 size_t cap);

/*
 * Removes the copies in ps->code_dir whose code no version of any
 * processor of ps runs (proc_code_gc.c). A processor being freed must be
 * out of ps first.
 */
void kp_procs_gc_code(struct kp_procs *ps);

#endif
