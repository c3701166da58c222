/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What the real QEMU binary can do, asked once and cached by the binary's
 * identity (device, inode, size, mtime), so a launch never pays for it twice.
 * The cache is the caller's own (common/cachedir.h): root never reads what
 * another uid wrote. */
#ifndef KL_LAUNCHER_QEMU_CAPS_H
#define KL_LAUNCHER_QEMU_CAPS_H

#include "common/error.h"
#include "policy/types.h"

/* Whether QEMU was built with io_uring (its QAPI schema lists aio value
 * "io_uring").  cache_dir may be NULL (no caching).  On failure *out is
 * KL_TRI_UNKNOWN and err says why. */
int kl_qemu_io_uring(const char *qemu, const char *cache_dir, enum kl_tri *out, struct kl_error *err);

#endif
