/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/vm/status.h"

#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/json.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "common/xalloc.h"
#include "policy/probe/probe.h"
#include "policy/types.h"
#include "qmp/qmp.h"
#include "launcher/vm/aiouse.h"
#include "launcher/vm/cachemode.h"
#include "launcher/vm/memcg.h"
#include "launcher/vm/procinfo.h"
#include "launcher/vm/block.h"
#include "launcher/vm/state.h"
#include "launcher/vm/status-policy.h"
#include "launcher/vm/view.h"

/* ---- asking QEMU ---- */

struct answers {
	bool responsive;
	char *why;                 /* why not responsive */
	json_object *status;       /* query-status */
	json_object *blocks;       /* query-block */
	json_object *stats;        /* query-blockstats */
};

static void answers_free(struct answers *a)
{
	free(a->why);
	if (a->status)
		json_object_put(a->status);
	if (a->blocks)
		json_object_put(a->blocks);
	if (a->stats)
		json_object_put(a->stats);
}

/* Over QMP for root and the VM's owner, else through the agent's view
 * (view.h); a sock of NULL means the VM was started without monitors. */
static void ask_qemu(const struct kl_state_entry *e, const char *sock, int timeout_ms, struct answers *a)
{
	struct kl_error err = KL_ERROR_INIT;

	if (!sock) {
		a->why = xstrdup("started without a query monitor");
		return;
	}
	if (kl_vm_live(e, timeout_ms, &a->status, &a->blocks, &a->stats, &err) < 0) {
		a->why = xstrdup(err.msg);
		return;
	}
	a->responsive = true;
}

/* ---- one disk ---- */

static json_object *disk_stats(json_object *st)
{
	json_object *s = kl_json_get(st, "stats", json_type_object);
	if (!s)
		return NULL;
	json_object *o = json_object_new_object();
	static const char *const keys[] = {
		"rd_operations", "wr_operations", "flush_operations", "rd_bytes", "wr_bytes",
		"rd_total_time_ns", "wr_total_time_ns", "flush_total_time_ns",
		"failed_rd_operations", "failed_wr_operations", "failed_flush_operations",
	};
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
		json_object_object_add(o, keys[i], json_object_new_int64(kl_json_int(s, keys[i], 0)));
	long long rops = kl_json_int(s, "rd_operations", 0), wops = kl_json_int(s, "wr_operations", 0);
	long long rns = kl_json_int(s, "rd_total_time_ns", 0), wns = kl_json_int(s, "wr_total_time_ns", 0);
	json_object_object_add(o, "rd_latency_ms", rops ? json_object_new_double((double)rns / rops / 1e6) : NULL);
	json_object_object_add(o, "wr_latency_ms", wops ? json_object_new_double((double)wns / wops / 1e6) : NULL);
	json_object_object_add(o, "avg_latency_ms",
			       rops + wops ? json_object_new_double((double)(rns + wns) / (rops + wops) / 1e6) : NULL);
	return o;
}

/* The configured mode (the state's write cache, QEMU's node options) and,
 * apart, the guest's write cache now (cachemode.h says why they differ). */
static void disk_cache_view(json_object *o, json_object *sd, json_object *block)
{
	json_object *cache = kl_json_get(kl_json_get(block, "inserted", json_type_object), "cache", json_type_object);
	struct kl_cache_view v;
	kl_cache_view_of(sd, block, NULL, &v);
	if (cache) {
		enum kl_cache c = kl_cache_from_flags(v.flags);
		json_object_object_add(o, "cache", json_object_new_string(c == KL_CACHE_UNSET ? "no-flush" : kl_cache_name(c)));
		json_object_object_add(o, "cache_source", json_object_new_string("qemu"));
		json_object_object_add(o, "cache_flags", json_object_get(cache));
	} else {
		json_object_object_add(o, "cache", kl_json_string(kl_json_str(sd, "cache")));
		json_object_object_add(o, "cache_source", json_object_new_string("state"));
	}
	json_object_object_add(o, "guest_write_cache", kl_json_tri(v.guest_wc));
}

static json_object *disk_view(json_object *sd, const struct answers *a)
{
	json_object *o = json_object_new_object();
	static const char *const copy[] = { "id", "node", "path", "backend", "fs", "format", "aio" };
	for (size_t i = 0; i < sizeof copy / sizeof *copy; i++)
		json_object_object_add(o, copy[i], kl_json_string(kl_json_str(sd, copy[i])));

	json_object *block = a->responsive ? kl_block_find(a->blocks, sd) : NULL;
	json_object *ins = kl_json_get(block, "inserted", json_type_object);
	disk_cache_view(o, sd, block);
	json_object_object_add(o, "cache_planned", kl_json_string(kl_json_str(sd, "cache")));
	json_object_object_add(o, "cache_given", kl_json_string(kl_json_str(sd, "given_cache")));
	json_object_object_add(o, "aio_given", kl_json_string(kl_json_str(sd, "given_aio")));
	json_object_object_add(o, "rule", kl_json_string(kl_json_str(sd, "rule")));
	json_object_object_add(o, "calibration", kl_json_string(kl_json_str(sd, "calibration")));
	json_object_object_add(o, "reasons", json_object_get(kl_json_get(sd, "reasons", json_type_array)));
	if (ins) {
		json_object_object_add(o, "throttle", kl_throttle_current(block));
		json_object_object_add(o, "qemu_node", kl_json_string(kl_json_str(ins, "node-name")));
	} else {
		json_object *t = kl_json_get(sd, "throttle", json_type_object);
		json_object_object_add(o, "throttle", t ? json_object_get(t) : json_object_new_object());
	}
	json_object *st = a->responsive ? kl_block_find(a->stats, sd) : NULL;
	json_object_object_add(o, "stats", st ? disk_stats(st) : NULL);
	if (a->responsive && !block)
		json_object_object_add(o, "note", json_object_new_string("not listed by QEMU (removed?)"));
	/* Disks the monitor relay saw added while the VM runs (relay-disks.c). */
	if (kl_json_str(sd, "origin"))
		json_object_object_add(o, "origin", json_object_new_string(kl_json_str(sd, "origin")));
	if (kl_json_str(sd, "previous_node"))
		json_object_object_add(o, "previous_node", json_object_new_string(kl_json_str(sd, "previous_node")));
	if (kl_json_get(sd, "layers", json_type_array))
		json_object_object_add(o, "layers", json_object_get(kl_json_get(sd, "layers", json_type_array)));
	if (kl_json_bool(sd, "undecided", false))
		json_object_object_add(o, "note", json_object_new_string("the relay did not decide this node (see the relay log)"));
	return o;
}

/* ---- one VM ---- */

static json_object *bytes_or_null(long long v)
{
	return v >= 0 ? json_object_new_int64(v) : NULL;
}

/* The memory cgroup QEMU is in and what it is charged (under libvirt a cgroup
 * of its own; a QEMU started by hand shares its session's), or why not. */
static json_object *memory_view(pid_t pid)
{
	struct kl_error err = KL_ERROR_INIT;
	_cleanup_memcg_ struct kl_memcg cg = { KL_MEMCG_ANY, NULL };
	struct kl_memcg_usage u;
	json_object *o = json_object_new_object();
	if (kl_memcg_of_pid(NULL, pid, KL_MEMCG_ANY, &cg, &err) < 0 || kl_memcg_read(&cg, &u, &err) < 0) {
		json_object_object_add(o, "error", json_object_new_string(err.msg));
		return o;
	}
	json_object_object_add(o, "cgroup", json_object_new_string(cg.dir));
	json_object_object_add(o, "cgroup_version", json_object_new_int(cg.version == KL_MEMCG_V1 ? 1 : 2));
	json_object_object_add(o, "current_bytes", bytes_or_null(u.current));
	json_object_object_add(o, "peak_bytes", bytes_or_null(u.peak));
	json_object_object_add(o, "page_cache_bytes", bytes_or_null(u.file));
	json_object_object_add(o, "anon_bytes", bytes_or_null(u.anon));
	json_object_object_add(o, "limit_bytes", bytes_or_null(u.limit));
	return o;
}

static json_object *vm_view(const struct kl_state_entry *e, int timeout_ms)
{
	json_object *j = e->json;
	json_object *o = json_object_new_object();
	struct answers a = { 0 };
	bool alive = !kl_state_entry_stale(e);
	const char *state;

	if (alive)
		ask_qemu(e, kl_json_str(j, "query_socket"), timeout_ms, &a);
	state = !alive ? "stopped" : a.responsive ? "running" : "unresponsive";

	json_object_object_add(o, "name", json_object_new_string(e->name));
	json_object_object_add(o, "stem", kl_json_string(kl_json_str(j, "stem")));
	json_object_object_add(o, "pid", json_object_new_int64(e->pid));
	json_object_object_add(o, "state", json_object_new_string(state));
	json_object_object_add(o, "running", json_object_new_boolean(alive));
	json_object_object_add(o, "responsive", json_object_new_boolean(a.responsive));
	if (alive && !a.responsive) {
		char pst = kl_proc_state_char(e->pid);
		json_object_object_add(o, "why", kl_json_string(a.why));
		if (pst == 'T' || pst == 't')
			json_object_object_add(o, "process_stopped", json_object_new_boolean(true));
	}
	if (!alive)
		json_object_object_add(o, "why", json_object_new_string(
			e->proc == KL_PROC_REUSED ? "its PID now belongs to another process" : "its process is gone"));
	json_object_object_add(o, "guest_status", kl_json_string(kl_json_str(a.status, "status")));
	json_object_object_add(o, "started", json_object_new_int64(kl_json_int(j, "started", 0)));
	json_object_object_add(o, "state_file", json_object_new_string(e->file));
	json_object_object_add(o, "incoming", json_object_new_boolean(kl_json_bool(j, "incoming", false)));
	json_object_object_add(o, "failed_open", json_object_new_boolean(kl_json_bool(j, "failed_open", false)));
	if (kl_json_bool(j, "failed_open", false))
		json_object_object_add(o, "failed_open_why", kl_json_string(kl_json_str(j, "failed_open_why")));

	json_object *sa = kl_json_get(j, "agent", json_type_object);
	json_object *agent = json_object_new_object();
	json_object_object_add(agent, "pid", e->agent_pid > 0 ? json_object_new_int64(e->agent_pid) : NULL);
	json_object_object_add(agent, "alive", json_object_new_boolean(e->agent == KL_PROC_ALIVE));
	json_object_object_add(agent, "state", kl_json_string(kl_json_str(sa, "state")));
	json_object_object_add(agent, "error", kl_json_string(kl_json_str(sa, "error")));
	json_object_object_add(agent, "applied", json_object_get(kl_json_get(sa, "applied", json_type_array)));
	json_object_object_add(agent, "events", json_object_get(kl_json_get(sa, "events", json_type_array)));
	json_object_object_add(agent, "io_errors", json_object_get(kl_json_get(sa, "io_errors", json_type_object)));
	json_object_object_add(o, "agent", agent);

	enum kl_tri uring = alive ? kl_proc_has_io_uring(e->pid) : KL_TRI_UNKNOWN;
	enum kl_tri libaio = alive ? kl_proc_has_libaio(e->pid) : KL_TRI_UNKNOWN;
	json_object *seen = json_object_new_object();
	json_object_object_add(seen, "io_uring", kl_json_tri(uring));
	json_object_object_add(seen, "libaio", kl_json_tri(libaio));
	json_object_object_add(o, "aio_seen", seen);
	if (alive)
		json_object_object_add(o, "memory", memory_view(e->pid));

	json_object *disks = json_object_new_array();
	json_object *sdisks = kl_json_get(j, "disks", json_type_array);
	for (size_t i = 0; sdisks && i < json_object_array_length(sdisks); i++) {
		json_object *sd = json_object_array_get_idx(sdisks, i);
		json_object *view = disk_view(sd, &a);
		kl_status_disk_policy(view, j, sd);
		json_object_array_add(disks, view);
	}
	json_object_object_add(o, "disks", disks);
	if (alive)
		json_object_object_add(o, "aio_in_use", kl_aio_use_json(disks, uring, libaio));
	json_object_object_add(o, "unmanaged_disks", a.responsive ? kl_status_unmanaged(a.blocks, sdisks) : NULL);
	json_object_object_add(o, "changes", json_object_get(kl_json_get(j, "changes", json_type_array)));
	answers_free(&a);
	return o;
}

static json_object *host_view(void)
{
	struct kl_host_facts h;
	struct kl_error err = KL_ERROR_INIT;
	json_object *o = json_object_new_object();

	memset(&h, 0, sizeof h);
	h.aio_nr = h.aio_max_nr = -1;
	if (kl_probe_host(&kl_probe_env_real, &h, &err) < 0) {
		json_object_object_add(o, "error", json_object_new_string(err.msg));
	}
	json_object_object_add(o, "io_uring", kl_json_tri(h.io_uring_kernel));
	json_object_object_add(o, "libaio", kl_json_tri(h.libaio));
	json_object_object_add(o, "aio_nr", h.aio_nr >= 0 ? json_object_new_int64(h.aio_nr) : NULL);
	json_object_object_add(o, "aio_max_nr", h.aio_max_nr >= 0 ? json_object_new_int64(h.aio_max_nr) : NULL);
	json_object_object_add(o, "libaio_headroom", kl_json_tri(h.libaio_headroom));
	kl_host_facts_free(&h);
	return o;
}

static bool matches(const struct kl_state_entry *e, const char *filter)
{
	const char *stem = kl_json_str(e->json, "stem");
	return !filter || fnmatch(filter, e->name, 0) == 0 || (stem && fnmatch(filter, stem, 0) == 0);
}

struct collect_ctx {
	const char *filter;
	int timeout_ms;
	json_object *vms;
};

static int collect_one(struct kl_state_entry *e, void *vctx)
{
	struct collect_ctx *c = vctx;
	if (matches(e, c->filter))
		json_object_array_add(c->vms, vm_view(e, c->timeout_ms));
	return 0;
}

json_object *kl_status_collect(const char *state_dir, const char *name_filter, int timeout_ms)
{
	_cleanup_strvec_ struct strvec errs = STRVEC_INIT;
	json_object *doc = json_object_new_object();
	struct collect_ctx c = { name_filter, timeout_ms, json_object_new_array() };

	/* One entry at a time: each is read, asked and let go. */
	kl_state_foreach(state_dir, collect_one, &c, &errs);
	json_object_object_add(doc, "vms", c.vms);
	json_object_object_add(doc, "host", host_view());
	if (errs.n) {
		json_object *errors = json_object_new_array();
		for (size_t i = 0; i < errs.n; i++)
			json_object_array_add(errors, json_object_new_string(errs.v[i]));
		json_object_object_add(doc, "errors", errors);
	}
	return doc;
}

/* ---- main ---- */

int kl_status_main(const char *state_dir, const char *name_filter, bool json, bool prometheus)
{
	_cleanup_json_ json_object *doc = kl_status_collect(state_dir, name_filter, KL_STATUS_TIMEOUT_MS);
	json_object *vms = kl_json_get(doc, "vms", json_type_array);
	json_object *errors = kl_json_get(doc, "errors", json_type_array);
	size_t n = vms ? json_object_array_length(vms) : 0;
	int rc = 0;

	for (size_t i = 0; errors && i < json_object_array_length(errors); i++) {
		kl_err("%s", json_object_get_string(json_object_array_get_idx(errors, i)));
		rc = 1;
	}
	if (name_filter && n == 0) {
		kl_err("no VM matching '%s' was launched through kvm-launch", name_filter);
		rc = 1;
	}
	if (json) {
		puts(json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	} else if (prometheus) {
		kl_status_print_prometheus(doc, stdout);
	} else if (n == 0 && !name_filter) {
		printf("No VMs launched through kvm-launch are running.\n");
	} else {
		kl_status_print_table(doc, stdout);
	}
	fflush(stdout);
	return rc;
}
