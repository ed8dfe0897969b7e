/*
 * alloc.c - malloc wrappers with a test hook to fail the Nth allocation.
 */
#include "alloc.h"

#include <stdlib.h>
#include <string.h>

/* Allocations left before failures start; negative means never fail. */
static long fail_countdown = -1;

static int should_fail(void)
{
	if (fail_countdown < 0)
		return 0;
	if (fail_countdown == 0)
		return 1;
	fail_countdown--;
	return 0;
}

void *kp_malloc(size_t size)
{
	if (should_fail())
		return NULL;
	return malloc(size);
}

void *kp_calloc(size_t n, size_t size)
{
	if (should_fail())
		return NULL;
	return calloc(n, size);
}

void *kp_realloc(void *ptr, size_t size)
{
	if (should_fail())
		return NULL;
	return realloc(ptr, size);
}

void kp_free(void *ptr)
{
	free(ptr);
}

char *kp_strndup(const char *s, size_t len)
{
	char *copy = kp_malloc(len + 1);

	if (copy == NULL)
		return NULL;
	memcpy(copy, s, len);
	copy[len] = '\0';
	return copy;
}

void kp_alloc_fail_after(long n)
{
	fail_countdown = n;
}
