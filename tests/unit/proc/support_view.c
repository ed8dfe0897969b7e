/*
 * support_view.c - a view's state as bytes for the proc unit tests
 * (support_view.h).
 */
#include "support_view.h"

#include <stdint.h>

static int dump_entry(void *arg, const char *key, size_t key_len,
		      const char *value, size_t value_len)
{
	struct kp_buf *out = arg;
	char lens[8];

	kp_put_le32(lens, (uint32_t)key_len);
	kp_put_le32(lens + 4, (uint32_t)value_len);
	kp_buf_append(out, lens, 8);
	kp_buf_append(out, key, key_len);
	kp_buf_append(out, value, value_len);
	return 0;
}

int kp_test_view_dump(struct kp_view *v, struct kp_buf *out)
{
	int rc;

	kp_buf_reset(out);
	rc = kp_view_scan(v, "", 0, 0, dump_entry, out);
	return rc < 0 ? rc : 0;
}
