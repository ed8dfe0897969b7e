/*
 * proc_checkpoint.c - checkpoint files: a msgpack map holding positions,
 * counters and the view snapshot.
 */
#include "proc_checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "base/alloc.h"
#include "base/fsutil.h"
#include "base/mp.h"
#include "log/topic.h"
#include "wire/proto.h"

void kp_checkpoint_destroy(struct kp_checkpoint *c)
{
	kp_free(c->cursors);
	kp_free(c->marks);
	c->cursors = NULL;
	c->marks = NULL;
	c->cursor_count = c->mark_count = 0;
}

static void key(msgpack_packer *pk, const char *k)
{
	msgpack_pack_str_with_body(pk, k, strlen(k));
}

int kp_checkpoint_save(const struct kp_checkpoint *c, struct kp_view *view,
		       const char *dir)
{
	struct kp_buf out, snap;
	msgpack_packer pk;
	char path[4200];
	int rc;

	kp_buf_init(&out);
	kp_buf_init(&snap);
	rc = kp_view_serialize(view, &snap);
	if (rc != 0)
		goto done;
	msgpack_packer_init(&pk, &out, kp_buf_msgpack_write);
	msgpack_pack_map(&pk, 8);
	key(&pk, "version");
	msgpack_pack_uint32(&pk, c->version);
	key(&pk, "cursors");
	msgpack_pack_array(&pk, c->cursor_count);
	for (uint32_t i = 0; i < c->cursor_count; i++) {
		msgpack_pack_array(&pk, 3);
		key(&pk, c->cursors[i].topic);
		msgpack_pack_uint32(&pk, c->cursors[i].partition);
		msgpack_pack_uint64(&pk, c->cursors[i].offset);
	}
	key(&pk, "marks");
	msgpack_pack_array(&pk, c->mark_count);
	for (uint32_t i = 0; i < c->mark_count; i++) {
		msgpack_pack_array(&pk, 3);
		key(&pk, c->marks[i].topic);
		msgpack_pack_uint32(&pk, c->marks[i].partition);
		msgpack_pack_uint64(&pk, c->marks[i].end);
	}
	key(&pk, "processed");
	msgpack_pack_uint64(&pk, c->processed);
	key(&pk, "errors");
	msgpack_pack_uint64(&pk, c->errors);
	key(&pk, "dead_lettered");
	msgpack_pack_uint64(&pk, c->dead_lettered);
	key(&pk, "steps_done");
	msgpack_pack_uint64(&pk, c->steps_done);
	key(&pk, "view");
	msgpack_pack_bin_with_body(&pk, snap.data, snap.len);
	snprintf(path, sizeof(path), "%s/checkpoint", dir);
	rc = kp_file_write_atomic(path, out.data, out.len);
done:
	kp_buf_destroy(&snap);
	kp_buf_destroy(&out);
	return rc;
}

/* Reads an array of [topic, partition, number] triples. */
static int read_triples(struct kp_mp_view map, const char *field,
			void **items, size_t item_size, uint32_t *count)
{
	struct kp_mp_iter it, inner;
	struct kp_mp_view item, topic, part, num;
	uint32_t n, i = 0;
	char *arr;

	if (kp_field_array(map, field, &it, &n, NULL) != 0)
		return -1;
	arr = kp_calloc(n ? n : 1, item_size);
	if (arr == NULL)
		return -1;
	while (kp_mp_array_next(&it, &item) == 1) {
		char *slot = arr + (size_t)i * item_size;
		uint64_t p, v;

		if (kp_mp_array_begin(item, &inner) != 0 ||
		    kp_mp_array_next(&inner, &topic) != 1 ||
		    kp_mp_array_next(&inner, &part) != 1 ||
		    kp_mp_array_next(&inner, &num) != 1 ||
		    kp_mp_read_str(topic, &topic) != 0 || topic.len > 200 ||
		    kp_mp_read_uint(part, &p) != 0 ||
		    kp_mp_read_uint(num, &v) != 0) {
			kp_free(arr);
			return -1;
		}
		/* Both item types start with topic[201], partition, u64. */
		memcpy(slot, topic.ptr, topic.len);
		slot[topic.len] = '\0';
		if (item_size == sizeof(struct kp_ckpt_cursor)) {
			((struct kp_ckpt_cursor *)(void *)slot)->partition =
				(uint32_t)p;
			((struct kp_ckpt_cursor *)(void *)slot)->offset = v;
		} else {
			((struct kp_ckpt_mark *)(void *)slot)->partition =
				(uint32_t)p;
			((struct kp_ckpt_mark *)(void *)slot)->end = v;
		}
		i++;
	}
	*items = arr;
	*count = i;
	return 0;
}

static int decode(struct kp_checkpoint *c, struct kp_view *view,
		  struct kp_mp_view map, struct kp_error *err)
{
	struct kp_mp_view snap;
	uint64_t version;
	void *items;

	if (kp_field_uint(map, "version", &version, NULL) != 0 ||
	    kp_field_uint(map, "processed", &c->processed, NULL) != 0 ||
	    kp_field_uint(map, "errors", &c->errors, NULL) != 0 ||
	    kp_field_uint(map, "dead_lettered", &c->dead_lettered, NULL) != 0)
		return -1;
	c->version = (uint32_t)version;
	if (kp_field_uint(map, "steps_done", &c->steps_done, NULL) < 0)
		return -1;
	if (read_triples(map, "cursors", &items, sizeof(struct kp_ckpt_cursor),
			 &c->cursor_count) != 0)
		return -1;
	c->cursors = items;
	if (read_triples(map, "marks", &items, sizeof(struct kp_ckpt_mark),
			 &c->mark_count) != 0)
		return -1;
	c->marks = items;
	if (kp_field_raw(map, "view", &snap, NULL) != 0 ||
	    kp_mp_read_bin(snap, &snap) != 0)
		return -1;
	return kp_view_load(view, snap.ptr, snap.len, err) == 0 ? 0 : -1;
}

int kp_checkpoint_load(struct kp_checkpoint *c, struct kp_view *view,
		       const char *dir, struct kp_error *err)
{
	struct kp_buf data;
	struct kp_mp_view map;
	char path[4200];
	int rc;

	memset(c, 0, sizeof(*c));
	snprintf(path, sizeof(path), "%s/checkpoint", dir);
	kp_buf_init(&data);
	rc = kp_file_read(path, &data);
	if (rc == -ENOENT) {
		kp_buf_destroy(&data);
		return 1;
	}
	if (rc != 0) {
		kp_buf_destroy(&data);
		return kp_error_set(err, rc, "%s: %s", path, kp_error_text(rc));
	}
	if (kp_mp_validate_one(data.data, data.len, &map) != 0 ||
	    kp_mp_type(map) != KP_MP_MAP || decode(c, view, map, err) != 0) {
		kp_checkpoint_destroy(c);
		rc = kp_error_set(err, KP_ECORRUPT, "%s: damaged checkpoint",
				  path);
	}
	kp_buf_destroy(&data);
	return rc;
}
