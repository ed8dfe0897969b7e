/*
 * cmd_consume.c - `kappactl consume TOPIC`: prints records as JSON lines
 *
 *   {"topic":"t","partition":0,"offset":5,"ts":1764054000000,"key":"k","value":{...}}
 * plus, for records written by a processor, "provenance":
 *   {"proc","version","topic","partition","offset"} (the input it came from).
 *
 * (key: a string when its bytes are UTF-8, "base64:..." otherwise, null when
 * absent; value converted as in json_mp.h). With --raw only each record's
 * value is printed, one per line: a str as its bytes, anything else as JSON.
 *
 * Reads one partition (--partition) or all of them, round-robin: each round
 * pipelines one fetch per partition still being read. Without --follow a
 * partition is finished when its position reaches the end_offset of the
 * fetch that got there; with --follow a round that printed nothing makes the
 * next round long-poll (max_wait_ms, about 1 s in total per round), and the
 * run ends on SIGINT/SIGTERM with status 0. --count N stops after N records.
 *
 * Start: --from earliest|latest|OFFSET|@TIME; by default the group's
 * committed offset (with --group, when it has one) or else earliest. With
 * --group the next offset to read is committed after every round that
 * printed something (output flushed first) and at the end.
 *
 * A processor's output is a logical topic (docs/PROTOCOL.md, "Logical
 * topics"): the generation a fetch returns is sent in every later fetch; on
 * TOPIC_SWITCHED (a cut-over or rollback) a line on stderr says
 *   kappactl: TOPIC switched to generation N; reading it from the start
 * and every partition is read again from its start offset in the new
 * generation (offsets of generations are unrelated). With --group those
 * start offsets are committed at once, so that the old generation's offsets
 * never stand for the new one.
 *
 * --all-versions (a processor's logical output or dead-letter topic T):
 * reads every version's topic once, in version order, "T.v1", "T.v2", ...
 * (the versions proc_versions lists, of the processor whose outputs or dlq
 * name T; a version without that topic is skipped), each from --from and
 * to its end; records print as above, "topic" naming the version's topic
 * and "provenance" its version. It takes neither --follow nor --group.
 *
 * Fetches ask for format "batches": the stored batches as they are on disk.
 * Each batch's header CRC and records' CRC are checked before any of its
 * records is printed; a batch that fails (damaged on the way, since the
 * server checked it) is fetched again, with one line on stderr
 *   kappactl: orders/0: batch at offset 120 fails its records' CRC; fetching it again
 * and after KP_CTL_REFETCHES failures in a row at one offset the run stops
 * with that error. A server that answers in the records form (one that
 * predates "batches") is read as well.
 *
 * A fetch below the log start (retention removed the data) continues at the
 * start; a damaged batch (CORRUPT_BATCH) is skipped to the offset the
 * server says reading goes on at, with one line on stderr
 *   kappactl: skipped offsets 120-239 of orders/0: corrupt batch
 * and reading goes on; the status at the end is then 1.
 */
#include "cmd.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "batches.h"
#include "json_mp.h"
#include "mpget.h"
#include "base/alloc.h"

/* Total long-poll time of an idle --follow round, spread over partitions. */
#define KP_CTL_FOLLOW_WAIT_MS 1000
/* Fetches of a batch that fails its CRC before the run gives up. */
#define KP_CTL_REFETCHES 3

/* Set by the SIGINT/SIGTERM handler: the one state a handler may touch. */
static volatile sig_atomic_t stop_signal;

/* Reading position in one partition. */
struct part {
	uint32_t id;         /* partition number */
	uint64_t next;       /* next offset to read and print */
	uint64_t committed;  /* offset last committed for the group */
	int has_committed;   /* committed is known */
	int done;            /* reached the end (without --follow) */
	int refetch;         /* a batch failed its CRC: fetch again */
	uint32_t bad_fetches; /* CRC failures in a row at next */
};

/* One consume run. */
struct consumer {
	struct kp_ctl_ctx *ctx;   /* where to print */
	struct kp_ctl_client c;   /* the connection */
	const char *topic;        /* the topic read */
	const char *group;        /* --group, or NULL */
	int follow;               /* --follow */
	int raw;                  /* --raw: print values only */
	int has_count;            /* --count given */
	uint64_t count_left;      /* records still to print with --count */
	struct part *parts;       /* the partitions read */
	uint32_t nparts;          /* entries in parts */
	struct kp_ctl_resp resp;  /* the last response */
	msgpack_zone zone;        /* a stored record's value and headers */
	uint64_t generation;      /* of a logical topic; 0 until a fetch says */
	uint64_t switched_to;     /* TOPIC_SWITCHED seen this round: new one */
	int status;               /* exit status so far */
	int fatal;                /* stop reading: an error was reported */
};

static void on_signal(int sig)
{
	(void)sig;
	stop_signal = 1;
}

/* Installs on_signal for SIGINT and SIGTERM (a second signal kills). */
static void catch_signals(struct sigaction *old_int, struct sigaction *old_term)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	stop_signal = 0;
	sigaction(SIGINT, &sa, old_int);
	sigaction(SIGTERM, &sa, old_term);
}

static void fail(struct consumer *cs, const char *msg)
{
	cs->status = kp_ctl_fail(cs->ctx, "%s", msg);
	cs->fatal = 1;
}

/* Receives one response; on a broken connection reports it and closes. */
static int recv_one(struct consumer *cs, struct kp_error *err)
{
	int rc = kp_ctl_client_recv(&cs->c, &cs->resp, err);

	if (rc != 0 && cs->resp.map == NULL) {
		kp_ctl_client_close(&cs->c);
		if (!cs->fatal)
			fail(cs, err->msg);
	}
	return rc;
}

/* Reads and drops the responses still in flight. */
static void drain(struct consumer *cs)
{
	struct kp_error err;

	while (cs->c.fd >= 0 && kp_ctl_client_in_flight(&cs->c) > 0)
		recv_one(cs, &err);
}

/* Commits the positions that moved since the last commit. */
static void commit(struct consumer *cs)
{
	struct kp_error err;
	json_t *offsets, *f;
	uint32_t i;
	int n = 0;

	if (cs->group == NULL || cs->c.fd < 0)
		return;
	/* Commit only what reached the output: a full disk or a closed pipe
	 * must not mark unwritten records as read. */
	if (fflush(cs->ctx->out) != 0 || ferror(cs->ctx->out)) {
		if (!cs->fatal)
			cs->status = kp_ctl_fail(cs->ctx,
						 "writing output failed; offsets not committed");
		cs->fatal = 1;
		return;
	}
	drain(cs);
	offsets = json_array();
	for (i = 0; i < cs->nparts && offsets != NULL; i++) {
		struct part *p = &cs->parts[i];

		if (p->has_committed && p->committed == p->next)
			continue;
		json_array_append_new(offsets, json_pack("{sssIsI}", "topic", cs->topic,
					      "partition", (json_int_t)p->id,
					      "offset", (json_int_t)p->next));
		n++;
	}
	f = json_pack("{ssso}", "group", cs->group, "offsets", offsets);
	if (f == NULL) {
		fail(cs, "out of memory");
		return;
	}
	if (n > 0 && kp_ctl_client_call(&cs->c, "group_commit", f, &cs->resp, &err) != 0) {
		if (cs->resp.map == NULL)
			kp_ctl_client_close(&cs->c);
		fail(cs, err.msg);
	} else if (n > 0) {
		for (i = 0; i < cs->nparts; i++) {
			cs->parts[i].committed = cs->parts[i].next;
			cs->parts[i].has_committed = 1;
		}
	}
	json_decref(f);
}

static int send_fetch(struct consumer *cs, const struct part *p, uint32_t wait_ms,
		      struct kp_error *err)
{
	json_t *f;
	int rc;

	f = json_pack("{sssIsIss}", "topic", cs->topic, "partition",
		      (json_int_t)p->id, "offset", (json_int_t)p->next,
		      "format", "batches");
	if (f != NULL && wait_ms > 0)
		json_object_set_new(f, "max_wait_ms", json_integer(wait_ms));
	if (f != NULL && cs->generation != 0)
		json_object_set_new(f, "generation",
				    json_integer((json_int_t)cs->generation));
	if (f == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	rc = kp_ctl_client_send_json(&cs->c, "fetch", f, err);
	json_decref(f);
	return rc;
}

/*
 * Prints one record of partition p from its parts (key, value and
 * provenance owned: taken by the call; provenance NULL when none).
 * Returns 0 or an exit status.
 */
static int print_line(struct consumer *cs, const struct part *p,
		      uint64_t offset, int64_t ts, json_t *key, json_t *value,
		      json_t *provenance)
{
	json_t *o = json_object();
	size_t want = provenance != NULL ? 7u : 6u;

	if (o == NULL || key == NULL || value == NULL) {
		json_decref(o);
		json_decref(key);
		json_decref(value);
		json_decref(provenance);
		return kp_ctl_fail(cs->ctx, "out of memory");
	}
	json_object_set_new(o, "topic", json_string(cs->topic));
	json_object_set_new(o, "partition", json_integer(p->id));
	json_object_set_new(o, "offset", json_integer((json_int_t)offset));
	json_object_set_new(o, "ts", json_integer(ts));
	json_object_set_new(o, "key", key);
	json_object_set_new(o, "value", value);
	if (provenance != NULL)
		json_object_set_new(o, "provenance", provenance);
	if (json_object_size(o) != want) {
		json_decref(o);
		return kp_ctl_fail(cs->ctx, "out of memory");
	}
	return kp_ctl_print(cs->ctx, o);
}

/* Prints one record map (the records form) of partition p. */
static int print_record(struct consumer *cs, const struct part *p,
			const msgpack_object *rec, uint64_t offset)
{
	const msgpack_object *key = kp_ctl_mp_get(rec, "key");
	const msgpack_object *value = kp_ctl_mp_get(rec, "value");
	const msgpack_object *headers = kp_ctl_mp_get(rec, "headers");
	const char *kb;
	size_t klen;
	int64_t ts = 0;

	kp_ctl_mp_get_i64(rec, "ts", &ts);
	if (cs->raw)
		return kp_ctl_print_raw(cs->ctx, value);
	return print_line(cs, p, offset, ts,
			  kp_ctl_mp_bytes(key, &kb, &klen) == 0
				  ? kp_ctl_bytes_to_json(kb, klen)
				  : json_null(),
			  value ? kp_ctl_mp_to_json(value) : json_null(),
			  kp_ctl_mp_get(headers, "proc") != NULL
				  ? kp_ctl_mp_to_json(headers)
				  : NULL);
}

/* Decodes len msgpack bytes at p into *o (in cs->zone); 0 or -EINVAL. */
static int unpack_one(struct consumer *cs, const char *p, size_t len,
		      msgpack_object *o)
{
	size_t off = 0;

	if (msgpack_unpack(p, len, &off, &cs->zone, o) !=
		    MSGPACK_UNPACK_SUCCESS ||
	    off != len)
		return -EINVAL;
	return 0;
}

/* Prints one stored record (the batches form) of partition p. */
static int print_stored(struct consumer *cs, const struct part *p,
			const struct kp_record *rec)
{
	msgpack_object value, headers;
	int has_headers = rec->headers != NULL;

	msgpack_zone_clear(&cs->zone);
	if (unpack_one(cs, rec->value, rec->value_len, &value) != 0 ||
	    (has_headers && unpack_one(cs, rec->headers, rec->headers_len,
				       &headers) != 0))
		return kp_ctl_fail(cs->ctx, "fetch: record %llu of %s/%u is not "
				   "msgpack", (unsigned long long)rec->offset,
				   cs->topic, p->id);
	if (cs->raw)
		return kp_ctl_print_raw(cs->ctx, &value);
	return print_line(cs, p, rec->offset, rec->ts,
			  rec->key != NULL
				  ? kp_ctl_bytes_to_json(rec->key, rec->key_len)
				  : json_null(),
			  kp_ctl_mp_to_json(&value),
			  has_headers && kp_ctl_mp_get(&headers, "proc") != NULL
				  ? kp_ctl_mp_to_json(&headers)
				  : NULL);
}

/*
 * After a record of p at offset was printed: moves p on and counts it.
 * Returns 1 when --count says stop.
 */
static int printed_one(struct consumer *cs, struct part *p, uint64_t offset)
{
	p->next = offset + 1;
	p->bad_fetches = 0;
	if (cs->has_count)
		cs->count_left--;
	return cs->has_count && cs->count_left == 0;
}

/*
 * A batch of p failed its checks on the client (err): fetch it again, up
 * to KP_CTL_REFETCHES times in a row, then give up with the error.
 */
static void batch_damaged(struct consumer *cs, struct part *p,
			  const struct kp_error *err)
{
	if (++p->bad_fetches >= KP_CTL_REFETCHES) {
		cs->status = kp_ctl_fail(cs->ctx, "%s/%u: %s (%u times)",
					 cs->topic, p->id, err->msg,
					 p->bad_fetches);
		cs->fatal = 1;
		return;
	}
	kp_ctl_fail(cs->ctx, "%s/%u: %s; fetching it again", cs->topic, p->id,
		    err->msg);
	p->refetch = 1;
}

/* Prints the records of a "batches" response for p; returns how many. */
static uint64_t print_batches(struct consumer *cs, struct part *p,
			      const msgpack_object *bin)
{
	struct kp_ctl_batches it;
	struct kp_record rec;
	struct kp_error err;
	uint64_t printed = 0;
	int rc;

	kp_ctl_batches_init(&it, bin->via.bin.ptr, bin->via.bin.size);
	while (!(cs->has_count && cs->count_left == 0)) {
		rc = kp_ctl_batches_next(&it, &rec, &err);
		if (rc == 0)
			break;
		if (rc < 0) {
			batch_damaged(cs, p, &err);
			break;
		}
		if (rec.offset < p->next)
			continue;
		if (print_stored(cs, p, &rec) != 0) {
			cs->status = KP_CTL_EXIT_FAIL;
			cs->fatal = 1;
			break;
		}
		printed++;
		printed_one(cs, p, rec.offset);
	}
	return printed;
}

/* Prints the records of a fetch response for p; returns how many. */
static uint64_t print_records(struct consumer *cs, struct part *p)
{
	const msgpack_object *recs = kp_ctl_mp_get(cs->resp.map, "records");
	const msgpack_object *bin = kp_ctl_mp_get(cs->resp.map, "batches");
	uint64_t printed = 0, offset;
	uint32_t i;

	if (bin != NULL && bin->type == MSGPACK_OBJECT_BIN)
		return print_batches(cs, p, bin);
	if (recs == NULL || recs->type != MSGPACK_OBJECT_ARRAY) {
		fail(cs, "fetch: response without records");
		return 0;
	}
	for (i = 0; i < recs->via.array.size; i++) {
		const msgpack_object *rec = &recs->via.array.ptr[i];

		if (cs->has_count && cs->count_left == 0)
			break;
		if (kp_ctl_mp_get_u64(rec, "offset", &offset) != 0) {
			fail(cs, "fetch: record without offset");
			break;
		}
		if (offset < p->next)
			continue;
		if (print_record(cs, p, rec, offset) != 0) {
			cs->status = KP_CTL_EXIT_FAIL;
			cs->fatal = 1;
			break;
		}
		printed++;
		printed_one(cs, p, offset);
	}
	return printed;
}

/* Handles a fetch error for p: recover where the protocol allows it. */
static void fetch_error(struct consumer *cs, struct part *p, int code,
			const struct kp_error *err)
{
	uint64_t start, end, at, gen;

	if (code == KP_ESWITCHED &&
	    kp_ctl_mp_get_u64(cs->resp.map, "generation", &gen) == 0) {
		cs->switched_to = gen;
		return;
	}
	if (code == KP_EOFFSET &&
	    kp_ctl_mp_get_u64(cs->resp.map, "start_offset", &start) == 0 &&
	    kp_ctl_mp_get_u64(cs->resp.map, "end_offset", &end) == 0 &&
	    p->next < start) {
		p->next = start;
		return;
	}
	/* An explicit offset past this partition's end: start at its end. */
	if (code == KP_EOFFSET &&
	    kp_ctl_mp_get_u64(cs->resp.map, "end_offset", &end) == 0 &&
	    p->next > end) {
		p->next = end;
		return;
	}
	if (code == KP_ECORRUPT &&
	    kp_ctl_mp_get_u64(cs->resp.map, "offset", &at) == 0 && at > p->next) {
		kp_ctl_fail(cs->ctx, "skipped offsets %llu-%llu of %s/%u: corrupt batch",
			    (unsigned long long)p->next,
			    (unsigned long long)(at - 1), cs->topic, p->id);
		cs->status = KP_CTL_EXIT_FAIL;
		p->next = at;
		return;
	}
	fail(cs, err->msg);
}

/* One round: a fetch for every partition still read. Returns records printed. */
static uint64_t round_once(struct consumer *cs, int idle)
{
	uint32_t i, active = 0, wait_ms = 0;
	uint64_t printed = 0, end, gen;
	struct kp_error err;
	int rc;

	for (i = 0; i < cs->nparts; i++)
		active += !cs->parts[i].done;
	if (cs->follow && idle && active > 0)
		wait_ms = KP_CTL_FOLLOW_WAIT_MS / active ? KP_CTL_FOLLOW_WAIT_MS / active : 1;
	for (i = 0; i < cs->nparts && !cs->fatal; i++) {
		cs->parts[i].refetch = 0;
		if (!cs->parts[i].done && send_fetch(cs, &cs->parts[i], wait_ms, &err) != 0)
			fail(cs, err.msg);
	}
	for (i = 0; i < cs->nparts && !cs->fatal; i++) {
		struct part *p = &cs->parts[i];
		uint64_t n;

		if (p->done)
			continue;
		rc = recv_one(cs, &err);
		if (rc != 0) {
			if (cs->resp.map != NULL)
				fetch_error(cs, p, rc, &err);
			continue;
		}
		if (kp_ctl_mp_get_u64(cs->resp.map, "generation", &gen) == 0 &&
		    gen != cs->generation) {
			if (cs->generation != 0) {
				cs->switched_to = gen;
				continue;
			}
			cs->generation = gen;
		}
		n = print_records(cs, p);
		printed += n;
		if (!cs->follow && !p->refetch &&
		    (n == 0 || kp_ctl_mp_get_u64(cs->resp.map, "end_offset", &end) != 0 ||
		     p->next >= end))
			p->done = 1;
	}
	return printed;
}

/*
 * After TOPIC_SWITCHED: says so, then reads every partition again from its
 * start in the new generation, and forgets what was committed.
 */
static void switch_generation(struct consumer *cs)
{
	const struct kp_ctl_pos earliest = { .kind = KP_CTL_POS_EARLIEST };
	uint32_t *ids = kp_calloc(cs->nparts, sizeof(*ids));
	uint64_t *starts = kp_calloc(cs->nparts, sizeof(*starts));
	uint32_t i;

	fflush(cs->ctx->out);
	fprintf(cs->ctx->err,
		"kappactl: %s switched to generation %llu; reading it from the start\n",
		cs->topic, (unsigned long long)cs->switched_to);
	cs->generation = cs->switched_to;
	cs->switched_to = 0;
	if (ids == NULL || starts == NULL) {
		fail(cs, "out of memory");
	} else {
		for (i = 0; i < cs->nparts; i++)
			ids[i] = cs->parts[i].id;
		if (kp_ctl_pos_resolve(cs->ctx, &cs->c, cs->topic, ids,
				       cs->nparts, &earliest, starts) != 0) {
			cs->status = KP_CTL_EXIT_FAIL;
			cs->fatal = 1;
		}
	}
	for (i = 0; !cs->fatal && i < cs->nparts; i++) {
		cs->parts[i].next = starts[i];
		cs->parts[i].has_committed = 0;
		cs->parts[i].done = 0;
	}
	kp_free(ids);
	kp_free(starts);
}

/*
 * Sets the starting positions: from (NULL when --from was not given), else
 * the group's committed offsets, else earliest. Returns 0 or an exit status.
 */
static int start_positions(struct consumer *cs, const struct kp_ctl_pos *from)
{
	const struct kp_ctl_pos earliest = { .kind = KP_CTL_POS_EARLIEST };
	const msgpack_object *offs;
	struct kp_error err;
	uint32_t *ids, n = 0, i, j;
	uint64_t *resolved, part, off;
	int rc = 0;

	if (from == NULL && cs->group != NULL) {
		json_t *f = json_pack("{ssss}", "group", cs->group, "topic", cs->topic);

		rc = kp_ctl_client_call(&cs->c, "group_fetch", f, &cs->resp, &err);
		json_decref(f);
		if (rc != 0 && rc != KP_ENOGROUP)
			return kp_ctl_fail(cs->ctx, "%s", err.msg);
		rc = 0;
		offs = kp_ctl_mp_get(cs->resp.map, "offsets");
		for (i = 0; offs && offs->type == MSGPACK_OBJECT_ARRAY &&
			    i < offs->via.array.size; i++) {
			const msgpack_object *o = &offs->via.array.ptr[i];

			if (kp_ctl_mp_get_u64(o, "partition", &part) != 0 ||
			    kp_ctl_mp_get_u64(o, "offset", &off) != 0)
				continue;
			for (j = 0; j < cs->nparts; j++) {
				if (cs->parts[j].id == part) {
					cs->parts[j].next = off;
					cs->parts[j].committed = off;
					cs->parts[j].has_committed = 1;
				}
			}
		}
	}
	ids = kp_calloc(cs->nparts, sizeof(*ids));
	resolved = kp_calloc(cs->nparts, sizeof(*resolved));
	if (ids == NULL || resolved == NULL)
		rc = kp_ctl_fail(cs->ctx, "out of memory");
	for (i = 0; rc == 0 && i < cs->nparts; i++) {
		if (!cs->parts[i].has_committed)
			ids[n++] = cs->parts[i].id;
	}
	if (rc == 0 && n > 0)
		rc = kp_ctl_pos_resolve(cs->ctx, &cs->c, cs->topic, ids, n,
					from ? from : &earliest, resolved);
	for (i = 0, j = 0; rc == 0 && i < cs->nparts; i++) {
		if (!cs->parts[i].has_committed)
			cs->parts[i].next = resolved[j++];
	}
	kp_free(ids);
	kp_free(resolved);
	return rc;
}

/* Fills cs->parts from --partition or the topic's partition count. */
static int choose_partitions(struct consumer *cs, const char *partition)
{
	uint64_t one = 0;
	uint32_t n = 1, i;
	int rc;

	if (partition != NULL) {
		if (kp_ctl_parse_u64(partition, &one) != 0 || one > UINT32_MAX)
			return kp_ctl_usage(cs->ctx, "--partition wants a number, not '%s'",
					    partition);
	} else {
		rc = kp_ctl_topic_partitions(cs->ctx, &cs->c, cs->topic, &n);
		if (rc != 0)
			return rc;
	}
	cs->parts = kp_calloc(n, sizeof(*cs->parts));
	if (cs->parts == NULL)
		return kp_ctl_fail(cs->ctx, "out of memory");
	cs->nparts = n;
	for (i = 0; i < n; i++)
		cs->parts[i].id = partition != NULL ? (uint32_t)one : i;
	return 0;
}

static void run(struct consumer *cs)
{
	struct sigaction old_int, old_term;
	int idle = 0;
	uint32_t i, active;

	catch_signals(&old_int, &old_term);
	while (!stop_signal && !cs->fatal) {
		uint64_t printed;

		for (i = 0, active = 0; i < cs->nparts; i++)
			active += !cs->parts[i].done;
		if (active == 0 || (cs->has_count && cs->count_left == 0))
			break;
		printed = round_once(cs, idle);
		idle = printed == 0;
		if (cs->follow || printed > 0)
			fflush(cs->ctx->out);
		if (printed > 0 && !(cs->has_count && cs->count_left == 0))
			commit(cs);
		if (cs->switched_to != 0 && !cs->fatal) {
			switch_generation(cs);
			commit(cs);
			idle = 0;
		}
	}
	fflush(cs->ctx->out);
	commit(cs);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
}

/* true when the status map st names topic among its outputs or as its dlq. */
static int writes_topic(const msgpack_object *st, const char *topic)
{
	const msgpack_object *outs = kp_ctl_mp_get(st, "outputs");
	size_t n = strlen(topic), len;
	const char *p;

	if (kp_ctl_mp_bytes(kp_ctl_mp_get(st, "dlq"), &p, &len) == 0 &&
	    len == n && memcmp(p, topic, n) == 0)
		return 1;
	for (uint32_t i = 0; outs != NULL && outs->type == MSGPACK_OBJECT_ARRAY &&
			     i < outs->via.array.size; i++) {
		if (kp_ctl_mp_bytes(&outs->via.array.ptr[i], &p, &len) == 0 &&
		    len == n && memcmp(p, topic, n) == 0)
			return 1;
	}
	return 0;
}

/*
 * The name (kp_malloc'd) of the processor that writes topic, from
 * proc_list on cs's connection. Returns 0, or prints why not and returns
 * an exit status.
 */
static int writer_of(struct consumer *cs, char **name)
{
	const msgpack_object *procs, *st;
	struct kp_error err;
	const char *p;
	size_t len;

	if (kp_ctl_client_call(&cs->c, "proc_list", NULL, &cs->resp, &err) != 0)
		return kp_ctl_fail(cs->ctx, "%s", err.msg);
	procs = kp_ctl_mp_get(cs->resp.map, "procs");
	for (uint32_t i = 0; procs != NULL && procs->type == MSGPACK_OBJECT_ARRAY &&
			     i < procs->via.array.size; i++) {
		st = &procs->via.array.ptr[i];
		if (!writes_topic(st, cs->topic) ||
		    kp_ctl_mp_bytes(kp_ctl_mp_get(st, "name"), &p, &len) != 0)
			continue;
		*name = kp_malloc(len + 1);
		if (*name == NULL)
			return kp_ctl_fail(cs->ctx, "out of memory");
		memcpy(*name, p, len);
		(*name)[len] = '\0';
		return 0;
	}
	return kp_ctl_fail(cs->ctx, "--all-versions: %s is not an output or dead-letter topic of a processor",
			   cs->topic);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * The version numbers (kp_malloc'd, ascending) of the processor writing
 * cs->topic. Returns 0, or prints the error and returns an exit status.
 */
static int version_numbers(struct consumer *cs, uint32_t **out, uint32_t *n)
{
	const msgpack_object *vs;
	struct kp_error err;
	uint64_t number;
	char *name = NULL;
	json_t *f;
	int rc = writer_of(cs, &name);

	if (rc != 0)
		return rc;
	f = json_pack("{ss}", "name", name);
	kp_free(name);
	if (f == NULL)
		return kp_ctl_fail(cs->ctx, "out of memory");
	rc = kp_ctl_client_call(&cs->c, "proc_versions", f, &cs->resp, &err);
	json_decref(f);
	if (rc != 0)
		return kp_ctl_fail(cs->ctx, "%s", err.msg);
	vs = kp_ctl_mp_get(cs->resp.map, "versions");
	if (vs == NULL || vs->type != MSGPACK_OBJECT_ARRAY)
		return kp_ctl_fail(cs->ctx, "proc_versions: response without versions");
	*out = kp_calloc(vs->via.array.size + 1, sizeof(**out));
	if (*out == NULL)
		return kp_ctl_fail(cs->ctx, "out of memory");
	*n = 0;
	for (uint32_t i = 0; i < vs->via.array.size; i++) {
		if (kp_ctl_mp_get_u64(&vs->via.array.ptr[i], "version",
				      &number) == 0 && number <= UINT32_MAX)
			(*out)[(*n)++] = (uint32_t)number;
	}
	qsort(*out, *n, sizeof(**out), cmp_u32);
	return 0;
}

/* 1 when topic exists, 0 when not, or an error printed (negative). */
static int topic_exists(struct consumer *cs, const char *topic)
{
	struct kp_error err;
	json_t *f = json_pack("{ss}", "topic", topic);
	int rc;

	if (f == NULL) {
		cs->status = kp_ctl_fail(cs->ctx, "out of memory");
		return -1;
	}
	rc = kp_ctl_client_call(&cs->c, "topic_describe", f, &cs->resp, &err);
	json_decref(f);
	if (rc == KP_ENOTOPIC)
		return 0;
	if (rc != 0) {
		cs->status = kp_ctl_fail(cs->ctx, "%s", err.msg);
		return -1;
	}
	return 1;
}

/* --all-versions: every version's topic of cs->topic in turn, to its end. */
static int consume_versions(struct consumer *cs, const char *partition,
			    const struct kp_ctl_pos *from)
{
	const char *logical = cs->topic;
	uint32_t *numbers = NULL, n = 0;
	char name[256];
	int rc = version_numbers(cs, &numbers, &n);

	for (uint32_t i = 0; rc == 0 && i < n && !cs->fatal; i++) {
		if (cs->has_count && cs->count_left == 0)
			break;
		snprintf(name, sizeof(name), "%s.v%u", logical, numbers[i]);
		rc = topic_exists(cs, name);
		if (rc <= 0) {
			rc = rc < 0 ? KP_CTL_EXIT_FAIL : 0;
			continue;
		}
		cs->topic = name;
		cs->generation = 0;
		cs->switched_to = 0;
		kp_free(cs->parts);
		cs->parts = NULL;
		cs->nparts = 0;
		rc = choose_partitions(cs, partition);
		if (rc == 0)
			rc = start_positions(cs, from);
		if (rc == 0) {
			run(cs);
			rc = cs->status;
		}
	}
	cs->topic = logical;
	kp_free(numbers);
	return rc;
}

int kp_ctl_cmd_consume(struct kp_ctl_ctx *ctx, int argc, char **argv)
{
	const char *partition = NULL, *from = NULL, *count = NULL, *pos[1];
	struct consumer cs;
	struct kp_ctl_pos start;
	int all_versions = 0;
	const struct kp_ctl_opt opts[] = {
		{ "partition", &partition, NULL },
		{ "from", &from, NULL },
		{ "count", &count, NULL },
		{ "follow", NULL, &cs.follow },
		{ "group", &cs.group, NULL },
		{ "all-versions", NULL, &all_versions },
		{ "raw", NULL, &cs.raw },
		{ NULL, NULL, NULL },
	};
	int npos, rc;

	memset(&cs, 0, sizeof(cs));
	cs.ctx = ctx;
	cs.c.fd = -1;
	kp_ctl_resp_init(&cs.resp);
	rc = kp_ctl_args_parse(ctx, argc, argv, opts, pos, 1, &npos);
	if (rc != 0)
		return rc;
	if (npos != 1)
		return kp_ctl_usage(ctx, "kappactl consume TOPIC [--partition N]"
					 " [--from earliest|latest|OFFSET|@TIME]"
					 " [--count N] [--follow] [--group G]"
					 " [--all-versions] [--raw]");
	if (all_versions && (cs.follow || cs.group != NULL))
		return kp_ctl_usage(ctx, "--all-versions reads each version once:"
					 " it takes neither --follow nor --group");
	cs.topic = pos[0];
	if (count != NULL) {
		if (kp_ctl_parse_u64(count, &cs.count_left) != 0)
			return kp_ctl_usage(ctx, "--count wants a number, not '%s'", count);
		cs.has_count = 1;
	}
	if (from != NULL && kp_ctl_pos_parse(from, &start) != 0)
		return kp_ctl_usage(ctx, "--from is earliest, latest, an offset or"
					 " @TIME, not '%s'", from);
	if (!msgpack_zone_init(&cs.zone, 4096))
		return kp_ctl_fail(ctx, "out of memory");
	rc = kp_ctl_connect(ctx, &cs.c);
	if (rc == 0 && all_versions)
		rc = consume_versions(&cs, partition, from ? &start : NULL);
	else if (rc == 0)
		rc = choose_partitions(&cs, partition);
	if (rc == 0 && !all_versions)
		rc = start_positions(&cs, from ? &start : NULL);
	if (rc == 0 && !all_versions) {
		run(&cs);
		rc = cs.status;
	}
	kp_ctl_resp_destroy(&cs.resp);
	msgpack_zone_destroy(&cs.zone);
	kp_ctl_client_close(&cs.c);
	kp_free(cs.parts);
	return rc;
}
