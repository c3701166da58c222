/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Disks that change while the VM runs, recorded in the VM's state entry.
 * A runtime disk has the same members as a disk of the command line
 * (state.c's disk_json, built by the same code in the decision child) plus
 * "origin" ("hot-plug", "snapshot", "mirror", "commit") and "layers": the
 * entries of the nodes below its active layer, top first, each as it was
 * when it was the active layer.
 *   device_add drive=NODE          a new entry (hot-plug)
 *   blockdev-snapshot (alone or in a transaction)
 *                                  the overlay becomes the active layer, the
 *                                  old entry moves to the top of "layers"
 *   blockdev-mirror / block-commit noted per job; job-complete (the pivot)
 *                                  makes the target (mirror) or the base
 *                                  (active commit) the active layer
 *   blockdev-del NODE              an entry whose active layer it is goes
 *                                  (a detach); a layer of that name goes
 *                                  (an intermediate commit)
 * Every blockdev-add as forwarded is kept in "runtime_blockdevs" (node-name
 * -> arguments) so that --set and a later blockdev-reopen know the nodes.
 * Recorded when the command goes to QEMU: a command QEMU refuses leaves an
 * entry that --status shows without QEMU's settings. */
#include "launcher/vm/relay-int.h"

#include <string.h>

#include "common/strbuf.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/json.h"
#include "launcher/vm/state.h"

enum op { OP_ADD, OP_PUSH, OP_PIVOT, OP_DEL, OP_DEFINE };

struct change {
	enum op op;
	const char *node;     /* ADD/PUSH/PIVOT: the new active node; DEL: the node gone; DEFINE: its name */
	const char *from;     /* PUSH/PIVOT: the active node (or device id) it takes over from; DEL: the
	                       * base that becomes the backing of what the node backed (or NULL) */
	json_object *entry;   /* ADD/PUSH/PIVOT: the new entry, or NULL (PIVOT: from "layers"); DEFINE: args */
	bool keep_layers;     /* PIVOT of a mirror: sync=top keeps the backing chain */
};

/* The entry whose active layer is node (or whose device id is node). */
static int find_entry(json_object *disks, const char *node)
{
	for (size_t i = 0; node && i < json_object_array_length(disks); i++)
		if (kl_streq(kl_json_str(json_object_array_get_idx(disks, i), "node"), node))
			return (int)i;
	for (size_t i = 0; node && i < json_object_array_length(disks); i++)
		if (kl_streq(kl_json_str(json_object_array_get_idx(disks, i), "id"), node))
			return (int)i;
	return -1;
}

static int find_layer(json_object *layers, const char *node)
{
	for (size_t i = 0; layers && node && i < json_object_array_length(layers); i++)
		if (kl_streq(kl_json_str(json_object_array_get_idx(layers, i), "node"), node))
			return (int)i;
	return -1;
}

/* The old entry as a layer: itself without its own "layers". */
static json_object *as_layer(json_object *old)
{
	json_object *l = NULL;
	if (json_object_deep_copy(old, &l, NULL) < 0)
		return NULL;
	json_object_object_del(l, "layers");
	return l;
}

static void take_over(json_object *disks, int at, json_object *entry, const char *from)
{
	json_object *old = json_object_array_get_idx(disks, (size_t)at);
	if (kl_json_str(old, "id") && !kl_json_str(entry, "id"))
		json_object_object_add(entry, "id", json_object_new_string(kl_json_str(old, "id")));
	if (from)
		json_object_object_add(entry, "previous_node", json_object_new_string(from));
	json_object_array_put_idx(disks, (size_t)at, entry);
}

/* The overlay on top: the old entry goes to the top of the layers. */
static int push(json_object *disks, struct change *ch)
{
	int at = find_entry(disks, ch->from);
	if (at < 0)
		return 0;
	json_object *old = json_object_array_get_idx(disks, (size_t)at);
	json_object *layers = json_object_new_array();
	json_object_array_add(layers, as_layer(old));
	json_object *below = kl_json_get(old, "layers", json_type_array);
	for (size_t i = 0; below && i < json_object_array_length(below); i++)
		json_object_array_add(layers, json_object_get(json_object_array_get_idx(below, i)));
	json_object_object_add(ch->entry, "layers", layers);
	take_over(disks, at, json_object_get(ch->entry), ch->from);
	return 1;
}

/* blockdev-snapshot gave the overlay its backing (a reopen must name it). */
static void set_backing(json_object *st, const char *node, const char *backing)
{
	json_object *defs = kl_json_get(st, "runtime_blockdevs", json_type_object);
	json_object *def = defs ? kl_json_get(defs, node, json_type_object) : NULL;
	if (def && backing)
		json_object_object_add(def, "backing", json_object_new_string(backing));
}

/* A finished mirror (ch->entry: the target) or active commit (ch->entry
 * NULL: the base comes back from "layers"). */
static int pivot(json_object *disks, struct change *ch)
{
	int at = find_entry(disks, ch->from);
	if (at < 0)
		return 0;
	json_object *old = json_object_array_get_idx(disks, (size_t)at);
	const char *from = kl_json_str(old, "node");
	json_object *layers = kl_json_get(old, "layers", json_type_array);
	json_object *e = NULL;
	size_t rest = 0;
	if (ch->entry) {
		e = json_object_get(ch->entry);
		rest = 0;
	} else {
		int li = find_layer(layers, ch->node);
		if (li < 0 || json_object_deep_copy(json_object_array_get_idx(layers, (size_t)li), &e, NULL) < 0)
			return 0;
		json_object_object_add(e, "origin", json_object_new_string("commit"));
		rest = (size_t)li + 1;
	}
	json_object *nl = json_object_new_array();
	if (!ch->entry || ch->keep_layers)
		for (size_t i = rest; layers && i < json_object_array_length(layers); i++)
			json_object_array_add(nl, json_object_get(json_object_array_get_idx(layers, i)));
	json_object_object_add(e, "layers", nl);
	take_over(disks, at, e, from);
	return 1;
}

/* A node goes; rebase (the base of a commit whose top it was) becomes the
 * backing of the nodes it backed. */
static int del(json_object *st, json_object *disks, const char *node, const char *rebase)
{
	int changed = 0;
	json_object *defs = kl_json_get(st, "runtime_blockdevs", json_type_object);
	if (defs && json_object_object_get_ex(defs, node, NULL)) {
		json_object_object_del(defs, node);
		changed = 1;
	}
	if (defs && rebase) {
		json_object_object_foreach(defs, k, def) {
			(void)k;
			if (kl_streq(kl_json_str(def, "backing"), node)) {
				json_object_object_add(def, "backing", json_object_new_string(rebase));
				changed = 1;
			}
		}
	}
	for (size_t i = 0; i < json_object_array_length(disks); i++) {
		json_object *d = json_object_array_get_idx(disks, i);
		if (kl_streq(kl_json_str(d, "node"), node)) {
			json_object_array_del_idx(disks, i, 1);
			return 1;
		}
		json_object *layers = kl_json_get(d, "layers", json_type_array);
		int li = find_layer(layers, node);
		if (li >= 0) {
			json_object_array_del_idx(layers, (size_t)li, 1);
			return 1;
		}
	}
	return changed;
}

static int apply(json_object *st, void *vctx, struct kl_error *err)
{
	struct change *ch = vctx;
	(void)err;
	json_object *disks = kl_json_get(st, "disks", json_type_array);
	if (!disks) {
		disks = json_object_new_array();
		json_object_object_add(st, "disks", disks);
	}
	switch (ch->op) {
	case OP_DEFINE: {
		json_object *defs = kl_json_get(st, "runtime_blockdevs", json_type_object);
		if (!defs) {
			defs = json_object_new_object();
			json_object_object_add(st, "runtime_blockdevs", defs);
		}
		json_object_object_add(defs, ch->node, json_object_get(ch->entry));
		return 1;
	}
	case OP_DEL:
		return del(st, disks, ch->node, ch->from);
	case OP_PUSH:
		set_backing(st, ch->node, ch->from);
		return push(disks, ch);
	case OP_PIVOT:
		return pivot(disks, ch);
	case OP_ADD:
		break;
	}
	int at = find_entry(disks, ch->node);
	if (at >= 0)
		json_object_array_put_idx(disks, (size_t)at, json_object_get(ch->entry));
	else
		json_object_array_add(disks, json_object_get(ch->entry));
	return 1;
}

static void commit(struct kl_relay_ctx *c, struct change *ch)
{
	struct kl_error err = KL_ERROR_INIT;
	bool gone = false;
	if (!*c->state_file)
		return;
	if (kl_state_update(c->state_file, c->qemu_pid, c->qemu_ticks, apply, ch, &gone, &err) < 0)
		kl_warn("relay: cannot record disk %s in %s: %s", ch->node, c->state_file, err.msg);
}

/* The state entry for a node: a copy of what was decided for it, or, for a
 * node the relay did not decide, its name and a note saying so. */
static json_object *entry_for(struct kl_relay_ctx *c, const char *node, const char *origin)
{
	json_object *rec = kl_json_get(c->nodes, node, json_type_object);
	json_object *disk = rec ? kl_json_get(rec, "disk", json_type_object) : NULL;
	json_object *e = NULL;
	if (!disk || json_object_deep_copy(disk, &e, NULL) < 0) {
		e = json_object_new_object();
		json_object_object_add(e, "undecided", json_object_new_boolean(true));
	}
	json_object_object_add(e, "node", json_object_new_string(node));
	json_object_object_add(e, "origin", json_object_new_string(origin));
	return e;
}

static void placed(struct kl_relay_ctx *c, enum op op, const char *node, const char *origin, const char *id,
		   const char *from)
{
	if (!node)
		return;
	_cleanup_json_ json_object *e = entry_for(c, node, origin);
	if (id)
		json_object_object_add(e, "id", json_object_new_string(id));
	struct change ch = { op, node, from, e, false };
	kl_info("relay: disk %s (%s%s%s)", node, origin, from ? " over " : "", from ? from : "");
	commit(c, &ch);
}

static void snapshot(struct kl_relay_ctx *c, json_object *data)
{
	if (kl_json_str(data, "node"))
		placed(c, OP_PUSH, kl_json_str(data, "overlay"), "snapshot", NULL, kl_json_str(data, "node"));
}

static json_object *jobs(struct kl_relay_ctx *c)
{
	if (!c->jobs)
		c->jobs = json_object_new_object();
	return c->jobs;
}

/* A block job whose completion moves a device's active layer. */
static void job_started(struct kl_relay_ctx *c, const char *kind, json_object *args)
{
	const char *id = kl_json_str(args, "job-id");
	if (!id)
		id = kl_json_str(args, "device");
	const char *device = kl_json_str(args, "device");
	if (!id || !device)
		return;
	json_object *j = json_object_new_object();
	json_object_object_add(j, "kind", json_object_new_string(kind));
	json_object_object_add(j, "device", json_object_new_string(device));
	const char *to = strcmp(kind, "mirror") == 0 ? kl_json_str(args, "target") : kl_json_str(args, "base-node");
	if (to)
		json_object_object_add(j, "to", json_object_new_string(to));
	if (kl_json_str(args, "top-node"))
		json_object_object_add(j, "top", json_object_new_string(kl_json_str(args, "top-node")));
	json_object_object_add(j, "keep_layers", json_object_new_boolean(kl_streq(kl_json_str(args, "sync"), "top")));
	json_object_object_add(jobs(c), id, j);
}

static void job_completed(struct kl_relay_ctx *c, const char *id)
{
	json_object *j = id ? kl_json_get(jobs(c), id, json_type_object) : NULL;
	if (!j)
		return;
	const char *kind = kl_json_str(j, "kind"), *to = kl_json_str(j, "to");
	const char *from = kl_json_str(j, "top") ? kl_json_str(j, "top") : kl_json_str(j, "device");
	if (to && kl_streq(kind, "mirror")) {
		_cleanup_json_ json_object *e = entry_for(c, to, "mirror");
		struct change ch = { OP_PIVOT, to, kl_json_str(j, "device"), e, kl_json_bool(j, "keep_layers", false) };
		kl_info("relay: disk %s (mirror over %s)", to, ch.from);
		commit(c, &ch);
	} else if (to) {
		struct change ch = { OP_PIVOT, to, from, NULL, true };
		kl_info("relay: disk %s (commit of %s)", to, from);
		commit(c, &ch);
	}
	json_object_object_del(jobs(c), id);
}

/* The base of the commit job whose top node is node (an intermediate
 * commit: QEMU made the base the backing of the node above), or NULL. */
static const char *commit_base(struct kl_relay_ctx *c, const char *node)
{
	json_object_object_foreach(jobs(c), id, j) {
		(void)id;
		if (kl_streq(kl_json_str(j, "kind"), "commit") && kl_streq(kl_json_str(j, "top"), node))
			return kl_json_str(j, "to");
	}
	return NULL;
}

void kl_relay_define(struct kl_relay_ctx *c, json_object *args)
{
	const char *node = kl_json_str(args, "node-name");
	if (!node)
		return;
	struct change ch = { OP_DEFINE, node, NULL, args, false };
	commit(c, &ch);
}

void kl_relay_note(struct kl_relay_ctx *c, json_object *msg)
{
	const char *cmd = kl_json_str(msg, "execute");
	json_object *args = kl_json_get(msg, "arguments", json_type_object);
	if (!cmd || !args)
		return;
	if (strcmp(cmd, "device_add") == 0) {
		placed(c, OP_ADD, kl_json_str(args, "drive"), "hot-plug", kl_json_str(args, "id"), NULL);
	} else if (strcmp(cmd, "blockdev-snapshot") == 0) {
		snapshot(c, args);
	} else if (strcmp(cmd, "transaction") == 0) {
		json_object *acts = kl_json_get(args, "actions", json_type_array);
		for (size_t i = 0; acts && i < json_object_array_length(acts); i++) {
			json_object *a = json_object_array_get_idx(acts, i);
			if (kl_streq(kl_json_str(a, "type"), "blockdev-snapshot"))
				snapshot(c, kl_json_get(a, "data", json_type_object));
		}
	} else if (strcmp(cmd, "blockdev-mirror") == 0) {
		job_started(c, "mirror", args);
	} else if (strcmp(cmd, "block-commit") == 0) {
		job_started(c, "commit", args);
	} else if (strcmp(cmd, "job-complete") == 0) {
		job_completed(c, kl_json_str(args, "id"));
	} else if (strcmp(cmd, "block-job-complete") == 0) {
		job_completed(c, kl_json_str(args, "device"));
	} else if (strcmp(cmd, "blockdev-del") == 0) {
		const char *node = kl_json_str(args, "node-name");
		if (!node)
			return;
		struct change ch = { OP_DEL, node, commit_base(c, node), NULL, false };
		commit(c, &ch);
		json_object_object_del(c->nodes, node);
	}
}
