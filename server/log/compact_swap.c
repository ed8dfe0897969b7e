/*
 * compact_swap.c - the manifest of a compaction's swap, moving new
 * segments into place, and completing or undoing a swap at open
 * (compact_swap.h).
 *
 * Access pattern: a handful of renames, unlinks and directory fsyncs per
 * swap; at open one read of the manifest and one listing of the directory.
 */
#include "compact_swap.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/crc32c.h"
#include "base/fsutil.h"
#include "base/logging.h"

#define MANIFEST_MAGIC 0x5343504bu /* "KPCS" */
#define MANIFEST_VERSION 1u
#define MANIFEST_HEAD 12
#define MANIFEST_ENTRY 24

/* The log goes last: until then the old one stays whole. */
static const char *const exts[] = { ".index", ".timeindex", ".log" };

/* "<dir>[/<sub>]/<20-digit base><ext>" into out. */
static void segment_file(char *out, size_t cap, const char *dir,
			 const char *sub, uint64_t base, const char *ext)
{
	if (sub != NULL)
		snprintf(out, cap, "%s/%s/%020" PRIu64 "%s", dir, sub, base,
			 ext);
	else
		snprintf(out, cap, "%s/%020" PRIu64 "%s", dir, base, ext);
}

int kp_compact_move_into_place(const char *dir, uint64_t base)
{
	char from[4300], to[4300];

	for (size_t e = 0; e < 3; e++) {
		segment_file(from, sizeof(from), dir, KP_COMPACT_TMP_DIR, base,
			     exts[e]);
		segment_file(to, sizeof(to), dir, NULL, base, exts[e]);
		if (rename(from, to) != 0 && errno != ENOENT)
			return -errno;
	}
	return 0;
}

void kp_compact_remove_segment(const char *dir, uint64_t base)
{
	char path[4300];

	for (size_t e = 0; e < 3; e++) {
		segment_file(path, sizeof(path), dir, NULL, base, exts[e]);
		if (unlink(path) != 0 && errno != ENOENT)
			kp_log_warn("compact", "cannot delete %s: %s", path,
				    strerror(errno));
	}
}

int kp_compact_finish_dir(const char *dir)
{
	char path[4200];
	int rc = kp_file_fsync_dir(dir);

	if (rc != 0)
		return rc;
	snprintf(path, sizeof(path), "%s/%s", dir, KP_COMPACT_MANIFEST);
	if (unlink(path) != 0 && errno != ENOENT)
		return -errno;
	snprintf(path, sizeof(path), "%s/%s", dir, KP_COMPACT_TMP_DIR);
	kp_file_remove_tree(path);
	return kp_file_fsync_dir(dir);
}

/* ---- the manifest --------------------------------------------------------- */

int kp_compact_manifest_write(const char *dir,
			      const struct kp_compact_swap_entry *e, size_t n)
{
	size_t len = MANIFEST_HEAD + n * MANIFEST_ENTRY + 4;
	char path[4200];
	char *buf = kp_malloc(len), *p;
	int rc;

	if (buf == NULL)
		return -ENOMEM;
	kp_put_le32(buf, MANIFEST_MAGIC);
	kp_put_le32(buf + 4, MANIFEST_VERSION);
	kp_put_le32(buf + 8, (uint32_t)n);
	p = buf + MANIFEST_HEAD;
	for (size_t i = 0; i < n; i++, p += MANIFEST_ENTRY) {
		kp_put_le64(p, e[i].base);
		kp_put_le64(p + 8, e[i].end);
		kp_put_le64(p + 16, e[i].size);
	}
	kp_put_le32(p, kp_crc32c(0, buf, len - 4));
	snprintf(path, sizeof(path), "%s/%s", dir, KP_COMPACT_MANIFEST);
	rc = kp_file_write_atomic(path, buf, len);
	kp_free(buf);
	return rc;
}

/* Parses a manifest into *entries (kp_malloc'd). Returns 0 or KP_ECORRUPT. */
static int manifest_parse(const struct kp_buf *m,
			  struct kp_compact_swap_entry **entries, size_t *n)
{
	const char *p;
	size_t count;

	*entries = NULL;
	*n = 0;
	if (m->len < MANIFEST_HEAD + 4 ||
	    kp_get_le32(m->data) != MANIFEST_MAGIC ||
	    kp_get_le32(m->data + 4) != MANIFEST_VERSION)
		return KP_ECORRUPT;
	count = kp_get_le32(m->data + 8);
	if (m->len != MANIFEST_HEAD + count * MANIFEST_ENTRY + 4 ||
	    kp_crc32c(0, m->data, m->len - 4) !=
		    kp_get_le32(m->data + m->len - 4))
		return KP_ECORRUPT;
	*entries = kp_calloc(count ? count : 1, sizeof(**entries));
	if (*entries == NULL)
		return -ENOMEM;
	p = m->data + MANIFEST_HEAD;
	for (size_t i = 0; i < count; i++, p += MANIFEST_ENTRY) {
		(*entries)[i].base = kp_get_le64(p);
		(*entries)[i].end = kp_get_le64(p + 8);
		(*entries)[i].size = kp_get_le64(p + 16);
		if ((*entries)[i].end <= (*entries)[i].base) {
			kp_free(*entries);
			*entries = NULL;
			return KP_ECORRUPT;
		}
	}
	*n = count;
	return 0;
}

/* ---- recovery at open ----------------------------------------------------- */

/* Parses "<20 digits><ext>" for the segment extensions. */
static bool parse_segment_file(const char *name, uint64_t *base)
{
	uint64_t v = 0;

	if (strlen(name) < 21)
		return false;
	for (int i = 0; i < 20; i++) {
		if (name[i] < '0' || name[i] > '9')
			return false;
		v = v * 10 + (uint64_t)(name[i] - '0');
	}
	for (size_t e = 0; e < 3; e++) {
		if (strcmp(name + 20, exts[e]) == 0) {
			*base = v;
			return true;
		}
	}
	return false;
}

/* Deletes the segment files of dir with a base in (lo, hi). */
static int remove_replaced(const char *dir, uint64_t lo, uint64_t hi)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4300];
	uint64_t base;

	if (d == NULL)
		return -errno;
	while ((e = readdir(d)) != NULL) {
		if (!parse_segment_file(e->d_name, &base) || base <= lo ||
		    base >= hi)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (unlink(path) != 0 && errno != ENOENT) {
			closedir(d);
			return -errno;
		}
	}
	closedir(d);
	return 0;
}

static int complete_swap(const char *dir, const struct kp_compact_swap_entry *m,
			 size_t n, struct kp_error *err)
{
	char path[4300];
	struct stat st;
	int rc;

	for (size_t i = 0; i < n; i++) {
		rc = kp_compact_move_into_place(dir, m[i].base);
		if (rc != 0)
			return kp_error_set(err, rc, "cannot complete the "
					    "compaction of %s: %s", dir,
					    kp_error_text(rc));
		segment_file(path, sizeof(path), dir, NULL, m[i].base, ".log");
		if (stat(path, &st) != 0 || (uint64_t)st.st_size != m[i].size)
			return kp_error_set(err, KP_ECORRUPT,
					    "%s/%s does not match %s (expected "
					    "%" PRIu64 " bytes): not completing "
					    "that compaction; move the manifest "
					    "away to open the files as they are",
					    dir, KP_COMPACT_MANIFEST, path,
					    m[i].size);
	}
	for (size_t i = 0; i < n; i++) {
		rc = remove_replaced(dir, m[i].base, m[i].end);
		if (rc != 0)
			return kp_error_set(err, rc, "cannot complete the "
					    "compaction of %s: %s", dir,
					    kp_error_text(rc));
	}
	rc = kp_compact_finish_dir(dir);
	if (rc != 0)
		return kp_error_set(err, rc, "cannot complete the compaction "
				    "of %s: %s", dir, kp_error_text(rc));
	kp_log_warn("compact", "%s: completed a compaction interrupted by a "
		    "crash (%zu new segments)", dir, n);
	return 0;
}

int kp_compact_recover(const char *dir, struct kp_error *err)
{
	struct kp_compact_swap_entry *entries = NULL;
	char path[4200];
	struct kp_buf m;
	size_t n = 0;
	int rc;

	snprintf(path, sizeof(path), "%s/%s.tmp", dir, KP_COMPACT_MANIFEST);
	unlink(path);
	snprintf(path, sizeof(path), "%s/%s", dir, KP_COMPACT_MANIFEST);
	kp_buf_init(&m);
	rc = kp_file_read(path, &m);
	if (rc == -ENOENT || rc == -ENOTDIR) {
		kp_buf_destroy(&m);
		snprintf(path, sizeof(path), "%s/%s", dir, KP_COMPACT_TMP_DIR);
		if (access(path, F_OK) == 0) {
			kp_log_info("compact", "%s: removing what an unfinished "
				    "compaction left", dir);
			kp_file_remove_tree(path);
		}
		return 0;
	}
	if (rc == 0)
		rc = manifest_parse(&m, &entries, &n);
	kp_buf_destroy(&m);
	if (rc == KP_ECORRUPT)
		return kp_error_set(err, rc, "%s is damaged: not opening the "
				    "partition (move it away to open the "
				    "files as they are)", path);
	if (rc != 0)
		return kp_error_set(err, rc, "cannot read %s: %s", path,
				    kp_error_text(rc));
	rc = complete_swap(dir, entries, n, err);
	kp_free(entries);
	return rc;
}
