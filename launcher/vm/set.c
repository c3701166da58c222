/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/vm/set.h"
#include "launcher/vm/set-int.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "common/json.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "common/xalloc.h"
#include "policy/types.h"
#include "qmp/qmp.h"
#include "launcher/argv/keyval.h"
#include "launcher/vm/block.h"
#include "launcher/vm/cachemode.h"
#include "launcher/vm/procinfo.h"
#include "launcher/vm/state.h"
#include "launcher/vm/view.h"

#define TKEY(i) (kl_throttle_keys[i].name)
#define SET_CONNECT_TIMEOUT_MS 3000
#define SET_CALL_TIMEOUT_MS 10000

/* ---- the request ---- */

static bool is_throttle_key(const char *k)
{
	return kl_throttle_key_find(k) >= 0 || strcmp(k, "group") == 0;
}

struct set_request {
	enum kl_cache cache;          /* UNSET: no cache change */
	json_object *throttle;        /* keys to set; empty: none */
};

static int parse_size(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	if (*s < '0' || *s > '9')
		return -1;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -1;
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (*end || v > ((unsigned long long)INT64_MAX >> shift))
		return -1;
	*out = (int64_t)(v << shift);
	return 0;
}

static int parse_settings(int argc, char **argv, struct set_request *r, struct kl_error *err)
{
	r->cache = KL_CACHE_UNSET;
	r->throttle = json_object_new_object();
	for (int i = 0; i < argc; i++) {
		const char *eq = strchr(argv[i], '=');
		if (!eq || eq == argv[i])
			return kl_error_fail(err, "'%s': a setting is KEY=VALUE (cache=none, iops=500...)", argv[i]);
		_cleanup_free_ char *key = xstrndup(argv[i], (size_t)(eq - argv[i]));
		const char *val = eq + 1;
		if (strcmp(key, "cache") == 0) {
			enum kl_cache c;
			if (kl_cache_parse(val, &c) < 0 || c == KL_CACHE_AUTO || c == KL_CACHE_KEEP)
				return kl_error_fail(err, "cache=%s: not a cache mode (none, writeback, unsafe)", val);
			r->cache = c;
		} else if (strcmp(key, "aio") == 0) {
			return kl_error_fail(err, "aio cannot change on a running VM (QEMU refuses: \"Cannot change "
						  "the option 'aio'\"); it is chosen at start");
		} else if (strcmp(key, "group") == 0) {
			if (!*val)
				return kl_error_fail(err, "group=: empty group name");
			json_object_object_add(r->throttle, "group", json_object_new_string(val));
		} else if (is_throttle_key(key)) {
			int64_t v;
			if (parse_size(val, &v) < 0)
				return kl_error_fail(err, "%s=%s: not a non-negative number (K, M, G, T suffixes allowed)",
						     key, val);
			json_object_object_add(r->throttle, key, json_object_new_int64(v));
		} else {
			return kl_error_fail(err, "unknown setting '%s' (cache, bps, bps_rd, bps_wr, iops, iops_rd, "
						  "iops_wr, their _max and _max_length, iops_size, group)", key);
		}
	}
	return 0;
}

/* ---- the disk ---- */

static bool same_file(const char *a, const char *b)
{
	char ra[PATH_MAX], rb[PATH_MAX];
	if (!a || !b)
		return false;
	if (strcmp(a, b) == 0)
		return true;
	return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

static json_object *find_disk(json_object *state, const char *name, struct kl_error *err)
{
	json_object *disks = kl_json_get(state, "disks", json_type_array);
	size_t n = disks ? json_object_array_length(disks) : 0;
	json_object *found = NULL;
	int matches = 0;

	for (int pass = 0; pass < 2 && !found; pass++) {
		for (size_t i = 0; i < n; i++) {
			json_object *d = json_object_array_get_idx(disks, i);
			const char *id = kl_json_str(d, "id"), *node = kl_json_str(d, "node");
			bool m = pass == 0 ? (id && strcmp(id, name) == 0) || (node && strcmp(node, name) == 0)
					   : same_file(kl_json_str(d, "path"), name);
			if (m) {
				if (!found)
					found = d;
				matches++;
			}
		}
	}
	if (!found)
		kl_error_set(err, "no disk '%s' in this VM (give the device id, node name or image path)", name);
	else if (matches > 1)
		kl_error_set(err, "'%s' names %d disks: give the device id instead", name, matches);
	return matches == 1 ? found : NULL;
}

/* ---- verification ---- */

/* Every fd of pid on image has O_DIRECT == direct?  Fills what for the message. */
static int check_odirect(pid_t pid, const char *image, bool direct, struct strbuf *what, struct kl_error *err)
{
	int fds[16];
	int n = kl_proc_fds_for_path(pid, image, fds, 16);
	if (n < 0) {
		strbuf_appendf(what, "cannot read /proc/%d/fd: %s", (int)pid, strerror(errno));
		return 0;
	}
	if (n == 0) {
		strbuf_appendf(what, "no fd of pid %d on %s", (int)pid, image);
		return 0;
	}
	for (int i = 0; i < n && i < 16; i++) {
		unsigned long flags;
		if (kl_proc_fd_flags(pid, fds[i], &flags) < 0)
			continue;
		bool has = (flags & KL_O_DIRECT_FLAG) != 0;
		strbuf_appendf(what, "%sfd %d flags %lo", i ? ", " : "", fds[i], flags);
		if (has != direct)
			return kl_error_fail(err, "QEMU accepted the change but fd %d on %s still has O_DIRECT %s "
						  "(flags %lo)", fds[i], image, has ? "on" : "off", flags);
	}
	return 0;
}

/* ---- state update ---- */

struct set_record {
	json_object *disk;            /* the state's disk (for matching) */
	const char *cache;            /* new mode or NULL */
	json_object *throttle;        /* new throttle values or NULL */
	json_object *changes;         /* entries to append */
};

static int record_fn(json_object *st, void *vctx, struct kl_error *err)
{
	struct set_record *r = vctx;
	(void)err;
	json_object *disks = kl_json_get(st, "disks", json_type_array);
	const char *id = kl_json_str(r->disk, "id"), *node = kl_json_str(r->disk, "node");
	for (size_t i = 0; disks && i < json_object_array_length(disks); i++) {
		json_object *d = json_object_array_get_idx(disks, i);
		const char *did = kl_json_str(d, "id"), *dnode = kl_json_str(d, "node");
		bool same = (id && did && strcmp(id, did) == 0) || (!id && !did && node && dnode && strcmp(node, dnode) == 0);
		if (!same)
			continue;
		if (r->cache)
			json_object_object_add(d, "cache", json_object_new_string(r->cache));
		if (r->throttle) {
			if (json_object_object_length(r->throttle))
				json_object_object_add(d, "throttle", json_object_get(r->throttle));
			else
				json_object_object_del(d, "throttle");
		}
		break;
	}
	json_object *changes = kl_json_get(st, "changes", json_type_array);
	if (!changes) {
		changes = json_object_new_array();
		json_object_object_add(st, "changes", changes);
	}
	for (size_t i = 0; i < json_object_array_length(r->changes); i++)
		json_object_array_add(changes, json_object_get(json_object_array_get_idx(r->changes, i)));
	size_t n = json_object_array_length(changes);
	if (n > KL_STATE_MAX_CHANGES)
		json_object_array_del_idx(changes, 0, n - KL_STATE_MAX_CHANGES);
	return 1;
}

static json_object *change_entry(const char *disk, const char *setting, json_object *from, json_object *to)
{
	json_object *c = json_object_new_object();
	json_object_object_add(c, "time", json_object_new_int64((int64_t)time(NULL)));
	json_object_object_add(c, "by", json_object_new_string("set"));
	json_object_object_add(c, "disk", json_object_new_string(disk));
	json_object_object_add(c, "setting", json_object_new_string(setting));
	json_object_object_add(c, "from", from);
	json_object_object_add(c, "to", to);
	return c;
}

/* ---- main ---- */

/* query-named-block-nodes, flat (no backing chains); NULL if QEMU refuses. */
static json_object *named_nodes(struct qmp_client *qmp)
{
	struct kl_error nerr = KL_ERROR_INIT;
	json_object *named = NULL;
	_cleanup_json_ json_object *args = json_object_new_object();
	json_object_object_add(args, "flat", json_object_new_boolean(true));
	if (qmp_execute(qmp, "query-named-block-nodes", args, SET_CALL_TIMEOUT_MS, &named, &nerr) < 0)
		return NULL;
	return named;
}

/* The guest write cache is fixed at start: a mode that needs the other one
 * is refused.  Judged by what was configured, never by the guest's flag now. */
static int check_write_cache(const char *vm, const char *label, enum kl_cache want_mode,
			     const struct kl_cache_view *v, struct kl_error *err)
{
	bool want = kl_cache_flags(want_mode).writeback;
	if (want == v->flags.writeback)
		return 0;
	return kl_error_fail(err, "%s: disk %s: cache=%s needs the guest write cache %s, but the disk was %s with "
				  "it %s (it runs cache=%s) and that is fixed at start: writethrough and directsync can "
				  "only be switched with each other, none/writeback/unsafe likewise; restart the VM to "
				  "cross", vm, label, kl_cache_name(want_mode), want ? "on" : "off",
			     v->configured ? "started" : "seen", v->flags.writeback ? "on" : "off",
			     kl_cache_view_mode(v));
}

/* One --set, from the request to the record in the state file. */
struct set_run {
	struct kl_state_entry e;
	bool have_entry;
	const char *vm, *label;       /* for messages */
	bool force;
	struct set_request req;
	json_object *disk;            /* the state's disk (borrowed from e.json) */
	struct qmp_client *qmp;
	json_object *blocks;          /* query-block */
	json_object *block, *ins;     /* the disk's entry and its "inserted" (borrowed from blocks) */
	json_object *named;           /* query-named-block-nodes, for a cache change */
	struct kl_cache_view view;
	struct kl_cache_flags cur, want;
	bool cache_change, throttle_change;
	struct reopen_plan plan;
	json_object *throttle_args, *old_throttle, *new_throttle;
	json_object *changes;         /* entries for the state file's "changes" */
};

static void set_run_free(struct set_run *r)
{
	if (r->qmp)
		qmp_close(r->qmp);
	json_object *const objs[] = { r->blocks, r->named, r->throttle_args, r->old_throttle, r->new_throttle,
				      r->req.throttle, r->plan.options, r->changes };
	for (size_t i = 0; i < sizeof objs / sizeof *objs; i++)
		if (objs[i])
			json_object_put(objs[i]);
	free(r->plan.image);
	if (r->have_entry)
		kl_state_entries_free(&r->e, 1);
}

/* The VM (running), the request, the disk, QEMU's monitor and what
 * query-block says of the disk. */
static int set_open(struct set_run *r, const char *state_dir, int argc, char **argv, struct kl_error *err)
{
	if (argc < 3)
		return kl_error_fail(err, "usage: kvm-launch --set NAME DISK SETTING... (e.g. cache=writeback iops=500)");
	if (kl_state_find(state_dir, argv[0], &r->e, err) < 0)
		return -1;
	r->have_entry = true;
	r->vm = r->e.name;
	if (kl_state_entry_stale(&r->e))
		return kl_error_fail(err, "%s: not running (pid %d is %s)", r->vm, (int)r->e.pid,
				     kl_proc_state_name(r->e.proc));
	if (parse_settings(argc - 2, argv + 2, &r->req, err) < 0)
		return -1;
	r->disk = find_disk(r->e.json, argv[1], err);
	if (!r->disk) {
		kl_error_prefix(err, "%s", r->vm);
		return -1;
	}
	r->label = kl_json_str(r->disk, "id") ? kl_json_str(r->disk, "id") : kl_json_str(r->disk, "node");
	if (!r->label)
		r->label = argv[1];
	if (!kl_json_str(r->e.json, "query_socket"))
		return kl_error_fail(err, "%s: started without kvm-launch's query monitor: nothing can be changed live",
				     r->vm);
	if (kl_state_may_drive(&r->e, err) < 0)
		return -1;
	if (kl_vm_qmp(&r->e, SET_CONNECT_TIMEOUT_MS, &r->qmp, err) < 0) {
		kl_error_prefix(err, "%s: cannot reach QEMU's monitor (%s/%s.qmp.sock)", r->vm, r->e.dir, r->e.stem);
		return -1;
	}
	if (qmp_execute(r->qmp, "query-block", NULL, SET_CALL_TIMEOUT_MS, &r->blocks, err) < 0) {
		kl_error_prefix(err, "%s: query-block", r->vm);
		return -1;
	}
	r->block = kl_block_find(r->blocks, r->disk);
	r->ins = kl_json_get(r->block, "inserted", json_type_object);
	if (!r->block || !r->ins)
		return kl_error_fail(err, "%s: disk %s: QEMU does not list it (or it has no medium)", r->vm, r->label);
	return 0;
}

/* May the cache mode change from r->cur to r->want on this disk? */
static int check_cache_allowed(struct set_run *r, struct kl_error *err)
{
	const char *vm = r->vm, *label = r->label, *mode = kl_cache_name(r->req.cache);
	if (check_write_cache(vm, label, r->req.cache, &r->view, err) < 0)
		return -1;
	if (r->want.no_flush && !r->cur.no_flush && !r->force)
		return kl_error_fail(err, "%s: disk %s: cache=unsafe ignores the guest's flushes (a host crash loses data "
					  "the guest believes is safe): add --force if you mean it", vm, label);
	if (!r->cur.direct || r->want.direct)
		return 0;
	const char *aio = kl_json_str(r->disk, "aio");
	if (aio && strcmp(aio, "native") == 0)
		return kl_error_fail(err, "%s: disk %s: it runs aio=native, which needs O_DIRECT: cache=%s would drop "
					  "O_DIRECT under it (QEMU does not re-check this on reopen); aio cannot "
					  "change while the VM runs", vm, label, mode);
	if (kl_json_bool(r->disk, "shared", false) && !r->force)
		return kl_error_fail(err, "%s: disk %s: on shared storage, dropping O_DIRECT (cache=%s) makes "
					  "migration unsafe (libvirt still believes cache=none): add --force if you mean it",
				     vm, label, mode);
	if (kl_json_bool(r->e.json, "incoming", false) && !r->force)
		return kl_error_fail(err, "%s: the VM was started with -incoming: dropping O_DIRECT (cache=%s) on "
					  "disk %s can make a migration unsafe: add --force if you mean it", vm, mode, label);
	return 0;
}

/* Check a cache change and plan its blockdev-reopen; nothing changes yet. */
static int plan_cache(struct set_run *r, struct kl_error *err)
{
	if (r->req.cache != KL_CACHE_UNSET)
		r->named = named_nodes(r->qmp);
	kl_cache_view_of(r->disk, r->block, r->named, &r->view);
	r->cur = r->want = r->view.flags;
	if (r->req.cache == KL_CACHE_UNSET)
		return 0;
	r->want = kl_cache_flags(r->req.cache);
	if (check_cache_allowed(r, err) < 0)
		return -1;
	r->cache_change = r->want.direct != r->cur.direct || r->want.no_flush != r->cur.no_flush;
	if (!r->cache_change)
		return 0;
	_cleanup_json_ json_object *argvj = kl_set_blockdev_argv(r->e.json); /* with the runtime nodes */
	const char *top = kl_json_str(r->ins, "node-name");
	const char *dev = kl_json_str(r->block, "device");
	if (!kl_json_get(r->e.json, "argv", json_type_array))
		return kl_error_fail(err, "%s: the state file has no command line", r->vm);
	int rc;
	if (dev && *dev) /* -drive always makes a named BlockBackend; -blockdev never */
		rc = kl_set_plan_drive(argvj, r->block, r->named, r->want, &r->plan, err);
	else
		rc = kl_set_plan_blockdev(argvj, top ? top : kl_json_str(r->disk, "node"), r->want, &r->plan, err);
	if (rc < 0)
		kl_error_prefix(err, "%s: disk %s: cannot change the cache mode live", r->vm, r->label);
	return rc;
}

/* blockdev-reopen, then check every reopened node and the kernel's fds. */
static int apply_cache(struct set_run *r, struct kl_error *err)
{
	const char *vm = r->vm, *label = r->label;
	if (r->req.cache != KL_CACHE_UNSET && !r->cache_change)
		printf("%s: %s: cache is already %s\n", vm, label, kl_cache_name(r->req.cache));
	if (!r->cache_change)
		return 0;
	_cleanup_json_ json_object *args = json_object_new_object();
	json_object_object_add(args, "options", json_object_get(r->plan.options));
	kl_debug("blockdev-reopen %s", json_object_to_json_string_ext(args, JSON_C_TO_STRING_PLAIN));
	if (qmp_execute(r->qmp, "blockdev-reopen", args, SET_CALL_TIMEOUT_MS, NULL, err) < 0) {
		kl_error_prefix(err, "%s: disk %s: blockdev-reopen refused (nothing changed)", vm, label);
		return -1;
	}
	/* Every reopened node, as QEMU reports it now. */
	_cleanup_json_ json_object *after = named_nodes(r->qmp);
	_cleanup_strbuf_ struct strbuf nodes = STRBUF_INIT;
	if (!after)
		return kl_error_fail(err, "%s: disk %s: QEMU accepted the reopen but query-named-block-nodes failed: "
					  "the change is not verified", vm, label);
	if (kl_cache_check_nodes(after, r->plan.options, r->want, &nodes, err) < 0) {
		kl_error_prefix(err, "%s: disk %s", vm, label);
		return -1;
	}
	kl_debug("after the reopen: %s", strbuf_str(&nodes));
	_cleanup_strbuf_ struct strbuf what = STRBUF_INIT;
	const char *image = r->plan.image ? r->plan.image : kl_json_str(r->disk, "path");
	if (image && check_odirect(r->e.pid, image, r->want.direct, &what, err) < 0) {
		kl_error_prefix(err, "%s: disk %s", vm, label);
		return -1;
	}
	printf("%s: %s: cache %s -> %s (O_DIRECT %s%s%s)\n", vm, label, kl_cache_flags_name(r->cur),
	       kl_cache_name(r->req.cache), r->want.direct ? "on" : "off", what.len ? ": " : "", strbuf_str(&what));
	json_object_array_add(r->changes, change_entry(label, "cache", json_object_new_string(kl_cache_flags_name(r->cur)),
						       json_object_new_string(kl_cache_name(r->req.cache))));
	return 0;
}

/* block_set_io_throttle, then report each limit that moved or was asked. */
static int apply_throttle(struct set_run *r, struct kl_error *err)
{
	const char *vm = r->vm, *label = r->label;
	if (!r->throttle_change)
		return 0;
	kl_debug("block_set_io_throttle %s", json_object_to_json_string_ext(r->throttle_args, JSON_C_TO_STRING_PLAIN));
	if (qmp_execute(r->qmp, "block_set_io_throttle", r->throttle_args, SET_CALL_TIMEOUT_MS, NULL, err) < 0) {
		kl_error_prefix(err, "%s: disk %s: block_set_io_throttle refused%s", vm, label,
				r->cache_change ? " (the cache change above was made)" : " (nothing changed)");
		return -1;
	}
	_cleanup_json_ json_object *after = NULL;
	if (qmp_execute(r->qmp, "query-block", NULL, SET_CALL_TIMEOUT_MS, &after, err) < 0) {
		kl_error_prefix(err, "%s: disk %s: query-block after throttling", vm, label);
		return -1;
	}
	r->new_throttle = kl_throttle_current(kl_block_find(after, r->disk));
	bool printed = false;
	for (size_t i = 0; i < KL_THROTTLE_NKEYS; i++) {
		const char *key = TKEY(i);
		int64_t a = kl_throttle_value(r->old_throttle, key, NULL), b = kl_throttle_value(r->new_throttle, key, NULL);
		bool asked = json_object_object_get_ex(r->req.throttle, key, NULL);
		if (a == b && !asked)
			continue;
		printf("%s: %s: %s %" PRId64 " -> %" PRId64 "\n", vm, label, key, a, b);
		printed = true;
		json_object_array_add(r->changes, change_entry(label, key, json_object_new_int64(a), json_object_new_int64(b)));
		if (asked && b != kl_throttle_value(r->req.throttle, key, NULL))
			return kl_error_fail(err, "%s: disk %s: QEMU accepted %s=%" PRId64 " but reports %" PRId64, vm,
					     label, key, kl_throttle_value(r->req.throttle, key, NULL), b);
	}
	if (kl_json_str(r->req.throttle, "group"))
		printf("%s: %s: group %s\n", vm, label, kl_json_str(r->req.throttle, "group"));
	else if (!printed)
		printf("%s: %s: throttle unchanged\n", vm, label);
	return 0;
}

/* What changed goes into the state file; a failure there is only a warning:
 * the VM has changed already. */
static void record(struct set_run *r)
{
	if (json_object_array_length(r->changes) == 0)
		return;
	struct kl_error rerr = KL_ERROR_INIT;
	struct set_record rec = { r->disk, r->cache_change ? kl_cache_name(r->req.cache) : NULL, r->new_throttle,
				  r->changes };
	if (kl_state_update(r->e.file, r->e.pid, r->e.start_ticks, record_fn, &rec, NULL, &rerr) < 0)
		kl_warn("%s: the change was made but the state file was not updated: %s", r->vm, rerr.msg);
}

/* Everything is checked before anything changes; once something has
 * changed, what was made is recorded even when a later step fails. */
static int set_run(const char *state_dir, int argc, char **argv, bool force, struct kl_error *err)
{
	_cleanup_(set_run_free) struct set_run r = { .force = force, .req = { KL_CACHE_UNSET, NULL } };
	r.changes = json_object_new_array();

	if (set_open(&r, state_dir, argc, argv, err) < 0 || plan_cache(&r, err) < 0)
		return -1;
	r.throttle_change = json_object_object_length(r.req.throttle) > 0;
	r.old_throttle = kl_throttle_current(r.block);
	if (r.throttle_change)
		r.throttle_args = kl_throttle_args(r.block, r.req.throttle);

	if (apply_cache(&r, err) < 0)
		return -1;
	int rc = apply_throttle(&r, err);
	record(&r);
	return rc;
}

int kl_set_main(const char *state_dir, int argc, char **argv, bool force)
{
	struct kl_error err = KL_ERROR_INIT;
	fflush(stdout);
	if (set_run(state_dir, argc, argv, force, &err) < 0) {
		fflush(stdout);
		kl_err("%s", err.msg);
		return 1;
	}
	fflush(stdout);
	return 0;
}
