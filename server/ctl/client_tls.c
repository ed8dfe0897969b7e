/*
 * client_tls.c - kappactl's TLS: handshake, verification, I/O; see
 * client_tls.h.
 */
#include "client_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

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

/* A client context trusting tls->ca and presenting tls->cert, or NULL. */
static SSL_CTX *make_ctx(const struct kp_ctl_tls *tls, struct kp_error *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char why[256];
	int ok;

	if (ctx == NULL) {
		kp_error_set(err, -EPROTO, "TLS: %s", ssl_reason(why, sizeof(why)));
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ok = tls->ca != NULL
		     ? SSL_CTX_load_verify_locations(ctx, tls->ca, NULL)
		     : SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		kp_error_set(err, -EINVAL, "--tls-ca %s: %s",
			     tls->ca ? tls->ca : "(system)",
			     ssl_reason(why, sizeof(why)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (tls->cert != NULL || tls->key != NULL) {
		const char *cert = tls->cert ? tls->cert : tls->key;
		const char *key = tls->key ? tls->key : tls->cert;

		if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			kp_error_set(err, -EINVAL, "--tls-cert %s / --tls-key %s: %s",
				     cert, key, ssl_reason(why, sizeof(why)));
			SSL_CTX_free(ctx);
			return NULL;
		}
	}
	return ctx;
}

/* The server's certificate must name the host: its IP or DNS name. */
static int expect_host(SSL *ssl, const char *host)
{
	unsigned char ip[16];
	X509_VERIFY_PARAM *param = SSL_get0_param(ssl);

	if (inet_pton(AF_INET, host, ip) == 1 ||
	    inet_pton(AF_INET6, host, ip) == 1)
		return X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1 ? 0 : -1;
	if (SSL_set_tlsext_host_name(ssl, host) != 1)
		return -1;
	return SSL_set1_host(ssl, host) == 1 ? 0 : -1;
}

void *kp_ctl_tls_connect(int fd, const char *host,
			 const struct kp_ctl_tls *tls, struct kp_error *err)
{
	SSL_CTX *ctx = make_ctx(tls, err);
	char why[256];
	SSL *ssl;
	long verify;
	int rc;

	if (ctx == NULL)
		return NULL;
	ssl = SSL_new(ctx);
	SSL_CTX_free(ctx);               /* the session keeps a reference */
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 ||
	    expect_host(ssl, host) != 0) {
		SSL_free(ssl);
		kp_error_set(err, -ENOMEM, "TLS: cannot set up a session");
		return NULL;
	}
	if ((rc = SSL_connect(ssl)) != 1) {
		verify = SSL_get_verify_result(ssl);
		if (SSL_get_error(ssl, rc) == SSL_ERROR_WANT_READ)
			kp_error_set(err, -ETIMEDOUT,
				     "TLS handshake with %s failed: no answer in time",
				     host);
		else if (verify != X509_V_OK)
			kp_error_set(err, -EPROTO,
				     "TLS handshake with %s failed: the server's certificate: %s",
				     host, X509_verify_cert_error_string(verify));
		else
			kp_error_set(err, -EPROTO,
				     "TLS handshake with %s failed: %s", host,
				     ssl_reason(why, sizeof(why)));
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

ssize_t kp_ctl_tls_write(void *session, const char *p, size_t len)
{
	int n = SSL_write(session, p, len > INT_MAX ? INT_MAX : (int)len);

	if (n > 0)
		return n;
	ERR_clear_error();
	errno = EPIPE;
	return -1;
}

ssize_t kp_ctl_tls_read(void *session, char *p, size_t len)
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
	if (e == SSL_ERROR_WANT_READ)
		errno = EAGAIN;       /* the socket's receive timeout ran out */
	else if (e != SSL_ERROR_SYSCALL)
		errno = EPROTO;
	return -1;
}

void kp_ctl_tls_free(void *session)
{
	SSL_free(session);
}
