/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Starting a helper process that outlives its starter (the agent, the
 * monitor relays): fork, new session, fork again (so the helper is nobody's
 * child to wait for), signals back to default, the given fds at 3, 4, ...
 * (a -1 leaves that number closed), every other fd closed, stdio on
 * /dev/null, cwd "/", then execve("/proc/self/exe", argv).  If that exec
 * fails, fallback(arg) runs in the helper and its return is the exit code
 * (NULL: exit 127).
 *
 * Returns 0 once the helper is on its way (the first child exited 0), -1
 * with err otherwise.  Safe in a process whose fd table is shared
 * (CLONE_FILES): the children get their own copy. */
#ifndef KL_LAUNCHER_DETACH_H
#define KL_LAUNCHER_DETACH_H

#include <stddef.h>
#include "common/error.h"

int kl_detach_spawn(const int *fds, size_t nfds, char *const argv[], int (*fallback)(void *arg), void *arg,
		    const char *what, struct kl_error *err);

/* Moves this process's oom_score_adj by delta, clamped to -1000..1000; -1 with
 * errno when /proc refuses (lowering needs CAP_SYS_RESOURCE). */
int kl_detach_oom_adjust(int delta);

/* Right before execve of QEMU, after every helper was started: QEMU raises
 * its own oom_score_adj by one (an unprivileged process may raise it, not
 * lower it), so that the OOM killer never picks a helper before QEMU. */
void kl_detach_oom_rank_qemu(void);

#endif
