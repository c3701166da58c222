/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What QEMU's query-block (and query-blockstats) say about a disk of the
 * state file: which entry is it, its cache flags, its I/O limits.  Shared by
 * --set, --status and the agent; no I/O here, the callers ask QEMU. */
#ifndef KL_LAUNCHER_VM_BLOCK_H
#define KL_LAUNCHER_VM_BLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>
#include "policy/types.h"

/* The device id inside a qdev path ("/machine/peripheral/ID/virtio-backend"
 * -> "ID"); the string itself when it is not such a path.  Caller frees. */
char *kl_qdev_id(const char *qdev);
/* The entry of a query-block or query-blockstats list that is the state
 * disk `disk` (matched by node name, then device id, then drive name).
 * Borrowed from list; NULL if none. */
json_object *kl_block_find(json_object *list, json_object *disk);
/* block_set_io_throttle arguments for a query-block entry: the current
 * values from its "inserted" overridden by the members of `set` (QMP names:
 * "iops", "bps_max"...; a base value set to 0 also clears its bursts unless
 * they are in `set`), addressed by "id" (the qdev path) or else "device".
 * Caller puts. */
json_object *kl_throttle_args(json_object *block, json_object *set);
/* The non-zero throttle values of a query-block entry (and its group when
 * it is not QEMU's default, the device's own name), as an object; empty when
 * the disk is not throttled.  Caller puts. */
json_object *kl_throttle_current(json_object *block);
/* "iops=100 bps=10485760" for an object of throttle values; "-" if empty.
 * Caller frees. */
char *kl_throttle_text(json_object *throttle);

/* The integer member k of o (a throttle object or "inserted"): its value,
 * 0 when absent or not an integer; *present (if not NULL) says which. */
int64_t kl_throttle_value(json_object *o, const char *k, bool *present);

#endif
