/*
 * bench_server.c - the kappad under test: a scratch directory, a free port,
 * fork/exec, wait for ping, SIGTERM at the end. With a kp_bench_tls, the
 * base config also gives kappad its certificate and key and the ping goes
 * over TLS.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

void kp_bench_mkdtemp(const char *parent, char *out, size_t size)
{
	if ((size_t)snprintf(out, size, "%s/kappa-bench.XXXXXX", parent) >= size)
		kp_bench_die("--data-root: path too long");
	if (mkdtemp(out) == NULL)
		kp_bench_die("mkdtemp %s: %s", out, strerror(errno));
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) == 0 ? 0 : -errno;
}

int kp_bench_rmtree(const char *path)
{
	return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int kp_bench_free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int port;

	if (fd < 0)
		kp_bench_die("socket: %s", strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
		kp_bench_die("bind 127.0.0.1:0: %s", strerror(errno));
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void show_log(const char *path)
{
	char line[512];
	FILE *f = fopen(path, "r");

	if (f == NULL)
		return;
	fprintf(stderr, "--- %s ---\n", path);
	while (fgets(line, sizeof(line), f) != NULL)
		fputs(line, stderr);
	fclose(f);
}

/*
 * true when kappad answers a ping. A failed TLS handshake (the port is
 * open, so kappad is up) is fatal: it would fail every request.
 */
static bool ping(const struct kp_bench_server *s)
{
	struct kp_bench_conn c;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_object resp;
	bool ok = false;
	int rc = kp_bench_conn_open_tls(&c, s->port, s->tls);

	if (rc == -EPROTO) {
		show_log(s->log);
		kp_bench_die("127.0.0.1:%d: %s", s->port, c.why);
	}
	if (rc != 0)
		return false;
	msgpack_sbuffer_init(&sb);
	kp_bench_frame_begin(&sb, &pk, 1, "ping", 0);
	kp_bench_frame_end(&sb);
	if (kp_bench_conn_send(&c, sb.data, sb.size) == 0 &&
	    kp_bench_conn_recv(&c, &resp) == 0)
		ok = kp_bench_ok(&resp);
	msgpack_sbuffer_destroy(&sb);
	kp_bench_conn_close(&c);
	return ok;
}

/*
 * The settings every benchmark run needs: it loads C processors; with
 * TLS, the certificate and key of the protocol port.
 */
static void write_base_config(struct kp_bench_server *s)
{
	FILE *f;
	int rc;

	snprintf(s->base_config, sizeof(s->base_config), "%s/base.conf",
		 s->root);
	f = fopen(s->base_config, "w");
	if (f == NULL)
		kp_bench_die("%s: %s", s->base_config, strerror(errno));
	rc = fputs("native_plugins = on\n", f);
	if (rc >= 0 && s->tls != NULL)
		rc = fprintf(f, "tls_cert = %s\ntls_key = %s\n",
			     kp_bench_tls_cert(s->tls),
			     kp_bench_tls_key(s->tls));
	if (fclose(f) != 0 || rc < 0)
		kp_bench_die("%s: %s", s->base_config, strerror(errno));
}

static void exec_kappad(const struct kp_bench_server *s, const char *kappad,
			const char *config)
{
	char listen[64];
	int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd >= 0) {
		dup2(fd, 1);
		dup2(fd, 2);
	}
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", s->port);
	/* The benchmark's C processors need native plugins allowed. */
	if (config != NULL)
		execl(kappad, kappad, "--data", s->data, "--listen", listen,
		      "--http", "off", "--log-level", "warn", "--config",
		      s->base_config, "--config", config, (char *)NULL);
	else
		execl(kappad, kappad, "--data", s->data, "--listen", listen,
		      "--http", "off", "--log-level", "warn", "--config",
		      s->base_config, (char *)NULL);
	fprintf(stderr, "exec %s: %s\n", kappad, strerror(errno));
	_exit(127);
}

void kp_bench_server_start(struct kp_bench_server *s, const char *kappad,
			   const char *root, const char *config)
{
	kp_bench_server_start_tls(s, kappad, root, config, NULL);
}

void kp_bench_server_start_tls(struct kp_bench_server *s, const char *kappad,
			       const char *root, const char *config,
			       struct kp_bench_tls *tls)
{
	uint64_t deadline;
	int status;

	memset(s, 0, sizeof(*s));
	s->tls = tls;
	snprintf(s->root, sizeof(s->root), "%s", root);
	snprintf(s->data, sizeof(s->data), "%s/data", root);
	snprintf(s->log, sizeof(s->log), "%s/kappad.log", root);
	if (access(kappad, X_OK) != 0)
		kp_bench_die("%s: %s (build it, or pass --kappad PATH)", kappad,
			     strerror(errno));
	if (mkdir(s->data, 0755) != 0)
		kp_bench_die("mkdir %s: %s", s->data, strerror(errno));
	write_base_config(s);
	s->port = kp_bench_free_port();
	fflush(NULL);
	s->pid = fork();
	if (s->pid < 0)
		kp_bench_die("fork: %s", strerror(errno));
	if (s->pid == 0)
		exec_kappad(s, kappad, config);
	deadline = kp_bench_now_ns() + 10000000000ull;
	while (!ping(s)) {
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			s->pid = 0;
			show_log(s->log);
			kp_bench_die("kappad exited before answering ping");
		}
		if (kp_bench_now_ns() > deadline) {
			kp_bench_server_stop(s);
			show_log(s->log);
			kp_bench_die("kappad did not answer ping within 10 s");
		}
		nanosleep(&(struct timespec){ .tv_nsec = 20000000 }, NULL);
	}
}

int kp_bench_server_stop(struct kp_bench_server *s)
{
	int status = 0;
	uint64_t deadline;

	if (s->pid <= 0)
		return -1;
	kill(s->pid, SIGTERM);
	deadline = kp_bench_now_ns() + 10000000000ull;
	while (waitpid(s->pid, &status, WNOHANG) == 0) {
		if (kp_bench_now_ns() > deadline) {
			fprintf(stderr, "kappa-bench: kappad ignored SIGTERM "
					"for 10 s, sending SIGKILL\n");
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &status, 0);
			s->pid = 0;
			return -1;
		}
		nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
	}
	s->pid = 0;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return -1;
}
