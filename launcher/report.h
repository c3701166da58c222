/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What --dry-run and --explain print. */
#ifndef KL_LAUNCHER_REPORT_H
#define KL_LAUNCHER_REPORT_H

#include <stdio.h>
#include <json-c/json.h>
#include "launcher/launch.h"

/* {"qemu", "argv", "disks": [...], "host": {...}}; caller puts it. */
json_object *kl_report_json(const struct kl_launch *l);
/* One argument per line, the QEMU path first. */
void kl_report_argv(const struct kl_launch *l, FILE *f);
/* A table a person reads: disk, backend, given, used, rule, then reasons. */
void kl_report_explain(const struct kl_launch *l, FILE *f);

/* The display forms of one disk's effective settings ("-" when not applicable). */
const char *kl_report_aio(const struct kl_disk_result *d);
const char *kl_report_cache(const struct kl_disk_result *d);

#endif
