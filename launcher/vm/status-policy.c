/* SPDX-License-Identifier: GPL-2.0-or-later */
/* --status against the policy: which disks run other settings than the
 * policy chose at launch, and which disks QEMU runs that no policy decided.
 * The Prometheus metrics and alert rules (contrib/prometheus) build on
 * these. */
#include "launcher/vm/status-policy.h"

#include <string.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "launcher/vm/block.h"
#include "launcher/vm/state.h"

static const char *s_or_empty(const char *s)
{
	return s ? s : "";
}

static json_object *str_json(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

/* The cache mode the policy chose at launch: "policy_cache" (state files of
 * this version), else the "from" of the disk's first recorded cache change,
 * else its cache (never changed). */
static const char *policy_cache(json_object *state, json_object *sd)
{
	const char *pc = kl_json_str(sd, "policy_cache");
	if (pc)
		return pc;
	json_object *changes = kl_json_get(state, "changes", json_type_array);
	const char *label = kl_json_str(sd, "id") ? kl_json_str(sd, "id") : kl_json_str(sd, "node");
	for (size_t i = 0; label && changes && i < json_object_array_length(changes); i++) {
		json_object *c = json_object_array_get_idx(changes, i);
		const char *disk = kl_json_str(c, "disk"), *setting = kl_json_str(c, "setting");
		if (disk && setting && strcmp(disk, label) == 0 && strcmp(setting, "cache") == 0 &&
		    kl_json_get(c, "from", json_type_string))
			return kl_json_str(c, "from");
	}
	return kl_json_str(sd, "cache");
}

void kl_status_disk_policy(json_object *view, json_object *state, json_object *sd)
{
	const char *pc = policy_cache(state, sd);
	const char *cache = kl_json_str(view, "cache");
	bool asked = strcmp(s_or_empty(kl_json_str(view, "cache_source")), "qemu") == 0;
	json_object_object_add(view, "cache_policy", str_json(pc));
	json_object_object_add(view, "settings_match_policy",
			       asked && pc && cache ? json_object_new_boolean(strcmp(pc, cache) == 0) : NULL);
}

/* Firmware flash (pflash0/1) is a block backend kvm-launch never decides. */
static bool is_firmware(json_object *b)
{
	const char *qdev = kl_json_str(b, "qdev"), *dev = kl_json_str(b, "device");
	return (qdev && strncmp(qdev, "/machine/system.flash", 21) == 0) || (dev && strncmp(dev, "pflash", 6) == 0);
}

json_object *kl_status_unmanaged(json_object *blocks, json_object *sdisks)
{
	size_t n = blocks && json_object_is_type(blocks, json_type_array) ? json_object_array_length(blocks) : 0;
	size_t ns = sdisks ? json_object_array_length(sdisks) : 0;
	json_object *out = json_object_new_array();
	for (size_t i = 0; i < n; i++) {
		json_object *b = json_object_array_get_idx(blocks, i);
		json_object *ins = kl_json_get(b, "inserted", json_type_object);
		bool known = false;
		/* No medium, no guest device (nothing does I/O), or firmware. */
		if (!ins || !kl_json_str(b, "qdev") || is_firmware(b))
			continue;
		for (size_t k = 0; k < ns && !known; k++)
			known = kl_block_find(blocks, json_object_array_get_idx(sdisks, k)) == b;
		if (known)
			continue;
		_cleanup_free_ char *qid = kl_qdev_id(kl_json_str(b, "qdev"));
		const char *dev = kl_json_str(b, "device");
		const char *name = qid && *qid ? qid : dev && *dev ? dev : s_or_empty(kl_json_str(ins, "node-name"));
		json_object *u = json_object_new_object();
		json_object_object_add(u, "disk", json_object_new_string(name));
		json_object_object_add(u, "node", str_json(kl_json_str(ins, "node-name")));
		json_object_object_add(u, "path", str_json(kl_json_str(ins, "file")));
		json_object_array_add(out, u);
	}
	return out;
}
