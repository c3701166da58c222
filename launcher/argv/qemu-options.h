/* SPDX-License-Identifier: GPL-2.0-or-later */
/* QEMU's command-line options and which take an argument: what lets the
 * argv model walk a command line without misreading a value as an option. */
#ifndef KL_LAUNCHER_QEMU_OPTIONS_H
#define KL_LAUNCHER_QEMU_OPTIONS_H

#include <stdbool.h>

/* name without its leading dashes.  Returns the option's name (static
 * storage) and sets *has_arg; NULL when QEMU has no such option. */
const char *kl_qemu_option(const char *name, bool *has_arg);

#endif
