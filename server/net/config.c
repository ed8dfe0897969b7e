/*
 * config.c - defaults, config file and command line for kappad.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/topic.h"
#include "proc/proc_def.h"

static const char usage[] =
	"usage: kappad [--data DIR] [--listen HOST:PORT] [--http HOST:PORT]\n"
	"              [--config FILE] [--log-level debug|info|warn|error]\n"
	"defaults: --data ./data --listen 127.0.0.1:7070 --http 127.0.0.1:7071\n";

void kp_config_default(struct kp_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->data, sizeof(cfg->data), "./data");
	snprintf(cfg->listen_host, sizeof(cfg->listen_host), "127.0.0.1");
	cfg->listen_port = 7070;
	snprintf(cfg->http_host, sizeof(cfg->http_host), "127.0.0.1");
	cfg->http_port = 7071;
	cfg->log_level = KP_LOG_INFO;
	cfg->auto_create_topics = false;
	cfg->default_partitions = 1;
	kp_partition_config_default(&cfg->topic_defaults);
	cfg->fsync_interval_ms = 1000;
	cfg->max_frame_bytes = 16u * 1024 * 1024;
	cfg->max_inflight_bytes = 64u * 1024 * 1024;
	cfg->max_inflight_total_bytes = 256u * 1024 * 1024;
	cfg->retention_check_ms = 60000;
	cfg->workers = (uint32_t)(sysconf(_SC_NPROCESSORS_ONLN) > 0
					  ? sysconf(_SC_NPROCESSORS_ONLN)
					  : 1);
	cfg->error_window_min = KP_PROC_ERROR_WINDOW_MIN;
	cfg->max_time_budget_ms = 10000;
	cfg->max_connections = 10000;
	cfg->client_frame_timeout_ms = 10000;
	cfg->max_proc_memory_bytes = 1ull << 30;
	cfg->health_lag_records = 0;
	cfg->health_lag_seconds = 60;
	cfg->health_min_free_bytes = 0;
	cfg->view_cache_bytes = 64u << 20;
	cfg->view_max_bytes = 64ull << 30;
	cfg->health_min_free_percent = 2;
	cfg->http_open_metrics = true;
	cfg->native_plugins = false;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s == '\0' || *s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

static int parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (*s == '\0')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

static int parse_real(const char *s, double max, double *out)
{
	char *end;
	double v;

	if (*s == '\0')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !(v >= 0 && v <= max))
		return -1;
	*out = v;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	if (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0 ||
	    strcmp(s, "1") == 0) {
		*out = true;
		return 0;
	}
	if (strcmp(s, "false") == 0 || strcmp(s, "no") == 0 ||
	    strcmp(s, "0") == 0) {
		*out = false;
		return 0;
	}
	return -1;
}

int kp_config_parse_addr(const char *addr, char *host, size_t host_cap,
			 int *port, struct kp_error *err)
{
	const char *colon = strrchr(addr, ':');
	uint64_t p;
	size_t hlen;

	if (colon == NULL || parse_u64(colon + 1, &p) != 0 || p == 0 ||
	    p > 65535)
		return kp_error_set(err, KP_ECONFIG,
				    "bad address '%s': want HOST:PORT", addr);
	hlen = (size_t)(colon - addr);
	if (hlen == 0 || hlen >= host_cap)
		return kp_error_set(err, KP_ECONFIG,
				    "bad address '%s': want HOST:PORT", addr);
	memcpy(host, addr, hlen);
	host[hlen] = '\0';
	*port = (int)p;
	return 0;
}

/* Settings that are plain numbers: name, target, minimum, maximum. */
struct num_setting {
	const char *key;
	size_t offset;
	int width;  /* 32 or 64 bits, unsigned */
	uint64_t min;
	uint64_t max;  /* 0: what the width holds */
};

#define NUM(field, width, min) { #field, offsetof(struct kp_config, field), width, min, 0 }
#define NUM_MAX(field, width, min, max) { #field, offsetof(struct kp_config, field), width, min, max }

static const struct num_setting num_settings[] = {
	NUM_MAX(default_partitions, 32, 1, KP_MAX_PARTITIONS),
	NUM(fsync_interval_ms, 32, 1),
	NUM(max_frame_bytes, 32, 1024),
	NUM(max_inflight_bytes, 64, 65536),
	NUM(max_inflight_total_bytes, 64, 65536),
	NUM(retention_check_ms, 32, 100),
	NUM(workers, 32, 1),
	NUM(error_window_min, 32, 1),
	NUM(max_time_budget_ms, 32, 10),
	NUM(max_connections, 32, 1),
	NUM(client_frame_timeout_ms, 32, 100),
	NUM(max_proc_memory_bytes, 64, 0),
	NUM(health_lag_records, 64, 0),
	NUM(health_min_free_bytes, 64, 0),
	NUM(view_cache_bytes, 64, 1u << 20),
	NUM(view_max_bytes, 64, 16u << 20),
};

static int set_number(struct kp_config *cfg, const struct num_setting *s,
		      const char *value, struct kp_error *err)
{
	uint64_t v;
	char *field = (char *)cfg + s->offset;

	if (s->max != 0 && parse_u64(value, &v) == 0 &&
	    (v < s->min || v > s->max))
		return kp_error_set(err, KP_ECONFIG,
				    "%s: '%s' is not a number in %llu..%llu",
				    s->key, value, (unsigned long long)s->min,
				    (unsigned long long)s->max);
	if (parse_u64(value, &v) != 0 || v < s->min ||
	    (s->width == 32 && v > UINT32_MAX))
		return kp_error_set(err, KP_ECONFIG,
				    "%s: '%s' is not a number >= %llu", s->key,
				    value, (unsigned long long)s->min);
	if (s->width == 32)
		*(uint32_t *)(void *)field = (uint32_t)v;
	else
		*(uint64_t *)(void *)field = v;
	return 0;
}

/* Settings that are on/off: name, target. */
struct bool_setting {
	const char *key;
	size_t offset;
};

#define BOOL(field) { #field, offsetof(struct kp_config, field) }

static const struct bool_setting bool_settings[] = {
	BOOL(watch_processors),
	BOOL(auto_create_topics),
	BOOL(http_open_metrics),
	BOOL(native_plugins),
};

static int set_bool(struct kp_config *cfg, const struct bool_setting *s,
		    const char *value, struct kp_error *err)
{
	bool *field = (bool *)(void *)((char *)cfg + s->offset);

	if (strcmp(value, "on") == 0)
		*field = true;
	else if (strcmp(value, "off") == 0)
		*field = false;
	else if (parse_bool(value, field) != 0)
		return kp_error_set(err, KP_ECONFIG,
			    "%s: want true or false (on, off), got '%s'",
			    s->key, value);
	return 0;
}

/* Settings that are file or directory paths ("" unsets them). */
struct path_setting {
	const char *key;
	size_t offset;
};

#define PATH(field) { #field, offsetof(struct kp_config, field) }

static const struct path_setting path_settings[] = {
	PATH(data),
	PATH(auth_tokens_file),
	PATH(processors_dir),
	PATH(tls_cert),
	PATH(tls_key),
	PATH(tls_client_ca),
};

static int set_path(struct kp_config *cfg, const struct path_setting *s,
		    const char *value, struct kp_error *err)
{
	char *field = (char *)cfg + s->offset;

	if (strlen(value) >= KP_PATH_MAX)
		return kp_error_set(err, KP_ECONFIG, "%s: path too long",
				    s->key);
	if (strcmp(s->key, "data") == 0 && value[0] == '\0')
		return kp_error_set(err, KP_ECONFIG, "data: empty path");
	memcpy(field, value, strlen(value) + 1);
	return 0;
}

static int set_topic_default(struct kp_partition_config *d, const char *key,
			     const char *value, struct kp_error *err)
{
	uint64_t u;
	int64_t i;

	if (strcmp(key, "default_fsync") == 0) {
		if (kp_fsync_mode_parse(value, &d->fsync) != 0)
			return kp_error_set(err, KP_ECONFIG,
					    "default_fsync: want always, interval or never, got '%s'",
					    value);
		return 0;
	}
	if (strcmp(key, "default_segment_bytes") == 0) {
		if (parse_u64(value, &u) != 0 || u < 1024)
			return kp_error_set(err, KP_ECONFIG,
					    "default_segment_bytes: '%s' is not a number >= 1024",
					    value);
		d->segment_bytes = u;
		return 0;
	}
	if (strcmp(key, "default_segment_ms") == 0 ||
	    strcmp(key, "default_retention_ms") == 0 ||
	    strcmp(key, "default_retention_bytes") == 0) {
		if (parse_i64(value, &i) != 0 || i < -1)
			return kp_error_set(err, KP_ECONFIG,
					    "%s: '%s' is not a number >= -1", key,
					    value);
		if (strcmp(key, "default_segment_ms") == 0)
			d->segment_ms = i;
		else if (strcmp(key, "default_retention_ms") == 0)
			d->retention_ms = i;
		else
			d->retention_bytes = i;
		return 0;
	}
	return 1;
}

int kp_config_set(struct kp_config *cfg, const char *key, const char *value,
		  struct kp_error *err)
{
	int rc;

	if (strcmp(key, "listen") == 0)
		return kp_config_parse_addr(value, cfg->listen_host,
					    sizeof(cfg->listen_host),
					    &cfg->listen_port, err);
	if (strcmp(key, "http") == 0) {
		if (strcmp(value, "off") == 0) {
			cfg->http_port = 0;
			return 0;
		}
		return kp_config_parse_addr(value, cfg->http_host,
					    sizeof(cfg->http_host),
					    &cfg->http_port, err);
	}
	if (strcmp(key, "log_level") == 0) {
		if (kp_log_parse_level(value, &cfg->log_level) != 0)
			return kp_error_set(err, KP_ECONFIG,
					    "log_level: want debug, info, warn or error, got '%s'",
					    value);
		return 0;
	}
	for (size_t i = 0; i < sizeof(bool_settings) / sizeof(bool_settings[0]);
	     i++) {
		if (strcmp(key, bool_settings[i].key) == 0)
			return set_bool(cfg, &bool_settings[i], value, err);
	}
	for (size_t i = 0; i < sizeof(path_settings) / sizeof(path_settings[0]);
	     i++) {
		if (strcmp(key, path_settings[i].key) == 0)
			return set_path(cfg, &path_settings[i], value, err);
	}
	if (strcmp(key, "health_lag_seconds") == 0) {
		if (parse_real(value, 1e9, &cfg->health_lag_seconds) != 0)
			return kp_error_set(err, KP_ECONFIG,
					    "health_lag_seconds: '%s' is not a number of seconds >= 0",
					    value);
		return 0;
	}
	if (strcmp(key, "health_min_free_percent") == 0) {
		if (parse_real(value, 100, &cfg->health_min_free_percent) != 0)
			return kp_error_set(err, KP_ECONFIG,
					    "health_min_free_percent: '%s' is not a number from 0 to 100",
					    value);
		return 0;
	}
	for (size_t i = 0; i < sizeof(num_settings) / sizeof(num_settings[0]);
	     i++) {
		if (strcmp(key, num_settings[i].key) == 0)
			return set_number(cfg, &num_settings[i], value, err);
	}
	rc = set_topic_default(&cfg->topic_defaults, key, value, err);
	if (rc <= 0)
		return rc;
	return kp_error_set(err, KP_ECONFIG, "unknown setting '%s'", key);
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	return s;
}

int kp_config_load(struct kp_config *cfg, const char *path,
		   struct kp_error *err)
{
	char line[4096];
	FILE *f = fopen(path, "r");
	int lineno = 0, rc = 0;

	if (f == NULL)
		return kp_error_set(err, KP_ECONFIG, "%s: %s", path,
				    strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		char *hash = strchr(line, '#'), *eq, *key;
		struct kp_error sub;

		lineno++;
		if (hash != NULL)
			*hash = '\0';
		key = trim(line);
		if (*key == '\0')
			continue;
		eq = strchr(key, '=');
		if (eq == NULL) {
			rc = kp_error_set(err, KP_ECONFIG,
					  "%s:%d: want 'key = value'", path,
					  lineno);
			break;
		}
		*eq = '\0';
		if (kp_config_set(cfg, trim(key), trim(eq + 1), &sub) != 0) {
			rc = kp_error_set(err, KP_ECONFIG, "%s:%d: %s", path,
					  lineno, sub.msg);
			break;
		}
	}
	fclose(f);
	return rc;
}

/* Command-line flags and the setting each one maps to. */
static const char *const flag_keys[][2] = {
	{ "--data", "data" },
	{ "--listen", "listen" },
	{ "--http", "http" },
	{ "--log-level", "log_level" },
};

int kp_config_parse_args(struct kp_config *cfg, int argc, char **argv,
			 struct kp_error *err)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			fputs(usage, stdout);
			return 1;
		}
		if (strcmp(argv[i], "--config") == 0) {
			if (i + 1 >= argc)
				return kp_error_set(err, KP_ECONFIG,
						    "--config needs a FILE");
			if (kp_config_load(cfg, argv[i + 1], err) != 0)
				return KP_ECONFIG;
		}
	}
	for (int i = 1; i < argc; i++) {
		size_t k, nflags = sizeof(flag_keys) / sizeof(flag_keys[0]);

		if (strcmp(argv[i], "--config") == 0) {
			i++;
			continue;
		}
		for (k = 0; k < nflags; k++) {
			if (strcmp(argv[i], flag_keys[k][0]) == 0)
				break;
		}
		if (k == nflags)
			return kp_error_set(err, KP_ECONFIG,
					    "unknown argument '%s' (see --help)",
					    argv[i]);
		if (i + 1 >= argc)
			return kp_error_set(err, KP_ECONFIG, "%s needs a value",
					    argv[i]);
		if (kp_config_set(cfg, flag_keys[k][1], argv[i + 1], err) != 0)
			return KP_ECONFIG;
		i++;
	}
	return 0;
}
