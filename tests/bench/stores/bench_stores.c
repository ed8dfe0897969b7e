/*
 * bench_stores.c - kappa-bench-stores: LMDB against RocksDB as the on-disk
 * store of a processor's view, measured for the access pattern of kappa's
 * views (docs/BENCHMARKS.md, "View store: LMDB against RocksDB").
 *
 * The pattern: a processor applies increments to random keys ("user-%08u",
 * values msgpack positive integers of 1-9 bytes). A key missing from the
 * in-memory dirty map (the cache) is read from the store; every
 * CHECKPOINT_OPS operations the dirty keys and a small offsets record are
 * written in ONE synced store transaction (the checkpoint) and the map is
 * cleared. Queries run on another thread straight against the store's last
 * checkpoint.
 *
 * Each (store, key count) runs in two child processes: one fills the store
 * with N keys (untimed for the scenarios), one runs the scenarios: load,
 * point reads (alone and beside a committing writer thread), reopen and
 * ordered scans. A thread samples RssAnon from /proc/self/status every
 * SAMPLE_US, so that the peak reported is that store's alone. Results come
 * back through a shared anonymous page.
 *
 * --fullfs DIR fills a small file system (a 32 MiB tmpfs, say) with
 * checkpoints until the store fails, and reports how: an error, or a signal
 * (SIGBUS for a mapped store writing a page the file system cannot hold),
 * and whether the last checkpoint is intact after a reopen.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* nftw's FTW_PHYS, strsignal, posix_fallocate */
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECKPOINT_OPS 100000u  /* operations between two checkpoints */
#define KEY_LEN 13              /* "user-%08u" */
#define MAX_KEYS 100000000u     /* 8 digits */
#define FILL_BATCH 1000000u     /* keys per transaction of the fill */
#define SCAN_KEYS 100000u       /* keys per ordered scan */
#define SAMPLE_US 2000          /* RssAnon sampling period */
#define OFFSETS_KEY "#offsets"  /* sorts before every "user-" key */
#define MIB ((size_t)1 << 20)
#define FALLOC_STEP (4 * MIB)   /* preallocation headroom and step */
#define RW_MIN_COMMITS 3         /* writer commits during reads, at least */
#define FULLFS_BATCH 20000u     /* new keys per checkpoint in --fullfs */
#define FULLFS_MAX 5000u        /* checkpoints before --fullfs gives up */
#define BALLAST (4 * MIB)       /* freed after the first failure */
#define RETRY_S 30              /* then retries, once a second */
#define HANG_S 60               /* a --fullfs child stuck this long hangs */

static const char *prog = "kappa-bench-stores";

__attribute__((format(printf, 1, 2), noreturn))
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* dst = fmt formatted; dies when that does not fit in len bytes (paths). */
__attribute__((format(printf, 3, 4)))
static void path_fmt(char *dst, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(dst, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len)
		die("path too long: %s...", dst);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* splitmix64: the next number of the sequence whose state is *s. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

/* A uniform number in [0, n). */
static uint32_t rng_below(uint64_t *s, uint32_t n)
{
	return (uint32_t)(((rng_next(s) >> 32) * (uint64_t)n) >> 32);
}

/* ---- keys and values ---------------------------------------------------- */

/* Writes key number i (< MAX_KEYS) as "user-%08u": KEY_LEN bytes, no NUL. */
static void key_format(char out[KEY_LEN], uint32_t i)
{
	memcpy(out, "user-", 5);
	for (int d = KEY_LEN - 1; d >= 5; d--) {
		out[d] = (char)('0' + i % 10);
		i /= 10;
	}
}

/* The value of key i before its first increment: five msgpack widths
 * (1, 2, 3, 5, 9 bytes) by key number, which increments do not change. */
static uint64_t seed_value(uint32_t i)
{
	static const uint64_t seeds[5] = {0, 200, 40000, 3000000000u,
					  (uint64_t)1 << 40};

	return seeds[i % 5];
}

static void be_put(uint8_t *p, uint64_t v, size_t n)
{
	while (n-- > 0) {
		p[n] = (uint8_t)v;
		v >>= 8;
	}
}

/* Encodes v as the shortest msgpack positive integer; returns its length. */
static size_t mp_put_uint(uint8_t out[9], uint64_t v)
{
	if (v <= 0x7f) {
		out[0] = (uint8_t)v;
		return 1;
	}
	if (v <= 0xff) {
		out[0] = 0xcc;
		be_put(out + 1, v, 1);
		return 2;
	}
	if (v <= 0xffff) {
		out[0] = 0xcd;
		be_put(out + 1, v, 2);
		return 3;
	}
	if (v <= 0xffffffffu) {
		out[0] = 0xce;
		be_put(out + 1, v, 4);
		return 5;
	}
	out[0] = 0xcf;
	be_put(out + 1, v, 8);
	return 9;
}

/* Decodes a msgpack positive integer of exactly len bytes: 0, or -1 when
 * p is not one. */
static int mp_get_uint(const uint8_t *p, size_t len, uint64_t *v)
{
	size_t n;

	if (len == 1 && p[0] <= 0x7f) {
		*v = p[0];
		return 0;
	}
	if (len == 0 || p[0] < 0xcc || p[0] > 0xcf)
		return -1;
	n = (size_t)1 << (p[0] - 0xcc);
	if (len != n + 1)
		return -1;
	*v = 0;
	for (size_t i = 1; i <= n; i++)
		*v = (*v << 8) | p[i];
	return 0;
}

/* ---- latency statistics --------------------------------------------------- */

/* A log-linear histogram of nanoseconds: 32 buckets per power of two, so a
 * percentile is within 3 % of the exact one. */
#define H_SUB 32
#define H_BUCKETS (64 * H_SUB)
struct hist {
	uint64_t n;
	uint64_t b[H_BUCKETS];
};

static unsigned hist_index(uint64_t v)
{
	unsigned msb;

	if (v < H_SUB)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	return (msb - 4) * H_SUB + (unsigned)((v >> (msb - 5)) & (H_SUB - 1));
}

/* The middle of bucket idx, the inverse of hist_index. */
static double hist_value(unsigned idx)
{
	unsigned msb = idx / H_SUB + 4, sub = idx % H_SUB;

	if (idx < H_SUB)
		return idx;
	return (double)((uint64_t)(H_SUB + sub) << (msb - 5)) +
	       (double)((uint64_t)1 << (msb - 5)) / 2;
}

static void hist_add(struct hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->n++;
}

/* The p-quantile (0 < p <= 1) of the values added, ns; 0 when none. */
static double hist_pct(const struct hist *h, double p)
{
	uint64_t rank = (uint64_t)(p * (double)h->n + 0.999999), seen = 0;

	for (unsigned i = 0; i < H_BUCKETS && h->n > 0; i++) {
		seen += h->b[i];
		if (seen >= rank && seen > 0)
			return hist_value(i);
	}
	return 0;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* The exact p-quantile of n values (sorted in place); 0 when n is 0. */
static uint64_t exact_pct(uint64_t *v, size_t n, double p)
{
	size_t rank = (size_t)(p * (double)n + 0.999999);

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), u64_cmp);
	return v[rank > 0 ? rank - 1 : 0];
}

/* ---- memory and disk ------------------------------------------------------ */

/* The kiB figure after name (as "RssAnon:") in text, 0 when absent. */
static long status_field(const char *text, const char *name)
{
	const char *p = strstr(text, name);

	return p != NULL ? strtol(p + strlen(name), NULL, 10) : 0;
}

/* RssAnon and RssFile of this process, kiB (0 when unreadable). Reads
 * /proc/self/status with read(2): no allocation, so it is safe in the
 * sampler thread. */
static void mem_now(long *anon, long *file)
{
	char buf[8192];
	ssize_t n = 0;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	buf[n > 0 ? n : 0] = '\0';
	*anon = status_field(buf, "RssAnon:");
	*file = status_field(buf, "RssFile:");
}

static _Atomic long peak_anon, peak_file;
static atomic_bool sampler_stop;

static void atomic_max(_Atomic long *peak, long v)
{
	long cur = atomic_load(peak);

	while (v > cur && !atomic_compare_exchange_weak(peak, &cur, v))
		;
}

/* Takes one sample into the peaks. */
static void mem_sample(void)
{
	long anon, file;

	mem_now(&anon, &file);
	atomic_max(&peak_anon, anon);
	atomic_max(&peak_file, file);
}

/* Starts a new phase: the peaks become the current figures. */
static void mem_reset(void)
{
	long anon, file;

	mem_now(&anon, &file);
	atomic_store(&peak_anon, anon);
	atomic_store(&peak_file, file);
}

static void *sampler_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&sampler_stop)) {
		mem_sample();
		usleep(SAMPLE_US);
	}
	return NULL;
}

static uint64_t du_alloc, du_size;

static int du_visit(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (type == FTW_F) {
		du_alloc += (uint64_t)st->st_blocks * 512;
		du_size += (uint64_t)st->st_size;
	}
	return 0;
}

/* Bytes allocated on disk and apparent size of the files under path (a
 * file or a directory). Not thread-safe. */
static void disk_usage(const char *path, uint64_t *alloc, uint64_t *size)
{
	du_alloc = du_size = 0;
	nftw(path, du_visit, 16, FTW_PHYS);
	*alloc = du_alloc;
	*size = du_size;
}

static int rm_visit(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

/* rm -rf path; a missing path is not an error. */
static void remove_tree(const char *path)
{
	nftw(path, rm_visit, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the dirty map (the cache in front of the store) ---------------------- */

struct kv {
	uint32_t key;
	uint64_t val;
};

/* The keys changed since the last checkpoint: entries in insertion order and
 * an open-addressing table of 1 + their index (0: empty slot). */
struct dirty {
	uint32_t *slot;
	unsigned bits;
	struct kv *ent;
	size_t n, max;
};

static void dirty_init(struct dirty *d, size_t max)
{
	d->bits = 10;
	while (((size_t)1 << d->bits) < 2 * max)
		d->bits++;
	d->slot = calloc((size_t)1 << d->bits, sizeof(*d->slot));
	d->ent = malloc(max * sizeof(*d->ent));
	if (d->slot == NULL || d->ent == NULL)
		die("out of memory");
	d->n = 0;
	d->max = max;
}

static void dirty_free(struct dirty *d)
{
	free(d->slot);
	free(d->ent);
}

/* Bytes the map holds: its size as a cache of max keys. */
static size_t dirty_bytes(const struct dirty *d)
{
	return ((size_t)1 << d->bits) * sizeof(*d->slot) +
	       d->max * sizeof(*d->ent);
}

/* The entry of key; inserted with val 0 and *fresh set when absent. */
static struct kv *dirty_get(struct dirty *d, uint32_t key, bool *fresh)
{
	size_t mask = ((size_t)1 << d->bits) - 1;
	size_t h = (size_t)(((uint64_t)key * 0x9e3779b97f4a7c15u) >>
			    (64 - d->bits));

	for (; d->slot[h] != 0; h = (h + 1) & mask) {
		if (d->ent[d->slot[h] - 1].key == key) {
			*fresh = false;
			return &d->ent[d->slot[h] - 1];
		}
	}
	if (d->n == d->max)
		die("dirty map full");
	d->ent[d->n] = (struct kv){key, 0};
	d->slot[h] = (uint32_t)++d->n;
	*fresh = true;
	return &d->ent[d->n - 1];
}

static void dirty_clear(struct dirty *d)
{
	memset(d->slot, 0, ((size_t)1 << d->bits) * sizeof(*d->slot));
	d->n = 0;
}

static int kv_cmp(const void *a, const void *b)
{
	uint32_t x = ((const struct kv *)a)->key, y = ((const struct kv *)b)->key;

	return (x > y) - (x < y);
}

/* ---- the store interface -------------------------------------------------- */

enum {
	V_WRITEMAP = 1,    /* LMDB: MDB_WRITEMAP */
	V_FALLOC = 2,      /* LMDB: posix_fallocate ahead of every txn */
	V_NOWAL = 4,       /* RocksDB: disableWAL + flush per checkpoint */
	V_FULLFS_ONLY = 8, /* only in --fullfs unless named in --stores */
};

struct store;
struct reader;

/* One store engine. Contract: open/close/fill/commit from one thread at a
 * time (the writer); a reader belongs to one thread and any number of
 * readers may run beside the writer. commit writes the n entries (sorted by
 * key) and the offsets record in one transaction that is durable when it
 * returns 0; -1 leaves the last commit in place and an error in s->err.
 * rd_get returns 1 (found, *val set) or 0 (absent); between rd_begin and
 * rd_end a reader sees one commit. Other failures are fatal. */
struct engine {
	int (*open)(struct store *s);
	void (*close)(struct store *s);
	void (*fill)(struct store *s, uint32_t nkeys);
	int (*commit)(struct store *s, const struct kv *kv, size_t n,
		      uint64_t seq);
	void (*rd_open)(struct store *s, struct reader *r);
	void (*rd_close)(struct reader *r);
	void (*rd_begin)(struct reader *r);
	void (*rd_end)(struct reader *r);
	int (*rd_get)(struct reader *r, const char *key, size_t klen,
		      uint64_t *val);
	uint64_t (*rd_scan)(struct reader *r, uint32_t start, uint64_t n,
			    bool wrap);
	void (*describe)(struct store *s, char *buf, size_t len);
};

struct variant {
	const char *name;
	const struct engine *eng;
	unsigned flags;
};

struct store {
	const struct variant *v;
	char path[PATH_MAX];
	char err[256];
	size_t mapsize;               /* LMDB */
	size_t rocks_cache, rocks_wbuf, rocks_sst; /* RocksDB */
	int rocks_compression;
	MDB_env *env;
	MDB_dbi dbi;
	int fd;
	size_t alloc;                 /* V_FALLOC: bytes fallocated */
	rocksdb_t *db;
	rocksdb_options_t *opt;
	rocksdb_block_based_table_options_t *bbt;
	rocksdb_cache_t *cache;
	rocksdb_writeoptions_t *wo, *wo_fill;
	rocksdb_readoptions_t *ro;
	rocksdb_flushoptions_t *fo;
	rocksdb_writebatch_t *wb;
};

struct reader {
	struct store *s;
	MDB_txn *txn;
};

static volatile uint64_t sink; /* keeps scanned values alive */

/* Decodes a stored value or dies. */
static uint64_t value_decode(const void *p, size_t len)
{
	uint64_t v;

	if (mp_get_uint(p, len, &v) != 0)
		die("stored value is not a msgpack integer (%zu bytes)", len);
	return v;
}

/* ---- LMDB ------------------------------------------------------------------ */

static int lmdb_fail(struct store *s, const char *what, int rc)
{
	snprintf(s->err, sizeof(s->err), "%s: %s", what, mdb_strerror(rc));
	return -1;
}

/* V_FALLOC: makes sure the pages the next transaction may write are
 * allocated: file and map are grown to the used size plus FALLOC_STEP,
 * fallocated first. -1 with s->err (and no transaction begun) when the file
 * system cannot hold that. No transaction may be active in the process. */
static int lmdb_reserve(struct store *s)
{
	MDB_envinfo info;
	MDB_stat st;
	size_t want;
	int rc;

	mdb_env_info(s->env, &info);
	mdb_env_stat(s->env, &st);
	want = (info.me_last_pgno + 1) * st.ms_psize + FALLOC_STEP;
	want = (want + FALLOC_STEP - 1) / FALLOC_STEP * FALLOC_STEP;
	if (want < s->mapsize)
		want = s->mapsize;
	if (want <= s->alloc)
		return 0;
	if ((rc = posix_fallocate(s->fd, 0, (off_t)want)) != 0) {
		snprintf(s->err, sizeof(s->err), "posix_fallocate %zu MiB: %s",
			 want / MIB, strerror(rc));
		return -1;
	}
	s->alloc = want;
	if (want > s->mapsize && (rc = mdb_env_set_mapsize(s->env, want)))
		return lmdb_fail(s, "mdb_env_set_mapsize", rc);
	s->mapsize = want;
	return 0;
}

static int lmdb_open_dbi(struct store *s)
{
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		return lmdb_fail(s, "mdb_txn_begin", rc);
	if ((rc = mdb_dbi_open(txn, NULL, 0, &s->dbi)) != 0) {
		mdb_txn_abort(txn);
		return lmdb_fail(s, "mdb_dbi_open", rc);
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		return lmdb_fail(s, "mdb_txn_commit", rc);
	return 0;
}

/* One file (MDB_NOSUBDIR), synced commits, MDB_NOTLS so that a reader's
 * transaction is tied to the reader and not to its thread. */
static int lmdb_open(struct store *s)
{
	unsigned flags = MDB_NOSUBDIR | MDB_NOTLS;
	int rc;

	if (s->v->flags & V_WRITEMAP)
		flags |= MDB_WRITEMAP;
	if ((rc = mdb_env_create(&s->env)) != 0)
		return lmdb_fail(s, "mdb_env_create", rc);
	if ((rc = mdb_env_set_mapsize(s->env, s->mapsize)) != 0 ||
	    (rc = mdb_env_set_maxreaders(s->env, 16)) != 0 ||
	    (rc = mdb_env_open(s->env, s->path, flags, 0644)) != 0) {
		mdb_env_close(s->env);
		s->env = NULL;
		return lmdb_fail(s, "mdb_env_open", rc);
	}
	mdb_env_get_fd(s->env, &s->fd);
	s->alloc = 0;
	if (lmdb_open_dbi(s) != 0 ||
	    ((s->v->flags & V_FALLOC) && lmdb_reserve(s) != 0)) {
		mdb_env_close(s->env);
		s->env = NULL;
		return -1;
	}
	return 0;
}

static void lmdb_close(struct store *s)
{
	mdb_env_close(s->env);
	s->env = NULL;
}

static int lmdb_put_kv(struct store *s, MDB_txn *txn, uint32_t key,
		       uint64_t val, unsigned flags)
{
	char k[KEY_LEN];
	uint8_t v[9];
	MDB_val mk = {KEY_LEN, k}, mv;

	key_format(k, key);
	mv.mv_size = mp_put_uint(v, val);
	mv.mv_data = v;
	return mdb_put(txn, s->dbi, &mk, &mv, flags);
}

static int lmdb_put_offsets(struct store *s, MDB_txn *txn, uint64_t seq)
{
	uint8_t v[9];
	MDB_val mk = {sizeof(OFFSETS_KEY) - 1, (void *)OFFSETS_KEY}, mv;

	mv.mv_size = mp_put_uint(v, seq);
	mv.mv_data = v;
	return mdb_put(txn, s->dbi, &mk, &mv, 0);
}

/* Keys 0..nkeys-1 with their seed values, in order (MDB_APPEND: full
 * pages), FILL_BATCH keys per synced transaction. */
static void lmdb_fill(struct store *s, uint32_t nkeys)
{
	MDB_txn *txn;
	int rc;

	for (uint32_t i = 0; i < nkeys;) {
		uint32_t end = nkeys - i > FILL_BATCH ? i + FILL_BATCH : nkeys;

		if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
			die("fill: mdb_txn_begin: %s", mdb_strerror(rc));
		for (; i < end; i++)
			if ((rc = lmdb_put_kv(s, txn, i, seed_value(i),
					      MDB_APPEND)) != 0)
				die("fill: mdb_put: %s", mdb_strerror(rc));
		if ((rc = mdb_txn_commit(txn)) != 0)
			die("fill: mdb_txn_commit: %s", mdb_strerror(rc));
	}
}

static int lmdb_commit(struct store *s, const struct kv *kv, size_t n,
		       uint64_t seq)
{
	MDB_txn *txn;
	int rc;

	if ((s->v->flags & V_FALLOC) && lmdb_reserve(s) != 0)
		return -1;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		return lmdb_fail(s, "mdb_txn_begin", rc);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = lmdb_put_kv(s, txn, kv[i].key, kv[i].val, 0);
	if (rc == 0)
		rc = lmdb_put_offsets(s, txn, seq);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return lmdb_fail(s, "mdb_put", rc);
	}
	if ((rc = mdb_txn_commit(txn)) != 0)
		return lmdb_fail(s, "mdb_txn_commit", rc);
	return 0;
}

/* A reader holds one read-only transaction, reset between queries (a
 * snapshot held open stops LMDB from reusing the pages freed after it). */
static void lmdb_rd_open(struct store *s, struct reader *r)
{
	int rc;

	r->s = s;
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &r->txn)) != 0)
		die("mdb_txn_begin(rdonly): %s", mdb_strerror(rc));
	mdb_txn_reset(r->txn);
}

static void lmdb_rd_close(struct reader *r)
{
	mdb_txn_abort(r->txn);
}

static void lmdb_rd_begin(struct reader *r)
{
	int rc;

	if ((rc = mdb_txn_renew(r->txn)) != 0)
		die("mdb_txn_renew: %s", mdb_strerror(rc));
}

static void lmdb_rd_end(struct reader *r)
{
	mdb_txn_reset(r->txn);
}

static int lmdb_rd_get(struct reader *r, const char *key, size_t klen,
		       uint64_t *val)
{
	MDB_val mk = {klen, (void *)key}, mv;
	int rc = mdb_get(r->txn, r->s->dbi, &mk, &mv);

	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		die("mdb_get: %s", mdb_strerror(rc));
	*val = value_decode(mv.mv_data, mv.mv_size);
	return 1;
}

/* Up to n "user-" keys in order from key number start (wrapping to the first
 * key at the end when wrap); returns the number visited. */
static uint64_t lmdb_rd_scan(struct reader *r, uint32_t start, uint64_t n,
			     bool wrap)
{
	char k[KEY_LEN];
	MDB_cursor *cur;
	MDB_val mk = {KEY_LEN, k}, mv;
	MDB_cursor_op op = MDB_SET_RANGE;
	uint64_t count = 0, at_wrap = UINT64_MAX, sum = 0;
	int rc;

	if ((rc = mdb_cursor_open(r->txn, r->s->dbi, &cur)) != 0)
		die("mdb_cursor_open: %s", mdb_strerror(rc));
	key_format(k, start);
	while (count < n) {
		rc = mdb_cursor_get(cur, &mk, &mv, op);
		op = MDB_NEXT;
		if (rc == MDB_NOTFOUND) {
			if (!wrap || count == at_wrap)
				break;
			at_wrap = count;
			key_format(k, 0);
			mk = (MDB_val){KEY_LEN, k};
			op = MDB_SET_RANGE;
			continue;
		}
		if (rc != 0)
			die("mdb_cursor_get: %s", mdb_strerror(rc));
		sum += value_decode(mv.mv_data, mv.mv_size);
		count++;
	}
	mdb_cursor_close(cur);
	sink += sum;
	return count;
}

static void lmdb_describe(struct store *s, char *buf, size_t len)
{
	MDB_envinfo info;
	MDB_stat st;

	mdb_env_info(s->env, &info);
	mdb_env_stat(s->env, &st);
	snprintf(buf, len, "B-tree depth %u, %zu leaf pages, %.0f MiB of map used",
		 st.ms_depth, st.ms_leaf_pages,
		 (double)((info.me_last_pgno + 1) * st.ms_psize) / (double)MIB);
}

static const struct engine LMDB = {
	lmdb_open, lmdb_close, lmdb_fill, lmdb_commit,
	lmdb_rd_open, lmdb_rd_close, lmdb_rd_begin, lmdb_rd_end,
	lmdb_rd_get, lmdb_rd_scan, lmdb_describe,
};

/* ---- RocksDB --------------------------------------------------------------- */

static int rocks_fail(struct store *s, const char *what, char *err)
{
	snprintf(s->err, sizeof(s->err), "%s: %s", what, err);
	rocksdb_free(err);
	return -1;
}

/* An LRU cache of s->rocks_cache bytes in 4 shards (the default shard of
 * 512 KiB for a small cache cannot hold a whole-file filter block, which is
 * then read again for every Get). */
static void rocks_cache(struct store *s)
{
	rocksdb_lru_cache_options_t *lo = rocksdb_lru_cache_options_create();

	rocksdb_lru_cache_options_set_capacity(lo, s->rocks_cache);
	rocksdb_lru_cache_options_set_num_shard_bits(lo, 2);
	s->cache = rocksdb_cache_create_lru_opts(lo);
	rocksdb_lru_cache_options_destroy(lo);
}

/* Bounded memory whatever the view size: the block cache also holds the
 * index and filter blocks, partitioned (4 KiB partitions, the top level
 * pinned) so that they are cached piecewise; full bloom filters of 10
 * bits/key. */
static void rocks_table_options(struct store *s)
{
	rocks_cache(s);
	s->bbt = rocksdb_block_based_options_create();
	rocksdb_block_based_options_set_block_cache(s->bbt, s->cache);
	rocksdb_block_based_options_set_filter_policy(
		s->bbt, rocksdb_filterpolicy_create_bloom_full(10));
	rocksdb_block_based_options_set_index_type(
		s->bbt, rocksdb_block_based_table_index_type_two_level_index_search);
	rocksdb_block_based_options_set_partition_filters(s->bbt, 1);
	rocksdb_block_based_options_set_metadata_block_size(s->bbt, 4096);
	rocksdb_block_based_options_set_cache_index_and_filter_blocks(s->bbt, 1);
	rocksdb_block_based_options_set_cache_index_and_filter_blocks_with_high_priority(
		s->bbt, 1);
	rocksdb_block_based_options_set_pin_top_level_index_and_filter(s->bbt, 1);
	rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(
		s->bbt, 1);
}

/* Two memtables of s->rocks_wbuf bytes, leveled compaction with dynamic
 * level sizes, 2 background jobs, SST files of s->rocks_sst bytes (a
 * compaction builds an output file's filter in memory: RocksDB's 64 MiB
 * default costs about 14 MiB more RssAnon at 10M keys), s->rocks_compression
 * (snappy unless --rocks-compression). */static void rocks_options(struct store *s)
{
	rocks_table_options(s);
	s->opt = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(s->opt, 1);
	rocksdb_options_set_block_based_table_factory(s->opt, s->bbt);
	rocksdb_options_set_write_buffer_size(s->opt, s->rocks_wbuf);
	rocksdb_options_set_max_write_buffer_number(s->opt, 2);
	rocksdb_options_set_level_compaction_dynamic_level_bytes(s->opt, 1);
	rocksdb_options_set_max_background_jobs(s->opt, 2);
	rocksdb_options_set_target_file_size_base(s->opt, s->rocks_sst);
	rocksdb_options_set_compression(s->opt, s->rocks_compression);
	s->wo = rocksdb_writeoptions_create();
	if (s->v->flags & V_NOWAL)
		rocksdb_writeoptions_disable_WAL(s->wo, 1);
	else
		rocksdb_writeoptions_set_sync(s->wo, 1);
	s->wo_fill = rocksdb_writeoptions_create();
	rocksdb_writeoptions_disable_WAL(s->wo_fill, 1);
	s->ro = rocksdb_readoptions_create();
	s->fo = rocksdb_flushoptions_create();
	rocksdb_flushoptions_set_wait(s->fo, 1);
	s->wb = rocksdb_writebatch_create();
}

static void rocks_free_options(struct store *s)
{
	rocksdb_writebatch_destroy(s->wb);
	rocksdb_flushoptions_destroy(s->fo);
	rocksdb_readoptions_destroy(s->ro);
	rocksdb_writeoptions_destroy(s->wo_fill);
	rocksdb_writeoptions_destroy(s->wo);
	rocksdb_options_destroy(s->opt);
	rocksdb_block_based_options_destroy(s->bbt);
	rocksdb_cache_destroy(s->cache);
}

static int rocks_open(struct store *s)
{
	char *err = NULL;

	rocks_options(s);
	s->db = rocksdb_open(s->opt, s->path, &err);
	if (err != NULL) {
		rocks_free_options(s);
		return rocks_fail(s, "rocksdb_open", err);
	}
	return 0;
}

static void rocks_close(struct store *s)
{
	rocksdb_close(s->db);
	s->db = NULL;
	rocks_free_options(s);
}

static void rocks_put_kv(struct store *s, uint32_t key, uint64_t val)
{
	char k[KEY_LEN];
	uint8_t v[9];
	size_t vlen = mp_put_uint(v, val);

	key_format(k, key);
	rocksdb_writebatch_put(s->wb, k, KEY_LEN, (const char *)v, vlen);
}

/* Keys 0..nkeys-1 with their seed values, FILL_BATCH per batch without the
 * WAL, then a flush and a full compaction: a settled LSM tree. */
static void rocks_fill(struct store *s, uint32_t nkeys)
{
	char *err = NULL;

	for (uint32_t i = 0; i < nkeys;) {
		uint32_t end = nkeys - i > FILL_BATCH ? i + FILL_BATCH : nkeys;

		rocksdb_writebatch_clear(s->wb);
		for (; i < end; i++)
			rocks_put_kv(s, i, seed_value(i));
		rocksdb_write(s->db, s->wo_fill, s->wb, &err);
		if (err != NULL)
			die("fill: rocksdb_write: %s", err);
	}
	rocksdb_flush(s->db, s->fo, &err);
	if (err != NULL)
		die("fill: rocksdb_flush: %s", err);
	rocksdb_compact_range(s->db, NULL, 0, NULL, 0);
}

/* One WriteBatch (atomic): with the WAL and sync=true it is durable when
 * the write returns; with V_NOWAL the memtable is flushed to an SST
 * (synced, with the MANIFEST) before returning. */
static int rocks_commit(struct store *s, const struct kv *kv, size_t n,
			uint64_t seq)
{
	uint8_t v[9];
	size_t vlen = mp_put_uint(v, seq);
	char *err = NULL;

	rocksdb_writebatch_clear(s->wb);
	for (size_t i = 0; i < n; i++)
		rocks_put_kv(s, kv[i].key, kv[i].val);
	rocksdb_writebatch_put(s->wb, OFFSETS_KEY, sizeof(OFFSETS_KEY) - 1,
			       (const char *)v, vlen);
	rocksdb_write(s->db, s->wo, s->wb, &err);
	if (err != NULL)
		return rocks_fail(s, "rocksdb_write", err);
	if (s->v->flags & V_NOWAL) {
		rocksdb_flush(s->db, s->fo, &err);
		if (err != NULL)
			return rocks_fail(s, "rocksdb_flush", err);
	}
	return 0;
}

/* Point reads need no explicit snapshot (each Get reads one sequence
 * number); a scan's iterator holds its own. */
static void rocks_rd_open(struct store *s, struct reader *r)
{
	r->s = s;
	r->txn = NULL;
}

static void rocks_rd_nop(struct reader *r)
{
	(void)r;
}

static int rocks_rd_get(struct reader *r, const char *key, size_t klen,
			uint64_t *val)
{
	char *err = NULL;
	size_t len;
	const char *p;
	rocksdb_pinnableslice_t *ps =
		rocksdb_get_pinned(r->s->db, r->s->ro, key, klen, &err);

	if (err != NULL)
		die("rocksdb_get: %s", err);
	if (ps == NULL)
		return 0;
	p = rocksdb_pinnableslice_value(ps, &len);
	*val = value_decode(p, len);
	rocksdb_pinnableslice_destroy(ps);
	return 1;
}

static uint64_t rocks_rd_scan(struct reader *r, uint32_t start, uint64_t n,
			      bool wrap)
{
	char k[KEY_LEN], *err = NULL;
	uint64_t count = 0, at_wrap = UINT64_MAX, sum = 0;
	rocksdb_iterator_t *it = rocksdb_create_iterator(r->s->db, r->s->ro);
	size_t len;
	const char *p;

	key_format(k, start);
	rocksdb_iter_seek(it, k, KEY_LEN);
	while (count < n) {
		if (!rocksdb_iter_valid(it)) {
			if (!wrap || count == at_wrap)
				break;
			at_wrap = count;
			key_format(k, 0);
			rocksdb_iter_seek(it, k, KEY_LEN);
			continue;
		}
		p = rocksdb_iter_value(it, &len);
		sum += value_decode(p, len);
		count++;
		rocksdb_iter_next(it);
	}
	rocksdb_iter_get_error(it, &err);
	if (err != NULL)
		die("rocksdb iterator: %s", err);
	rocksdb_iter_destroy(it);
	sink += sum;
	return count;
}

/* A DB property in MiB, -1 when RocksDB does not have it. */
static double rocks_prop_mib(struct store *s, const char *name)
{
	char *v = rocksdb_property_value(s->db, name);
	double mib = v != NULL ? strtod(v, NULL) / (double)MIB : -1;

	rocksdb_free(v);
	return mib;
}

static void rocks_describe(struct store *s, char *buf, size_t len)
{
	char *l0 = rocksdb_property_value(s->db, "rocksdb.num-files-at-level0");

	snprintf(buf, len,
		 "block cache %.1f MiB, memtables %.1f MiB, table readers %.1f MiB, L0 files %s",
		 rocks_prop_mib(s, "rocksdb.block-cache-usage"),
		 rocks_prop_mib(s, "rocksdb.cur-size-all-mem-tables"),
		 rocks_prop_mib(s, "rocksdb.estimate-table-readers-mem"),
		 l0 != NULL ? l0 : "?");
	rocksdb_free(l0);
}

static const struct engine ROCKS = {
	rocks_open, rocks_close, rocks_fill, rocks_commit,
	rocks_rd_open, rocks_rd_nop, rocks_rd_nop, rocks_rd_nop,
	rocks_rd_get, rocks_rd_scan, rocks_describe,
};

static const struct variant VARIANTS[] = {
	{"lmdb", &LMDB, 0},
	{"lmdb-writemap", &LMDB, V_WRITEMAP},
	{"rocksdb", &ROCKS, 0},
	{"rocksdb-nowal", &ROCKS, V_NOWAL},
	{"lmdb-writemap-falloc", &LMDB, V_WRITEMAP | V_FALLOC | V_FULLFS_ONLY},
};
#define NVARIANTS (sizeof(VARIANTS) / sizeof(VARIANTS[0]))

/* ---- store helpers --------------------------------------------------------- */

/* RocksDB's compression types by number (rocksdb_*_compression). */
static const char *const COMPRESSIONS[] = {"none", "snappy", "zlib", "bz2",
					   "lz4", "lz4hc", "xpress", "zstd"};


struct opts {
	uint32_t keys[16];
	size_t nkeys;
	uint64_t ops;
	const char *dir;
	const char *stores;  /* comma list, NULL: the default four */
	const char *fullfs;  /* --fullfs DIR */
	size_t rocks_cache, rocks_wbuf, rocks_sst;
	int rocks_compression;      /* rocksdb_*_compression */
	bool json, quick;
};

/* The LMDB map for nkeys: room for the tree, its copy-on-write pages and
 * the free list (the file is that size with MDB_WRITEMAP, sparse). */
static size_t lmdb_mapsize(uint32_t nkeys)
{
	return (size_t)nkeys * 256 + 256 * MIB;
}

/* Sets s up for variant v at path; does not open it. */
static void store_init(struct store *s, const struct opts *o,
		       const struct variant *v, const char *path, size_t mapsize)
{
	memset(s, 0, sizeof(*s));
	s->v = v;
	path_fmt(s->path, sizeof(s->path), "%s", path);
	s->mapsize = mapsize;
	s->rocks_cache = o->rocks_cache;
	s->rocks_wbuf = o->rocks_wbuf;
	s->rocks_sst = o->rocks_sst;
	s->rocks_compression = o->rocks_compression;
}

static void store_open_or_die(struct store *s)
{
	if (s->v->eng->open(s) != 0)
		die("%s: %s", s->v->name, s->err);
}

/* Reads key number key through r inside one rd_begin/rd_end; dies when the
 * key is absent (every key is in the store after the fill). */
static uint64_t read_key(struct reader *r, uint32_t key)
{
	const struct engine *e = r->s->v->eng;
	char k[KEY_LEN];
	uint64_t v = 0;
	int found;

	key_format(k, key);
	e->rd_begin(r);
	found = e->rd_get(r, k, KEY_LEN, &v);
	e->rd_end(r);
	if (!found)
		die("%s: key %u missing", r->s->v->name, key);
	return v;
}

/* ---- the load: increments through the dirty map, checkpoints ------------- */

struct loader {
	struct store *s;
	struct reader rd;      /* open between two checkpoints */
	struct dirty dirty;
	uint32_t nkeys;
	uint64_t rng, seq, done;
	uint64_t *commit_ns;
	size_t ncommit, cap;
	_Atomic uint64_t commits; /* ncommit, for other threads */
	atomic_bool *stop;     /* NULL: run the operations given */
};

static void loader_init(struct loader *l, struct store *s, uint32_t nkeys,
			uint64_t seed, uint64_t seq)
{
	memset(l, 0, sizeof(*l));
	l->s = s;
	l->nkeys = nkeys;
	l->rng = seed;
	l->seq = seq;
	dirty_init(&l->dirty, CHECKPOINT_OPS);
	s->v->eng->rd_open(s, &l->rd);
	s->v->eng->rd_begin(&l->rd);
}

static void loader_free(struct loader *l)
{
	l->s->v->eng->rd_end(&l->rd);
	l->s->v->eng->rd_close(&l->rd);
	dirty_free(&l->dirty);
	free(l->commit_ns);
}

/* The stored value of key (its seed when absent). */
static uint64_t load_value(struct loader *l, uint32_t key)
{
	char k[KEY_LEN];
	uint64_t v;

	key_format(k, key);
	if (l->s->v->eng->rd_get(&l->rd, k, KEY_LEN, &v) == 0)
		return seed_value(key);
	return v;
}

/* One operation: increment a random key, read from the store on a miss. */
static void load_op(struct loader *l)
{
	uint32_t key = rng_below(&l->rng, l->nkeys);
	bool fresh;
	struct kv *e = dirty_get(&l->dirty, key, &fresh);

	if (fresh)
		e->val = load_value(l, key);
	e->val++;
}

static void record_commit(struct loader *l, uint64_t ns)
{
	if (l->ncommit == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->commit_ns = realloc(l->commit_ns, l->cap * sizeof(uint64_t));
		if (l->commit_ns == NULL)
			die("out of memory");
	}
	l->commit_ns[l->ncommit++] = ns;
}

/* Writes the dirty keys (sorted) and the offsets record in one commit
 * (timed: the store's commit alone), then clears the map. */
static void load_checkpoint(struct loader *l)
{
	const struct engine *e = l->s->v->eng;
	uint64_t t0;

	e->rd_end(&l->rd);
	qsort(l->dirty.ent, l->dirty.n, sizeof(struct kv), kv_cmp);
	t0 = now_ns();
	if (e->commit(l->s, l->dirty.ent, l->dirty.n, ++l->seq) != 0)
		die("%s: checkpoint %" PRIu64 ": %s", l->s->v->name, l->seq,
		    l->s->err);
	record_commit(l, now_ns() - t0);
	atomic_store(&l->commits, l->ncommit);
	dirty_clear(&l->dirty);
	e->rd_begin(&l->rd);
}

/* ops operations (or until *l->stop), a checkpoint every CHECKPOINT_OPS
 * and one for the rest at the end. */
static void load_run(struct loader *l, uint64_t ops)
{
	for (uint64_t i = 0; i < ops; i++) {
		if (l->stop != NULL && atomic_load_explicit(l->stop,
							    memory_order_relaxed))
			break;
		load_op(l);
		l->done++;
		if (l->done % CHECKPOINT_OPS == 0)
			load_checkpoint(l);
	}
	if (l->dirty.n > 0)
		load_checkpoint(l);
}

/* ---- scenarios --------------------------------------------------------------- */

/* What one (store, key count) measured; in a shared page, written by the
 * children, printed by the parent. */
struct result {
	char store[32];
	uint32_t keys;
	uint64_t ops;
	bool filled, done;
	double fill_s;
	double load_ops_s, commit_p50_ms, commit_p99_ms;
	uint64_t commits;
	uint64_t file_alloc, file_size;
	long rss_base, rss_load, rss_load_file, rss_reads;
	size_t cache_bytes;
	double rd_p50_us, rd_p99_us, rd_per_s;
	double rw_p50_us, rw_p99_us, rw_per_s, rw_writer_ops_s;
	uint64_t rw_commits, rw_reads;
	double reopen_ms, scan_keys_s;
	char note[200];
};

struct read_stats {
	double p50_us, p99_us, per_s;
	uint64_t reads;
	const _Atomic uint64_t *commits; /* in: go on until this reaches */
	uint64_t min_commits;            /* min_commits (NULL: ops reads) */
};

static bool read_more(const struct read_stats *rs, uint64_t done, uint64_t ops)
{
	return done < ops || (rs->commits != NULL &&
			      atomic_load(rs->commits) < rs->min_commits);
}

/* At least ops point reads at random keys (more while out->commits is
 * below out->min_commits), each in its own rd_begin/rd_end (a query's
 * consistent view), timed one by one. */
static void read_loop(struct store *s, uint32_t nkeys, uint64_t ops,
		      uint64_t seed, struct read_stats *out)
{
	struct hist *h = calloc(1, sizeof(*h));
	struct reader r;
	uint64_t t_start, t0;

	if (h == NULL)
		die("out of memory");
	s->v->eng->rd_open(s, &r);
	t_start = now_ns();
	for (out->reads = 0; read_more(out, out->reads, ops); out->reads++) {
		uint32_t key = rng_below(&seed, nkeys);

		t0 = now_ns();
		read_key(&r, key);
		hist_add(h, now_ns() - t0);
	}
	out->per_s = (double)out->reads * 1e9 / (double)(now_ns() - t_start);
	out->p50_us = hist_pct(h, 0.50) / 1e3;
	out->p99_us = hist_pct(h, 0.99) / 1e3;
	s->v->eng->rd_close(&r);
	free(h);
}

/* Scenario 1: ops increments, a synced checkpoint every CHECKPOINT_OPS. */
static uint64_t run_load(struct store *s, uint32_t nkeys, uint64_t ops,
			 struct result *res)
{
	struct loader l;
	uint64_t t0, seq;

	loader_init(&l, s, nkeys, 1, 0);
	res->cache_bytes = dirty_bytes(&l.dirty);
	mem_reset();
	t0 = now_ns();
	load_run(&l, ops);
	res->load_ops_s = (double)ops * 1e9 / (double)(now_ns() - t0);
	mem_sample();
	res->rss_load = atomic_load(&peak_anon);
	res->rss_load_file = atomic_load(&peak_file);
	res->commits = l.ncommit;
	res->commit_p50_ms = (double)exact_pct(l.commit_ns, l.ncommit, 0.50) / 1e6;
	res->commit_p99_ms = (double)exact_pct(l.commit_ns, l.ncommit, 0.99) / 1e6;
	seq = l.seq;
	loader_free(&l);
	return seq;
}

struct writer {
	struct loader l;
	atomic_bool stop;
	uint64_t t0, t1;
	pthread_t th;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	w->l.stop = &w->stop;
	w->t0 = now_ns();
	load_run(&w->l, UINT64_MAX);
	w->t1 = now_ns();
	return NULL;
}

/* Scenario 2 with a writer: the load runs on a thread (its own checkpoints)
 * while this thread reads, ops reads and for RW_MIN_COMMITS commits at
 * least. */
static void run_reads_with_writer(struct store *s, uint32_t nkeys,
				  uint64_t ops, uint64_t seq, struct result *res)
{
	struct writer *w = calloc(1, sizeof(*w));
	struct read_stats rs = {0};

	if (w == NULL)
		die("out of memory");
	loader_init(&w->l, s, nkeys, 3, seq);
	if (pthread_create(&w->th, NULL, writer_main, w) != 0)
		die("pthread_create failed");
	rs.commits = &w->l.commits;
	rs.min_commits = RW_MIN_COMMITS;
	read_loop(s, nkeys, ops, 4, &rs);
	atomic_store(&w->stop, true);
	pthread_join(w->th, NULL);
	res->rw_p50_us = rs.p50_us;
	res->rw_p99_us = rs.p99_us;
	res->rw_per_s = rs.per_s;
	res->rw_writer_ops_s = (double)w->l.done * 1e9 / (double)(w->t1 - w->t0);
	res->rw_commits = w->l.ncommit;
	res->rw_reads = rs.reads;
	loader_free(&w->l);
	free(w);
}

/* Scenario 3: close, open, first get. */
static void run_reopen(struct store *s, uint32_t nkeys, struct result *res)
{
	struct reader r;
	uint64_t seed = 5, t0;

	s->v->eng->close(s);
	t0 = now_ns();
	store_open_or_die(s);
	s->v->eng->rd_open(s, &r);
	read_key(&r, rng_below(&seed, nkeys));
	res->reopen_ms = (double)(now_ns() - t0) / 1e6;
	s->v->eng->rd_close(&r);
}

/* Scenario 4: max(1, ops / SCAN_KEYS) ordered scans of SCAN_KEYS keys (all
 * of them when fewer) from random starts, each in one read transaction. */
static void run_scan(struct store *s, uint32_t nkeys, uint64_t ops,
		     struct result *res)
{
	const struct engine *e = s->v->eng;
	uint64_t scans = ops / SCAN_KEYS > 0 ? ops / SCAN_KEYS : 1;
	uint64_t len = nkeys < SCAN_KEYS ? nkeys : SCAN_KEYS, seed = 6, ns = 0;
	struct reader r;

	e->rd_open(s, &r);
	for (uint64_t i = 0; i < scans; i++) {
		uint64_t t0 = now_ns();

		e->rd_begin(&r);
		if (e->rd_scan(&r, rng_below(&seed, nkeys), len, true) != len)
			die("%s: scan came short", s->v->name);
		e->rd_end(&r);
		ns += now_ns() - t0;
	}
	e->rd_close(&r);
	res->scan_keys_s = (double)(scans * len) * 1e9 / (double)ns;
}

/* The scenarios, in the child; the RssAnon peaks are this child's. */
static void bench_child(struct store *s, uint32_t nkeys, uint64_t ops,
			struct result *res)
{
	struct read_stats rs = {0};
	pthread_t sampler;
	uint64_t seq;

	mem_reset();
	res->rss_base = atomic_load(&peak_anon);
	if (pthread_create(&sampler, NULL, sampler_main, NULL) != 0)
		die("pthread_create failed");
	store_open_or_die(s);
	seq = run_load(s, nkeys, ops, res);
	disk_usage(s->path, &res->file_alloc, &res->file_size);
	s->v->eng->describe(s, res->note, sizeof(res->note));
	mem_reset();
	read_loop(s, nkeys, ops, 2, &rs);
	res->rd_p50_us = rs.p50_us;
	res->rd_p99_us = rs.p99_us;
	res->rd_per_s = rs.per_s;
	run_reads_with_writer(s, nkeys, ops, seq, res);
	mem_sample();
	res->rss_reads = atomic_load(&peak_anon);
	run_reopen(s, nkeys, res);
	run_scan(s, nkeys, ops, res);
	s->v->eng->close(s);
	atomic_store(&sampler_stop, true);
	pthread_join(sampler, NULL);
	res->done = true;
}

static void fill_child(struct store *s, uint32_t nkeys, struct result *res)
{
	uint64_t t0 = now_ns();

	store_open_or_die(s);
	s->v->eng->fill(s, nkeys);
	s->v->eng->close(s);
	res->fill_s = (double)(now_ns() - t0) / 1e9;
	res->filled = true;
}

/* ---- processes --------------------------------------------------------------- */

/* Shared memory for a child's results, zeroed. */
static void *shared_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	return p;
}

/* Starts fn(arg) in a child process that exits 0 when fn returns. stdout
 * is flushed first so that the child does not print the parent's buffer. */
static pid_t spawn_child(void (*fn)(void *), void *arg)
{
	pid_t pid;

	fflush(NULL);
	if ((pid = fork()) < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		fn(arg);
		_exit(0);
	}
	return pid;
}

/* Waits up to timeout_s seconds (0: for ever) for child pid: true with
 * *status when it ended, false when it is still running. */
static bool wait_child(pid_t pid, int timeout_s, int *status)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_s * 1000000000u;
	pid_t rc;

	for (;;) {
		rc = waitpid(pid, status, timeout_s > 0 ? WNOHANG : 0);
		if (rc == pid)
			return true;
		if (rc < 0 && errno != EINTR)
			die("waitpid: %s", strerror(errno));
		if (timeout_s > 0 && now_ns() >= deadline)
			return false;
		if (timeout_s > 0)
			usleep(100000);
	}
}

/* Runs fn(arg) in a child process; returns its wait status. */
static int run_child(void (*fn)(void *), void *arg)
{
	int status;

	wait_child(spawn_child(fn, arg), 0, &status);
	return status;
}

/* A wait status in words: "exit 0", "killed by signal 7 (Bus error)". */
static const char *status_text(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "exit %d", WEXITSTATUS(status));
	return buf;
}

struct bench_job {
	struct store s;
	uint32_t nkeys;
	uint64_t ops;
	struct result *res;
};

static void fill_job(void *arg)
{
	struct bench_job *j = arg;

	fill_child(&j->s, j->nkeys, j->res);
}

static void bench_job(void *arg)
{
	struct bench_job *j = arg;

	bench_child(&j->s, j->nkeys, j->ops, j->res);
}

/* ---- output --------------------------------------------------------------- */

/* x as "123", "12.3 k", "1.23 M". */
static const char *fmt_rate(double x, char *buf, size_t len)
{
	if (x >= 1e6)
		snprintf(buf, len, "%.2f M", x / 1e6);
	else if (x >= 1e3)
		snprintf(buf, len, "%.1f k", x / 1e3);
	else
		snprintf(buf, len, "%.0f", x);
	return buf;
}

static double mib(uint64_t bytes)
{
	return (double)bytes / (double)MIB;
}

static void print_header(const struct opts *o)
{
	if (o->json)
		return;
	printf("| store | keys | fill s | load op/s | commit p50 / p99 ms | file MiB on disk (size) | RssAnon MiB: base / load peak / reads peak | read p50 / p99 µs | reads/s | with writer: read p50 / p99 µs | reads/s | writer op/s (commits) | reopen ms | scan keys/s |\n");
	printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
}

static void print_table_row(const struct result *r)
{
	char a[32], b[32], c[32], d[32], e[32];

	printf("| %s | %u | %.1f | %s | %.1f / %.1f | %.1f (%.0f) | %.0f / %.0f / %.0f | %.1f / %.1f | %s | %.1f / %.1f | %s | %s (%" PRIu64 ") | %.1f | %s |\n",
	       r->store, r->keys, r->fill_s, fmt_rate(r->load_ops_s, a, sizeof(a)),
	       r->commit_p50_ms, r->commit_p99_ms, mib(r->file_alloc),
	       mib(r->file_size), r->rss_base / 1024.0, r->rss_load / 1024.0,
	       r->rss_reads / 1024.0, r->rd_p50_us, r->rd_p99_us,
	       fmt_rate(r->rd_per_s, b, sizeof(b)), r->rw_p50_us, r->rw_p99_us,
	       fmt_rate(r->rw_per_s, c, sizeof(c)),
	       fmt_rate(r->rw_writer_ops_s, d, sizeof(d)), r->rw_commits,
	       r->reopen_ms, fmt_rate(r->scan_keys_s, e, sizeof(e)));
}

static void print_json_row(const struct result *r)
{
	printf("{\"store\":\"%s\",\"keys\":%u,\"ops\":%" PRIu64 ",\"fill_s\":%.3f,"
	       "\"load_ops_s\":%.0f,\"commits\":%" PRIu64 ",\"commit_p50_ms\":%.2f,"
	       "\"commit_p99_ms\":%.2f,\"file_alloc_bytes\":%" PRIu64 ","
	       "\"file_size_bytes\":%" PRIu64 ",\"cache_bytes\":%zu,"
	       "\"rss_anon_base_kib\":%ld,\"rss_anon_load_peak_kib\":%ld,"
	       "\"rss_file_load_peak_kib\":%ld,\"rss_anon_reads_peak_kib\":%ld,"
	       "\"read_p50_us\":%.2f,\"read_p99_us\":%.2f,\"reads_s\":%.0f,"
	       "\"rw_read_p50_us\":%.2f,\"rw_read_p99_us\":%.2f,\"rw_reads_s\":%.0f,"
	       "\"rw_writer_ops_s\":%.0f,\"rw_commits\":%" PRIu64 ","
	       "\"rw_reads\":%" PRIu64 ","
	       "\"reopen_ms\":%.2f,\"scan_keys_s\":%.0f,\"note\":\"%s\"}\n",
	       r->store, r->keys, r->ops, r->fill_s, r->load_ops_s, r->commits,
	       r->commit_p50_ms, r->commit_p99_ms, r->file_alloc, r->file_size,
	       r->cache_bytes, r->rss_base, r->rss_load, r->rss_load_file,
	       r->rss_reads, r->rd_p50_us, r->rd_p99_us, r->rd_per_s,
	       r->rw_p50_us, r->rw_p99_us, r->rw_per_s, r->rw_writer_ops_s,
	       r->rw_commits, r->rw_reads, r->reopen_ms, r->scan_keys_s, r->note);
}

/* ---- the benchmark run ------------------------------------------------------- */

static bool variant_selected(const struct opts *o, const struct variant *v)
{
	size_t n = strlen(v->name);

	if (o->stores == NULL)
		return !(v->flags & V_FULLFS_ONLY);
	for (const char *p = o->stores; *p != '\0';) {
		size_t len = strcspn(p, ",");

		if (len == n && strncmp(p, v->name, n) == 0)
			return true;
		p += len + (p[len] == ',');
	}
	return false;
}

/* Fills the store, runs the scenarios, prints one row, removes the store.
 * Returns false when a child failed. */
static bool run_config(const struct opts *o, const char *scratch,
		       const struct variant *v, uint32_t nkeys)
{
	struct bench_job j;
	char path[PATH_MAX], st[64];
	int status;
	bool ok;

	path_fmt(path, sizeof(path), "%s/%s-%u", scratch, v->name, nkeys);
	store_init(&j.s, o, v, path, lmdb_mapsize(nkeys));
	j.nkeys = nkeys;
	j.ops = o->ops;
	j.res = shared_alloc(sizeof(*j.res));
	snprintf(j.res->store, sizeof(j.res->store), "%s", v->name);
	j.res->keys = nkeys;
	j.res->ops = o->ops;
	status = run_child(fill_job, &j);
	if (j.res->filled)
		status = run_child(bench_job, &j);
	if (j.res->done) {
		if (o->json)
			print_json_row(j.res);
		else
			print_table_row(j.res);
	} else {
		fprintf(stderr, "%s: %s with %u keys: child %s\n", prog, v->name,
			nkeys, status_text(status, st, sizeof(st)));
	}
	ok = j.res->done && WIFEXITED(status) && WEXITSTATUS(status) == 0;
	remove_tree(path);
	munmap(j.res, sizeof(*j.res));
	return ok;
}

static void print_notes(const struct opts *o, const char *scratch)
{
	struct dirty d;

	dirty_init(&d, CHECKPOINT_OPS);
	if (!o->json)
		printf("\n%s in %s: %" PRIu64 " operations per scenario, a checkpoint every %u; dirty map (the cache) %.1f MiB; RocksDB block cache %zu MiB, write buffer %zu MiB x 2, SST files %zu MiB, %s\n\n",
		       prog, scratch, o->ops, CHECKPOINT_OPS,
		       mib(dirty_bytes(&d)), o->rocks_cache / MIB,
		       o->rocks_wbuf / MIB, o->rocks_sst / MIB,
		       COMPRESSIONS[o->rocks_compression]);
	dirty_free(&d);
}

static int run_bench(const struct opts *o)
{
	char scratch[PATH_MAX];
	bool ok = true;

	path_fmt(scratch, sizeof(scratch), "%s/kappa-bench-stores.XXXXXX", o->dir);
	if (mkdtemp(scratch) == NULL)
		die("mkdtemp %s: %s", scratch, strerror(errno));
	print_notes(o, scratch);
	print_header(o);
	for (size_t k = 0; k < o->nkeys; k++)
		for (size_t i = 0; i < NVARIANTS; i++)
			if (variant_selected(o, &VARIANTS[i]))
				ok &= run_config(o, scratch, &VARIANTS[i],
						 o->keys[k]);
	remove_tree(scratch);
	return ok ? 0 : 1;
}

/* ---- --fullfs: what each store does when the file system is full ------------ */

struct ffres {
	unsigned commits_ok, failed_at;
	char err[256];
	bool open_failed, read_ok;
	uint64_t offsets_seen;
	bool retry_ok;
	double retry_s;             /* from freeing the ballast to success */
	char retry_err[256];
	bool reopen_ok;
	uint64_t reopen_offsets, reopen_keys;
	char reopen_err[256];
	char phase[64];             /* what the fill child is doing */
	int hung;                   /* 1: went on once the parent freed the
				     * ballast, 2: did not, killed */
	bool reopen_hung;
};

struct ff_job {
	struct store s;
	const char *ballast;
	struct ffres *r;
	struct kv *kv;
};

/* Checkpoint c of the fill: FULLFS_BATCH new keys with 9-byte values. */
static int ff_commit(struct ff_job *j, unsigned c)
{
	for (uint32_t i = 0; i < FULLFS_BATCH; i++)
		j->kv[i] = (struct kv){(c - 1) * FULLFS_BATCH + i, (uint64_t)1 << 40};
	return j->s.v->eng->commit(&j->s, j->kv, FULLFS_BATCH, c);
}

/* The offsets record (the last checkpoint's number); 0 when absent. */
static uint64_t ff_offsets(struct store *s)
{
	struct reader r;
	uint64_t v = 0;

	s->v->eng->rd_open(s, &r);
	s->v->eng->rd_begin(&r);
	if (!s->v->eng->rd_get(&r, OFFSETS_KEY, sizeof(OFFSETS_KEY) - 1, &v))
		v = 0;
	s->v->eng->rd_end(&r);
	s->v->eng->rd_close(&r);
	return v;
}

/* Frees the ballast and tries checkpoint c again, once a second for
 * RETRY_S seconds (RocksDB may recover from a full disk by itself). */
static void ff_retry(struct ff_job *j, unsigned c)
{
	uint64_t t0;

	unlink(j->ballast);
	t0 = now_ns();
	for (int i = 0; i <= RETRY_S; i++) {
		if (ff_commit(j, c) == 0) {
			j->r->retry_ok = true;
			j->r->retry_s = (double)(now_ns() - t0) / 1e9;
			j->r->commits_ok = c;
			return;
		}
		if (i == 0)
			snprintf(j->r->retry_err, sizeof(j->r->retry_err), "%s",
				 j->s.err);
		sleep(1);
	}
}

/* Checkpoints until one fails; then reads, frees the ballast and tries the
 * failed checkpoint again. A signal (SIGBUS) ends the child instead. */
static void ff_fill_job(void *arg)
{
	struct ff_job *j = arg;
	unsigned c;

	if (j->s.v->eng->open(&j->s) != 0) {
		j->r->open_failed = true;
		snprintf(j->r->err, sizeof(j->r->err), "%s", j->s.err);
		return;
	}
	for (c = 1; c <= FULLFS_MAX; c++) {
		snprintf(j->r->phase, sizeof(j->r->phase), "checkpoint %u", c);
		if (ff_commit(j, c) != 0)
			break;
		j->r->commits_ok = c;
	}
	if (c > FULLFS_MAX)
		return;
	j->r->failed_at = c;
	snprintf(j->r->err, sizeof(j->r->err), "%s", j->s.err);
	j->r->offsets_seen = ff_offsets(&j->s);
	j->r->read_ok = true;
	snprintf(j->r->phase, sizeof(j->r->phase),
		 "the retry of checkpoint %u", c);
	ff_retry(j, c);
	j->s.v->eng->close(&j->s);
}

/* Reopens the store: the last checkpoint's number and the number of keys. */
static void ff_verify_job(void *arg)
{
	struct ff_job *j = arg;
	struct reader r;

	if (j->s.v->eng->open(&j->s) != 0) {
		snprintf(j->r->reopen_err, sizeof(j->r->reopen_err), "%s", j->s.err);
		return;
	}
	j->r->reopen_offsets = ff_offsets(&j->s);
	j->s.v->eng->rd_open(&j->s, &r);
	j->s.v->eng->rd_begin(&r);
	j->r->reopen_keys = j->s.v->eng->rd_scan(&r, 0, UINT64_MAX, false);
	j->s.v->eng->rd_end(&r);
	j->s.v->eng->rd_close(&r);
	j->s.v->eng->close(&j->s);
	j->r->reopen_ok = true;
}

/* Writes a file of size bytes (real blocks, not a hole). */
static void write_ballast(const char *path, size_t size)
{
	static char buf[65536];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	memset(buf, 0x5a, sizeof(buf));
	if (fd < 0)
		die("%s: %s", path, strerror(errno));
	for (size_t done = 0; done < size; done += sizeof(buf))
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			die("%s: %s", path, strerror(errno));
	close(fd);
}

static void ff_report_failure(const struct ffres *r)
{
	printf("checkpoint %u failed: %s; reads then: %s (offsets %" PRIu64 "); after freeing %zu MiB, ",
	       r->failed_at, r->err, r->read_ok ? "ok" : "failed",
	       r->offsets_seen, BALLAST / MIB);
	if (r->retry_ok && r->retry_s < 0.5)
		printf("retry: ok at once\n");
	else if (r->retry_ok)
		printf("retry: ok after %.0f s (first retry: %s)\n", r->retry_s,
		       r->retry_err);
	else
		printf("retry: failed for %d s: %s\n", RETRY_S, r->retry_err);
}

static void ff_report_reopen(const struct ffres *r)
{
	bool intact = r->reopen_offsets == r->commits_ok &&
		      r->reopen_keys == (uint64_t)r->commits_ok * FULLFS_BATCH;

	if (r->reopen_ok)
		printf("  reopened: offsets record %" PRIu64 ", %" PRIu64 " keys (expected %u and %u): %s\n",
		       r->reopen_offsets, r->reopen_keys, r->commits_ok,
		       r->commits_ok * FULLFS_BATCH, intact ? "intact" : "MISMATCH");
	else if (r->reopen_hung)
		printf("  reopen hung for %d s: killed\n", HANG_S);
	else
		printf("  reopen failed: %s\n", r->reopen_err);
}

static void ff_report(const struct variant *v, const struct ffres *r,
		      int status)
{
	char st[64];

	printf("%s: ", v->name);
	if (r->open_failed) {
		printf("open failed: %s\n", r->err);
		return;
	}
	printf("%u checkpoints of %u keys ok; ",
	       r->failed_at > 0 ? r->failed_at - 1 : r->commits_ok, FULLFS_BATCH);
	if (r->hung == 1)
		printf("hung in %s for %d s; went on once the parent freed the %zu MiB ballast: ",
		       r->phase, HANG_S, BALLAST / MIB);
	if (r->hung == 2)
		printf("hung in %s for %d s, and %d s more after the parent freed the %zu MiB ballast: %s\n",
		       r->phase, HANG_S, HANG_S, BALLAST / MIB,
		       status_text(status, st, sizeof(st)));
	else if (WIFSIGNALED(status))
		printf("checkpoint %u: process %s\n", r->commits_ok + 1,
		       status_text(status, st, sizeof(st)));
	else if (r->failed_at == 0)
		printf("no failure after %u checkpoints\n", FULLFS_MAX);
	else
		ff_report_failure(r);
	ff_report_reopen(r);
}

/* The fill child under a watchdog: stuck for HANG_S, the parent frees the
 * ballast itself; stuck HANG_S more, it is killed. Returns its status. */
static int ff_run_fill(struct ff_job *j)
{
	pid_t pid = spawn_child(ff_fill_job, j);
	int status;

	if (!wait_child(pid, HANG_S, &status)) {
		j->r->hung = 1;
		unlink(j->ballast);
		if (!wait_child(pid, HANG_S, &status)) {
			j->r->hung = 2;
			kill(pid, SIGKILL);
			wait_child(pid, 0, &status);
		}
	}
	unlink(j->ballast);
	return status;
}

static void ff_run_verify(struct ff_job *j)
{
	pid_t pid = spawn_child(ff_verify_job, j);
	int status;

	if (!wait_child(pid, HANG_S, &status)) {
		j->r->reopen_hung = true;
		kill(pid, SIGKILL);
		wait_child(pid, 0, &status);
	}
}

/* One variant on the small file system at dir: ballast, fill to failure,
 * verify by reopening, clean up. */
static void ff_variant(const struct opts *o, const struct variant *v,
		       const char *dir)
{
	char root[PATH_MAX], path[PATH_MAX], ballast[PATH_MAX];
	struct ff_job j;
	int status;

	path_fmt(root, sizeof(root), "%s/kappa-fullfs", dir);
	remove_tree(root);
	if (mkdir(root, 0755) != 0)
		die("mkdir %s: %s", root, strerror(errno));
	path_fmt(path, sizeof(path), "%s/%s", root, v->name);
	path_fmt(ballast, sizeof(ballast), "%s/ballast", root);
	write_ballast(ballast, BALLAST);
	store_init(&j.s, o, v, path, (v->flags & V_FALLOC) ? FALLOC_STEP : 1024 * MIB);
	j.ballast = ballast;
	j.r = shared_alloc(sizeof(*j.r));
	j.kv = malloc(FULLFS_BATCH * sizeof(*j.kv));
	if (j.kv == NULL)
		die("out of memory");
	status = ff_run_fill(&j);
	if (!j.r->open_failed)
		ff_run_verify(&j);
	ff_report(v, j.r, status);
	free(j.kv);
	munmap(j.r, sizeof(*j.r));
	remove_tree(root);
}

static int run_fullfs(const struct opts *o)
{
	printf("--fullfs %s: checkpoints of %u new keys until the file system is full; %zu MiB ballast freed after the first failure\n",
	       o->fullfs, FULLFS_BATCH, BALLAST / MIB);
	for (size_t i = 0; i < NVARIANTS; i++)
		if (o->stores == NULL || variant_selected(o, &VARIANTS[i]))
			ff_variant(o, &VARIANTS[i], o->fullfs);
	return 0;
}

/* ---- command line ------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [--keys N[,N...]]... [--ops N] [--dir DIR] [--json] [--quick]\n"
		"       [--stores lmdb,lmdb-writemap,rocksdb,rocksdb-nowal]\n"
		"       [--rocks-cache MiB] [--rocks-wbuf MiB] [--rocks-sst MiB]\n"
		"       [--rocks-compression none|snappy|lz4|zstd]\n"
		"       %s --fullfs DIR   (DIR: a small file system, e.g. a 32 MiB tmpfs)\n"
		"N takes a K or M suffix (x1000, x1000000). Defaults: --keys 1K,1M,10M\n"
		"--ops 1M --dir $TMPDIR (or /tmp); --quick: --keys 1K,100K --ops 100K;\n"
		"RocksDB: --rocks-cache 16 --rocks-wbuf 16 --rocks-sst 8 --rocks-compression snappy.\n",
		prog, prog);
}

/* A count such as "100000", "1K" or "10M"; dies on anything else. */
static uint64_t parse_count(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (end == s)
		die("not a count: %s", s);
	if (*end == 'K' || *end == 'k')
		v *= 1000, end++;
	else if (*end == 'M' || *end == 'm')
		v *= 1000000, end++;
	if (*end != '\0' || v == 0)
		die("not a count: %s", s);
	return v;
}

/* Appends the comma-separated key counts of list. */
static void parse_keys(struct opts *o, const char *list)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", list);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		uint64_t n = parse_count(t);

		if (n >= MAX_KEYS)
			die("--keys %s: at most %u", t, MAX_KEYS - 1);
		if (o->nkeys == sizeof(o->keys) / sizeof(o->keys[0]))
			die("too many --keys");
		o->keys[o->nkeys++] = (uint32_t)n;
	}
}

/* A name of COMPRESSIONS as its rocksdb_*_compression number. */
static int parse_compression(const char *name)
{
	for (size_t i = 0; i < sizeof(COMPRESSIONS) / sizeof(COMPRESSIONS[0]); i++)
		if (strcmp(name, COMPRESSIONS[i]) == 0)
			return (int)i;
	die("--rocks-compression: none, snappy, lz4, zstd, ... not %s", name);
}

static const char *need_arg(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		die("%s needs an argument", argv[*i]);
	return argv[++*i];
}

static void parse_args(struct opts *o, int argc, char **argv)
{
	const char *tmp = getenv("TMPDIR");

	memset(o, 0, sizeof(*o));
	o->dir = tmp != NULL && *tmp != '\0' ? tmp : "/tmp";
	o->rocks_cache = 16 * MIB;
	o->rocks_wbuf = 16 * MIB;
	o->rocks_sst = 8 * MIB;
	o->rocks_compression = rocksdb_snappy_compression;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--keys") == 0)
			parse_keys(o, need_arg(argc, argv, &i));
		else if (strcmp(a, "--ops") == 0)
			o->ops = parse_count(need_arg(argc, argv, &i));
		else if (strcmp(a, "--dir") == 0)
			o->dir = need_arg(argc, argv, &i);
		else if (strcmp(a, "--stores") == 0)
			o->stores = need_arg(argc, argv, &i);
		else if (strcmp(a, "--fullfs") == 0)
			o->fullfs = need_arg(argc, argv, &i);
		else if (strcmp(a, "--rocks-cache") == 0)
			o->rocks_cache = parse_count(need_arg(argc, argv, &i)) * MIB;
		else if (strcmp(a, "--rocks-wbuf") == 0)
			o->rocks_wbuf = parse_count(need_arg(argc, argv, &i)) * MIB;
		else if (strcmp(a, "--rocks-sst") == 0)
			o->rocks_sst = parse_count(need_arg(argc, argv, &i)) * MIB;
		else if (strcmp(a, "--rocks-compression") == 0)
			o->rocks_compression =
				parse_compression(need_arg(argc, argv, &i));
		else if (strcmp(a, "--json") == 0)
			o->json = true;
		else if (strcmp(a, "--quick") == 0)
			o->quick = true;
		else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
			usage(stdout), exit(0);
		else
			usage(stderr), exit(2);
	}
	if (o->nkeys == 0)
		parse_keys(o, o->quick ? "1K,100K" : "1K,1M,10M");
	if (o->ops == 0)
		o->ops = o->quick ? 100000 : 1000000;
}

int main(int argc, char **argv)
{
	struct opts o;

	parse_args(&o, argc, argv);
	signal(SIGPIPE, SIG_IGN);
	if (o.fullfs != NULL)
		return run_fullfs(&o);
	return run_bench(&o);
}
