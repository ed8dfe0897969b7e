/*
 * auth.c - the tokens file, token checks and loopback tests.
 */
#include "auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/fsutil.h"

#define AUTH_MAX_TOKENS 4096
#define AUTH_MAX_TOKEN_LEN 512

static const char *const role_names[] = { "none", "read", "write", "admin" };

const char *kp_role_name(enum kp_role role)
{
	return (unsigned)role < 4 ? role_names[role] : "none";
}

static bool role_parse(const char *s, size_t len, enum kp_role *out)
{
	for (unsigned i = KP_ROLE_READ; i <= KP_ROLE_ADMIN; i++) {
		if (strlen(role_names[i]) == len &&
		    memcmp(role_names[i], s, len) == 0) {
			*out = (enum kp_role)i;
			return true;
		}
	}
	return false;
}

void kp_auth_free(struct kp_auth *a)
{
	for (size_t i = 0; i < a->ntokens; i++) {
		/* Tokens are secrets: not left in freed memory. */
		memset(a->tokens[i].token, 0, a->tokens[i].len);
		kp_free(a->tokens[i].token);
	}
	kp_free(a->tokens);
	a->tokens = NULL;
	a->ntokens = 0;
}

bool kp_auth_enabled(const struct kp_auth *a)
{
	return a->ntokens > 0;
}

/* 1 when a[0..n) equals b[0..n), in time that depends only on n. */
static int same_bytes(const char *a, const char *b, size_t n)
{
	unsigned char diff = 0;

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(a[i] ^ b[i]);
	return diff == 0;
}

enum kp_role kp_auth_check(const struct kp_auth *a, const char *token,
			   size_t len)
{
	enum kp_role role = KP_ROLE_NONE;

	for (size_t i = 0; i < a->ntokens; i++)
		if (a->tokens[i].len == len &&
		    same_bytes(a->tokens[i].token, token, len))
			role = a->tokens[i].role;
	return role;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* Splits line[0..len) into its words (at most 3 counted). */
static int words(const char *line, size_t len, const char **w, size_t *wl)
{
	int n = 0;
	size_t i = 0;

	while (i < len) {
		size_t start;

		while (i < len && is_space(line[i]))
			i++;
		if (i >= len || line[i] == '#')
			break;
		start = i;
		while (i < len && !is_space(line[i]) && line[i] != '#')
			i++;
		if (n < 3) {
			w[n] = line + start;
			wl[n] = i - start;
		}
		n++;
	}
	return n;
}

static int add_token(struct kp_auth *a, const char *tok, size_t len,
		     enum kp_role role)
{
	struct kp_auth_token *t;

	t = kp_realloc(a->tokens, (a->ntokens + 1) * sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
	a->tokens = t;
	t = &a->tokens[a->ntokens];
	t->token = kp_malloc(len + 1);
	if (t->token == NULL)
		return -ENOMEM;
	memcpy(t->token, tok, len);
	t->token[len] = '\0';
	t->len = len;
	t->role = role;
	a->ntokens++;
	return 0;
}

/* Checks one token's bytes: printable ASCII, bounded, not yet seen. */
static int check_token(const struct kp_auth *a, const char *path,
		       unsigned line, const char *tok, size_t len,
		       struct kp_error *err)
{
	if (len > AUTH_MAX_TOKEN_LEN)
		return kp_error_set(err, KP_ECONFIG,
				    "%s:%u: a token is at most %d bytes", path,
				    line, AUTH_MAX_TOKEN_LEN);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)tok[i] < 0x21 ||
		    (unsigned char)tok[i] > 0x7e)
			return kp_error_set(err, KP_ECONFIG,
					    "%s:%u: a token is printable ASCII without spaces",
					    path, line);
	if (kp_auth_check(a, tok, len) != KP_ROLE_NONE)
		return kp_error_set(err, KP_ECONFIG,
				    "%s:%u: this token is already on an earlier line",
				    path, line);
	if (a->ntokens >= AUTH_MAX_TOKENS)
		return kp_error_set(err, KP_ECONFIG, "%s: more than %d tokens",
				    path, AUTH_MAX_TOKENS);
	return 0;
}

static int parse_lines(struct kp_auth *a, const char *path, const char *text,
		       size_t len, struct kp_error *err)
{
	unsigned line = 0;
	size_t at = 0;

	while (at < len) {
		const char *nl = memchr(text + at, '\n', len - at);
		size_t end = nl != NULL ? (size_t)(nl - text) : len;
		const char *w[3];
		size_t wl[3];
		enum kp_role role;
		int n, rc;

		line++;
		n = words(text + at, end - at, w, wl);
		at = end + 1;
		if (n == 0)
			continue;
		if (n != 2)
			return kp_error_set(err, KP_ECONFIG,
					    "%s:%u: expected 'TOKEN ROLE' (role read, write or admin)",
					    path, line);
		if (!role_parse(w[1], wl[1], &role))
			return kp_error_set(err, KP_ECONFIG,
					    "%s:%u: the role is read, write or admin",
					    path, line);
		rc = check_token(a, path, line, w[0], wl[0], err);
		if (rc == 0)
			rc = add_token(a, w[0], wl[0], role);
		if (rc == -ENOMEM)
			return kp_error_set(err, rc, "out of memory");
		if (rc != 0)
			return rc;
	}
	if (a->ntokens == 0)
		return kp_error_set(err, KP_ECONFIG, "%s holds no token", path);
	return 0;
}

int kp_auth_load(struct kp_auth *a, const char *path, struct kp_error *err)
{
	struct kp_buf text;
	struct stat st;
	int rc;

	a->tokens = NULL;
	a->ntokens = 0;
	if (stat(path, &st) != 0)
		return kp_error_set(err, -errno, "auth_tokens_file %s: %s", path,
				    strerror(errno));
	if (!S_ISREG(st.st_mode))
		return kp_error_set(err, KP_ECONFIG,
				    "auth_tokens_file %s is not a regular file",
				    path);
	if ((st.st_mode & 0027) != 0)
		return kp_error_set(err, KP_ECONFIG,
				    "auth_tokens_file %s may be read or written by other users (mode %04o): chmod 600 it",
				    path, (unsigned)(st.st_mode & 07777));
	kp_buf_init(&text);
	rc = kp_file_read(path, &text);
	if (rc != 0)
		rc = kp_error_set(err, rc, "auth_tokens_file %s: %s", path,
				  strerror(-rc));
	else
		rc = parse_lines(a, path, text.data, text.len, err);
	memset(text.data, 0, text.len);
	kp_buf_destroy(&text);
	if (rc != 0)
		kp_auth_free(a);
	return rc;
}

static bool v4_loopback(const struct in_addr *a)
{
	return (ntohl(a->s_addr) >> 24) == 127;
}

static bool v6_loopback(const struct in6_addr *a)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0,
						  0, 0xff, 0xff };

	if (IN6_IS_ADDR_LOOPBACK(a))
		return true;
	return memcmp(a->s6_addr, mapped, 12) == 0 && a->s6_addr[12] == 127;
}

bool kp_addr_is_loopback(const struct sockaddr *addr)
{
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	sa_family_t family;

	/* Copied out: addr may point at storage of another sockaddr type. */
	memcpy(&family, (const char *)addr + offsetof(struct sockaddr, sa_family),
	       sizeof(family));
	if (family == AF_INET) {
		memcpy(&in, addr, sizeof(in));
		return v4_loopback(&in.sin_addr);
	}
	if (family == AF_INET6) {
		memcpy(&in6, addr, sizeof(in6));
		return v6_loopback(&in6.sin6_addr);
	}
	return false;
}

bool kp_host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return v4_loopback(&a4);
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return v6_loopback(&a6);
	return false;
}
