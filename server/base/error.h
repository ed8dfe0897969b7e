/*
 * error.h - the one error convention of kappa.
 *
 * Functions that can fail return 0 or a negative code: -errno for the
 * operating system, or one of the KP_E* codes below for everything else.
 * Where a person must be told why, the caller also passes a struct kp_error,
 * whose message buffer is fixed so that the error path never allocates.
 */
#ifndef KP_ERROR_H
#define KP_ERROR_H

#include <stddef.h>

/*
 * Project error codes: X(NAME, value, wire name, default text).
 * Values start far below any -errno so the two never collide. The wire name
 * is what the protocol sends in the "error" field (docs/PROTOCOL.md).
 */
#define KP_ERROR_TABLE(X)                                                     \
	X(KP_EBADFRAME, -10001, "BAD_FRAME", "malformed frame")                 \
	X(KP_EBADMSGPACK, -10002, "BAD_MSGPACK", "malformed msgpack")           \
	X(KP_EBADREQUEST, -10003, "BAD_REQUEST", "bad request")                 \
	X(KP_EUNKNOWNOP, -10004, "UNKNOWN_OP", "unknown operation")             \
	X(KP_ENOTOPIC, -10005, "UNKNOWN_TOPIC", "unknown topic")                \
	X(KP_ENOPARTITION, -10006, "UNKNOWN_PARTITION", "unknown partition")    \
	X(KP_ETOPICEXISTS, -10007, "TOPIC_EXISTS", "topic already exists")      \
	X(KP_EOFFSET, -10008, "OFFSET_OUT_OF_RANGE", "offset out of range")     \
	X(KP_ECORRUPT, -10009, "CORRUPT_BATCH", "batch failed its CRC check")   \
	X(KP_ESTORAGE, -10010, "STORAGE_FAILED", "storage failed")              \
	X(KP_ETOOLARGE, -10011, "TOO_LARGE", "too large")                       \
	X(KP_ESEQUENCE, -10012, "OUT_OF_ORDER_SEQUENCE", "sequence gap")        \
	X(KP_ENOGROUP, -10013, "UNKNOWN_GROUP", "unknown consumer group")       \
	X(KP_ESHUTDOWN, -10014, "SHUTTING_DOWN", "server is shutting down")     \
	X(KP_EINTERNAL, -10015, "INTERNAL", "internal error")                   \
	X(KP_ECONFIG, -10016, "BAD_CONFIG", "bad configuration")                \
	X(KP_ENOTFOUND, -10017, "NOT_FOUND", "not found")                       \
	X(KP_EEXISTS, -10018, "EXISTS", "already exists")                       \
	X(KP_ESTATE, -10019, "BAD_STATE", "not allowed in the current state") \
	X(KP_ESWITCHED, -10020, "TOPIC_SWITCHED",                               \
	  "the logical topic now resolves to another version")                 \
	X(KP_EINUSE, -10021, "TOPIC_IN_USE", "a processor uses the topic")      \
	X(KP_ENOTOWNER, -10022, "NOT_OWNER",                                    \
	  "the topic is not this processor's")                                 \
	X(KP_EBADTOPIC, -10023, "BAD_TOPIC_NAME", "not a valid topic name")   \
	X(KP_EBUSY, -10031, "TOO_MANY_CONNECTIONS",                             \
	  "the server has as many connections as it takes")                    \
	X(KP_EDAMAGED, -10030, "STORE_DAMAGED",                                 \
	  "a view store failed its checks")                                    \
	X(KP_EUNAUTHORIZED, -10032, "UNAUTHORIZED",                             \
	  "authenticate first with a valid token")                             \
	X(KP_EFORBIDDEN, -10033, "FORBIDDEN",                                   \
	  "the token's role does not allow this")

enum kp_error_code {
#define KP_ERROR_ENUM(name, value, wire, text) name = value,
	KP_ERROR_TABLE(KP_ERROR_ENUM)
#undef KP_ERROR_ENUM
};

#define KP_ERROR_MSG_MAX 256

/* An error to report to a person: a code and a formatted message. */
struct kp_error {
	int code;                    /* 0, -errno or a KP_E* code */
	char msg[KP_ERROR_MSG_MAX];  /* one line, no trailing newline */
};

/* Clears err (code 0, empty message). err may be NULL. */
void kp_error_clear(struct kp_error *err);

/*
 * Sets err->code to code and formats the message (one line: control
 * bytes become spaces, since names and processors' errors may hold
 * them); returns code, so that
 * callers can write `return kp_error_set(err, KP_ENOTOPIC, "...")`.
 * err may be NULL, in which case only code is returned.
 */
int kp_error_set(struct kp_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The protocol's wire name for code ("BAD_REQUEST"; "IO_ERROR" for -errno). */
const char *kp_error_name(int code);

/* A static text describing code (strerror for -errno). Never NULL. */
const char *kp_error_text(int code);

#endif
