/*
 * bench_proc.c - the processor scenarios of kappa-bench: topics pre-loaded
 * with records {user: "u<k>", pad: str} (KP_BENCH_USERS distinct users,
 * 100 bytes each), processors created over them from earliest, and the time
 * until every processor's records_processed reaches its input's size. Also
 * the "no server" floor: msgpack-c decoding of the same records into a C
 * hash map of counts, in as many threads as the server has workers.
 *
 * Access pattern: the loader and the poller each own one blocking
 * connection; the floor's threads share the read-only record buffer and own
 * a hash map each.
 */
#include "bench.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* proc_status is polled this often while processors run. */
#define POLL_NS 1000000u

size_t kp_bench_user_record(uint64_t i, char *out)
{
	char user[16];
	unsigned char *p = (unsigned char *)out;
	int ulen = snprintf(user, sizeof(user), "u%u",
			    (unsigned)(i % KP_BENCH_USERS));
	/* map(1) "user"(5) str(1+ulen) "pad"(4) str8(2+pad) = 100 bytes */
	size_t pad = KP_BENCH_RECORD_BYTES - 13 - (size_t)ulen;
	size_t n = 0;

	p[n++] = 0x82;
	p[n++] = 0xa4;
	memcpy(p + n, "user", 4);
	n += 4;
	p[n++] = (unsigned char)(0xa0 | ulen);
	memcpy(p + n, user, (size_t)ulen);
	n += (size_t)ulen;
	p[n++] = 0xa3;
	memcpy(p + n, "pad", 3);
	n += 3;
	p[n++] = 0xd9;
	p[n++] = (unsigned char)pad;
	for (size_t k = 0; k < pad; k++)
		p[n++] = (unsigned char)('a' + (k * 7 + i) % 26);
	return n;
}

void kp_bench_build_users(msgpack_sbuffer *sb, const char *topic, uint32_t id,
			  uint64_t first, uint32_t batch)
{
	char rec[KP_BENCH_RECORD_BYTES];
	msgpack_packer pk;

	kp_bench_frame_begin(sb, &pk, id, "produce", 3);
	kp_bench_pack_str(&pk, "topic");
	kp_bench_pack_str(&pk, topic);
	kp_bench_pack_str(&pk, "partition");
	msgpack_pack_uint32(&pk, 0);
	kp_bench_pack_str(&pk, "records");
	msgpack_pack_array(&pk, batch);
	for (uint32_t i = 0; i < batch; i++) {
		size_t n = kp_bench_user_record(first + i, rec);

		msgpack_pack_map(&pk, 1);
		kp_bench_pack_str(&pk, "value");
		/* the record is already msgpack: append its bytes raw */
		msgpack_sbuffer_write(sb, rec, n);
	}
	kp_bench_frame_end(sb);
}

void kp_bench_produce_users(int port, const char *topic, uint64_t records,
			    uint32_t batch, uint32_t inflight)
{
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	msgpack_object resp;
	uint64_t nreq = (records + batch - 1) / batch, sent = 0, done = 0;
	uint64_t acked = 0;
	char msg[512];
	int rc;

	if (records % batch != 0)
		kp_bench_die("processor load: %llu records is not a multiple "
			     "of the batch (%u)", (unsigned long long)records,
			     batch);
	if ((rc = kp_bench_conn_open(&c, port)) != 0)
		kp_bench_die("connect: %s", strerror(-rc));
	msgpack_sbuffer_init(&sb);
	while (done < nreq) {
		while (sent < nreq && sent - done < inflight) {
			kp_bench_build_users(&sb, topic, (uint32_t)(sent + 1),
					     sent * batch, batch);
			if ((rc = kp_bench_conn_send(&c, sb.data, sb.size)))
				kp_bench_die("produce: send: %s", strerror(-rc));
			sent++;
		}
		if ((rc = kp_bench_conn_recv(&c, &resp)) != 0)
			kp_bench_die("produce: recv: %s", strerror(-rc));
		if (!kp_bench_ok(&resp)) {
			kp_bench_describe_error(&resp, msg, sizeof(msg));
			kp_bench_die("produce %s: %s", topic, msg);
		}
		const msgpack_object *res = kp_bench_get(&resp, "results");

		if (kp_bench_get_u64(&resp, "id", 0) != done + 1 || res == NULL ||
		    res->type != MSGPACK_OBJECT_ARRAY || res->via.array.size != 1)
			kp_bench_die("produce: unexpected response to request %llu",
				     (unsigned long long)done + 1);
		acked += kp_bench_get_u64(&res->via.array.ptr[0], "count", 0);
		done++;
	}
	if (acked != records)
		kp_bench_die("produce %s: %llu records acknowledged, %llu sent",
			     topic, (unsigned long long)acked,
			     (unsigned long long)records);
	msgpack_sbuffer_destroy(&sb);
	kp_bench_conn_close(&c);
}

static void pack_str_array(msgpack_packer *pk, const char *s)
{
	if (s == NULL) {
		msgpack_pack_array(pk, 0);
		return;
	}
	msgpack_pack_array(pk, 1);
	kp_bench_pack_str(pk, s);
}

static void proc_create(struct kp_bench_conn *c, msgpack_sbuffer *sb,
			const struct kp_bench_proc *pr)
{
	msgpack_packer pk;
	msgpack_object resp;
	char what[160];

	kp_bench_frame_begin(sb, &pk, c->next_id++, "proc_create",
			     pr->time_budget_ms ? 6 : 5);
	kp_bench_pack_str(&pk, "name");
	kp_bench_pack_str(&pk, pr->name);
	kp_bench_pack_str(&pk, "file");
	kp_bench_pack_str(&pk, pr->file);
	kp_bench_pack_str(&pk, "inputs");
	pack_str_array(&pk, pr->input);
	kp_bench_pack_str(&pk, "outputs");
	pack_str_array(&pk, pr->output);
	kp_bench_pack_str(&pk, "from");
	kp_bench_pack_str(&pk, "earliest");
	if (pr->time_budget_ms) {
		kp_bench_pack_str(&pk, "time_budget_ms");
		msgpack_pack_uint32(&pk, pr->time_budget_ms);
	}
	kp_bench_frame_end(sb);
	snprintf(what, sizeof(what), "proc_create %s (%s)", pr->name, pr->file);
	kp_bench_call(c, sb, &resp, what);
}

/* proc_status of name: fills processed, errors and view_keys. */
static void proc_status(struct kp_bench_conn *c, msgpack_sbuffer *sb,
			const char *name, uint64_t *processed,
			uint64_t *errors, uint64_t *view_keys, char *state,
			size_t state_size)
{
	msgpack_packer pk;
	msgpack_object resp;
	const msgpack_object *p, *st;

	kp_bench_frame_begin(sb, &pk, c->next_id++, "proc_status", 1);
	kp_bench_pack_str(&pk, "name");
	kp_bench_pack_str(&pk, name);
	kp_bench_frame_end(sb);
	kp_bench_call(c, sb, &resp, "proc_status");
	p = kp_bench_get(&resp, "proc");
	*processed = kp_bench_get_u64(p, "records_processed", 0);
	*errors = kp_bench_get_u64(p, "errors", 0);
	*view_keys = kp_bench_get_u64(p, "view_keys", 0);
	st = kp_bench_get(p, "state");
	if (st != NULL && st->type == MSGPACK_OBJECT_STR)
		snprintf(state, state_size, "%.*s", (int)st->via.str.size,
			 st->via.str.ptr);
	else
		snprintf(state, state_size, "?");
}

static void proc_delete(struct kp_bench_conn *c, msgpack_sbuffer *sb,
			const char *name)
{
	msgpack_packer pk;
	msgpack_object resp;

	kp_bench_frame_begin(sb, &pk, c->next_id++, "proc_delete", 1);
	kp_bench_pack_str(&pk, "name");
	kp_bench_pack_str(&pk, name);
	kp_bench_frame_end(sb);
	kp_bench_call(c, sb, &resp, "proc_delete");
}

void kp_bench_proc_create(int port, const struct kp_bench_proc *pr)
{
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	int rc;

	if ((rc = kp_bench_conn_open(&c, port)) != 0)
		kp_bench_die("connect: %s", strerror(-rc));
	msgpack_sbuffer_init(&sb);
	proc_create(&c, &sb, pr);
	msgpack_sbuffer_destroy(&sb);
	kp_bench_conn_close(&c);
}

void kp_bench_proc_delete(int port, const char *name)
{
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	int rc;

	if ((rc = kp_bench_conn_open(&c, port)) != 0)
		kp_bench_die("connect: %s", strerror(-rc));
	msgpack_sbuffer_init(&sb);
	proc_delete(&c, &sb, name);
	msgpack_sbuffer_destroy(&sb);
	kp_bench_conn_close(&c);
}

void kp_bench_proc_run(int port, const struct kp_bench_proc *procs, size_t n,
		       uint64_t per_proc, struct kp_bench_load *out)
{
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	bool done[KP_BENCH_MAX_PROCS] = { false };
	uint64_t t0, t_end = 0, keys_want;
	size_t remaining = n;
	int rc;

	if (n > KP_BENCH_MAX_PROCS)
		kp_bench_die("at most %d processors", KP_BENCH_MAX_PROCS);
	keys_want = per_proc < KP_BENCH_USERS ? per_proc : KP_BENCH_USERS;
	if ((rc = kp_bench_conn_open(&c, port)) != 0)
		kp_bench_die("connect: %s", strerror(-rc));
	msgpack_sbuffer_init(&sb);
	t0 = kp_bench_now_ns();
	for (size_t i = 0; i < n; i++)
		proc_create(&c, &sb, &procs[i]);
	while (remaining > 0) {
		for (size_t i = 0; i < n; i++) {
			uint64_t processed, errors, keys;
			char state[32];

			if (done[i])
				continue;
			proc_status(&c, &sb, procs[i].name, &processed, &errors,
				    &keys, state, sizeof(state));
			if (errors != 0 || strcmp(state, "running") != 0)
				kp_bench_die("processor %s: state %s, %llu errors "
					     "after %llu records (see kappad's "
					     "log)", procs[i].name, state,
					     (unsigned long long)errors,
					     (unsigned long long)processed);
			if (processed < per_proc)
				continue;
			t_end = kp_bench_now_ns();
			if (processed != per_proc || keys != keys_want)
				kp_bench_die("processor %s: %llu records "
					     "processed (want %llu), %llu view "
					     "keys (want %llu)", procs[i].name,
					     (unsigned long long)processed,
					     (unsigned long long)per_proc,
					     (unsigned long long)keys,
					     (unsigned long long)keys_want);
			done[i] = true;
			remaining--;
		}
		if (remaining > 0) {
			if (kp_bench_now_ns() - t0 > 600000000000ull)
				kp_bench_die("processors did not finish in 600 s");
			nanosleep(&(struct timespec){ .tv_nsec = POLL_NS }, NULL);
		}
	}
	out->seconds = (double)(t_end - t0) / 1e9;
	out->records = per_proc * n;
	out->p50_ns = out->p99_ns = 0;
	for (size_t i = 0; i < n; i++)
		proc_delete(&c, &sb, procs[i].name);
	msgpack_sbuffer_destroy(&sb);
	kp_bench_conn_close(&c);
}

/* ---- the floor: msgpack-c + a C hash map, no server ------------------- */

struct slot_ {
	char key[16];
	uint8_t len;
	int64_t count;
};

struct floor_thread {
	const char *buf;           /* records, back to back (shared) */
	size_t len;
	uint64_t records;          /* decoded */
	uint64_t total;            /* sum of the counts */
	size_t keys;               /* distinct users */
};

static uint32_t fnv1a(const char *p, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 16777619u;
	return h;
}

static void *floor_run(void *arg)
{
	struct floor_thread *t = arg;
	enum { CAP = 4096 };           /* power of two, > 2 x users */
	struct slot_ *map = calloc(CAP, sizeof(*map));
	msgpack_zone zone;
	msgpack_object obj;
	size_t off = 0;

	if (map == NULL)
		kp_bench_die("out of memory");
	msgpack_zone_init(&zone, 4096);
	while (off < t->len) {
		const msgpack_object *u = NULL;
		msgpack_unpack_return ret =
			msgpack_unpack(t->buf, t->len, &off, &zone, &obj);

		if (ret != MSGPACK_UNPACK_SUCCESS &&
		    ret != MSGPACK_UNPACK_EXTRA_BYTES)
			kp_bench_die("floor: bad record at byte %zu", off);
		if (obj.type == MSGPACK_OBJECT_MAP)
			for (uint32_t k = 0; k < obj.via.map.size; k++) {
				const msgpack_object_kv *kv = &obj.via.map.ptr[k];

				if (kv->key.type == MSGPACK_OBJECT_STR &&
				    kv->key.via.str.size == 4 &&
				    memcmp(kv->key.via.str.ptr, "user", 4) == 0)
					u = &kv->val;
			}
		if (u == NULL || u->type != MSGPACK_OBJECT_STR ||
		    u->via.str.size >= sizeof(map[0].key))
			kp_bench_die("floor: record without user");
		for (uint32_t h = fnv1a(u->via.str.ptr, u->via.str.size);;
		     h++) {
			struct slot_ *s = &map[h & (CAP - 1)];

			if (s->len == 0) {
				s->len = (uint8_t)u->via.str.size;
				memcpy(s->key, u->via.str.ptr, s->len);
				t->keys++;
			} else if (s->len != u->via.str.size ||
				   memcmp(s->key, u->via.str.ptr, s->len) != 0) {
				continue;
			}
			s->count++;
			break;
		}
		t->records++;
		msgpack_zone_clear(&zone);
	}
	for (size_t i = 0; i < CAP; i++)
		t->total += (uint64_t)map[i].count;
	msgpack_zone_destroy(&zone);
	free(map);
	return NULL;
}

void kp_bench_peer_floor(uint64_t per_thread, uint32_t threads,
			 struct kp_bench_peer_result *out)
{
	struct floor_thread t[KP_BENCH_MAX_PROCS];
	pthread_t th[KP_BENCH_MAX_PROCS];
	size_t len = 0;
	char *buf = malloc(per_thread * KP_BENCH_RECORD_BYTES);
	uint64_t t0;

	if (buf == NULL || threads > KP_BENCH_MAX_PROCS)
		kp_bench_die("floor: out of memory");
	for (uint64_t i = 0; i < per_thread; i++)
		len += kp_bench_user_record(i, buf + len);
	t0 = kp_bench_now_ns();
	for (uint32_t i = 0; i < threads; i++) {
		t[i] = (struct floor_thread){ .buf = buf, .len = len };
		if (pthread_create(&th[i], NULL, floor_run, &t[i]) != 0)
			kp_bench_die("pthread_create failed");
	}
	for (uint32_t i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	out->seconds = (double)(kp_bench_now_ns() - t0) / 1e9;
	out->records = 0;
	for (uint32_t i = 0; i < threads; i++) {
		if (t[i].records != per_thread || t[i].total != per_thread ||
		    t[i].keys != (per_thread < KP_BENCH_USERS ? per_thread
							       : KP_BENCH_USERS))
			kp_bench_die("floor: counted %llu of %llu records",
				     (unsigned long long)t[i].total,
				     (unsigned long long)per_thread);
		out->records += t[i].records;
	}
	out->p50_ns = out->p99_ns = 0;
	free(buf);
}
