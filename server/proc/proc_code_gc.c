/*
 * proc_code_gc.c - removing the copies of processor code that no version
 * needs any more: after a delete, a failed create or reload, a gc of
 * versions, and at start (leftovers of a crash).
 *
 * Copies are named by content hash (proc_code.c): <hash>.so, or the
 * directory <hash>/ holding a .lua file. A copy is kept while any version
 * of any processor (its scratch and a staged reload included) runs code
 * with that hash, or any revision its definition keeps (a rollback loads
 * it again). Access pattern: rare, on the loop thread, one readdir of
 * <data>/code.
 */
#include "proc_version.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/fsutil.h"
#include "base/logging.h"

static bool code_is(const struct kp_proc_code *code, const char *hash)
{
	return code != NULL && strncmp(code->hash, hash, 16) == 0;
}

static bool hash_in_use(const struct kp_procs *ps, const char *hash)
{
	for (size_t i = 0; i < ps->count; i++) {
		const struct kp_proc *p = ps->procs[i];

		if (code_is(p->reload_code, hash) ||
		    (p->scratch != NULL && code_is(p->scratch->code, hash)))
			return true;
		for (uint32_t k = 0; k < p->version_count; k++) {
			if (code_is(p->versions[k]->code, hash))
				return true;
		}
		/* Every revision stays loadable for a rollback. */
		for (uint32_t k = 0; k < p->def.version_count; k++) {
			const struct kp_proc_def_version *dv =
				&p->def.versions[k];

			if (strncmp(dv->hash, hash, 16) == 0)
				return true;
			for (uint32_t r = 0; r < dv->revision_count; r++) {
				if (strncmp(dv->revisions[r].hash, hash, 16) == 0)
					return true;
			}
		}
	}
	return false;
}

void kp_procs_gc_code(struct kp_procs *ps)
{
	DIR *d = opendir(ps->code_dir);
	struct dirent *e;
	char path[4400];

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		/* <hash>.so, <hash>/, or a temporary a crash left behind. */
		if (strncmp(e->d_name, ".tmp.", 5) != 0 &&
		    (strlen(e->d_name) < 16 || hash_in_use(ps, e->d_name)))
			continue;
		snprintf(path, sizeof(path), "%s/%s", ps->code_dir, e->d_name);
		if (kp_file_remove_tree(path) != 0)
			kp_log_warn("proc", "cannot remove unused code %s", path);
	}
	closedir(d);
}
