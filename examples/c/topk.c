/*
 * topk.c - an example C processor: per-key counts in the view, and an
 * event on an output topic each time a key's count reaches one of the
 * configured thresholds ("ann reached 100 clicks"), which is how a top-k
 * board learns who to look at without reading every count.
 *
 * Built against plugins/kappa_processor.h alone; no other dependency, so
 * the little msgpack it needs (walking a map, writing a map) is below.
 *
 * The key counted is the string field named by config "field" (default
 * "user") of a map value, else the record's key; a record with neither
 * fails (and goes to the processor's dead-letter topic).
 *
 * Config (one msgpack map, every entry optional):
 *   field       string, default "user"
 *   thresholds  array of positive integers, default [10, 100, 1000]
 *   output      string, the topic to emit to, default "topk"
 *
 * View: key -> count (an integer). Output, keyed by the key:
 *   {"count": n, "key": k, "threshold": t}
 *
 * Build: gcc -shared -fPIC -fvisibility=hidden -O2 -I plugins \
 *            -o topk.so examples/c/topk.c
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kappa_processor.h"

#define MAX_THRESHOLDS 16
#define MAX_DEPTH 32
#define MAX_KEY 1024

/* The parsed config: ctx->user. */
struct topk {
	char field[64];
	char output[201];
	int64_t thresholds[MAX_THRESHOLDS];
	int threshold_count;
};

/* ---- reading msgpack: just enough, and never past end ---- */

static uint64_t be(const unsigned char *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/*
 * Returns the pointer past the object at p, or NULL when it is malformed or
 * runs past end. Containers are walked with a bounded recursion.
 */
static const unsigned char *skip(const unsigned char *p,
				 const unsigned char *end, int depth)
{
	uint64_t n = 0, items = 0;
	unsigned c;

	if (p >= end || depth > MAX_DEPTH)
		return NULL;
	c = *p++;
	if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
		return p;
	if ((c & 0xe0) == 0xa0)
		n = c & 0x1f;
	else if ((c & 0xf0) == 0x90)
		items = c & 0x0f;
	else if ((c & 0xf0) == 0x80)
		items = 2 * (uint64_t)(c & 0x0f);
	else {
		static const signed char len_bytes[] = {
			/* c4..c6 bin, c7..c9 ext, ca cb float, cc..d3 ints */
			1, 2, 4, 1, 2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
			/* d4..d8 fixext, d9..db str, dc dd array, de df map */
			0, 0, 0, 0, 0, 1, 2, 4, 2, 4, 2, 4,
		};
		static const signed char fixed[] = {
			0, 0, 0, 0, 0, 0, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8,
			2, 3, 5, 9, 17, 0, 0, 0, 0, 0, 0, 0,
		};
		int i = (int)c - 0xc4, lb;

		if (i < 0 || i >= (int)sizeof(fixed))
			return NULL;
		lb = len_bytes[i];
		if (end - p < lb)
			return NULL;
		n = fixed[i] + (lb ? be(p, lb) : 0);
		p += lb;
		if (c >= 0xc7 && c <= 0xc9)
			n++;  /* ext: the type byte */
		if (c >= 0xdc) {
			items = n * (c >= 0xde ? 2 : 1);
			n = 0;
		}
	}
	if ((uint64_t)(end - p) < n)
		return NULL;
	p += n;
	while (items-- > 0 && p != NULL)
		p = skip(p, end, depth + 1);
	return p;
}

/* Reads a str at p: 1 with *s / *len and *next past it, else 0. */
static int read_str(const unsigned char *p, const unsigned char *end,
		    const char **s, size_t *len, const unsigned char **next)
{
	int lb;

	if (p >= end)
		return 0;
	if ((*p & 0xe0) == 0xa0)
		lb = 0;
	else if (*p >= 0xd9 && *p <= 0xdb)
		lb = 1 << (*p - 0xd9);
	else
		return 0;
	if (end - p - 1 < lb)
		return 0;
	*len = lb ? be(p + 1, lb) : (size_t)(*p & 0x1f);
	p += 1 + lb;
	if ((size_t)(end - p) < *len)
		return 0;
	*s = (const char *)p;
	*next = p + *len;
	return 1;
}

/* Reads an integer at p: 1 with *v when it fits int64, else 0. */
static int read_int(const unsigned char *p, const unsigned char *end,
		    int64_t *v)
{
	static const int sizes[] = { 1, 2, 4, 8 };
	uint64_t u;
	int n;

	if (p >= end)
		return 0;
	if (*p <= 0x7f || *p >= 0xe0) {
		*v = (int8_t)*p;
		return 1;
	}
	if (*p < 0xcc || *p > 0xd3)
		return 0;
	n = sizes[(*p - 0xcc) & 3];
	if (end - p - 1 < n)
		return 0;
	u = be(p + 1, n);
	if (*p >= 0xd0) {
		if (n < 8 && (u >> (8 * n - 1)))
			u |= ~(uint64_t)0 << (8 * n);
		*v = (int64_t)u;
		return 1;
	}
	if (u > INT64_MAX)
		return 0;
	*v = (int64_t)u;
	return 1;
}

/*
 * Finds the value of the str key name in the map at p. Returns the value's
 * first byte, or NULL when p is no map or has no such key.
 */
static const unsigned char *map_find(const unsigned char *p,
				     const unsigned char *end,
				     const char *name)
{
	size_t name_len = strlen(name), len;
	uint64_t pairs;
	const char *s;

	if (p >= end)
		return NULL;
	if ((*p & 0xf0) == 0x80) {
		pairs = *p & 0x0f;
		p++;
	} else if ((*p == 0xde || *p == 0xdf) && end - p > (*p == 0xde ? 2 : 4)) {
		int lb = *p == 0xde ? 2 : 4;

		pairs = be(p + 1, lb);
		p += 1 + lb;
	} else {
		return NULL;
	}
	while (pairs-- > 0) {
		const unsigned char *value;

		if (read_str(p, end, &s, &len, &value) && len == name_len &&
		    memcmp(s, name, len) == 0)
			return value < end ? value : NULL;
		p = skip(p, end, 0);
		if (p == NULL)
			return NULL;
		p = skip(p, end, 0);
		if (p == NULL)
			return NULL;
	}
	return NULL;
}

/* ---- writing msgpack ---- */

static size_t put_str(unsigned char *p, const char *s, size_t n)
{
	size_t h;

	if (n < 32) {
		p[0] = (unsigned char)(0xa0 | n);
		h = 1;
	} else if (n <= 0xff) {
		p[0] = 0xd9;
		p[1] = (unsigned char)n;
		h = 2;
	} else {  /* n <= MAX_KEY */
		p[0] = 0xda;
		p[1] = (unsigned char)(n >> 8);
		p[2] = (unsigned char)n;
		h = 3;
	}
	memcpy(p + h, s, n);
	return h + n;
}

/* Non-negative integers (counts and thresholds), shortest form. */
static size_t put_uint(unsigned char *p, uint64_t v)
{
	int n;

	if (v < 128) {
		p[0] = (unsigned char)v;
		return 1;
	}
	n = v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffffu ? 4 : 8;
	p[0] = (unsigned char)(n == 1 ? 0xcc : n == 2 ? 0xcd : n == 4 ? 0xce : 0xcf);
	for (int i = 0; i < n; i++)
		p[1 + i] = (unsigned char)(v >> (8 * (n - 1 - i)));
	return 1 + (size_t)n;
}

/* ---- the processor ---- */

/* Copies the str at config[name] into out; 0, or -1 when not a fitting str. */
static int config_str(const struct kp_proc_ctx *ctx, const char *name,
		      char *out, size_t cap)
{
	const unsigned char *end = (const unsigned char *)ctx->config +
				   ctx->config_len;
	const unsigned char *v = map_find((const unsigned char *)ctx->config,
					  end, name), *next;
	const char *s;
	size_t len;

	if (v == NULL)
		return 0;
	if (!read_str(v, end, &s, &len, &next) || len == 0 || len >= cap)
		return -1;
	memcpy(out, s, len);
	out[len] = '\0';
	return 0;
}

static int config_thresholds(struct kp_proc_ctx *ctx, struct topk *t)
{
	const unsigned char *end = (const unsigned char *)ctx->config +
				   ctx->config_len;
	const unsigned char *p = map_find((const unsigned char *)ctx->config,
					  end, "thresholds");
	uint64_t n;

	if (p == NULL)
		return 0;
	if ((*p & 0xf0) == 0x90) {
		n = *p & 0x0f;
		p++;
	} else if (*p == 0xdc && end - p > 2) {
		n = be(p + 1, 2);
		p += 3;
	} else {
		return -1;
	}
	if (n == 0 || n > MAX_THRESHOLDS)
		return -1;
	t->threshold_count = 0;
	for (uint64_t i = 0; i < n; i++) {
		int64_t v;

		if (!read_int(p, end, &v) || v <= 0)
			return -1;
		t->thresholds[t->threshold_count++] = v;
		p = skip(p, end, 0);
		if (p == NULL)
			return -1;
	}
	return 0;
}

static int init(struct kp_proc_ctx *ctx, char *err)
{
	struct topk *t = calloc(1, sizeof(*t));
	char line[320];

	if (t == NULL) {
		snprintf(err, KP_PROC_ERR_MAX, "out of memory");
		return -1;
	}
	strcpy(t->field, "user");
	strcpy(t->output, "topk");
	t->thresholds[0] = 10;
	t->thresholds[1] = 100;
	t->thresholds[2] = 1000;
	t->threshold_count = 3;
	if (config_str(ctx, "field", t->field, sizeof(t->field)) != 0 ||
	    config_str(ctx, "output", t->output, sizeof(t->output)) != 0 ||
	    config_thresholds(ctx, t) != 0) {
		snprintf(err, KP_PROC_ERR_MAX,
			 "config: want {field = str, output = str, thresholds = "
			 "[1 to %d positive integers]}", MAX_THRESHOLDS);
		free(t);
		return -1;
	}
	ctx->user = t;
	snprintf(line, sizeof(line), "counting by %s, %d thresholds, to %s",
		 t->field, t->threshold_count, t->output);
	ctx->host->log(ctx->host_data, KP_PROC_LOG_INFO, line);
	return 0;
}

/* The key to count: the configured field of a map value, else rec->key. */
static int pick_key(const struct topk *t, const struct kp_proc_record *rec,
		    const char **key, size_t *len)
{
	const unsigned char *end = (const unsigned char *)rec->value +
				   rec->value_len;
	const unsigned char *v = map_find((const unsigned char *)rec->value,
					  end, t->field), *next;

	if (v != NULL && read_str(v, end, key, len, &next))
		return 0;
	if (rec->key != NULL) {
		*key = rec->key;
		*len = rec->key_len;
		return 0;
	}
	return -1;
}

static int process(struct kp_proc_ctx *ctx, const struct kp_proc_record *rec,
		   char *err)
{
	const struct kp_proc_host *host = ctx->host;
	const struct topk *t = ctx->user;
	unsigned char out[64 + MAX_KEY];
	const char *key;
	size_t key_len, n = 0;
	int64_t count;
	int rc;

	if (pick_key(t, rec, &key, &key_len) != 0 || key_len > MAX_KEY) {
		snprintf(err, KP_PROC_ERR_MAX,
			 "offset %llu: no string field \"%s\" and no key",
			 (unsigned long long)rec->offset, t->field);
		return -1;
	}
	rc = host->state_incr(ctx->host_data, key, key_len, 1, &count);
	if (rc != 0) {
		snprintf(err, KP_PROC_ERR_MAX, "state_incr failed (%d)", rc);
		return -1;
	}
	for (int i = 0; i < t->threshold_count; i++) {
		if (count != t->thresholds[i])
			continue;
		out[n++] = 0x83;
		n += put_str(out + n, "count", 5);
		n += put_uint(out + n, (uint64_t)count);
		n += put_str(out + n, "key", 3);
		n += put_str(out + n, key, key_len);
		n += put_str(out + n, "threshold", 9);
		n += put_uint(out + n, (uint64_t)t->thresholds[i]);
		rc = host->emit(ctx->host_data, t->output, strlen(t->output),
				key, key_len, (const char *)out, n);
		if (rc != 0) {
			snprintf(err, KP_PROC_ERR_MAX,
				 "emit to %s failed (%d): is it an output?",
				 t->output, rc);
			return -1;
		}
		break;
	}
	return 0;
}

static void fini(struct kp_proc_ctx *ctx)
{
	free(ctx->user);
	ctx->user = NULL;
}

static const struct kp_processor descriptor = {
	.abi_version = KP_PROC_ABI_VERSION,
	.size = sizeof(struct kp_processor),
	.name = "topk",
	.init = init,
	.process = process,
	.fini = fini,
};

__attribute__((visibility("default")))
const struct kp_processor *kappa_processor(void);

const struct kp_processor *kappa_processor(void)
{
	return &descriptor;
}
