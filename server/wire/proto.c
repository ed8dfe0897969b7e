/*
 * proto.c - the client protocol codec: frames, requests, typed fields,
 * produce records and responses (docs/PROTOCOL.md).
 *
 * Access pattern: requests are walked in place with mp.c, never copied or
 * unpacked into objects; responses are packed with msgpack-c's packer
 * straight into the connection's output kp_buf, header first, length
 * patched at the end.
 */
#include "proto.h"

#include <errno.h>
#include <string.h>

int kp_frame_check(const char *buf, size_t len, uint32_t max_frame,
		   uint32_t *body_len)
{
	uint32_t n;

	if (len < KP_FRAME_HEADER_SIZE)
		return 0;
	n = kp_get_be32(buf);
	if (n == 0 || n > max_frame)
		return KP_EBADFRAME;
	if (len - KP_FRAME_HEADER_SIZE < n)
		return 0;
	*body_len = n;
	return 1;
}

/* Reads the id of a map that is well formed up to its end. */
static int decode_id(struct kp_request *req, struct kp_error *err)
{
	uint64_t id;
	int rc = kp_field_uint(req->map, "id", &id, err);

	if (rc == 1)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'id' is required");
	if (rc != 0)
		return rc;
	req->id = id;
	return 0;
}

int kp_request_decode(const char *body, size_t len, struct kp_request *req,
		      struct kp_error *err)
{
	size_t size;
	bool is_map;
	int rc;

	kp_error_clear(err);
	req->id = 0;
	req->op.ptr = NULL;
	req->op.len = 0;
	req->map.ptr = body;
	req->map.len = len;
	if (kp_mp_skip(body, len, &size) != 0)
		return kp_error_set(err, KP_EBADMSGPACK,
				    "body is not a well-formed msgpack value");
	req->map.len = size;
	is_map = kp_mp_type(req->map) == KP_MP_MAP;
	rc = is_map ? decode_id(req, err) : 0;
	if (size != len) {
		kp_error_clear(err);
		return kp_error_set(err, KP_EBADMSGPACK,
				    "%zu bytes after the request value",
				    len - size);
	}
	if (!is_map)
		return kp_error_set(err, KP_EBADREQUEST,
				    "request must be a map, got %s",
				    kp_mp_type_name(kp_mp_type(req->map)));
	if (rc != 0)
		return rc;
	rc = kp_field_str(req->map, "op", &req->op, err);
	if (rc == 1)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'op' is required");
	return rc;
}

bool kp_request_is(const struct kp_request *req, const char *op)
{
	return req->op.ptr != NULL && kp_mp_str_eq(req->op, op);
}

/*
 * Finds a field for a getter: 0 and *val when present and not nil, 1 when
 * absent or nil, KP_EBADREQUEST when map is not a map.
 */
static int lookup(struct kp_mp_view map, const char *field,
		  struct kp_mp_view *val, struct kp_error *err)
{
	int rc = kp_mp_map_get(map, field, val);

	if (rc < 0)
		return kp_error_set(err, KP_EBADREQUEST,
				    "looking up field '%s' in a %s, not a map",
				    field, kp_mp_type_name(kp_mp_type(map)));
	if (rc == 0 || kp_mp_is_nil(*val))
		return 1;
	return 0;
}

static int wrong_type(struct kp_error *err, const char *field,
		      const char *want, struct kp_mp_view val)
{
	return kp_error_set(err, KP_EBADREQUEST, "field '%s' must be %s, got %s",
			    field, want, kp_mp_type_name(kp_mp_type(val)));
}

int kp_field_str(struct kp_mp_view map, const char *field,
		 struct kp_mp_view *out, struct kp_error *err)
{
	struct kp_mp_view val;
	int rc = lookup(map, field, &val, err);

	if (rc != 0)
		return rc;
	if (kp_mp_read_str(val, out) != 0)
		return wrong_type(err, field, "str", val);
	return 0;
}

int kp_field_uint(struct kp_mp_view map, const char *field, uint64_t *out,
		  struct kp_error *err)
{
	struct kp_mp_view val;
	int rc = lookup(map, field, &val, err);

	if (rc != 0)
		return rc;
	if (kp_mp_read_uint(val, out) != 0)
		return wrong_type(err, field, "uint", val);
	return 0;
}

/* Checks a found value as an int; err names the field. */
static int take_int(struct kp_mp_view val, const char *field, int64_t *out,
		    struct kp_error *err)
{
	if (kp_mp_read_int(val, out) == 0)
		return 0;
	if (kp_mp_type(val) == KP_MP_UINT)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field '%s' must be int, got uint above "
				    "the int64 range", field);
	return wrong_type(err, field, "int", val);
}

int kp_field_int(struct kp_mp_view map, const char *field, int64_t *out,
		 struct kp_error *err)
{
	struct kp_mp_view val;
	int rc = lookup(map, field, &val, err);

	if (rc != 0)
		return rc;
	return take_int(val, field, out, err);
}

int kp_field_bool(struct kp_mp_view map, const char *field, bool *out,
		  struct kp_error *err)
{
	struct kp_mp_view val;
	int rc = lookup(map, field, &val, err);

	if (rc != 0)
		return rc;
	if (kp_mp_read_bool(val, out) != 0)
		return wrong_type(err, field, "bool", val);
	return 0;
}

int kp_field_raw(struct kp_mp_view map, const char *field,
		 struct kp_mp_view *out, struct kp_error *err)
{
	struct kp_mp_view val;
	int rc = lookup(map, field, &val, err);

	if (rc != 0)
		return rc;
	*out = val;
	return 0;
}

/* Checks a found value as str or bin and gives its payload. */
static int take_bytes(struct kp_mp_view val, const char *field,
		      struct kp_mp_view *out, struct kp_error *err)
{
	if (kp_mp_read_str(val, out) != 0 && kp_mp_read_bin(val, out) != 0)
		return wrong_type(err, field, "str or bin", val);
	return 0;
}

int kp_field_bytes(struct kp_mp_view map, const char *field,
		   struct kp_mp_view *out, struct kp_error *err)
{
	struct kp_mp_view val;
	int rc = lookup(map, field, &val, err);

	if (rc != 0)
		return rc;
	return take_bytes(val, field, out, err);
}

int kp_field_array(struct kp_mp_view map, const char *field,
		   struct kp_mp_iter *out, uint32_t *count,
		   struct kp_error *err)
{
	struct kp_mp_view val;
	int rc = lookup(map, field, &val, err);

	if (rc != 0)
		return rc;
	if (kp_mp_array_begin(val, out) != 0)
		return wrong_type(err, field, "array", val);
	if (count != NULL)
		*count = out->left;
	return 0;
}

int kp_field_map(struct kp_mp_view map, const char *field,
		 struct kp_mp_view *out, struct kp_error *err)
{
	struct kp_mp_view val;
	int rc = lookup(map, field, &val, err);

	if (rc != 0)
		return rc;
	if (kp_mp_type(val) != KP_MP_MAP)
		return wrong_type(err, field, "map", val);
	*out = val;
	return 0;
}

/* The record fields, first occurrence of each, found in one pass. */
struct record_fields {
	struct kp_mp_view value, key, ts;  /* len 0 when absent */
};

static void find_record_fields(struct kp_mp_view item,
			       struct record_fields *f)
{
	struct kp_mp_iter it;
	struct kp_mp_view k, v, name;
	struct kp_mp_view *slot;

	memset(f, 0, sizeof(*f));
	kp_mp_map_begin(item, &it);
	while (kp_mp_map_next(&it, &k, &v)) {
		if (kp_mp_read_str(k, &name) != 0)
			continue;
		if (kp_mp_str_eq(name, "value"))
			slot = &f->value;
		else if (kp_mp_str_eq(name, "key"))
			slot = &f->key;
		else if (kp_mp_str_eq(name, "ts"))
			slot = &f->ts;
		else
			continue;
		if (slot->len == 0)
			*slot = v;
	}
}

int kp_produce_record_decode(struct kp_mp_view item,
			     struct kp_produce_record *rec,
			     struct kp_error *err)
{
	struct record_fields f;
	struct kp_mp_view key;
	int64_t ts;
	int rc;

	if (kp_mp_type(item) != KP_MP_MAP)
		return kp_error_set(err, KP_EBADREQUEST,
				    "each record must be a map, got %s",
				    kp_mp_type_name(kp_mp_type(item)));
	memset(rec, 0, sizeof(*rec));
	find_record_fields(item, &f);
	if (f.value.len == 0)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'value' is required in each record");
	if (f.value.len > UINT32_MAX)
		return kp_error_set(err, KP_ETOOLARGE, "record value too large");
	rec->value = f.value.ptr;
	rec->value_len = (uint32_t)f.value.len;
	if (f.key.len > 0 && !kp_mp_is_nil(f.key)) {
		rc = take_bytes(f.key, "key", &key, err);
		if (rc != 0)
			return rc;
		if (key.len > UINT32_MAX)
			return kp_error_set(err, KP_ETOOLARGE,
					    "record key too large");
		rec->key = key.ptr;
		rec->key_len = (uint32_t)key.len;
	}
	if (f.ts.len > 0 && !kp_mp_is_nil(f.ts)) {
		rc = take_int(f.ts, "ts", &ts, err);
		if (rc != 0)
			return rc;
		rec->has_ts = true;
		rec->ts = ts;
	}
	return 0;
}

/* The packer's write callback for responses: remembers a failed write. */
static int on_response_write(void *data, const char *buf, size_t len)
{
	struct kp_response *r = data;

	if (r->oom)
		return -1;
	if (kp_buf_append(r->out, buf, len) != 0) {
		r->oom = 1;
		return -1;
	}
	return 0;
}

/* Starts the frame: a length placeholder and the map header. */
static void response_start(struct kp_response *r, struct kp_buf *out,
			   uint64_t id, bool ok, uint32_t entries)
{
	static const char placeholder[KP_FRAME_HEADER_SIZE];

	r->out = out;
	r->start = out->len;
	r->oom = 0;
	msgpack_packer_init(&r->pk, r, on_response_write);
	on_response_write(r, placeholder, sizeof(placeholder));
	msgpack_pack_map(&r->pk, entries);
	kp_response_key(r, "id");
	msgpack_pack_uint64(&r->pk, id);
	kp_response_key(r, "ok");
	if (ok)
		msgpack_pack_true(&r->pk);
	else
		msgpack_pack_false(&r->pk);
}

void kp_response_begin(struct kp_response *r, struct kp_buf *out, uint64_t id,
		       uint32_t fields)
{
	response_start(r, out, id, true, 2 + fields);
}

void kp_response_begin_error(struct kp_response *r, struct kp_buf *out,
			     uint64_t id, int code, const char *message,
			     uint32_t extra)
{
	if (message == NULL || message[0] == '\0')
		message = kp_error_text(code);
	response_start(r, out, id, false, 4 + extra);
	kp_response_key(r, "error");
	msgpack_pack_str_with_body(&r->pk, kp_error_name(code),
				   strlen(kp_error_name(code)));
	kp_response_key(r, "message");
	msgpack_pack_str_with_body(&r->pk, message, strlen(message));
}

void kp_response_key(struct kp_response *r, const char *key)
{
	msgpack_pack_str_with_body(&r->pk, key, strlen(key));
}

void kp_response_str(struct kp_response *r, const char *s, size_t len)
{
	msgpack_pack_str_with_body(&r->pk, s, len);
}

int kp_response_finish(struct kp_response *r)
{
	size_t body;

	if (r->oom) {
		r->out->len = r->start;
		return -ENOMEM;
	}
	body = r->out->len - r->start - KP_FRAME_HEADER_SIZE;
	if (body > UINT32_MAX) {
		r->out->len = r->start;
		return KP_ETOOLARGE;
	}
	kp_put_be32(r->out->data + r->start, (uint32_t)body);
	return 0;
}

int kp_response_error(struct kp_buf *out, uint64_t id, int code,
		      const char *message)
{
	struct kp_response r;

	kp_response_begin_error(&r, out, id, code, message, 0);
	return kp_response_finish(&r);
}

int kp_buf_msgpack_write(void *data, const char *buf, size_t len)
{
	return kp_buf_append(data, buf, len) == 0 ? 0 : -1;
}

uint32_t kp_fnv1a32(const char *key, size_t len)
{
	const unsigned char *p = (const unsigned char *)key;
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 16777619u;
	}
	return h;
}

void kp_response_pair_str(struct kp_response *r, const char *key,
			  const char *value)
{
	kp_response_key(r, key);
	if (value == NULL)
		msgpack_pack_nil(&r->pk);
	else
		kp_response_str(r, value, strlen(value));
}

void kp_response_pair_u64(struct kp_response *r, const char *key,
			  uint64_t value)
{
	kp_response_key(r, key);
	msgpack_pack_uint64(&r->pk, value);
}
