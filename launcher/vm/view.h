/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Reaching a running VM from --status and --set, and the agent's read-only
 * view for everyone else in group kvm.
 *
 * Every connection is made to a name derived from the entry's stem in its
 * trusted directory, non-blocking with a deadline, and the peer is checked
 * with SO_PEERCRED: the listening sockets were bound by the launcher, whose
 * PID became QEMU's, so the peer must be the entry's PID and owner.
 *
 * STEM.view.sock (0660): the agent accepts, runs a fixed allow-list of
 * read-only queries (query-status, query-block, query-blockstats) on its own
 * monitor connection with a deadline, writes one JSON object
 * {"query-status":..., "query-block":..., "query-blockstats":...} (or
 * {"error":"..."}) and closes.  It reads nothing from the client. */
#ifndef KL_LAUNCHER_VIEW_H
#define KL_LAUNCHER_VIEW_H

#include <sys/types.h>
#include <json-c/json.h>
#include "common/error.h"
#include "qmp/qmp.h"
#include "launcher/vm/state.h"
#include "launcher/vm/statedir.h"

/* Largest view answer a client reads. */
#define KL_VIEW_MAX_BYTES (8 * 1024 * 1024)
/* How long the agent gives one view client (queries and writing). */
#define KL_VIEW_SERVE_MS 2000

/* Connect to DIR/NAME within timeout_ms; the peer must be pid (0: any) and
 * uid.  Returns the connected fd (close-on-exec), -1 with err. */
int kl_vm_connect_at(const struct kl_statedir *d, const char *name, pid_t pid, uid_t uid, int timeout_ms,
		     struct kl_error *err);
/* A QMP session on the entry's query monitor (STEM.qmp.sock): only for root
 * and the entry's owner (kl_state_may_drive). */
int kl_vm_qmp(const struct kl_state_entry *e, int timeout_ms, struct qmp_client **out, struct kl_error *err);
/* The live answers --status shows: over QMP for root and the owner, else
 * from the agent's view socket.  Each out may be NULL on success when QEMU
 * gave nothing; all are NULL on failure (err says why). */
int kl_vm_live(const struct kl_state_entry *e, int timeout_ms, json_object **status, json_object **blocks,
	       json_object **stats, struct kl_error *err);

/* Agent side: accept and answer the connections waiting on listen_fd (at
 * most a few per call), with qmp (NULL: answer with an error). */
void kl_view_serve(int listen_fd, struct qmp_client *qmp);

#endif
