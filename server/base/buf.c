/*
 * buf.c - growable byte buffer and fixed-width integer helpers.
 */
#include "buf.h"

#include <errno.h>
#include <string.h>

#include "alloc.h"

void kp_buf_init(struct kp_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void kp_buf_destroy(struct kp_buf *b)
{
	kp_free(b->data);
	kp_buf_init(b);
}

int kp_buf_reserve(struct kp_buf *b, size_t extra)
{
	size_t need = b->len + extra;
	size_t cap = b->cap ? b->cap : 256;
	char *data;

	if (need < b->len)
		return -ENOMEM;
	if (need <= b->cap)
		return 0;
	while (cap < need) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	data = kp_realloc(b->data, cap);
	if (data == NULL)
		return -ENOMEM;
	b->data = data;
	b->cap = cap;
	return 0;
}

int kp_buf_append(struct kp_buf *b, const void *data, size_t len)
{
	int rc;

	if (len == 0)
		return 0;
	rc = kp_buf_reserve(b, len);
	if (rc != 0)
		return rc;
	memcpy(b->data + b->len, data, len);
	b->len += len;
	return 0;
}

void kp_buf_consume(struct kp_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

void kp_buf_reset(struct kp_buf *b)
{
	b->len = 0;
}

char *kp_buf_detach(struct kp_buf *b, size_t *len)
{
	char *data = b->data;

	if (len != NULL)
		*len = b->len;
	kp_buf_init(b);
	return data;
}

void kp_put_be32(char *p, uint32_t v)
{
	unsigned char *u = (unsigned char *)p;

	u[0] = (unsigned char)(v >> 24);
	u[1] = (unsigned char)(v >> 16);
	u[2] = (unsigned char)(v >> 8);
	u[3] = (unsigned char)v;
}

uint32_t kp_get_be32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 |
	       (uint32_t)u[2] << 8 | (uint32_t)u[3];
}
