/*
 * wk_main.h - the entry of a processor's worker process (wk_main.c).
 */
#ifndef KP_WK_MAIN_H
#define KP_WK_MAIN_H

/* The descriptor of the socket to kappad in a worker process. */
#define KP_WORKER_FD 3

/* The first argument that makes kappad a worker. */
#define KP_WORKER_ARG "--worker"

/* The optional fifth argument: run under SCHED_IDLE (a replay's worker). */
#define KP_WORKER_IDLE_ARG "idle"

/*
 * Runs a worker: argv is {"kappad", "--worker", data_limit, parent_pid
 * [, "idle"]}, data_limit the RLIMIT_DATA in bytes (0: none), parent_pid
 * kappad's pid (kappad may itself be pid 1, in a container); with "idle"
 * the process puts itself under SCHED_IDLE before its threads start, so
 * that they all are. Returns the exit status
 * once kappad asked it to stop; exits at once when kappad is gone.
 */
int kp_worker_main(int argc, char **argv);

#endif
