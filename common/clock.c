/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "common/clock.h"

#include <time.h>

int64_t kl_monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

long long kl_monotonic_ms(void)
{
	return (long long)(kl_monotonic_ns() / 1000000);
}

double kl_monotonic_s(void)
{
	return (double)kl_monotonic_ns() / 1e9;
}
