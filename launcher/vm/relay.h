/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The monitor relay: kvm-launch keeps the listening endpoint of each
 * management monitor (libvirt's inherited fd=N, or a path=P it binds
 * itself), gives QEMU a private listener in the VM's state directory
 * (bound umask 077, passed as fd=M), and leaves a relay per monitor that
 * accepts the manager's connections and relays each to a fresh connection
 * to QEMU's private socket (qmp/relay.h), rewriting blockdev-add and
 * blockdev-reopen with the policy (relay-hook.c).  Each relay is an active
 * process and a standby that takes over when it is killed (relay-ha.c).
 *
 * Launch order (main.c, with monitor-relay = on):
 *   kl_relay_setup(l, cfg)   after kl_state_add_monitors: listeners, fork
 *                            the relays, rewrite exec_argv (all or nothing)
 *   kl_relay_pass_fds(l)     right before execve: QEMU's listeners survive
 *                            it, the manager's do not
 *
 * Each relay is started like the agent (launcher/vm/detach.h) and
 * re-executes this binary as
 *     kvm-launch --relay QEMU_SOCKET STATE_FILE POLICY QEMU CACHE_DIR [PATH]
 * with the manager's listener at fd 3, QEMU's pidfd at fd 4 and the agent's
 * view listener at fd 5 (or nothing there).  PATH, when given, is a manager socket the relay unlinks when
 * QEMU exits (as QEMU would have). */
#ifndef KL_LAUNCHER_RELAY_H
#define KL_LAUNCHER_RELAY_H

#include <stdbool.h>
#include "common/error.h"
#include "launcher/launch.h"

#define KL_RELAY_LISTEN_FD 3
#define KL_RELAY_PIDFD 4
#define KL_RELAY_VIEWFD 5
/* How long a relay waits for QEMU's private socket to take a connection. */
#define KL_RELAY_CONNECT_MS 10000

struct kl_relay_config {
	const char *policy_path;   /* the policy file the launch used ("" = built-in rules) */
	const char *cache_dir;     /* probe cache (may be NULL) */
	bool defer;                /* QEMU daemonizes: start the relays later, with kl_relay_start_deferred */
};

/* What the launch keeps between kl_relay_setup and the exec. */
struct kl_relay_setup;
void kl_relay_setup_free(struct kl_relay_setup *s);

/* Find the management monitors on l->exec_argv, and for each one set up
 * the listeners and start its relay; then rewrite l->exec_argv.  Any
 * failure leaves l->exec_argv and the inherited fds as they were (one
 * warning): the VM then runs without a relay, as without the feature. */
void kl_relay_setup(struct kl_launch *l, const struct kl_relay_config *cfg);
/* Right before execve of QEMU. */
void kl_relay_pass_fds(struct kl_launch *l);

/* With cfg->defer (a -daemonize followed, launcher/follow.h): start the
 * relays for QEMU's daemon, l->pid, once it is known and the state file
 * names it.  The manager's listeners were bound by kl_relay_setup. */
void kl_relay_start_deferred(struct kl_launch *l);
/* In the launching process after QEMU was forked off: close its copies of
 * QEMU's private listeners (QEMU has them). */
void kl_relay_forget_private(struct kl_launch *l);

/* The relay process (hidden first argument --relay).  Returns the exit code. */
int kl_relay_main(int argc, char **argv);

#endif
