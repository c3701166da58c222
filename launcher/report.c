/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/report.h"

#include <string.h>

#include "common/json.h"
#include "common/strbuf.h"

const char *kl_report_aio(const struct kl_disk_result *d)
{
	const char *aio = kl_disk_aio(d);
	return aio ? aio : "-";
}

const char *kl_report_cache(const struct kl_disk_result *d)
{
	return kl_disk_cache(d);
}

static const char *given_aio(const struct kl_disk_result *d)
{
	if (!d->takes_aio)
		return "-";
	return d->given->aio == KL_AIO_UNSET ? "(threads)" : kl_aio_name(d->given->aio);
}

static const char *given_cache(const struct kl_disk_result *d)
{
	return d->given->cache == KL_CACHE_UNSET ? "(writeback)" : kl_cache_name(d->given->cache);
}

static const char *disk_label(const struct kl_disk_result *d)
{
	if (d->given->id)
		return d->given->id;
	return d->given->node ? d->given->node : "?";
}

static json_object *disk_json(const struct kl_disk_result *d)
{
	json_object *o = json_object_new_object();
	const struct kl_disk_given *g = d->given;
	json_object_object_add(o, "id", kl_json_nonempty(g->id));
	json_object_object_add(o, "node", kl_json_nonempty(g->node));
	json_object_object_add(o, "path", kl_json_nonempty(g->path));
	json_object_object_add(o, "driver", kl_json_nonempty(g->driver));
	json_object_object_add(o, "backend", json_object_new_string(kl_backend_name(d->facts.backend)));
	json_object_object_add(o, "block_kind", kl_json_nonempty(kl_block_kind_name(d->facts.block_kind)));
	json_object_object_add(o, "fs", kl_json_nonempty(d->facts.fs));
	json_object_object_add(o, "format", kl_json_nonempty(d->facts.format[0] ? d->facts.format : g->format));
	json_object_object_add(o, "preallocated", kl_json_tri(d->facts.preallocated));
	json_object_object_add(o, "shared", kl_json_tri(d->facts.shared));
	json_object_object_add(o, "odirect", kl_json_tri(d->facts.odirect));
	json_object_object_add(o, "readonly", json_object_new_boolean(g->readonly));
	json_object_object_add(o, "cdrom", json_object_new_boolean(g->cdrom));
	json_object_object_add(o, "aio", kl_json_string(kl_disk_aio(d)));
	json_object_object_add(o, "cache", json_object_new_string(kl_disk_cache(d)));
	json_object_object_add(o, "given_aio", kl_json_nonempty(kl_aio_name(g->aio)));
	json_object_object_add(o, "given_cache", kl_json_nonempty(kl_cache_name(g->cache)));
	json_object_object_add(o, "changed", json_object_new_boolean(d->decision.changed));
	json_object_object_add(o, "rule", kl_json_nonempty(d->decision.rule));
	json_object_object_add(o, "calibration", kl_json_nonempty(d->decision.calibration));
	json_object *reasons = kl_json_strings(d->facts.notes.v, d->facts.notes.n);
	for (size_t i = 0; i < d->decision.reasons.n; i++)
		json_object_array_add(reasons, json_object_new_string(d->decision.reasons.v[i]));
	json_object_object_add(o, "reasons", reasons);
	return o;
}

static json_object *host_json(const struct kl_host_facts *h)
{
	json_object *o = kl_host_facts_json(h);
	json_object_object_add(o, "notes", kl_json_strings(h->notes.v, h->notes.n));
	return o;
}

json_object *kl_report_json(const struct kl_launch *l)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "qemu", json_object_new_string(l->qemu));
	json_object *argv = json_object_new_array();
	for (size_t i = 1; i < l->exec_argv.n; i++)
		json_object_array_add(argv, json_object_new_string(l->exec_argv.v[i]));
	json_object_object_add(o, "argv", argv);
	json_object_object_add(o, "name", kl_json_nonempty(l->vm.name));
	json_object_object_add(o, "incoming", json_object_new_boolean(l->vm.incoming));
	json_object_object_add(o, "untouched", kl_json_nonempty(l->untouched_why));
	json_object_object_add(o, "failed_open", json_object_new_boolean(l->failed_open));
	json_object *disks = json_object_new_array();
	for (size_t i = 0; i < l->ndisks; i++)
		json_object_array_add(disks, disk_json(&l->disks[i]));
	json_object_object_add(o, "disks", disks);
	if (!l->untouched_why && !l->failed_open)
		json_object_object_add(o, "host", host_json(&l->host));
	return o;
}

void kl_report_argv(const struct kl_launch *l, FILE *f)
{
	for (size_t i = 0; i < l->exec_argv.n; i++)
		fprintf(f, "%s\n", l->exec_argv.v[i]);
}

static void print_backend(const struct kl_disk_result *d, FILE *f)
{
	struct strbuf b = STRBUF_INIT;
	strbuf_append(&b, kl_backend_name(d->facts.backend));
	if (d->facts.block_kind != KL_BLOCK_NONE)
		strbuf_appendf(&b, "/%s", kl_block_kind_name(d->facts.block_kind));
	if (d->facts.network_driver[0])
		strbuf_appendf(&b, "/%s", d->facts.network_driver);
	if (d->facts.fs[0])
		strbuf_appendf(&b, " %s", d->facts.fs);
	const char *fmt = d->facts.format[0] ? d->facts.format : d->given->format;
	if (fmt && *fmt)
		strbuf_appendf(&b, " %s", fmt);
	if (d->facts.preallocated == KL_TRI_NO && d->facts.backend == KL_BACKEND_FILE)
		strbuf_append(&b, " sparse");
	fprintf(f, "%-26s", strbuf_str(&b));
	strbuf_free(&b);
}

void kl_report_explain(const struct kl_launch *l, FILE *f)
{
	fprintf(f, "VM %s%s\n", l->vm.name ? l->vm.name : "(no -name)", l->vm.incoming ? " (incoming migration)" : "");
	fprintf(f, "QEMU %s\n", l->qemu);
	if (l->untouched_why) {
		fprintf(f, "Passed to QEMU unchanged: %s.\n", l->untouched_why);
		return;
	}
	if (l->failed_open) {
		fprintf(f, "kvm-launch could not handle this command line: QEMU gets it unchanged.\n");
		return;
	}
	fprintf(f, "host: io_uring kernel=%s qemu=%s, libaio=%s headroom=%s (aio-nr %ld of %ld)\n",
		kl_tri_word(l->host.io_uring_kernel), kl_tri_word(l->host.io_uring_qemu), kl_tri_word(l->host.libaio),
		kl_tri_word(l->host.libaio_headroom), l->host.aio_nr, l->host.aio_max_nr);
	for (size_t i = 0; i < l->host.notes.n; i++)
		fprintf(f, "  - %s\n", l->host.notes.v[i]);
	if (l->ndisks == 0) {
		fprintf(f, "No disks on this command line.\n");
		return;
	}
	fprintf(f, "\n%-16s %-26s %-24s %-24s %s\n", "DISK", "BACKEND", "GIVEN (aio/cache)", "USED (aio/cache)", "RULE");
	for (size_t i = 0; i < l->ndisks; i++) {
		const struct kl_disk_result *d = &l->disks[i];
		char given[64], used[64];
		snprintf(given, sizeof given, "%s/%s", given_aio(d), given_cache(d));
		snprintf(used, sizeof used, "%s/%s%s", kl_report_aio(d), kl_report_cache(d),
			 d->decision.changed ? " *" : "");
		fprintf(f, "%-16s ", disk_label(d));
		print_backend(d, f);
		fprintf(f, " %-24s %-24s %s\n", given, used, d->decision.rule[0] ? d->decision.rule : "-");
		if (d->given->path)
			fprintf(f, "    path: %s\n", d->given->path);
		for (size_t j = 0; j < d->facts.notes.n; j++)
			fprintf(f, "    - %s\n", d->facts.notes.v[j]);
		for (size_t j = 0; j < d->decision.reasons.n; j++)
			fprintf(f, "    - %s\n", d->decision.reasons.v[j]);
	}
	fprintf(f, "\n(* = changed by kvm-launch; values in parentheses are QEMU's defaults)\n");
}
