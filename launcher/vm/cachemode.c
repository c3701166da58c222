/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The cache mode of a running disk: configured write cache plus node options
 * (see cachemode.h for why query-block's "writeback" is not part of it). */
#include "launcher/vm/cachemode.h"

#include <string.h>

#include "common/json.h"
#include "launcher/vm/state.h"

json_object *kl_named_node(json_object *named, const char *node)
{
	size_t n = named && json_object_is_type(named, json_type_array) ? json_object_array_length(named) : 0;
	for (size_t i = 0; node && i < n; i++) {
		json_object *e = json_object_array_get_idx(named, i);
		const char *nn = kl_json_str(e, "node-name");
		if (nn && strcmp(nn, node) == 0)
			return e;
	}
	return NULL;
}

/* The node options of a BlockDeviceInfo's "cache": false when it has none. */
static bool node_flags(json_object *info, struct kl_cache_flags *f)
{
	json_object *c = kl_json_get(info, "cache", json_type_object);
	if (!c)
		return false;
	f->direct = kl_json_bool(c, "direct", false);
	f->no_flush = kl_json_bool(c, "no-flush", false);
	return true;
}

void kl_cache_view_of(json_object *sd, json_object *block, json_object *named, struct kl_cache_view *out)
{
	json_object *ins = kl_json_get(block, "inserted", json_type_object);
	json_object *qc = kl_json_get(ins, "cache", json_type_object);
	json_object *wb = NULL;
	enum kl_cache mode;

	memset(out, 0, sizeof *out);
	out->guest_wc = KL_TRI_UNKNOWN;
	if (qc && json_object_object_get_ex(qc, "writeback", &wb) && json_object_is_type(wb, json_type_boolean))
		out->guest_wc = json_object_get_boolean(wb) ? KL_TRI_YES : KL_TRI_NO;

	/* What kvm-launch started the disk with, or --set last made it. */
	const char *cfg = kl_json_str(sd, "cache");
	bool known = cfg && kl_cache_parse(cfg, &mode) == 0 && mode != KL_CACHE_AUTO && mode != KL_CACHE_KEEP;
	if (known) {
		out->flags = kl_cache_flags(mode);
		out->configured = true;
	} else {
		/* A state file without a mode (written by hand, or damaged):
		 * QEMU's flag is the best there is. */
		out->flags = kl_cache_flags(KL_CACHE_WRITEBACK);
		out->flags.writeback = out->guest_wc != KL_TRI_NO;
	}

	/* The node options: the top node's entry, else query-block's copy of it. */
	const char *top = kl_json_str(ins, "node-name");
	if (node_flags(kl_named_node(named, top), &out->flags) || node_flags(ins, &out->flags))
		out->from_qemu = true;
}

const char *kl_cache_flags_name(struct kl_cache_flags f)
{
	enum kl_cache c = kl_cache_from_flags(f);
	return c == KL_CACHE_UNSET ? "(no-flush without write cache)" : kl_cache_name(c);
}

const char *kl_cache_view_mode(const struct kl_cache_view *v)
{
	return kl_cache_flags_name(v->flags);
}

/* Check node `opts` of a reopen and its children given inline. */
static int check_node(json_object *named, json_object *opts, struct kl_cache_flags want, struct strbuf *what,
		      struct kl_error *err)
{
	const char *node = kl_json_str(opts, "node-name");
	if (node) {
		struct kl_cache_flags f;
		if (!node_flags(kl_named_node(named, node), &f))
			return kl_error_fail(err, "QEMU accepted the reopen but query-named-block-nodes does not show "
						  "node %s", node);
		strbuf_appendf(what, "%s%s direct=%s no-flush=%s", what->len ? ", " : "", node, f.direct ? "on" : "off",
			       f.no_flush ? "on" : "off");
		if (f.direct != want.direct || f.no_flush != want.no_flush)
			return kl_error_fail(err, "QEMU accepted the reopen but node %s has direct=%s no-flush=%s", node,
					     f.direct ? "on" : "off", f.no_flush ? "on" : "off");
	}
	json_object_object_foreach(opts, k, v) {
		(void)k;
		if (json_object_is_type(v, json_type_object) && kl_json_str(v, "driver") &&
		    check_node(named, v, want, what, err) < 0)
			return -1;
	}
	return 0;
}

int kl_cache_check_nodes(json_object *named, json_object *options, struct kl_cache_flags want, struct strbuf *what,
			 struct kl_error *err)
{
	size_t n = options && json_object_is_type(options, json_type_array) ? json_object_array_length(options) : 0;
	for (size_t i = 0; i < n; i++)
		if (check_node(named, json_object_array_get_idx(options, i), want, what, err) < 0)
			return -1;
	return 0;
}
