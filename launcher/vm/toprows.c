/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/vm/toprows.h"

#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/xalloc.h"
#include "launcher/vm/state.h"

static char *dup_or(json_object *o, const char *key, const char *dflt)
{
	const char *s = kl_json_str(o, key);
	return xstrdup(s && *s ? s : dflt);
}

static const char *disk_key(json_object *d)
{
	const char *id = kl_json_str(d, "id");
	return id ? id : kl_json_str(d, "node");
}

/* The same disk of the same VM (name and PID) in another document. */
static json_object *find_stats(json_object *doc, const char *vm, long long pid, const char *disk)
{
	json_object *vms = kl_json_get(doc, "vms", json_type_array);
	for (size_t i = 0; disk && vms && i < json_object_array_length(vms); i++) {
		json_object *v = json_object_array_get_idx(vms, i);
		const char *name = kl_json_str(v, "name");
		if (!name || strcmp(name, vm) != 0 || kl_json_int(v, "pid", 0) != pid)
			continue;
		json_object *disks = kl_json_get(v, "disks", json_type_array);
		for (size_t k = 0; disks && k < json_object_array_length(disks); k++) {
			json_object *d = json_object_array_get_idx(disks, k);
			const char *key = disk_key(d);
			if (key && strcmp(key, disk) == 0)
				return kl_json_get(d, "stats", json_type_object);
		}
	}
	return NULL;
}

static void rates(struct kl_top_row *r, json_object *old, json_object *now, double dt)
{
	long long drd = kl_json_int(now, "rd_operations", 0) - kl_json_int(old, "rd_operations", 0);
	long long dwr = kl_json_int(now, "wr_operations", 0) - kl_json_int(old, "wr_operations", 0);
	long long dbytes = kl_json_int(now, "rd_bytes", 0) + kl_json_int(now, "wr_bytes", 0) -
			   kl_json_int(old, "rd_bytes", 0) - kl_json_int(old, "wr_bytes", 0);
	long long dns = kl_json_int(now, "rd_total_time_ns", 0) + kl_json_int(now, "wr_total_time_ns", 0) -
			kl_json_int(old, "rd_total_time_ns", 0) - kl_json_int(old, "wr_total_time_ns", 0);
	if (dt <= 0 || drd < 0 || dwr < 0 || dbytes < 0 || dns < 0)
		return; /* counters went back: a new QEMU under the same name and PID */
	r->have_rate = true;
	r->rd_iops = (double)drd / dt;
	r->wr_iops = (double)dwr / dt;
	r->iops = r->rd_iops + r->wr_iops;
	r->mbps = (double)dbytes / dt / 1e6;
	r->lat_ms = drd + dwr > 0 ? (double)dns / (double)(drd + dwr) / 1e6 : -1;
}

void kl_top_rows(json_object *prev, json_object *cur, double dt, struct kl_top_row **rows, size_t *n)
{
	json_object *vms = kl_json_get(cur, "vms", json_type_array);
	size_t cap = 0, len = 0;
	struct kl_top_row *out = NULL;

	for (size_t i = 0; vms && i < json_object_array_length(vms); i++) {
		json_object *v = json_object_array_get_idx(vms, i);
		json_object *disks = kl_json_get(v, "disks", json_type_array);
		for (size_t k = 0; disks && k < json_object_array_length(disks); k++) {
			json_object *d = json_object_array_get_idx(disks, k);
			json_object *st = kl_json_get(d, "stats", json_type_object);
			if (len == cap) {
				cap = cap ? cap * 2 : 16;
				out = xrealloc(out, cap * sizeof *out);
			}
			struct kl_top_row *r = &out[len++];
			memset(r, 0, sizeof *r);
			r->vm = dup_or(v, "name", "?");
			r->pid = kl_json_int(v, "pid", 0);
			r->state = dup_or(v, "state", "?");
			r->disk = xstrdup(disk_key(d) ? disk_key(d) : "?");
			r->aio = dup_or(d, "aio", "-");
			r->cache = dup_or(d, "cache", "-");
			r->rule = dup_or(d, "rule", "-");
			r->path = dup_or(d, "path", "-");
			r->lat_ms = -1;
			r->ops_total = kl_json_int(st, "rd_operations", 0) + kl_json_int(st, "wr_operations", 0);
			json_object *old = prev ? find_stats(prev, r->vm, r->pid, disk_key(d)) : NULL;
			if (st && old)
				rates(r, old, st, dt);
		}
	}
	*rows = out;
	*n = len;
}

void kl_top_rows_free(struct kl_top_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(rows[i].vm);
		free(rows[i].disk);
		free(rows[i].state);
		free(rows[i].aio);
		free(rows[i].cache);
		free(rows[i].rule);
		free(rows[i].path);
	}
	free(rows);
}

static enum kl_top_sort sort_key;
static bool sort_reverse;

static int by_name(const struct kl_top_row *a, const struct kl_top_row *b)
{
	int c = strcmp(a->vm, b->vm);
	if (c == 0)
		c = a->pid < b->pid ? -1 : a->pid > b->pid;
	return c ? c : strcmp(a->disk, b->disk);
}

static int cmp_rows(const void *pa, const void *pb)
{
	const struct kl_top_row *a = pa, *b = pb;
	if (sort_key != KL_TOP_SORT_NAME) {
		/* Rows without a figure stay last either way. */
		double va = sort_key == KL_TOP_SORT_IOPS ? a->iops : sort_key == KL_TOP_SORT_MBPS ? a->mbps : a->lat_ms;
		double vb = sort_key == KL_TOP_SORT_IOPS ? b->iops : sort_key == KL_TOP_SORT_MBPS ? b->mbps : b->lat_ms;
		bool ha = a->have_rate && va >= 0, hb = b->have_rate && vb >= 0;
		if (ha != hb)
			return ha ? -1 : 1;
		if (ha && va != vb)
			return (va > vb ? -1 : 1) * (sort_reverse ? -1 : 1);
		return by_name(a, b);
	}
	return by_name(a, b) * (sort_reverse ? -1 : 1);
}

void kl_top_sort(struct kl_top_row *rows, size_t n, enum kl_top_sort key, bool reverse)
{
	sort_key = key;
	sort_reverse = reverse;
	if (n > 1)
		qsort(rows, n, sizeof *rows, cmp_rows);
}

const char *kl_top_sort_name(enum kl_top_sort key)
{
	static const char *const names[] = { "IOPS", "MB/s", "latency", "name" };
	return names[key];
}
