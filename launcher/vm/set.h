/* SPDX-License-Identifier: GPL-2.0-or-later */
/* kvm-launch --set NAME DISK SETTING...: live changes to a running VM over
 * its query monitor.
 *
 *   cache=none|writeback|unsafe   blockdev-reopen of the disk's nodes with
 *                                 their full options, only cache.direct and
 *                                 cache.no-flush changed; verified with
 *                                 query-block and /proc/PID/fdinfo (O_DIRECT)
 *   bps= bps_rd= bps_wr= iops= iops_rd= iops_wr= (and *_max, *_max_length,
 *   iops_size=, group=)           block_set_io_throttle, other values kept
 *
 * DISK is the device id, the node name or the image path.  Values take an
 * optional K/M/G/T suffix (powers of 1024).  Everything is checked before
 * anything changes; a refusal changes nothing. */
#ifndef KL_LAUNCHER_SET_H
#define KL_LAUNCHER_SET_H

#include <stdbool.h>
#include <json-c/json.h>
#include "policy/types.h"

/* argv = NAME DISK SETTING...  Returns the exit code (0, or 1 with a
 * "kvm-launch:" message on stderr). */
int kl_set_main(const char *state_dir, int argc, char **argv, bool force);

/* ---- Shared with the agent and --status ---- */

/* The device id inside a qdev path ("/machine/peripheral/ID/virtio-backend"
 * -> "ID"); the string itself when it is not such a path.  Caller frees. */
char *kl_qdev_id(const char *qdev);
/* The entry of a query-block or query-blockstats list that is the state
 * disk `disk` (matched by node name, then device id, then drive name).
 * Borrowed from list; NULL if none. */
json_object *kl_block_find(json_object *list, json_object *disk);
/* The cache flags QEMU reports in a query-block entry's "inserted" object
 * (QEMU's defaults for any it leaves out).  Returns false, with the
 * defaults, when ins has no "cache" object. */
bool kl_inserted_cache(json_object *ins, struct kl_cache_flags *out);
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

#endif
