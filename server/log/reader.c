/*
 * reader.c - reads of a partition's segments (reader.h).
 *
 * Access pattern: an index lookup, then a walk over batch headers (each
 * checked by its own CRC, so a valid header's length leads to the next
 * batch) to the batch holding the offset, then one pread per window of
 * whole batches, each verified before it is handed out. Damage is stepped
 * over with kp_segment_resync (a scan for the next valid header).
 */
#include "reader.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "batch.h"
#include "base/logging.h"

#define READ_CHUNK (64u << 10)

/* Damage met by a read, and where to look for the next readable batch. */
struct damage {
	size_t si;            /* segment index */
	uint64_t pos;         /* position of the damaged batch or header */
	uint64_t resume;      /* the next readable batch starts at or after */
	uint64_t min_offset;  /* ... and its base offset is at least this */
	const char *what;     /* what failed, for the log */
};

static size_t find_segment(const struct kp_log_view *lv, uint64_t offset)
{
	size_t lo = 0, hi = lv->n;

	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (lv->segs[mid]->base <= offset)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

static void damaged_header(struct damage *d, size_t si, uint64_t pos,
			   uint64_t min_offset)
{
	d->si = si;
	d->pos = pos;
	d->resume = pos + 1;
	d->min_offset = min_offset;
	d->what = "its header fails its checks";
}

/*
 * Positions r at the batch of segment si holding offset (or the first
 * after it), stepping over damaged headers that lie before offset. Returns
 * 0 with *h; 1 when the segment has none; KP_ECORRUPT with *d when offset
 * may lie in a damaged stretch; -errno.
 */
static int locate(const struct kp_log_view *lv, size_t si, uint64_t offset,
		  struct kp_segment_reader *r, struct kp_batch_header *h,
		  struct damage *d)
{
	struct kp_segment *seg = lv->segs[si];
	uint64_t expect = seg->base, pos, bad;
	int rc;

	kp_segment_reader_init(r, seg, kp_segment_lookup(seg, offset),
			       seg->size, lv->scratch, READ_CHUNK);
	for (;;) {
		rc = kp_segment_reader_next(r, h);
		if (rc == 1)
			return 1;
		if (rc == 0 && (h->base_offset < expect ||
				kp_batch_next_offset(h) > seg->next_offset))
			rc = KP_ECORRUPT;
		if (rc == 0) {
			if (kp_batch_next_offset(h) > offset)
				return 0;
			expect = kp_batch_next_offset(h);
			kp_segment_reader_advance(r, h);
			continue;
		}
		if (rc != KP_ECORRUPT && rc != -EAGAIN)
			return rc;
		bad = r->pos;
		rc = kp_segment_resync(seg, bad + 1, expect, lv->scratch, &pos,
				       h);
		if (rc < 0)
			return rc;
		if (rc == 1 || h->base_offset > offset) {
			damaged_header(d, si, bad, expect);
			return KP_ECORRUPT;
		}
		kp_segment_reader_init(r, seg, pos, seg->size, lv->scratch,
				       READ_CHUNK);
	}
}

/* true when the batch h at pos of seg passes kp_batch_verify. */
static bool readable(const struct kp_log_view *lv, struct kp_segment *seg,
		     uint64_t pos, const struct kp_batch_header *h)
{
	kp_buf_reset(lv->scratch);
	return kp_buf_reserve(lv->scratch, h->batch_len) == 0 &&
	       kp_segment_pread(seg, lv->scratch->data, h->batch_len, pos) ==
		       0 &&
	       kp_batch_verify(lv->scratch->data, h) == 0;
}

/*
 * The first offset of the first readable batch at or after d's resume
 * position (then in later segments) whose base is at least min_offset:
 * where reading goes on after the damage. The visible end when none.
 */
static uint64_t next_readable(const struct kp_log_view *lv,
			      const struct damage *d, uint64_t min_offset)
{
	struct kp_batch_header h;
	uint64_t from = d->resume, pos;

	for (size_t si = d->si; si < lv->n; si++, from = 0) {
		struct kp_segment *seg = lv->segs[si];

		while (kp_segment_resync(seg, from, min_offset, lv->scratch,
					 &pos, &h) == 0) {
			if (h.base_offset >= lv->visible_end)
				return lv->visible_end;
			if (readable(lv, seg, pos, &h))
				return h.base_offset;
			from = pos + h.batch_len;
			min_offset = kp_batch_next_offset(&h);
		}
	}
	return lv->visible_end;
}

/* Answers a read that met damage first: logs it once, says where to go on. */
static int report(const struct kp_log_view *lv, const struct damage *d,
		  uint64_t offset, uint64_t *skip_to, struct kp_error *err)
{
	struct kp_segment *seg = lv->segs[d->si];
	uint64_t min = d->min_offset > offset ? d->min_offset : offset + 1;
	uint64_t skip = next_readable(lv, d, min);

	if (seg->warned_pos != d->pos + 1) {
		seg->warned_pos = d->pos + 1;
		kp_log_warn("partition", "batch at position %" PRIu64 " of "
			    "%s.log is damaged (%s); not serving it: reads "
			    "at offset %" PRIu64 " go on at %" PRIu64,
			    d->pos, seg->path, d->what, offset, skip);
	}
	if (skip_to != NULL)
		*skip_to = skip;
	return kp_error_set(err, KP_ECORRUPT, "corrupt batch at position %"
			    PRIu64 " of %s.log (%s); reading goes on at "
			    "offset %" PRIu64, d->pos, seg->path, d->what,
			    skip);
}

/*
 * Reads whole visible batches of segment si from pos into out, up to want
 * bytes; *expect is the lowest base offset the next batch may have. A
 * batch cut by the window's end is left for the next read. Returns 0 (with
 * *more when the window reached the segment's end) or KP_ECORRUPT with *d
 * at the first damaged batch (those before it are in out); -errno.
 */
static int read_window(const struct kp_log_view *lv, size_t si, uint64_t pos,
		       size_t want, uint64_t *expect, struct kp_buf *out,
		       bool *more, struct damage *d)
{
	struct kp_segment *seg = lv->segs[si];
	struct kp_batch_header h;
	size_t off = 0;
	char *data;
	int rc;

	*more = false;
	if (want > seg->size - pos)
		want = (size_t)(seg->size - pos);
	rc = kp_buf_reserve(out, want);
	if (rc != 0)
		return rc;
	data = out->data + out->len;
	rc = kp_segment_pread(seg, data, want, pos);
	if (rc != 0)
		return rc;
	for (;;) {
		if (off == want) {
			*more = pos + off == seg->size;
			break;
		}
		rc = kp_batch_header_decode(data + off, want - off, &h);
		if (rc == -EAGAIN && pos + want < seg->size) {
			rc = 0;
			break;
		}
		if (rc == 0 && (h.base_offset < *expect ||
				kp_batch_next_offset(&h) > seg->next_offset))
			rc = KP_ECORRUPT;
		if (rc != 0) {
			damaged_header(d, si, pos + off, *expect);
			rc = KP_ECORRUPT;
			break;
		}
		if (h.base_offset >= lv->visible_end)
			break;
		if (kp_batch_verify(data + off, &h) != 0) {
			d->si = si;
			d->pos = pos + off;
			d->resume = pos + off + h.batch_len;
			d->min_offset = kp_batch_next_offset(&h);
			d->what = "its records fail their CRC or checks";
			rc = KP_ECORRUPT;
			break;
		}
		*expect = kp_batch_next_offset(&h);
		off += h.batch_len;
	}
	out->len += off;
	return rc;
}

/*
 * Positions r at the first visible batch that holds offset or follows it
 * (segment *si, header *h). Returns 0; 1 when there is none; KP_ECORRUPT
 * as kp_reader_read (reported, *skip_to); -errno with err.
 */
static int first_batch(const struct kp_log_view *lv, uint64_t offset,
		       size_t *si, struct kp_segment_reader *r,
		       struct kp_batch_header *h, uint64_t *skip_to,
		       struct kp_error *err)
{
	struct damage d;
	int rc;

	if (skip_to != NULL)
		*skip_to = 0;
	for (*si = find_segment(lv, offset);; (*si)++) {
		struct kp_segment *seg;

		if (*si == lv->n || lv->segs[*si]->base >= lv->visible_end)
			return 1;
		seg = lv->segs[*si];
		rc = locate(lv, *si, offset < seg->base ? seg->base : offset,
			    r, h, &d);
		if (rc != 1)
			break;
	}
	if (rc == KP_ECORRUPT)
		return report(lv, &d, offset, skip_to, err);
	if (rc != 0)
		return kp_error_set(err, rc, "read of %s.log failed: %s",
				    lv->segs[*si]->path, kp_error_text(rc));
	return h->base_offset >= lv->visible_end ? 1 : 0;
}

int kp_reader_read(const struct kp_log_view *lv, uint64_t offset,
		   size_t max_bytes, struct kp_buf *out, uint64_t *skip_to,
		   struct kp_error *err)
{
	struct kp_segment_reader r;
	struct kp_batch_header h;
	struct damage d;
	size_t si, start_len = out->len, want;
	uint64_t pos, expect;
	bool more;
	int rc;

	rc = first_batch(lv, offset, &si, &r, &h, skip_to, err);
	if (rc != 0)
		return rc == 1 ? 0 : rc;
	pos = r.pos;
	expect = h.base_offset;
	want = max_bytes > h.batch_len ? max_bytes : h.batch_len;
	for (;;) {
		rc = read_window(lv, si, pos, want, &expect, out, &more, &d);
		if (rc == KP_ECORRUPT && out->len == start_len)
			return report(lv, &d, offset, skip_to, err);
		if (rc == KP_ECORRUPT)
			return 0;
		if (rc != 0) {
			out->len = start_len;
			return kp_error_set(err, rc, "read of %s.log failed: %s",
					    lv->segs[si]->path,
					    kp_error_text(rc));
		}
		if (!more || ++si == lv->n ||
		    out->len - start_len >= max_bytes ||
		    lv->segs[si]->base >= lv->visible_end)
			return 0;
		pos = 0;
		expect = lv->segs[si]->base;
		want = max_bytes - (out->len - start_len);
	}
}

int kp_reader_locate(const struct kp_log_view *lv, uint64_t offset,
		     size_t max_bytes, struct kp_read_span *span,
		     uint64_t *skip_to, struct kp_error *err)
{
	struct kp_segment_reader r;
	struct kp_batch_header h;
	struct kp_segment *seg;
	size_t si;
	int rc;

	memset(span, 0, sizeof(*span));
	span->fd = -1;
	rc = first_batch(lv, offset, &si, &r, &h, skip_to, err);
	if (rc != 0)
		return rc == 1 ? 0 : rc;
	seg = lv->segs[si];
	span->path = seg->path;
	span->fd = seg->fd;
	span->pos = r.pos;
	span->len = max_bytes > h.batch_len ? max_bytes : h.batch_len;
	if (span->len > seg->size - r.pos)
		span->len = (size_t)(seg->size - r.pos);
	span->end_offset = seg->next_offset < lv->visible_end
				   ? seg->next_offset
				   : lv->visible_end;
	return 0;
}

/* The first offset of segment si whose record has ts >= ts; 1 if none. */
static int find_time(const struct kp_log_view *lv, size_t si, int64_t ts,
		     uint64_t *offset)
{
	struct kp_segment *seg = lv->segs[si];
	struct kp_segment_reader r;
	struct kp_batch_header h;
	struct kp_record rec;
	struct damage d;
	const char *bytes;
	uint64_t start = kp_segment_time_lookup(seg, ts), expect = seg->base;
	size_t rpos;
	uint32_t index;
	int rc;

	rc = locate(lv, si, start, &r, &h, &d);
	if (rc == KP_ECORRUPT) {
		*offset = start;
		return 0;
	}
	for (; rc == 0; rc = kp_segment_reader_next(&r, &h)) {
		if (h.base_offset < expect ||
		    kp_batch_next_offset(&h) > seg->next_offset)
			break;
		if (h.base_offset >= lv->visible_end)
			return 1;
		if (h.max_ts >= ts) {
			rc = kp_segment_reader_bytes(&r, &h, &bytes);
			if (rc != 0)
				return rc;
			if (kp_batch_verify(bytes, &h) != 0) {
				*offset = h.base_offset;
				return 0;
			}
			rpos = 0;
			while (kp_batch_next(bytes, &h, &rpos, &index, &rec) ==
			       1) {
				if (rec.ts >= ts) {
					*offset = rec.offset;
					return 0;
				}
			}
		}
		expect = kp_batch_next_offset(&h);
		kp_segment_reader_advance(&r, &h);
	}
	if (rc == 1)
		return 1;
	if (rc < 0 && rc != -EAGAIN && rc != KP_ECORRUPT)
		return rc;
	*offset = expect < lv->visible_end ? expect : lv->visible_end;
	return 0;
}

int kp_reader_offset_for_time(const struct kp_log_view *lv, int64_t ts,
			      uint64_t *offset, struct kp_error *err)
{
	for (size_t i = 0; i < lv->n; i++) {
		struct kp_segment *seg = lv->segs[i];
		int rc;

		if (seg->base >= lv->visible_end)
			break;
		if (seg->size == 0 || seg->max_ts < ts)
			continue;
		rc = find_time(lv, i, ts, offset);
		if (rc == 0)
			return 0;
		if (rc < 0)
			return kp_error_set(err, rc, "read of %s.log failed: %s",
					    seg->path, kp_error_text(rc));
	}
	*offset = lv->visible_end;
	return 0;
}
