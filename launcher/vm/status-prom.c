/* SPDX-License-Identifier: GPL-2.0-or-later */
/* --status --prometheus: the document kl_status_collect made, in the
 * Prometheus text format (node_exporter's textfile collector). */
#include "launcher/vm/status.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/strbuf.h"
#include "common/xalloc.h"

/* Length of the valid UTF-8 sequence at s, or 0 (overlong forms,
 * surrogates and code points past U+10FFFF are invalid). */
static size_t utf8_len(const unsigned char *s)
{
	if (s[0] < 0x80)
		return 1;
	size_t n = s[0] >= 0xc2 && s[0] <= 0xdf ? 2 : s[0] >= 0xe0 && s[0] <= 0xef ? 3
		 : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
	    (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90))
		return 0;
	return n;
}

/* A label value: the text format wants UTF-8 with \\, \" and \n escaped.
 * VM names and paths come from QEMU command lines and may hold any byte: an
 * invalid sequence becomes U+FFFD rather than spoiling the whole output. */
static void prom_escape(struct strbuf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (p && *p) {
		size_t n = utf8_len(p);
		if (n == 0) {
			strbuf_append(b, "\xef\xbf\xbd");
			p++;
		} else if (*p == '\\') {
			strbuf_append(b, "\\\\");
			p++;
		} else if (*p == '"') {
			strbuf_append(b, "\\\"");
			p++;
		} else if (*p == '\n') {
			strbuf_append(b, "\\n");
			p++;
		} else {
			for (size_t i = 0; i < n; i++)
				strbuf_appendc(b, (char)*p++);
		}
	}
}

static void prom_labels(struct strbuf *b, const char *const *kv)
{
	strbuf_appendc(b, '{');
	for (size_t i = 0; kv[i]; i += 2) {
		strbuf_appendf(b, "%s%s=\"", i ? "," : "", kv[i]);
		prom_escape(b, kv[i + 1] ? kv[i + 1] : "");
		strbuf_appendc(b, '"');
	}
	strbuf_appendc(b, '}');
}

static void prom_head(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

struct disk_metric {
	const char *name, *help, *stat;
	double scale;
};

/* The guest's write cache now, apart from the configured mode on
 * kvm_launch_disk_info: the guest switches it itself. */
static void prom_guest_wc(FILE *out, json_object *vms, char **vm_label)
{
	struct strbuf b = STRBUF_INIT;
	prom_head(out, "kvm_launch_disk_guest_write_cache", "gauge",
		  "1 if the guest has the disk's write cache on now, 0 if it turned it off (absent: not known).");
	for (size_t i = 0; vms && i < json_object_array_length(vms); i++) {
		json_object *disks = kl_json_get(json_object_array_get_idx(vms, i), "disks", json_type_array);
		for (size_t k = 0; disks && k < json_object_array_length(disks); k++) {
			json_object *d = json_object_array_get_idx(disks, k), *v;
			if (!json_object_object_get_ex(d, "guest_write_cache", &v) || !json_object_is_type(v, json_type_boolean))
				continue;
			const char *l[] = { "vm", vm_label[i], "disk", kl_json_str_or(d, "id", kl_json_str_or(d, "node", "")), NULL };
			strbuf_reset(&b);
			prom_labels(&b, l);
			fprintf(out, "kvm_launch_disk_guest_write_cache%s %d\n", strbuf_str(&b), json_object_get_boolean(v) ? 1 : 0);
		}
	}
	strbuf_free(&b);
}

void kl_status_print_prometheus(json_object *doc, FILE *out)
{
	json_object *vms = kl_json_get(doc, "vms", json_type_array);
	size_t n = vms ? json_object_array_length(vms) : 0;
	struct strbuf b = STRBUF_INIT;
	/* The vm label of each VM: its name, or NAME@PID for a later VM of the
	 * same name (two QEMUs given one -name, or a user's and the system's
	 * state directory), since a repeated label set makes the whole text
	 * invalid for node_exporter. */
	char **vm_label = xcalloc(n + 1, sizeof *vm_label);
	for (size_t i = 0; i < n; i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		const char *name = kl_json_str_or(vm, "name", "");
		bool dup = false;
		for (size_t j = 0; j < i && !dup; j++)
			dup = strcmp(name, kl_json_str_or(json_object_array_get_idx(vms, j), "name", "")) == 0;
		vm_label[i] = dup ? xasprintf("%s@%lld", name, kl_json_int(vm, "pid", 0)) : xstrdup(name);
	}

	static const struct {
		const char *name, *help;
		int what;
	} vm_metrics[] = {
		{ "kvm_launch_vm_up", "1 if the VM's QEMU process is running.", 0 },
		{ "kvm_launch_vm_responsive", "1 if the VM's QEMU answered on its query monitor in time.", 1 },
		{ "kvm_launch_agent_up", "1 if the VM's kvm-launch agent process is running.", 2 },
		{ "kvm_launch_vm_start_time_seconds", "When the VM was launched, in seconds since the epoch.", 3 },
	};
	for (size_t m = 0; m < sizeof vm_metrics / sizeof *vm_metrics; m++) {
		prom_head(out, vm_metrics[m].name, "gauge", vm_metrics[m].help);
		for (size_t i = 0; i < n; i++) {
			json_object *vm = json_object_array_get_idx(vms, i);
			const char *l[] = { "vm", vm_label[i], NULL };
			long long v = 0;
			switch (vm_metrics[m].what) {
			case 0: v = kl_json_bool(vm, "running", false); break;
			case 1: v = kl_json_bool(vm, "responsive", false); break;
			case 2: v = kl_json_bool(kl_json_get(vm, "agent", json_type_object), "alive", false); break;
			default: v = kl_json_int(vm, "started", 0);
			}
			strbuf_reset(&b);
			prom_labels(&b, l);
			fprintf(out, "%s%s %lld\n", vm_metrics[m].name, strbuf_str(&b), v);
		}
	}

	prom_head(out, "kvm_launch_disk_info", "gauge",
		  "The settings of each disk (value 1): aio and cache QEMU runs with, and the rule that chose them.");
	for (size_t i = 0; i < n; i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		json_object *disks = kl_json_get(vm, "disks", json_type_array);
		for (size_t k = 0; disks && k < json_object_array_length(disks); k++) {
			json_object *d = json_object_array_get_idx(disks, k);
			const char *l[] = { "vm", vm_label[i], "disk", kl_json_str_or(d, "id", kl_json_str_or(d, "node", "")),
					    "node", kl_json_str(d, "node"), "path", kl_json_str(d, "path"),
					    "backend", kl_json_str(d, "backend"), "fs", kl_json_str(d, "fs"),
					    "format", kl_json_str(d, "format"), "aio", kl_json_str(d, "aio"),
					    "cache", kl_json_str(d, "cache"), "rule", kl_json_str(d, "rule"), NULL };
			strbuf_reset(&b);
			prom_labels(&b, l);
			fprintf(out, "kvm_launch_disk_info%s 1\n", strbuf_str(&b));
		}
	}

	prom_guest_wc(out, vms, vm_label);

	static const struct disk_metric dm[] = {
		{ "kvm_launch_disk_read_ops_total", "Read requests completed.", "rd_operations", 1 },
		{ "kvm_launch_disk_write_ops_total", "Write requests completed.", "wr_operations", 1 },
		{ "kvm_launch_disk_flush_ops_total", "Flush requests completed.", "flush_operations", 1 },
		{ "kvm_launch_disk_read_bytes_total", "Bytes read.", "rd_bytes", 1 },
		{ "kvm_launch_disk_write_bytes_total", "Bytes written.", "wr_bytes", 1 },
		{ "kvm_launch_disk_read_time_seconds_total", "Time spent in read requests.", "rd_total_time_ns", 1e-9 },
		{ "kvm_launch_disk_write_time_seconds_total", "Time spent in write requests.", "wr_total_time_ns", 1e-9 },
		{ "kvm_launch_disk_flush_time_seconds_total", "Time spent in flush requests.", "flush_total_time_ns", 1e-9 },
		{ "kvm_launch_disk_failed_ops_total", "Failed read, write and flush requests.", NULL, 1 },
	};
	for (size_t m = 0; m < sizeof dm / sizeof *dm; m++) {
		prom_head(out, dm[m].name, "counter", dm[m].help);
		for (size_t i = 0; i < n; i++) {
			json_object *vm = json_object_array_get_idx(vms, i);
			json_object *disks = kl_json_get(vm, "disks", json_type_array);
			for (size_t k = 0; disks && k < json_object_array_length(disks); k++) {
				json_object *d = json_object_array_get_idx(disks, k);
				json_object *st = kl_json_get(d, "stats", json_type_object);
				if (!st)
					continue;
				/* Only labels that never change while the VM runs: a
				 * --set cache= must not split a counter into a new
				 * series.  aio and cache are on kvm_launch_disk_info. */
				const char *l[] = { "vm", vm_label[i], "disk", kl_json_str_or(d, "id", kl_json_str_or(d, "node", "")),
						    "backend", kl_json_str(d, "backend"), NULL };
				strbuf_reset(&b);
				prom_labels(&b, l);
				if (!dm[m].stat) {
					long long v = kl_json_int(st, "failed_rd_operations", 0) +
						      kl_json_int(st, "failed_wr_operations", 0) +
						      kl_json_int(st, "failed_flush_operations", 0);
					fprintf(out, "%s%s %lld\n", dm[m].name, strbuf_str(&b), v);
				} else if (dm[m].scale == 1) {
					fprintf(out, "%s%s %lld\n", dm[m].name, strbuf_str(&b), kl_json_int(st, dm[m].stat, 0));
				} else {
					fprintf(out, "%s%s %.9f\n", dm[m].name, strbuf_str(&b),
						(double)kl_json_int(st, dm[m].stat, 0) * dm[m].scale);
				}
			}
		}
	}

	prom_head(out, "kvm_launch_disk_throttle", "gauge",
		  "I/O limits in force on a disk (block_set_io_throttle), by limit name.");
	for (size_t i = 0; i < n; i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		json_object *disks = kl_json_get(vm, "disks", json_type_array);
		for (size_t k = 0; disks && k < json_object_array_length(disks); k++) {
			json_object *d = json_object_array_get_idx(disks, k);
			json_object *t = kl_json_get(d, "throttle", json_type_object);
			if (!t)
				continue;
			json_object_object_foreach(t, key, val) {
				if (!json_object_is_type(val, json_type_int))
					continue;
				const char *l[] = { "vm", vm_label[i], "disk", kl_json_str_or(d, "id", kl_json_str_or(d, "node", "")),
						    "limit", key, NULL };
				strbuf_reset(&b);
				prom_labels(&b, l);
				fprintf(out, "kvm_launch_disk_throttle%s %" PRId64 "\n", strbuf_str(&b),
					json_object_get_int64(val));
			}
		}
	}

	json_object *host = kl_json_get(doc, "host", json_type_object);
	json_object *v;
	prom_head(out, "kvm_launch_host_io_uring", "gauge", "1 if the kernel lets processes use io_uring.");
	fprintf(out, "kvm_launch_host_io_uring %d\n",
		json_object_object_get_ex(host, "io_uring", &v) && v && json_object_get_boolean(v) ? 1 : 0);
	if (kl_json_get(host, "aio_nr", json_type_int)) {
		prom_head(out, "kvm_launch_host_aio_nr", "gauge", "Kernel AIO events allocated (fs.aio-nr).");
		fprintf(out, "kvm_launch_host_aio_nr %lld\n", kl_json_int(host, "aio_nr", 0));
		prom_head(out, "kvm_launch_host_aio_max_nr", "gauge", "Kernel AIO events allowed (fs.aio-max-nr).");
		fprintf(out, "kvm_launch_host_aio_max_nr %lld\n", kl_json_int(host, "aio_max_nr", 0));
	}
	strbuf_free(&b);
	for (size_t i = 0; i < n; i++)
		free(vm_label[i]);
	free(vm_label);
}

