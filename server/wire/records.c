/*
 * records.c - a produce request's records, validated and decoded in one
 * walk (records.h).
 *
 * Access pattern: one forward pass over the array's bytes. Each item's map
 * header is read here; each key and value is sized by kp_mp_skip_at at the
 * depth it sits at (a scalar, str or bin costs one look-up of its format
 * byte), and the record's fields are taken from the views as they go by.
 * The decoded records are an array of small structs borrowed from the
 * frame, allocated once per request for at most one record per
 * KP_RECORD_MIN_BYTES of the array.
 */
#include "records.h"

#include <errno.h>
#include <string.h>

#include "base/alloc.h"

void kp_records_init(struct kp_records *r)
{
	memset(r, 0, sizeof(*r));
}

void kp_records_destroy(struct kp_records *r)
{
	if (r == NULL)
		return;
	kp_free(r->rec);
	kp_records_init(r);
}

/* The fields of one record, first occurrence of each; len 0: absent. */
struct record_fields {
	struct kp_mp_view value, key, ts;
	bool is_map;              /* false: the item is not a map at all */
	enum kp_mp_type type;     /* the item's type */
};

/* The str payload of a key whose bytes are key (already validated). */
static bool key_name(struct kp_mp_view key, struct kp_mp_view *name)
{
	unsigned char c = (unsigned char)key.ptr[0];

	if (c >= 0xa0 && c <= 0xbf) {
		name->ptr = key.ptr + 1;
		name->len = c & 0x1fu;
		return true;
	}
	return kp_mp_read_str(key, name) == 0;
}

static void note_field(struct record_fields *f, struct kp_mp_view name,
		       struct kp_mp_view val)
{
	struct kp_mp_view *slot;

	if (name.len == 5 && memcmp(name.ptr, "value", 5) == 0)
		slot = &f->value;
	else if (name.len == 3 && memcmp(name.ptr, "key", 3) == 0)
		slot = &f->key;
	else if (name.len == 2 && memcmp(name.ptr, "ts", 2) == 0)
		slot = &f->ts;
	else
		return;
	if (slot->len == 0)
		*slot = val;
}

/*
 * Validates the item at buf (len bytes left, `depth` containers deep) and
 * finds its record fields. Sets *size. Returns 0 or KP_EBADMSGPACK.
 */
static int scan_item(const char *buf, size_t len, int depth,
		     struct record_fields *f, size_t *size)
{
	uint32_t pairs;
	size_t pos, n;
	int rc;

	memset(f, 0, sizeof(*f));
	rc = kp_mp_container_header(buf, len, KP_MP_MAP, &pairs, &pos);
	if (rc == KP_EBADREQUEST) {
		f->type = kp_mp_type((struct kp_mp_view){ buf, len });
		return kp_mp_skip_at(buf, len, depth, size);
	}
	if (rc != 0 || depth >= KP_MP_MAX_DEPTH)
		return KP_EBADMSGPACK;
	f->is_map = true;
	f->type = KP_MP_MAP;
	for (uint32_t i = 0; i < pairs; i++) {
		struct kp_mp_view key, name, val;

		if (kp_mp_skip_at(buf + pos, len - pos, depth + 1, &n) != 0)
			return KP_EBADMSGPACK;
		key.ptr = buf + pos;
		key.len = n;
		pos += n;
		if (kp_mp_skip_at(buf + pos, len - pos, depth + 1, &n) != 0)
			return KP_EBADMSGPACK;
		val.ptr = buf + pos;
		val.len = n;
		pos += n;
		if (key_name(key, &name))
			note_field(f, name, val);
	}
	*size = pos;
	return 0;
}

static int wrong_type(struct kp_error *err, const char *field,
		      const char *want, struct kp_mp_view val)
{
	return kp_error_set(err, KP_EBADREQUEST, "field '%s' must be %s, got %s",
			    field, want, kp_mp_type_name(kp_mp_type(val)));
}

/* The checks of PROTOCOL.md on a record's fields; fills rec. */
static int record_from_fields(const struct record_fields *f,
			      struct kp_produce_record *rec,
			      struct kp_error *err)
{
	struct kp_mp_view key;

	if (!f->is_map)
		return kp_error_set(err, KP_EBADREQUEST,
				    "each record must be a map, got %s",
				    kp_mp_type_name(f->type));
	memset(rec, 0, sizeof(*rec));
	if (f->value.len == 0)
		return kp_error_set(err, KP_EBADREQUEST,
				    "field 'value' is required in each record");
	if (f->value.len > UINT32_MAX)
		return kp_error_set(err, KP_ETOOLARGE, "record value too large");
	rec->value = f->value.ptr;
	rec->value_len = (uint32_t)f->value.len;
	if (f->key.len > 0 && !kp_mp_is_nil(f->key)) {
		if (kp_mp_read_str(f->key, &key) != 0 &&
		    kp_mp_read_bin(f->key, &key) != 0)
			return wrong_type(err, "key", "str or bin", f->key);
		if (key.len > UINT32_MAX)
			return kp_error_set(err, KP_ETOOLARGE,
					    "record key too large");
		rec->key = key.ptr;
		rec->key_len = (uint32_t)key.len;
	}
	if (f->ts.len > 0 && !kp_mp_is_nil(f->ts)) {
		if (kp_mp_read_int(f->ts, &rec->ts) != 0) {
			if (kp_mp_type(f->ts) == KP_MP_UINT)
				return kp_error_set(err, KP_EBADREQUEST,
						    "field 'ts' must be int, got uint above the int64 range");
			return wrong_type(err, "ts", "int", f->ts);
		}
		rec->has_ts = true;
	}
	return 0;
}

int kp_produce_record_decode(struct kp_mp_view item,
			     struct kp_produce_record *rec,
			     struct kp_error *err)
{
	struct record_fields f;
	size_t size;

	if (scan_item(item.ptr, item.len, 0, &f, &size) != 0)
		return kp_error_set(err, KP_EBADREQUEST,
				    "record is not well-formed msgpack");
	return record_from_fields(&f, rec, err);
}

/* Room for the records of an array of `count` items in `bytes` bytes. */
static int reserve(struct kp_records *r, uint32_t count, size_t bytes)
{
	size_t cap = bytes / KP_RECORD_MIN_BYTES + 1;

	if (cap > count)
		cap = count;
	if (cap <= r->cap)
		return 0;
	kp_free(r->rec);
	r->cap = 0;
	r->rec = kp_malloc(cap * sizeof(*r->rec));
	if (r->rec == NULL)
		return -ENOMEM;
	r->cap = (uint32_t)cap;
	return 0;
}

/* Decodes item i into r, or notes why it is not a record. */
static void take_record(struct kp_records *r, uint32_t i,
			const struct record_fields *f)
{
	struct kp_error err;
	int rc;

	kp_error_clear(&err);
	rc = r->ok < r->cap ? record_from_fields(f, &r->rec[r->ok], &err)
			    : kp_error_set(&err, KP_EBADREQUEST,
					   "more records than the frame can hold");
	if (rc == 0) {
		r->ok++;
		return;
	}
	kp_error_set(&r->err, rc, "records[%u]: %s", i, err.msg);
}

int kp_records_scan(const char *buf, size_t len, int depth,
		    struct kp_records *r, size_t *size)
{
	uint32_t count;
	size_t pos, n;
	int rc = kp_mp_container_header(buf, len, KP_MP_ARRAY, &count, &pos);

	if (rc != 0)
		return rc;
	if (depth >= KP_MP_MAX_DEPTH)
		return KP_EBADMSGPACK;
	r->count = count;
	r->ok = 0;
	kp_error_clear(&r->err);
	rc = reserve(r, count, len - pos);
	if (rc != 0)
		return rc;
	for (uint32_t i = 0; i < count; i++) {
		struct record_fields f;

		if (r->err.code != 0) {
			rc = kp_mp_skip_at(buf + pos, len - pos, depth + 1, &n);
		} else {
			rc = scan_item(buf + pos, len - pos, depth + 1, &f, &n);
			if (rc == 0)
				take_record(r, i, &f);
		}
		if (rc != 0)
			return KP_EBADMSGPACK;
		pos += n;
	}
	*size = pos;
	return 0;
}
