/*
 * bench_olp.c - the open-loop producer the latency scenarios share: one
 * produce request of `batch` records every interval on a schedule fixed in
 * advance (so a slow server shows as latency, not as a lower offered rate),
 * one thread sending, one receiving and keeping each acknowledgement.
 */
#include "bench.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void *olp_send(void *arg)
{
	struct kp_bench_olp *o = arg;
	int rc;

	for (uint64_t i = 0; !atomic_load(&o->stop); i++) {
		kp_bench_sleep_until(o->t0 + i * o->interval_ns);
		if (atomic_load(&o->stop))
			break;
		kp_bench_frame_set_id(o->frame.data, (uint32_t)(i + 1));
		if ((rc = kp_bench_conn_send(&o->c, o->frame.data,
					     o->frame.size)) != 0)
			kp_bench_die("produce: send: %s", strerror(-rc));
		atomic_store(&o->sent, i + 1);
	}
	atomic_store(&o->done_sending, true);
	return NULL;
}

static void push_ack(struct kp_bench_olp *o, const struct kp_bench_ack *a)
{
	if (o->n_acks == o->cap_acks) {
		size_t cap = o->cap_acks ? o->cap_acks * 2 : 16384;
		struct kp_bench_ack *na = realloc(o->acks, cap * sizeof(*na));

		if (na == NULL)
			kp_bench_die("out of memory");
		o->acks = na;
		o->cap_acks = cap;
	}
	o->acks[o->n_acks++] = *a;
}

static void *olp_recv(void *arg)
{
	struct kp_bench_olp *o = arg;
	msgpack_object resp;
	char msg[512];
	uint64_t got = 0;
	int rc;

	for (;;) {
		bool done = atomic_load(&o->done_sending);
		uint64_t sent = atomic_load(&o->sent);
		const msgpack_object *res;
		struct kp_bench_ack a;

		if (got >= sent) {
			if (done)
				break;
			kp_bench_sleep_until(kp_bench_now_ns() + 20000);
			continue;
		}
		if ((rc = kp_bench_conn_recv(&o->c, &resp)) != 0)
			kp_bench_die("produce: recv: %s", strerror(-rc));
		a.ack_ns = kp_bench_now_ns();
		a.sched_ns = o->t0 + got * o->interval_ns;
		if (!kp_bench_ok(&resp)) {
			kp_bench_describe_error(&resp, msg, sizeof(msg));
			kp_bench_die("produce %s: %s", o->topic, msg);
		}
		res = kp_bench_get(&resp, "results");
		if (kp_bench_get_u64(&resp, "id", 0) != got + 1 || res == NULL ||
		    res->type != MSGPACK_OBJECT_ARRAY || res->via.array.size != 1)
			kp_bench_die("produce: unexpected response to request "
				     "%llu", (unsigned long long)got + 1);
		a.base = kp_bench_get_u64(&res->via.array.ptr[0], "base_offset",
					  0);
		a.count = kp_bench_get_u64(&res->via.array.ptr[0], "count", 0);
		if (a.count != o->batch)
			kp_bench_die("produce: %llu of %u records acknowledged",
				     (unsigned long long)a.count, o->batch);
		push_ack(o, &a);
		got++;
	}
	return NULL;
}

void kp_bench_olp_start(struct kp_bench_olp *o, int port, const char *topic,
			uint32_t batch, uint64_t interval_ns, uint64_t first)
{
	int rc;

	memset(o, 0, sizeof(*o));
	o->topic = topic;
	o->batch = batch;
	o->interval_ns = interval_ns;
	atomic_init(&o->stop, false);
	atomic_init(&o->sent, 0);
	atomic_init(&o->done_sending, false);
	msgpack_sbuffer_init(&o->frame);
	kp_bench_build_users(&o->frame, topic, 1, first, batch);
	if ((rc = kp_bench_conn_open(&o->c, port)) != 0)
		kp_bench_die("connect: %s", strerror(-rc));
	o->t0 = kp_bench_now_ns() + interval_ns;
	if (pthread_create(&o->ts, NULL, olp_send, o) != 0 ||
	    pthread_create(&o->tr, NULL, olp_recv, o) != 0)
		kp_bench_die("pthread_create failed");
}

void kp_bench_olp_stop(struct kp_bench_olp *o)
{
	atomic_store(&o->stop, true);
	pthread_join(o->ts, NULL);
	pthread_join(o->tr, NULL);
	kp_bench_conn_close(&o->c);
	msgpack_sbuffer_destroy(&o->frame);
	if (o->n_acks == 0)
		kp_bench_die("produce %s: nothing acknowledged", o->topic);
}

void kp_bench_olp_free(struct kp_bench_olp *o)
{
	free(o->acks);
	o->acks = NULL;
}
