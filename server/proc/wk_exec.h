/*
 * wk_exec.h - what a processor's worker process does with kappad's
 * requests (wk_msg.h): it holds the version's code, instance and view, runs
 * jobs (init, batches, checkpoints, reloads) on its main thread
 * and answers view queries on its reader thread.
 *
 * This is the half of a version (proc_version.h) that runs processor code;
 * the other half, in kappad, reads the inputs, writes the outputs and
 * decides what runs when. Threads: kp_wx_job on the main thread only;
 * kp_wx_query and kp_wx_interrupt on the reader thread, any time.
 */
#ifndef KP_WK_EXEC_H
#define KP_WK_EXEC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "wk_input.h"
#include "proc_code.h"
#include "proc_instance.h"
#include "view.h"
#include "wk_msg.h"
#include "base/buf.h"

/* Asks kappad whether the processor may emit to topic: 0 or an error. */
typedef int (*kp_wx_claim_fn)(void *arg, const char *topic, size_t len);

struct kp_wx {
	char name[256];
	struct kp_proc_code *code;       /* referenced */
	struct kp_instance insts[2];     /* current and, in a reload, the next */
	struct kp_instance *inst;
	bool inst_started;
	_Atomic(struct kp_instance *) calling; /* inside a call, or NULL */
	struct kp_view *view;            /* owned; NULL until init */
	pthread_rwlock_t view_lock;      /* queries vs replacing view */
	pthread_mutex_t ready_lock;      /* a query waits for the first init */
	pthread_cond_t ready_cond;
	bool ready;                      /* the first init has opened the view
					    (or failed) */
	struct kp_buf config;            /* msgpack map */
	char **allowed;                  /* NULL: any output (open outputs) */
	uint32_t output_count;
	char **owned;                    /* open outputs: the owned ones */
	uint32_t owned_count;
	uint64_t memory_limit;
	uint32_t max_value_bytes;   /* records and state values (0: none) */
	char steps_path[4200];           /* "" when it has none */
	kp_wx_claim_fn claim;
	void *claim_arg;
	struct kp_wk_input input;        /* batch input read from the log */
};

/* Initialises x (no code, no view). */
void kp_wx_init(struct kp_wx *x);

/* Stops the instance, closes the view, frees everything. */
void kp_wx_destroy(struct kp_wx *x);

/*
 * Runs the job request r (KP_WM_INIT, _BATCH, _CHECKPOINT, _RELOAD) and
 * appends its KP_WM_RESULT frame (tag of r) to out.
 */
void kp_wx_job(struct kp_wx *x, struct kp_wm_reader *r, struct kp_buf *out);

/* Answers a KP_WM_GET / KP_WM_SCAN request into out (its tag). */
void kp_wx_query(struct kp_wx *x, struct kp_wm_reader *r, struct kp_buf *out);

/* Interrupts the call running, if any (time budget). */
void kp_wx_interrupt(struct kp_wx *x);

#endif
