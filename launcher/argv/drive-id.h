/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef KL_LAUNCHER_DRIVE_ID_H
#define KL_LAUNCHER_DRIVE_ID_H

#include <stddef.h>
#include "launcher/argv/drive.h"

/* Sets d->auto_id for each drive without an id, as QEMU names it.
 * default_if: the machine's default interface ("ide" for pc and q35). */
void kl_drive_assign_auto_ids(struct kl_drive **drives, size_t n, const char *default_if);

#endif
