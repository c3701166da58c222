/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The relay's policy hook: a blockdev-add gets aio and cache.direct/
 * cache.no-flush from the policy (probed and decided in a child with a
 * deadline, relay-decide.c), a format node over a node we decided gets the
 * same cache flags (as libvirt writes them on both), and a blockdev-reopen
 * keeps our flags on the nodes we decided.  The guest-visible write cache
 * is a device property: it is never touched here.  Whatever fails, the
 * message goes to QEMU as the client sent it, with one log line. */
#include "launcher/vm/relay-int.h"

#include <string.h>

#include "common/strbuf.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/json.h"
#include "launcher/vm/set-int.h"
#include "launcher/vm/state.h"

/* The node options kvm-launch decides, as a blockdev-add gives them. */
static void copy_decided(json_object *rec, json_object *node_args)
{
	json_object *cache = kl_json_get(node_args, "cache", json_type_object);
	if (cache)
		json_object_object_add(rec, "cache", json_object_get(cache));
	const char *aio = kl_json_str(node_args, "aio");
	if (aio)
		json_object_object_add(rec, "aio", json_object_new_string(aio));
}

/* Remember a node and, for inline children, theirs (node-name -> record). */
static void remember(struct kl_relay_ctx *c, json_object *node_args, json_object *disk)
{
	const char *name = kl_json_str(node_args, "node-name");
	json_object *file = json_object_object_get(node_args, "file");
	if (!name)
		return;
	json_object *rec = json_object_new_object();
	copy_decided(rec, node_args);
	if (json_object_is_type(file, json_type_string))
		json_object_object_add(rec, "file", json_object_get(file));
	else if (json_object_is_type(file, json_type_object) && kl_json_str(file, "node-name"))
		json_object_object_add(rec, "file", json_object_new_string(kl_json_str(file, "node-name")));
	if (disk)
		json_object_object_add(rec, "disk", json_object_get(disk));
	json_object_object_add(c->nodes, name, rec);
	if (json_object_is_type(file, json_type_object))
		remember(c, file, NULL);
}

/* msg with its arguments replaced. */
static json_object *with_arguments(json_object *msg, json_object *args)
{
	json_object *m = NULL;
	if (json_object_deep_copy(msg, &m, NULL) < 0)
		return NULL;
	json_object_object_add(m, "arguments", json_object_get(args));
	return m;
}

static const char *name_of(json_object *args)
{
	const char *n = kl_json_str(args, "node-name");
	return n ? n : "(no node-name)";
}

/* A format or filter node over a node we decided: the same cache flags. */
static json_object *over_decided(struct kl_relay_ctx *c, json_object *msg, json_object *args, const char *ref)
{
	json_object *child = kl_json_get(c->nodes, ref, json_type_object);
	json_object *cache = child ? kl_json_get(child, "cache", json_type_object) : NULL;
	if (!child)
		return NULL; /* not ours: as sent */
	json_object *new_args = NULL;
	if (json_object_deep_copy(args, &new_args, NULL) < 0)
		return NULL;
	if (cache)
		json_object_object_add(new_args, "cache", json_object_get(cache));
	json_object *disk = kl_json_get(child, "disk", json_type_object);
	json_object *d = NULL;
	if (disk && json_object_deep_copy(disk, &d, NULL) == 0) {
		json_object_object_add(d, "node", json_object_new_string(name_of(args)));
		if (kl_json_str(args, "driver"))
			json_object_object_add(d, "format", json_object_new_string(kl_json_str(args, "driver")));
	}
	remember(c, new_args, d);
	json_object_put(d);
	json_object *m = cache && !json_object_equal(cache, kl_json_get(args, "cache", json_type_object))
				 ? with_arguments(msg, new_args)
				 : NULL;
	if (m)
		kl_info("relay: blockdev-add %s: cache %s as on %s", name_of(args),
			json_object_to_json_string_ext(cache, JSON_C_TO_STRING_PLAIN), ref);
	json_object_put(new_args);
	return m;
}

static json_object *blockdev_add(struct kl_relay_ctx *c, json_object *msg, json_object *args)
{
	json_object *file = json_object_object_get(args, "file");
	if (json_object_is_type(file, json_type_string))
		return over_decided(c, msg, args, json_object_get_string(file));

	_cleanup_json_ json_object *res = NULL;
	char why[512] = "not decided here";
	if (c->no_decide || kl_relay_decide(c, args, &res, why, sizeof why) < 0) {
		kl_warn("relay: blockdev-add %s: %s: forwarded as sent", name_of(args), why);
		return NULL;
	}
	json_object *new_args = kl_json_get(res, "arguments", json_type_object);
	json_object *disk = kl_json_get(res, "disk", json_type_object);
	remember(c, new_args, disk);
	if (!kl_json_bool(res, "changed", false) || json_object_equal(new_args, args))
		return NULL;
	json_object *sent_cache = kl_json_get(args, "cache", json_type_object);
	kl_info("relay: blockdev-add %s: aio=%s cache=%s (rule %s); sent aio=%s cache.direct=%s",
		name_of(args), kl_json_str_or(disk, "aio", "-"), kl_json_str_or(disk, "cache", "-"),
		kl_json_str_or(disk, "rule", "?"), kl_json_str_or(args, "aio", "(threads)"),
		sent_cache && json_object_object_get(sent_cache, "direct")
			? json_object_to_json_string(json_object_object_get(sent_cache, "direct"))
			: "(false)");
	return with_arguments(msg, new_args);
}

/* One node's options in a reopen: kvm-launch's cache flags (and aio, which
 * QEMU cannot change anyway) on the nodes it decided, inline children too.
 * known: node-name -> {"cache", "aio"} for the nodes of the state entry's
 * disks as they run now (the command line's, --set's and the relay's);
 * then the relay's own records. */
static bool reopen_node(struct kl_relay_ctx *c, json_object *known, json_object *node)
{
	bool changed = false;
	const char *name = kl_json_str(node, "node-name");
	json_object *rec = name ? kl_json_get(known, name, json_type_object) : NULL;
	if (!rec && name)
		rec = kl_json_get(c->nodes, name, json_type_object);
	json_object *cache = rec ? kl_json_get(rec, "cache", json_type_object) : NULL;
	if (cache && !json_object_equal(cache, kl_json_get(node, "cache", json_type_object))) {
		json_object_object_add(node, "cache", json_object_get(cache));
		changed = true;
	}
	/* An aio left out of a reopen means QEMU's default: name ours. */
	const char *aio = rec ? kl_json_str(rec, "aio") : NULL;
	if (aio && kl_json_str(node, "driver") && !kl_streq(aio, kl_json_str(node, "aio"))) {
		json_object_object_add(node, "aio", json_object_new_string(aio));
		changed = true;
	}
	json_object *file = kl_json_get(node, "file", json_type_object);
	if (file && reopen_node(c, known, file))
		changed = true;
	return changed;
}

static json_object *blockdev_reopen(struct kl_relay_ctx *c, json_object *msg, json_object *args)
{
	json_object *opts = kl_json_get(args, "options", json_type_array);
	if (!opts)
		return NULL;
	_cleanup_json_ json_object *new_args = NULL;
	_cleanup_json_ json_object *st = NULL;
	_cleanup_json_ json_object *known = NULL;
	struct kl_error err = KL_ERROR_INIT;
	if (*c->state_file && kl_state_read(c->state_file, &st, &err) == 0)
		known = kl_set_node_settings(st);
	if (json_object_deep_copy(args, &new_args, NULL) < 0)
		return NULL;
	json_object *nopts = kl_json_get(new_args, "options", json_type_array);
	bool changed = false;
	for (size_t i = 0; i < json_object_array_length(nopts); i++) {
		json_object *node = json_object_array_get_idx(nopts, i);
		if (json_object_is_type(node, json_type_object) && reopen_node(c, known, node)) {
			kl_info("relay: blockdev-reopen %s: kvm-launch's cache/aio kept", name_of(node));
			changed = true;
		}
	}
	return changed ? with_arguments(msg, new_args) : NULL;
}

json_object *kl_relay_hook(void *vctx, json_object *msg)
{
	struct kl_relay_ctx *c = vctx;
	const char *cmd = kl_json_str(msg, "execute");
	json_object *args = kl_json_get(msg, "arguments", json_type_object);
	if (!cmd || !args)
		return NULL;
	if (strcmp(cmd, "blockdev-add") == 0) {
		json_object *out = blockdev_add(c, msg, args);
		json_object *sent = out ? kl_json_get(out, "arguments", json_type_object) : args;
		if (!c->no_decide)
			kl_relay_define(c, sent);
		return out;
	}
	if (strcmp(cmd, "blockdev-reopen") == 0)
		return blockdev_reopen(c, msg, args);
	if (strcmp(cmd, "human-monitor-command") == 0)
		return kl_relay_hmp(c, msg, args);
	kl_relay_note(c, msg);
	return NULL;
}

void kl_relay_remember(struct kl_relay_ctx *c, json_object *node_args, json_object *disk)
{
	remember(c, node_args, disk);
}
