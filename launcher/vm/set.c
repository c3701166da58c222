#include "launcher/vm/set.h"

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
#include "common/log.h"
#include "common/strbuf.h"
#include "common/xalloc.h"
#include "policy/types.h"
#include "qmp/qmp.h"
#include "launcher/argv/keyval.h"
#include "launcher/vm/cachemode.h"
#include "launcher/vm/procinfo.h"
#include "launcher/vm/state.h"
#include "launcher/vm/view.h"

#define SET_CONNECT_TIMEOUT_MS 3000
#define SET_CALL_TIMEOUT_MS 10000

/* ---- shared helpers ---- */

char *kl_qdev_id(const char *qdev)
{
	static const char prefix[] = "/machine/peripheral/";
	if (!qdev)
		return NULL;
	if (strncmp(qdev, prefix, sizeof prefix - 1) == 0) {
		const char *id = qdev + sizeof prefix - 1;
		return xstrndup(id, strcspn(id, "/"));
	}
	return xstrdup(qdev);
}

static const char *entry_node(json_object *entry)
{
	const char *n = kl_js_str(kl_js_get(entry, "inserted", json_type_object), "node-name");
	return n ? n : kl_js_str(entry, "node-name");
}

json_object *kl_block_find(json_object *list, json_object *disk)
{
	const char *id = kl_js_str(disk, "id");
	const char *node = kl_js_str(disk, "node");
	size_t n = list && json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;

	for (int pass = 0; pass < 3; pass++) {
		for (size_t i = 0; i < n; i++) {
			json_object *e = json_object_array_get_idx(list, i);
			const char *en = entry_node(e);
			const char *dev = kl_js_str(e, "device");
			switch (pass) {
			case 0:
				if (node && en && strcmp(node, en) == 0)
					return e;
				break;
			case 1: {
				_cleanup_free_ char *qid = kl_qdev_id(kl_js_str(e, "qdev"));
				if (id && qid && strcmp(id, qid) == 0)
					return e;
				break;
			}
			default:
				if (dev && *dev && ((id && strcmp(id, dev) == 0) || (node && strcmp(node, dev) == 0)))
					return e;
			}
		}
	}
	return NULL;
}

static const char *const throttle_base[] = { "bps", "bps_rd", "bps_wr", "iops", "iops_rd", "iops_wr" };
static const char *const throttle_extra[] = {
	"bps_max", "bps_rd_max", "bps_wr_max", "iops_max", "iops_rd_max", "iops_wr_max",
	"bps_max_length", "bps_rd_max_length", "bps_wr_max_length",
	"iops_max_length", "iops_rd_max_length", "iops_wr_max_length",
	"iops_size",
};

static bool is_throttle_key(const char *k)
{
	for (size_t i = 0; i < 6; i++)
		if (strcmp(k, throttle_base[i]) == 0)
			return true;
	for (size_t i = 0; i < sizeof throttle_extra / sizeof *throttle_extra; i++)
		if (strcmp(k, throttle_extra[i]) == 0)
			return true;
	return strcmp(k, "group") == 0;
}

/* "bps_rd_max_length" -> "bps_rd" ; "iops_size" -> NULL */
static char *base_of_key(const char *k)
{
	const char *m = strstr(k, "_max");
	return m ? xstrndup(k, (size_t)(m - k)) : NULL;
}

static int64_t value_of(json_object *o, const char *k, bool *present)
{
	json_object *v;
	if (o && json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_int)) {
		if (present)
			*present = true;
		return json_object_get_int64(v);
	}
	if (present)
		*present = false;
	return 0;
}

json_object *kl_throttle_args(json_object *block, json_object *set)
{
	json_object *ins = kl_js_get(block, "inserted", json_type_object);
	json_object *args = json_object_new_object();
	const char *qdev = kl_js_str(block, "qdev");
	const char *dev = kl_js_str(block, "device");

	if (qdev && *qdev)
		json_object_object_add(args, "id", json_object_new_string(qdev));
	else
		json_object_object_add(args, "device", json_object_new_string(dev ? dev : ""));
	for (size_t i = 0; i < 6; i++) {
		bool given;
		int64_t v = value_of(set, throttle_base[i], &given);
		if (!given)
			v = value_of(ins, throttle_base[i], NULL);
		json_object_object_add(args, throttle_base[i], json_object_new_int64(v));
	}
	for (size_t i = 0; i < sizeof throttle_extra / sizeof *throttle_extra; i++) {
		const char *k = throttle_extra[i];
		bool given;
		int64_t v = value_of(set, k, &given);
		if (!given) {
			v = value_of(ins, k, NULL);
			/* A burst without its base value is refused by QEMU: drop the
			 * old burst when the base was just set to 0. */
			_cleanup_free_ char *base = base_of_key(k);
			if (base && value_of(args, base, NULL) == 0)
				v = 0;
			if (base && strstr(k, "_length")) {
				_cleanup_free_ char *max = xasprintf("%s_max", base);
				if (value_of(args, max, NULL) == 0 && !value_of(set, max, NULL))
					v = 0;
			}
		}
		if (v)
			json_object_object_add(args, k, json_object_new_int64(v));
	}
	const char *group = kl_js_str(set, "group");
	if (!group)
		group = kl_js_str(ins, "group");
	if (group)
		json_object_object_add(args, "group", json_object_new_string(group));
	return args;
}

json_object *kl_throttle_current(json_object *block)
{
	json_object *ins = kl_js_get(block, "inserted", json_type_object);
	json_object *o = json_object_new_object();
	bool any = false;
	for (size_t i = 0; i < 6; i++) {
		int64_t v = value_of(ins, throttle_base[i], NULL);
		if (v) {
			json_object_object_add(o, throttle_base[i], json_object_new_int64(v));
			any = true;
		}
	}
	for (size_t i = 0; i < sizeof throttle_extra / sizeof *throttle_extra; i++) {
		int64_t v = value_of(ins, throttle_extra[i], NULL);
		if (v && (any || strcmp(throttle_extra[i], "iops_size") != 0))
			json_object_object_add(o, throttle_extra[i], json_object_new_int64(v));
	}
	/* QEMU names the group after the device when none was given: only a
	 * chosen group is worth showing. */
	const char *group = kl_js_str(ins, "group");
	const char *qdev = kl_js_str(block, "qdev"), *dev = kl_js_str(block, "device");
	if (any && group && !(qdev && strcmp(group, qdev) == 0) && !(dev && strcmp(group, dev) == 0))
		json_object_object_add(o, "group", json_object_new_string(group));
	return o;
}

char *kl_throttle_text(json_object *t)
{
	struct strbuf b = STRBUF_INIT;
	for (size_t i = 0; i < 6 + sizeof throttle_extra / sizeof *throttle_extra; i++) {
		const char *k = i < 6 ? throttle_base[i] : throttle_extra[i - 6];
		bool present;
		int64_t v = value_of(t, k, &present);
		if (present && v)
			strbuf_appendf(&b, "%s%s=%" PRId64, b.len ? " " : "", k, v);
	}
	const char *g = kl_js_str(t, "group");
	if (g && b.len)
		strbuf_appendf(&b, " group=%s", g);
	if (!b.len)
		strbuf_append(&b, "-");
	return strbuf_steal(&b);
}

/* ---- the request ---- */

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
	json_object *disks = kl_js_get(state, "disks", json_type_array);
	size_t n = disks ? json_object_array_length(disks) : 0;
	json_object *found = NULL;
	int matches = 0;

	for (int pass = 0; pass < 2 && !found; pass++) {
		for (size_t i = 0; i < n; i++) {
			json_object *d = json_object_array_get_idx(disks, i);
			const char *id = kl_js_str(d, "id"), *node = kl_js_str(d, "node");
			bool m = pass == 0 ? (id && strcmp(id, name) == 0) || (node && strcmp(node, name) == 0)
					   : same_file(kl_js_str(d, "path"), name);
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

/* ---- node options for blockdev-reopen ---- */

/* Leaves of -blockdev/-drive keyval options that QMP wants typed. */
static bool bool_leaf(const char *k)
{
	static const char *const b[] = {
		"read-only", "auto-read-only", "force-share", "direct", "no-flush", "x-check-cache-dropped",
		"lazy-refcounts", "pass-discard-request", "pass-discard-snapshot", "pass-discard-other",
		"skip-cbw", "deny-write", "exclusive", "backing",
	};
	for (size_t i = 0; i < sizeof b / sizeof *b; i++)
		if (strcmp(k, b[i]) == 0)
			return true;
	return false;
}

static bool int_leaf(const char *k)
{
	static const char *const n[] = {
		"cache-size", "l2-cache-size", "l2-cache-entry-size", "refcount-cache-size", "cache-clean-interval",
		"offset", "size", "timeout", "reconnect-delay", "open-timeout", "sslverify", "readahead",
	};
	for (size_t i = 0; i < sizeof n / sizeof *n; i++)
		if (strcmp(k, n[i]) == 0)
			return true;
	return false;
}

static json_object *typed_value(const char *leaf, const char *value)
{
	bool b;
	if (bool_leaf(leaf) && kl_kv_parse_bool(value, &b) == 0)
		return json_object_new_boolean(b);
	if (int_leaf(leaf)) {
		char *end;
		errno = 0;
		long long v = strtoll(value, &end, 10);
		if (!errno && end != value && !*end)
			return json_object_new_int64(v);
	}
	return json_object_new_string(value);
}

/* Put a dotted key into nested objects. */
static void put_dotted(json_object *o, const char *key, const char *value)
{
	const char *dot = strchr(key, '.');
	if (!dot) {
		json_object_object_add(o, key, typed_value(key, value));
		return;
	}
	_cleanup_free_ char *head = xstrndup(key, (size_t)(dot - key));
	json_object *child = kl_js_get(o, head, json_type_object);
	if (!child) {
		child = json_object_new_object();
		json_object_object_add(o, head, child);
	}
	put_dotted(child, dot + 1, value);
}

/* A -blockdev argument as a JSON object (caller puts); NULL if unparsable. */
static json_object *blockdev_options(const char *arg)
{
	if (arg[0] == '{') {
		json_tokener *tok = json_tokener_new();
		json_object *o = json_tokener_parse_ex(tok, arg, (int)strlen(arg));
		bool ok = o && json_tokener_get_error(tok) == json_tokener_success &&
			  json_object_is_type(o, json_type_object);
		json_tokener_free(tok);
		if (!ok && o) {
			json_object_put(o);
			o = NULL;
		}
		return o;
	}
	struct kl_kv kv = KL_KV_INIT;
	if (kl_kv_parse(arg, KL_KV_KEYVAL, NULL, &kv, NULL) < 0)
		return NULL;
	json_object *o = json_object_new_object();
	for (size_t i = 0; i < kv.n; i++)
		if (!kv.v[i].removed && kl_kv_find(&kv, kv.v[i].key) == (ssize_t)i)
			put_dotted(o, kv.v[i].key, kv.v[i].value);
	kl_kv_free(&kv);
	return o;
}

static void set_cache(json_object *opts, struct kl_cache_flags f)
{
	json_object *c = json_object_new_object();
	json_object_object_add(c, "direct", json_object_new_boolean(f.direct));
	json_object_object_add(c, "no-flush", json_object_new_boolean(f.no_flush));
	json_object_object_add(opts, "cache", c);
	/* Children given inline are reopened with their parent. */
	json_object_object_foreach(opts, k, v) {
		(void)k;
		if (json_object_is_type(v, json_type_object) && kl_js_str(v, "driver"))
			set_cache(v, f);
	}
}

struct reopen_plan {
	json_object *options;         /* array for blockdev-reopen */
	char *image;                  /* storage file to check in /proc/PID/fdinfo */
};

static void add_chain(json_object *nodes, const char *name, json_object *list, json_object *seen,
		      struct kl_cache_flags f, char **image, struct kl_error *err)
{
	if (err->set || json_object_object_get_ex(seen, name, NULL))
		return;
	json_object_object_add(seen, name, NULL);
	json_object *opts = kl_js_get(nodes, name, json_type_object);
	if (!opts) {
		kl_error_set(err, "node '%s' is not defined by a -blockdev argument of the command line", name);
		return;
	}
	json_object *copy = NULL;
	json_object_deep_copy(opts, &copy, NULL);
	set_cache(copy, f);
	json_object_array_add(list, copy);
	const char *filename = kl_js_str(copy, "filename");
	if (filename && !*image)
		*image = xstrdup(filename);
	static const char *const refs[] = { "file", "backing", "data-file" };
	for (size_t i = 0; i < sizeof refs / sizeof *refs; i++) {
		const char *child = kl_js_str(copy, refs[i]);
		if (child)
			add_chain(nodes, child, list, seen, f, image, err);
		else if (!*image && strcmp(refs[i], "file") == 0) {
			json_object *inl = kl_js_get(copy, "file", json_type_object);
			if (inl && kl_js_str(inl, "filename"))
				*image = xstrdup(kl_js_str(inl, "filename"));
		}
	}
}

static int plan_blockdev(json_object *argv, const char *top, struct kl_cache_flags f, struct reopen_plan *p,
			 struct kl_error *err)
{
	_cleanup_json_ json_object *nodes = json_object_new_object();
	_cleanup_json_ json_object *seen = json_object_new_object();
	size_t n = json_object_array_length(argv);

	for (size_t i = 0; i + 1 < n; i++) {
		const char *a = json_object_get_string(json_object_array_get_idx(argv, i));
		if (!a || (strcmp(a, "-blockdev") != 0 && strcmp(a, "--blockdev") != 0))
			continue;
		json_object *o = blockdev_options(json_object_get_string(json_object_array_get_idx(argv, i + 1)));
		const char *nn = kl_js_str(o, "node-name");
		if (nn)
			json_object_object_add(nodes, nn, o);
		else if (o)
			json_object_put(o);
	}
	p->options = json_object_new_array();
	add_chain(nodes, top, p->options, seen, f, &p->image, err);
	return err->set ? -1 : 0;
}

static int plan_drive(json_object *argv, json_object *block, json_object *named_nodes, struct kl_cache_flags f,
		      struct reopen_plan *p, struct kl_error *err)
{
	const char *drive_id = kl_js_str(block, "device");
	json_object *ins = kl_js_get(block, "inserted", json_type_object);
	const char *top = kl_js_str(ins, "node-name");
	size_t n = json_object_array_length(argv);
	struct kl_kv kv = KL_KV_INIT;
	bool found = false;

	for (size_t i = 0; i + 1 < n && !found; i++) {
		const char *a = json_object_get_string(json_object_array_get_idx(argv, i));
		if (!a || (strcmp(a, "-drive") != 0 && strcmp(a, "--drive") != 0))
			continue;
		const char *v = json_object_get_string(json_object_array_get_idx(argv, i + 1));
		if (kl_kv_parse(v, KL_KV_QEMUOPTS, NULL, &kv, NULL) < 0)
			continue;
		const char *id = kl_kv_get(&kv, "id");
		const char *nn = kl_kv_get(&kv, "node-name");
		if ((drive_id && *drive_id && id && strcmp(id, drive_id) == 0) || (top && nn && strcmp(top, nn) == 0))
			found = true;
		else
			kl_kv_free(&kv);
	}
	if (!found)
		return kl_error_fail(err, "the -drive of this disk is not in the command line");

	int rc = -1;
	const char *nn = kl_kv_get(&kv, "node-name");
	const char *fnn = kl_kv_get(&kv, "file.node-name");
	const char *filename = kl_kv_get(&kv, "file");
	if (!filename)
		filename = kl_kv_get(&kv, "file.filename");
	if (!nn || !fnn || !top || top[0] == '#') {
		kl_error_set(err, "this disk is a -drive without node-name= and file.node-name=: QEMU names its nodes "
				  "itself (%s), and blockdev-reopen cannot address such nodes (QEMU 7.2 answers "
				  "\"Cannot change the option 'node-name'\"), so its cache mode is fixed until the VM "
				  "restarts", top ? top : "#blockNNN");
		goto out;
	}
	if (!filename) {
		kl_error_set(err, "the -drive of this disk has no file=");
		goto out;
	}
	const char *sdrv = kl_kv_get(&kv, "file.driver");
	for (size_t i = 0; !sdrv && named_nodes && i < json_object_array_length(named_nodes); i++) {
		json_object *nd = json_object_array_get_idx(named_nodes, i);
		const char *name = kl_js_str(nd, "node-name");
		if (name && strcmp(name, fnn) == 0)
			sdrv = kl_js_str(nd, "drv");
	}
	const char *fdrv = kl_kv_get(&kv, "format");
	if (!fdrv)
		fdrv = kl_js_str(ins, "drv");
	if (!sdrv || !fdrv) {
		kl_error_set(err, "cannot tell the drivers of nodes %s and %s", nn, fnn);
		goto out;
	}
	bool ro = false;
	const char *rov = kl_kv_get(&kv, "readonly");
	if (rov)
		kl_kv_parse_bool(rov, &ro);

	/* The format node: what -drive put in its options. */
	json_object *fmt = json_object_new_object();
	json_object_object_add(fmt, "driver", json_object_new_string(fdrv));
	json_object_object_add(fmt, "node-name", json_object_new_string(nn));
	json_object_object_add(fmt, "file", json_object_new_string(fnn));
	json_object_object_add(fmt, "read-only", json_object_new_boolean(ro));
	static const char *const fmt_keys[] = { "discard", "detect-zeroes", "force-share" };
	for (size_t i = 0; i < sizeof fmt_keys / sizeof *fmt_keys; i++)
		if (kl_kv_get(&kv, fmt_keys[i]))
			json_object_object_add(fmt, fmt_keys[i], typed_value(fmt_keys[i], kl_kv_get(&kv, fmt_keys[i])));
	set_cache(fmt, f);

	/* The storage node: inherited read-only, discard=unmap by default
	 * (bdrv_inherited_options), plus every file.* key given.  -drive's own
	 * aio= is a flag, not an option of the node: it is left out. */
	json_object *st = json_object_new_object();
	json_object_object_add(st, "driver", json_object_new_string(sdrv));
	json_object_object_add(st, "filename", json_object_new_string(filename));
	json_object_object_add(st, "node-name", json_object_new_string(fnn));
	json_object_object_add(st, "read-only", json_object_new_boolean(ro));
	json_object_object_add(st, "discard", json_object_new_string("unmap"));
	for (size_t i = 0; i < kv.n; i++) {
		const char *k = kv.v[i].key;
		if (kv.v[i].removed || strncmp(k, "file.", 5) != 0 || kl_kv_find(&kv, k) != (ssize_t)i)
			continue;
		if (strcmp(k, "file.node-name") == 0 || strcmp(k, "file.driver") == 0 || strcmp(k, "file.filename") == 0 ||
		    strncmp(k, "file.cache.", 11) == 0)
			continue;
		put_dotted(st, k + 5, kv.v[i].value);
	}
	set_cache(st, f);

	p->options = json_object_new_array();
	json_object_array_add(p->options, st);
	json_object_array_add(p->options, fmt);
	p->image = xstrdup(filename);
	rc = 0;
out:
	kl_kv_free(&kv);
	return rc;
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
	json_object *disks = kl_js_get(st, "disks", json_type_array);
	const char *id = kl_js_str(r->disk, "id"), *node = kl_js_str(r->disk, "node");
	for (size_t i = 0; disks && i < json_object_array_length(disks); i++) {
		json_object *d = json_object_array_get_idx(disks, i);
		const char *did = kl_js_str(d, "id"), *dnode = kl_js_str(d, "node");
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
	json_object *changes = kl_js_get(st, "changes", json_type_array);
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

static const char *flags_mode_name(struct kl_cache_flags f)
{
	enum kl_cache c = kl_cache_from_flags(f);
	return c == KL_CACHE_UNSET ? "(no-flush without write cache)" : kl_cache_name(c);
}

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

static int set_run(const char *state_dir, int argc, char **argv, bool force, struct kl_error *err)
{
	struct kl_state_entry e;
	struct set_request req = { KL_CACHE_UNSET, NULL };
	struct reopen_plan plan = { NULL, NULL };
	struct qmp_client *qmp = NULL;
	json_object *blocks = NULL, *named = NULL, *throttle_args = NULL;
	json_object *old_throttle = NULL, *new_throttle = NULL, *disk = NULL;
	_cleanup_json_ json_object *changes = json_object_new_array();
	int rc = -1;

	if (argc < 3)
		return kl_error_fail(err, "usage: kvm-launch --set NAME DISK SETTING... (e.g. cache=writeback iops=500)");
	if (kl_state_find(state_dir, argv[0], &e, err) < 0)
		return -1;
	const char *vm = e.name;
	if (kl_state_entry_stale(&e)) {
		kl_error_set(err, "%s: not running (pid %d is %s)", vm, (int)e.pid, kl_proc_state_name(e.proc));
		goto out;
	}
	if (parse_settings(argc - 2, argv + 2, &req, err) < 0)
		goto out;
	disk = find_disk(e.json, argv[1], err);
	if (!disk) {
		kl_error_prefix(err, "%s", vm);
		goto out;
	}
	const char *label = kl_js_str(disk, "id") ? kl_js_str(disk, "id") : kl_js_str(disk, "node");
	if (!label)
		label = argv[1];
	if (!kl_js_str(e.json, "query_socket")) {
		kl_error_set(err, "%s: started without kvm-launch's query monitor: nothing can be changed live", vm);
		goto out;
	}
	if (kl_state_may_drive(&e, err) < 0)
		goto out;
	if (kl_vm_qmp(&e, SET_CONNECT_TIMEOUT_MS, &qmp, err) < 0) {
		kl_error_prefix(err, "%s: cannot reach QEMU's monitor (%s/%s.qmp.sock)", vm, e.dir, e.stem);
		goto out;
	}
	if (qmp_execute(qmp, "query-block", NULL, SET_CALL_TIMEOUT_MS, &blocks, err) < 0) {
		kl_error_prefix(err, "%s: query-block", vm);
		goto out;
	}
	json_object *block = kl_block_find(blocks, disk);
	json_object *ins = kl_js_get(block, "inserted", json_type_object);
	if (!block || !ins) {
		kl_error_set(err, "%s: disk %s: QEMU does not list it (or it has no medium)", vm, label);
		goto out;
	}

	/* ---- check everything first ---- */
	struct kl_cache_view view;
	if (req.cache != KL_CACHE_UNSET)
		named = named_nodes(qmp);
	kl_cache_view_of(disk, block, named, &view);
	struct kl_cache_flags cur = view.flags, want = cur;
	bool cache_change = false;
	if (req.cache != KL_CACHE_UNSET) {
		want = kl_cache_flags(req.cache);
		if (check_write_cache(vm, label, req.cache, &view, err) < 0)
			goto out;
		if (want.no_flush && !cur.no_flush && !force) {
			kl_error_set(err, "%s: disk %s: cache=unsafe ignores the guest's flushes (a host crash loses data "
					  "the guest believes is safe): add --force if you mean it", vm, label);
			goto out;
		}
		if (cur.direct && !want.direct) {
			const char *aio = kl_js_str(disk, "aio");
			if (aio && strcmp(aio, "native") == 0) {
				kl_error_set(err, "%s: disk %s: it runs aio=native, which needs O_DIRECT: cache=%s would drop "
						  "O_DIRECT under it (QEMU does not re-check this on reopen); aio cannot "
						  "change while the VM runs", vm, label, kl_cache_name(req.cache));
				goto out;
			}
			if (kl_js_bool(disk, "shared", false) && !force) {
				kl_error_set(err, "%s: disk %s: on shared storage, dropping O_DIRECT (cache=%s) makes "
						  "migration unsafe (libvirt still believes cache=none): add --force if you mean it",
					     vm, label, kl_cache_name(req.cache));
				goto out;
			}
			if (kl_js_bool(e.json, "incoming", false) && !force) {
				kl_error_set(err, "%s: the VM was started with -incoming: dropping O_DIRECT (cache=%s) on "
						  "disk %s can make a migration unsafe: add --force if you mean it",
					     vm, kl_cache_name(req.cache), label);
				goto out;
			}
		}
		cache_change = want.direct != cur.direct || want.no_flush != cur.no_flush;
		if (cache_change) {
			json_object *argvj = kl_js_get(e.json, "argv", json_type_array);
			const char *top = kl_js_str(ins, "node-name");
			const char *dev = kl_js_str(block, "device");
			/* -drive always makes a named BlockBackend; -blockdev never. */
			bool is_drive = dev && *dev;
			if (!argvj) {
				kl_error_set(err, "%s: the state file has no command line", vm);
				goto out;
			}
			int r;
			if (is_drive) {
				r = plan_drive(argvj, block, named, want, &plan, err);
			} else {
				r = plan_blockdev(argvj, top ? top : kl_js_str(disk, "node"), want, &plan, err);
			}
			if (r < 0) {
				kl_error_prefix(err, "%s: disk %s: cannot change the cache mode live", vm, label);
				goto out;
			}
		}
	}
	bool throttle_change = json_object_object_length(req.throttle) > 0;
	old_throttle = kl_throttle_current(block);
	if (throttle_change)
		throttle_args = kl_throttle_args(block, req.throttle);

	/* ---- apply ---- */
	if (req.cache != KL_CACHE_UNSET && !cache_change)
		printf("%s: %s: cache is already %s\n", vm, label, kl_cache_name(req.cache));
	if (cache_change) {
		_cleanup_json_ json_object *args = json_object_new_object();
		json_object_object_add(args, "options", json_object_get(plan.options));
		kl_debug("blockdev-reopen %s", json_object_to_json_string_ext(args, JSON_C_TO_STRING_PLAIN));
		if (qmp_execute(qmp, "blockdev-reopen", args, SET_CALL_TIMEOUT_MS, NULL, err) < 0) {
			kl_error_prefix(err, "%s: disk %s: blockdev-reopen refused (nothing changed)", vm, label);
			goto out;
		}
		/* Every reopened node, as QEMU reports it now. */
		_cleanup_json_ json_object *after = named_nodes(qmp);
		_cleanup_strbuf_ struct strbuf nodes = STRBUF_INIT;
		if (!after) {
			kl_error_set(err, "%s: disk %s: QEMU accepted the reopen but query-named-block-nodes failed: "
					  "the change is not verified", vm, label);
			goto out;
		}
		if (kl_cache_check_nodes(after, plan.options, want, &nodes, err) < 0) {
			kl_error_prefix(err, "%s: disk %s", vm, label);
			goto out;
		}
		kl_debug("after the reopen: %s", strbuf_str(&nodes));
		_cleanup_strbuf_ struct strbuf what = STRBUF_INIT;
		const char *image = plan.image ? plan.image : kl_js_str(disk, "path");
		if (image && check_odirect(e.pid, image, want.direct, &what, err) < 0) {
			kl_error_prefix(err, "%s: disk %s", vm, label);
			goto out;
		}
		printf("%s: %s: cache %s -> %s (O_DIRECT %s%s%s)\n", vm, label, flags_mode_name(cur),
		       kl_cache_name(req.cache), want.direct ? "on" : "off", what.len ? ": " : "", strbuf_str(&what));
		json_object_array_add(changes, change_entry(label, "cache", json_object_new_string(flags_mode_name(cur)),
							    json_object_new_string(kl_cache_name(req.cache))));
	}
	if (throttle_change) {
		kl_debug("block_set_io_throttle %s", json_object_to_json_string_ext(throttle_args, JSON_C_TO_STRING_PLAIN));
		if (qmp_execute(qmp, "block_set_io_throttle", throttle_args, SET_CALL_TIMEOUT_MS, NULL, err) < 0) {
			kl_error_prefix(err, "%s: disk %s: block_set_io_throttle refused%s", vm, label,
					cache_change ? " (the cache change above was made)" : " (nothing changed)");
			goto record;
		}
		_cleanup_json_ json_object *after = NULL;
		if (qmp_execute(qmp, "query-block", NULL, SET_CALL_TIMEOUT_MS, &after, err) < 0) {
			kl_error_prefix(err, "%s: disk %s: query-block after throttling", vm, label);
			goto record;
		}
		json_object *nb = kl_block_find(after, disk);
		new_throttle = kl_throttle_current(nb);
		bool printed = false;
		static const char *const keys[] = {
			"bps", "bps_rd", "bps_wr", "iops", "iops_rd", "iops_wr", "bps_max", "bps_rd_max", "bps_wr_max",
			"iops_max", "iops_rd_max", "iops_wr_max", "bps_max_length", "bps_rd_max_length",
			"bps_wr_max_length", "iops_max_length", "iops_rd_max_length", "iops_wr_max_length", "iops_size",
		};
		for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
			int64_t a = value_of(old_throttle, keys[i], NULL), b = value_of(new_throttle, keys[i], NULL);
			bool asked = json_object_object_get_ex(req.throttle, keys[i], NULL);
			if (a == b && !asked)
				continue;
			printf("%s: %s: %s %" PRId64 " -> %" PRId64 "\n", vm, label, keys[i], a, b);
			printed = true;
			json_object_array_add(changes, change_entry(label, keys[i], json_object_new_int64(a),
								    json_object_new_int64(b)));
			if (asked && b != value_of(req.throttle, keys[i], NULL)) {
				kl_error_set(err, "%s: disk %s: QEMU accepted %s=%" PRId64 " but reports %" PRId64, vm,
					     label, keys[i], value_of(req.throttle, keys[i], NULL), b);
				goto record;
			}
		}
		if (kl_js_str(req.throttle, "group"))
			printf("%s: %s: group %s\n", vm, label, kl_js_str(req.throttle, "group"));
		else if (!printed)
			printf("%s: %s: throttle unchanged\n", vm, label);
	}
	rc = 0;
record:
	if (json_object_array_length(changes) > 0) {
		struct kl_error rerr = KL_ERROR_INIT;
		struct set_record r = { disk, cache_change ? kl_cache_name(req.cache) : NULL, new_throttle, changes };
		if (kl_state_update(e.file, e.pid, e.start_ticks, record_fn, &r, NULL, &rerr) < 0)
			kl_warn("%s: the change was made but the state file was not updated: %s", vm, rerr.msg);
	}
out:
	if (qmp)
		qmp_close(qmp);
	if (blocks)
		json_object_put(blocks);
	if (named)
		json_object_put(named);
	if (throttle_args)
		json_object_put(throttle_args);
	if (old_throttle)
		json_object_put(old_throttle);
	if (new_throttle)
		json_object_put(new_throttle);
	if (req.throttle)
		json_object_put(req.throttle);
	if (plan.options)
		json_object_put(plan.options);
	free(plan.image);
	kl_state_entries_free(&e, 1);
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
