/* SPDX-License-Identifier: GPL-2.0-or-later */
/* --status --prometheus: the document kl_status_collect made, in the
 * Prometheus text format (node_exporter's textfile collector). */
#include "launcher/vm/status.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
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

/* The VMs of the document and the vm label of each: its name, or NAME@PID
 * for a later VM of the same name (two QEMUs given one -name, or a user's
 * and the system's state directory), since a repeated label set makes the
 * whole text invalid for node_exporter. */
struct prom_vms {
	json_object *vms;
	size_t n;
	char **label;
};

static void prom_vms_init(struct prom_vms *p, json_object *doc)
{
	p->vms = kl_json_get(doc, "vms", json_type_array);
	p->n = p->vms ? json_object_array_length(p->vms) : 0;
	p->label = xcalloc(p->n + 1, sizeof *p->label);
	for (size_t i = 0; i < p->n; i++) {
		json_object *vm = json_object_array_get_idx(p->vms, i);
		const char *name = kl_json_str_or(vm, "name", "");
		bool dup = false;
		for (size_t j = 0; j < i && !dup; j++)
			dup = strcmp(name, kl_json_str_or(json_object_array_get_idx(p->vms, j), "name", "")) == 0;
		p->label[i] = dup ? xasprintf("%s@%lld", name, kl_json_int(vm, "pid", 0)) : xstrdup(name);
	}
}

static void prom_vms_free(struct prom_vms *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->label[i]);
	free(p->label);
}

/* Print one sample: NAME{labels} then the value text. */
static void prom_sample(FILE *out, const char *name, const char *const *labels, const char *value)
{
	_cleanup_strbuf_ struct strbuf b = STRBUF_INIT;
	prom_labels(&b, labels);
	fprintf(out, "%s%s %s\n", name, strbuf_str(&b), value);
}

static void prom_sample_int(FILE *out, const char *name, const char *const *labels, long long v)
{
	char buf[32];
	snprintf(buf, sizeof buf, "%lld", v);
	prom_sample(out, name, labels, buf);
}

static const char *disk_label(json_object *d)
{
	return kl_json_str_or(d, "id", kl_json_str_or(d, "node", ""));
}

static void print_vm_metrics(const struct prom_vms *p, FILE *out)
{
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
		for (size_t i = 0; i < p->n; i++) {
			json_object *vm = json_object_array_get_idx(p->vms, i);
			const char *l[] = { "vm", p->label[i], NULL };
			long long v = 0;
			switch (vm_metrics[m].what) {
			case 0: v = kl_json_bool(vm, "running", false); break;
			case 1: v = kl_json_bool(vm, "responsive", false); break;
			case 2: v = kl_json_bool(kl_json_get(vm, "agent", json_type_object), "alive", false); break;
			default: v = kl_json_int(vm, "started", 0);
			}
			prom_sample_int(out, vm_metrics[m].name, l, v);
		}
	}
}

/* Calls fn for every disk of every VM, with the VM's label. */
static void each_disk(const struct prom_vms *p, FILE *out, const void *ctx,
		      void (*fn)(FILE *out, const char *vm_label, json_object *disk, const void *ctx))
{
	for (size_t i = 0; i < p->n; i++) {
		json_object *disks = kl_json_get(json_object_array_get_idx(p->vms, i), "disks", json_type_array);
		for (size_t k = 0; disks && k < json_object_array_length(disks); k++)
			fn(out, p->label[i], json_object_array_get_idx(disks, k), ctx);
	}
}

static void disk_info(FILE *out, const char *vm, json_object *d, const void *ctx)
{
	(void)ctx;
	const char *l[] = { "vm", vm, "disk", disk_label(d), "node", kl_json_str(d, "node"),
			    "path", kl_json_str(d, "path"), "backend", kl_json_str(d, "backend"),
			    "fs", kl_json_str(d, "fs"), "format", kl_json_str(d, "format"),
			    "aio", kl_json_str(d, "aio"), "cache", kl_json_str(d, "cache"),
			    "rule", kl_json_str(d, "rule"), NULL };
	prom_sample(out, "kvm_launch_disk_info", l, "1");
}

/* The guest's write cache now, apart from the configured mode on
 * kvm_launch_disk_info: the guest switches it itself. */
static void disk_guest_wc(FILE *out, const char *vm, json_object *d, const void *ctx)
{
	(void)ctx;
	json_object *v;
	if (!json_object_object_get_ex(d, "guest_write_cache", &v) || !json_object_is_type(v, json_type_boolean))
		return;
	const char *l[] = { "vm", vm, "disk", disk_label(d), NULL };
	prom_sample(out, "kvm_launch_disk_guest_write_cache", l, json_object_get_boolean(v) ? "1" : "0");
}

struct disk_metric {
	const char *name, *help, *stat;
	double scale;
};

static void disk_counter(FILE *out, const char *vm, json_object *d, const void *ctx)
{
	const struct disk_metric *m = ctx;
	json_object *st = kl_json_get(d, "stats", json_type_object);
	if (!st)
		return;
	/* Only labels that never change while the VM runs: a --set cache=
	 * must not split a counter into a new series.  aio and cache are on
	 * kvm_launch_disk_info. */
	const char *l[] = { "vm", vm, "disk", disk_label(d), "backend", kl_json_str(d, "backend"), NULL };
	char buf[64];
	if (!m->stat)
		snprintf(buf, sizeof buf, "%lld", kl_json_int(st, "failed_rd_operations", 0) +
			 kl_json_int(st, "failed_wr_operations", 0) + kl_json_int(st, "failed_flush_operations", 0));
	else if (m->scale == 1)
		snprintf(buf, sizeof buf, "%lld", kl_json_int(st, m->stat, 0));
	else
		snprintf(buf, sizeof buf, "%.9f", (double)kl_json_int(st, m->stat, 0) * m->scale);
	prom_sample(out, m->name, l, buf);
}

static void disk_throttle(FILE *out, const char *vm, json_object *d, const void *ctx)
{
	(void)ctx;
	json_object *t = kl_json_get(d, "throttle", json_type_object);
	if (!t)
		return;
	json_object_object_foreach(t, key, val) {
		if (!json_object_is_type(val, json_type_int))
			continue;
		const char *l[] = { "vm", vm, "disk", disk_label(d), "limit", key, NULL };
		char buf[32];
		snprintf(buf, sizeof buf, "%" PRId64, json_object_get_int64(val));
		prom_sample(out, "kvm_launch_disk_throttle", l, buf);
	}
}

static void print_disk_metrics(const struct prom_vms *p, FILE *out)
{
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
	prom_head(out, "kvm_launch_disk_info", "gauge",
		  "The settings of each disk (value 1): aio and cache QEMU runs with, and the rule that chose them.");
	each_disk(p, out, NULL, disk_info);
	prom_head(out, "kvm_launch_disk_guest_write_cache", "gauge",
		  "1 if the guest has the disk's write cache on now, 0 if it turned it off (absent: not known).");
	each_disk(p, out, NULL, disk_guest_wc);
	for (size_t m = 0; m < sizeof dm / sizeof *dm; m++) {
		prom_head(out, dm[m].name, "counter", dm[m].help);
		each_disk(p, out, &dm[m], disk_counter);
	}
	prom_head(out, "kvm_launch_disk_throttle", "gauge",
		  "I/O limits in force on a disk (block_set_io_throttle), by limit name.");
	each_disk(p, out, NULL, disk_throttle);
}

/* kvm_launch_disk_policy_match: 1 when QEMU runs the cache mode the policy
 * chose at launch, 0 after a --set or any other change; no sample while
 * QEMU cannot be asked. */
static void disk_policy_match(FILE *out, const char *vm, json_object *d, const void *ctx)
{
	(void)ctx;
	json_object *m;
	if (!json_object_object_get_ex(d, "settings_match_policy", &m) || !m)
		return;
	const char *l[] = { "vm", vm, "disk", disk_label(d), "policy_cache", kl_json_str(d, "cache_policy"), NULL };
	prom_sample(out, "kvm_launch_disk_policy_match", l, json_object_get_boolean(m) ? "1" : "0");
}

/* kvm_launch_disk_io_error_events_total: QEMU's BLOCK_IO_ERROR events, as
 * the agent counted them, by the state disk a key (node, else device) names. */
static const char *io_error_disk(json_object *disks, const char *key)
{
	for (size_t k = 0; disks && k < json_object_array_length(disks); k++) {
		json_object *d = json_object_array_get_idx(disks, k);
		const char *node = kl_json_str(d, "node"), *qn = kl_json_str(d, "qemu_node"), *id = kl_json_str(d, "id");
		if ((node && strcmp(node, key) == 0) || (qn && strcmp(qn, key) == 0) || (id && strcmp(id, key) == 0))
			return disk_label(d);
	}
	return key;
}

/* Per VM: disks kvm-launch never decided, fail-open, an I/O-error pause, the
 * agent's BLOCK_IO_ERROR counts. */
static void print_policy_metrics(const struct prom_vms *p, FILE *out)
{
	prom_head(out, "kvm_launch_disk_policy_match", "gauge",
		  "1 if the disk runs the cache mode the policy chose at launch (policy_cache), 0 if not.");
	each_disk(p, out, NULL, disk_policy_match);
	prom_head(out, "kvm_launch_disk_unmanaged", "gauge",
		  "1 for a disk QEMU runs that no policy decided (added at runtime past kvm-launch).");
	for (size_t i = 0; i < p->n; i++) {
		json_object *u = kl_json_get(json_object_array_get_idx(p->vms, i), "unmanaged_disks", json_type_array);
		for (size_t k = 0; u && k < json_object_array_length(u); k++) {
			json_object *d = json_object_array_get_idx(u, k);
			const char *l[] = { "vm", p->label[i], "disk", kl_json_str_or(d, "disk", ""),
					    "node", kl_json_str(d, "node"), "path", kl_json_str(d, "path"), NULL };
			prom_sample(out, "kvm_launch_disk_unmanaged", l, "1");
		}
	}
	prom_head(out, "kvm_launch_vm_failed_open", "gauge",
		  "1 if kvm-launch failed open for this VM: QEMU got the original command line, no policy applied.");
	for (size_t i = 0; i < p->n; i++) {
		const char *l[] = { "vm", p->label[i], NULL };
		prom_sample_int(out, "kvm_launch_vm_failed_open", l,
				kl_json_bool(json_object_array_get_idx(p->vms, i), "failed_open", false));
	}
	prom_head(out, "kvm_launch_vm_io_error_paused", "gauge",
		  "1 if QEMU paused the guest on an I/O error (query-status: io-error).");
	for (size_t i = 0; i < p->n; i++) {
		const char *gs = kl_json_str(json_object_array_get_idx(p->vms, i), "guest_status");
		const char *l[] = { "vm", p->label[i], NULL };
		prom_sample_int(out, "kvm_launch_vm_io_error_paused", l, gs && strcmp(gs, "io-error") == 0);
	}
	prom_head(out, "kvm_launch_disk_io_error_events_total", "counter",
		  "BLOCK_IO_ERROR events QEMU reported for the disk (counted by the VM's agent).");
	for (size_t i = 0; i < p->n; i++) {
		json_object *vm = json_object_array_get_idx(p->vms, i);
		json_object *counts = kl_json_get(kl_json_get(vm, "agent", json_type_object), "io_errors", json_type_object);
		if (!counts)
			continue;
		json_object_object_foreach(counts, key, val) {
			const char *l[] = { "vm", p->label[i], "disk",
					    io_error_disk(kl_json_get(vm, "disks", json_type_array), key), NULL };
			prom_sample_int(out, "kvm_launch_disk_io_error_events_total", l, json_object_get_int64(val));
		}
	}
}

static void print_host_metrics(json_object *host, FILE *out)
{
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
	/* 0 when new aio=native contexts may fail. */
	if (json_object_object_get_ex(host, "libaio_headroom", &v) && v) {
		prom_head(out, "kvm_launch_host_libaio_headroom", "gauge",
			  "1 if fs.aio-nr leaves room for new aio=native VMs, 0 if kernel AIO is nearly exhausted.");
		fprintf(out, "kvm_launch_host_libaio_headroom %d\n", json_object_get_boolean(v) ? 1 : 0);
	}
}

void kl_status_print_prometheus(json_object *doc, FILE *out)
{
	struct prom_vms p;
	prom_vms_init(&p, doc);
	print_vm_metrics(&p, out);
	print_disk_metrics(&p, out);
	print_host_metrics(kl_json_get(doc, "host", json_type_object), out);
	print_policy_metrics(&p, out);
	prom_vms_free(&p);
}
