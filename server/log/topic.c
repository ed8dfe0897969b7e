/*
 * topic.c - the topic catalog: directories, settings files, partitions.
 */
#include "topic.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/fsutil.h"
#include "base/logging.h"

/* A logical name and the physical topic it resolves to. */
struct alias {
	char name[KP_NAME_MAX + 1];
	char target[KP_NAME_MAX + 1];
	uint32_t generation;
};

struct kp_catalog {
	char topics_dir[4096];     /* <data>/topics */
	char aliases_path[4096];   /* <data>/aliases */
	struct alias *aliases;     /* unsorted; few */
	size_t alias_count;
	struct kp_topic **topics;  /* sorted by name; owned */
	size_t count;
	size_t cap;
	uint64_t delete_seq;       /* names for directories set aside */
	/*
	 * Held by the loop while it changes topics or aliases, and by
	 * kp_catalog_name_taken, the one reader off the loop thread.
	 */
	pthread_mutex_t names_lock;
};

bool kp_topic_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > KP_NAME_MAX)
		return false;
	if ((len == 1 && name[0] == '.') ||
	    (len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return true;
}

static int mkdir_p(const char *path)
{
	char tmp[4096];
	size_t len = strlen(path);

	if (len >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int config_write(const struct kp_topic *t)
{
	const struct kp_topic_config *c = &t->config;
	char path[4200], text[1024];
	int n;

	snprintf(path, sizeof(path), "%s/topic.conf", t->dir);
	n = snprintf(text, sizeof(text),
		     "partitions = %u\nfsync = %s\nfsync_interval_ms = %u\n"
		     "segment_bytes = %llu\nsegment_ms = %lld\n"
		     "retention_ms = %lld\nretention_bytes = %lld\n"
		     "cleanup = %s\ndelete_retention_ms = %lld\n",
		     c->partitions, kp_fsync_mode_name(c->log.fsync),
		     c->fsync_interval_ms,
		     (unsigned long long)c->log.segment_bytes,
		     (long long)c->log.segment_ms,
		     (long long)c->log.retention_ms,
		     (long long)c->log.retention_bytes,
		     kp_cleanup_name(c->cleanup),
		     (long long)c->delete_retention_ms);
	return kp_file_write_atomic(path, text, (size_t)n);
}

static int config_apply(struct kp_topic_config *c, const char *key,
			const char *value)
{
	char *end;
	long long v;

	if (strcmp(key, "fsync") == 0)
		return kp_fsync_mode_parse(value, &c->log.fsync);
	if (strcmp(key, "cleanup") == 0)
		return kp_cleanup_parse(value, strlen(value), &c->cleanup);
	errno = 0;
	v = strtoll(value, &end, 10);
	if (errno != 0 || *end != '\0' || end == value)
		return -1;
	if (strcmp(key, "partitions") == 0 && v >= 1 && v <= KP_MAX_PARTITIONS)
		c->partitions = (uint32_t)v;
	else if (strcmp(key, "fsync_interval_ms") == 0 && v >= 1)
		c->fsync_interval_ms = (uint32_t)v;
	else if (strcmp(key, "segment_bytes") == 0 && v >= 1024)
		c->log.segment_bytes = (uint64_t)v;
	else if (strcmp(key, "segment_ms") == 0 && v >= 1)
		c->log.segment_ms = v;
	else if (strcmp(key, "retention_ms") == 0 && v >= -1)
		c->log.retention_ms = v;
	else if (strcmp(key, "retention_bytes") == 0 && v >= -1)
		c->log.retention_bytes = v;
	else if (strcmp(key, "delete_retention_ms") == 0 && v >= 1)
		c->delete_retention_ms = v;
	else
		return -1;
	return 0;
}

static int config_read(const char *dir, struct kp_topic_config *c,
		       struct kp_error *err)
{
	char path[4200], line[512];
	FILE *f;
	int lineno = 0;

	snprintf(path, sizeof(path), "%s/topic.conf", dir);
	f = fopen(path, "r");
	if (f == NULL)
		return kp_error_set(err, -errno, "%s: %s", path,
				    strerror(errno));
	memset(c, 0, sizeof(*c));
	kp_partition_config_default(&c->log);
	c->partitions = 1;
	c->fsync_interval_ms = 1000;
	c->cleanup = KP_CLEANUP_DELETE;
	c->delete_retention_ms = KP_DELETE_RETENTION_DEFAULT_MS;
	while (fgets(line, sizeof(line), f) != NULL) {
		char key[64], value[256];

		lineno++;
		if (sscanf(line, " %63[a-z_] = %255s", key, value) != 2 ||
		    config_apply(c, key, value) != 0) {
			fclose(f);
			return kp_error_set(err, KP_ECONFIG, "%s:%d: bad setting",
					    path, lineno);
		}
	}
	fclose(f);
	return 0;
}

static int aliases_load(struct kp_catalog *cat);

static void topic_free_parts(struct kp_topic *t, bool keep)
{
	if (t == NULL)
		return;
	if (t->parts != NULL) {
		for (uint32_t i = 0; i < t->config.partitions; i++) {
			if (keep)
				kp_partition_close(t->parts[i].log);
			else
				kp_partition_discard(t->parts[i].log);
		}
	}
	kp_free(t->parts);
	kp_free(t);
}

static void topic_free(struct kp_topic *t)
{
	topic_free_parts(t, true);
}

static int open_partitions(struct kp_topic *t, struct kp_error *err)
{
	char path[4200];

	t->parts = kp_calloc(t->config.partitions, sizeof(*t->parts));
	if (t->parts == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < t->config.partitions; i++) {
		struct kp_topic_partition *tp = &t->parts[i];
		int rc;

		tp->topic = t;
		tp->id = i;
		snprintf(path, sizeof(path), "%s/%u", t->dir, i);
		rc = kp_compact_recover(path, err);
		if (rc == 0)
			rc = kp_partition_open(path, &t->config.log, &tp->log,
					       err);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static size_t lower_bound(const struct kp_catalog *cat, const char *name,
			  size_t len)
{
	size_t lo = 0, hi = cat->count;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const char *n = cat->topics[mid]->name;
		int c = strncmp(n, name, len);

		if (c == 0 && n[len] != '\0')
			c = 1;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int catalog_insert(struct kp_catalog *cat, struct kp_topic *t)
{
	size_t at = lower_bound(cat, t->name, strlen(t->name));

	if (cat->count == cat->cap) {
		size_t cap = cat->cap ? cat->cap * 2 : 16;
		struct kp_topic **grown =
			kp_realloc(cat->topics, cap * sizeof(*grown));

		if (grown == NULL)
			return -ENOMEM;
		pthread_mutex_lock(&cat->names_lock);
		cat->topics = grown;
		cat->cap = cap;
		pthread_mutex_unlock(&cat->names_lock);
	}
	pthread_mutex_lock(&cat->names_lock);
	memmove(&cat->topics[at + 1], &cat->topics[at],
		(cat->count - at) * sizeof(*cat->topics));
	cat->topics[at] = t;
	cat->count++;
	pthread_mutex_unlock(&cat->names_lock);
	return 0;
}

static int load_topic(struct kp_catalog *cat, const char *name,
		      struct kp_error *err)
{
	struct kp_topic *t = kp_calloc(1, sizeof(*t));
	int rc;

	if (t == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	snprintf(t->name, sizeof(t->name), "%s", name);
	snprintf(t->dir, sizeof(t->dir), "%s/%s", cat->topics_dir, name);
	rc = config_read(t->dir, &t->config, err);
	if (rc == 0)
		rc = open_partitions(t, err);
	if (rc == 0 && catalog_insert(cat, t) != 0)
		rc = kp_error_set(err, -ENOMEM, "out of memory");
	if (rc != 0) {
		topic_free(t);
		return rc;
	}
	kp_log_info("catalog", "opened topic %s (%u partitions)", name,
		    t->config.partitions);
	return 0;
}

static int load_all(struct kp_catalog *cat, struct kp_error *err)
{
	DIR *d = opendir(cat->topics_dir);
	struct dirent *e;
	int rc = 0;

	if (d == NULL)
		return kp_error_set(err, -errno, "%s: %s", cat->topics_dir,
				    strerror(errno));
	while (rc == 0 && (e = readdir(d)) != NULL) {
		char path[4200];

		if (e->d_name[0] == '.')
			continue;
		if (strncmp(e->d_name, "#deleted.", 9) == 0) {
			snprintf(path, sizeof(path), "%s/%s", cat->topics_dir,
				 e->d_name);
			kp_file_remove_tree(path);
			continue;
		}
		if (!kp_topic_name_valid(e->d_name, strlen(e->d_name)))
			continue;
		snprintf(path, sizeof(path), "%s/%s/topic.conf",
			 cat->topics_dir, e->d_name);
		if (access(path, F_OK) != 0) {
			kp_log_warn("catalog",
				    "removing half-created topic directory %s",
				    e->d_name);
			snprintf(path, sizeof(path), "%s/%s", cat->topics_dir,
				 e->d_name);
			kp_file_remove_tree(path);
			continue;
		}
		rc = load_topic(cat, e->d_name, err);
	}
	closedir(d);
	return rc;
}

int kp_catalog_open(const char *data_dir, struct kp_catalog **out,
		    struct kp_error *err)
{
	struct kp_catalog *cat = kp_calloc(1, sizeof(*cat));
	int rc;

	if (cat == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	pthread_mutex_init(&cat->names_lock, NULL);
	snprintf(cat->topics_dir, sizeof(cat->topics_dir), "%s/topics",
		 data_dir);
	snprintf(cat->aliases_path, sizeof(cat->aliases_path), "%s/aliases",
		 data_dir);
	rc = mkdir_p(cat->topics_dir);
	if (rc != 0) {
		kp_error_set(err, rc, "cannot create %s: %s", cat->topics_dir,
			     strerror(-rc));
		kp_catalog_close(cat);
		return rc;
	}
	rc = load_all(cat, err);
	if (rc == 0 && aliases_load(cat) != 0)
		rc = kp_error_set(err, KP_ECONFIG, "cannot read %s",
				  cat->aliases_path);
	if (rc != 0) {
		kp_catalog_close(cat);
		return rc;
	}
	*out = cat;
	return 0;
}

void kp_catalog_close(struct kp_catalog *cat)
{
	if (cat == NULL)
		return;
	for (size_t i = 0; i < cat->count; i++)
		topic_free(cat->topics[i]);
	kp_free(cat->topics);
	kp_free(cat->aliases);
	pthread_mutex_destroy(&cat->names_lock);
	kp_free(cat);
}

static struct alias *alias_find(struct kp_catalog *cat, const char *name,
				size_t len)
{
	for (size_t i = 0; i < cat->alias_count; i++) {
		struct alias *a = &cat->aliases[i];

		if (strncmp(a->name, name, len) == 0 && a->name[len] == '\0')
			return a;
	}
	return NULL;
}

/* true for a name lookups may compare: 1..KP_NAME_MAX bytes, no NUL. */
static bool lookup_name_ok(const char *name, size_t len)
{
	return len > 0 && len <= KP_NAME_MAX && memchr(name, '\0', len) == NULL;
}

struct kp_topic *kp_catalog_find(struct kp_catalog *cat, const char *name,
				 size_t len)
{
	struct alias *a;

	if (!lookup_name_ok(name, len))
		return NULL;
	a = alias_find(cat, name, len);

	if (a != NULL)
		return kp_catalog_find_physical(cat, a->target,
						strlen(a->target));
	return kp_catalog_find_physical(cat, name, len);
}

int kp_catalog_alias_get(struct kp_catalog *cat, const char *name, size_t len,
			 uint32_t *generation, const char **target)
{
	struct alias *a = lookup_name_ok(name, len) ? alias_find(cat, name, len)
						    : NULL;

	if (a == NULL)
		return 0;
	if (generation != NULL)
		*generation = a->generation;
	if (target != NULL)
		*target = a->target;
	return 1;
}

static int aliases_save(struct kp_catalog *cat)
{
	char line[512];
	struct kp_buf out;
	int rc = 0;

	kp_buf_init(&out);
	for (size_t i = 0; i < cat->alias_count && rc == 0; i++) {
		int n = snprintf(line, sizeof(line), "%s %s %u\n",
				 cat->aliases[i].name, cat->aliases[i].target,
				 cat->aliases[i].generation);

		rc = kp_buf_append(&out, line, (size_t)n);
	}
	if (rc == 0)
		rc = kp_file_write_atomic(cat->aliases_path,
					  out.data ? out.data : "", out.len);
	kp_buf_destroy(&out);
	return rc;
}

static int aliases_load(struct kp_catalog *cat)
{
	char name[KP_NAME_MAX + 1], target[KP_NAME_MAX + 1];
	unsigned gen;
	FILE *f = fopen(cat->aliases_path, "r");

	if (f == NULL)
		return errno == ENOENT ? 0 : -errno;
	while (fscanf(f, "%200s %200s %u", name, target, &gen) == 3) {
		struct alias *grown = kp_realloc(
			cat->aliases, (cat->alias_count + 1) * sizeof(*grown));

		if (grown == NULL) {
			fclose(f);
			return -ENOMEM;
		}
		cat->aliases = grown;
		snprintf(grown[cat->alias_count].name, KP_NAME_MAX + 1, "%s",
			 name);
		snprintf(grown[cat->alias_count].target, KP_NAME_MAX + 1, "%s",
			 target);
		grown[cat->alias_count].generation = gen;
		cat->alias_count++;
	}
	fclose(f);
	return 0;
}

int kp_catalog_alias_set(struct kp_catalog *cat, const char *name,
			 const char *target, uint32_t generation)
{
	struct alias *a = alias_find(cat, name, strlen(name));

	pthread_mutex_lock(&cat->names_lock);
	if (a == NULL) {
		struct alias *grown = kp_realloc(
			cat->aliases, (cat->alias_count + 1) * sizeof(*grown));

		if (grown == NULL) {
			pthread_mutex_unlock(&cat->names_lock);
			return -ENOMEM;
		}
		cat->aliases = grown;
		a = &grown[cat->alias_count++];
		snprintf(a->name, sizeof(a->name), "%s", name);
	}
	snprintf(a->target, sizeof(a->target), "%s", target);
	a->generation = generation;
	pthread_mutex_unlock(&cat->names_lock);
	return aliases_save(cat);
}

int kp_catalog_alias_remove(struct kp_catalog *cat, const char *name)
{
	struct alias *a = alias_find(cat, name, strlen(name));

	if (a == NULL)
		return 0;
	pthread_mutex_lock(&cat->names_lock);
	*a = cat->aliases[--cat->alias_count];
	pthread_mutex_unlock(&cat->names_lock);
	return aliases_save(cat);
}

struct kp_topic *kp_catalog_find_physical(struct kp_catalog *cat,
					  const char *name, size_t len)
{
	size_t at;

	if (!lookup_name_ok(name, len))
		return NULL;
	at = lower_bound(cat, name, len);

	if (at < cat->count && strncmp(cat->topics[at]->name, name, len) == 0 &&
	    cat->topics[at]->name[len] == '\0')
		return cat->topics[at];
	return NULL;
}

static int create_files(struct kp_catalog *cat, struct kp_topic *t,
			struct kp_error *err)
{
	int rc = mkdir_p(t->dir);

	if (rc != 0)
		return kp_error_set(err, rc, "cannot create %s: %s", t->dir,
				    strerror(-rc));
	rc = open_partitions(t, err);
	if (rc != 0)
		return rc;
	rc = config_write(t);
	if (rc != 0)
		return kp_error_set(err, rc, "cannot write %s/topic.conf: %s",
				    t->dir, strerror(-rc));
	rc = kp_file_fsync_dir(cat->topics_dir);
	if (rc != 0)
		return kp_error_set(err, rc, "cannot fsync %s: %s",
				    cat->topics_dir, strerror(-rc));
	return 0;
}

int kp_catalog_create(struct kp_catalog *cat, const char *name, size_t len,
		      const struct kp_topic_config *cfg,
		      struct kp_topic **out, struct kp_error *err)
{
	struct kp_topic *t;
	int rc;

	if (!kp_topic_name_valid(name, len))
		return kp_error_set(err, KP_EBADREQUEST,
				    "bad topic name '%.*s': use 1..200 of A-Z a-z 0-9 . _ -",
				    (int)(len > 64 ? 64 : len), name);
	if (cfg->partitions < 1 || cfg->partitions > KP_MAX_PARTITIONS)
		return kp_error_set(err, KP_EBADREQUEST,
				    "partitions must be 1..%d", KP_MAX_PARTITIONS);
	if (kp_catalog_find(cat, name, len) != NULL ||
	    kp_catalog_find_physical(cat, name, len) != NULL)
		return kp_error_set(err, KP_ETOPICEXISTS,
				    "topic '%.*s' already exists", (int)len,
				    name);
	t = kp_calloc(1, sizeof(*t));
	if (t == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	memcpy(t->name, name, len);
	snprintf(t->dir, sizeof(t->dir), "%s/%s", cat->topics_dir, t->name);
	if (access(t->dir, F_OK) == 0) {
		kp_free(t);
		return kp_error_set(err, KP_ESTATE,
				    "topic '%.*s' is still being deleted; retry",
				    (int)len, name);
	}
	t->config = *cfg;
	if (t->config.delete_retention_ms <= 0)
		t->config.delete_retention_ms = KP_DELETE_RETENTION_DEFAULT_MS;
	rc = create_files(cat, t, err);
	if (rc == 0 && catalog_insert(cat, t) != 0)
		rc = kp_error_set(err, -ENOMEM, "out of memory");
	if (rc != 0) {
		char dir[sizeof(t->dir)];

		memcpy(dir, t->dir, sizeof(dir));
		topic_free(t);
		kp_file_remove_tree(dir);
		return rc;
	}
	kp_log_info("catalog", "created topic %s (%u partitions, fsync=%s, "
		    "cleanup=%s)", t->name, cfg->partitions,
		    kp_fsync_mode_name(cfg->log.fsync),
		    kp_cleanup_name(cfg->cleanup));
	*out = t;
	return 0;
}

int kp_catalog_delete(struct kp_catalog *cat, struct kp_topic *topic,
		      struct kp_error *err)
{
	size_t at = lower_bound(cat, topic->name, strlen(topic->name));

	if (at >= cat->count || cat->topics[at] != topic)
		return kp_error_set(err, KP_ENOTOPIC, "topic '%s' not found",
				    topic->name);
	pthread_mutex_lock(&cat->names_lock);
	memmove(&cat->topics[at], &cat->topics[at + 1],
		(cat->count - at - 1) * sizeof(*cat->topics));
	cat->count--;
	pthread_mutex_unlock(&cat->names_lock);
	topic->deleted = true;
	return 0;
}

bool kp_catalog_name_taken(struct kp_catalog *cat, const char *name,
			   size_t len)
{
	bool taken;

	if (!lookup_name_ok(name, len))
		return false;
	pthread_mutex_lock(&cat->names_lock);
	taken = alias_find(cat, name, len) != NULL ||
		kp_catalog_find_physical(cat, name, len) != NULL;
	pthread_mutex_unlock(&cat->names_lock);
	return taken;
}

int kp_catalog_release(struct kp_catalog *cat, struct kp_topic *topic,
		       char *aside, size_t cap)
{
	char dir[4096];
	int rc = 0;

	snprintf(dir, sizeof(dir), "%s", topic->dir);
	snprintf(aside, cap, "%s/#deleted.%llu.%s", cat->topics_dir,
		 (unsigned long long)cat->delete_seq++, topic->name);
	kp_log_info("catalog", "deleted topic %s", topic->name);
	topic_free_parts(topic, false);
	if (rename(dir, aside) != 0) {
		rc = -errno;
		kp_log_error("catalog", "cannot set aside %s: %s", dir,
			     strerror(errno));
	}
	return rc;
}

size_t kp_catalog_count(const struct kp_catalog *cat)
{
	return cat->count;
}

struct kp_topic *kp_catalog_at(struct kp_catalog *cat, size_t i)
{
	return cat->topics[i];
}
