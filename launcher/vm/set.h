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

/* argv = NAME DISK SETTING...  Returns the exit code (0, or 1 with a
 * "kvm-launch:" message on stderr). */
int kl_set_main(const char *state_dir, int argc, char **argv, bool force);

#endif
