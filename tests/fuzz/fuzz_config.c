/*
 * fuzz_config.c - libFuzzer target for kappad's configuration parser
 * (server/net/config.c).
 *
 * The input is a config file: kp_config_load reads it (from a memfd, so
 * no file is written per input). Then each of its lines goes through
 * kp_config_set as `key = value` and kp_config_parse_addr, and the input
 * split at NUL bytes becomes a command line for kp_config_parse_args
 * (without --config, --help and -h, which read other files or print).
 * Checked: results are 0 or KP_ECONFIG; an error message is one line;
 * whatever was accepted leaves every string of the config terminated
 * within its field, ports in range and the numeric floors kept; loading
 * the same file twice gives the same config; loading it gives the same
 * config as applying its lines one by one with kp_config_set.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/error.h"
#include "net/config.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (64u << 10)
#define MAX_ARGS 64
#define LINE_MAX_LOAD 4095   /* kp_config_load reads lines of this many */

static void check_error(int rc, const struct kp_error *err)
{
	CHECK(rc == 0 || rc == KP_ECONFIG);
	if (rc != 0) {
		CHECK(err->code == KP_ECONFIG);
		CHECK(strlen(err->msg) < sizeof(err->msg));
		CHECK(strchr(err->msg, '\n') == NULL);
	}
}

static void check_config(const struct kp_config *c)
{
	CHECK(memchr(c->data, '\0', sizeof(c->data)) != NULL);
	CHECK(c->data[0] != '\0');
	CHECK(memchr(c->listen_host, '\0', sizeof(c->listen_host)) != NULL);
	CHECK(memchr(c->http_host, '\0', sizeof(c->http_host)) != NULL);
	CHECK(c->listen_port >= 1 && c->listen_port <= 65535);
	CHECK(c->http_port >= 0 && c->http_port <= 65535);
	CHECK(c->log_level >= KP_LOG_DEBUG && c->log_level <= KP_LOG_ERROR);
	CHECK(c->default_partitions >= 1);
	CHECK(c->fsync_interval_ms >= 1);
	CHECK(c->max_frame_bytes >= 1024);
	CHECK(c->max_inflight_bytes >= 65536);
	CHECK(c->max_inflight_total_bytes >= 65536);
	CHECK(c->max_connections >= 1);
	CHECK(c->view_cache_bytes >= (1u << 20));
	CHECK(c->topic_defaults.segment_bytes >= 1024);
	CHECK(c->topic_defaults.segment_ms >= -1);
	CHECK(c->topic_defaults.retention_ms >= -1);
	CHECK(c->topic_defaults.retention_bytes >= -1);
	CHECK(c->health_lag_seconds >= 0);
	CHECK(c->health_min_free_percent >= 0 &&
	      c->health_min_free_percent <= 100);
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

/*
 * Applies the lines of buf (NUL-terminated copy) one by one, as a config
 * file says they mean. Returns 0 or the first error; sets *long_line when
 * a line is longer than kp_config_load reads at once.
 */
static int apply_lines(struct kp_config *cfg, char *buf, size_t len,
		       bool *long_line)
{
	struct kp_error err;
	char *line = buf, *end = buf + len;
	int rc = 0;

	*long_line = false;
	while (line < end) {
		char *nl = memchr(line, '\n', (size_t)(end - line));
		char *next = nl != NULL ? nl + 1 : end;
		char *key, *eq, *hash, addr_host[KP_HOST_MAX];
		int port;

		if ((size_t)(next - line) > LINE_MAX_LOAD)
			*long_line = true;
		if (nl != NULL)
			*nl = '\0';
		hash = strchr(line, '#');
		if (hash != NULL)
			*hash = '\0';
		rc = kp_config_parse_addr(line, addr_host, sizeof(addr_host),
					  &port, &err);
		check_error(rc, &err);
		if (rc == 0)
			CHECK(port >= 1 && port <= 65535 &&
			      strlen(addr_host) < sizeof(addr_host));
		key = trim(line);
		line = next;
		rc = 0;
		if (*key == '\0')
			continue;
		eq = strchr(key, '=');
		if (eq == NULL)
			return KP_ECONFIG;
		*eq = '\0';
		rc = kp_config_set(cfg, trim(key), trim(eq + 1), &err);
		check_error(rc, &err);
		if (rc != 0)
			return rc;
		check_config(cfg);
	}
	return rc;
}

static int load(int fd, const char *path, const uint8_t *data, size_t size,
		struct kp_config *cfg)
{
	struct kp_error err;
	int rc;

	CHECK(ftruncate(fd, 0) == 0);
	CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);
	kp_config_default(cfg);
	kp_error_clear(&err);
	rc = kp_config_load(cfg, path, &err);
	check_error(rc, &err);
	if (rc == 0)
		check_config(cfg);
	return rc;
}

/* The input split at NUL bytes, as kappad's argv. */
static void parse_args(char *buf, size_t len)
{
	char *argv[MAX_ARGS + 1];
	int argc = 0;
	struct kp_config cfg;
	struct kp_error err;
	char *p = buf;
	int rc;

	argv[argc++] = "kappad";
	while (p < buf + len && argc < MAX_ARGS) {
		size_t n = strlen(p);

		if (strcmp(p, "--config") != 0 && strcmp(p, "--help") != 0 &&
		    strcmp(p, "-h") != 0)
			argv[argc++] = p;
		p += n + 1;
	}
	argv[argc] = NULL;
	kp_config_default(&cfg);
	kp_error_clear(&err);
	rc = kp_config_parse_args(&cfg, argc, argv, &err);
	check_error(rc, &err);
	if (rc == 0)
		check_config(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	static struct kp_config a, b, c;
	bool long_line;
	char *copy;
	int ra, rb, rc;

	if (size > FUZZ_MAX_INPUT)
		return 0;
	if (fd < 0) {
		fd = memfd_create("fuzz_config", MFD_CLOEXEC);
		CHECK(fd >= 0);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	ra = load(fd, path, data, size, &a);
	rb = load(fd, path, data, size, &b);
	CHECK(ra == rb && memcmp(&a, &b, sizeof(a)) == 0);

	copy = malloc(size + 1);
	CHECK(copy != NULL);
	memcpy(copy, data, size);
	copy[size] = '\0';
	kp_config_default(&c);
	rc = apply_lines(&c, copy, size, &long_line);
	if (!long_line) {
		CHECK((ra == 0) == (rc == 0));
		if (ra == 0)
			CHECK(memcmp(&a, &c, sizeof(a)) == 0);
	}
	memcpy(copy, data, size);
	copy[size] = '\0';
	parse_args(copy, size);
	free(copy);
	return 0;
}
