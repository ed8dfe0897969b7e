/*
 * kpfault.c - an LD_PRELOAD shim for the regression tests: storage faults
 * for kappad on demand, steered by environment variables.
 *
 *   KP_FAULT_SYNC_FLAG=PATH   while PATH exists, fdatasync of a .log file
 *                             fails with EIO
 *   KP_FAULT_WRITE_FLAG=PATH  while PATH exists, pwrite to a .log file
 *                             fails with ENOSPC
 *   KP_FAULT_SYNC_DELAY_MS=N  every fdatasync first sleeps N ms (a slow disk)
 *   KP_FAULT_OPEN_RO_FLAG=PATH while PATH exists, an O_RDONLY open of a
 *                             .log file fails with EACCES (a worker process
 *                             that may not read the log)
 *
 * Built without sanitizers (tests/CMakeLists.txt); an ASan kappad preloading
 * it needs ASAN_OPTIONS=verify_asan_link_order=0.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int flag_set(const char *var)
{
	const char *path = getenv(var);

	return path != NULL && *path != '\0' && access(path, F_OK) == 0;
}

static int is_log(int fd)
{
	char link[64], target[4096];
	ssize_t n;
	size_t len;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return 0;
	target[n] = '\0';
	len = (size_t)n;
	return len > 4 && strcmp(target + len - 4, ".log") == 0;
}

int fdatasync(int fd)
{
	static int (*real)(int);
	const char *delay = getenv("KP_FAULT_SYNC_DELAY_MS");

	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	if (delay != NULL && atoi(delay) > 0)
		usleep((useconds_t)atoi(delay) * 1000);
	if (flag_set("KP_FAULT_SYNC_FLAG") && is_log(fd)) {
		errno = EIO;
		return -1;
	}
	return real(fd);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	static ssize_t (*real)(int, const void *, size_t, off_t);

	if (real == NULL)
		real = (ssize_t (*)(int, const void *, size_t, off_t))dlsym(
			RTLD_NEXT, "pwrite");
	if (flag_set("KP_FAULT_WRITE_FLAG") && is_log(fd)) {
		errno = ENOSPC;
		return -1;
	}
	return real(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	return pwrite(fd, buf, n, off);
}

static int refuse_open(const char *path, int flags)
{
	size_t len = strlen(path);

	return (flags & O_ACCMODE) == O_RDONLY && len > 4 &&
	       strcmp(path + len - 4, ".log") == 0 &&
	       flag_set("KP_FAULT_OPEN_RO_FLAG");
}

int open(const char *path, int flags, ...)
{
	static int (*real)(const char *, int, ...);
	mode_t mode = 0;
	va_list ap;

	if (real == NULL)
		real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
	if (flags & (O_CREAT | O_TMPFILE)) {
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	if (refuse_open(path, flags)) {
		errno = EACCES;
		return -1;
	}
	return real(path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	mode_t mode = 0;
	va_list ap;

	if (flags & (O_CREAT | O_TMPFILE)) {
		va_start(ap, flags);
		mode = (mode_t)va_arg(ap, int);
		va_end(ap);
	}
	return open(path, flags, mode);
}
