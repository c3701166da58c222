/* SPDX-License-Identifier: GPL-2.0-or-later */
/* One launch, as data: what came in, what the probes found, what the policy
 * decided, and what will be exec'd.  Built by kl_launch_prepare(); read by
 * the output modes (--dry-run, --explain), the state writer and the agent. */
#ifndef KL_LAUNCHER_LAUNCH_H
#define KL_LAUNCHER_LAUNCH_H

#include <stdbool.h>
#include <sys/types.h>
#include <json-c/json.h>
#include "common/error.h"
#include "common/strbuf.h"
#include "policy/policy.h"
#include "policy/probe/probe.h"
#include "policy/types.h"
#include "launcher/argv/model.h"

struct kl_state_fds;
struct kl_relay_setup;

struct kl_disk_result {
	const struct kl_disk_given *given;   /* owned by the model */
	struct kl_disk_facts facts;
	struct kl_decision decision;
	bool takes_aio;
	/* What QEMU will run with after the rewrite (kl_decision_aio/_cache:
	 * QEMU's default made explicit); aio UNSET when the disk takes none. */
	enum kl_aio aio;
	enum kl_cache cache;
};

/* The names of what QEMU runs a disk with, as the state file, --dry-run and
 * --explain give them: "io_uring", "none"...; kl_disk_aio is NULL for a disk
 * that takes no aio (network).  An UNSET value reads as QEMU's default. */
const char *kl_disk_aio(const struct kl_disk_result *d);
const char *kl_disk_cache(const struct kl_disk_result *d);

/* The host's facts as the state file and --dry-run --json write them
 * ("io_uring" is the kernel's; null where unknown).  Caller puts. */
json_object *kl_host_facts_json(const struct kl_host_facts *h);

struct kl_launch {
	char *qemu;                       /* the real QEMU path */
	int argc;                         /* QEMU arguments as given (without the QEMU path) */
	char *const *argv;
	struct kl_model *model;           /* NULL when parsing failed (fail-open) */
	size_t ndisks;
	struct kl_disk_result *disks;
	struct kl_host_facts host;
	struct kl_vm_context vm;
	/* Why QEMU gets the command line untouched, with no state and no agent
	 * (libvirt's capability probe, -help, another kvm-launch's work); NULL
	 * for a VM we handle. */
	const char *untouched_why;
	bool failed_open;                 /* our parsing/probing failed: QEMU gets the original arguments */
	bool follow;                      /* -daemonize followed (launcher/follow.h): state for the daemon's PID */
	char *failed_open_why;            /* why, for the state file (NULL otherwise) */
	struct strvec exec_argv;          /* full argv to exec: QEMU path first */
	struct kl_relay_setup *relay;     /* the monitor relay's listeners (vm/relay.h); NULL if none */

	/* Where this VM's state lives (NULL when no state is kept). */
	char *state_dir;
	char *state_file;                 /* STATE_DIR/NAME.json */
	char *agent_socket;               /* QMP monitor held by the agent */
	char *query_socket;               /* QMP monitor for --status / --set */
	char *agent_log;
	struct kl_state_fds *state_fds;   /* the private directory and our listening sockets (vm/state.h) */
	pid_t pid;                        /* our PID = QEMU's PID after exec */
	unsigned long long start_ticks;   /* /proc/PID/stat starttime, to detect PID reuse */
	long long started_unix;           /* wall clock at launch */
};

void kl_launch_free(struct kl_launch *l);

#endif
