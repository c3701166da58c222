/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Becoming QEMU: the exec itself, the self-exec check, and the guard that
 * makes kvm-launch fail open even if it crashes or hangs. */
#ifndef KL_LAUNCHER_EXEC_H
#define KL_LAUNCHER_EXEC_H

#include <stdbool.h>
#include "common/error.h"

/* True if path is this very binary (a diversion pointing back at us). */
bool kl_exec_is_self(const char *path);

/* Until disarmed: a crash (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT) or
 * timeout_s seconds without finishing execs original_argv (QEMU path first)
 * instead, or exits 1 when refuse is set.  original_argv must stay valid. */
void kl_exec_guard_arm(char *const *original_argv, bool refuse, unsigned timeout_s);
/* What an armed guard does, once more is known (the policy read): the timer
 * keeps running. */
void kl_exec_guard_update(char *const *original_argv, bool refuse);
void kl_exec_guard_disarm(void);

/* execve() argv[0] with argv and our environment.  Returns only on failure. */
int kl_exec_qemu(char *const *argv, struct kl_error *err);

#endif
