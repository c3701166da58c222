/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Where a VM start's milliseconds go before QEMU's exec: with
 * KVM_LAUNCH_TIMING=1 in the environment, kvm-launch writes one line to
 * stderr right before the exec, each phase in ms since the one before.
 * Without it each mark costs one getenv() at the first call and nothing
 * after. */
#ifndef KL_LAUNCHER_START_TIMING_H
#define KL_LAUNCHER_START_TIMING_H

/* Marks the end of a phase; name: a static string. */
void kl_start_mark(const char *phase);

/* Writes the line (if asked for). */
void kl_start_report(void);

#endif
