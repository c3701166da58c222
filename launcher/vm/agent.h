/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The per-VM agent: a small detached process that holds the VM's agent QMP
 * monitor, applies the live settings the policy decided (I/O throttling),
 * records what it did and notable QEMU events in the state file, and cleans
 * the state entry up when QEMU exits.
 *
 * kl_agent_spawn() is called right before execve() of QEMU, after
 * kl_state_write().  It opens a pidfd of the launcher's own PID (which
 * becomes QEMU's), double-forks (it waits for the intermediate child, so no
 * zombie is left under QEMU), and the grandchild, after setsid(), closing
 * every inherited fd and pointing stdio at /dev/null, re-executes this binary
 * (/proc/self/exe) as
 *
 *     kvm-launch --agent STATEFILE          (the pidfd is fd 3, the view socket fd 4)
 *
 * so that the agent holds nothing of the launcher's memory.  main() routes
 * that hidden option to kl_agent_main().  If the re-exec fails, the agent
 * runs in the forked process instead. */
#ifndef KL_LAUNCHER_AGENT_H
#define KL_LAUNCHER_AGENT_H

#include "common/error.h"
#include "launcher/launch.h"

/* The fd number the agent finds QEMU's pidfd at after the re-exec. */
#define KL_AGENT_PIDFD 3
/* ... and the listening view socket (STEM.view.sock) at fd 4. */
#define KL_AGENT_VIEWFD 4
/* How long the agent waits for QEMU's monitor to answer. */
#define KL_AGENT_CONNECT_TIMEOUT_MS 60000
/* The agent's niceness, added to QEMU's (see kl_agent_run). */
#define KL_AGENT_NICE 10

/* Returns 0 once the agent is on its way (it reports its own problems in
 * l->agent_log), -1 with err if it could not be started.  Does nothing and
 * returns 0 when there is no state file.  Without an agent socket the agent
 * only waits for QEMU's exit and removes the entry. */
int kl_agent_spawn(const struct kl_launch *l, struct kl_error *err);
/* The same for the QEMU with pid qemu and a view listener (-1: none): what
 * a monitor relay uses to start the agent again after it was killed. */
int kl_agent_start(const char *state_file, pid_t qemu, int view_fd, struct kl_error *err);

/* The agent itself (hidden option --agent STATEFILE).  Returns the exit code. */
int kl_agent_main(const char *state_file);

/* The agent's loop on an already-open pidfd (-1: none, poll /proc instead)
 * and view listener (-1: none). */
int kl_agent_run(const char *state_file, int pidfd, int view_fd);

#endif
