/* SPDX-License-Identifier: GPL-2.0-or-later */
/* kvm-launch --calibrate PATH: measure, print, store. */
#ifndef KL_LAUNCHER_CALIBRATE_MODE_H
#define KL_LAUNCHER_CALIBRATE_MODE_H

#include "launcher/options.h"

/* Returns the exit code. cache_dir: where calibrations are stored. */
int kl_calibrate_main(const struct kl_options *o, const char *cache_dir);

#endif
