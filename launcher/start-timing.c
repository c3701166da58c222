/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/start-timing.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"

#define MAX_MARKS 16

static struct {
	int enabled; /* 0 unknown, 1 yes, -1 no */
	size_t n;
	const char *phase[MAX_MARKS];
	int64_t ns[MAX_MARKS];
} marks;

void kl_start_mark(const char *phase)
{
	if (!marks.enabled) {
		const char *e = getenv("KVM_LAUNCH_TIMING");
		marks.enabled = e && *e && strcmp(e, "0") != 0 ? 1 : -1;
	}
	if (marks.enabled < 0 || marks.n >= MAX_MARKS)
		return;
	marks.phase[marks.n] = phase;
	marks.ns[marks.n++] = kl_monotonic_ns();
}

void kl_start_report(void)
{
	if (marks.enabled < 0 || marks.n < 2)
		return;
	char line[1024];
	size_t len = 0;
	for (size_t i = 1; i < marks.n && len < sizeof line; i++)
		len += (size_t)snprintf(line + len, sizeof line - len, " %s %.3f", marks.phase[i],
					(double)(marks.ns[i] - marks.ns[i - 1]) / 1e6);
	/* One write: stderr is unbuffered, and libvirt logs it line by line. */
	fprintf(stderr, "kvm-launch: start timing (ms):%s total %.3f\n", line,
		(double)(marks.ns[marks.n - 1] - marks.ns[0]) / 1e6);
}
