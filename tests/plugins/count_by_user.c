/*
 * count_by_user.c - test processor: counts rec.value.user into the view and
 * emits {"user": u, "n": n} to "counts", keyed by the user. A Lua fixture
 * implements the same logic, so tests can check that C and Lua processors
 * produce identical outputs and views: the map's pairs are packed in the
 * Lua adapter's canonical order (string keys by bytes: "n", then "user")
 * and integers in their shortest form, so the bytes match too.
 *
 * Fails the record when the value is not a map with a string "user".
 */
#include <stdio.h>
#include <string.h>

#include "kappa_processor.h"

/* Reads a msgpack str header at p; returns the header length or 0. */
static size_t str_header(const unsigned char *p, size_t len, size_t *n)
{
	if (len >= 1 && (p[0] & 0xe0) == 0xa0) {
		*n = p[0] & 0x1f;
		return 1;
	}
	if (len >= 2 && p[0] == 0xd9) {
		*n = p[1];
		return 2;
	}
	if (len >= 3 && p[0] == 0xda) {
		*n = ((size_t)p[1] << 8) | p[2];
		return 3;
	}
	if (len >= 5 && p[0] == 0xdb) {
		*n = ((size_t)p[1] << 24) | ((size_t)p[2] << 16) |
		     ((size_t)p[3] << 8) | p[4];
		return 5;
	}
	return 0;
}

/*
 * Finds the string value of "user" in a map whose keys are strings and whose
 * values before "user" are strings or small ints (enough for the fixtures).
 */
static int find_user(const char *value, size_t len, const char **user,
		     size_t *user_len)
{
	const unsigned char *p = (const unsigned char *)value;
	const unsigned char *end = p + len;
	size_t pairs, h, n;

	if (len < 1 || (p[0] & 0xf0) != 0x80)
		return -1;
	pairs = p[0] & 0x0f;
	p++;
	while (pairs-- > 0) {
		int is_user;

		h = str_header(p, (size_t)(end - p), &n);
		if (h == 0 || (size_t)(end - p) < h + n)
			return -1;
		is_user = n == 4 && memcmp(p + h, "user", 4) == 0;
		p += h + n;
		if (p >= end)
			return -1;
		h = str_header(p, (size_t)(end - p), &n);
		if (is_user) {
			if (h == 0 || (size_t)(end - p) < h + n)
				return -1;
			*user = (const char *)p + h;
			*user_len = n;
			return 0;
		}
		if (h != 0)
			p += h + n;
		else if (p[0] < 0x80 || p[0] >= 0xe0 || p[0] == 0xc0 ||
			 p[0] == 0xc2 || p[0] == 0xc3)
			p += 1;
		else
			return -1;
		if (p > end)
			return -1;
	}
	return -1;
}

/* Shortest msgpack encoding of a non-negative int. */
static size_t put_uint(unsigned char *p, long long v)
{
	if (v < 128) {
		p[0] = (unsigned char)v;
		return 1;
	}
	if (v <= 0xff) {
		p[0] = 0xcc;
		p[1] = (unsigned char)v;
		return 2;
	}
	if (v <= 0xffff) {
		p[0] = 0xcd;
		p[1] = (unsigned char)(v >> 8);
		p[2] = (unsigned char)v;
		return 3;
	}
	if (v <= 0xffffffffLL) {
		p[0] = 0xce;
		for (int i = 0; i < 4; i++)
			p[1 + i] = (unsigned char)(v >> (24 - 8 * i));
		return 5;
	}
	p[0] = 0xcf;
	for (int i = 0; i < 8; i++)
		p[1 + i] = (unsigned char)((unsigned long long)v >> (56 - 8 * i));
	return 9;
}

static size_t put_str(unsigned char *p, const char *s, size_t n)
{
	size_t h;

	if (n < 32) {
		p[0] = (unsigned char)(0xa0 | n);
		h = 1;
	} else {
		p[0] = 0xd9;
		p[1] = (unsigned char)n;
		h = 2;
	}
	memcpy(p + h, s, n);
	return h + n;
}

static int process(struct kp_proc_ctx *ctx, const struct kp_proc_record *rec,
		   char *err)
{
	const struct kp_proc_host *host = ctx->host;
	unsigned char out[300];
	const char *user;
	size_t user_len, n = 0;
	int64_t count;

	if (find_user(rec->value, rec->value_len, &user, &user_len) != 0 ||
	    user_len > 255) {
		snprintf(err, KP_PROC_ERR_MAX,
			 "offset %llu: value has no string field user",
			 (unsigned long long)rec->offset);
		return -1;
	}
	if (host->state_incr(ctx->host_data, user, user_len, 1, &count) != 0) {
		snprintf(err, KP_PROC_ERR_MAX, "state_incr failed");
		return -1;
	}
	out[n++] = 0x82;
	n += put_str(out + n, "n", 1);
	n += put_uint(out + n, count);
	n += put_str(out + n, "user", 4);
	n += put_str(out + n, user, user_len);
	if (host->emit(ctx->host_data, "counts", 6, user, user_len,
		       (const char *)out, n) != 0) {
		snprintf(err, KP_PROC_ERR_MAX, "emit to counts failed");
		return -1;
	}
	return 0;
}

static const struct kp_processor descriptor = {
	.abi_version = KP_PROC_ABI_VERSION,
	.size = sizeof(struct kp_processor),
	.name = "count_by_user",
	.process = process,
};

__attribute__((visibility("default")))
const struct kp_processor *kappa_processor(void);

const struct kp_processor *kappa_processor(void)
{
	return &descriptor;
}
