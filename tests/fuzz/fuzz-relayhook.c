/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Fuzz target: the relay's policy hook on client messages
 * (launcher/vm/relay-hook.c, relay-disks.c), without the decision child:
 * each input line is a message; nodes s1 (decided: O_DIRECT, io_uring) and
 * f1 (a raw node over it) are known from the start.
 *
 * Invariants (a broken one aborts): only blockdev-add and blockdev-reopen
 * are ever replaced; a replacement is an object that keeps "execute" and
 * "id"; in a replaced reopen every option object naming a decided node
 * carries that node's cache flags; the hook never crashes on any JSON. */
#include "fuzz.h"

#include <json-c/json.h>

#include "common/json.h"
#include "launcher/vm/relay-int.h"
#include "launcher/vm/state.h"

static json_object *known_nodes(void)
{
	return json_tokener_parse(
		"{\"s1\":{\"cache\":{\"direct\":true,\"no-flush\":false},\"aio\":\"io_uring\","
		"\"disk\":{\"node\":\"s1\",\"aio\":\"io_uring\",\"cache\":\"none\",\"rule\":\"default:file\"}},"
		"\"f1\":{\"cache\":{\"direct\":true,\"no-flush\":false},\"file\":\"s1\"}}");
}

static void check_reopen(json_object *c_nodes, json_object *repl)
{
	json_object *opts = kl_json_get(kl_json_get(repl, "arguments", json_type_object), "options", json_type_array);
	for (size_t i = 0; opts && i < json_object_array_length(opts); i++) {
		json_object *n = json_object_array_get_idx(opts, i);
		const char *name = json_object_is_type(n, json_type_object) ? kl_json_str(n, "node-name") : NULL;
		json_object *rec = name ? kl_json_get(c_nodes, name, json_type_object) : NULL;
		json_object *cache = rec ? kl_json_get(rec, "cache", json_type_object) : NULL;
		if (cache)
			FUZZ_CHECK(json_object_equal(cache, kl_json_get(n, "cache", json_type_object)));
	}
}

static void one(struct kl_relay_ctx *c, const char *text, size_t len)
{
	json_tokener *tok = json_tokener_new_ex(64);
	json_object *msg = json_tokener_parse_ex(tok, text, (int)len);
	json_tokener_free(tok);
	if (!json_object_is_type(msg, json_type_object)) {
		json_object_put(msg);
		return;
	}
	const char *cmd = kl_json_str(msg, "execute");
	json_object *repl = kl_relay_hook(c, msg);
	if (repl) {
		FUZZ_CHECK(cmd && (strcmp(cmd, "blockdev-add") == 0 || strcmp(cmd, "blockdev-reopen") == 0));
		FUZZ_CHECK(json_object_is_type(repl, json_type_object));
		FUZZ_CHECK(strcmp(kl_json_str(repl, "execute"), cmd) == 0);
		FUZZ_CHECK(json_object_equal(json_object_object_get(msg, "id"), json_object_object_get(repl, "id")));
		if (strcmp(cmd, "blockdev-reopen") == 0)
			check_reopen(c->nodes, repl);
		json_object_put(repl);
	}
	json_object_put(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	if (!quiet) {
		kl_log_set_level(KL_LOG_ERROR);
		quiet = true;
	}
	struct kl_relay_ctx c = { .state_file = "", .policy_path = "", .qemu = "/nonexistent", .cache_dir = "",
				  .no_decide = true, .nodes = known_nodes() };
	const char *p = (const char *)data, *end = p + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		one(&c, p, len);
		p += len + 1;
	}
	json_object_put(c.nodes);
	json_object_put(c.jobs);
	return 0;
}
