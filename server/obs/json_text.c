/*
 * json_text.c - JSON string literals from arbitrary bytes (json_text.h).
 */
#include "json_text.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when invalid. */
static size_t utf8_len(const unsigned char *p, size_t avail)
{
	uint32_t cp;
	size_t n;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (avail < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

int kp_json_string(struct kp_buf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0;
	int rc = 0;

	if (kp_buf_append(out, "\"", 1) != 0)
		return -ENOMEM;
	while (i < len && rc == 0) {
		unsigned char c = p[i];
		char esc[8];
		const char *e = NULL;
		size_t n = 1;

		switch (c) {
		case '"': e = "\\\""; break;
		case '\\': e = "\\\\"; break;
		case '\n': e = "\\n"; break;
		case '\r': e = "\\r"; break;
		case '\t': e = "\\t"; break;
		default:
			if (c < 0x20 || c == 0x7f) {
				snprintf(esc, sizeof(esc), "\\u%04x", c);
				e = esc;
			} else if (c >= 0x80) {
				n = utf8_len(p + i, len - i);
				if (n == 0) {
					e = "\\ufffd";
					n = 1;
				}
			}
		}
		if (e == NULL) {
			run += n;
			i += n;
			continue;
		}
		if (run > 0 && kp_buf_append(out, s + i - run, run) != 0)
			rc = -ENOMEM;
		run = 0;
		if (rc == 0)
			rc = kp_buf_append(out, e, strlen(e)) == 0 ? 0
								  : -ENOMEM;
		i += n;
	}
	if (rc == 0 && run > 0 && kp_buf_append(out, s + i - run, run) != 0)
		rc = -ENOMEM;
	if (rc == 0 && kp_buf_append(out, "\"", 1) != 0)
		rc = -ENOMEM;
	return rc;
}
