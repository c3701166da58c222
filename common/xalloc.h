/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Allocation that cannot fail: out of memory aborts with a message. */
#ifndef KL_XALLOC_H
#define KL_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Room for one more element in the array arr that holds n of cap
 * allocated: cap doubles when full (first, when it is 0).  The idiom every
 * growable array here uses, written once. */
#define XGROW(arr, n, cap, first) do { \
	if ((n) == (cap)) { \
		(cap) = (cap) ? (cap) * 2 : (first); \
		(arr) = xrealloc((arr), (cap) * sizeof *(arr)); \
	} \
} while (0)

#endif
