/*
 * view_store.c - LMDB under a view (view_store.h).
 *
 * Stored value layout: the value's bytes, then u32 CRC32C (little-endian)
 * of the key's bytes followed by the value's bytes.
 *
 * The map is exactly the file, and the file is allocated whole
 * (fallocate): LMDB writes mapped pages (MDB_WRITEMAP), and a write to a
 * page with no block behind it on a full disk would be a SIGBUS, so no
 * page of the map may lack one. Beyond the map LMDB answers MDB_MAP_FULL,
 * cleanly. The map grows before a commit, under map_lock taken for
 * writing (LMDB remaps only with no transaction active in the process);
 * every read holds it for reading.
 *
 * Space before a commit: a transaction copies every page it touches to a
 * free page (the free list of pages no reader needs, else the end of the
 * file). A commit of n changes of b bytes into a file of p pages touches at
 * most min(n, p) leaves plus (fewer than half as many) branches, and
 * splits add about 2b/page more; 1.5 times the first and twice the second,
 * beyond the pages in use, are preallocated.
 */
#include "view_store.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/crc32c.h"
#include "base/fsutil.h"

#define FORMAT_NAME "format"
#define FORMAT_VALUE "kappa-view 1"
#define CRC_LEN 4
#define READERS 2
#define MAP_MIN (4ull << 20)
#define MAP_STEP (1ull << 20)
#define GROW_TRIES 200         /* of 1 ms, waiting for reads to end */
#define KEY_TAG 'k'   /* data keys are stored as KEY_TAG + key: LMDB has no
			 empty keys, a view does */

/* A cached read transaction, used by one thread at a time. */
struct reader {
	pthread_mutex_t lock;
	MDB_txn *txn;          /* reset between uses; NULL until first use */
};

struct kp_vstore {
	MDB_env *env;
	MDB_dbi data;
	MDB_dbi meta;
	int fd;                /* the data file, for preallocation */
	uint64_t max_bytes;
	uint64_t map_bytes;    /* the map and the file: all allocated */
	pthread_rwlock_t map_lock; /* reads: shared; growing the map: owned */
	struct reader readers[READERS];
	char dir[4096];
};

struct kp_vstore_snap {
	struct kp_vstore *s;
	MDB_txn *txn;
};

/* Maps an LMDB result to kappa's codes. */
static int map_rc(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
	case MDB_PANIC:
	case MDB_BAD_TXN:
		return KP_EDAMAGED;
	case MDB_MAP_FULL:
		return KP_ETOOLARGE;
	default:
		return rc > 0 ? -rc : KP_EINTERNAL;
	}
}

static int fail(struct kp_error *err, const struct kp_vstore *s, int rc,
		const char *what)
{
	int code = map_rc(rc);

	if (code == KP_EDAMAGED)
		return kp_error_set(err, code,
				    "view store %s is damaged (%s: %s); `kappactl proc reset` rebuilds it from the log",
				    s->dir, what, mdb_strerror(rc));
	return kp_error_set(err, code, "view store %s: %s: %s", s->dir, what,
			    mdb_strerror(rc));
}

static uint32_t value_crc(const char *key, size_t key_len, const char *value,
			  size_t value_len)
{
	return kp_crc32c(kp_crc32c(0, key, key_len), value, value_len);
}

/* Checks a stored value's CRC; on success sets *len to the value's length. */
static int check_value(const MDB_val *k, const MDB_val *v, size_t *len)
{
	const char *p = v->mv_data;

	if (v->mv_size < CRC_LEN)
		return KP_EDAMAGED;
	*len = v->mv_size - CRC_LEN;
	if (kp_get_le32(p + *len) != value_crc(k->mv_data, k->mv_size, p, *len))
		return KP_EDAMAGED;
	return 0;
}

static int put_value(MDB_txn *txn, MDB_dbi dbi, const char *key,
		     size_t key_len, const char *value, size_t value_len);

/* true when a stored format record says FORMAT_VALUE. */
static bool format_ok(const MDB_val *k, const MDB_val *v)
{
	size_t n;

	return check_value(k, v, &n) == 0 && n == strlen(FORMAT_VALUE) &&
	       memcmp(v->mv_data, FORMAT_VALUE, n) == 0;
}

/* The stored form of a view key, in buf (KP_VSTORE_MAX_KEY + 1 bytes). */
static MDB_val stored_key(char *buf, const char *key, size_t key_len)
{
	MDB_val k = { key_len + 1, buf };

	buf[0] = KEY_TAG;
	memcpy(buf + 1, key, key_len);
	return k;
}

/* Creates the tables and the format record, or checks them. */
static int open_tables(struct kp_vstore *s, struct kp_error *err)
{
	MDB_txn *txn;
	MDB_val k = { strlen(FORMAT_NAME), FORMAT_NAME }, v;
	MDB_stat st;
	int rc = mdb_txn_begin(s->env, NULL, 0, &txn);

	if (rc != 0)
		return fail(err, s, rc, "begin");
	rc = mdb_dbi_open(txn, "data", MDB_CREATE, &s->data);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta);
	if (rc == 0)
		rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == MDB_NOTFOUND && mdb_stat(txn, s->data, &st) == 0 &&
	    st.ms_entries == 0) {
		rc = put_value(txn, s->meta, FORMAT_NAME, strlen(FORMAT_NAME),
			       FORMAT_VALUE, strlen(FORMAT_VALUE));
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		return rc == 0 ? 0 : fail(err, s, rc, "create");
	}
	if (rc == 0 && !format_ok(&k, &v)) {
		mdb_txn_abort(txn);
		return kp_error_set(err, KP_EDAMAGED,
				    "view store %s: its format record is not '%s' (damaged, or written by another version of kappa); `kappactl proc reset` rebuilds it from the log",
				    s->dir, FORMAT_VALUE);
	}
	if (rc == MDB_NOTFOUND)
		rc = MDB_CORRUPTED;
	if (rc != 0) {
		mdb_txn_abort(txn);
		return fail(err, s, rc, "open tables");
	}
	/* Committing keeps the table handles open for every later txn. */
	rc = mdb_txn_commit(txn);
	return rc == 0 ? 0 : fail(err, s, rc, "open tables");
}

/*
 * The map to open with: the blocks the file has (LMDB raises it to what
 * the data needs), rounded up to MAP_STEP; MAP_MIN for a new store.
 */
static uint64_t initial_map(const char *dir)
{
	char path[4200];
	struct stat st;
	uint64_t n = 0;

	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (stat(path, &st) == 0)
		n = (uint64_t)st.st_blocks * 512;
	n = (n + MAP_STEP - 1) / MAP_STEP * MAP_STEP;
	return n < MAP_MIN ? MAP_MIN : n;
}

/* Gives every page of the map a block on disk. */
static int allocate_to(struct kp_vstore *s, uint64_t bytes,
		       struct kp_error *err)
{
	if (fallocate(s->fd, 0, 0, (off_t)bytes) == 0 || errno == EOPNOTSUPP)
		return 0;
	return kp_error_set(err, -errno,
			    "view store %s: cannot reserve %llu MiB: %s", s->dir,
			    (unsigned long long)(bytes >> 20), strerror(errno));
}

/* After open: the map LMDB chose, allocated whole. */
static int allocate_map(struct kp_vstore *s, struct kp_error *err)
{
	MDB_envinfo info;

	if (mdb_env_info(s->env, &info) != 0)
		return kp_error_set(err, KP_EINTERNAL, "mdb_env_info failed");
	s->map_bytes = info.me_mapsize;
	return allocate_to(s, s->map_bytes, err);
}

int kp_vstore_open(struct kp_vstore **out, const char *dir,
		   uint64_t max_bytes, struct kp_error *err)
{
	struct kp_vstore *s = kp_calloc(1, sizeof(*s));
	int rc;

	if (s == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	s->max_bytes = max_bytes ? max_bytes : KP_VSTORE_DEFAULT_MAX_BYTES;
	s->fd = -1;
	pthread_rwlock_init(&s->map_lock, NULL);
	for (int i = 0; i < READERS; i++)
		pthread_mutex_init(&s->readers[i].lock, NULL);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		rc = kp_error_set(err, -errno, "view store %s: %s", dir,
				  strerror(errno));
		goto fail;
	}
	rc = mdb_env_create(&s->env);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(s->env, 2);
	if (rc == 0)
		rc = mdb_env_set_mapsize(s->env, (size_t)initial_map(dir));
	if (rc == 0)
		rc = mdb_env_set_maxreaders(s->env, 126);
	if (rc == 0)
		rc = mdb_env_open(s->env, dir,
				  MDB_WRITEMAP | MDB_NOTLS | MDB_NORDAHEAD,
				  0644);
	if (rc != 0) {
		rc = fail(err, s, rc, "open");
		goto fail;
	}
	rc = mdb_env_get_fd(s->env, &s->fd);
	if (rc == 0)
		rc = allocate_map(s, err);
	else
		rc = fail(err, s, rc, "open");
	if (rc == 0)
		rc = open_tables(s, err);
	if (rc != 0)
		goto fail;
	*out = s;
	return 0;
fail:
	kp_vstore_close(s);
	return rc;
}

void kp_vstore_close(struct kp_vstore *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < READERS; i++) {
		if (s->readers[i].txn != NULL)
			mdb_txn_abort(s->readers[i].txn);
		pthread_mutex_destroy(&s->readers[i].lock);
	}
	if (s->env != NULL)
		mdb_env_close(s->env);
	pthread_rwlock_destroy(&s->map_lock);
	kp_free(s);
}

/* Takes a free cached reader (the first when both are busy), renewed. */
static int reader_begin(struct kp_vstore *s, struct reader **out)
{
	struct reader *r = NULL;
	int rc;

	for (int i = 0; i < READERS && r == NULL; i++) {
		if (pthread_mutex_trylock(&s->readers[i].lock) == 0)
			r = &s->readers[i];
	}
	if (r == NULL) {
		r = &s->readers[0];
		pthread_mutex_lock(&r->lock);
	}
	pthread_rwlock_rdlock(&s->map_lock);
	rc = r->txn == NULL ? mdb_txn_begin(s->env, NULL, MDB_RDONLY, &r->txn)
			    : mdb_txn_renew(r->txn);
	if (rc != 0) {
		if (r->txn != NULL) {
			mdb_txn_abort(r->txn);
			r->txn = NULL;
		}
		pthread_rwlock_unlock(&s->map_lock);
		pthread_mutex_unlock(&r->lock);
		return map_rc(rc);
	}
	*out = r;
	return 0;
}

static void reader_end(struct kp_vstore *s, struct reader *r)
{
	mdb_txn_reset(r->txn);
	pthread_rwlock_unlock(&s->map_lock);
	pthread_mutex_unlock(&r->lock);
}

int kp_vstore_get(struct kp_vstore *s, const char *key, size_t key_len,
		  struct kp_buf *out, size_t *len)
{
	char buf[KP_VSTORE_MAX_KEY + 1];
	MDB_val k, v;
	struct reader *r;
	size_t n = 0;
	int rc;

	if (key_len > KP_VSTORE_MAX_KEY)
		return 0;
	k = stored_key(buf, key, key_len);
	rc = reader_begin(s, &r);
	if (rc != 0)
		return rc;
	rc = mdb_get(r->txn, s->data, &k, &v);
	if (rc == MDB_NOTFOUND) {
		rc = 0;
	} else if (rc != 0) {
		rc = map_rc(rc);
	} else if ((rc = check_value(&k, &v, &n)) == 0) {
		rc = 1;
		if (out != NULL) {
			kp_buf_reset(out);
			if (kp_buf_append(out, v.mv_data, n) != 0)
				rc = -ENOMEM;
		}
	}
	reader_end(s, r);
	if (len != NULL)
		*len = n;
	return rc;
}

/* The scan itself, in txn. */
static int scan_txn(struct kp_vstore *s, MDB_txn *txn, const char *prefix,
		    size_t prefix_len, const char *after, size_t after_len,
		    kp_vstore_visit_fn visit, void *arg)
{
	char buf[KP_VSTORE_MAX_KEY + 1];
	MDB_cursor *cur;
	MDB_val k, v;
	bool from_after = after != NULL && after_len > 0 &&
			  (after_len >= prefix_len
				   ? memcmp(after, prefix, prefix_len) >= 0
				   : memcmp(after, prefix, after_len) > 0);
	int rc;

	if (prefix_len > KP_VSTORE_MAX_KEY)
		return 0;
	if (after_len > KP_VSTORE_MAX_KEY)
		after_len = KP_VSTORE_MAX_KEY;
	rc = mdb_cursor_open(txn, s->data, &cur);
	if (rc != 0)
		return map_rc(rc);
	k = from_after ? stored_key(buf, after, after_len)
		       : stored_key(buf, prefix, prefix_len);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (rc == 0 && from_after && k.mv_size == after_len + 1 &&
	    memcmp((char *)k.mv_data + 1, after, after_len) == 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	while (rc == 0) {
		const char *key = (const char *)k.mv_data + 1;
		size_t n;

		if (k.mv_size < prefix_len + 1 || *(char *)k.mv_data != KEY_TAG ||
		    memcmp(key, prefix, prefix_len) != 0)
			break;
		rc = check_value(&k, &v, &n);
		if (rc != 0)
			break;
		if (visit(arg, key, k.mv_size - 1, v.mv_data, n) != 0)
			break;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND)
		return 0;
	return rc == KP_EDAMAGED ? rc : map_rc(rc);
}

int kp_vstore_scan(struct kp_vstore *s, struct kp_vstore_snap *snap,
		   const char *prefix, size_t prefix_len, const char *after,
		   size_t after_len, kp_vstore_visit_fn visit, void *arg)
{
	struct reader *r;
	int rc;

	if (snap != NULL)
		return scan_txn(s, snap->txn, prefix, prefix_len, after,
				after_len, visit, arg);
	rc = reader_begin(s, &r);
	if (rc != 0)
		return rc;
	rc = scan_txn(s, r->txn, prefix, prefix_len, after, after_len, visit,
		      arg);
	reader_end(s, r);
	return rc;
}

int kp_vstore_snap_begin(struct kp_vstore *s, struct kp_vstore_snap **out)
{
	struct kp_vstore_snap *snap = kp_calloc(1, sizeof(*snap));
	int rc;

	if (snap == NULL)
		return -ENOMEM;
	pthread_rwlock_rdlock(&s->map_lock);
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &snap->txn);
	if (rc != 0) {
		pthread_rwlock_unlock(&s->map_lock);
		kp_free(snap);
		return map_rc(rc);
	}
	snap->s = s;
	*out = snap;
	return 0;
}

void kp_vstore_snap_end(struct kp_vstore_snap *snap)
{
	if (snap == NULL)
		return;
	mdb_txn_abort(snap->txn);
	pthread_rwlock_unlock(&snap->s->map_lock);
	kp_free(snap);
}

int kp_vstore_meta_get(struct kp_vstore *s, const char *name,
		       struct kp_buf *out)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	struct reader *r;
	size_t n;
	int rc = reader_begin(s, &r);

	if (rc != 0)
		return rc;
	rc = mdb_get(r->txn, s->meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		rc = 0;
	} else if (rc != 0) {
		rc = map_rc(rc);
	} else if ((rc = check_value(&k, &v, &n)) == 0) {
		kp_buf_reset(out);
		rc = kp_buf_append(out, v.mv_data, n) != 0 ? -ENOMEM : 1;
	}
	reader_end(s, r);
	return rc;
}

/*
 * Grows the map (and the file, allocated first) to at least bytes. Waits
 * up to GROW_TRIES ms for reads to end; a snapshot held longer (a verify)
 * makes it fail with -EBUSY, and the checkpoint is retried.
 */
static int grow_map(struct kp_vstore *s, uint64_t bytes, struct kp_error *err)
{
	uint64_t n = s->map_bytes + s->map_bytes / 2;
	int rc, tries = 0;

	if (n < bytes)
		n = bytes;
	n = (n + MAP_STEP - 1) / MAP_STEP * MAP_STEP;
	if (n > s->max_bytes)
		n = s->max_bytes;
	if (n <= s->map_bytes)
		return kp_error_set(err, KP_ETOOLARGE,
				    "view store %s reached view_max_bytes (%llu MiB)",
				    s->dir,
				    (unsigned long long)(s->max_bytes >> 20));
	rc = allocate_to(s, n, err);
	if (rc != 0)
		return rc;
	while (pthread_rwlock_trywrlock(&s->map_lock) != 0) {
		if (++tries == GROW_TRIES)
			return kp_error_set(err, -EBUSY,
					    "view store %s: a long read (a verify's snapshot) holds it; its map grows once that ends",
					    s->dir);
		usleep(1000);
	}
	rc = mdb_env_set_mapsize(s->env, (size_t)n);
	if (rc == 0)
		s->map_bytes = n;
	pthread_rwlock_unlock(&s->map_lock);
	return rc == 0 ? 0 : fail(err, s, rc, "grow the map");
}

/* Makes the map hold the most pages c can make the file use. */
static int reserve_space(struct kp_vstore *s, const struct kp_vstore_commit *c,
			 struct kp_error *err)
{
	MDB_envinfo info;
	MDB_stat st;
	uint64_t used, touched, extra, need;

	if (mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &st) != 0)
		return 0;
	used = (uint64_t)info.me_last_pgno + 1;
	touched = c->change_count < used ? c->change_count : used;
	extra = touched + touched / 2 +
		4 * (uint64_t)c->change_bytes / st.ms_psize + 256 + used / 64;
	need = (used + extra) * st.ms_psize;
	if (need > s->max_bytes)
		need = s->max_bytes;
	return need <= s->map_bytes ? 0 : grow_map(s, need, err);
}

static int put_value(MDB_txn *txn, MDB_dbi dbi, const char *key,
		     size_t key_len, const char *value, size_t value_len)
{
	MDB_val k = { key_len, (void *)key };
	MDB_val v = { value_len + CRC_LEN, NULL };
	int rc = mdb_put(txn, dbi, &k, &v, MDB_RESERVE);

	if (rc != 0)
		return rc;
	memcpy(v.mv_data, value, value_len);
	kp_put_le32((char *)v.mv_data + value_len,
		    value_crc(key, key_len, value, value_len));
	return 0;
}

static int apply_changes(struct kp_vstore *s, MDB_txn *txn,
			 const struct kp_vstore_commit *c)
{
	struct kp_vstore_change ch;
	int rc = 0;

	if (c->clear_first)
		rc = mdb_drop(txn, s->data, 0);
	while (rc == 0 && c->next(c->arg, &ch) == 1) {
		char buf[KP_VSTORE_MAX_KEY + 1];
		MDB_val k;

		if (ch.key_len > KP_VSTORE_MAX_KEY)
			return MDB_BAD_VALSIZE;
		k = stored_key(buf, ch.key, ch.key_len);
		if (ch.value != NULL) {
			rc = put_value(txn, s->data, k.mv_data, k.mv_size,
				       ch.value, ch.value_len);
		} else {
			rc = mdb_del(txn, s->data, &k, NULL);
			if (rc == MDB_NOTFOUND)
				rc = 0;
		}
	}
	for (size_t i = 0; rc == 0 && i < c->meta_count; i++)
		rc = put_value(txn, s->meta, c->meta_names[i],
			       strlen(c->meta_names[i]), c->meta_values[i].data,
			       c->meta_values[i].len);
	return rc;
}

int kp_vstore_write(struct kp_vstore *s, const struct kp_vstore_commit *c,
		    struct kp_error *err)
{
	MDB_txn *txn;
	int rc = reserve_space(s, c, err);

	for (int attempt = 0; rc == 0; attempt++) {
		rc = mdb_txn_begin(s->env, NULL, 0, &txn);
		if (rc != 0)
			return fail(err, s, rc, "begin a checkpoint");
		if (attempt > 0)
			c->rewind(c->arg);
		rc = apply_changes(s, txn, c);
		if (rc == 0) {
			rc = mdb_txn_commit(txn);
			return rc == 0 ? 0 : fail(err, s, rc, "commit a checkpoint");
		}
		mdb_txn_abort(txn);
		if (rc != MDB_MAP_FULL)
			return fail(err, s, rc, "write a checkpoint");
		/* More than the estimate: a bigger map, then again. */
		rc = attempt < 3 ? grow_map(s, s->map_bytes * 2, err)
				 : kp_error_set(err, KP_ETOOLARGE,
						"view store %s: a checkpoint does not fit %llu MiB",
						s->dir,
						(unsigned long long)(s->map_bytes >> 20));
	}
	return rc;
}

uint64_t kp_vstore_disk_bytes(struct kp_vstore *s)
{
	struct stat st;

	if (s->fd < 0 || fstat(s->fd, &st) != 0)
		return 0;
	return (uint64_t)st.st_blocks * 512;
}
