/*
 * config.h - kappad's settings: defaults, the config file and the command
 * line, in that order of precedence (the command line wins).
 *
 * The config file is lines of `key = value`; `#` starts a comment. Keys are
 * the field names of struct kp_config below (README.md lists them).
 */
#ifndef KP_CONFIG_H
#define KP_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/logging.h"
#include "log/partition.h"

#define KP_HOST_MAX 256
#define KP_PATH_MAX 4096

struct kp_config {
	char data[KP_PATH_MAX];           /* data directory */
	char listen_host[KP_HOST_MAX];    /* protocol listener */
	int listen_port;
	char http_host[KP_HOST_MAX];      /* metrics/health listener */
	int http_port;                    /* 0 = no HTTP listener */
	enum kp_log_level log_level;
	bool auto_create_topics;          /* create unknown topics on produce */
	bool watch_processors;            /* proc create watches files by default */
	uint32_t default_partitions;      /* for topics created without a count */
	struct kp_partition_config topic_defaults; /* segment/retention/fsync */
	uint32_t fsync_interval_ms;       /* default for fsync=interval */
	uint32_t max_frame_bytes;         /* largest accepted request frame */
	uint64_t max_inflight_bytes;      /* per connection, before back-pressure */
	uint64_t max_inflight_total_bytes; /* all connections together */
	uint32_t retention_check_ms;      /* how often retention runs */
	uint32_t workers;                 /* accepted, ignored: processors run in worker processes */
	uint64_t view_cache_bytes;        /* per view: its in-memory table */
	uint64_t view_max_bytes;          /* per view: its store's largest size */
	uint32_t max_connections;         /* client connections open at once */
	uint32_t client_frame_timeout_ms; /* a begun frame must be whole by then */
	uint32_t max_time_budget_ms;      /* largest time_budget_ms a processor
					     may ask */
	uint64_t max_proc_memory_bytes;   /* largest memory_limit a processor
					     may ask (0: any, and none) */
	uint32_t error_window_min;        /* proc_create's default: records
					     seen before max_error_rate is
					     judged */
	/* security (docs/SECURITY.md) */
	char auth_tokens_file[KP_PATH_MAX]; /* "TOKEN ROLE" lines; "" = single-
					       user mode (loopback, all admin) */
	bool http_open_metrics;           /* /metrics and /health need no token */
	bool native_plugins;              /* proc_create may load .so files */
	char processors_dir[KP_PATH_MAX]; /* with tokens, code only from here
					     ("" = <data>/processors, "any") */
	char tls_cert[KP_PATH_MAX];       /* PEM; with tls_key: TLS only */
	char tls_key[KP_PATH_MAX];
	char tls_client_ca[KP_PATH_MAX];  /* PEM; clients need a certificate */
	/* /health (metrics.h) */
	uint64_t health_lag_records;      /* a live processor lagging more than
					     this many records ... (0 = off) */
	double health_lag_seconds;        /* ... for longer than this is
					     unhealthy */
	uint64_t health_min_free_bytes;   /* data disk: unhealthy below (0 = off) */
	double health_min_free_percent;   /* ... or below this % (0 = off) */
};

/* Fills cfg with the defaults (data ./data, 127.0.0.1:7070, :7071). */
void kp_config_default(struct kp_config *cfg);

/* Applies one `key = value` setting. Returns 0 or KP_ECONFIG with err. */
int kp_config_set(struct kp_config *cfg, const char *key, const char *value,
		  struct kp_error *err);

/* Reads a config file into cfg. Errors name the file and line. */
int kp_config_load(struct kp_config *cfg, const char *path,
		   struct kp_error *err);

/*
 * Parses kappad's command line into cfg (loading --config first, whatever
 * its position, so that flags override it). Returns 0; 1 when --help was
 * printed; KP_ECONFIG with err on bad usage.
 */
int kp_config_parse_args(struct kp_config *cfg, int argc, char **argv,
			 struct kp_error *err);

/* Splits "host:port" (port 1..65535). Returns 0 or KP_ECONFIG. */
int kp_config_parse_addr(const char *addr, char *host, size_t host_cap,
			 int *port, struct kp_error *err);

#endif
