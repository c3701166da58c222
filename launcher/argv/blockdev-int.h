/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Inside the -blockdev model: what blockdev.c (the graph) shares with
 * blockdev-edit.c (the edits). */
#ifndef KL_LAUNCHER_BLOCKDEV_INT_H
#define KL_LAUNCHER_BLOCKDEV_INT_H

#include "launcher/argv/blockdev.h"

/* A cache flag as the node gets it: its own, else inherited from the node
 * it is inline in (QEMU's bdrv_inherited_options), else def. */
bool kl_bd_effective_bool(const struct kl_bdnode *n, const char *path, bool def);

#endif
