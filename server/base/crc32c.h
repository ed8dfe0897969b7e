/*
 * crc32c.h - CRC32C (Castagnoli), hardware-accelerated when the CPU can.
 */
#ifndef KP_CRC32C_H
#define KP_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Extends crc (start with 0) over len bytes at buf and returns the result.
 * kp_crc32c(0, "123456789", 9) == 0xe3069283. Thread-safe.
 */
uint32_t kp_crc32c(uint32_t crc, const void *buf, size_t len);

/* The portable table-driven implementation (slicing-by-8); same results. */
uint32_t kp_crc32c_sw(uint32_t crc, const void *buf, size_t len);

/* true when the CPU has SSE4.2, i.e. kp_crc32c_hw may be called. */
bool kp_crc32c_hw_available(void);

/*
 * The SSE4.2 implementation; only when kp_crc32c_hw_available(). On x86-64
 * a buffer of 768 bytes or more runs as three interleaved crc32 chains,
 * joined by tables built on the first such call (under pthread_once, so
 * still thread-safe); the rest, and i386, run as one chain.
 */
uint32_t kp_crc32c_hw(uint32_t crc, const void *buf, size_t len);

#endif
