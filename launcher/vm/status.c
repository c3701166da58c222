#include "launcher/vm/status.h"

#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "common/xalloc.h"
#include "policy/probe/probe.h"
#include "policy/types.h"
#include "qmp/qmp.h"
#include "launcher/vm/aiouse.h"
#include "launcher/vm/cachemode.h"
#include "launcher/vm/procinfo.h"
#include "launcher/vm/set.h"
#include "launcher/vm/state.h"
#include "launcher/vm/status-policy.h"
#include "launcher/vm/view.h"

static json_object *tri_json(enum kl_tri t)
{
	return t == KL_TRI_UNKNOWN ? NULL : json_object_new_boolean(t == KL_TRI_YES);
}

static json_object *copy_or_null(json_object *o)
{
	return o ? json_object_get(o) : NULL;
}

static json_object *str_json(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

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
	json_object *s = kl_js_get(st, "stats", json_type_object);
	if (!s)
		return NULL;
	json_object *o = json_object_new_object();
	static const char *const keys[] = {
		"rd_operations", "wr_operations", "flush_operations", "rd_bytes", "wr_bytes",
		"rd_total_time_ns", "wr_total_time_ns", "flush_total_time_ns",
		"failed_rd_operations", "failed_wr_operations", "failed_flush_operations",
	};
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
		json_object_object_add(o, keys[i], json_object_new_int64(kl_js_int(s, keys[i], 0)));
	long long rops = kl_js_int(s, "rd_operations", 0), wops = kl_js_int(s, "wr_operations", 0);
	long long rns = kl_js_int(s, "rd_total_time_ns", 0), wns = kl_js_int(s, "wr_total_time_ns", 0);
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
	json_object *cache = kl_js_get(kl_js_get(block, "inserted", json_type_object), "cache", json_type_object);
	struct kl_cache_view v;
	kl_cache_view_of(sd, block, NULL, &v);
	if (cache) {
		enum kl_cache c = kl_cache_from_flags(v.flags);
		json_object_object_add(o, "cache", json_object_new_string(c == KL_CACHE_UNSET ? "no-flush" : kl_cache_name(c)));
		json_object_object_add(o, "cache_source", json_object_new_string("qemu"));
		json_object_object_add(o, "cache_flags", json_object_get(cache));
	} else {
		json_object_object_add(o, "cache", str_json(kl_js_str(sd, "cache")));
		json_object_object_add(o, "cache_source", json_object_new_string("state"));
	}
	json_object_object_add(o, "guest_write_cache", tri_json(v.guest_wc));
}

static json_object *disk_view(json_object *sd, const struct answers *a)
{
	json_object *o = json_object_new_object();
	static const char *const copy[] = { "id", "node", "path", "backend", "fs", "format", "aio" };
	for (size_t i = 0; i < sizeof copy / sizeof *copy; i++)
		json_object_object_add(o, copy[i], str_json(kl_js_str(sd, copy[i])));

	json_object *block = a->responsive ? kl_block_find(a->blocks, sd) : NULL;
	json_object *ins = kl_js_get(block, "inserted", json_type_object);
	disk_cache_view(o, sd, block);
	json_object_object_add(o, "cache_planned", str_json(kl_js_str(sd, "cache")));
	json_object_object_add(o, "cache_given", str_json(kl_js_str(sd, "given_cache")));
	json_object_object_add(o, "aio_given", str_json(kl_js_str(sd, "given_aio")));
	json_object_object_add(o, "rule", str_json(kl_js_str(sd, "rule")));
	json_object_object_add(o, "calibration", str_json(kl_js_str(sd, "calibration")));
	json_object_object_add(o, "reasons", copy_or_null(kl_js_get(sd, "reasons", json_type_array)));
	if (ins) {
		json_object_object_add(o, "throttle", kl_throttle_current(block));
		json_object_object_add(o, "qemu_node", str_json(kl_js_str(ins, "node-name")));
	} else {
		json_object *t = kl_js_get(sd, "throttle", json_type_object);
		json_object_object_add(o, "throttle", t ? json_object_get(t) : json_object_new_object());
	}
	json_object *st = a->responsive ? kl_block_find(a->stats, sd) : NULL;
	json_object_object_add(o, "stats", st ? disk_stats(st) : NULL);
	if (a->responsive && !block)
		json_object_object_add(o, "note", json_object_new_string("not listed by QEMU (removed?)"));
	return o;
}

/* ---- one VM ---- */

static json_object *vm_view(const struct kl_state_entry *e, int timeout_ms)
{
	json_object *j = e->json;
	json_object *o = json_object_new_object();
	struct answers a = { 0 };
	bool alive = !kl_state_entry_stale(e);
	const char *state;

	if (alive)
		ask_qemu(e, kl_js_str(j, "query_socket"), timeout_ms, &a);
	state = !alive ? "stopped" : a.responsive ? "running" : "unresponsive";

	json_object_object_add(o, "name", json_object_new_string(e->name));
	json_object_object_add(o, "stem", str_json(kl_js_str(j, "stem")));
	json_object_object_add(o, "pid", json_object_new_int64(e->pid));
	json_object_object_add(o, "state", json_object_new_string(state));
	json_object_object_add(o, "running", json_object_new_boolean(alive));
	json_object_object_add(o, "responsive", json_object_new_boolean(a.responsive));
	if (alive && !a.responsive) {
		char pst = kl_proc_state_char(e->pid);
		json_object_object_add(o, "why", str_json(a.why));
		if (pst == 'T' || pst == 't')
			json_object_object_add(o, "process_stopped", json_object_new_boolean(true));
	}
	if (!alive)
		json_object_object_add(o, "why", json_object_new_string(
			e->proc == KL_PROC_REUSED ? "its PID now belongs to another process" : "its process is gone"));
	json_object_object_add(o, "guest_status", str_json(kl_js_str(a.status, "status")));
	json_object_object_add(o, "started", json_object_new_int64(kl_js_int(j, "started", 0)));
	json_object_object_add(o, "state_file", json_object_new_string(e->file));
	json_object_object_add(o, "incoming", json_object_new_boolean(kl_js_bool(j, "incoming", false)));
	json_object_object_add(o, "failed_open", json_object_new_boolean(kl_js_bool(j, "failed_open", false)));
	if (kl_js_bool(j, "failed_open", false))
		json_object_object_add(o, "failed_open_why", str_json(kl_js_str(j, "failed_open_why")));

	json_object *sa = kl_js_get(j, "agent", json_type_object);
	json_object *agent = json_object_new_object();
	json_object_object_add(agent, "pid", e->agent_pid > 0 ? json_object_new_int64(e->agent_pid) : NULL);
	json_object_object_add(agent, "alive", json_object_new_boolean(e->agent == KL_PROC_ALIVE));
	json_object_object_add(agent, "state", str_json(kl_js_str(sa, "state")));
	json_object_object_add(agent, "error", str_json(kl_js_str(sa, "error")));
	json_object_object_add(agent, "applied", copy_or_null(kl_js_get(sa, "applied", json_type_array)));
	json_object_object_add(agent, "events", copy_or_null(kl_js_get(sa, "events", json_type_array)));
	json_object_object_add(agent, "io_errors", copy_or_null(kl_js_get(sa, "io_errors", json_type_object)));
	json_object_object_add(o, "agent", agent);

	enum kl_tri uring = alive ? kl_proc_has_io_uring(e->pid) : KL_TRI_UNKNOWN;
	enum kl_tri libaio = alive ? kl_proc_has_libaio(e->pid) : KL_TRI_UNKNOWN;
	json_object *seen = json_object_new_object();
	json_object_object_add(seen, "io_uring", tri_json(uring));
	json_object_object_add(seen, "libaio", tri_json(libaio));
	json_object_object_add(o, "aio_seen", seen);

	json_object *disks = json_object_new_array();
	json_object *sdisks = kl_js_get(j, "disks", json_type_array);
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
	json_object_object_add(o, "changes", copy_or_null(kl_js_get(j, "changes", json_type_array)));
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
	json_object_object_add(o, "io_uring", tri_json(h.io_uring_kernel));
	json_object_object_add(o, "libaio", tri_json(h.libaio));
	json_object_object_add(o, "aio_nr", h.aio_nr >= 0 ? json_object_new_int64(h.aio_nr) : NULL);
	json_object_object_add(o, "aio_max_nr", h.aio_max_nr >= 0 ? json_object_new_int64(h.aio_max_nr) : NULL);
	json_object_object_add(o, "libaio_headroom", tri_json(h.libaio_headroom));
	kl_host_facts_free(&h);
	return o;
}

static bool matches(const struct kl_state_entry *e, const char *filter)
{
	const char *stem = kl_js_str(e->json, "stem");
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

/* ---- the table ---- */

static const char *s_or(json_object *o, const char *key, const char *dflt)
{
	const char *s = kl_js_str(o, key);
	return s && *s ? s : dflt;
}

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
	if (kl_js_bool(vm, "failed_open", false))
		fprintf(out, "  failed open: %s (QEMU runs the original command line, no policy applied)\n",
			s_or(vm, "failed_open_why", "?"));
	json_object *u = kl_js_get(vm, "unmanaged_disks", json_type_array);
	for (size_t i = 0; u && i < json_object_array_length(u); i++) {
		json_object *d = json_object_array_get_idx(u, i);
		fprintf(out, "  disk %s (%s): added while the VM runs, no policy decided it\n", s_or(d, "disk", "?"),
			s_or(d, "path", s_or(d, "node", "?")));
	}
}

static void print_vm(json_object *vm, FILE *out)
{
	const char *state = s_or(vm, "state", "?");
	_cleanup_free_ char *started = fmt_time(kl_js_int(vm, "started", 0));
	json_object *agent = kl_js_get(vm, "agent", json_type_object);
	json_object *seen = kl_js_get(vm, "aio_seen", json_type_object);
	struct strbuf h = STRBUF_INIT;

	strbuf_appendf(&h, "VM %s: pid %lld, %s", s_or(vm, "name", "?"), kl_js_int(vm, "pid", 0), state);
	if (kl_js_str(vm, "guest_status"))
		strbuf_appendf(&h, " (guest %s)", kl_js_str(vm, "guest_status"));
	if (kl_js_bool(vm, "process_stopped", false))
		strbuf_append(&h, " (process stopped by a signal)");
	strbuf_appendf(&h, ", started %s", started);
	if (kl_js_bool(agent, "alive", false))
		strbuf_appendf(&h, ", agent alive (pid %lld, %s)", kl_js_int(agent, "pid", 0), s_or(agent, "state", "?"));
	else
		strbuf_appendf(&h, ", agent gone");
	if (kl_js_get(vm, "aio_in_use", json_type_object)) {
		_cleanup_free_ char *use = kl_aio_use_text(kl_js_get(vm, "aio_in_use", json_type_object));
		strbuf_appendf(&h, ", kernel aio in use: %s", use);
	} else if (kl_js_bool(vm, "running", false)) {
		struct strbuf eng = STRBUF_INIT;
		if (kl_js_bool(seen, "io_uring", false))
			strbuf_append(&eng, "io_uring");
		if (kl_js_bool(seen, "libaio", false))
			strbuf_appendf(&eng, "%slibaio", eng.len ? ", " : "");
		strbuf_appendf(&h, ", kernel aio in use: %s", eng.len ? strbuf_str(&eng) : "none");
		strbuf_free(&eng);
	}
	fprintf(out, "%s\n", strbuf_str(&h));
	strbuf_free(&h);
	if (strcmp(state, "running") != 0 && kl_js_str(vm, "why"))
		fprintf(out, "  %s: %s\n", state, kl_js_str(vm, "why"));
	if (kl_js_str(agent, "error"))
		fprintf(out, "  agent: %s\n", kl_js_str(agent, "error"));
	print_outside_policy(vm, out);

	json_object *disks = kl_js_get(vm, "disks", json_type_array);
	size_t n = disks ? json_object_array_length(disks) : 0;
	if (n == 0) {
		fprintf(out, "  (no disks)\n");
		return;
	}
	char ***cells = xcalloc(n, sizeof *cells);
	size_t width[NCOLS];
	for (size_t c = 0; c < NCOLS; c++)
		width[c] = strlen(col_names[c]);
	for (size_t i = 0; i < n; i++) {
		json_object *d = json_object_array_get_idx(disks, i);
		json_object *st = kl_js_get(d, "stats", json_type_object);
		char **row = cells[i] = xcalloc(NCOLS, sizeof *row);
		bool from_qemu = strcmp(s_or(d, "cache_source", ""), "qemu") == 0;
		row[0] = xstrdup(s_or(d, "id", "-"));
		row[1] = xstrdup(s_or(d, "node", "-"));
		row[2] = xstrdup(s_or(d, "backend", "-"));
		row[3] = xstrdup(s_or(d, "fs", "-"));
		row[4] = xstrdup(s_or(d, "format", "-"));
		row[5] = xstrdup(s_or(d, "aio", "-"));
		row[6] = xasprintf("%s%s", s_or(d, "cache", "-"), from_qemu ? "" : "?");
		row[7] = xstrdup(wc_word(d));
		row[8] = xstrdup(s_or(d, "rule", "-"));
		row[9] = kl_throttle_text(kl_js_get(d, "throttle", json_type_object));
		if (st) {
			row[10] = xasprintf("%lld", kl_js_int(st, "rd_operations", 0));
			row[11] = xasprintf("%lld", kl_js_int(st, "wr_operations", 0));
			row[12] = human_bytes(kl_js_int(st, "rd_bytes", 0));
			row[13] = human_bytes(kl_js_int(st, "wr_bytes", 0));
			row[14] = xasprintf("%lld", kl_js_int(st, "flush_operations", 0));
			json_object *lat = kl_js_get(st, "avg_latency_ms", json_type_double);
			row[15] = lat ? xasprintf("%.2f ms", json_object_get_double(lat)) : xstrdup("-");
		} else {
			for (size_t c = 10; c <= 15; c++)
				row[c] = xstrdup("-");
		}
		row[16] = xstrdup(s_or(d, "path", "-"));
		for (size_t c = 0; c < NCOLS; c++)
			if (strlen(row[c]) > width[c])
				width[c] = strlen(row[c]);
	}
	fprintf(out, " ");
	for (size_t c = 0; c < NCOLS; c++)
		fprintf(out, " %-*s", c + 1 < NCOLS ? (int)width[c] : 0, col_names[c]);
	fprintf(out, "\n");
	for (size_t i = 0; i < n; i++) {
		json_object *d = json_object_array_get_idx(disks, i);
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
		const char *planned = kl_js_str(d, "cache_planned"), *cache = kl_js_str(d, "cache");
		if (planned && cache && strcmp(planned, cache) != 0)
			fprintf(out, "      note: QEMU runs cache=%s, kvm-launch recorded %s\n", cache, planned);
		if (kl_js_get(d, "settings_match_policy", json_type_boolean) && !kl_js_bool(d, "settings_match_policy", true))
			fprintf(out, "      note: the policy chose cache=%s at launch\n", s_or(d, "cache_policy", "?"));
		if (kl_js_str(d, "note"))
			fprintf(out, "      note: %s\n", kl_js_str(d, "note"));
		if (kl_js_str(d, "calibration"))
			fprintf(out, "      aio chosen from calibration %s\n", kl_js_str(d, "calibration"));
		json_object *reasons = kl_js_get(d, "reasons", json_type_array);
		for (size_t r = 0; reasons && r < json_object_array_length(reasons); r++)
			fprintf(out, "      %s\n", json_object_get_string(json_object_array_get_idx(reasons, r)));
	}
	free(cells);
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
	json_object *vms = kl_js_get(doc, "vms", json_type_array);
	size_t n = vms ? json_object_array_length(vms) : 0;
	for (size_t i = 0; i < n; i++) {
		if (i)
			fprintf(out, "\n");
		print_vm(json_object_array_get_idx(vms, i), out);
	}
	json_object *host = kl_js_get(doc, "host", json_type_object);
	fprintf(out, "%shost: io_uring %s, libaio %s", n ? "\n" : "", tri_word(host, "io_uring"), tri_word(host, "libaio"));
	if (kl_js_get(host, "aio_nr", json_type_int))
		fprintf(out, ", aio-nr %lld of %lld", kl_js_int(host, "aio_nr", 0), kl_js_int(host, "aio_max_nr", 0));
	fprintf(out, "\n");
}

/* ---- Prometheus ---- */

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
		json_object *disks = kl_js_get(json_object_array_get_idx(vms, i), "disks", json_type_array);
		for (size_t k = 0; disks && k < json_object_array_length(disks); k++) {
			json_object *d = json_object_array_get_idx(disks, k), *v;
			if (!json_object_object_get_ex(d, "guest_write_cache", &v) || !json_object_is_type(v, json_type_boolean))
				continue;
			const char *l[] = { "vm", vm_label[i], "disk", s_or(d, "id", s_or(d, "node", "")), NULL };
			strbuf_reset(&b);
			prom_labels(&b, l);
			fprintf(out, "kvm_launch_disk_guest_write_cache%s %d\n", strbuf_str(&b), json_object_get_boolean(v) ? 1 : 0);
		}
	}
	strbuf_free(&b);
}

static const char *disk_label(json_object *d)
{
	return s_or(d, "id", s_or(d, "node", ""));
}

/* kvm_launch_disk_policy_match: 1 when QEMU runs the cache mode the policy
 * chose at launch, 0 after a --set or any other change; no sample while
 * QEMU cannot be asked. */
static void prom_policy_match(FILE *out, json_object *vms, char **vm_label)
{
	struct strbuf b = STRBUF_INIT;
	prom_head(out, "kvm_launch_disk_policy_match", "gauge",
		  "1 if the disk runs the cache mode the policy chose at launch (policy_cache), 0 if not.");
	for (size_t i = 0; vms && i < json_object_array_length(vms); i++) {
		json_object *disks = kl_js_get(json_object_array_get_idx(vms, i), "disks", json_type_array);
		for (size_t k = 0; disks && k < json_object_array_length(disks); k++) {
			json_object *d = json_object_array_get_idx(disks, k), *m;
			if (!json_object_object_get_ex(d, "settings_match_policy", &m) || !m)
				continue;
			const char *l[] = { "vm", vm_label[i], "disk", disk_label(d),
					    "policy_cache", kl_js_str(d, "cache_policy"), NULL };
			strbuf_reset(&b);
			prom_labels(&b, l);
			fprintf(out, "kvm_launch_disk_policy_match%s %d\n", strbuf_str(&b), json_object_get_boolean(m) ? 1 : 0);
		}
	}
	strbuf_free(&b);
}

/* kvm_launch_disk_unmanaged: one sample per disk QEMU has that kvm-launch
 * never decided (added at runtime past it). */
static void prom_unmanaged(FILE *out, json_object *vms, char **vm_label)
{
	struct strbuf b = STRBUF_INIT;
	prom_head(out, "kvm_launch_disk_unmanaged", "gauge",
		  "1 for a disk QEMU runs that no policy decided (added at runtime past kvm-launch).");
	for (size_t i = 0; vms && i < json_object_array_length(vms); i++) {
		json_object *u = kl_js_get(json_object_array_get_idx(vms, i), "unmanaged_disks", json_type_array);
		for (size_t k = 0; u && k < json_object_array_length(u); k++) {
			json_object *d = json_object_array_get_idx(u, k);
			const char *l[] = { "vm", vm_label[i], "disk", s_or(d, "disk", ""), "node", kl_js_str(d, "node"),
					    "path", kl_js_str(d, "path"), NULL };
			strbuf_reset(&b);
			prom_labels(&b, l);
			fprintf(out, "kvm_launch_disk_unmanaged%s 1\n", strbuf_str(&b));
		}
	}
	strbuf_free(&b);
}

/* kvm_launch_vm_failed_open and kvm_launch_vm_io_error_paused, 0 or 1 per VM. */
static void prom_vm_flags(FILE *out, json_object *vms, char **vm_label)
{
	struct strbuf b = STRBUF_INIT;
	size_t n = vms ? json_object_array_length(vms) : 0;
	prom_head(out, "kvm_launch_vm_failed_open", "gauge",
		  "1 if kvm-launch failed open for this VM: QEMU got the original command line, no policy applied.");
	for (size_t i = 0; i < n; i++) {
		const char *l[] = { "vm", vm_label[i], NULL };
		strbuf_reset(&b);
		prom_labels(&b, l);
		fprintf(out, "kvm_launch_vm_failed_open%s %d\n", strbuf_str(&b),
			kl_js_bool(json_object_array_get_idx(vms, i), "failed_open", false));
	}
	prom_head(out, "kvm_launch_vm_io_error_paused", "gauge",
		  "1 if QEMU paused the guest on an I/O error (query-status: io-error).");
	for (size_t i = 0; i < n; i++) {
		const char *gs = kl_js_str(json_object_array_get_idx(vms, i), "guest_status");
		const char *l[] = { "vm", vm_label[i], NULL };
		strbuf_reset(&b);
		prom_labels(&b, l);
		fprintf(out, "kvm_launch_vm_io_error_paused%s %d\n", strbuf_str(&b), gs && strcmp(gs, "io-error") == 0);
	}
	strbuf_free(&b);
}

/* The state disk an agent.io_errors key (node name, else device) names. */
static const char *io_error_disk(json_object *disks, const char *key)
{
	for (size_t k = 0; disks && k < json_object_array_length(disks); k++) {
		json_object *d = json_object_array_get_idx(disks, k);
		const char *node = kl_js_str(d, "node"), *qn = kl_js_str(d, "qemu_node"), *id = kl_js_str(d, "id");
		if ((node && strcmp(node, key) == 0) || (qn && strcmp(qn, key) == 0) || (id && strcmp(id, key) == 0))
			return disk_label(d);
	}
	return key;
}

/* kvm_launch_disk_io_error_events_total: QEMU's BLOCK_IO_ERROR events, as
 * the agent counted them. */
static void prom_io_errors(FILE *out, json_object *vms, char **vm_label)
{
	struct strbuf b = STRBUF_INIT;
	prom_head(out, "kvm_launch_disk_io_error_events_total", "counter",
		  "BLOCK_IO_ERROR events QEMU reported for the disk (counted by the VM's agent).");
	for (size_t i = 0; vms && i < json_object_array_length(vms); i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		json_object *counts = kl_js_get(kl_js_get(vm, "agent", json_type_object), "io_errors", json_type_object);
		if (!counts)
			continue;
		json_object_object_foreach(counts, key, val) {
			const char *l[] = { "vm", vm_label[i], "disk",
					    io_error_disk(kl_js_get(vm, "disks", json_type_array), key), NULL };
			strbuf_reset(&b);
			prom_labels(&b, l);
			fprintf(out, "kvm_launch_disk_io_error_events_total%s %" PRId64 "\n", strbuf_str(&b),
				json_object_get_int64(val));
		}
	}
	strbuf_free(&b);
}

/* kvm_launch_host_libaio_headroom: 0 when new aio=native contexts may fail. */
static void prom_host_headroom(FILE *out, json_object *host)
{
	json_object *v;
	if (!json_object_object_get_ex(host, "libaio_headroom", &v) || !v)
		return;
	prom_head(out, "kvm_launch_host_libaio_headroom", "gauge",
		  "1 if fs.aio-nr leaves room for new aio=native VMs, 0 if kernel AIO is nearly exhausted.");
	fprintf(out, "kvm_launch_host_libaio_headroom %d\n", json_object_get_boolean(v) ? 1 : 0);
}

void kl_status_print_prometheus(json_object *doc, FILE *out)
{
	json_object *vms = kl_js_get(doc, "vms", json_type_array);
	size_t n = vms ? json_object_array_length(vms) : 0;
	struct strbuf b = STRBUF_INIT;
	/* The vm label of each VM: its name, or NAME@PID for a later VM of the
	 * same name (two QEMUs given one -name, or a user's and the system's
	 * state directory), since a repeated label set makes the whole text
	 * invalid for node_exporter. */
	char **vm_label = xcalloc(n + 1, sizeof *vm_label);
	for (size_t i = 0; i < n; i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		const char *name = s_or(vm, "name", "");
		bool dup = false;
		for (size_t j = 0; j < i && !dup; j++)
			dup = strcmp(name, s_or(json_object_array_get_idx(vms, j), "name", "")) == 0;
		vm_label[i] = dup ? xasprintf("%s@%lld", name, kl_js_int(vm, "pid", 0)) : xstrdup(name);
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
			case 0: v = kl_js_bool(vm, "running", false); break;
			case 1: v = kl_js_bool(vm, "responsive", false); break;
			case 2: v = kl_js_bool(kl_js_get(vm, "agent", json_type_object), "alive", false); break;
			default: v = kl_js_int(vm, "started", 0);
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
		json_object *disks = kl_js_get(vm, "disks", json_type_array);
		for (size_t k = 0; disks && k < json_object_array_length(disks); k++) {
			json_object *d = json_object_array_get_idx(disks, k);
			const char *l[] = { "vm", vm_label[i], "disk", s_or(d, "id", s_or(d, "node", "")),
					    "node", kl_js_str(d, "node"), "path", kl_js_str(d, "path"),
					    "backend", kl_js_str(d, "backend"), "fs", kl_js_str(d, "fs"),
					    "format", kl_js_str(d, "format"), "aio", kl_js_str(d, "aio"),
					    "cache", kl_js_str(d, "cache"), "rule", kl_js_str(d, "rule"), NULL };
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
			json_object *disks = kl_js_get(vm, "disks", json_type_array);
			for (size_t k = 0; disks && k < json_object_array_length(disks); k++) {
				json_object *d = json_object_array_get_idx(disks, k);
				json_object *st = kl_js_get(d, "stats", json_type_object);
				if (!st)
					continue;
				/* Only labels that never change while the VM runs: a
				 * --set cache= must not split a counter into a new
				 * series.  aio and cache are on kvm_launch_disk_info. */
				const char *l[] = { "vm", vm_label[i], "disk", s_or(d, "id", s_or(d, "node", "")),
						    "backend", kl_js_str(d, "backend"), NULL };
				strbuf_reset(&b);
				prom_labels(&b, l);
				if (!dm[m].stat) {
					long long v = kl_js_int(st, "failed_rd_operations", 0) +
						      kl_js_int(st, "failed_wr_operations", 0) +
						      kl_js_int(st, "failed_flush_operations", 0);
					fprintf(out, "%s%s %lld\n", dm[m].name, strbuf_str(&b), v);
				} else if (dm[m].scale == 1) {
					fprintf(out, "%s%s %lld\n", dm[m].name, strbuf_str(&b), kl_js_int(st, dm[m].stat, 0));
				} else {
					fprintf(out, "%s%s %.9f\n", dm[m].name, strbuf_str(&b),
						(double)kl_js_int(st, dm[m].stat, 0) * dm[m].scale);
				}
			}
		}
	}

	prom_head(out, "kvm_launch_disk_throttle", "gauge",
		  "I/O limits in force on a disk (block_set_io_throttle), by limit name.");
	for (size_t i = 0; i < n; i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		json_object *disks = kl_js_get(vm, "disks", json_type_array);
		for (size_t k = 0; disks && k < json_object_array_length(disks); k++) {
			json_object *d = json_object_array_get_idx(disks, k);
			json_object *t = kl_js_get(d, "throttle", json_type_object);
			if (!t)
				continue;
			json_object_object_foreach(t, key, val) {
				if (!json_object_is_type(val, json_type_int))
					continue;
				const char *l[] = { "vm", vm_label[i], "disk", s_or(d, "id", s_or(d, "node", "")),
						    "limit", key, NULL };
				strbuf_reset(&b);
				prom_labels(&b, l);
				fprintf(out, "kvm_launch_disk_throttle%s %" PRId64 "\n", strbuf_str(&b),
					json_object_get_int64(val));
			}
		}
	}

	json_object *host = kl_js_get(doc, "host", json_type_object);
	json_object *v;
	prom_head(out, "kvm_launch_host_io_uring", "gauge", "1 if the kernel lets processes use io_uring.");
	fprintf(out, "kvm_launch_host_io_uring %d\n",
		json_object_object_get_ex(host, "io_uring", &v) && v && json_object_get_boolean(v) ? 1 : 0);
	if (kl_js_get(host, "aio_nr", json_type_int)) {
		prom_head(out, "kvm_launch_host_aio_nr", "gauge", "Kernel AIO events allocated (fs.aio-nr).");
		fprintf(out, "kvm_launch_host_aio_nr %lld\n", kl_js_int(host, "aio_nr", 0));
		prom_head(out, "kvm_launch_host_aio_max_nr", "gauge", "Kernel AIO events allowed (fs.aio-max-nr).");
		fprintf(out, "kvm_launch_host_aio_max_nr %lld\n", kl_js_int(host, "aio_max_nr", 0));
	}
	prom_host_headroom(out, host);
	prom_policy_match(out, vms, vm_label);
	prom_unmanaged(out, vms, vm_label);
	prom_vm_flags(out, vms, vm_label);
	prom_io_errors(out, vms, vm_label);
	strbuf_free(&b);
	for (size_t i = 0; i < n; i++)
		free(vm_label[i]);
	free(vm_label);
}

/* ---- main ---- */

int kl_status_main(const char *state_dir, const char *name_filter, bool json, bool prometheus)
{
	_cleanup_json_ json_object *doc = kl_status_collect(state_dir, name_filter, KL_STATUS_TIMEOUT_MS);
	json_object *vms = kl_js_get(doc, "vms", json_type_array);
	json_object *errors = kl_js_get(doc, "errors", json_type_array);
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
