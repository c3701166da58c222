/* SPDX-License-Identifier: GPL-2.0-or-later */
/* KL_ASAN is 1 in an AddressSanitizer build, whichever compiler made it:
 * gcc defines __SANITIZE_ADDRESS__, clang answers __has_feature. */
#ifndef KL_COMMON_SANITIZER_H
#define KL_COMMON_SANITIZER_H

#if defined(__SANITIZE_ADDRESS__)
#define KL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KL_ASAN 1
#endif
#endif
#ifndef KL_ASAN
#define KL_ASAN 0
#endif

#endif
