/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "common/hash.h"

uint64_t kl_fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}
