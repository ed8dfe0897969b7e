/*
 * support_packed.c - see support_packed.h.
 */
#include "support_packed.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "wire/proto.h"

void packed_init(struct packed *p)
{
	kp_buf_init(&p->buf);
	msgpack_packer_init(&p->pk, &p->buf, kp_buf_msgpack_write);
}

void pack_str(struct packed *p, const char *s)
{
	msgpack_pack_str_with_body(&p->pk, s, strlen(s));
}

struct kp_mp_view view_of(const struct packed *p)
{
	struct kp_mp_view v = { p->buf.data, p->buf.len };

	assert_int_equal(kp_mp_validate_one(p->buf.data, p->buf.len, NULL), 0);
	return v;
}
