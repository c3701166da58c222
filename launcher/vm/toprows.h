/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The rows of `kvm-launch --top`: one per disk of every VM, with the I/O
 * rates between two kl_status_collect() documents.  Pure: no terminal, no
 * I/O; kvm-launch-top (top/) draws them. */
#ifndef KL_LAUNCHER_TOPROWS_H
#define KL_LAUNCHER_TOPROWS_H

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>

struct kl_top_row {
	char *vm, *disk, *state, *aio, *cache, *rule, *path;
	long long pid;
	bool have_rate;          /* false on the first sample, or a counter went back */
	double iops, rd_iops, wr_iops;
	double mbps;             /* MB/s (10^6 bytes), read + write */
	double lat_ms;           /* mean read/write latency over the interval; < 0 when no request */
	long long ops_total;     /* read + write requests since the VM started */
};

enum kl_top_sort { KL_TOP_SORT_IOPS, KL_TOP_SORT_MBPS, KL_TOP_SORT_LAT, KL_TOP_SORT_NAME };

/* Rows for `cur`, rates against `prev` (may be NULL) over dt seconds.
 * *rows is malloc'ed (free with kl_top_rows_free). */
void kl_top_rows(json_object *prev, json_object *cur, double dt, struct kl_top_row **rows, size_t *n);
void kl_top_rows_free(struct kl_top_row *rows, size_t n);
/* Largest first for the figures (rows without a rate last), A to Z for the
 * name; reverse flips it.  Ties keep VM, then disk order. */
void kl_top_sort(struct kl_top_row *rows, size_t n, enum kl_top_sort key, bool reverse);
const char *kl_top_sort_name(enum kl_top_sort key);

#endif
