/*
 * wk_seccomp.c - a worker process's seccomp filter (wk_seccomp.h): a deny
 * list, since what the processor may do (allocate, map its view, read its
 * files, take locks, read clocks) is everything else.
 */
#include "wk_seccomp.h"

#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "base/sanitize.h"

#if defined(__x86_64__)
#define KP_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define KP_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#define NR_OFF offsetof(struct seccomp_data, nr)
#define ARCH_OFF offsetof(struct seccomp_data, arch)
#define ARG0_OFF offsetof(struct seccomp_data, args[0])

#define DENY(nr)                                                        \
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1),                \
	BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & 0xffff))

#if defined(KP_AUDIT_ARCH) && !defined(KP_UNDER_ASAN)
int kp_wk_seccomp_install(void)
{
	/* Own pid, for the signals a process may send itself. */
	const unsigned self = (unsigned)getpid();
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARCH_OFF),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, KP_AUDIT_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, NR_OFF),
		/* clone: threads only (glibc's pthread_create). */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 4),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG0_OFF),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_THREAD, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		/* clone3 hides its flags in memory: ENOSYS makes glibc use clone. */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
		/* kill / tgkill: only itself. */
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_kill, 1, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_tgkill, 0, 4),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG0_OFF),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, self, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		DENY(__NR_tkill),
		DENY(__NR_execve),
		DENY(__NR_execveat),
#ifdef __NR_fork
		DENY(__NR_fork),
		DENY(__NR_vfork),
#endif
		DENY(__NR_socket),
		DENY(__NR_socketpair),
		DENY(__NR_connect),
		DENY(__NR_bind),
		DENY(__NR_listen),
		DENY(__NR_accept),
		DENY(__NR_accept4),
		DENY(__NR_ptrace),
		DENY(__NR_process_vm_readv),
		DENY(__NR_process_vm_writev),
		DENY(__NR_mount),
		DENY(__NR_umount2),
		DENY(__NR_pivot_root),
		DENY(__NR_chroot),
		DENY(__NR_unshare),
		DENY(__NR_setns),
		DENY(__NR_reboot),
		DENY(__NR_kexec_load),
		DENY(__NR_init_module),
		DENY(__NR_finit_module),
		DENY(__NR_delete_module),
		DENY(__NR_bpf),
		DENY(__NR_perf_event_open),
		DENY(__NR_keyctl),
		DENY(__NR_add_key),
		DENY(__NR_request_key),
		DENY(__NR_userfaultfd),
		DENY(__NR_setuid),
		DENY(__NR_setgid),
		DENY(__NR_setreuid),
		DENY(__NR_setregid),
		DENY(__NR_setresuid),
		DENY(__NR_setresgid),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { (unsigned short)(sizeof(f) / sizeof(f[0])),
				   f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -errno;
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
		return -errno;
	return 0;
}
#else
int kp_wk_seccomp_install(void)
{
	return 0;   /* AddressSanitizer, or an architecture it does not know */
}
#endif
