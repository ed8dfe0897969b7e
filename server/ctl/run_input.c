/*
 * run_input.c - the lines `kappactl run --input` reads; see run_input.h.
 */
#include "run_input.h"

#include <errno.h>
#include <string.h>

#include "json_mp.h"
#include "base/alloc.h"

/* The members a record line may have to count as a record in auto mode. */
static const char *const record_members[] = {
	"topic", "partition", "offset", "ts", "key", "value", "provenance",
};

static int is_record_member(const char *name)
{
	for (size_t i = 0; i < sizeof(record_members) / sizeof(record_members[0]);
	     i++) {
		if (strcmp(name, record_members[i]) == 0)
			return 1;
	}
	return 0;
}

enum kp_ctl_run_shape kp_ctl_run_shape_of(const json_t *v)
{
	const char *name;
	json_t *m;

	if (!json_is_object(v))
		return KP_CTL_RUN_VALUE;
	if (json_object_size(v) == 1 && json_object_get(v, "view") != NULL)
		return KP_CTL_RUN_VIEW;
	if (json_object_get(v, "topic") == NULL ||
	    json_object_get(v, "value") == NULL)
		return KP_CTL_RUN_VALUE;
	json_object_foreach((json_t *)v, name, m) {
		if (!is_record_member(name))
			return KP_CTL_RUN_VALUE;
	}
	return KP_CTL_RUN_RECORD;
}

/* The value of a base64 digit, or -1. */
static int b64_digit(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int kp_ctl_base64_decode(const char *s, size_t len, char *out, size_t *outlen)
{
	size_t i, o = 0;

	if (len % 4 != 0)
		return -EINVAL;
	for (i = 0; i < len; i += 4) {
		int d[4], pad = 0;

		for (int j = 0; j < 4; j++) {
			unsigned char c = (unsigned char)s[i + j];

			d[j] = b64_digit(c);
			if (c == '=' && i + 4 == len && j >= 2 &&
			    (j == 3 || s[i + 3] == '=')) {
				d[j] = 0;
				pad++;
			} else if (d[j] < 0) {
				return -EINVAL;
			}
		}
		out[o++] = (char)(d[0] << 2 | d[1] >> 4);
		if (pad < 2)
			out[o++] = (char)((d[1] & 15) << 4 | d[2] >> 2);
		if (pad < 1)
			out[o++] = (char)((d[2] & 3) << 6 | d[3]);
	}
	*outlen = o;
	return 0;
}

/* The bytes of key k (see kp_ctl_run_rec_parse) into r. */
static int key_bytes(const json_t *k, struct kp_ctl_run_rec *r)
{
	const char *s = json_string_value(k);
	size_t len = json_string_length(k), n;

	if (json_is_null(k))
		return 0;
	if (!json_is_string(k))
		return kp_ctl_json_key_bytes(k, &r->key, &r->key_len);
	if (len > 7 && memcmp(s, "base64:", 7) == 0) {
		char *b = kp_malloc(len / 4 * 3 + 1);

		if (b == NULL)
			return -ENOMEM;
		if (kp_ctl_base64_decode(s + 7, len - 7, b, &n) == 0 &&
		    !kp_ctl_utf8_valid(b, n)) {
			r->key = b;
			r->key_len = n;
			return 0;
		}
		kp_free(b);
	}
	r->key = kp_malloc(len + 1);
	if (r->key == NULL)
		return -ENOMEM;
	memcpy(r->key, s, len);
	r->key_len = len;
	return 0;
}

/* Member name of v, NULL when absent or null. */
static const json_t *given(const json_t *v, const char *name)
{
	const json_t *m = json_object_get(v, name);

	return json_is_null(m) ? NULL : m;
}

int kp_ctl_run_rec_parse(const json_t *v, struct kp_ctl_run_rec *r,
			 struct kp_error *err)
{
	const json_t *m;
	int rc;

	memset(r, 0, sizeof(*r));
	r->value = json_object_get(v, "value");
	if (!json_is_object(v) || r->value == NULL)
		return kp_error_set(err, -EINVAL,
				    "not a record (an object with \"value\")");
	m = given(v, "topic");
	if (m != NULL && !json_is_string(m))
		return kp_error_set(err, -EINVAL, "\"topic\" is not a string");
	r->topic = json_string_value(m);
	m = given(v, "partition");
	if (m != NULL && (!json_is_integer(m) || json_integer_value(m) < 0 ||
			  json_integer_value(m) > UINT32_MAX))
		return kp_error_set(err, -EINVAL, "\"partition\" is not a partition number");
	r->has_partition = m != NULL;
	r->partition = m ? (uint32_t)json_integer_value(m) : 0;
	m = given(v, "offset");
	if (m != NULL && (!json_is_integer(m) || json_integer_value(m) < 0))
		return kp_error_set(err, -EINVAL, "\"offset\" is not an offset");
	r->has_offset = m != NULL;
	r->offset = m ? (uint64_t)json_integer_value(m) : 0;
	m = given(v, "ts");
	if (json_is_integer(m))
		r->ts = (int64_t)json_integer_value(m);
	else if (m != NULL && !(json_is_string(m) &&
				kp_ctl_time_parse(json_string_value(m), &r->ts) == 0))
		return kp_error_set(err, -EINVAL, "\"ts\" is not a time (epoch ms or RFC 3339)");
	r->has_ts = m != NULL;
	m = given(v, "key");
	rc = m != NULL ? key_bytes(m, r) : 0;
	if (rc != 0)
		return kp_error_set(err, rc, "out of memory");
	return 0;
}

void kp_ctl_run_rec_destroy(struct kp_ctl_run_rec *r)
{
	kp_free(r->key);
	r->key = NULL;
	r->key_len = 0;
}
