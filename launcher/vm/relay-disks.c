/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Disks that appear while the VM runs, recorded in the VM's state entry
 * with the same members as the disks of the command line (state.c's
 * disk_json, built by the same code in the decision child) plus "origin":
 * "hot-plug" (device_add drive=NODE), "snapshot" (blockdev-snapshot, alone
 * or in a transaction: the overlay replaces the entry of the node it
 * covers), "mirror" (blockdev-mirror target).  blockdev-del removes the
 * entry.  Recorded when the command goes to QEMU: a command QEMU refuses
 * leaves an entry that --status shows without QEMU's settings. */
#include "launcher/vm/relay-int.h"

#include <string.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/json.h"
#include "launcher/vm/state.h"

enum op { OP_ADD, OP_REPLACE, OP_DEL };

struct change {
	enum op op;
	const char *node;       /* OP_ADD/OP_REPLACE: the new entry's node; OP_DEL: the node gone */
	const char *replaces;   /* OP_REPLACE: the node whose entry the new one takes over */
	json_object *entry;     /* the new entry (borrowed) */
};

static int find_node(json_object *disks, const char *node)
{
	for (size_t i = 0; node && i < json_object_array_length(disks); i++) {
		const char *n = kl_json_str(json_object_array_get_idx(disks, i), "node");
		if (n && strcmp(n, node) == 0)
			return (int)i;
	}
	return -1;
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
	int at = find_node(disks, ch->op == OP_REPLACE ? ch->replaces : ch->node);
	if (ch->op == OP_DEL) {
		if (at < 0)
			return 0;
		json_object_array_del_idx(disks, (size_t)at, 1);
		return 1;
	}
	if (ch->op == OP_REPLACE && at >= 0) {
		json_object *old = json_object_array_get_idx(disks, (size_t)at);
		if (kl_json_str(old, "id") && !kl_json_str(ch->entry, "id"))
			json_object_object_add(ch->entry, "id", json_object_new_string(kl_json_str(old, "id")));
		json_object_object_add(ch->entry, "previous_node", json_object_new_string(ch->replaces));
		json_object_array_put_idx(disks, (size_t)at, json_object_get(ch->entry));
		return 1;
	}
	at = find_node(disks, ch->node);
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

/* The state entry for a node we decided (a copy), NULL if not ours. */
static json_object *entry_for(struct kl_relay_ctx *c, const char *node, const char *origin)
{
	json_object *rec = node ? kl_json_get(c->nodes, node, json_type_object) : NULL;
	json_object *disk = rec ? kl_json_get(rec, "disk", json_type_object) : NULL;
	json_object *e = NULL;
	if (!disk || json_object_deep_copy(disk, &e, NULL) < 0)
		return NULL;
	json_object_object_add(e, "node", json_object_new_string(node));
	json_object_object_add(e, "origin", json_object_new_string(origin));
	return e;
}

static void placed(struct kl_relay_ctx *c, const char *node, const char *origin, const char *id, const char *replaces)
{
	_cleanup_json_ json_object *e = entry_for(c, node, origin);
	if (!e)
		return;
	if (id)
		json_object_object_add(e, "id", json_object_new_string(id));
	struct change ch = { replaces ? OP_REPLACE : OP_ADD, node, replaces, e };
	kl_info("relay: disk %s (%s%s%s)", node, origin, replaces ? " over " : "", replaces ? replaces : "");
	commit(c, &ch);
}

static void snapshot(struct kl_relay_ctx *c, json_object *data)
{
	placed(c, kl_json_str(data, "overlay"), "snapshot", NULL, kl_json_str(data, "node"));
}

void kl_relay_note(struct kl_relay_ctx *c, json_object *msg)
{
	const char *cmd = kl_json_str(msg, "execute");
	json_object *args = kl_json_get(msg, "arguments", json_type_object);
	if (strcmp(cmd, "device_add") == 0) {
		placed(c, kl_json_str(args, "drive"), "hot-plug", kl_json_str(args, "id"), NULL);
	} else if (strcmp(cmd, "blockdev-snapshot") == 0) {
		snapshot(c, args);
	} else if (strcmp(cmd, "transaction") == 0) {
		json_object *acts = kl_json_get(args, "actions", json_type_array);
		for (size_t i = 0; acts && i < json_object_array_length(acts); i++) {
			json_object *a = json_object_array_get_idx(acts, i);
			const char *type = kl_json_str(a, "type");
			if (type && strcmp(type, "blockdev-snapshot") == 0)
				snapshot(c, kl_json_get(a, "data", json_type_object));
		}
	} else if (strcmp(cmd, "blockdev-mirror") == 0) {
		placed(c, kl_json_str(args, "target"), "mirror", NULL, NULL);
	} else if (strcmp(cmd, "blockdev-del") == 0) {
		const char *node = kl_json_str(args, "node-name");
		if (!node)
			return;
		struct change ch = { OP_DEL, node, NULL, NULL };
		commit(c, &ch);
		json_object_object_del(c->nodes, node);
	}
}
