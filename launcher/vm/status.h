/* SPDX-License-Identifier: GPL-2.0-or-later */
/* kvm-launch --status [NAME]: every VM launched through kvm-launch (its state
 * file), asked over its own query monitor what it really runs with
 * (query-status, query-block, query-blockstats), each VM bounded by
 * KL_STATUS_TIMEOUT_MS so a hung QEMU shows as "unresponsive" instead of
 * hanging the command.  Output: a table, --json, or --prometheus text.
 *
 * Collecting the facts (status.c) is apart from printing them: the table
 * (status-table.c), JSON and Prometheus (status-prom.c) all print the one
 * document kl_status_collect returns. */
#ifndef KL_LAUNCHER_STATUS_H
#define KL_LAUNCHER_STATUS_H

#include <stdbool.h>
#include <stdio.h>
#include <json-c/json.h>

#define KL_STATUS_TIMEOUT_MS 1000

/* name_filter: NULL for all, else a name or shell pattern (fnmatch) matched
 * against the VM name and the state file's stem.  Returns the exit code:
 * 0, or 1 when the state directory cannot be read or the filter matches no
 * VM. */
int kl_status_main(const char *state_dir, const char *name_filter, bool json, bool prometheus);

/* The pieces, for tests: the {"vms":[...],"host":{...}} document (caller
 * puts) and its two renderings. */
json_object *kl_status_collect(const char *state_dir, const char *name_filter, int timeout_ms);
void kl_status_print_table(json_object *doc, FILE *out);
void kl_status_print_prometheus(json_object *doc, FILE *out);

#endif
