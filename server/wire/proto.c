/*
 * proto.c - the client protocol codec: frames, requests, typed fields,
 * produce records and responses (docs/PROTOCOL.md).
 *
 * Access pattern: a request body is walked once, in place, with mp.c: the
 * walk validates it, indexes its top-level fields and (for produce) decodes
 * its records (records.c); nothing is copied or unpacked into objects; responses are packed with msgpack-c's packer
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

/*
 * Walks the top-level map of a body once: validates each key and value as
 * kp_mp_skip would the whole body, indexes the str-keyed pairs, and decodes
 * the first "records" field into recs (when not NULL) while validating it.
 * A body that is not a map is only validated. Sets *size to the value's
 * bytes. Returns 0, KP_EBADMSGPACK or -ENOMEM.
 */
static int walk_request(const char *body, size_t len, struct kp_request *req,
			struct kp_records *recs, size_t *size)
{
	bool records_seen = false;
	uint32_t pairs;
	size_t pos, n;
	int rc = kp_mp_container_header(body, len, KP_MP_MAP, &pairs, &pos);

	if (rc == KP_EBADREQUEST)
		return kp_mp_skip(body, len, size);
	if (rc != 0)
		return rc;
	req->all_fields = true;
	for (uint32_t i = 0; i < pairs; i++) {
		struct kp_mp_view key, name, val;
		bool named;

		if (kp_mp_skip_at(body + pos, len - pos, 1, &n) != 0)
			return KP_EBADMSGPACK;
		key.ptr = body + pos;
		key.len = n;
		pos += n;
		named = kp_mp_read_str(key, &name) == 0;
		rc = KP_EBADREQUEST;
		if (named && !records_seen && kp_mp_str_eq(name, "records")) {
			records_seen = true;
			if (recs != NULL) {
				rc = kp_records_scan(body + pos, len - pos, 1,
						     recs, &n);
				if (rc == 0)
					req->records = recs;
			}
		}
		if (rc == KP_EBADREQUEST)
			rc = kp_mp_skip_at(body + pos, len - pos, 1, &n);
		if (rc != 0)
			return rc;
		val.ptr = body + pos;
		val.len = n;
		pos += n;
		if (!named)
			continue;
		if (req->nfields < KP_REQUEST_FIELDS)
			req->fields[req->nfields++] =
				(struct kp_request_field){ name, val };
		else
			req->all_fields = false;
	}
	*size = pos;
	return 0;
}

/* Reads the id of a map that is well formed up to its end. */
static int decode_id(struct kp_request *req, struct kp_error *err)
{
	uint64_t id;
	int rc = kp_request_field_uint(req, "id", &id, err);

	if (rc == 1)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'id' is required");
	if (rc != 0)
		return rc;
	req->id = id;
	return 0;
}

int kp_request_decode_records(const char *body, size_t len,
			      struct kp_request *req, struct kp_records *recs,
			      struct kp_error *err)
{
	size_t size = 0;
	bool is_map;
	int rc;

	kp_error_clear(err);
	req->id = 0;
	req->op.ptr = NULL;
	req->op.len = 0;
	req->map.ptr = body;
	req->map.len = len;
	req->nfields = 0;
	req->all_fields = false;
	req->records = NULL;
	rc = walk_request(body, len, req, recs, &size);
	if (rc == -ENOMEM)
		return kp_error_set(err, rc, "out of memory");
	if (rc != 0) {
		req->records = NULL;
		req->nfields = 0;
		req->all_fields = false;
		return kp_error_set(err, KP_EBADMSGPACK,
				    "body is not a well-formed msgpack value (truncated, a reserved byte, a length past the frame, or arrays and maps nested more than %d deep)",
				    KP_MP_MAX_DEPTH);
	}
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
	rc = kp_request_field_str(req, "op", &req->op, err);
	if (rc == 1)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'op' is required");
	return rc;
}

int kp_request_decode(const char *body, size_t len, struct kp_request *req,
		      struct kp_error *err)
{
	return kp_request_decode_records(body, len, req, NULL, err);
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

/*
 * lookup() for a top-level field of a decoded request: from its index,
 * falling back to a walk only for fields past the index.
 */
static int request_lookup(const struct kp_request *req, const char *field,
			  struct kp_mp_view *val, struct kp_error *err)
{
	for (uint32_t i = 0; i < req->nfields; i++) {
		if (!kp_mp_str_eq(req->fields[i].name, field))
			continue;
		if (kp_mp_is_nil(req->fields[i].val))
			return 1;
		*val = req->fields[i].val;
		return 0;
	}
	if (req->all_fields)
		return 1;
	return lookup(req->map, field, val, err);
}

int kp_request_field_str(const struct kp_request *req, const char *field,
			 struct kp_mp_view *out, struct kp_error *err)
{
	struct kp_mp_view val;
	int rc = request_lookup(req, field, &val, err);

	if (rc != 0)
		return rc;
	if (kp_mp_read_str(val, out) != 0)
		return wrong_type(err, field, "str", val);
	return 0;
}

int kp_request_field_uint(const struct kp_request *req, const char *field,
			  uint64_t *out, struct kp_error *err)
{
	struct kp_mp_view val;
	int rc = request_lookup(req, field, &val, err);

	if (rc != 0)
		return rc;
	if (kp_mp_read_uint(val, out) != 0)
		return wrong_type(err, field, "uint", val);
	return 0;
}

int kp_request_field_raw(const struct kp_request *req, const char *field,
			 struct kp_mp_view *out, struct kp_error *err)
{
	return request_lookup(req, field, out, err);
}

int kp_request_field_array(const struct kp_request *req, const char *field,
			   struct kp_mp_iter *out, uint32_t *count,
			   struct kp_error *err)
{
	struct kp_mp_view val;
	int rc = request_lookup(req, field, &val, err);

	if (rc != 0)
		return rc;
	if (kp_mp_array_begin(val, out) != 0)
		return wrong_type(err, field, "array", val);
	if (count != NULL)
		*count = out->left;
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
