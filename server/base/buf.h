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

/* Little-endian and big-endian fixed-width helpers for formats. */
void kp_put_le32(char *p, uint32_t v);
void kp_put_le64(char *p, uint64_t v);
uint32_t kp_get_le32(const char *p);
uint64_t kp_get_le64(const char *p);
void kp_put_be32(char *p, uint32_t v);
uint32_t kp_get_be32(const char *p);

#endif
