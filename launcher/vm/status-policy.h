/* SPDX-License-Identifier: GPL-2.0-or-later */
/* --status against the policy (status-policy.c). */
#ifndef KL_LAUNCHER_STATUS_POLICY_H
#define KL_LAUNCHER_STATUS_POLICY_H

#include <json-c/json.h>

/* Adds cache_policy (what the policy chose at launch: the state disk's
 * policy_cache, else the "from" of its first recorded cache change, else
 * its cache) and settings_match_policy (null while QEMU cannot be asked) to
 * a disk view built from the state disk sd of state. */
void kl_status_disk_policy(json_object *view, json_object *state, json_object *sd);
/* The query-block entries (a list) that are guest disks with a medium but
 * none of the state's disks: added past kvm-launch, so no policy decided
 * them (firmware flash left out).  [{disk, node, path}]; caller puts. */
json_object *kl_status_unmanaged(json_object *blocks, json_object *state_disks);

#endif
