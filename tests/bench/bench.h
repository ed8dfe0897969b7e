/*
 * bench.h - shared pieces of kappa-bench: the clock, a blocking protocol
 * client (bench_client.c), the kappad child process (bench_server.c), the
 * peers measured in the same run (bench_peer.c), sampling helpers
 * (bench_stats.c), the open-loop producer (bench_olp.c), the processor
 * scenarios with their "no server" floor (bench_proc.c), the version
 * scenarios (bench_versions.c), the view scenarios (bench_views.c), TLS
 * (bench_tls.c: a certificate made at run time, the client's sessions)
 * and the TLS scenarios (bench_tls_rows.c).
 *
 * Access pattern: one thread per connection, blocking sockets, requests
 * pipelined by the caller; nothing here is shared between threads, except
 * an open-loop producer's connection (its sender and receiver threads).
 */
#ifndef KP_BENCH_H
#define KP_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <msgpack.h>

/* One record as sent: a map {value: bin} of 100 bytes in all. */
#define KP_BENCH_RECORD_BYTES 100
/* Its framing: fixmap(1) + "value"(6) + bin8 header(2). */
#define KP_BENCH_RECORD_OVERHEAD 9
/* max_bytes of the fetch scenario. */
#define KP_BENCH_FETCH_MAX_BYTES (1024u * 1024)

/* Monotonic clock in nanoseconds. */
uint64_t kp_bench_now_ns(void);

/* ---- bench_stats.c ---- */

/* Sleeps until the monotonic clock (kp_bench_now_ns) reads t_ns. */
void kp_bench_sleep_until(uint64_t t_ns);

/* A growable array of uint64_t samples; zero-initialise, free(v). */
struct kp_bench_u64v {
	uint64_t *v;
	size_t n, cap;
};

/* Room for n entries, the new ones zero; dies when out of memory. */
void kp_bench_u64v_reserve(struct kp_bench_u64v *a, size_t n);

/* Appends x; dies when out of memory. */
void kp_bench_u64v_push(struct kp_bench_u64v *a, uint64_t x);

/* Percentile q (0..100) of sorted v[0..n-1], nearest rank; 0 when empty. */
uint64_t kp_bench_pct(const uint64_t *v, size_t n, unsigned q);

/*
 * Median of v[0..n-1], n >= 1 (reorders v); *lo and *hi, when not NULL,
 * get the range.
 */
double kp_bench_median(double *v, size_t n, double *lo, double *hi);

/* qsort comparator for uint64_t. */
int kp_bench_cmp_u64(const void *a, const void *b);

/* Prints "kappa-bench: <message>" on stderr and exits with status 1. */
void kp_bench_die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
/* Called by kp_bench_die after its message, when set (says if kappad died). */
extern void (*kp_bench_die_hook)(void);

/* ---- bench_tls.c: TLS (OpenSSL) ---- */

/* A self-signed certificate, its key and a client context trusting it. */
struct kp_bench_tls;

/*
 * Generates a P-256 key and a self-signed certificate for IP 127.0.0.1
 * (valid for a day), writes them as PEM to dir/tls-cert.pem and
 * dir/tls-key.pem (0600), and makes the client context every TLS
 * connection uses: TLS 1.2 or later, the server's certificate must be
 * that one and name 127.0.0.1 (verification is on). Also ignores
 * SIGPIPE for the process (OpenSSL writes with write()). Dies on failure.
 */
struct kp_bench_tls *kp_bench_tls_new(const char *dir);

/* Frees t (the files stay). NULL: no-op. */
void kp_bench_tls_free(struct kp_bench_tls *t);

/* Paths of the certificate and key files (owned by t). */
const char *kp_bench_tls_cert(const struct kp_bench_tls *t);
const char *kp_bench_tls_key(const struct kp_bench_tls *t);

/*
 * Runs a blocking client handshake on the connected socket fd. Returns
 * the session (an SSL *), or NULL with the reason in why.
 */
void *kp_bench_tls_connect(struct kp_bench_tls *t, int fd, char *why,
			   size_t size);

/* Writes up to len bytes: the count, or -errno (-EPIPE: session ended). */
ssize_t kp_bench_tls_write(void *session, const void *p, size_t len);

/* Reads up to len bytes: the count, 0 at the end, or -errno / -EPROTO. */
ssize_t kp_bench_tls_read(void *session, void *p, size_t len);

/* Sends close_notify and frees the session (not the socket). NULL: no-op. */
void kp_bench_tls_close(void *session);

/* "<protocol> <cipher suite>" of an established session, into buf. */
void kp_bench_tls_describe(void *session, char *buf, size_t size);

/* A blocking connection speaking length-prefixed msgpack frames. */
struct kp_bench_conn {
	int fd;                /* the socket, -1 when closed */
	void *ssl;             /* its TLS session, NULL over plain TCP */
	char why[160];         /* why the last open failed, "" if it did not */
	char *rbuf;            /* read buffer (owned) */
	size_t rcap;           /* its capacity */
	size_t rlen;           /* bytes held */
	size_t rpos;           /* bytes consumed */
	msgpack_zone zone;     /* objects of the last decoded response */
	uint32_t next_id;      /* id for the next request built by kp_bench_call */
};

/* Connects to 127.0.0.1:port (TCP_NODELAY). Returns 0 or -errno. */
int kp_bench_conn_open(struct kp_bench_conn *c, int port);

/*
 * The same, then with tls non-NULL a TLS handshake (kp_bench_tls_connect)
 * through which every later send and receive goes. Returns 0, -errno, or
 * -EPROTO when the handshake failed (c->why says why). A TLS connection
 * belongs to one thread.
 */
int kp_bench_conn_open_tls(struct kp_bench_conn *c, int port,
			   struct kp_bench_tls *tls);
void kp_bench_conn_close(struct kp_bench_conn *c);

/* Writes all of buf. Returns 0 or -errno. */
int kp_bench_conn_send(struct kp_bench_conn *c, const void *buf, size_t len);

/*
 * Reads the next response frame and decodes it into *out (objects live in
 * c->zone until the next call). Returns 0, or -errno / -EPROTO.
 */
int kp_bench_conn_recv(struct kp_bench_conn *c, msgpack_object *out);

/*
 * Starts a request frame in sbuf: reserves the 4-byte length, opens a map of
 * n_fields + 2 entries and packs "id" (always as a fixed uint32, so that
 * kp_bench_frame_set_id can patch it) and "op". The caller packs the
 * remaining n_fields key/value pairs, then calls kp_bench_frame_end.
 */
void kp_bench_frame_begin(msgpack_sbuffer *sbuf, msgpack_packer *pk,
			  uint32_t id, const char *op, uint32_t n_fields);
void kp_bench_frame_end(msgpack_sbuffer *sbuf);
/* Rewrites the id of a frame built by kp_bench_frame_begin. */
void kp_bench_frame_set_id(char *frame, uint32_t id);

/* Packs a str key or value. */
void kp_bench_pack_str(msgpack_packer *pk, const char *s);

/* Looks up a map field by name; NULL when absent or obj is not a map. */
const msgpack_object *kp_bench_get(const msgpack_object *obj,
				   const char *key);
/* true when the response has ok: true. */
bool kp_bench_ok(const msgpack_object *resp);
/* Unsigned field, or def when absent or of another type. */
uint64_t kp_bench_get_u64(const msgpack_object *obj, const char *key,
			  uint64_t def);
/* Formats the error/message of a failed response into buf. */
void kp_bench_describe_error(const msgpack_object *resp, char *buf,
			     size_t size);

/*
 * Sends a finished frame and waits for its response; dies with the server's
 * message when the response is not ok.
 */
void kp_bench_call(struct kp_bench_conn *c, msgpack_sbuffer *frame,
		   msgpack_object *resp, const char *what);

/*
 * proc_create of processor name from file over one input topic with one
 * output topic (NULL: none named, the processor's emits open them),
 * reading from the earliest offset; dies unless ok.
 */
void kp_bench_call_proc_create(struct kp_bench_conn *c, msgpack_sbuffer *sb,
			       const char *name, const char *file,
			       const char *input, const char *output);

/* proc_replay of name from earliest, no rate limit; returns the version. */
uint32_t kp_bench_call_proc_replay(struct kp_bench_conn *c,
				   msgpack_sbuffer *sb, const char *name);

/*
 * A long-polling fetch (records form, 1 MiB) of partition 0 of topic from
 * offset; returns its records array (in *resp). Dies unless ok.
 */
const msgpack_object *kp_bench_call_fetch(struct kp_bench_conn *c,
					  msgpack_sbuffer *sb,
					  const char *topic, uint64_t offset,
					  uint32_t max_wait_ms,
					  msgpack_object *resp);

/* ---- bench_olp.c: the open-loop producer ---- */

/* One acknowledged produce request. */
struct kp_bench_ack {
	uint64_t sched_ns, ack_ns;   /* scheduled send, response arrival */
	uint64_t base, count;        /* offsets base .. base+count-1 */
};

struct kp_bench_olp {
	const char *topic;           /* borrowed */
	uint32_t batch;              /* records per request */
	uint64_t interval_ns;        /* between scheduled sends */
	uint64_t t0;                 /* schedule origin: request i at t0 + i*interval */
	atomic_bool stop;
	atomic_uint_fast64_t sent;   /* requests sent */
	atomic_bool done_sending;
	struct kp_bench_conn c;
	msgpack_sbuffer frame;
	/* Kept by the receiving thread; read them after kp_bench_olp_stop. */
	struct kp_bench_ack *acks;
	size_t n_acks, cap_acks;
	pthread_t ts, tr;
};

/*
 * Connects to port and starts producing, one request of batch records
 * (users from first on, kp_bench_build_users) to partition 0 of topic
 * every interval_ns from one interval after now. Dies on any failure.
 */
void kp_bench_olp_start(struct kp_bench_olp *o, int port, const char *topic,
			uint32_t batch, uint64_t interval_ns, uint64_t first);

/*
 * Stops sending and waits for every response (each must acknowledge
 * `batch` records, and at least one must have come); o->acks holds them.
 */
void kp_bench_olp_stop(struct kp_bench_olp *o);

/* Frees what kp_bench_olp_stop left in o. */
void kp_bench_olp_free(struct kp_bench_olp *o);

/* What one load scenario measured. */
struct kp_bench_load {
	uint64_t records;      /* records acknowledged or read */
	double seconds;        /* wall time */
	uint64_t p50_ns;       /* request latency, send to response; 0 if n/a */
	uint64_t p99_ns;
};

/*
 * In the functions below, tls is the server's (kp_bench_server.tls): the
 * connections go over TLS with it, over plain TCP when it is NULL.
 */

/* topic_create with the given partitions and fsync; dies on failure. */
void kp_bench_topic_create(int port, const char *topic, uint32_t partitions,
			   const char *fsync);
/* The same over tls. */
void kp_bench_topic_create_tls(int port, struct kp_bench_tls *tls,
			       const char *topic, uint32_t partitions,
			       const char *fsync);
/* Sums end_offset and size_bytes over the topic's partitions. */
void kp_bench_topic_stats(int port, const char *topic, uint64_t *records,
			  uint64_t *bytes);
/* The same over tls. */
void kp_bench_topic_stats_tls(int port, struct kp_bench_tls *tls,
			      const char *topic, uint64_t *records,
			      uint64_t *bytes);
/*
 * Produces at least `records` records of KP_BENCH_RECORD_BYTES to partitions
 * 0..conns-1 of topic, one connection and thread per partition, in requests
 * of `batch` records with up to `inflight` unacknowledged per connection.
 * Dies unless every record is acknowledged.
 */
void kp_bench_produce(int port, struct kp_bench_tls *tls, const char *topic,
		      uint32_t conns, uint64_t records, uint32_t batch,
		      uint32_t inflight, struct kp_bench_load *out);
/*
 * Reads offsets 0..end-1 of partition 0 with fetches of max_bytes 1 MiB in
 * format "batches", up to `inflight` pipelined: checks both CRC32Cs of
 * every batch, walks its records, and checks every record arrives once, in
 * order, with its 100 bytes.
 */
void kp_bench_fetch(int port, struct kp_bench_tls *tls, const char *topic,
		    uint64_t end, uint32_t inflight, struct kp_bench_load *out);
/* The same read in format "records" (a msgpack map per record). */
void kp_bench_fetch_records(int port, struct kp_bench_tls *tls,
			    const char *topic, uint64_t end, uint32_t inflight,
			    struct kp_bench_load *out);

/* The kappad child and its scratch directory. */
struct kp_bench_server {
	pid_t pid;             /* kappad, 0 when not running */
	int port;              /* its listen port */
	char root[512];        /* the temp directory (data, logs, peer files) */
	char data[600];        /* root/data, kappad's --data */
	char log[600];         /* root/kappad.log, kappad's stdout and stderr */
	char base_config[600]; /* root/base.conf: what every run needs (and
				  tls_cert / tls_key with TLS) */
	struct kp_bench_tls *tls; /* borrowed: the protocol port speaks TLS
				     with its certificate; NULL: plain TCP */
};

/* Creates a directory from template "<parent>/kappa-bench.XXXXXX". */
void kp_bench_mkdtemp(const char *parent, char *out, size_t size);

/* Recursively removes a directory. Returns 0 or -errno. */
int kp_bench_rmtree(const char *path);

/* Returns a port on 127.0.0.1 that was free a moment ago. */
int kp_bench_free_port(void);

/*
 * Starts kappad on a free port with a fresh data dir under root (which must
 * exist) and waits (up to 10 s) until it answers ping. With config non-NULL
 * it is passed as --config. Dies on failure, showing its log.
 */
void kp_bench_server_start(struct kp_bench_server *s, const char *kappad,
			   const char *root, const char *config);
/*
 * The same with TLS on the protocol port when tls is not NULL (borrowed,
 * it must outlive the server): base.conf also sets tls_cert and tls_key
 * to tls's files, the ping goes over TLS, and s->tls is tls, for the
 * caller's connections (kp_bench_conn_open_tls(c, s->port, s->tls)).
 */
void kp_bench_server_start_tls(struct kp_bench_server *s, const char *kappad,
			       const char *root, const char *config,
			       struct kp_bench_tls *tls);
/* SIGTERM, wait for exit. Returns kappad's exit status (or -1). */
int kp_bench_server_stop(struct kp_bench_server *s);

/* Result of one peer run. */
struct kp_bench_peer_result {
	uint64_t records;      /* records written or read */
	double seconds;        /* wall time */
	uint64_t p50_ns;       /* per-group latency, 0 when not measured */
	uint64_t p99_ns;
};

/*
 * The peer for fsync=never: sequential write() of 64 KiB buffers holding
 * records * rec_bytes bytes to a fresh file at path.
 */
void kp_bench_peer_write(const char *path, uint64_t records, size_t rec_bytes,
			 struct kp_bench_peer_result *out);

/*
 * The peer for fsync=always: groups of `group` batches, each batch one
 * write() of batch * rec_bytes bytes, then one fdatasync() per group (the
 * ideal group commit of everything in flight). Latency is per group.
 */
void kp_bench_peer_fsync(const char *path, uint64_t records, size_t rec_bytes,
			 uint32_t batch, uint32_t group,
			 struct kp_bench_peer_result *out);

/* Sequential read() of path in 64 KiB buffers (page cache): fetch's peer. */
void kp_bench_peer_read(const char *path, size_t rec_bytes,
			struct kp_bench_peer_result *out);

/*
 * Redis Streams peer: starts redis-server (path) on a free port under dir,
 * with AOF everysec when aof is true and no persistence otherwise, and runs
 * XADD pipelined `pipeline` deep with values of value_bytes bytes. Returns 0,
 * or -1 with a reason in why when it cannot run.
 */
int kp_bench_peer_redis(const char *redis_server, const char *dir, bool aof,
			uint64_t records, size_t value_bytes,
			uint32_t pipeline, struct kp_bench_peer_result *out,
			char *why, size_t why_size);

/* ---- processor scenarios (bench_proc.c) ---- */

/* Distinct users in the processor scenarios' records. */
#define KP_BENCH_USERS 1000
/* Most processors (and floor threads) one scenario runs. */
#define KP_BENCH_MAX_PROCS 8

/*
 * Writes record i, the msgpack map {user: "u<i % KP_BENCH_USERS>", pad: str}
 * of exactly KP_BENCH_RECORD_BYTES bytes, to out; returns its length.
 */
size_t kp_bench_user_record(uint64_t i, char *out);

/*
 * Builds in sb a produce frame (id `id`) to partition 0 of topic holding
 * `batch` records of kp_bench_user_record, numbered from `first`.
 */
void kp_bench_build_users(msgpack_sbuffer *sb, const char *topic, uint32_t id,
			  uint64_t first, uint32_t batch);

/*
 * Produces records 0..records-1 of kp_bench_user_record to partition 0 of
 * topic over one connection, `batch` per request, `inflight` pipelined.
 * records must be a multiple of batch. Dies unless all are acknowledged.
 */
void kp_bench_produce_users(int port, const char *topic, uint64_t records,
			    uint32_t batch, uint32_t inflight);

/* One processor to create: reads input from earliest, may emit to output. */
struct kp_bench_proc {
	char name[64];
	char file[600];            /* absolute path of the .lua or .so */
	const char *input;         /* topic */
	const char *output;        /* topic, or NULL for none */
	uint32_t time_budget_ms;   /* 0: the server's default */
};

/* Creates one processor (from earliest) over its own connection. */
void kp_bench_proc_create(int port, const struct kp_bench_proc *pr);

/* Deletes processor name over its own connection. */
void kp_bench_proc_delete(int port, const char *name);

/*
 * Creates the n processors and polls proc_status (every millisecond) until
 * each has processed per_proc records; out->seconds runs from the first
 * proc_create to the poll that saw the last one finish. Checks no record
 * failed and each view holds min(per_proc, KP_BENCH_USERS) keys, then
 * deletes the processors.
 */
void kp_bench_proc_run(int port, const struct kp_bench_proc *procs, size_t n,
		       uint64_t per_proc, struct kp_bench_load *out);

/*
 * The "no server" floor: `threads` threads each decode per_thread records
 * of kp_bench_user_record (from one shared buffer) with msgpack_unpack and
 * count the users in a C hash map. out->records is the total.
 */
void kp_bench_peer_floor(uint64_t per_thread, uint32_t threads,
			 struct kp_bench_peer_result *out);

/*
 * Redis Function peer: starts redis-server without persistence, loads a
 * library whose function decodes its argument with cmsgpack and does one
 * HINCRBY on the user, and calls it (FCALL) once per record of
 * kp_bench_user_record, pipelined `pipeline` deep. Returns 0, or -1 with a
 * reason in why.
 */
int kp_bench_peer_redis_fcall(const char *redis_server, const char *dir,
			      uint64_t records, uint32_t pipeline,
			      struct kp_bench_peer_result *out, char *why,
			      size_t why_size);

/* ---- processor version scenarios (bench_versions.c) ---- */

struct kp_bench_versions_opts {
	const char *kappad;          /* the server binary */
	const char *root;            /* absolute scratch directory */
	uint64_t records;            /* history replayed (multiple of batch) */
	uint32_t reloads;            /* hot reloads in the reload scenario */
	uint32_t batch, inflight;    /* for pre-loading the history */
	bool json;                   /* one JSON object per line */
	struct kp_bench_server *srv; /* the kappad child (killed on exit) */
};

/*
 * The version scenarios: the pause a hot reload causes in processing
 * (with the same run without reloads as the peer), replay throughput
 * (against the same processor from scratch) and produce latency and live
 * lag while a replay runs flat out (against no replay). Each starts its own
 * kappad under root; prints its lines.
 */
void kp_bench_versions(const struct kp_bench_versions_opts *o);

/* ---- view scenarios (bench_views.c) ---- */

/* Most key counts --views-keys takes. */
#define KP_BENCH_MAX_VIEW_KEYS 8

struct kp_bench_views_opts {
	const char *kappad;          /* the server binary */
	const char *root;            /* absolute scratch directory */
	uint64_t records;            /* N per count run (multiple of batch) */
	uint64_t keys[KP_BENCH_MAX_VIEW_KEYS]; /* key counts K; keys[0] is
						  the peer of the others, the
						  last gets scenarios 2-3 */
	size_t key_count;            /* entries of keys, >= 1 */
	uint64_t compact_records;    /* records of the compaction scenario */
	uint32_t runs;               /* rounds; figures are their medians */
	uint32_t batch, inflight;    /* for producing */
	bool json;                   /* one JSON object per line */
	struct kp_bench_server *srv; /* the kappad child (killed on exit) */
};

/*
 * The view scenarios: count-by-key throughput for each key count (ratio to
 * keys[0]), kappad's anonymous memory and the view's disk size at the last
 * count, the time from exec to the first view_get after SIGKILL (against
 * a processor with an empty view over as much log), view_get latency idle
 * and while the processor works, and a compacted topic's size and view
 * against an uncompacted copy. Each kappad is started under root and its
 * directory removed after it; prints its lines once all rounds are done.
 */
void kp_bench_views(const struct kp_bench_views_opts *o);

/* ---- end-to-end latency scenarios (bench_e2e.c) ---- */

struct kp_bench_e2e_opts {
	const char *kappad;          /* the server binary */
	const char *root;            /* absolute scratch directory */
	const char *plugin;          /* count_by_user.so, or NULL: Lua only */
	uint64_t records;            /* produced to find the max rate */
	uint64_t seconds;            /* the measured window at 50 % */
	uint32_t runs;               /* rounds (1..64); figures are medians */
	uint32_t batch, inflight;    /* for finding the max rate */
	bool json;                   /* one JSON object per line */
	struct kp_bench_server *srv; /* the kappad child (killed on exit) */
};

/*
 * The end-to-end scenarios: for the Lua and (plugin non-NULL) the C
 * count+emit processor, the max sustained rate, then ack-to-visible and
 * produce-to-ack at 50 % of it for `seconds`, with ping round trips to the
 * same kappad in the same window as the peer; for Lua also the same while a
 * replay runs flat out. Each round starts its own kappads under root;
 * prints the lines (medians over the rounds) once all rounds are done.
 */
void kp_bench_e2e(const struct kp_bench_e2e_opts *o);

/* ---- what TLS costs (bench_tls_rows.c) ---- */

struct kp_bench_tls_opts {
	const char *kappad;          /* the server binary */
	const char *root;            /* absolute scratch directory */
	uint64_t records;            /* per produce, then fetched back */
	uint32_t runs;               /* rounds (1..64); figures are medians */
	uint32_t handshakes;         /* connect+ping per side and round */
	uint32_t batch, inflight;    /* of the produce requests */
	bool json;                   /* one JSON object per line */
	struct kp_bench_server *plain;   /* the plain kappad (killed on exit) */
	struct kp_bench_server *tls_srv; /* the TLS kappad (killed on exit) */
};

/*
 * The TLS scenarios: starts a plain kappad and one with TLS (a
 * certificate made under root by kp_bench_tls_new) side by side and, in
 * each round, with the order of the two alternating, produces
 * o->records over one connection to a fresh topic of each, fetches it
 * back with one consumer, times o->handshakes connect+ping+close, and
 * deletes the topics. Prints one line each for produce, fetch and
 * connect, medians over the rounds with the ratio TLS/plain (per round,
 * then the median) and kappad's CPU per MB; stops both kappads.
 */
void kp_bench_tls_rows(const struct kp_bench_tls_opts *o);

#endif
