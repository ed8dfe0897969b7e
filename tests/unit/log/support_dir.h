/*
 * support_dir.h - for the log layer's unit tests: a partition directory
 * under a fresh temporary root (in KP_TEST_TMP, else /tmp), removed with
 * everything in it when the test ends.
 */
#ifndef KP_TEST_SUPPORT_DIR_H
#define KP_TEST_SUPPORT_DIR_H

#include "base/fsutil.h"   /* kp_file_remove_tree, for what tests make */

struct fixture {
	char dir[600];     /* <root>/p0, the partition directory (not created) */
	char root[512];    /* mkdtemp'd parent */
};

/* cmocka setup: *state = a new fixture whose root is named tag-XXXXXX. */
int kp_test_dir_setup(void **state, const char *tag);

/* cmocka teardown: removes the root and frees the fixture. */
int kp_test_dir_teardown(void **state);

#endif
