/*
 * mp.c - zero-allocation msgpack walker.
 *
 * Access pattern: one forward pass over borrowed bytes. kp_mp_skip validates
 * an object iteratively with a fixed stack of KP_MP_MAX_DEPTH pending-item
 * counters, so hostile nesting neither recurses nor allocates. Every
 * declared length is checked against the bytes that remain before it is
 * used; a container of N items must have at least N bytes left (2N for a map
 * of N pairs), since every msgpack object takes at least one byte. Readers
 * and iterators work on views that kp_mp_skip accepted, but still never read
 * past a view's length.
 */
#include "mp.h"

#include <string.h>

#include "error.h"

/* What one format byte (plus its length field) announces. */
struct hdr {
	enum kp_mp_type type;  /* family */
	size_t hsize;          /* format byte plus length field */
	uint64_t payload;      /* bytes after the header owned by this object */
	uint64_t items;        /* child objects: n for arrays, 2n for maps */
	uint32_t count;        /* declared count: items or pairs */
};

static uint64_t be(const unsigned char *p, size_t n)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void set_fixed(struct hdr *h, enum kp_mp_type type, size_t payload)
{
	h->type = type;
	h->hsize = 1;
	h->payload = payload;
}

/* Sets a length-prefixed header: n length bytes, then payload (+ extra). */
static int set_sized(struct hdr *h, enum kp_mp_type type,
		     const unsigned char *p, size_t avail, size_t n,
		     uint64_t extra)
{
	if (avail < 1 + n)
		return KP_EBADMSGPACK;
	h->type = type;
	h->hsize = 1 + n;
	h->payload = be(p + 1, n) + extra;
	return 0;
}

static int set_container(struct hdr *h, enum kp_mp_type type,
			 const unsigned char *p, size_t avail, size_t n)
{
	uint64_t count;

	if (avail < 1 + n)
		return KP_EBADMSGPACK;
	count = be(p + 1, n);
	h->type = type;
	h->hsize = 1 + n;
	h->payload = 0;
	h->count = (uint32_t)count;
	h->items = type == KP_MP_MAP ? 2 * count : count;
	return 0;
}

/* Signed integer formats whose value is >= 0 read as KP_MP_UINT. */
static enum kp_mp_type signed_type(const unsigned char *p, size_t avail,
				   size_t n)
{
	if (avail < 1 + n)
		return KP_MP_INT;
	return (p[1] & 0x80) ? KP_MP_INT : KP_MP_UINT;
}

/*
 * Parses the header at p. Checks only that the header itself fits in
 * avail; the caller checks payload and items against what is left.
 */
static int parse_hdr(const unsigned char *p, size_t avail, struct hdr *h)
{
	unsigned char c;

	if (avail == 0)
		return KP_EBADMSGPACK;
	c = p[0];
	h->items = 0;
	h->count = 0;
	if (c <= 0x7f) {
		set_fixed(h, KP_MP_UINT, 0);
		return 0;
	}
	if (c >= 0xe0) {
		set_fixed(h, KP_MP_INT, 0);
		return 0;
	}
	if (c <= 0x8f) {
		set_fixed(h, KP_MP_MAP, 0);
		h->count = c & 0x0f;
		h->items = 2u * h->count;
		return 0;
	}
	if (c <= 0x9f) {
		set_fixed(h, KP_MP_ARRAY, 0);
		h->count = c & 0x0f;
		h->items = h->count;
		return 0;
	}
	if (c <= 0xbf) {
		set_fixed(h, KP_MP_STR, c & 0x1f);
		return 0;
	}
	switch (c) {
	case 0xc0: set_fixed(h, KP_MP_NIL, 0); return 0;
	case 0xc2:
	case 0xc3: set_fixed(h, KP_MP_BOOL, 0); return 0;
	case 0xc4: return set_sized(h, KP_MP_BIN, p, avail, 1, 0);
	case 0xc5: return set_sized(h, KP_MP_BIN, p, avail, 2, 0);
	case 0xc6: return set_sized(h, KP_MP_BIN, p, avail, 4, 0);
	case 0xc7: return set_sized(h, KP_MP_EXT, p, avail, 1, 1);
	case 0xc8: return set_sized(h, KP_MP_EXT, p, avail, 2, 1);
	case 0xc9: return set_sized(h, KP_MP_EXT, p, avail, 4, 1);
	case 0xca: set_fixed(h, KP_MP_FLOAT, 4); return 0;
	case 0xcb: set_fixed(h, KP_MP_FLOAT, 8); return 0;
	case 0xcc: set_fixed(h, KP_MP_UINT, 1); return 0;
	case 0xcd: set_fixed(h, KP_MP_UINT, 2); return 0;
	case 0xce: set_fixed(h, KP_MP_UINT, 4); return 0;
	case 0xcf: set_fixed(h, KP_MP_UINT, 8); return 0;
	case 0xd0: set_fixed(h, signed_type(p, avail, 1), 1); return 0;
	case 0xd1: set_fixed(h, signed_type(p, avail, 2), 2); return 0;
	case 0xd2: set_fixed(h, signed_type(p, avail, 4), 4); return 0;
	case 0xd3: set_fixed(h, signed_type(p, avail, 8), 8); return 0;
	case 0xd4: set_fixed(h, KP_MP_EXT, 2); return 0;
	case 0xd5: set_fixed(h, KP_MP_EXT, 3); return 0;
	case 0xd6: set_fixed(h, KP_MP_EXT, 5); return 0;
	case 0xd7: set_fixed(h, KP_MP_EXT, 9); return 0;
	case 0xd8: set_fixed(h, KP_MP_EXT, 17); return 0;
	case 0xd9: return set_sized(h, KP_MP_STR, p, avail, 1, 0);
	case 0xda: return set_sized(h, KP_MP_STR, p, avail, 2, 0);
	case 0xdb: return set_sized(h, KP_MP_STR, p, avail, 4, 0);
	case 0xdc: return set_container(h, KP_MP_ARRAY, p, avail, 2);
	case 0xdd: return set_container(h, KP_MP_ARRAY, p, avail, 4);
	case 0xde: return set_container(h, KP_MP_MAP, p, avail, 2);
	case 0xdf: return set_container(h, KP_MP_MAP, p, avail, 4);
	default: return KP_EBADMSGPACK;  /* 0xc1, never used */
	}
}

/*
 * How a format byte announces its object's size, for the walk: the whole
 * size in the byte itself (FIXED, n bytes in all: scalars, fixstr, fixext),
 * a big-endian length of n bytes then that many payload bytes (SIZED; EXT
 * adds the type byte), a container whose item count is in the byte (FIXCONT,
 * n child objects) or in n following bytes (ARRAY, MAP), or nothing (BAD).
 */
enum fmt_kind { K_BAD, K_FIXED, K_SIZED, K_EXT, K_FIXCONT, K_ARRAY, K_MAP };

struct fmt {
	uint8_t kind;  /* enum fmt_kind */
	uint8_t n;     /* see fmt_kind */
};

#define B(n) { K_BAD, n }
#define F(n) { K_FIXED, n }
#define S(n) { K_SIZED, n }
#define E(n) { K_EXT, n }
#define C(n) { K_FIXCONT, n }
#define A(n) { K_ARRAY, n }
#define M(n) { K_MAP, n }
/* What each format byte announces (the msgpack spec's format table). */
static const struct fmt fmt_table[256] = {
	/* 00 */ F(1), F(1), F(1), F(1), F(1), F(1), F(1), F(1),
	/* 08 */ F(1), F(1), F(1), F(1), F(1), F(1), F(1), F(1),
	/* 10 */ F(1), F(1), F(1), F(1), F(1), F(1), F(1), F(1),
	/* 18 */ F(1), F(1), F(1), F(1), F(1), F(1), F(1), F(1),
	/* 20 */ F(1), F(1), F(1), F(1), F(1), F(1), F(1), F(1),
	/* 28 */ F(1), F(1), F(1), F(1), F(1), F(1), F(1), F(1),
	/* 30 */ F(1), F(1), F(1), F(1), F(1), F(1), F(1), F(1),
	/* 38 */ F(1), F(1), F(1), F(1), F(1), F(1), F(1), F(1),
	/* 40 */ F(1), F(1), F(1), F(1), F(1), F(1), F(1), F(1),
	/* 48 */ F(1), F(1), F(1), F(1), F(1), F(1), F(1), F(1),
	/* 50 */ F(1), F(1), F(1), F(1), F(1), F(1), F(1), F(1),
	/* 58 */ F(1), F(1), F(1), F(1), F(1), F(1), F(1), F(1),
	/* 60 */ F(1), F(1), F(1), F(1), F(1), F(1), F(1), F(1),
	/* 68 */ F(1), F(1), F(1), F(1), F(1), F(1), F(1), F(1),
	/* 70 */ F(1), F(1), F(1), F(1), F(1), F(1), F(1), F(1),
	/* 78 */ F(1), F(1), F(1), F(1), F(1), F(1), F(1), F(1),
	/* 80 */ C(0), C(2), C(4), C(6), C(8), C(10), C(12), C(14),
	/* 88 */ C(16), C(18), C(20), C(22), C(24), C(26), C(28), C(30),
	/* 90 */ C(0), C(1), C(2), C(3), C(4), C(5), C(6), C(7),
	/* 98 */ C(8), C(9), C(10), C(11), C(12), C(13), C(14), C(15),
	/* a0 */ F(1), F(2), F(3), F(4), F(5), F(6), F(7), F(8),
	/* a8 */ F(9), F(10), F(11), F(12), F(13), F(14), F(15), F(16),
	/* b0 */ F(17), F(18), F(19), F(20), F(21), F(22), F(23), F(24),
	/* b8 */ F(25), F(26), F(27), F(28), F(29), F(30), F(31), F(32),
	/* c0 */ F(1), B(0), F(1), F(1), S(1), S(2), S(4), E(1),
	/* c8 */ E(2), E(4), F(5), F(9), F(2), F(3), F(5), F(9),
	/* d0 */ F(2), F(3), F(5), F(9), F(3), F(4), F(6), F(10),
	/* d8 */ F(18), S(1), S(2), S(4), A(2), A(4), M(2), M(4),
	/* e0 */ F(1), F(1), F(1), F(1), F(1), F(1), F(1), F(1),
	/* e8 */ F(1), F(1), F(1), F(1), F(1), F(1), F(1), F(1),
	/* f0 */ F(1), F(1), F(1), F(1), F(1), F(1), F(1), F(1),
	/* f8 */ F(1), F(1), F(1), F(1), F(1), F(1), F(1), F(1),
};
#undef B
#undef F
#undef S
#undef E
#undef C
#undef A
#undef M

/* A big-endian length of n = 1, 2 or 4 bytes. */
static inline uint64_t be_len(const unsigned char *p, unsigned n)
{
	switch (n) {
	case 1: return p[0];
	case 2: return (uint64_t)p[0] << 8 | p[1];
	default:
		return (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 |
		       (uint64_t)p[2] << 8 | p[3];
	}
}

/*
 * The walk keeps one counter of objects still to read (want) rather than a
 * counter per open container: a container adds its items to want, and
 * ends[] remembers, per open container, the value of want at which it is
 * complete, which is all the depth limit needs. Every object takes at least
 * one byte, so a container is refused unless the bytes left cover its items
 * plus everything already pending. max_depth is how many containers may be
 * open at once (KP_MP_MAX_DEPTH less the nesting the object already sits
 * in). Each object costs one look-up of its format byte.
 */
static int skip(const unsigned char *p, size_t len, int max_depth,
		size_t *size)
{
	uint64_t ends[KP_MP_MAX_DEPTH];
	uint64_t want = 1;
	size_t pos = 0;
	int depth = 0;

	while (want > 0) {
		size_t left = len - pos, hsize;
		uint64_t items, payload;
		struct fmt f;

		if (left == 0)
			return KP_EBADMSGPACK;
		f = fmt_table[p[pos]];
		want--;
		switch (f.kind) {
		case K_FIXED:
			if (f.n > left)
				return KP_EBADMSGPACK;
			pos += f.n;
			break;
		case K_SIZED:
		case K_EXT:
			if (left < 1u + f.n)
				return KP_EBADMSGPACK;
			payload = be_len(p + pos + 1, f.n) + (f.kind == K_EXT);
			if (payload > left - 1 - f.n)
				return KP_EBADMSGPACK;
			pos += 1 + f.n + (size_t)payload;
			break;
		case K_FIXCONT:
		case K_ARRAY:
		case K_MAP:
			if (f.kind == K_FIXCONT) {
				items = f.n;
				hsize = 1;
			} else {
				if (left < 1u + f.n)
					return KP_EBADMSGPACK;
				items = be_len(p + pos + 1, f.n);
				if (f.kind == K_MAP)
					items *= 2;
				hsize = 1 + f.n;
			}
			if (depth >= max_depth)
				return KP_EBADMSGPACK;
			left -= hsize;
			if (items > left || want > left - items)
				return KP_EBADMSGPACK;
			pos += hsize;
			if (items > 0) {
				ends[depth++] = want;
				want += items;
			}
			break;
		default:
			return KP_EBADMSGPACK;  /* 0xc1, never used */
		}
		while (depth > 0 && want == ends[depth - 1])
			depth--;
	}
	if (size != NULL)
		*size = pos;
	return 0;
}

int kp_mp_skip(const char *buf, size_t len, size_t *size)
{
	return skip((const unsigned char *)buf, len, KP_MP_MAX_DEPTH, size);
}

int kp_mp_skip_at(const char *buf, size_t len, int depth, size_t *size)
{
	if (depth < 0)
		depth = 0;
	return skip((const unsigned char *)buf, len,
		    depth >= KP_MP_MAX_DEPTH ? 0 : KP_MP_MAX_DEPTH - depth,
		    size);
}

int kp_mp_container_header(const char *buf, size_t len, enum kp_mp_type want,
			   uint32_t *count, size_t *hsize)
{
	struct fmt f;
	uint64_t n, items;
	size_t h;

	if (len == 0)
		return KP_EBADMSGPACK;
	f = fmt_table[(unsigned char)buf[0]];
	if (f.kind == K_FIXCONT) {
		bool is_map = ((unsigned char)buf[0] & 0xf0) == 0x80;

		if ((want == KP_MP_MAP) != is_map)
			return KP_EBADREQUEST;
		n = is_map ? f.n / 2u : f.n;
		h = 1;
	} else if (f.kind == K_ARRAY || f.kind == K_MAP) {
		if ((want == KP_MP_MAP) != (f.kind == K_MAP))
			return KP_EBADREQUEST;
		if (len < 1u + f.n)
			return KP_EBADMSGPACK;
		n = be_len((const unsigned char *)buf + 1, f.n);
		h = 1 + f.n;
	} else {
		return KP_EBADREQUEST;
	}
	items = want == KP_MP_MAP ? 2 * n : n;
	if (items > len - h)
		return KP_EBADMSGPACK;
	*count = (uint32_t)n;
	*hsize = h;
	return 0;
}

int kp_mp_validate_one(const char *buf, size_t len, struct kp_mp_view *obj)
{
	size_t size;

	if (kp_mp_skip(buf, len, &size) != 0 || size != len)
		return KP_EBADMSGPACK;
	if (obj != NULL) {
		obj->ptr = buf;
		obj->len = len;
	}
	return 0;
}

enum kp_mp_type kp_mp_type(struct kp_mp_view v)
{
	struct hdr h;

	if (parse_hdr((const unsigned char *)v.ptr, v.len, &h) != 0)
		return KP_MP_NIL;
	return h.type;
}

const char *kp_mp_type_name(enum kp_mp_type t)
{
	switch (t) {
	case KP_MP_NIL: return "nil";
	case KP_MP_BOOL: return "bool";
	case KP_MP_UINT: return "uint";
	case KP_MP_INT: return "int";
	case KP_MP_FLOAT: return "float";
	case KP_MP_STR: return "str";
	case KP_MP_BIN: return "bin";
	case KP_MP_ARRAY: return "array";
	case KP_MP_MAP: return "map";
	case KP_MP_EXT: return "ext";
	}
	return "unknown";
}

/*
 * Reads an integer of any encoding. *neg tells whether it is negative; the
 * value is then *s, otherwise *u.
 */
static int read_integer(struct kp_mp_view v, bool *neg, uint64_t *u,
			int64_t *s)
{
	const unsigned char *p = (const unsigned char *)v.ptr;
	struct hdr h;
	uint64_t raw;

	if (parse_hdr(p, v.len, &h) != 0 || h.payload > v.len - h.hsize)
		return KP_EBADREQUEST;
	if (h.type != KP_MP_UINT && h.type != KP_MP_INT)
		return KP_EBADREQUEST;
	if (p[0] <= 0x7f) {
		*neg = false;
		*u = p[0];
		return 0;
	}
	if (p[0] >= 0xe0) {
		*neg = true;
		*s = (int8_t)p[0];
		return 0;
	}
	raw = be(p + 1, (size_t)h.payload);
	if (p[0] >= 0xcc && p[0] <= 0xcf) {
		*neg = false;
		*u = raw;
		return 0;
	}
	switch (h.payload) {
	case 1: *s = (int8_t)(uint8_t)raw; break;
	case 2: *s = (int16_t)(uint16_t)raw; break;
	case 4: *s = (int32_t)(uint32_t)raw; break;
	default: *s = (int64_t)raw; break;
	}
	*neg = *s < 0;
	if (!*neg)
		*u = (uint64_t)*s;
	return 0;
}

int kp_mp_read_uint(struct kp_mp_view v, uint64_t *out)
{
	bool neg;
	uint64_t u = 0;
	int64_t s = 0;

	if (read_integer(v, &neg, &u, &s) != 0 || neg)
		return KP_EBADREQUEST;
	*out = u;
	return 0;
}

int kp_mp_read_int(struct kp_mp_view v, int64_t *out)
{
	bool neg;
	uint64_t u = 0;
	int64_t s = 0;

	if (read_integer(v, &neg, &u, &s) != 0)
		return KP_EBADREQUEST;
	if (neg) {
		*out = s;
		return 0;
	}
	if (u > (uint64_t)INT64_MAX)
		return KP_EBADREQUEST;
	*out = (int64_t)u;
	return 0;
}

int kp_mp_read_bool(struct kp_mp_view v, bool *out)
{
	const unsigned char *p = (const unsigned char *)v.ptr;

	if (v.len == 0 || (p[0] != 0xc2 && p[0] != 0xc3))
		return KP_EBADREQUEST;
	*out = p[0] == 0xc3;
	return 0;
}

int kp_mp_read_double(struct kp_mp_view v, double *out)
{
	const unsigned char *p = (const unsigned char *)v.ptr;
	bool neg;
	uint64_t u = 0;
	int64_t s = 0;

	if (v.len >= 5 && p[0] == 0xca) {
		uint32_t bits = (uint32_t)be(p + 1, 4);
		float f;

		memcpy(&f, &bits, sizeof(f));
		*out = f;
		return 0;
	}
	if (v.len >= 9 && p[0] == 0xcb) {
		uint64_t bits = be(p + 1, 8);
		double d;

		memcpy(&d, &bits, sizeof(d));
		*out = d;
		return 0;
	}
	if (read_integer(v, &neg, &u, &s) != 0)
		return KP_EBADREQUEST;
	*out = neg ? (double)s : (double)u;
	return 0;
}

/* The payload of a str or bin view of the wanted type. */
static int read_payload(struct kp_mp_view v, enum kp_mp_type want,
			struct kp_mp_view *payload)
{
	struct hdr h;

	if (parse_hdr((const unsigned char *)v.ptr, v.len, &h) != 0 ||
	    h.type != want || h.payload > v.len - h.hsize)
		return KP_EBADREQUEST;
	payload->ptr = v.ptr + h.hsize;
	payload->len = (size_t)h.payload;
	return 0;
}

int kp_mp_read_str(struct kp_mp_view v, struct kp_mp_view *payload)
{
	return read_payload(v, KP_MP_STR, payload);
}

int kp_mp_read_bin(struct kp_mp_view v, struct kp_mp_view *payload)
{
	return read_payload(v, KP_MP_BIN, payload);
}

int kp_mp_is_nil(struct kp_mp_view v)
{
	return v.len > 0 && (unsigned char)v.ptr[0] == 0xc0;
}

static int container_begin(struct kp_mp_view v, enum kp_mp_type want,
			   struct kp_mp_iter *it)
{
	struct hdr h;

	if (parse_hdr((const unsigned char *)v.ptr, v.len, &h) != 0 ||
	    h.type != want)
		return KP_EBADREQUEST;
	it->pos = v.ptr + h.hsize;
	it->end = v.ptr + v.len;
	it->left = h.count;
	return 0;
}

int kp_mp_array_begin(struct kp_mp_view v, struct kp_mp_iter *it)
{
	return container_begin(v, KP_MP_ARRAY, it);
}

int kp_mp_map_begin(struct kp_mp_view v, struct kp_mp_iter *it)
{
	return container_begin(v, KP_MP_MAP, it);
}

/*
 * Takes the next object off the iterator; 0, or -1 (iteration ends).
 * Scalars, strings and binaries are sized from their header alone.
 */
static int take(struct kp_mp_iter *it, struct kp_mp_view *obj)
{
	size_t size, left = (size_t)(it->end - it->pos);
	const unsigned char *p = (const unsigned char *)it->pos;
	struct fmt f = left > 0 ? fmt_table[p[0]] : (struct fmt){ K_BAD, 0 };
	uint64_t payload;

	if (f.kind == K_FIXED && f.n <= left) {
		size = f.n;
	} else if (f.kind == K_SIZED && left >= 1u + f.n &&
		   (payload = be_len(p + 1, f.n)) <= left - 1 - f.n) {
		size = 1 + f.n + (size_t)payload;
	} else if (kp_mp_skip(it->pos, left, &size) != 0) {
		it->left = 0;
		return -1;
	}
	obj->ptr = it->pos;
	obj->len = size;
	it->pos += size;
	return 0;
}

int kp_mp_array_next(struct kp_mp_iter *it, struct kp_mp_view *item)
{
	if (it->left == 0 || take(it, item) != 0)
		return 0;
	it->left--;
	return 1;
}

int kp_mp_map_next(struct kp_mp_iter *it, struct kp_mp_view *key,
		   struct kp_mp_view *val)
{
	if (it->left == 0 || take(it, key) != 0 || take(it, val) != 0)
		return 0;
	it->left--;
	return 1;
}

int kp_mp_map_get(struct kp_mp_view map, const char *key,
		  struct kp_mp_view *val)
{
	struct kp_mp_iter it;
	struct kp_mp_view k, v, payload;

	if (kp_mp_map_begin(map, &it) != 0)
		return KP_EBADREQUEST;
	while (kp_mp_map_next(&it, &k, &v)) {
		if (kp_mp_read_str(k, &payload) == 0 &&
		    kp_mp_str_eq(payload, key)) {
			*val = v;
			return 1;
		}
	}
	return 0;
}

size_t kp_mp_encode_int(char *p, int64_t v)
{
	unsigned char *u = (unsigned char *)p;
	uint64_t x = (uint64_t)v;
	size_t n;

	if (v >= 0 && v < 128) {
		u[0] = (unsigned char)v;
		return 1;
	}
	if (v < 0 && v >= -32) {
		u[0] = (unsigned char)(0xe0 | (v & 0x1f));
		return 1;
	}
	if (v >= 0) {
		if (v <= UINT8_MAX)
			u[0] = 0xcc, n = 1;
		else if (v <= UINT16_MAX)
			u[0] = 0xcd, n = 2;
		else if (v <= (int64_t)UINT32_MAX)
			u[0] = 0xce, n = 4;
		else
			u[0] = 0xcf, n = 8;
	} else {
		if (v >= INT8_MIN)
			u[0] = 0xd0, n = 1;
		else if (v >= INT16_MIN)
			u[0] = 0xd1, n = 2;
		else if (v >= INT32_MIN)
			u[0] = 0xd2, n = 4;
		else
			u[0] = 0xd3, n = 8;
	}
	for (size_t i = 0; i < n; i++)
		u[1 + i] = (unsigned char)(x >> (8 * (n - 1 - i)));
	return 1 + n;
}

int kp_mp_decode_int(const char *buf, size_t len, int64_t *out)
{
	const unsigned char *u = (const unsigned char *)buf;
	uint64_t x = 0;
	size_t n;
	int is_signed;

	if (len == 0)
		return KP_EBADREQUEST;
	if (u[0] < 0x80 || u[0] >= 0xe0) {
		if (len != 1)
			return KP_EBADREQUEST;
		*out = (int8_t)u[0];
		return 0;
	}
	switch (u[0]) {
	case 0xcc: case 0xcd: case 0xce: case 0xcf:
		n = (size_t)1 << (u[0] - 0xcc);
		is_signed = 0;
		break;
	case 0xd0: case 0xd1: case 0xd2: case 0xd3:
		n = (size_t)1 << (u[0] - 0xd0);
		is_signed = 1;
		break;
	default:
		return KP_EBADREQUEST;
	}
	if (len != 1 + n)
		return KP_EBADREQUEST;
	for (size_t i = 0; i < n; i++)
		x = (x << 8) | u[1 + i];
	if (is_signed) {
		if (n < 8 && (x >> (8 * n - 1)) & 1)
			x |= ~(uint64_t)0 << (8 * n);
		*out = (int64_t)x;
		return 0;
	}
	if (x > (uint64_t)INT64_MAX)
		return KP_EBADREQUEST;
	*out = (int64_t)x;
	return 0;
}
