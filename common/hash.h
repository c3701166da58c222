/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A string hash for tables and short stable names (not for security). */
#ifndef KL_HASH_H
#define KL_HASH_H

#include <stdint.h>

/* 64-bit FNV-1a of the bytes of s: stable across runs and builds, so it
 * may name files (state socket names depend on it). */
uint64_t kl_fnv1a(const char *s);

#endif
