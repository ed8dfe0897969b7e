/*
 * groups.c - consumer-group offset table and its file.
 */
#include "groups.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "topic.h"

struct entry {
	char *group;        /* owned */
	char *topic;        /* owned */
	uint32_t partition;
	uint64_t offset;
};

struct kp_groups {
	char path[4200];     /* <data>/groups.db */
	struct entry *entries; /* sorted by group, topic, partition */
	size_t count;
	size_t cap;
};

static int cmp_key(const struct entry *e, const char *group, size_t glen,
		   const char *topic, size_t tlen, uint32_t partition)
{
	int c = strncmp(e->group, group, glen);

	if (c == 0 && e->group[glen] != '\0')
		c = 1;
	if (c != 0)
		return c;
	c = strncmp(e->topic, topic, tlen);
	if (c == 0 && e->topic[tlen] != '\0')
		c = 1;
	if (c != 0)
		return c;
	return e->partition < partition ? -1 : e->partition > partition;
}

static size_t lower_bound(const struct kp_groups *g, const char *group,
			  size_t glen, const char *topic, size_t tlen,
			  uint32_t partition)
{
	size_t lo = 0, hi = g->count;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (cmp_key(&g->entries[mid], group, glen, topic, tlen,
			    partition) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int kp_groups_set(struct kp_groups *g, const char *group, size_t glen,
		  const char *topic, size_t tlen, uint32_t partition,
		  uint64_t offset)
{
	size_t at = lower_bound(g, group, glen, topic, tlen, partition);
	struct entry e;

	if (at < g->count &&
	    cmp_key(&g->entries[at], group, glen, topic, tlen, partition) == 0) {
		g->entries[at].offset = offset;
		return 0;
	}
	if (g->count == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 32;
		struct entry *grown =
			kp_realloc(g->entries, cap * sizeof(*grown));

		if (grown == NULL)
			return -ENOMEM;
		g->entries = grown;
		g->cap = cap;
	}
	e.group = kp_strndup(group, glen);
	e.topic = kp_strndup(topic, tlen);
	if (e.group == NULL || e.topic == NULL) {
		kp_free(e.group);
		kp_free(e.topic);
		return -ENOMEM;
	}
	e.partition = partition;
	e.offset = offset;
	memmove(&g->entries[at + 1], &g->entries[at],
		(g->count - at) * sizeof(*g->entries));
	g->entries[at] = e;
	g->count++;
	return 0;
}

static int load(struct kp_groups *g, struct kp_error *err)
{
	char line[512];
	FILE *f = fopen(g->path, "r");
	int lineno = 0;

	if (f == NULL) {
		if (errno == ENOENT)
			return 0;
		return kp_error_set(err, -errno, "%s: %s", g->path,
				    strerror(errno));
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char group[KP_NAME_MAX + 1], topic[KP_NAME_MAX + 1];
		uint32_t partition;
		uint64_t offset;

		lineno++;
		if (sscanf(line, "%200s %200s %" SCNu32 " %" SCNu64, group,
			   topic, &partition, &offset) != 4) {
			fclose(f);
			return kp_error_set(err, KP_ECONFIG,
					    "%s:%d: damaged line", g->path,
					    lineno);
		}
		if (kp_groups_set(g, group, strlen(group), topic, strlen(topic),
				  partition, offset) != 0) {
			fclose(f);
			return kp_error_set(err, -ENOMEM, "out of memory");
		}
	}
	fclose(f);
	return 0;
}

int kp_groups_open(const char *data_dir, struct kp_groups **out,
		   struct kp_error *err)
{
	struct kp_groups *g = kp_calloc(1, sizeof(*g));
	int rc;

	if (g == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	snprintf(g->path, sizeof(g->path), "%s/groups.db", data_dir);
	rc = load(g, err);
	if (rc != 0) {
		kp_groups_close(g);
		return rc;
	}
	*out = g;
	return 0;
}

void kp_groups_close(struct kp_groups *g)
{
	if (g == NULL)
		return;
	for (size_t i = 0; i < g->count; i++) {
		kp_free(g->entries[i].group);
		kp_free(g->entries[i].topic);
	}
	kp_free(g->entries);
	kp_free(g);
}

size_t kp_groups_each(struct kp_groups *g, const char *group, size_t glen,
		      const char *topic, size_t tlen,
		      void (*visit)(void *arg, const struct kp_group_offset *o),
		      void *arg)
{
	size_t n = 0;

	for (size_t i = lower_bound(g, group, glen, "", 0, 0); i < g->count;
	     i++) {
		const struct entry *e = &g->entries[i];
		struct kp_group_offset o;

		if (strncmp(e->group, group, glen) != 0 ||
		    e->group[glen] != '\0')
			break;
		if (topic != NULL && (strncmp(e->topic, topic, tlen) != 0 ||
				      e->topic[tlen] != '\0'))
			continue;
		o.group = e->group;
		o.topic = e->topic;
		o.partition = e->partition;
		o.offset = e->offset;
		visit(arg, &o);
		n++;
	}
	return n;
}

size_t kp_groups_count(struct kp_groups *g)
{
	size_t n = 0;

	for (size_t i = 0; i < g->count; i++) {
		if (i == 0 || strcmp(g->entries[i].group,
				     g->entries[i - 1].group) != 0)
			n++;
	}
	return n;
}

const char *kp_groups_name(struct kp_groups *g, size_t index)
{
	size_t n = 0;

	for (size_t i = 0; i < g->count; i++) {
		if (i == 0 || strcmp(g->entries[i].group,
				     g->entries[i - 1].group) != 0) {
			if (n == index)
				return g->entries[i].group;
			n++;
		}
	}
	return NULL;
}

static void remove_if(struct kp_groups *g, const char *group, size_t glen,
		      const char *topic, size_t *removed)
{
	size_t keep = 0;

	*removed = 0;
	for (size_t i = 0; i < g->count; i++) {
		struct entry *e = &g->entries[i];
		int match = group != NULL ? (strncmp(e->group, group, glen) == 0 &&
					     e->group[glen] == '\0')
					  : (topic != NULL &&
					     strcmp(e->topic, topic) == 0);

		if (match) {
			kp_free(e->group);
			kp_free(e->topic);
			(*removed)++;
			continue;
		}
		g->entries[keep++] = *e;
	}
	g->count = keep;
}

int kp_groups_delete(struct kp_groups *g, const char *group, size_t glen)
{
	size_t removed;

	remove_if(g, group, glen, NULL, &removed);
	return removed > 0 ? 0 : KP_ENOGROUP;
}

void kp_groups_forget_topic(struct kp_groups *g, const char *topic)
{
	size_t removed;

	remove_if(g, NULL, 0, topic, &removed);
}

int kp_groups_serialize(struct kp_groups *g, struct kp_buf *out)
{
	char line[512];

	kp_buf_reset(out);
	for (size_t i = 0; i < g->count; i++) {
		const struct entry *e = &g->entries[i];
		int n = snprintf(line, sizeof(line), "%s %s %" PRIu32 " %" PRIu64 "\n",
				 e->group, e->topic, e->partition, e->offset);

		if (kp_buf_append(out, line, (size_t)n) != 0)
			return -ENOMEM;
	}
	return 0;
}

const char *kp_groups_path(const struct kp_groups *g)
{
	return g->path;
}
