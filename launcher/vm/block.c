/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/vm/block.h"

#include <inttypes.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "common/strbuf.h"
#include "common/xalloc.h"

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
	const char *n = kl_json_str(kl_json_get(entry, "inserted", json_type_object), "node-name");
	return n ? n : kl_json_str(entry, "node-name");
}

json_object *kl_block_find(json_object *list, json_object *disk)
{
	const char *id = kl_json_str(disk, "id");
	const char *node = kl_json_str(disk, "node");
	size_t n = list && json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;

	for (int pass = 0; pass < 3; pass++) {
		for (size_t i = 0; i < n; i++) {
			json_object *e = json_object_array_get_idx(list, i);
			const char *en = entry_node(e);
			const char *dev = kl_json_str(e, "device");
			switch (pass) {
			case 0:
				if (node && en && strcmp(node, en) == 0)
					return e;
				break;
			case 1: {
				_cleanup_free_ char *qid = kl_qdev_id(kl_json_str(e, "qdev"));
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

/* The limits by QMP name: kl_throttle_keys (policy/types.h); the first
 * KL_THROTTLE_NBASE are the base limits. */
#define TKEY(i) (kl_throttle_keys[i].name)

/* "bps_rd_max_length" -> "bps_rd" ; "iops_size" -> NULL */
static char *base_of_key(const char *k)
{
	const char *m = strstr(k, "_max");
	return m ? xstrndup(k, (size_t)(m - k)) : NULL;
}

int64_t kl_throttle_value(json_object *o, const char *k, bool *present)
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
	json_object *ins = kl_json_get(block, "inserted", json_type_object);
	json_object *args = json_object_new_object();
	const char *qdev = kl_json_str(block, "qdev");
	const char *dev = kl_json_str(block, "device");

	if (qdev && *qdev)
		json_object_object_add(args, "id", json_object_new_string(qdev));
	else
		json_object_object_add(args, "device", json_object_new_string(dev ? dev : ""));
	for (size_t i = 0; i < KL_THROTTLE_NBASE; i++) {
		bool given;
		int64_t v = kl_throttle_value(set, TKEY(i), &given);
		if (!given)
			v = kl_throttle_value(ins, TKEY(i), NULL);
		json_object_object_add(args, TKEY(i), json_object_new_int64(v));
	}
	for (size_t i = KL_THROTTLE_NBASE; i < KL_THROTTLE_NKEYS; i++) {
		const char *k = TKEY(i);
		bool given;
		int64_t v = kl_throttle_value(set, k, &given);
		if (!given) {
			v = kl_throttle_value(ins, k, NULL);
			/* A burst without its base value is refused by QEMU: drop the
			 * old burst when the base was just set to 0. */
			_cleanup_free_ char *base = base_of_key(k);
			if (base && kl_throttle_value(args, base, NULL) == 0)
				v = 0;
			if (base && strstr(k, "_length")) {
				_cleanup_free_ char *max = xasprintf("%s_max", base);
				if (kl_throttle_value(args, max, NULL) == 0 && !kl_throttle_value(set, max, NULL))
					v = 0;
			}
		}
		if (v)
			json_object_object_add(args, k, json_object_new_int64(v));
	}
	const char *group = kl_json_str(set, "group");
	if (!group)
		group = kl_json_str(ins, "group");
	if (group)
		json_object_object_add(args, "group", json_object_new_string(group));
	return args;
}

json_object *kl_throttle_current(json_object *block)
{
	json_object *ins = kl_json_get(block, "inserted", json_type_object);
	json_object *o = json_object_new_object();
	bool any = false;
	for (size_t i = 0; i < KL_THROTTLE_NBASE; i++) {
		int64_t v = kl_throttle_value(ins, TKEY(i), NULL);
		if (v) {
			json_object_object_add(o, TKEY(i), json_object_new_int64(v));
			any = true;
		}
	}
	for (size_t i = KL_THROTTLE_NBASE; i < KL_THROTTLE_NKEYS; i++) {
		int64_t v = kl_throttle_value(ins, TKEY(i), NULL);
		if (v && (any || strcmp(TKEY(i), "iops_size") != 0))
			json_object_object_add(o, TKEY(i), json_object_new_int64(v));
	}
	/* QEMU names the group after the device when none was given: only a
	 * chosen group is worth showing. */
	const char *group = kl_json_str(ins, "group");
	const char *qdev = kl_json_str(block, "qdev"), *dev = kl_json_str(block, "device");
	if (any && group && !(qdev && strcmp(group, qdev) == 0) && !(dev && strcmp(group, dev) == 0))
		json_object_object_add(o, "group", json_object_new_string(group));
	return o;
}

char *kl_throttle_text(json_object *t)
{
	struct strbuf b = STRBUF_INIT;
	for (size_t i = 0; i < KL_THROTTLE_NKEYS; i++) {
		const char *k = TKEY(i);
		bool present;
		int64_t v = kl_throttle_value(t, k, &present);
		if (present && v)
			strbuf_appendf(&b, "%s%s=%" PRId64, b.len ? " " : "", k, v);
	}
	const char *g = kl_json_str(t, "group");
	if (g && b.len)
		strbuf_appendf(&b, " group=%s", g);
	if (!b.len)
		strbuf_append(&b, "-");
	return strbuf_steal(&b);
}

