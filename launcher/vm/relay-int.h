/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Inside the relay process: the policy hook (relay-hook.c) and the runtime
 * disks it records (relay-disks.c). */
#ifndef KL_LAUNCHER_RELAY_INT_H
#define KL_LAUNCHER_RELAY_INT_H

#include <stdbool.h>
#include <sys/types.h>
#include <json-c/json.h>

/* How long probing and deciding one blockdev-add may take. */
#define KL_RELAY_HOOK_DEADLINE_MS 2000

struct kl_relay_ctx {
	const char *state_file;   /* "" when none */
	const char *policy_path;  /* "" = built-in rules */
	const char *qemu;
	const char *cache_dir;    /* "" = none */
	const char *vm_name;      /* may be NULL */
	pid_t qemu_pid;
	unsigned long long qemu_ticks;
	/* node-name -> what was decided: {"cache":{"direct","no-flush"}, "aio",
	 * "file" (the child node it references), "disk" (the state entry)} */
	json_object *nodes;
	bool no_decide;           /* fuzzing: never fork a decision child */
	json_object *jobs;        /* block jobs that move an active layer (relay-disks.c; made on first use) */
};

/* The qmp_relay_hooks.rewrite of the relay: blockdev-add and
 * blockdev-reopen rewritten, the commands that place a node (device_add,
 * blockdev-snapshot, blockdev-mirror, blockdev-del) noted. */
json_object *kl_relay_hook(void *ctx, json_object *msg);

/* Probe and decide one blockdev-add in a child process with a deadline:
 * 0 with *out = {"arguments": rewritten, "disk": state entry, "changed": b},
 * -1 with a one-line reason in why. */
int kl_relay_decide(const struct kl_relay_ctx *c, json_object *args, json_object **out, char *why, size_t whylen);

/* The same for the options of an HMP drive_add (a -drive value): 0 with
 * *out = {"drive": rewritten text, "disk": state entry, "changed": b}. */
int kl_relay_decide_drive(const struct kl_relay_ctx *c, const char *drive, json_object **out, char *why,
			  size_t whylen);

/* human-monitor-command "drive_add ADDR OPTS" (Proxmox VE 8's hot-plug):
 * OPTS through kl_relay_decide_drive, aio/cache rewritten (relay-hmp.c).
 * NULL (forward as sent) for anything else or on any doubt. */
json_object *kl_relay_hmp(struct kl_relay_ctx *c, json_object *msg, json_object *args);
/* Remember a node decided here (relay-hook.c), for device_add and reopen. */
void kl_relay_remember(struct kl_relay_ctx *c, json_object *node_args, json_object *disk);

/* The state entry's runtime disks (relay-disks.c). */
void kl_relay_note(struct kl_relay_ctx *c, json_object *msg);
/* Record a blockdev-add's arguments as forwarded (state "runtime_blockdevs"). */
void kl_relay_define(struct kl_relay_ctx *c, json_object *args);

/* What relay.c hands relay-ha.c: the process's fixed facts. */
struct kl_relay_proc {
	struct kl_relay_ctx *c;
	const char *qsock;        /* QEMU's private monitor socket */
	int lfd, pidfd, view_fd, logfd;  /* pidfd, view_fd, logfd: -1 if none */
	void (*finish)(struct kl_relay_proc *p);  /* once QEMU exited, in the last active */
	void *finish_arg;
};
/* Run the relay with a standby (relay-ha.c) until QEMU exits.  Returns the
 * exit code, in whichever process is active then. */
int kl_relay_ha_run(struct kl_relay_proc *p);
/* relay.c: a connection to QEMU's private listener, -1 if none came. */
int kl_relay_connect_qemu(const struct kl_relay_proc *p);
bool kl_relay_qemu_gone(const struct kl_relay_proc *p);

#endif
