/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The monotonic clock, for deadlines and durations (never the wall clock,
 * which an administrator or NTP may step).  Named clock.h, not time.h, so
 * that no include can mistake it for <time.h>. */
#ifndef KL_CLOCK_H
#define KL_CLOCK_H

#include <stdint.h>

int64_t kl_monotonic_ns(void);
long long kl_monotonic_ms(void);
/* Seconds, for measured durations. */
double kl_monotonic_s(void);

#endif
