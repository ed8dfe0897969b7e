/*
 * view_query.c - view_get and view_scan answers from a view (view_query.h).
 */
#include "view_query.h"

#include <string.h>

#include "wire/proto.h"

static void pack_found(struct kp_response *r, int found,
		       const struct kp_buf *value)
{
	kp_response_key(r, "found");
	if (found)
		msgpack_pack_true(&r->pk);
	else
		msgpack_pack_false(&r->pk);
	kp_response_key(r, "value");
	if (found)
		msgpack_pack_bin_body(&r->pk, value->data, value->len);
	else
		msgpack_pack_nil(&r->pk);
}

int kp_vq_error(int rc, struct kp_error *err)
{
	if (rc == KP_EDAMAGED)
		return kp_error_set(err, rc,
				    "the view store is damaged; `kappactl proc reset` rebuilds it from the log");
	return kp_error_set(err, rc, "cannot read the view: %s",
			    kp_error_text(rc));
}

int kp_vq_get(struct kp_view *v, uint64_t id, const struct kp_vq_key *keys,
	      uint32_t n, bool many, struct kp_buf *resp, struct kp_error *err)
{
	size_t start = resp->len;
	struct kp_response r;
	struct kp_buf value;
	int rc = 0;

	kp_buf_init(&value);
	kp_response_begin(&r, resp, id, many ? 1 : 2);
	if (many) {
		kp_response_key(&r, "items");
		msgpack_pack_array(&r.pk, n);
	}
	for (uint32_t i = 0; i < n && (many || i == 0); i++) {
		int found = kp_view_get(v, keys[i].ptr, keys[i].len, &value);

		if (found < 0) {
			rc = kp_vq_error(found, err);
			break;
		}
		if (many) {
			msgpack_pack_map(&r.pk, 3);
			kp_response_key(&r, "key");
			kp_response_str(&r, keys[i].ptr, keys[i].len);
		}
		pack_found(&r, found, &value);
	}
	kp_buf_destroy(&value);
	if (rc == 0)
		rc = kp_response_finish(&r);
	if (rc != 0)
		resp->len = start;
	return rc;
}

/* Packs scanned items and remembers the last key. */
struct scan_ctx {
	struct kp_response *r;
	uint32_t count;
	struct kp_buf last;
};

static int visit_item(void *arg, const char *key, size_t key_len,
		      const char *value, size_t value_len)
{
	struct scan_ctx *ctx = arg;

	ctx->count++;
	msgpack_pack_map(&ctx->r->pk, 2);
	kp_response_key(ctx->r, "key");
	kp_response_str(ctx->r, key, key_len);
	kp_response_key(ctx->r, "value");
	msgpack_pack_bin_body(&ctx->r->pk, value, value_len);
	kp_buf_reset(&ctx->last);
	kp_buf_append(&ctx->last, key, key_len);
	return 0;
}

int kp_vq_scan(struct kp_view *v, uint64_t id, const char *prefix,
	       size_t prefix_len, const char *after, size_t after_len,
	       uint32_t limit, struct kp_buf *resp, struct kp_error *err)
{
	struct kp_response r, side;
	struct kp_buf items;
	struct scan_ctx ctx;
	bool more = false;
	int rc;

	/* Items go to a side buffer first: their count precedes them. */
	kp_buf_init(&items);
	memset(&ctx, 0, sizeof(ctx));
	kp_buf_init(&ctx.last);
	side.out = &items;
	side.oom = 0;
	side.start = 0;
	msgpack_packer_init(&side.pk, &items, kp_buf_msgpack_write);
	ctx.r = &side;
	rc = kp_view_scan_page(v, prefix, prefix_len, after, after_len,
			       (size_t)limit, visit_item, &ctx, &more);
	if (rc < 0) {
		kp_buf_destroy(&items);
		kp_buf_destroy(&ctx.last);
		return kp_vq_error(rc, err);
	}
	kp_response_begin(&r, resp, id, more ? 2 : 1);
	kp_response_key(&r, "items");
	msgpack_pack_array(&r.pk, ctx.count);
	msgpack_pack_bin_body(&r.pk, items.data, items.len);
	if (more) {
		kp_response_key(&r, "next");
		kp_response_str(&r, ctx.last.data, ctx.last.len);
	}
	kp_buf_destroy(&items);
	kp_buf_destroy(&ctx.last);
	return kp_response_finish(&r);
}
