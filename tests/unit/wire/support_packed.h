/*
 * support_packed.h - for the wire layer's unit tests: a msgpack packer
 * writing into a kp_buf, as the server's code packs.
 */
#ifndef KP_TEST_SUPPORT_PACKED_H
#define KP_TEST_SUPPORT_PACKED_H

#include <msgpack.h>

#include "base/buf.h"
#include "base/mp.h"

struct packed {
	struct kp_buf buf;   /* the bytes packed so far; kp_buf_destroy */
	msgpack_packer pk;
};

/* An empty p whose packer appends to p->buf. */
void packed_init(struct packed *p);

/* Packs s as a msgpack str. */
void pack_str(struct packed *p, const char *s);

/* The packed bytes as one object; fails the test unless they are one. */
struct kp_mp_view view_of(const struct packed *p);

#endif
