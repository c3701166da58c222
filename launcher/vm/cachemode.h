/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The cache mode of a running disk, as --set and --status judge it.
 *
 * A mode is three flags (DESIGN.md section 2).  Two are options of the block
 * nodes, cache.direct and cache.no-flush: blockdev-reopen changes them and
 * QEMU reports them per node (query-named-block-nodes; query-block's
 * "inserted" shows the top node's).  The third, the write cache the guest
 * sees, is configured at start (the device's write-cache, -drive's
 * cache.writeback) but lives in the BlockBackend, and the guest switches it
 * itself: a virtio-blk driver that negotiates no flush (SeaBIOS while it
 * runs, old guests) or "write through" written to
 * /sys/block/vdX/queue/write_cache turns it off.  query-block's "writeback"
 * is that state now, not the configuration: the mode is judged from what
 * kvm-launch configured (the state file's "cache", updated by --set) and the
 * node options, and the guest's write cache is shown beside it. */
#ifndef KL_LAUNCHER_CACHEMODE_H
#define KL_LAUNCHER_CACHEMODE_H

#include <stdbool.h>
#include <json-c/json.h>
#include "common/error.h"
#include "common/strbuf.h"
#include "policy/types.h"

struct kl_cache_view {
	struct kl_cache_flags flags; /* configured write cache + the node's direct/no-flush */
	bool configured;             /* the write cache came from the state file (else from QEMU's flag) */
	bool from_qemu;              /* direct/no-flush came from QEMU (else from the state file's mode) */
	enum kl_tri guest_wc;        /* the guest's write cache now (query-block "writeback") */
};

/* The entry of a query-named-block-nodes reply for node, or NULL. */
json_object *kl_named_node(json_object *named, const char *node);

/* The cache view of a state disk (sd) from its query-block entry (block,
 * may be NULL) and the query-named-block-nodes reply (named, may be NULL:
 * then the top node's flags come from query-block's "inserted"). */
void kl_cache_view_of(json_object *sd, json_object *block, json_object *named, struct kl_cache_view *out);

/* The name of the mode of a flag set; "(no-flush without write cache)" for
 * the one flag set that is no mode. */
const char *kl_cache_flags_name(struct kl_cache_flags f);
/* The view's mode name, as kl_cache_flags_name. */
const char *kl_cache_view_mode(const struct kl_cache_view *v);

/* After a blockdev-reopen: every node of options (the array sent, nodes
 * without a node-name skipped) has direct and no-flush as in want, in a fresh
 * query-named-block-nodes reply.  Appends "node=direct/no-flush" words to
 * what; -1 with err naming the first node that differs or is missing. */
int kl_cache_check_nodes(json_object *named, json_object *options, struct kl_cache_flags want, struct strbuf *what,
			 struct kl_error *err);

#endif
