/*
 * test_crc32c.c - CRC32C known vectors; hardware and software agree at
 * every length, alignment and split, including the three-chain rounds of
 * the hardware path and the first use of its tables from several threads.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/crc32c.h"

/* The hardware path's rounds: 3 x 8 KiB, then 3 x 256 B, then one chain. */
#define LONG_ROUND (3 * 8192)
#define SHORT_ROUND (3 * 256)
#define MAX_LEN (3u << 20)
#define THREADS 4

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng_next(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* MAX_LEN + 16 random bytes; the caller frees. */
static unsigned char *random_buf(void)
{
	unsigned char *buf = malloc(MAX_LEN + 16);

	assert_non_null(buf);
	for (size_t i = 0; i < MAX_LEN + 16; i++)
		buf[i] = (unsigned char)(rng_next() >> 56);
	return buf;
}

/* hw and sw agree on buf[0..len) from the seeds 0 and 0xdeadbeef. */
static void check_len(const unsigned char *buf, size_t len)
{
	assert_int_equal(kp_crc32c_hw(0, buf, len), kp_crc32c_sw(0, buf, len));
	assert_int_equal(kp_crc32c_hw(0xdeadbeef, buf, len),
			 kp_crc32c_sw(0xdeadbeef, buf, len));
}

struct first_use {
	const unsigned char *buf; /* borrowed: the shared input */
	uint32_t crc;             /* out: kp_crc32c_hw of the whole input */
};

static void *first_use_run(void *arg)
{
	struct first_use *job = arg;

	job->crc = kp_crc32c_hw(0, job->buf, MAX_LEN);
	return NULL;
}

/* Runs first: the tables of the three-chain rounds are built by this test. */
static void test_first_use_from_threads(void **state)
{
	unsigned char *buf;
	pthread_t t[THREADS];
	struct first_use job[THREADS];
	uint32_t want;

	(void)state;
	if (!kp_crc32c_hw_available())
		skip();
	buf = random_buf();
	for (int i = 0; i < THREADS; i++) {
		job[i].buf = buf;
		assert_int_equal(pthread_create(&t[i], NULL, first_use_run, &job[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	want = kp_crc32c_sw(0, buf, MAX_LEN);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(job[i].crc, want);
	free(buf);
}

static void test_known_vectors(void **state)
{
	unsigned char buf[32];

	(void)state;
	assert_int_equal(kp_crc32c(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(kp_crc32c_sw(0, "123456789", 9), 0xe3069283u);
	if (kp_crc32c_hw_available())
		assert_int_equal(kp_crc32c_hw(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(kp_crc32c(0, "", 0), 0);
	/* RFC 3720 (iSCSI) B.4 test vectors. */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(kp_crc32c(0, buf, 32), 0x8a9136aau);
	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(kp_crc32c(0, buf, 32), 0x62a8ab43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (unsigned char)i;
	assert_int_equal(kp_crc32c(0, buf, 32), 0x46dd794eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (unsigned char)(31 - i);
	assert_int_equal(kp_crc32c(0, buf, 32), 0x113fdb5cu);
}

static void test_long_zeros(void **state)
{
	unsigned char *buf = calloc(1, MAX_LEN);

	(void)state;
	assert_non_null(buf);
	/* The zeros are the case the joining tables are made of. */
	for (size_t len = SHORT_ROUND; len <= MAX_LEN; len = len * 3 + 8)
		assert_int_equal(kp_crc32c(0, buf, len), kp_crc32c_sw(0, buf, len));
	memset(buf, 0xff, MAX_LEN);
	assert_int_equal(kp_crc32c(0, buf, MAX_LEN), kp_crc32c_sw(0, buf, MAX_LEN));
	free(buf);
}

static void test_incremental_equals_whole(void **state)
{
	const char *text = "The quick brown fox jumps over the lazy dog";
	size_t len = strlen(text);
	uint32_t whole = kp_crc32c(0, text, len);

	(void)state;
	for (size_t cut = 0; cut <= len; cut++) {
		uint32_t c = kp_crc32c(0, text, cut);

		assert_int_equal(kp_crc32c(c, text + cut, len - cut), whole);
		c = kp_crc32c_sw(0, text, cut);
		assert_int_equal(kp_crc32c_sw(c, text + cut, len - cut), whole);
	}
}

static void test_hw_matches_sw_short(void **state)
{
	unsigned char *buf = random_buf();

	(void)state;
	if (!kp_crc32c_hw_available()) {
		free(buf);
		skip();
	}
	for (size_t align = 0; align < 16; align++)
		for (size_t len = 0; len <= 4096; len++)
			check_len(buf + align, len);
	free(buf);
}

static void test_hw_matches_sw_long(void **state)
{
	static const long near[] = { -769, -768, -767, -9, -8, -1, 0, 1, 7, 8, 767, 768, 769 };
	unsigned char *buf = random_buf();
	size_t lens[160];
	size_t n = 0;

	(void)state;
	if (!kp_crc32c_hw_available()) {
		free(buf);
		skip();
	}
	for (size_t i = 0; i < sizeof(near) / sizeof(near[0]); i++) {
		lens[n++] = (size_t)((long)LONG_ROUND + near[i]);
		lens[n++] = (size_t)((long)(2 * LONG_ROUND + 5 * SHORT_ROUND) + near[i]);
		lens[n++] = (size_t)((long)(1u << 20) + near[i]);
	}
	lens[n++] = 2 * LONG_ROUND - 1;
	lens[n++] = 40 * LONG_ROUND + 31 * SHORT_ROUND / 3;
	lens[n++] = MAX_LEN - 1;
	lens[n++] = MAX_LEN;
	while (n < 80)
		lens[n++] = 4097 + (size_t)(rng_next() % (MAX_LEN - 4097));
	for (size_t align = 0; align < 16; align++)
		for (size_t i = 0; i < n; i++)
			check_len(buf + align, lens[i]);
	free(buf);
}

static void test_hw_chained_equals_whole(void **state)
{
	unsigned char *buf = random_buf();

	(void)state;
	if (!kp_crc32c_hw_available()) {
		free(buf);
		skip();
	}
	for (int i = 0; i < 400; i++) {
		size_t align = (size_t)(rng_next() % 16);
		size_t len = (size_t)(rng_next() % (i < 200 ? 70000 : MAX_LEN + 1));
		size_t cut = len == 0 ? 0 : (size_t)(rng_next() % (len + 1));
		const unsigned char *p = buf + align;
		uint32_t whole = kp_crc32c_sw(0, p, len);
		uint32_t c = kp_crc32c_hw(0, p, cut);

		assert_int_equal(kp_crc32c_hw(c, p + cut, len - cut), whole);
		assert_int_equal(kp_crc32c_hw(0, p, len), whole);
	}
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_first_use_from_threads),
		cmocka_unit_test(test_known_vectors),
		cmocka_unit_test(test_long_zeros),
		cmocka_unit_test(test_incremental_equals_whole),
		cmocka_unit_test(test_hw_matches_sw_short),
		cmocka_unit_test(test_hw_matches_sw_long),
		cmocka_unit_test(test_hw_chained_equals_whole),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
