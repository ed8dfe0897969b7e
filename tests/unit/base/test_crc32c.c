/*
 * test_crc32c.c - CRC32C known vectors; hardware and software agree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/crc32c.h"

static void test_known_vectors(void **state)
{
	unsigned char buf[32];

	(void)state;
	assert_int_equal(kp_crc32c(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(kp_crc32c_sw(0, "123456789", 9), 0xe3069283u);
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

static void test_hw_matches_sw(void **state)
{
	unsigned char *buf = malloc(4096 + 16);
	unsigned int seed = 12345;

	(void)state;
	assert_non_null(buf);
	for (size_t i = 0; i < 4096 + 16; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (unsigned char)(seed >> 16);
	}
	if (!kp_crc32c_hw_available()) {
		free(buf);
		skip();
	}
	for (size_t align = 0; align < 16; align++) {
		for (size_t len = 0; len <= 600; len++) {
			assert_int_equal(kp_crc32c_hw(0, buf + align, len),
					 kp_crc32c_sw(0, buf + align, len));
			assert_int_equal(kp_crc32c_hw(0xdeadbeef, buf + align, len),
					 kp_crc32c_sw(0xdeadbeef, buf + align, len));
		}
		assert_int_equal(kp_crc32c_hw(0, buf + align, 4096),
				 kp_crc32c_sw(0, buf + align, 4096));
	}
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_vectors),
		cmocka_unit_test(test_incremental_equals_whole),
		cmocka_unit_test(test_hw_matches_sw),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
