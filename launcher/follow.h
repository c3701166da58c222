/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Following -daemonize: QEMU's daemon is not the process kvm-launch started,
 * so kvm-launch cannot become QEMU in place.  It forks instead: the child
 * execs QEMU (which daemonizes and exits once the VM is initialised), the
 * parent waits for it and ends as plain -daemonize would, with the child's
 * exit status, after QEMU is up.  Startup errors reach the caller's stderr
 * from QEMU itself.
 *
 * The daemon is found by the -pidfile QEMU writes, confirmed by SO_PEERCRED
 * of a connection to the query monitor QEMU's daemon bound itself in the
 * private state directory (kl_state_add_path_monitors): both must name the
 * same process.  Then the state file names it, and the relays and the agent
 * are started for it.  When QEMU fails, nothing of ours is left behind. */
#ifndef KL_LAUNCHER_FOLLOW_H
#define KL_LAUNCHER_FOLLOW_H

#include <stdbool.h>
#include "launcher/launch.h"
#include "launcher/vm/relay.h"

/* A VM we handle that daemonizes with a -pidfile. */
bool kl_follow_wanted(const struct kl_launch *l);

/* Run QEMU and follow it (see above); relay NULL when monitor-relay is off.
 * Returns the exit status for kvm-launch (QEMU's launching process's). */
int kl_follow_run(struct kl_launch *l, const char *state_dir, const struct kl_relay_config *relay);

/* The PID that the pidfile at path holds and SO_PEERCRED of a connection to
 * the socket at sock names, when both agree; -1 with err otherwise. */
pid_t kl_follow_confirm(const char *pidfile, const char *sock, struct kl_error *err);

#endif
