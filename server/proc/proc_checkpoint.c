/*
 * proc_checkpoint.c - checkpoints: a msgpack map of positions and counters,
 * committed as a meta record of the view's store together with the view's
 * changed keys (view.h), so the two never disagree. Checkpoint files of
 * older data directories (the map plus a "view" snapshot) are taken over
 * on first load.
 */
#include "proc_checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>

#include "base/alloc.h"
#include "base/logging.h"
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

/* Packs c's fields (everything but the view) as a msgpack map. */
static void pack_fields(msgpack_packer *pk, const struct kp_checkpoint *c)
{
	msgpack_pack_map(pk, 8);
	key(pk, "at_ms");
	msgpack_pack_int64(pk, c->at_ms);
	key(pk, "version");
	msgpack_pack_uint32(pk, c->version);
	key(pk, "cursors");
	msgpack_pack_array(pk, c->cursor_count);
	for (uint32_t i = 0; i < c->cursor_count; i++) {
		msgpack_pack_array(pk, 3);
		key(pk, c->cursors[i].topic);
		msgpack_pack_uint32(pk, c->cursors[i].partition);
		msgpack_pack_uint64(pk, c->cursors[i].offset);
	}
	key(pk, "marks");
	msgpack_pack_array(pk, c->mark_count);
	for (uint32_t i = 0; i < c->mark_count; i++) {
		msgpack_pack_array(pk, 3);
		key(pk, c->marks[i].topic);
		msgpack_pack_uint32(pk, c->marks[i].partition);
		msgpack_pack_uint64(pk, c->marks[i].end);
	}
	key(pk, "processed");
	msgpack_pack_uint64(pk, c->processed);
	key(pk, "errors");
	msgpack_pack_uint64(pk, c->errors);
	key(pk, "dead_lettered");
	msgpack_pack_uint64(pk, c->dead_lettered);
	key(pk, "steps_done");
	msgpack_pack_uint64(pk, c->steps_done);
}

/* The checkpoint file of views without a store (before format 2). */
static void legacy_path(char *path, size_t cap, const char *dir)
{
	snprintf(path, cap, "%s/checkpoint", dir);
}

int kp_checkpoint_save(const struct kp_checkpoint *c, struct kp_view *view,
		       struct kp_error *err)
{
	static const char *const names[] = { KP_CHECKPOINT_RECORD };
	struct kp_buf out;
	msgpack_packer pk;
	int rc;

	if (!kp_view_stored(view))
		return kp_error_set(err, -ENOTSUP,
				    "the view has no store: nothing to checkpoint into");
	kp_buf_init(&out);
	msgpack_packer_init(&pk, &out, kp_buf_msgpack_write);
	pack_fields(&pk, c);
	rc = kp_view_commit(view, names, &out, 1, err);
	kp_buf_destroy(&out);
	return rc;
}

int kp_checkpoint_encode(const struct kp_checkpoint *c, struct kp_buf *out)
{
	msgpack_packer pk;

	msgpack_packer_init(&pk, out, kp_buf_msgpack_write);
	pack_fields(&pk, c);
	return 0;
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
	if (kp_field_uint(map, "steps_done", &c->steps_done, NULL) < 0 ||
	    kp_field_int(map, "at_ms", &c->at_ms, NULL) < 0)
		return -1;
	if (read_triples(map, "cursors", &items, sizeof(struct kp_ckpt_cursor),
			 &c->cursor_count) != 0)
		return -1;
	c->cursors = items;
	if (read_triples(map, "marks", &items, sizeof(struct kp_ckpt_mark),
			 &c->mark_count) != 0)
		return -1;
	c->marks = items;
	if (view == NULL)
		return 0;
	if (kp_field_raw(map, "view", &snap, NULL) != 0 ||
	    kp_mp_read_bin(snap, &snap) != 0)
		return -1;
	return kp_view_load(view, snap.ptr, snap.len, err) == 0 ? 0 : -1;
}

/* Decodes a checkpoint's bytes; with view, also its legacy snapshot. */
static int decode_bytes(struct kp_checkpoint *c, struct kp_view *view,
			const char *data, size_t len, const char *where,
			struct kp_error *err)
{
	struct kp_mp_view map;

	if (kp_mp_validate_one(data, len, &map) != 0 ||
	    kp_mp_type(map) != KP_MP_MAP || decode(c, view, map, err) != 0) {
		kp_checkpoint_destroy(c);
		return kp_error_set(err, KP_EDAMAGED,
				    "%s: damaged checkpoint; `kappactl proc reset` rebuilds it from the log",
				    where);
	}
	return 0;
}

int kp_checkpoint_decode(struct kp_checkpoint *c, const char *data, size_t len)
{
	struct kp_error err;

	memset(c, 0, sizeof(*c));
	return decode_bytes(c, NULL, data, len, "checkpoint", &err) == 0 ? 0
									: -1;
}

/*
 * Takes over a checkpoint file written before views had a store: its view
 * goes into the store with its positions, in one commit.
 */
static int migrate_legacy(struct kp_checkpoint *c, struct kp_view *view,
			  const char *dir, struct kp_error *err)
{
	struct kp_buf data;
	char path[4200];
	int rc;

	legacy_path(path, sizeof(path), dir);
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
	rc = decode_bytes(c, view, data.data, data.len, path, err);
	kp_buf_destroy(&data);
	if (rc == 0)
		rc = kp_checkpoint_save(c, view, err);
	if (rc != 0) {
		kp_view_discard(view);
		return rc;
	}
	/* Taken over: the old file goes (a crash before reads it again). */
	if (unlink(path) == 0)
		kp_file_fsync_dir(dir);
	kp_log_info("proc", "%s: view and positions moved into the view store",
		    path);
	return 0;
}

int kp_checkpoint_load(struct kp_checkpoint *c, struct kp_view *view,
		       const char *dir, struct kp_error *err)
{
	struct kp_buf data;
	int rc;

	memset(c, 0, sizeof(*c));
	kp_view_discard(view);
	if (!kp_view_stored(view))
		return 1;
	kp_buf_init(&data);
	rc = kp_view_meta(view, KP_CHECKPOINT_RECORD, &data);
	if (rc == 1)
		rc = decode_bytes(c, NULL, data.data, data.len, dir, err);
	else if (rc == 0)
		rc = migrate_legacy(c, view, dir, err);
	else
		rc = kp_error_set(err, rc, "%s: cannot read the checkpoint: %s",
				  dir, kp_error_text(rc));
	kp_buf_destroy(&data);
	return rc;
}
