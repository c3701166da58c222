/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Starting a helper process that outlives its starter (the agent, the
 * monitor relays).  A first child shares our memory while we sleep
 * (vfork-like: no copy, no scheduling round trip), takes a new session and
 * starts the helper (so the helper is nobody's child to wait for).  The
 * helper: signals back to default, niceness raised by nice, the given fds
 * at 3, 4, ... (a -1 leaves that number closed), every other fd closed,
 * stdio on /dev/null, cwd "/", then execve("/proc/self/exe", argv).
 *
 * Normally the helper is forked, and if its exec fails, fallback(arg) runs
 * in it and its return is the exit code (NULL: exit 127).  After
 * kl_detach_exec_follows() the helper too shares our memory, on its own
 * stack, until its execve, and we do not wait for that: the start of the
 * VM pays two clone()s per helper, no fork and no exec.  No fallback then.
 *
 * Returns 0 once the helper is on its way, -1 with err otherwise.  Safe in
 * a process whose fd table is shared (CLONE_FILES): the children get their
 * own copy. */
#ifndef KL_LAUNCHER_DETACH_H
#define KL_LAUNCHER_DETACH_H

#include <stdbool.h>
#include <stddef.h>
#include "common/error.h"

struct kl_detach_helper {
	const char *what;       /* for messages: "agent", "relay" */
	char *const *argv;      /* at most 16 */
	const int *fds;         /* at most 8 */
	size_t nfds;
	int nice;
	/* After kl_detach_exec_follows: not even the first child is waited
	 * for here, but in kl_detach_reap; a failure to start is only logged;
	 * and the helper execs only once we have exec'd (QEMU), so that it
	 * competes with QEMU's start, not with ours. */
	bool background;
	int (*fallback)(void *arg);
	void *arg;
};

int kl_detach_spawn(const struct kl_detach_helper *h, struct kl_error *err);

/* This process execs (QEMU) right after starting its helpers:
 * from now on kl_detach_spawn does not wait for their execve.  They share
 * its memory until then and read only a block that kl_detach_spawn fills
 * and never frees (the exec of QEMU ends it). */
void kl_detach_exec_follows(void);

/* Right before that exec: waits for the first children of background
 * helpers (they are done by then) and logs a helper that did not start. */
void kl_detach_reap(void);

/* Moves this process's oom_score_adj by delta, clamped to -1000..1000; -1 with
 * errno when /proc refuses (lowering needs CAP_SYS_RESOURCE). */
int kl_detach_oom_adjust(int delta);

/* Before QEMU's helpers are started (they share the launcher's memory, and
 * so its oom_score_adj, until their exec): QEMU-to-be raises its own
 * oom_score_adj by one (an unprivileged process may raise it, not lower it
 * below where it was), and each helper goes back down by one after its
 * exec, so that the OOM killer never picks a helper before QEMU. */
void kl_detach_oom_rank_qemu(void);

#endif
