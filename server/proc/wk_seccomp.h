/*
 * wk_seccomp.h - the system calls a worker process may not make
 * (wk_seccomp.c): a seccomp filter installed before any processor code
 * runs, so that a native plugin (or anything that escapes the Lua
 * sandbox) cannot start programs, open network connections, signal other
 * processes (kappad among them) or change the system.
 */
#ifndef KP_WK_SECCOMP_H
#define KP_WK_SECCOMP_H

/*
 * Installs the filter for the calling process and every thread it starts
 * afterwards: execve, fork, sockets, ptrace, signals to other processes,
 * mounts, modules and the like fail with EPERM; a clone that is not a
 * thread fails too. Returns 0, or -errno when the kernel refuses it (the
 * worker then runs without it and says so). Not installed under
 * AddressSanitizer, whose leak check at exit needs ptrace and clone.
 */
int kp_wk_seccomp_install(void);

#endif
