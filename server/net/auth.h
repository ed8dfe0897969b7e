/*
 * auth.h - who may do what: bearer tokens, the roles they carry, and the
 * loopback test behind single-user mode.
 *
 * With an auth_tokens_file, a client proves a role by sending one of the
 * file's tokens ({"op":"auth"}); without one, kappad is in single-user
 * mode and every client (on loopback only) is admin. Roles are ordered:
 * each allows everything the ones before it do.
 */
#ifndef KP_AUTH_H
#define KP_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

struct sockaddr;

enum kp_role {
	KP_ROLE_NONE = 0,   /* not authenticated: only "auth" */
	KP_ROLE_READ,       /* fetch, consume, commit, views, describe/list */
	KP_ROLE_WRITE,      /* read + produce */
	KP_ROLE_ADMIN,      /* everything */
};

/* One token of the file and its role. */
struct kp_auth_token {
	char *token;          /* owned */
	size_t len;
	enum kp_role role;
};

/* The tokens of an auth_tokens_file (none: single-user mode). */
struct kp_auth {
	struct kp_auth_token *tokens;  /* owned, ntokens of them */
	size_t ntokens;
};

/*
 * Reads the tokens file at path: lines "TOKEN ROLE" (role read, write or
 * admin; '#' starts a comment; blank lines are skipped). Refuses a file
 * that others may read or anyone but its owner may write, an empty file,
 * a repeated token and a bad line (naming the line, never echoing a
 * token). On success a holds the tokens; on error a is empty.
 */
int kp_auth_load(struct kp_auth *a, const char *path, struct kp_error *err);

/* Frees the tokens of a and leaves it empty. */
void kp_auth_free(struct kp_auth *a);

/* true when a holds tokens (auth mode), false in single-user mode. */
bool kp_auth_enabled(const struct kp_auth *a);

/*
 * The role of token[0..len), or KP_ROLE_NONE when no token of a matches.
 * Compares in time independent of where a candidate first differs.
 */
enum kp_role kp_auth_check(const struct kp_auth *a, const char *token,
			   size_t len);

/* "none", "read", "write" or "admin". */
const char *kp_role_name(enum kp_role role);

/* true when addr is an IPv4 127/8 or the IPv6 ::1 (or v4-mapped 127/8). */
bool kp_addr_is_loopback(const struct sockaddr *addr);

/*
 * true when host (a listen address as configured: "127.0.0.1", "::1",
 * "localhost") only ever reaches this machine; false for "0.0.0.0", "::"
 * and other addresses.
 */
bool kp_host_is_loopback(const char *host);

#endif
