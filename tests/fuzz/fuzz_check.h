/*
 * fuzz_check.h - what the fuzz targets share: CHECK(cond), which reports
 * the failed condition with its file and line and aborts, so that
 * libFuzzer keeps the input as a crash.
 */
#ifndef KP_FUZZ_CHECK_H
#define KP_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                        \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                          \
			abort();                                           \
		}                                                          \
	} while (0)

#endif
