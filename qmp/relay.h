/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The monitor relay's transport: one manager connection (libvirt, Proxmox,
 * a script) relayed to one fresh connection to QEMU's monitor.  It knows
 * nothing of policy: a hook may replace a whole client message.
 *
 * Client to QEMU: messages framed whole (qmp/frame.h); each is sent in its
 * own sendmsg together with the fds that came with it, as its original bytes
 * or, when the hook returns a replacement, as that object's JSON text.
 * QEMU to client: byte for byte, in order, nothing held back.  The relay adds
 * no concurrency: whatever order the client sends, QEMU sees. */
#ifndef KL_QMP_RELAY_H
#define KL_QMP_RELAY_H

#include <json-c/json.h>
#include "common/error.h"

struct qmp_relay_hooks {
	/* A whole client message that parsed as a JSON object (borrowed):
	 * return a new object to send instead (the relay puts it), or NULL
	 * to send the bytes as they came.  It runs inside the relay loop:
	 * whatever may crash or block must be isolated by the hook itself. */
	json_object *(*rewrite)(void *ctx, json_object *msg);
	void *ctx;
};

enum qmp_relay_end {
	QMP_RELAY_CLIENT_CLOSED = 0,
	QMP_RELAY_QEMU_CLOSED = 1,
};

/* Bytes queued toward one side before the relay stops reading the other. */
#define QMP_RELAY_HIGH_WATER (8 * 1024 * 1024)
/* How long the relay keeps delivering to one side after the other closed. */
#define QMP_RELAY_DRAIN_MS 5000

/* Relay until one side closes; what was already read from either side is
 * delivered to the other first (within QMP_RELAY_DRAIN_MS).  hooks may be
 * NULL.  Neither fd is closed.  Returns which side ended, or -1 with err on
 * an I/O error. */
int qmp_relay_run(int client_fd, int qemu_fd, const struct qmp_relay_hooks *hooks, struct kl_error *err);

#endif
