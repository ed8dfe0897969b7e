/*
 * bench_tls.c - the benchmark's TLS: a P-256 key and a self-signed
 * certificate for 127.0.0.1 made at run time (OpenSSL), written where
 * kappad's tls_cert / tls_key can name them, and the client side of a
 * session on a connected blocking socket (SSL_set_fd + SSL_connect, then
 * SSL_read / SSL_write).
 *
 * Access pattern: one kp_bench_tls per run, made before any connection;
 * its client context is shared by every thread (OpenSSL allows it), each
 * session belongs to the one thread that owns its connection.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* The address the certificate names and the client checks. */
#define TLS_HOST "127.0.0.1"
/* Bytes OpenSSL reads from the socket at once (several records). */
#define TLS_READ_BUFFER (64u * 1024)

struct kp_bench_tls {
	SSL_CTX *ctx;          /* client context trusting cert only */
	char cert[600];        /* dir/tls-cert.pem */
	char key[600];         /* dir/tls-key.pem (0600) */
};

/* OpenSSL's last error as text (the queue is cleared). */
static const char *ssl_reason(char *buf, size_t cap)
{
	unsigned long e = ERR_get_error();

	ERR_clear_error();
	if (e == 0)
		return "the connection closed during the handshake";
	ERR_error_string_n(e, buf, cap);
	return buf;
}

/* Adds extension nid with value (OpenSSL's config syntax) to x. */
static void add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	char why[256];

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	if (ext == NULL || X509_add_ext(x, ext, -1) != 1)
		kp_bench_die("TLS certificate: extension %s: %s", value,
			     ssl_reason(why, sizeof(why)));
	X509_EXTENSION_free(ext);
}

/* A self-signed certificate of pkey for TLS_HOST, valid for a day. */
static X509 *self_signed(EVP_PKEY *pkey)
{
	X509 *x = X509_new();
	unsigned char serial[8];
	uint64_t sn = 0;
	X509_NAME *name;
	char why[256];

	if (x == NULL || RAND_bytes(serial, sizeof(serial)) != 1)
		kp_bench_die("TLS certificate: %s", ssl_reason(why, sizeof(why)));
	for (size_t i = 0; i < sizeof(serial); i++)
		sn = sn << 8 | serial[i];
	X509_set_version(x, 2);
	ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), sn >> 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, pkey);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)"kappa-bench " TLS_HOST,
				   -1, -1, 0);
	X509_set_issuer_name(x, name);
	add_ext(x, NID_basic_constraints, "critical,CA:TRUE");
	add_ext(x, NID_key_usage, "critical,digitalSignature,keyCertSign");
	add_ext(x, NID_ext_key_usage, "serverAuth");
	add_ext(x, NID_subject_alt_name, "IP:" TLS_HOST);
	if (X509_sign(x, pkey, EVP_sha256()) <= 0)
		kp_bench_die("TLS certificate: sign: %s",
			     ssl_reason(why, sizeof(why)));
	return x;
}

/* Writes x or pkey as PEM to path, created with mode. */
static void write_pem(const char *path, mode_t mode, X509 *x, EVP_PKEY *pkey)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	int ok;

	if (f == NULL)
		kp_bench_die("%s: %s", path, strerror(errno));
	ok = x != NULL ? PEM_write_X509(f, x)
		       : PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL,
					      NULL);
	if (fclose(f) != 0 || ok != 1)
		kp_bench_die("write %s failed", path);
}

/* The client context: TLS 1.2+, the server must present x. */
static SSL_CTX *client_ctx(X509 *x)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char why[256];

	if (ctx == NULL ||
	    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), x) != 1)
		kp_bench_die("TLS client context: %s",
			     ssl_reason(why, sizeof(why)));
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* Whole records per read(), as a streaming client would. */
	SSL_CTX_set_read_ahead(ctx, 1);
	SSL_CTX_set_default_read_buffer_len(ctx, TLS_READ_BUFFER);
	return ctx;
}

struct kp_bench_tls *kp_bench_tls_new(const char *dir)
{
	struct kp_bench_tls *t = calloc(1, sizeof(*t));
	EVP_PKEY *pkey;
	char why[256];
	X509 *x;

	if (t == NULL)
		kp_bench_die("out of memory");
	if ((size_t)snprintf(t->cert, sizeof(t->cert), "%s/tls-cert.pem",
			     dir) >= sizeof(t->cert) ||
	    (size_t)snprintf(t->key, sizeof(t->key), "%s/tls-key.pem", dir) >=
		    sizeof(t->key))
		kp_bench_die("%s: path too long", dir);
	pkey = EVP_EC_gen("P-256");
	if (pkey == NULL)
		kp_bench_die("TLS key: %s", ssl_reason(why, sizeof(why)));
	x = self_signed(pkey);
	write_pem(t->cert, 0644, x, NULL);
	write_pem(t->key, 0600, NULL, pkey);
	t->ctx = client_ctx(x);
	/* SSL_write uses write(): a closed connection must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return t;
}

void kp_bench_tls_free(struct kp_bench_tls *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

const char *kp_bench_tls_cert(const struct kp_bench_tls *t)
{
	return t->cert;
}

const char *kp_bench_tls_key(const struct kp_bench_tls *t)
{
	return t->key;
}

void *kp_bench_tls_connect(struct kp_bench_tls *t, int fd, char *why,
			   size_t size)
{
	SSL *ssl = SSL_new(t->ctx);
	char reason[256];
	long verify;

	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 ||
	    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), TLS_HOST) != 1) {
		SSL_free(ssl);
		snprintf(why, size, "TLS: cannot set up a session: %s",
			 ssl_reason(reason, sizeof(reason)));
		return NULL;
	}
	if (SSL_connect(ssl) != 1) {
		verify = SSL_get_verify_result(ssl);
		if (verify != X509_V_OK)
			snprintf(why, size, "TLS handshake: the server's "
				 "certificate: %s",
				 X509_verify_cert_error_string(verify));
		else
			snprintf(why, size, "TLS handshake: %s",
				 ssl_reason(reason, sizeof(reason)));
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

ssize_t kp_bench_tls_write(void *session, const void *p, size_t len)
{
	int n = SSL_write(session, p, len > INT_MAX ? INT_MAX : (int)len);
	int e;

	if (n > 0)
		return n;
	e = SSL_get_error(session, n);
	ERR_clear_error();
	return e == SSL_ERROR_SYSCALL && errno != 0 ? -errno : -EPIPE;
}

ssize_t kp_bench_tls_read(void *session, void *p, size_t len)
{
	int n = SSL_read(session, p, len > INT_MAX ? INT_MAX : (int)len);
	int e;

	if (n > 0)
		return n;
	e = SSL_get_error(session, n);
	ERR_clear_error();
	if (e == SSL_ERROR_ZERO_RETURN ||
	    (e == SSL_ERROR_SYSCALL && errno == 0))
		return 0;
	return e == SSL_ERROR_SYSCALL ? -errno : -EPROTO;
}

void kp_bench_tls_close(void *session)
{
	if (session == NULL)
		return;
	/* close_notify, without waiting for the server's. */
	SSL_shutdown(session);
	ERR_clear_error();
	SSL_free(session);
}

void kp_bench_tls_describe(void *session, char *buf, size_t size)
{
	snprintf(buf, size, "%s %s", SSL_get_version(session),
		 SSL_get_cipher_name(session));
}
