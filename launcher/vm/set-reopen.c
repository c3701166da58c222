/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The node options blockdev-reopen needs to change a disk's cache mode: its
 * nodes as the command line defined them, with cache.direct and
 * cache.no-flush set to the new mode. */
#include "launcher/vm/set-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "common/xalloc.h"
#include "launcher/argv/keyval.h"

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
	json_object *child = kl_json_get(o, head, json_type_object);
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
		if (json_object_is_type(v, json_type_object) && kl_json_str(v, "driver"))
			set_cache(v, f);
	}
}

static void add_chain(json_object *nodes, const char *name, json_object *list, json_object *seen,
		      struct kl_cache_flags f, char **image, struct kl_error *err)
{
	if (err->set || json_object_object_get_ex(seen, name, NULL))
		return;
	json_object_object_add(seen, name, NULL);
	json_object *opts = kl_json_get(nodes, name, json_type_object);
	if (!opts) {
		kl_error_set(err, "node '%s' is not defined by a -blockdev argument of the command line", name);
		return;
	}
	json_object *copy = NULL;
	json_object_deep_copy(opts, &copy, NULL);
	set_cache(copy, f);
	json_object_array_add(list, copy);
	const char *filename = kl_json_str(copy, "filename");
	if (filename && !*image)
		*image = xstrdup(filename);
	static const char *const refs[] = { "file", "backing", "data-file" };
	for (size_t i = 0; i < sizeof refs / sizeof *refs; i++) {
		const char *child = kl_json_str(copy, refs[i]);
		if (child)
			add_chain(nodes, child, list, seen, f, image, err);
		else if (!*image && strcmp(refs[i], "file") == 0) {
			json_object *inl = kl_json_get(copy, "file", json_type_object);
			if (inl && kl_json_str(inl, "filename"))
				*image = xstrdup(kl_json_str(inl, "filename"));
		}
	}
}

int kl_set_plan_blockdev(json_object *argv, const char *top, struct kl_cache_flags f, struct reopen_plan *p,
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
		const char *nn = kl_json_str(o, "node-name");
		if (nn)
			json_object_object_add(nodes, nn, o);
		else if (o)
			json_object_put(o);
	}
	p->options = json_object_new_array();
	add_chain(nodes, top, p->options, seen, f, &p->image, err);
	return err->set ? -1 : 0;
}

/* The -drive of the recorded argv whose id= is drive_id or whose
 * node-name= is top, parsed into kv.  Returns false when none is. */
static bool find_drive_arg(json_object *argv, const char *drive_id, const char *top, struct kl_kv *kv)
{
	size_t n = json_object_array_length(argv);
	for (size_t i = 0; i + 1 < n; i++) {
		const char *a = json_object_get_string(json_object_array_get_idx(argv, i));
		if (!a || (strcmp(a, "-drive") != 0 && strcmp(a, "--drive") != 0))
			continue;
		const char *v = json_object_get_string(json_object_array_get_idx(argv, i + 1));
		if (kl_kv_parse(v, KL_KV_QEMUOPTS, NULL, kv, NULL) < 0)
			continue;
		const char *id = kl_kv_get(kv, "id");
		const char *nn = kl_kv_get(kv, "node-name");
		if ((drive_id && *drive_id && id && strcmp(id, drive_id) == 0) || (top && nn && strcmp(top, nn) == 0))
			return true;
		kl_kv_free(kv);
	}
	return false;
}

/* The format node: what -drive put in its options, with its storage node
 * `st` inline as "file" (taken). */
static json_object *drive_format_node(const struct kl_kv *kv, const char *fdrv, const char *nn, json_object *st,
				      bool ro, struct kl_cache_flags f)
{
	json_object *fmt = json_object_new_object();
	json_object_object_add(fmt, "driver", json_object_new_string(fdrv));
	json_object_object_add(fmt, "node-name", json_object_new_string(nn));
	json_object_object_add(fmt, "file", st);
	json_object_object_add(fmt, "read-only", json_object_new_boolean(ro));
	static const char *const fmt_keys[] = { "discard", "detect-zeroes", "force-share" };
	for (size_t i = 0; i < sizeof fmt_keys / sizeof *fmt_keys; i++)
		if (kl_kv_get(kv, fmt_keys[i]))
			json_object_object_add(fmt, fmt_keys[i], typed_value(fmt_keys[i], kl_kv_get(kv, fmt_keys[i])));
	set_cache(fmt, f);
	return fmt;
}

/* The storage node: inherited read-only, discard=unmap by default
 * (bdrv_inherited_options), plus every file.* key given.  -drive's own
 * aio= is a flag, not an option of the node: it is left out. */
static json_object *drive_storage_node(const struct kl_kv *kv, const char *sdrv, const char *filename,
				       const char *fnn, bool ro, struct kl_cache_flags f)
{
	json_object *st = json_object_new_object();
	json_object_object_add(st, "driver", json_object_new_string(sdrv));
	json_object_object_add(st, "filename", json_object_new_string(filename));
	json_object_object_add(st, "node-name", json_object_new_string(fnn));
	json_object_object_add(st, "read-only", json_object_new_boolean(ro));
	json_object_object_add(st, "discard", json_object_new_string("unmap"));
	for (size_t i = 0; i < kv->n; i++) {
		const char *k = kv->v[i].key;
		if (kv->v[i].removed || strncmp(k, "file.", 5) != 0 || kl_kv_find(kv, k) != (ssize_t)i)
			continue;
		if (strcmp(k, "file.node-name") == 0 || strcmp(k, "file.driver") == 0 || strcmp(k, "file.filename") == 0 ||
		    strncmp(k, "file.cache.", 11) == 0)
			continue;
		put_dotted(st, k + 5, kv->v[i].value);
	}
	set_cache(st, f);
	return st;
}

/* The driver of node `name` in query-named-block-nodes, NULL if unknown. */
static const char *named_node_driver(json_object *named_nodes, const char *name)
{
	for (size_t i = 0; named_nodes && i < json_object_array_length(named_nodes); i++) {
		json_object *nd = json_object_array_get_idx(named_nodes, i);
		const char *nn = kl_json_str(nd, "node-name");
		if (nn && strcmp(nn, name) == 0)
			return kl_json_str(nd, "drv");
	}
	return NULL;
}

int kl_set_plan_drive(json_object *argv, json_object *block, json_object *named_nodes, struct kl_cache_flags f,
		      struct reopen_plan *p, struct kl_error *err)
{
	json_object *ins = kl_json_get(block, "inserted", json_type_object);
	const char *top = kl_json_str(ins, "node-name");
	_cleanup_(kl_kv_free) struct kl_kv kv = KL_KV_INIT;

	if (!find_drive_arg(argv, kl_json_str(block, "device"), top, &kv))
		return kl_error_fail(err, "the -drive of this disk is not in the command line");
	const char *nn = kl_kv_get(&kv, "node-name");
	const char *fnn = kl_kv_get(&kv, "file.node-name");
	const char *filename = kl_kv_get(&kv, "file");
	if (!filename)
		filename = kl_kv_get(&kv, "file.filename");
	if (!nn || !fnn || !top || top[0] == '#')
		return kl_error_fail(err, "this disk is a -drive without node-name= and file.node-name=: QEMU names its "
					  "nodes itself (%s), and blockdev-reopen cannot address such nodes (QEMU 7.2 "
					  "answers \"Cannot change the option 'node-name'\"), so its cache mode is fixed "
					  "until the VM restarts", top ? top : "#blockNNN");
	if (!filename)
		return kl_error_fail(err, "the -drive of this disk has no file=");
	const char *sdrv = kl_kv_get(&kv, "file.driver");
	if (!sdrv)
		sdrv = named_node_driver(named_nodes, fnn);
	const char *fdrv = kl_kv_get(&kv, "format");
	if (!fdrv)
		fdrv = kl_json_str(ins, "drv");
	if (!sdrv || !fdrv)
		return kl_error_fail(err, "cannot tell the drivers of nodes %s and %s", nn, fnn);
	bool ro = false;
	const char *rov = kl_kv_get(&kv, "readonly");
	if (rov)
		kl_kv_parse_bool(rov, &ro);

	/* One entry, the storage node inline in its parent.  Listing both nodes
	 * (the storage node, then the format node with "file": its name) hangs
	 * QEMU 10.0 when they came from -drive: the reopen succeeds, and the
	 * disk's next request never completes, blocking QEMU's main loop.  The
	 * inline form sets the same options on both nodes and works on 7.2 too. */
	p->options = json_object_new_array();
	json_object *st = drive_storage_node(&kv, sdrv, filename, fnn, ro, f);
	json_object_array_add(p->options, drive_format_node(&kv, fdrv, nn, st, ro, f));
	p->image = xstrdup(filename);
	return 0;
}

json_object *kl_set_blockdev_argv(json_object *state)
{
	json_object *argv = kl_json_get(state, "argv", json_type_array);
	json_object *defs = kl_json_get(state, "runtime_blockdevs", json_type_object);
	json_object *out = json_object_new_array();
	for (size_t i = 0; argv && i < json_object_array_length(argv); i++)
		json_object_array_add(out, json_object_get(json_object_array_get_idx(argv, i)));
	if (!defs)
		return out;
	json_object_object_foreach(defs, k, def) {
		(void)k;
		json_object_array_add(out, json_object_new_string("-blockdev"));
		json_object_array_add(out, json_object_new_string(json_object_to_json_string_ext(def, JSON_C_TO_STRING_PLAIN)));
	}
	return out;
}

json_object *kl_set_node_settings(json_object *state)
{
	json_object *map = json_object_new_object();
	json_object *disks = kl_json_get(state, "disks", json_type_array);
	_cleanup_json_ json_object *argv = kl_set_blockdev_argv(state);
	for (size_t i = 0; disks && i < json_object_array_length(disks); i++) {
		json_object *d = json_object_array_get_idx(disks, i);
		enum kl_cache mode;
		const char *top = kl_json_str(d, "node"), *cache = kl_json_str(d, "cache");
		if (!top || !cache || kl_cache_parse(cache, &mode) < 0)
			continue;
		struct kl_error err = KL_ERROR_INIT;
		struct reopen_plan p = { 0 };
		kl_set_plan_blockdev(argv, top, kl_cache_flags(mode), &p, &err);
		for (size_t n = 0; p.options && n < json_object_array_length(p.options); n++) {
			json_object *o = json_object_array_get_idx(p.options, n);
			const char *name = kl_json_str(o, "node-name");
			if (!name || json_object_object_get_ex(map, name, NULL))
				continue;
			json_object *rec = json_object_new_object();
			json_object_object_add(rec, "cache", json_object_get(json_object_object_get(o, "cache")));
			if (kl_json_str(o, "aio"))
				json_object_object_add(rec, "aio", json_object_new_string(kl_json_str(o, "aio")));
			json_object_object_add(map, name, rec);
		}
		json_object_put(p.options);
		free(p.image);
	}
	return map;
}
