/*
 * wk_msg.c - frames between kappad and its worker processes (wk_msg.h).
 */
#include "wk_msg.h"

#include <string.h>

size_t kp_wm_begin(struct kp_buf *b, uint8_t type, uint32_t tag)
{
	size_t start = b->len;
	char h[KP_WM_HEADER];

	kp_put_le32(h, 0);
	h[4] = (char)type;
	kp_put_le32(h + 5, tag);
	kp_buf_append(b, h, sizeof(h));
	return start;
}

void kp_wm_finish(struct kp_buf *b, size_t start)
{
	if (b->len >= start + KP_WM_HEADER)
		kp_put_le32(b->data + start, (uint32_t)(b->len - start - 4));
}

void kp_wm_put_u8(struct kp_buf *b, uint8_t v)
{
	kp_buf_append(b, &v, 1);
}

void kp_wm_put_u32(struct kp_buf *b, uint32_t v)
{
	char p[4];

	kp_put_le32(p, v);
	kp_buf_append(b, p, 4);
}

void kp_wm_put_u64(struct kp_buf *b, uint64_t v)
{
	char p[8];

	kp_put_le64(p, v);
	kp_buf_append(b, p, 8);
}

void kp_wm_put_f64(struct kp_buf *b, double v)
{
	uint64_t u;

	memcpy(&u, &v, 8);
	kp_wm_put_u64(b, u);
}

void kp_wm_put_bytes(struct kp_buf *b, const void *p, size_t len)
{
	kp_wm_put_u32(b, (uint32_t)len);
	if (len > 0)
		kp_buf_append(b, p, len);
}

void kp_wm_put_str(struct kp_buf *b, const char *s)
{
	kp_wm_put_bytes(b, s, s != NULL ? strlen(s) : 0);
}

int kp_wm_frame(const char *data, size_t avail, size_t *len)
{
	uint32_t n;

	if (avail < 4)
		return 0;
	n = kp_get_le32(data);
	if (n < KP_WM_HEADER - 4 || n > KP_WM_MAX_FRAME)
		return -1;
	if (avail < (size_t)n + 4)
		return 0;
	*len = (size_t)n + 4;
	return 1;
}

void kp_wm_read(struct kp_wm_reader *r, const char *data, size_t len)
{
	r->type = (uint8_t)data[4];
	r->tag = kp_get_le32(data + 5);
	r->p = data + KP_WM_HEADER;
	r->left = len - KP_WM_HEADER;
	r->bad = false;
}

static const char *take(struct kp_wm_reader *r, size_t n)
{
	const char *p = r->p;

	if (r->bad || r->left < n) {
		r->bad = true;
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return p;
}

uint8_t kp_wm_get_u8(struct kp_wm_reader *r)
{
	const char *p = take(r, 1);

	return p != NULL ? (uint8_t)*p : 0;
}

uint32_t kp_wm_get_u32(struct kp_wm_reader *r)
{
	const char *p = take(r, 4);

	return p != NULL ? kp_get_le32(p) : 0;
}

uint64_t kp_wm_get_u64(struct kp_wm_reader *r)
{
	const char *p = take(r, 8);

	return p != NULL ? kp_get_le64(p) : 0;
}

double kp_wm_get_f64(struct kp_wm_reader *r)
{
	uint64_t u = kp_wm_get_u64(r);
	double v;

	memcpy(&v, &u, 8);
	return v;
}

const char *kp_wm_get_bytes(struct kp_wm_reader *r, size_t *len)
{
	uint32_t n = kp_wm_get_u32(r);
	const char *p = take(r, n);

	if (p == NULL) {
		*len = 0;
		return "";
	}
	*len = n;
	return p;
}

void kp_wm_get_str(struct kp_wm_reader *r, char *out, size_t cap)
{
	size_t n;
	const char *p = kp_wm_get_bytes(r, &n);

	if (n >= cap)
		n = cap - 1;
	memcpy(out, p, n);
	out[n] = '\0';
}
