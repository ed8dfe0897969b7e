/*
 * json_mp.c - JSON <-> msgpack conversions, compact JSON printing and
 * RFC 3339 parsing for kappactl. Pure functions over values: no I/O except
 * the FILE given to kp_ctl_json_dump. The rules are in json_mp.h.
 */
#include "json_mp.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"

/* Where dump_value writes: returns 0 or a negative code. */
struct sink {
	int (*write)(void *ud, const char *p, size_t n); /* appends n bytes */
	void *ud;                                         /* passed to write */
};

static int dump_value(const struct sink *s, const json_t *v);

int kp_ctl_json_pack(msgpack_packer *pk, const json_t *v)
{
	json_t *obj = (json_t *)v;
	void *it;
	size_t i, n;
	int rc = 0;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		rc = msgpack_pack_map(pk, json_object_size(v));
		for (it = json_object_iter(obj); it != NULL && rc == 0;
		     it = json_object_iter_next(obj, it)) {
			const char *key = json_object_iter_key(it);
			size_t klen = json_object_iter_key_len(it);

			rc = msgpack_pack_str_with_body(pk, key, klen);
			if (rc == 0)
				rc = kp_ctl_json_pack(pk, json_object_iter_value(it));
		}
		break;
	case JSON_ARRAY:
		n = json_array_size(v);
		rc = msgpack_pack_array(pk, n);
		for (i = 0; i < n && rc == 0; i++)
			rc = kp_ctl_json_pack(pk, json_array_get(v, i));
		break;
	case JSON_STRING:
		rc = msgpack_pack_str_with_body(pk, json_string_value(v),
						json_string_length(v));
		break;
	case JSON_INTEGER: {
		json_int_t x = json_integer_value(v);

		if (x >= 0)
			rc = msgpack_pack_uint64(pk, (uint64_t)x);
		else
			rc = msgpack_pack_int64(pk, (int64_t)x);
		break;
	}
	case JSON_REAL:
		rc = msgpack_pack_double(pk, json_real_value(v));
		break;
	case JSON_TRUE:
		rc = msgpack_pack_true(pk);
		break;
	case JSON_FALSE:
		rc = msgpack_pack_false(pk);
		break;
	case JSON_NULL:
		rc = msgpack_pack_nil(pk);
		break;
	}
	return rc == 0 ? 0 : -ENOMEM;
}

int kp_ctl_utf8_valid(const char *p, size_t len)
{
	const unsigned char *s = (const unsigned char *)p;
	size_t i = 0;

	while (i < len) {
		unsigned c = s[i];
		size_t need, k;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (len - i - 1 < need)
			return 0;
		for (k = 1; k <= need; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += need + 1;
	}
	return 1;
}

/* Appends "base64:" and the base64 of the len bytes at p to b. */
static int append_base64(struct kp_buf *b, const char *p, size_t len)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *s = (const unsigned char *)p;
	size_t i;
	char *o;
	int rc;

	rc = kp_buf_reserve(b, 7 + (len + 2) / 3 * 4);
	if (rc != 0)
		return rc;
	o = b->data + b->len;
	memcpy(o, "base64:", 7);
	o += 7;
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t x = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];

		*o++ = tab[x >> 18];
		*o++ = tab[(x >> 12) & 63];
		*o++ = tab[(x >> 6) & 63];
		*o++ = tab[x & 63];
	}
	if (i < len) {
		uint32_t x = (uint32_t)s[i] << 16;

		if (i + 1 < len)
			x |= (uint32_t)s[i + 1] << 8;
		*o++ = tab[x >> 18];
		*o++ = tab[(x >> 12) & 63];
		*o++ = i + 1 < len ? tab[(x >> 6) & 63] : '=';
		*o++ = '=';
	}
	b->len = (size_t)(o - b->data);
	return 0;
}

json_t *kp_ctl_bytes_to_json(const char *p, size_t len)
{
	struct kp_buf b;
	json_t *j;

	if (kp_ctl_utf8_valid(p, len))
		return json_stringn(len ? p : "", len);
	kp_buf_init(&b);
	if (append_base64(&b, p, len) != 0)
		return NULL;
	j = json_stringn_nocheck(b.data, b.len);
	kp_buf_destroy(&b);
	return j;
}

static int buf_write(void *ud, const char *p, size_t n)
{
	return kp_buf_append(ud, p, n);
}

/* The text of a map key that is not a str: see json_mp.h. */
static int key_text(const msgpack_object *k, struct kp_buf *b)
{
	struct sink s = { buf_write, b };
	char num[32];
	json_t *j;
	int rc;

	switch (k->type) {
	case MSGPACK_OBJECT_BIN:
		if (kp_ctl_utf8_valid(k->via.bin.ptr, k->via.bin.size))
			return kp_buf_append(b, k->via.bin.ptr, k->via.bin.size);
		return append_base64(b, k->via.bin.ptr, k->via.bin.size);
	case MSGPACK_OBJECT_STR:
		if (kp_ctl_utf8_valid(k->via.str.ptr, k->via.str.size))
			return kp_buf_append(b, k->via.str.ptr, k->via.str.size);
		return append_base64(b, k->via.str.ptr, k->via.str.size);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		snprintf(num, sizeof(num), "%" PRIu64, k->via.u64);
		return kp_buf_append(b, num, strlen(num));
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		snprintf(num, sizeof(num), "%" PRId64, k->via.i64);
		return kp_buf_append(b, num, strlen(num));
	default:
		j = kp_ctl_mp_to_json(k);
		if (j == NULL)
			return -ENOMEM;
		rc = dump_value(&s, j);
		json_decref(j);
		return rc;
	}
}

static json_t *map_to_json(const msgpack_object_map *m)
{
	json_t *obj = json_object();
	struct kp_buf key;
	uint32_t i;

	if (obj == NULL)
		return NULL;
	kp_buf_init(&key);
	for (i = 0; i < m->size; i++) {
		const msgpack_object_kv *kv = &m->ptr[i];
		json_t *val;

		kp_buf_reset(&key);
		if (key_text(&kv->key, &key) != 0 || kp_buf_reserve(&key, 1) != 0)
			goto fail;
		val = kp_ctl_mp_to_json(&kv->val);
		if (val == NULL)
			goto fail;
		if (json_object_setn_new_nocheck(obj, key.len ? key.data : "",
						 key.len, val) != 0)
			goto fail;
	}
	kp_buf_destroy(&key);
	return obj;
fail:
	kp_buf_destroy(&key);
	json_decref(obj);
	return NULL;
}

json_t *kp_ctl_mp_to_json(const msgpack_object *o)
{
	json_t *arr;
	uint32_t i;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return json_null();
	case MSGPACK_OBJECT_BOOLEAN:
		return json_boolean(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > (uint64_t)INT64_MAX)
			return json_real((double)o->via.u64);
		return json_integer((json_int_t)o->via.u64);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		return json_integer((json_int_t)o->via.i64);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		if (!isfinite(o->via.f64))
			return json_null();
		return json_real(o->via.f64);
	case MSGPACK_OBJECT_STR:
		return kp_ctl_bytes_to_json(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_BIN:
		return kp_ctl_bytes_to_json(o->via.bin.ptr, o->via.bin.size);
	case MSGPACK_OBJECT_ARRAY:
		arr = json_array();
		if (arr == NULL)
			return NULL;
		for (i = 0; i < o->via.array.size; i++) {
			if (json_array_append_new(arr, kp_ctl_mp_to_json(
						&o->via.array.ptr[i])) != 0) {
				json_decref(arr);
				return NULL;
			}
		}
		return arr;
	case MSGPACK_OBJECT_MAP:
		return map_to_json(&o->via.map);
	case MSGPACK_OBJECT_EXT:
	default:
		return json_null();
	}
}

json_t *kp_ctl_json_parse(const char *text, size_t len, char *errbuf,
			  size_t errlen)
{
	json_error_t jerr;
	json_t *v;

	v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	if (v == NULL && errlen > 0)
		snprintf(errbuf, errlen, "%s (column %d)", jerr.text, jerr.column);
	return v;
}

static int sink_str(const struct sink *s, const char *p)
{
	return s->write(s->ud, p, strlen(p));
}

static int dump_string(const struct sink *s, const char *p, size_t len)
{
	size_t i, run = 0;
	char esc[8];
	int rc;

	rc = s->write(s->ud, "\"", 1);
	for (i = 0; i < len && rc == 0; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		rc = s->write(s->ud, p + run, i - run);
		run = i + 1;
		switch (c) {
		case '"': strcpy(esc, "\\\""); break;
		case '\\': strcpy(esc, "\\\\"); break;
		case '\b': strcpy(esc, "\\b"); break;
		case '\f': strcpy(esc, "\\f"); break;
		case '\n': strcpy(esc, "\\n"); break;
		case '\r': strcpy(esc, "\\r"); break;
		case '\t': strcpy(esc, "\\t"); break;
		default: snprintf(esc, sizeof(esc), "\\u%04x", c); break;
		}
		if (rc == 0)
			rc = sink_str(s, esc);
	}
	if (rc == 0)
		rc = s->write(s->ud, p + run, len - run);
	if (rc == 0)
		rc = s->write(s->ud, "\"", 1);
	return rc;
}

/* The shortest %g text that reads back as d; always looks like a real. */
static void format_real(double d, char *out, size_t size)
{
	int prec;

	for (prec = 15; prec <= 17; prec++) {
		snprintf(out, size, "%.*g", prec, d);
		if (strtod(out, NULL) == d)
			break;
	}
	if (strpbrk(out, ".eE") == NULL && strlen(out) + 3 <= size)
		strcat(out, ".0");
}

static int dump_value(const struct sink *s, const json_t *v)
{
	json_t *obj = (json_t *)v;
	char num[40];
	size_t i, n;
	void *it;
	int rc = 0;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		rc = s->write(s->ud, "{", 1);
		for (it = json_object_iter(obj), i = 0; it != NULL && rc == 0;
		     it = json_object_iter_next(obj, it), i++) {
			if (i > 0)
				rc = s->write(s->ud, ",", 1);
			if (rc == 0)
				rc = dump_string(s, json_object_iter_key(it),
						 json_object_iter_key_len(it));
			if (rc == 0)
				rc = s->write(s->ud, ":", 1);
			if (rc == 0)
				rc = dump_value(s, json_object_iter_value(it));
		}
		return rc ? rc : s->write(s->ud, "}", 1);
	case JSON_ARRAY:
		rc = s->write(s->ud, "[", 1);
		n = json_array_size(v);
		for (i = 0; i < n && rc == 0; i++) {
			if (i > 0)
				rc = s->write(s->ud, ",", 1);
			if (rc == 0)
				rc = dump_value(s, json_array_get(v, i));
		}
		return rc ? rc : s->write(s->ud, "]", 1);
	case JSON_STRING:
		return dump_string(s, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
		return sink_str(s, num);
	case JSON_REAL:
		if (!isfinite(json_real_value(v)))
			return sink_str(s, "null");
		format_real(json_real_value(v), num, sizeof(num));
		return sink_str(s, num);
	case JSON_TRUE:
		return sink_str(s, "true");
	case JSON_FALSE:
		return sink_str(s, "false");
	case JSON_NULL:
	default:
		return sink_str(s, "null");
	}
}

static int file_write(void *ud, const char *p, size_t n)
{
	if (n > 0 && fwrite(p, 1, n, ud) != n)
		return -EIO;
	return 0;
}

int kp_ctl_json_dump(FILE *f, const json_t *v)
{
	struct sink s = { file_write, f };

	return dump_value(&s, v);
}

int kp_ctl_json_key_bytes(const json_t *v, char **out, size_t *len)
{
	struct sink s;
	struct kp_buf b;
	int rc;

	if (json_is_string(v)) {
		*len = json_string_length(v);
		*out = kp_strndup(json_string_value(v), *len);
		return *out ? 0 : -ENOMEM;
	}
	kp_buf_init(&b);
	s.write = buf_write;
	s.ud = &b;
	rc = dump_value(&s, v);
	if (rc == 0)
		rc = kp_buf_reserve(&b, 1);
	if (rc != 0) {
		kp_buf_destroy(&b);
		return rc;
	}
	b.data[b.len] = '\0';
	*out = kp_buf_detach(&b, len);
	return 0;
}

/* Reads exactly n decimal digits at *p into *out and advances *p. */
static int read_digits(const char **p, int n, int *out)
{
	int v = 0;

	while (n-- > 0) {
		if (**p < '0' || **p > '9')
			return -EINVAL;
		v = v * 10 + (**p - '0');
		(*p)++;
	}
	*out = v;
	return 0;
}

static int expect(const char **p, char c)
{
	if (**p != c)
		return -EINVAL;
	(*p)++;
	return 0;
}

/* Days from 1970-01-01 to the proleptic Gregorian date y-m-d. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : dim[m - 1];
}

/* Parses the time zone (Z or +hh:mm / -hh:mm) into minutes east of UTC. */
static int read_zone(const char **p, int *minutes)
{
	int sign, hh, mm;

	if (**p == 'Z' || **p == 'z') {
		(*p)++;
		*minutes = 0;
		return 0;
	}
	if (**p != '+' && **p != '-')
		return -EINVAL;
	sign = **p == '-' ? -1 : 1;
	(*p)++;
	if (read_digits(p, 2, &hh) || expect(p, ':') || read_digits(p, 2, &mm) ||
	    hh > 23 || mm > 59)
		return -EINVAL;
	*minutes = sign * (hh * 60 + mm);
	return 0;
}

int kp_ctl_rfc3339_parse(const char *s, int64_t *ms)
{
	const char *p = s;
	int y, mo, d, h, mi, sec, zone, frac = 0, nfrac = 0;
	int64_t secs;

	if (read_digits(&p, 4, &y) || expect(&p, '-') || read_digits(&p, 2, &mo) ||
	    expect(&p, '-') || read_digits(&p, 2, &d))
		return -EINVAL;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -EINVAL;
	p++;
	if (read_digits(&p, 2, &h) || expect(&p, ':') || read_digits(&p, 2, &mi) ||
	    expect(&p, ':') || read_digits(&p, 2, &sec))
		return -EINVAL;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		for (; *p >= '0' && *p <= '9'; p++, nfrac++) {
			if (nfrac < 3)
				frac = frac * 10 + (*p - '0');
		}
		for (; nfrac < 3; nfrac++)
			frac *= 10;
	}
	if (read_zone(&p, &zone) || *p != '\0')
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
	    mi > 59 || sec > 60)
		return -EINVAL;
	secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
	       h * 3600 + mi * 60 + sec - (int64_t)zone * 60;
	*ms = secs * 1000 + frac;
	return 0;
}

int kp_ctl_time_parse(const char *s, int64_t *ms)
{
	const char *p = s;
	char *end;
	long long v;

	if (*p == '-')
		p++;
	if (*p >= '0' && *p <= '9' && strspn(p, "0123456789") == strlen(p)) {
		errno = 0;
		v = strtoll(s, &end, 10);
		if (errno != 0 || *end != '\0')
			return -EINVAL;
		*ms = v;
		return 0;
	}
	return kp_ctl_rfc3339_parse(s, ms);
}
