/*
 * bench_load.c - the load kappa-bench puts on kappad: topic admin, pipelined
 * produce over one connection (thread) per partition, and a pipelined fetch
 * of a whole partition, in either form: "batches" (the stored batches, each
 * checked by its two CRC32Cs and walked record by record, as a consumer
 * must) or "records" (a msgpack map per record).
 *
 * Every connection goes over TLS when the caller passes a kp_bench_tls
 * (the server's), over plain TCP when it passes NULL.
 *
 * Access pattern: each producing thread owns its connection and a copy of a
 * prebuilt produce frame whose id is patched per request; responses are read
 * in order and decoded with msgpack_unpack.
 */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/crc32c.h"

/* The stored batch format (docs/PROTOCOL.md, "Stored batches"). */
#define BATCH_HEADER 64
#define BATCH_MAGIC "KPB2"
#define BATCH_FLAG_HEADERS 1u
#define RECORD_FIXED 16     /* after rec_len: delta, ts, key_len */
/* What a stored value lacks of the 100 bytes sent: fixmap(1) + "value"(6). */
#define VALUE_FRAMING 7

/* A producing connection: one partition, nreq pipelined requests. */
struct producer {
	int port;
	struct kp_bench_tls *tls;   /* NULL: plain TCP */
	const char *frame;          /* a prebuilt produce frame (shared) */
	size_t frame_len;
	uint32_t partition;
	uint64_t nreq;
	uint32_t batch, inflight;
	uint64_t *lat;              /* nreq latencies, ns */
	uint64_t acked;             /* records acknowledged */
};

static void *produce_thread(void *arg)
{
	struct producer *p = arg;
	struct kp_bench_conn c;
	uint64_t *sent_at = calloc(p->inflight, sizeof(*sent_at));
	char *frame = malloc(p->frame_len);
	uint64_t sent = 0, done = 0;
	msgpack_object resp;
	char msg[512];
	int rc;

	if (sent_at == NULL || frame == NULL)
		kp_bench_die("out of memory");
	memcpy(frame, p->frame, p->frame_len);
	if ((rc = kp_bench_conn_open_tls(&c, p->port, p->tls)) != 0)
		kp_bench_die("connect: %s", c.why[0] ? c.why : strerror(-rc));
	while (done < p->nreq) {
		while (sent < p->nreq && sent - done < p->inflight) {
			kp_bench_frame_set_id(frame, (uint32_t)(sent + 1));
			sent_at[sent % p->inflight] = kp_bench_now_ns();
			if ((rc = kp_bench_conn_send(&c, frame, p->frame_len)))
				kp_bench_die("produce: send: %s", strerror(-rc));
			sent++;
		}
		if ((rc = kp_bench_conn_recv(&c, &resp)) != 0)
			kp_bench_die("produce: recv: %s", strerror(-rc));
		p->lat[done] = kp_bench_now_ns() - sent_at[done % p->inflight];
		if (!kp_bench_ok(&resp)) {
			kp_bench_describe_error(&resp, msg, sizeof(msg));
			kp_bench_die("produce: %s", msg);
		}
		const msgpack_object *res = kp_bench_get(&resp, "results");

		if (kp_bench_get_u64(&resp, "id", 0) != done + 1 || res == NULL ||
		    res->type != MSGPACK_OBJECT_ARRAY || res->via.array.size != 1)
			kp_bench_die("produce: unexpected response to request %llu",
				     (unsigned long long)done + 1);
		p->acked += kp_bench_get_u64(&res->via.array.ptr[0], "count", 0);
		done++;
	}
	kp_bench_conn_close(&c);
	free(sent_at);
	free(frame);
	return NULL;
}

static void build_produce(msgpack_sbuffer *sb, const char *topic,
			  uint32_t partition, uint32_t batch)
{
	char value[KP_BENCH_RECORD_BYTES - KP_BENCH_RECORD_OVERHEAD];
	msgpack_packer pk;

	for (size_t i = 0; i < sizeof(value); i++)
		value[i] = (char)('A' + (i * 11 + partition) % 26);
	kp_bench_frame_begin(sb, &pk, 1, "produce", 3);
	kp_bench_pack_str(&pk, "topic");
	kp_bench_pack_str(&pk, topic);
	kp_bench_pack_str(&pk, "partition");
	msgpack_pack_uint32(&pk, partition);
	kp_bench_pack_str(&pk, "records");
	msgpack_pack_array(&pk, batch);
	for (uint32_t i = 0; i < batch; i++) {
		msgpack_pack_map(&pk, 1);
		kp_bench_pack_str(&pk, "value");
		msgpack_pack_bin(&pk, sizeof(value));
		msgpack_pack_bin_body(&pk, value, sizeof(value));
	}
	kp_bench_frame_end(sb);
}

void kp_bench_topic_create(int port, const char *topic, uint32_t partitions,
			 const char *fsync)
{
	kp_bench_topic_create_tls(port, NULL, topic, partitions, fsync);
}

void kp_bench_topic_create_tls(int port, struct kp_bench_tls *tls,
			       const char *topic, uint32_t partitions,
			       const char *fsync)
{
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_object resp;
	int rc;

	if ((rc = kp_bench_conn_open_tls(&c, port, tls)) != 0)
		kp_bench_die("connect: %s", c.why[0] ? c.why : strerror(-rc));
	msgpack_sbuffer_init(&sb);
	kp_bench_frame_begin(&sb, &pk, 1, "topic_create", 3);
	kp_bench_pack_str(&pk, "topic");
	kp_bench_pack_str(&pk, topic);
	kp_bench_pack_str(&pk, "partitions");
	msgpack_pack_uint32(&pk, partitions);
	kp_bench_pack_str(&pk, "fsync");
	kp_bench_pack_str(&pk, fsync);
	kp_bench_frame_end(&sb);
	kp_bench_call(&c, &sb, &resp, "topic_create");
	msgpack_sbuffer_destroy(&sb);
	kp_bench_conn_close(&c);
}

/* Sums end_offset and size_bytes over the topic's partitions. */
void kp_bench_topic_stats(int port, const char *topic, uint64_t *records,
			uint64_t *bytes)
{
	kp_bench_topic_stats_tls(port, NULL, topic, records, bytes);
}

void kp_bench_topic_stats_tls(int port, struct kp_bench_tls *tls,
			      const char *topic, uint64_t *records,
			      uint64_t *bytes)
{
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_object resp;
	const msgpack_object *ps;
	int rc;

	if ((rc = kp_bench_conn_open_tls(&c, port, tls)) != 0)
		kp_bench_die("connect: %s", c.why[0] ? c.why : strerror(-rc));
	msgpack_sbuffer_init(&sb);
	kp_bench_frame_begin(&sb, &pk, 1, "topic_describe", 1);
	kp_bench_pack_str(&pk, "topic");
	kp_bench_pack_str(&pk, topic);
	kp_bench_frame_end(&sb);
	kp_bench_call(&c, &sb, &resp, "topic_describe");
	ps = kp_bench_get(kp_bench_get(&resp, "topic"), "partition_stats");
	*records = *bytes = 0;
	for (uint32_t i = 0; ps && ps->type == MSGPACK_OBJECT_ARRAY &&
			     i < ps->via.array.size; i++) {
		*records += kp_bench_get_u64(&ps->via.array.ptr[i],
					     "end_offset", 0);
		*bytes += kp_bench_get_u64(&ps->via.array.ptr[i],
					   "size_bytes", 0);
	}
	msgpack_sbuffer_destroy(&sb);
	kp_bench_conn_close(&c);
}

void kp_bench_produce(int port, struct kp_bench_tls *tls, const char *topic,
		      uint32_t conns, uint64_t records, uint32_t batch,
		      uint32_t inflight, struct kp_bench_load *r)
{
	struct producer p[16];
	pthread_t th[16];
	msgpack_sbuffer sb[16];
	uint64_t per = (records + (uint64_t)batch * conns - 1) /
		       ((uint64_t)batch * conns);
	uint64_t t0, n = 0, *all;

	for (uint32_t i = 0; i < conns; i++) {
		msgpack_sbuffer_init(&sb[i]);
		build_produce(&sb[i], topic, i, batch);
		p[i] = (struct producer){
			.port = port, .tls = tls, .frame = sb[i].data,
			.frame_len = sb[i].size, .partition = i, .nreq = per,
			.batch = batch, .inflight = inflight,
			.lat = calloc(per, sizeof(uint64_t)),
		};
		if (p[i].lat == NULL)
			kp_bench_die("out of memory");
	}
	t0 = kp_bench_now_ns();
	for (uint32_t i = 0; i < conns; i++)
		if (pthread_create(&th[i], NULL, produce_thread, &p[i]) != 0)
			kp_bench_die("pthread_create failed");
	for (uint32_t i = 0; i < conns; i++)
		pthread_join(th[i], NULL);
	r->seconds = (double)(kp_bench_now_ns() - t0) / 1e9;
	all = malloc(per * conns * sizeof(uint64_t));
	if (all == NULL)
		kp_bench_die("out of memory");
	r->records = 0;
	for (uint32_t i = 0; i < conns; i++) {
		memcpy(all + n, p[i].lat, per * sizeof(uint64_t));
		n += per;
		r->records += p[i].acked;
		free(p[i].lat);
		msgpack_sbuffer_destroy(&sb[i]);
	}
	qsort(all, n, sizeof(*all), kp_bench_cmp_u64);
	r->p50_ns = all[n / 2];
	r->p99_ns = all[(n * 99) / 100];
	free(all);
	if (r->records != per * conns * batch)
		kp_bench_die("%s: %llu records acknowledged, %llu sent", topic,
			     (unsigned long long)r->records,
			     (unsigned long long)(per * conns * batch));
}

/* A fetch in flight: it asks for [off, lim). */
struct range {
	uint64_t off, lim;
};

/* Counts the records of a fetch response (records form) in the range. */
static uint64_t take_records(const msgpack_object *resp, struct range rg,
			     uint64_t *got, uint64_t *payload)
{
	const msgpack_object *recs = kp_bench_get(resp, "records");
	uint64_t n, use;

	if (recs == NULL || recs->type != MSGPACK_OBJECT_ARRAY)
		kp_bench_die("fetch: response without records");
	n = recs->via.array.size;
	if (n > 0 && kp_bench_get_u64(&recs->via.array.ptr[0], "offset",
				      UINT64_MAX) != rg.off)
		kp_bench_die("fetch: asked offset %llu, got another first record",
			     (unsigned long long)rg.off);
	use = n < rg.lim - rg.off ? n : rg.lim - rg.off;
	for (uint64_t i = 0; i < use; i++) {
		const msgpack_object *v = kp_bench_get(&recs->via.array.ptr[i],
						       "value");

		if (v == NULL || v->type != MSGPACK_OBJECT_BIN)
			kp_bench_die("fetch: record %llu has no bin value",
				     (unsigned long long)(rg.off + i));
		*payload += v->via.bin.size + KP_BENCH_RECORD_OVERHEAD;
	}
	*got += use;
	return n;
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/*
 * Checks the batch at b (len bytes left in the response): magic, header
 * CRC over [0, 60), length, records' CRC over [64, batch_len). Returns its
 * length; dies on a mismatch.
 */
static uint32_t check_batch(const unsigned char *b, size_t len)
{
	uint32_t blen;

	if (len < BATCH_HEADER || memcmp(b + 12, BATCH_MAGIC, 4) != 0 ||
	    kp_crc32c(0, b, 60) != le32(b + 60))
		kp_bench_die("fetch: a batch header fails its CRC");
	blen = le32(b + 8);
	if (blen < BATCH_HEADER || blen > len)
		kp_bench_die("fetch: a batch of %u bytes, %zu left", blen, len);
	if (kp_crc32c(0, b + BATCH_HEADER, blen - BATCH_HEADER) !=
	    le32(b + 16))
		kp_bench_die("fetch: batch at offset %llu fails its records' CRC",
			     (unsigned long long)le64(b));
	return blen;
}

/*
 * Counts the records of a fetch response (batches form) at or after
 * rg.off, checking them: every batch by its CRCs, every record's offset
 * the next one (no gaps in this topic) and its value's size; those below
 * rg.lim are added to *got and *payload. Returns the count.
 */
static uint64_t take_batches(const msgpack_object *resp, struct range rg,
			     uint64_t *got, uint64_t *payload)
{
	const msgpack_object *bin = kp_bench_get(resp, "batches");
	const unsigned char *p;
	uint64_t next = rg.off;
	size_t len, pos = 0;

	if (bin == NULL || bin->type != MSGPACK_OBJECT_BIN)
		kp_bench_die("fetch: response without batches");
	p = (const unsigned char *)bin->via.bin.ptr;
	len = bin->via.bin.size;
	while (pos < len) {
		const unsigned char *b = p + pos;
		uint32_t blen = check_batch(b, len - pos);
		uint64_t base = le64(b);
		bool with_headers = le32(b + 28) & BATCH_FLAG_HEADERS;
		uint32_t count = le32(b + 20), q = BATCH_HEADER;

		for (uint32_t i = 0; i < count; i++) {
			uint32_t rec_len, value_len;
			int32_t key_len;
			uint64_t off;

			if (blen - q < 4 + RECORD_FIXED ||
			    (rec_len = le32(b + q)) > blen - q - 4 ||
			    rec_len < RECORD_FIXED)
				kp_bench_die("fetch: a malformed record");
			off = base + le32(b + q + 4);
			key_len = (int32_t)le32(b + q + 16);
			value_len = rec_len - RECORD_FIXED -
				    (key_len > 0 ? (uint32_t)key_len : 0);
			if (with_headers)
				value_len -= 4 + le32(b + q + 20 +
						      (key_len > 0 ? key_len : 0));
			q += 4 + rec_len;
			if (off < rg.off)
				continue;
			if (off != next)
				kp_bench_die("fetch: record %llu where %llu was due",
					     (unsigned long long)off,
					     (unsigned long long)next);
			next++;
			if (off < rg.lim) {
				*payload += value_len + VALUE_FRAMING;
				(*got)++;
			}
		}
		if (q != blen)
			kp_bench_die("fetch: batch at offset %llu: its records "
				     "do not fill it", (unsigned long long)base);
		pos += blen;
	}
	return next - rg.off;
}

/* Counts the records of a response in either form (see take_*). */
typedef uint64_t (*take_fn)(const msgpack_object *resp, struct range rg,
			    uint64_t *got, uint64_t *payload);

static void send_fetch(struct kp_bench_conn *c, msgpack_sbuffer *sb,
		       const char *topic, uint64_t offset, uint32_t id,
		       bool batches)
{
	msgpack_packer pk;
	int rc;

	kp_bench_frame_begin(sb, &pk, id, "fetch", batches ? 5 : 4);
	if (batches) {
		kp_bench_pack_str(&pk, "format");
		kp_bench_pack_str(&pk, "batches");
	}
	kp_bench_pack_str(&pk, "topic");
	kp_bench_pack_str(&pk, topic);
	kp_bench_pack_str(&pk, "partition");
	msgpack_pack_uint32(&pk, 0);
	kp_bench_pack_str(&pk, "offset");
	msgpack_pack_uint64(&pk, offset);
	kp_bench_pack_str(&pk, "max_bytes");
	msgpack_pack_uint32(&pk, KP_BENCH_FETCH_MAX_BYTES);
	kp_bench_frame_end(sb);
	if ((rc = kp_bench_conn_send(c, sb->data, sb->size)) != 0)
		kp_bench_die("fetch: send: %s", strerror(-rc));
}

/*
 * Reads partition 0 of topic from 0 to end with pipelined fetches: after a
 * first fetch gives the stride (records per 1 MiB response), fetches go out
 * at stride steps; a response short of its range queues the gap.
 */
static void fetch_all(int port, struct kp_bench_tls *tls, const char *topic,
		      uint64_t end, uint32_t inflight, bool batches,
		      struct kp_bench_load *r)
{
	take_fn take = batches ? take_batches : take_records;
	struct range *fifo = calloc(inflight, sizeof(*fifo));
	struct range *gaps = calloc(inflight + 1, sizeof(*gaps));
	uint64_t got = 0, payload = 0, gen, stride, head = 0, tail = 0, t0;
	size_t ngaps = 0;
	uint32_t id = 1;
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	msgpack_object resp;
	int rc;

	if (fifo == NULL || gaps == NULL)
		kp_bench_die("out of memory");
	if ((rc = kp_bench_conn_open_tls(&c, port, tls)) != 0)
		kp_bench_die("connect: %s", c.why[0] ? c.why : strerror(-rc));
	msgpack_sbuffer_init(&sb);
	t0 = kp_bench_now_ns();
	send_fetch(&c, &sb, topic, 0, id++, batches);
	if (kp_bench_conn_recv(&c, &resp) != 0 || !kp_bench_ok(&resp))
		kp_bench_die("fetch: first fetch failed");
	stride = take(&resp, (struct range){ 0, end }, &got, &payload);
	if (stride == 0)
		kp_bench_die("fetch: empty first response");
	gen = stride;
	for (;;) {
		while (tail - head < inflight && (ngaps > 0 || gen < end)) {
			struct range rg;

			if (ngaps > 0) {
				rg = gaps[--ngaps];
			} else {
				rg.off = gen;
				rg.lim = gen + stride < end ? gen + stride : end;
				gen = rg.lim;
			}
			send_fetch(&c, &sb, topic, rg.off, id++, batches);
			fifo[tail++ % inflight] = rg;
		}
		if (head == tail)
			break;
		struct range rg = fifo[head++ % inflight];
		char msg[512];
		uint64_t n;

		if ((rc = kp_bench_conn_recv(&c, &resp)) != 0)
			kp_bench_die("fetch: recv: %s", strerror(-rc));
		if (!kp_bench_ok(&resp)) {
			kp_bench_describe_error(&resp, msg, sizeof(msg));
			kp_bench_die("fetch at %llu: %s",
				     (unsigned long long)rg.off, msg);
		}
		n = take(&resp, rg, &got, &payload);
		if (n == 0)
			kp_bench_die("fetch at %llu: no records below end %llu",
				     (unsigned long long)rg.off,
				     (unsigned long long)end);
		if (rg.off + n < rg.lim)
			gaps[ngaps++] = (struct range){ rg.off + n, rg.lim };
	}
	r->seconds = (double)(kp_bench_now_ns() - t0) / 1e9;
	r->records = got;
	if (got != end || payload != end * KP_BENCH_RECORD_BYTES)
		kp_bench_die("fetch: read %llu records (%llu bytes), wanted %llu",
			     (unsigned long long)got,
			     (unsigned long long)payload,
			     (unsigned long long)end);
	msgpack_sbuffer_destroy(&sb);
	kp_bench_conn_close(&c);
	free(fifo);
	free(gaps);
}

void kp_bench_fetch(int port, struct kp_bench_tls *tls, const char *topic,
		    uint64_t end, uint32_t inflight, struct kp_bench_load *r)
{
	fetch_all(port, tls, topic, end, inflight, true, r);
}

void kp_bench_fetch_records(int port, struct kp_bench_tls *tls,
			    const char *topic, uint64_t end, uint32_t inflight,
			    struct kp_bench_load *r)
{
	fetch_all(port, tls, topic, end, inflight, false, r);
}
