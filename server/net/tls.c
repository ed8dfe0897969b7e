/*
 * tls.c - server-side TLS sessions on memory BIOs; see tls.h.
 */
#include "tls.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "base/alloc.h"

struct kp_tls {
	SSL_CTX *ctx;
};

struct kp_tls_session {
	SSL *ssl;
	BIO *rbio;              /* socket bytes in (owned by ssl) */
	BIO *wbio;              /* records out (owned by ssl) */
	struct kp_buf pending;  /* plaintext sent before the handshake */
};

/* OpenSSL's last error as text (the queue is cleared). */
static const char *ssl_reason(char *buf, size_t cap)
{
	unsigned long e = ERR_get_error();

	ERR_clear_error();
	if (e == 0)
		return "unknown error";
	ERR_error_string_n(e, buf, cap);
	return buf;
}

int kp_tls_open(struct kp_tls **out, const char *cert, const char *key,
		const char *client_ca, struct kp_error *err)
{
	struct kp_tls *t = kp_calloc(1, sizeof(*t));
	char why[256];
	int rc = 0;

	if (t == NULL)
		return kp_error_set(err, -ENOMEM, "out of memory");
	t->ctx = SSL_CTX_new(TLS_server_method());
	if (t->ctx == NULL) {
		kp_free(t);
		return kp_error_set(err, KP_ECONFIG, "TLS: %s",
				    ssl_reason(why, sizeof(why)));
	}
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
				 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_use_certificate_chain_file(t->ctx, cert) != 1)
		rc = kp_error_set(err, KP_ECONFIG, "tls_cert %s: %s", cert,
				  ssl_reason(why, sizeof(why)));
	else if (SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1)
		rc = kp_error_set(err, KP_ECONFIG, "tls_key %s: %s", key,
				  ssl_reason(why, sizeof(why)));
	else if (SSL_CTX_check_private_key(t->ctx) != 1)
		rc = kp_error_set(err, KP_ECONFIG,
				  "tls_key %s does not match tls_cert %s", key,
				  cert);
	if (rc == 0 && client_ca != NULL) {
		STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca);

		if (names == NULL ||
		    SSL_CTX_load_verify_locations(t->ctx, client_ca, NULL) != 1) {
			if (names != NULL)
				sk_X509_NAME_pop_free(names, X509_NAME_free);
			rc = kp_error_set(err, KP_ECONFIG, "tls_client_ca %s: %s",
					  client_ca, ssl_reason(why, sizeof(why)));
		} else {
			SSL_CTX_set_client_CA_list(t->ctx, names);
			SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER |
					   SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		}
	}
	if (rc != 0) {
		kp_tls_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

void kp_tls_free(struct kp_tls *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	kp_free(t);
}

struct kp_tls_session *kp_tls_session_new(struct kp_tls *t)
{
	struct kp_tls_session *s = kp_calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	kp_buf_init(&s->pending);
	s->ssl = SSL_new(t->ctx);
	s->rbio = BIO_new(BIO_s_mem());
	s->wbio = BIO_new(BIO_s_mem());
	if (s->ssl == NULL || s->rbio == NULL || s->wbio == NULL) {
		BIO_free(s->rbio);
		BIO_free(s->wbio);
		SSL_free(s->ssl);
		kp_free(s);
		return NULL;
	}
	SSL_set_bio(s->ssl, s->rbio, s->wbio);
	SSL_set_accept_state(s->ssl);
	return s;
}

void kp_tls_session_free(struct kp_tls_session *s)
{
	if (s == NULL)
		return;
	SSL_free(s->ssl);            /* frees both BIOs */
	kp_buf_destroy(&s->pending);
	kp_free(s);
}

bool kp_tls_session_ready(const struct kp_tls_session *s)
{
	return SSL_is_init_finished(s->ssl);
}

/* Moves every record OpenSSL produced to out. */
static int drain_records(struct kp_tls_session *s, struct kp_buf *out)
{
	size_t pending = BIO_ctrl_pending(s->wbio);

	while (pending > 0) {
		int n;

		if (kp_buf_reserve(out, pending) != 0)
			return -ENOMEM;
		n = BIO_read(s->wbio, out->data + out->len,
			     pending > INT_MAX ? INT_MAX : (int)pending);
		if (n <= 0)
			break;
		out->len += (size_t)n;
		pending = BIO_ctrl_pending(s->wbio);
	}
	return 0;
}

/* Encrypts plain[0..len) into records (the handshake is done). */
static int encrypt(struct kp_tls_session *s, const char *plain, size_t len,
		   struct kp_buf *out, struct kp_error *err)
{
	char why[256];

	while (len > 0) {
		int chunk = len > (1u << 30) ? 1 << 30 : (int)len;
		int n = SSL_write(s->ssl, plain, chunk);

		if (n <= 0)
			return kp_error_set(err, -EPROTO, "TLS write: %s",
					    ssl_reason(why, sizeof(why)));
		plain += n;
		len -= (size_t)n;
		if (drain_records(s, out) != 0)
			return kp_error_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

int kp_tls_session_send(struct kp_tls_session *s, const char *plain,
			size_t len, struct kp_buf *out, struct kp_error *err)
{
	if (!SSL_is_init_finished(s->ssl)) {
		if (kp_buf_append(&s->pending, plain, len) != 0)
			return kp_error_set(err, -ENOMEM, "out of memory");
		return 0;
	}
	return encrypt(s, plain, len, out, err);
}

int kp_tls_session_close(struct kp_tls_session *s, struct kp_buf *out)
{
	if (!SSL_is_init_finished(s->ssl))
		return 0;
	(void)SSL_shutdown(s->ssl);  /* queues close_notify; no reply awaited */
	ERR_clear_error();
	return drain_records(s, out);
}

/* Reads every plaintext byte OpenSSL can give now into plain. */
static int read_plain(struct kp_tls_session *s, struct kp_buf *plain,
		      struct kp_error *err)
{
	char why[256];

	for (;;) {
		int n, e;

		if (kp_buf_reserve(plain, 16384) != 0)
			return kp_error_set(err, -ENOMEM, "out of memory");
		n = SSL_read(s->ssl, plain->data + plain->len,
			     (int)(plain->cap - plain->len > INT_MAX
				   ? INT_MAX : plain->cap - plain->len));
		if (n > 0) {
			plain->len += (size_t)n;
			continue;
		}
		e = SSL_get_error(s->ssl, n);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return 0;
		if (e == SSL_ERROR_ZERO_RETURN)
			return kp_error_set(err, -ECONNRESET,
					    "the client closed the TLS session");
		return kp_error_set(err, -EPROTO, "TLS: %s",
				    ssl_reason(why, sizeof(why)));
	}
}

int kp_tls_session_recv(struct kp_tls_session *s, const char *cipher,
			size_t len, struct kp_buf *plain, struct kp_buf *out,
			struct kp_error *err)
{
	bool was_ready = SSL_is_init_finished(s->ssl);
	int rc;

	while (len > 0) {
		int n = BIO_write(s->rbio, cipher,
				  len > INT_MAX ? INT_MAX : (int)len);

		if (n <= 0)
			return kp_error_set(err, -ENOMEM, "out of memory");
		cipher += n;
		len -= (size_t)n;
	}
	rc = read_plain(s, plain, err);
	if (drain_records(s, out) != 0 && rc == 0)
		rc = kp_error_set(err, -ENOMEM, "out of memory");
	if (rc == 0 && !was_ready && SSL_is_init_finished(s->ssl) &&
	    s->pending.len > 0) {
		rc = encrypt(s, s->pending.data, s->pending.len, out, err);
		kp_buf_destroy(&s->pending);
	}
	return rc;
}
