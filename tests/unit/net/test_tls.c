/*
 * test_tls.c - server TLS sessions on memory BIOs (net/tls.h), against an
 * OpenSSL client in the same process: the handshake, plaintext both ways,
 * bytes sent before the handshake held until it is done, the close_notify
 * that ends a session, and a peer that sends garbage told so with an
 * error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net/tls.h"

static char cert_path[512], key_path[512];

/* A self-signed P-256 certificate and its key, as PEM files. */
static void make_cert(void)
{
	const char *dir = getenv("KP_TEST_TMP");
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	FILE *f;

	snprintf(cert_path, sizeof(cert_path), "%s/tls-cert-%d.pem",
		 dir ? dir : "/tmp", (int)getpid());
	snprintf(key_path, sizeof(key_path), "%s/tls-key-%d.pem",
		 dir ? dir : "/tmp", (int)getpid());
	assert_non_null(k);
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)"kappa unit", -1, -1, 0);
	X509_set_issuer_name(x, name);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	f = fopen(cert_path, "w");
	assert_non_null(f);
	PEM_write_X509(f, x);
	fclose(f);
	f = fopen(key_path, "w");
	assert_non_null(f);
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(k);
}

/* The client's side: an SSL on two memory BIOs. */
struct peer {
	SSL_CTX *ctx;
	SSL *ssl;
	BIO *in, *out;
};

static void peer_open(struct peer *p)
{
	p->ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_verify(p->ctx, SSL_VERIFY_NONE, NULL);
	p->ssl = SSL_new(p->ctx);
	p->in = BIO_new(BIO_s_mem());
	p->out = BIO_new(BIO_s_mem());
	SSL_set_bio(p->ssl, p->in, p->out);
	SSL_set_connect_state(p->ssl);
}

static void peer_close(struct peer *p)
{
	SSL_free(p->ssl);
	SSL_CTX_free(p->ctx);
}

/* Moves the client's pending records to the server session and back. */
static int pump(struct peer *p, struct kp_tls_session *s, struct kp_buf *plain)
{
	char buf[16384];
	struct kp_buf out;
	struct kp_error err;
	int n, rc = 0;

	kp_buf_init(&out);
	while ((n = BIO_read(p->out, buf, sizeof(buf))) > 0) {
		rc = kp_tls_session_recv(s, buf, (size_t)n, plain, &out, &err);
		if (rc != 0)
			break;
	}
	if (out.len > 0)
		BIO_write(p->in, out.data, (int)out.len);
	kp_buf_destroy(&out);
	return rc;
}

static void test_handshake_and_data(void **state)
{
	struct kp_tls *t;
	struct kp_tls_session *s;
	struct kp_error err;
	struct kp_buf plain, out;
	struct peer p;
	char got[64];
	int i, n;

	(void)state;
	make_cert();
	assert_int_equal(kp_tls_open(&t, cert_path, key_path, NULL, &err), 0);
	s = kp_tls_session_new(t);
	assert_non_null(s);
	kp_buf_init(&plain);
	kp_buf_init(&out);
	/* Sent before the handshake: held, not lost. */
	assert_int_equal(kp_tls_session_send(s, "early", 5, &out, &err), 0);
	assert_int_equal(out.len, 0);
	peer_open(&p);
	for (i = 0; i < 10 && !SSL_is_init_finished(p.ssl); i++) {
		SSL_do_handshake(p.ssl);
		assert_int_equal(pump(&p, s, &plain), 0);
	}
	assert_true(SSL_is_init_finished(p.ssl));
	assert_true(kp_tls_session_ready(s));
	n = SSL_read(p.ssl, got, sizeof(got));
	assert_int_equal(n, 5);
	assert_memory_equal(got, "early", 5);
	/* Client to server. */
	assert_int_equal(SSL_write(p.ssl, "hello kappa", 11), 11);
	assert_int_equal(pump(&p, s, &plain), 0);
	assert_int_equal(plain.len, 11);
	assert_memory_equal(plain.data, "hello kappa", 11);
	/* Server to client. */
	assert_int_equal(kp_tls_session_send(s, "pong", 4, &out, &err), 0);
	assert_true(out.len > 4);
	assert_null(memmem(out.data, out.len, "pong", 4));
	BIO_write(p.in, out.data, (int)out.len);
	assert_int_equal(SSL_read(p.ssl, got, sizeof(got)), 4);
	assert_memory_equal(got, "pong", 4);
	/* Closing: the client reads a clean end (close_notify), not EOF. */
	out.len = 0;
	assert_int_equal(kp_tls_session_close(s, &out), 0);
	assert_true(out.len > 0);
	BIO_write(p.in, out.data, (int)out.len);
	assert_int_equal(SSL_read(p.ssl, got, sizeof(got)), 0);
	assert_int_equal(SSL_get_error(p.ssl, 0), SSL_ERROR_ZERO_RETURN);
	kp_buf_destroy(&plain);
	kp_buf_destroy(&out);
	peer_close(&p);
	kp_tls_session_free(s);
	kp_tls_free(t);
}

static void test_garbage_is_an_error(void **state)
{
	static const char junk[] = "\x00\x00\x00\x05hello, not TLS at all";
	struct kp_tls *t;
	struct kp_tls_session *s;
	struct kp_error err;
	struct kp_buf plain, out;

	(void)state;
	make_cert();
	assert_int_equal(kp_tls_open(&t, cert_path, key_path, NULL, &err), 0);
	s = kp_tls_session_new(t);
	kp_buf_init(&plain);
	kp_buf_init(&out);
	assert_int_not_equal(kp_tls_session_recv(s, junk, sizeof(junk) - 1,
						 &plain, &out, &err), 0);
	assert_non_null(strstr(err.msg, "TLS"));
	assert_int_equal(plain.len, 0);
	/* No handshake, no close_notify. */
	out.len = 0;
	assert_int_equal(kp_tls_session_close(s, &out), 0);
	assert_int_equal(out.len, 0);
	kp_buf_destroy(&plain);
	kp_buf_destroy(&out);
	kp_tls_session_free(s);
	kp_tls_free(t);
}

static void test_bad_files(void **state)
{
	struct kp_tls *t = NULL;
	struct kp_error err;

	(void)state;
	make_cert();
	assert_int_equal(kp_tls_open(&t, "/nonexistent.pem", key_path, NULL,
				     &err), KP_ECONFIG);
	assert_non_null(strstr(err.msg, "tls_cert /nonexistent.pem"));
	assert_int_equal(kp_tls_open(&t, cert_path, cert_path, NULL, &err),
			 KP_ECONFIG);
	assert_non_null(strstr(err.msg, "tls_key"));
	assert_int_equal(kp_tls_open(&t, cert_path, key_path, "/nonexistent",
				     &err), KP_ECONFIG);
	assert_non_null(strstr(err.msg, "tls_client_ca /nonexistent"));
	assert_null(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_handshake_and_data),
		cmocka_unit_test(test_garbage_is_an_error),
		cmocka_unit_test(test_bad_files),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);

	unlink(cert_path);
	unlink(key_path);
	return rc;
}
