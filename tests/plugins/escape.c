/*
 * escape.c - test processor that tries to leave its worker process: on
 * each record it opens a TCP socket, starts /bin/true, forks, and asks
 * whether it may signal its parent (kappad) with signal 0. It stores in
 * its view, per attempt, "blocked" when the call failed with EPERM, else
 * what happened (tests/integration/test_isolation.py).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kappa_processor.h"

static void note(struct kp_proc_ctx *ctx, const char *what, int rc)
{
	char value[64], text[48];
	size_t n;

	if (rc < 0 && errno == EPERM)
		snprintf(text, sizeof(text), "blocked");
	else
		snprintf(text, sizeof(text), "allowed (rc %d, errno %d)", rc,
			 rc < 0 ? errno : 0);
	n = strlen(text);
	value[0] = (char)(0xa0 | n);
	memcpy(value + 1, text, n);
	ctx->host->state_put(ctx->host_data, what, strlen(what), value, n + 1);
}

static int process(struct kp_proc_ctx *ctx, const struct kp_proc_record *rec,
		   char *err)
{
	char *const argv[] = { "true", NULL };
	char *const envp[] = { NULL };
	int fd, pid;

	(void)rec;
	(void)err;
	fd = socket(AF_INET, SOCK_STREAM, 0);
	note(ctx, "socket", fd);
	if (fd >= 0)
		close(fd);
	pid = fork();
	if (pid == 0) {
		execve("/bin/true", argv, envp);
		_exit(0);
	}
	note(ctx, "fork", pid);
	if (pid > 0)
		waitpid(pid, NULL, 0);
	note(ctx, "execve", execve("/bin/true-not-run", argv, envp) < 0 &&
				    errno == EPERM ? -1 : 0);
	note(ctx, "kill_parent", kill(getppid(), 0));
	return 0;
}

static const struct kp_processor descriptor = {
	.abi_version = KP_PROC_ABI_VERSION,
	.size = sizeof(struct kp_processor),
	.name = "escape",
	.process = process,
};

__attribute__((visibility("default")))
const struct kp_processor *kappa_processor(void);

const struct kp_processor *kappa_processor(void)
{
	return &descriptor;
}
