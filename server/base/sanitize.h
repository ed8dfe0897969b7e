/*
 * sanitize.h - KP_UNDER_ASAN is defined when the build runs under
 * AddressSanitizer (gcc's __SANITIZE_ADDRESS__ or clang's feature test):
 * the few places that measure or limit memory must then allow for the
 * sanitizer's shadow memory and quarantine.
 */
#ifndef KP_SANITIZE_H
#define KP_SANITIZE_H

#if defined(__SANITIZE_ADDRESS__)
#define KP_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KP_UNDER_ASAN 1
#endif
#endif

#endif
