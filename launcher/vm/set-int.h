/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Inside --set: planning the blockdev-reopen of a cache change
 * (set-reopen.c), used by set.c. */
#ifndef KL_LAUNCHER_SET_INT_H
#define KL_LAUNCHER_SET_INT_H

#include <json-c/json.h>
#include "common/error.h"
#include "policy/types.h"

struct reopen_plan {
	json_object *options;         /* array for blockdev-reopen (caller puts) */
	char *image;                  /* storage file to check in /proc/PID/fdinfo (caller frees) */
};

/* The nodes of a -blockdev disk whose top node is `top`, from the recorded
 * argv (a JSON array of strings), with cache flags f.  -1 with err when a
 * node is not defined by a -blockdev argument. */
int kl_set_plan_blockdev(json_object *argv, const char *top, struct kl_cache_flags f, struct reopen_plan *p,
			 struct kl_error *err);
/* The format node of a -drive disk with its storage node inline, one entry
 * (its query-block entry `block`; named_nodes: query-named-block-nodes, or
 * NULL), with cache flags f.  -1 with err when the -drive has no node-name= and file.node-name=,
 * which blockdev-reopen needs. */
int kl_set_plan_drive(json_object *argv, json_object *block, json_object *named_nodes, struct kl_cache_flags f,
		      struct reopen_plan *p, struct kl_error *err);
/* The recorded argv plus, as -blockdev arguments, the nodes the monitor
 * relay saw added while the VM runs (state "runtime_blockdevs").  New
 * reference. */
json_object *kl_set_blockdev_argv(json_object *state);
/* node-name -> {"cache": {"direct","no-flush"}, "aio"} for every node of
 * every -blockdev disk of the state entry, as its disk runs now (the
 * entry's cache mode; aio as the node was defined).  New reference. */
json_object *kl_set_node_settings(json_object *state);

#endif
