/*
 * support_dir.c - temporary partition directories for the log layer's
 * unit tests (support_dir.h).
 */
#include "support_dir.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "base/fsutil.h"

int kp_test_dir_setup(void **state, const char *tag)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("KP_TEST_TMP");

	if (f == NULL)
		return -1;
	if (tmp == NULL)
		tmp = "/tmp";
	mkdir(tmp, 0755);
	snprintf(f->root, sizeof(f->root), "%s/%s-XXXXXX", tmp, tag);
	if (mkdtemp(f->root) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->dir, sizeof(f->dir), "%s/p0", f->root);
	*state = f;
	return 0;
}

int kp_test_dir_teardown(void **state)
{
	struct fixture *f = *state;

	kp_file_remove_tree(f->root);
	free(f);
	return 0;
}
