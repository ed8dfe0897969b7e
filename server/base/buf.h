/*
 * buf.h - a growable byte buffer.
 *
 * Used to build frames, batches and responses. Growth is geometric; all
 * functions that grow return 0 or -ENOMEM and leave the buffer valid.
 */
#ifndef KP_BUF_H
#define KP_BUF_H

#include <stddef.h>
#include <stdint.h>

struct kp_buf {
	char *data;     /* owned; NULL until the first growth */
	size_t len;     /* bytes in use */
	size_t cap;     /* bytes allocated */
};

/* Initialises an empty buffer (no allocation). */
void kp_buf_init(struct kp_buf *b);

/* Frees the storage; the buffer is empty and reusable afterwards. */
void kp_buf_destroy(struct kp_buf *b);

/* Makes room for at least extra more bytes beyond len. */
int kp_buf_reserve(struct kp_buf *b, size_t extra);

/* Appends len bytes. */
int kp_buf_append(struct kp_buf *b, const void *data, size_t len);

/* Drops the first n bytes (n <= len), moving the rest to the front. */
void kp_buf_consume(struct kp_buf *b, size_t n);

/* Sets len to 0, keeping the storage. */
void kp_buf_reset(struct kp_buf *b);

/*
 * Takes the storage out of b (b becomes empty); the caller owns the
 * returned pointer and frees it with kp_free.
 */
char *kp_buf_detach(struct kp_buf *b, size_t *len);

/*
 * Little-endian and big-endian fixed-width helpers for formats. The
 * little-endian ones are inline: batch decoding calls them for every
 * record, and byte by byte they compile to one load or store.
 */
static inline void kp_put_le32(char *p, uint32_t v)
{
	unsigned char *u = (unsigned char *)p;

	u[0] = (unsigned char)v;
	u[1] = (unsigned char)(v >> 8);
	u[2] = (unsigned char)(v >> 16);
	u[3] = (unsigned char)(v >> 24);
}

static inline void kp_put_le64(char *p, uint64_t v)
{
	kp_put_le32(p, (uint32_t)v);
	kp_put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t kp_get_le32(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 |
	       (uint32_t)u[3] << 24;
}

static inline uint64_t kp_get_le64(const char *p)
{
	return (uint64_t)kp_get_le32(p) | (uint64_t)kp_get_le32(p + 4) << 32;
}

void kp_put_be32(char *p, uint32_t v);
uint32_t kp_get_be32(const char *p);

#endif
