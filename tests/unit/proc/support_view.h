/*
 * support_view.h - for the proc layer's unit tests: a view's whole state
 * as bytes, to compare two views.
 */
#ifndef KP_TEST_SUPPORT_VIEW_H
#define KP_TEST_SUPPORT_VIEW_H

#include "base/buf.h"
#include "proc/view.h"

/*
 * Replaces out's contents with every key and value of v in key order
 * (u32 key_len, u32 value_len, key, value each). Returns 0 or the scan's
 * error.
 */
int kp_test_view_dump(struct kp_view *v, struct kp_buf *out);

#endif
