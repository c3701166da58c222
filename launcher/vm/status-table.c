/* SPDX-License-Identifier: GPL-2.0-or-later */
/* --status as a table: one block a VM, one row a disk, from the document
 * kl_status_collect made. */
#include "launcher/vm/status.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "common/strbuf.h"
#include "common/xalloc.h"
#include "launcher/vm/aiouse.h"
#include "launcher/vm/block.h"

static char *human_bytes(long long b)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)b;
	size_t u = 0;
	while (v >= 1024 && u + 1 < sizeof units / sizeof *units) {
		v /= 1024;
		u++;
	}
	return u == 0 ? xasprintf("%lld B", b) : xasprintf("%.1f %s", v, units[u]);
}

static char *fmt_time(long long t)
{
	char buf[64];
	time_t tt = (time_t)t;
	struct tm tm;
	if (t <= 0 || !localtime_r(&tt, &tm) || !strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm))
		return xstrdup("?");
	return xstrdup(buf);
}

static const char *tri_word(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !v)
		return "unknown";
	return json_object_get_boolean(v) ? "yes" : "no";
}

/* The guest's write cache now: "on", "off", or "-" when QEMU did not say. */
static const char *wc_word(json_object *d)
{
	json_object *v;
	if (!json_object_object_get_ex(d, "guest_write_cache", &v) || !json_object_is_type(v, json_type_boolean))
		return "-";
	return json_object_get_boolean(v) ? "on" : "off";
}

#define NCOLS 17
static const char *const col_names[NCOLS] = {
	"DISK", "NODE", "BACKEND", "FS", "FORMAT", "AIO", "CACHE", "GUEST WC", "RULE", "THROTTLE",
	"RD OPS", "WR OPS", "RD BYTES", "WR BYTES", "FLUSHES", "AVG LAT", "PATH",
};

/* What runs outside the policy: a fail-open start, disks added past kvm-launch. */
static void print_outside_policy(json_object *vm, FILE *out)
{
	if (kl_json_bool(vm, "failed_open", false))
		fprintf(out, "  failed open: %s (QEMU runs the original command line, no policy applied)\n",
			kl_json_str_or(vm, "failed_open_why", "?"));
	json_object *u = kl_json_get(vm, "unmanaged_disks", json_type_array);
	for (size_t i = 0; u && i < json_object_array_length(u); i++) {
		json_object *d = json_object_array_get_idx(u, i);
		fprintf(out, "  disk %s (%s): added while the VM runs, no policy decided it\n",
			kl_json_str_or(d, "disk", "?"), kl_json_str_or(d, "path", kl_json_str_or(d, "node", "?")));
	}
}

/* "VM NAME: pid N, running (guest running), started ..., agent ..., kernel
 * aio in use: ..." and, under it, why it is not running and the agent's error. */
static void print_vm_head(json_object *vm, FILE *out)
{
	const char *state = kl_json_str_or(vm, "state", "?");
	_cleanup_free_ char *started = fmt_time(kl_json_int(vm, "started", 0));
	json_object *agent = kl_json_get(vm, "agent", json_type_object);
	json_object *seen = kl_json_get(vm, "aio_seen", json_type_object);
	_cleanup_strbuf_ struct strbuf h = STRBUF_INIT;

	strbuf_appendf(&h, "VM %s: pid %lld, %s", kl_json_str_or(vm, "name", "?"), kl_json_int(vm, "pid", 0), state);
	if (kl_json_str(vm, "guest_status"))
		strbuf_appendf(&h, " (guest %s)", kl_json_str(vm, "guest_status"));
	if (kl_json_bool(vm, "process_stopped", false))
		strbuf_append(&h, " (process stopped by a signal)");
	strbuf_appendf(&h, ", started %s", started);
	if (kl_json_bool(agent, "alive", false))
		strbuf_appendf(&h, ", agent alive (pid %lld, %s)", kl_json_int(agent, "pid", 0),
			       kl_json_str_or(agent, "state", "?"));
	else
		strbuf_appendf(&h, ", agent gone");
	if (kl_json_get(vm, "aio_in_use", json_type_object)) {
		_cleanup_free_ char *use = kl_aio_use_text(kl_json_get(vm, "aio_in_use", json_type_object));
		strbuf_appendf(&h, ", kernel aio in use: %s", use);
	} else if (kl_json_bool(vm, "running", false)) {
		_cleanup_strbuf_ struct strbuf eng = STRBUF_INIT;
		if (kl_json_bool(seen, "io_uring", false))
			strbuf_append(&eng, "io_uring");
		if (kl_json_bool(seen, "libaio", false))
			strbuf_appendf(&eng, "%slibaio", eng.len ? ", " : "");
		strbuf_appendf(&h, ", kernel aio in use: %s", eng.len ? strbuf_str(&eng) : "none");
	}
	fprintf(out, "%s\n", strbuf_str(&h));
	if (strcmp(state, "running") != 0 && kl_json_str(vm, "why"))
		fprintf(out, "  %s: %s\n", state, kl_json_str(vm, "why"));
	if (kl_json_str(agent, "error"))
		fprintf(out, "  agent: %s\n", kl_json_str(agent, "error"));
	print_outside_policy(vm, out);
}

/* The NCOLS cells of one disk's row (caller frees each and the array). */
static char **disk_cells(json_object *d)
{
	json_object *st = kl_json_get(d, "stats", json_type_object);
	char **row = xcalloc(NCOLS, sizeof *row);
	bool from_qemu = strcmp(kl_json_str_or(d, "cache_source", ""), "qemu") == 0;
	row[0] = xstrdup(kl_json_str_or(d, "id", "-"));
	row[1] = xstrdup(kl_json_str_or(d, "node", "-"));
	row[2] = xstrdup(kl_json_str_or(d, "backend", "-"));
	row[3] = xstrdup(kl_json_str_or(d, "fs", "-"));
	row[4] = xstrdup(kl_json_str_or(d, "format", "-"));
	row[5] = xstrdup(kl_json_str_or(d, "aio", "-"));
	row[6] = xasprintf("%s%s", kl_json_str_or(d, "cache", "-"), from_qemu ? "" : "?");
	row[7] = xstrdup(wc_word(d));
	row[8] = xstrdup(kl_json_str_or(d, "rule", "-"));
	row[9] = kl_throttle_text(kl_json_get(d, "throttle", json_type_object));
	if (st) {
		row[10] = xasprintf("%lld", kl_json_int(st, "rd_operations", 0));
		row[11] = xasprintf("%lld", kl_json_int(st, "wr_operations", 0));
		row[12] = human_bytes(kl_json_int(st, "rd_bytes", 0));
		row[13] = human_bytes(kl_json_int(st, "wr_bytes", 0));
		row[14] = xasprintf("%lld", kl_json_int(st, "flush_operations", 0));
		json_object *lat = kl_json_get(st, "avg_latency_ms", json_type_double);
		row[15] = lat ? xasprintf("%.2f ms", json_object_get_double(lat)) : xstrdup("-");
	} else {
		for (size_t c = 10; c <= 15; c++)
			row[c] = xstrdup("-");
	}
	row[16] = xstrdup(kl_json_str_or(d, "path", "-"));
	return row;
}

/* The lines under a disk's row: notes, calibration, reasons. */
static void print_disk_notes(json_object *d, FILE *out)
{
	const char *planned = kl_json_str(d, "cache_planned"), *cache = kl_json_str(d, "cache");
	if (planned && cache && strcmp(planned, cache) != 0)
		fprintf(out, "      note: QEMU runs cache=%s, kvm-launch recorded %s\n", cache, planned);
	if (kl_json_get(d, "settings_match_policy", json_type_boolean) && !kl_json_bool(d, "settings_match_policy", true))
		fprintf(out, "      note: the policy chose cache=%s at launch\n", kl_json_str_or(d, "cache_policy", "?"));
	if (kl_json_str(d, "note"))
		fprintf(out, "      note: %s\n", kl_json_str(d, "note"));
	if (kl_json_str(d, "origin"))
		fprintf(out, "      added while running: %s%s%s\n", kl_json_str(d, "origin"),
			kl_json_str(d, "previous_node") ? ", over " : "",
			kl_json_str(d, "previous_node") ? kl_json_str(d, "previous_node") : "");
	json_object *layers = kl_json_get(d, "layers", json_type_array);
	for (size_t i = 0; layers && i < json_object_array_length(layers); i++) {
		json_object *l = json_object_array_get_idx(layers, i);
		fprintf(out, "      layer below: %s %s (aio=%s cache=%s, %s)\n", kl_json_str_or(l, "node", "-"),
			kl_json_str_or(l, "path", "-"), kl_json_str_or(l, "aio", "-"), kl_json_str_or(l, "cache", "-"),
			kl_json_str_or(l, "origin", "command line"));
	}
	if (kl_json_str(d, "calibration"))
		fprintf(out, "      aio chosen from calibration %s\n", kl_json_str(d, "calibration"));
	json_object *reasons = kl_json_get(d, "reasons", json_type_array);
	for (size_t r = 0; reasons && r < json_object_array_length(reasons); r++)
		fprintf(out, "      %s\n", json_object_get_string(json_object_array_get_idx(reasons, r)));
}

static void print_disks(json_object *disks, size_t n, FILE *out)
{
	char ***cells = xcalloc(n, sizeof *cells);
	size_t width[NCOLS];
	for (size_t c = 0; c < NCOLS; c++)
		width[c] = strlen(col_names[c]);
	for (size_t i = 0; i < n; i++) {
		cells[i] = disk_cells(json_object_array_get_idx(disks, i));
		for (size_t c = 0; c < NCOLS; c++)
			if (strlen(cells[i][c]) > width[c])
				width[c] = strlen(cells[i][c]);
	}
	fprintf(out, " ");
	for (size_t c = 0; c < NCOLS; c++)
		fprintf(out, " %-*s", c + 1 < NCOLS ? (int)width[c] : 0, col_names[c]);
	fprintf(out, "\n");
	for (size_t i = 0; i < n; i++) {
		fprintf(out, " ");
		for (size_t c = 0; c < NCOLS; c++) {
			bool num = c >= 10 && c <= 15;
			if (c + 1 == NCOLS)
				fprintf(out, " %s", cells[i][c]);
			else
				fprintf(out, num ? " %*s" : " %-*s", (int)width[c], cells[i][c]);
			free(cells[i][c]);
		}
		fprintf(out, "\n");
		free(cells[i]);
		print_disk_notes(json_object_array_get_idx(disks, i), out);
	}
	free(cells);
}

static void print_vm(json_object *vm, FILE *out)
{
	print_vm_head(vm, out);
	json_object *disks = kl_json_get(vm, "disks", json_type_array);
	size_t n = disks ? json_object_array_length(disks) : 0;
	if (n == 0)
		fprintf(out, "  (no disks)\n");
	else
		print_disks(disks, n, out);
}

/* Strings in the table come from VM names, command lines and QMP replies:
 * their control characters (a newline, a terminal escape) become '?', so
 * they cannot forge lines or drive the operator's terminal. */
static void scrub(json_object *o)
{
	if (json_object_is_type(o, json_type_object)) {
		json_object_object_foreach(o, k, v) {
			(void)k;
			scrub(v);
		}
	} else if (json_object_is_type(o, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(o); i++)
			scrub(json_object_array_get_idx(o, i));
	} else if (json_object_is_type(o, json_type_string)) {
		const char *s = json_object_get_string(o);
		size_t n = (size_t)json_object_get_string_len(o);
		bool bad = false;
		for (size_t i = 0; i < n && !bad; i++)
			bad = (unsigned char)s[i] < 0x20 || s[i] == 0x7f;
		if (!bad)
			return;
		_cleanup_free_ char *t = xstrndup(s, n);
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f)
				t[i] = '?';
		json_object_set_string(o, t);
	}
}

void kl_status_print_table(json_object *doc, FILE *out)
{
	_cleanup_json_ json_object *copy = NULL;
	if (json_object_deep_copy(doc, &copy, NULL) == 0) {
		scrub(copy);
		doc = copy;
	}
	json_object *vms = kl_json_get(doc, "vms", json_type_array);
	size_t n = vms ? json_object_array_length(vms) : 0;
	for (size_t i = 0; i < n; i++) {
		if (i)
			fprintf(out, "\n");
		print_vm(json_object_array_get_idx(vms, i), out);
	}
	json_object *host = kl_json_get(doc, "host", json_type_object);
	fprintf(out, "%shost: io_uring %s, libaio %s", n ? "\n" : "", tri_word(host, "io_uring"), tri_word(host, "libaio"));
	if (kl_json_get(host, "aio_nr", json_type_int))
		fprintf(out, ", aio-nr %lld of %lld", kl_json_int(host, "aio_nr", 0), kl_json_int(host, "aio_max_nr", 0));
	fprintf(out, "\n");
}

