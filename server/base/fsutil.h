/*
 * fsutil.h - small file-system helpers shared by the modules that keep
 * state in files: whole-file reads, atomic replacement, directory fsync,
 * tree removal. Blocking; callers choose the thread.
 */
#ifndef KP_FSUTIL_H
#define KP_FSUTIL_H

#include <stddef.h>

#include "buf.h"

/* Appends the whole file at path to out. Returns 0 or -errno. */
int kp_file_read(const char *path, struct kp_buf *out);

/* Writes all len bytes to fd, retrying short writes. Returns 0 or -errno. */
int kp_file_write_all(int fd, const char *data, size_t len);

/*
 * Replaces path with data atomically: a tmp file, fsync, rename, fsync of
 * the directory. Returns 0 or -errno (path unchanged then).
 */
int kp_file_write_atomic(const char *path, const char *data, size_t len);

/* fsyncs the directory at path. Returns 0 or -errno. */
int kp_file_fsync_dir(const char *path);

/* Removes a directory tree (absent is fine). Returns 0 or -errno. */
int kp_file_remove_tree(const char *path);

#endif
