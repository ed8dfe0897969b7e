/*
 * alloc.h - the one allocation wrapper of kappa.
 *
 * Every heap allocation in the core goes through these functions so that
 * tests can make the Nth allocation fail and check the error paths. They
 * behave like their libc namesakes: NULL on failure, kp_free(NULL) is a no-op.
 */
#ifndef KP_ALLOC_H
#define KP_ALLOC_H

#include <stddef.h>

void *kp_malloc(size_t size);
void *kp_calloc(size_t n, size_t size);
void *kp_realloc(void *ptr, size_t size);
void kp_free(void *ptr);

/* Returns a kp_malloc'd copy of the len bytes at s plus a NUL, or NULL. */
char *kp_strndup(const char *s, size_t len);

/*
 * Test hook: after n more successful allocations, every allocation fails
 * until kp_alloc_fail_after(-1) is called. Not thread-safe; tests only.
 */
void kp_alloc_fail_after(long n);

#endif
