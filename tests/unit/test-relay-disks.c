/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The relay's record of runtime disks (launcher/vm/relay-disks.c) and its
 * blockdev-reopen rewrite (relay-hook.c), fed the QMP commands libvirt 9
 * sends for hot-plug, snapshots, block commit, block copy, detach and
 * checkpoint deletion, against a state file in a temporary directory. */
#include "unit.h"

#include <stdlib.h>
#include <unistd.h>

#include "common/json.h"
#include "launcher/vm/procinfo.h"
#include "launcher/vm/relay-int.h"
#include "launcher/vm/state.h"

static char dir[] = "/tmp/kl-test-relay-disks.XXXXXX";
static char state_path[256];

static json_object *parse(const char *s)
{
	json_object *o = json_tokener_parse(s);
	if (!o)
		printf("# bad JSON in the test: %s\n", s);
	return o;
}

static json_object *state(void)
{
	json_object *st = NULL;
	struct kl_error err = KL_ERROR_INIT;
	if (kl_state_read(state_path, &st, &err) < 0)
		printf("# %s\n", err.msg);
	return st;
}

static json_object *disk(json_object *st, size_t i)
{
	json_object *d = kl_json_get(st, "disks", json_type_array);
	return d && i < json_object_array_length(d) ? json_object_array_get_idx(d, i) : NULL;
}

static size_t ndisks(json_object *st)
{
	json_object *d = kl_json_get(st, "disks", json_type_array);
	return d ? json_object_array_length(d) : 0;
}

static const char *layer(json_object *d, size_t i)
{
	json_object *l = kl_json_get(d, "layers", json_type_array);
	return l && i < json_object_array_length(l) ? kl_json_str(json_object_array_get_idx(l, i), "node") : NULL;
}

static size_t nlayers(json_object *d)
{
	json_object *l = kl_json_get(d, "layers", json_type_array);
	return l ? json_object_array_length(l) : 0;
}

static void note(struct kl_relay_ctx *c, const char *msg)
{
	json_object *m = parse(msg);
	json_object *out = kl_relay_hook(c, m);
	json_object_put(out);
	json_object_put(m);
}

/* What the decision child would have recorded for a node. */
static void decided(struct kl_relay_ctx *c, const char *node, const char *path, const char *aio)
{
	char buf[512];
	snprintf(buf, sizeof buf,
		 "{\"cache\":{\"direct\":true,\"no-flush\":false},\"disk\":{\"path\":\"%s\",\"aio\":\"%s\","
		 "\"cache\":\"none\",\"rule\":\"default:file\"}}", path, aio);
	json_object_object_add(c->nodes, node, parse(buf));
}

static void define(struct kl_relay_ctx *c, const char *args)
{
	json_object *a = parse(args);
	kl_relay_define(c, a);
	json_object_put(a);
}

#define BASE_STORAGE "{\"driver\":\"file\",\"filename\":\"/i/base.qcow2\",\"node-name\":\"libvirt-1-storage\"," \
	"\"aio\":\"native\",\"cache\":{\"direct\":true,\"no-flush\":false}}"
#define BASE_FORMAT "{\"node-name\":\"libvirt-1-format\",\"driver\":\"qcow2\",\"file\":\"libvirt-1-storage\"," \
	"\"cache\":{\"direct\":true,\"no-flush\":false},\"backing\":null}"

static void setup(struct kl_relay_ctx *c)
{
	unsigned long long ticks = 0;
	kl_proc_start_ticks(getpid(), &ticks);
	snprintf(state_path, sizeof state_path, "%s/vm.json", dir);
	json_object *st = json_object_new_object();
	json_object_object_add(st, "pid", json_object_new_int64(getpid()));
	json_object_object_add(st, "start_ticks", json_object_new_int64((int64_t)ticks));
	json_object *argv = json_object_new_array();
	const char *args[] = { "qemu", "-blockdev", BASE_STORAGE, "-blockdev", BASE_FORMAT };
	for (size_t i = 0; i < 5; i++)
		json_object_array_add(argv, json_object_new_string(args[i]));
	json_object_object_add(st, "argv", argv);
	json_object_object_add(st, "disks", parse("[{\"id\":\"virtio-disk0\",\"node\":\"libvirt-1-format\","
						  "\"path\":\"/i/base.qcow2\",\"aio\":\"native\",\"cache\":\"none\"}]"));
	struct kl_error err = KL_ERROR_INIT;
	CHECK_INTEQ(kl_state_write_json(state_path, st, &err), 0);
	json_object_put(st);
	*c = (struct kl_relay_ctx){ .state_file = state_path, .policy_path = "", .qemu = "/bin/false",
				    .cache_dir = "", .qemu_pid = getpid(), .qemu_ticks = ticks };
	c->nodes = json_object_new_object();
}

static void teardown(struct kl_relay_ctx *c)
{
	json_object_put(c->nodes);
	json_object_put(c->jobs);
	unlink(state_path);
}

static void test_hotplug_and_detach(void)
{
	struct kl_relay_ctx c;
	setup(&c);
	decided(&c, "libvirt-2-format", "/i/vol.img", "io_uring");
	note(&c, "{\"execute\":\"device_add\",\"arguments\":{\"driver\":\"virtio-blk-pci\",\"drive\":\"libvirt-2-format\","
		 "\"id\":\"virtio-disk1\"}}");
	json_object *st = state();
	CHECK_INTEQ(ndisks(st), 2);
	CHECK_STREQ(kl_json_str(disk(st, 1), "origin"), "hot-plug");
	CHECK_STREQ(kl_json_str(disk(st, 1), "id"), "virtio-disk1");
	CHECK_STREQ(kl_json_str(disk(st, 1), "path"), "/i/vol.img");
	json_object_put(st);
	/* a node the relay did not decide still shows, with a note */
	note(&c, "{\"execute\":\"device_add\",\"arguments\":{\"drive\":\"other-format\",\"id\":\"virtio-disk2\"}}");
	st = state();
	CHECK_INTEQ(ndisks(st), 3);
	CHECK(kl_json_bool(disk(st, 2), "undecided", false));
	json_object_put(st);
	/* detach: device_del, then blockdev-del of the format and storage nodes */
	note(&c, "{\"execute\":\"device_del\",\"arguments\":{\"id\":\"virtio-disk1\"}}");
	note(&c, "{\"execute\":\"blockdev-del\",\"arguments\":{\"node-name\":\"libvirt-2-format\"}}");
	note(&c, "{\"execute\":\"blockdev-del\",\"arguments\":{\"node-name\":\"libvirt-2-storage\"}}");
	st = state();
	CHECK_INTEQ(ndisks(st), 2);
	CHECK_STREQ(kl_json_str(disk(st, 0), "node"), "libvirt-1-format");
	json_object_put(st);
	teardown(&c);
}

static void test_snapshot_commit_copy(void)
{
	struct kl_relay_ctx c;
	setup(&c);
	/* two external snapshots: s1 over base, s2 over s1 */
	decided(&c, "libvirt-3-format", "/i/s1", "io_uring");
	define(&c, "{\"node-name\":\"libvirt-3-format\",\"driver\":\"qcow2\",\"file\":\"libvirt-3-storage\",\"backing\":null}");
	note(&c, "{\"execute\":\"transaction\",\"arguments\":{\"actions\":[{\"type\":\"blockdev-snapshot\",\"data\":"
		 "{\"node\":\"libvirt-1-format\",\"overlay\":\"libvirt-3-format\"}}]}}");
	decided(&c, "libvirt-4-format", "/i/s2", "io_uring");
	define(&c, "{\"node-name\":\"libvirt-4-format\",\"driver\":\"qcow2\",\"file\":\"libvirt-4-storage\",\"backing\":null}");
	note(&c, "{\"execute\":\"transaction\",\"arguments\":{\"actions\":[{\"type\":\"blockdev-snapshot\",\"data\":"
		 "{\"node\":\"libvirt-3-format\",\"overlay\":\"libvirt-4-format\"}}]}}");
	json_object *st = state();
	CHECK_INTEQ(ndisks(st), 1);
	CHECK_STREQ(kl_json_str(disk(st, 0), "node"), "libvirt-4-format");
	CHECK_STREQ(kl_json_str(disk(st, 0), "id"), "virtio-disk0");
	CHECK_STREQ(kl_json_str(disk(st, 0), "origin"), "snapshot");
	CHECK_INTEQ(nlayers(disk(st, 0)), 2);
	CHECK_STREQ(layer(disk(st, 0), 0), "libvirt-3-format");
	CHECK_STREQ(layer(disk(st, 0), 1), "libvirt-1-format");
	/* the overlay's definition names its backing now (a reopen must) */
	json_object *defs = kl_json_get(st, "runtime_blockdevs", json_type_object);
	CHECK_STREQ(kl_json_str(kl_json_get(defs, "libvirt-4-format", json_type_object), "backing"), "libvirt-3-format");
	json_object_put(st);

	/* intermediate commit of s1 into base: s1 goes from the layers, s2 backs onto base */
	note(&c, "{\"execute\":\"block-commit\",\"arguments\":{\"job-id\":\"commit-vda\",\"device\":\"libvirt-4-format\","
		 "\"top-node\":\"libvirt-3-format\",\"base-node\":\"libvirt-1-format\"}}");
	note(&c, "{\"execute\":\"blockdev-del\",\"arguments\":{\"node-name\":\"libvirt-3-format\"}}");
	st = state();
	CHECK_STREQ(kl_json_str(disk(st, 0), "node"), "libvirt-4-format");
	CHECK_INTEQ(nlayers(disk(st, 0)), 1);
	CHECK_STREQ(layer(disk(st, 0), 0), "libvirt-1-format");
	defs = kl_json_get(st, "runtime_blockdevs", json_type_object);
	CHECK_STREQ(kl_json_str(kl_json_get(defs, "libvirt-4-format", json_type_object), "backing"), "libvirt-1-format");
	json_object_put(st);

	/* active commit with pivot: base is the active layer again */
	note(&c, "{\"execute\":\"block-commit\",\"arguments\":{\"job-id\":\"active-vda\",\"device\":\"libvirt-4-format\","
		 "\"top-node\":\"libvirt-4-format\",\"base-node\":\"libvirt-1-format\"}}");
	st = state();
	CHECK_STREQ(kl_json_str(disk(st, 0), "node"), "libvirt-4-format"); /* not before the pivot */
	json_object_put(st);
	note(&c, "{\"execute\":\"job-complete\",\"arguments\":{\"id\":\"active-vda\"}}");
	note(&c, "{\"execute\":\"blockdev-del\",\"arguments\":{\"node-name\":\"libvirt-4-format\"}}");
	st = state();
	CHECK_INTEQ(ndisks(st), 1);
	CHECK_STREQ(kl_json_str(disk(st, 0), "node"), "libvirt-1-format");
	CHECK_STREQ(kl_json_str(disk(st, 0), "origin"), "commit");
	CHECK_STREQ(kl_json_str(disk(st, 0), "id"), "virtio-disk0");
	CHECK_INTEQ(nlayers(disk(st, 0)), 0);
	json_object_put(st);

	/* block copy with pivot, then the old chain goes */
	decided(&c, "libvirt-5-format", "/i/copy.qcow2", "io_uring");
	note(&c, "{\"execute\":\"blockdev-mirror\",\"arguments\":{\"job-id\":\"copy-vda\",\"device\":\"libvirt-1-format\","
		 "\"target\":\"libvirt-5-format\",\"sync\":\"full\"}}");
	note(&c, "{\"execute\":\"job-complete\",\"arguments\":{\"id\":\"copy-vda\"}}");
	note(&c, "{\"execute\":\"blockdev-del\",\"arguments\":{\"node-name\":\"libvirt-1-format\"}}");
	note(&c, "{\"execute\":\"blockdev-del\",\"arguments\":{\"node-name\":\"libvirt-1-storage\"}}");
	st = state();
	CHECK_INTEQ(ndisks(st), 1);
	CHECK_STREQ(kl_json_str(disk(st, 0), "node"), "libvirt-5-format");
	CHECK_STREQ(kl_json_str(disk(st, 0), "origin"), "mirror");
	CHECK_STREQ(kl_json_str(disk(st, 0), "previous_node"), "libvirt-1-format");
	CHECK_STREQ(kl_json_str(disk(st, 0), "path"), "/i/copy.qcow2");
	CHECK_STREQ(kl_json_str(disk(st, 0), "id"), "virtio-disk0");
	json_object_put(st);
	teardown(&c);
}

/* libvirt's checkpoint deletion reopens the format node with the XML's
 * cache (direct off): the command line's choice is kept. */
static void test_reopen_keeps_flags(void)
{
	struct kl_relay_ctx c;
	setup(&c);
	json_object *m = parse("{\"execute\":\"blockdev-reopen\",\"arguments\":{\"options\":[{\"node-name\":"
			       "\"libvirt-1-format\",\"driver\":\"qcow2\",\"file\":\"libvirt-1-storage\",\"read-only\":false,"
			       "\"cache\":{\"direct\":false,\"no-flush\":false},\"backing\":null}]}}");
	json_object *out = kl_relay_hook(&c, m);
	CHECK(out != NULL);
	json_object *o = out ? json_object_array_get_idx(kl_json_get(kl_json_get(out, "arguments", json_type_object),
								   "options", json_type_array), 0) : NULL;
	json_object *cache = kl_json_get(o, "cache", json_type_object);
	CHECK(cache && json_object_get_boolean(json_object_object_get(cache, "direct")));
	CHECK(!kl_json_str(o, "aio")); /* a format node has no aio */
	CHECK(json_object_is_type(json_object_object_get(o, "backing"), json_type_null));
	json_object_put(out);
	json_object_put(m);
	/* the storage node given: its aio stays native */
	m = parse("{\"execute\":\"blockdev-reopen\",\"arguments\":{\"options\":[{\"node-name\":\"libvirt-1-storage\","
		  "\"driver\":\"file\",\"filename\":\"/i/base.qcow2\"}]}}");
	out = kl_relay_hook(&c, m);
	o = out ? json_object_array_get_idx(kl_json_get(kl_json_get(out, "arguments", json_type_object), "options",
							json_type_array), 0) : NULL;
	CHECK_STREQ(kl_json_str(o, "aio"), "native");
	json_object_put(out);
	json_object_put(m);
	/* a node nobody decided: as sent */
	m = parse("{\"execute\":\"blockdev-reopen\",\"arguments\":{\"options\":[{\"node-name\":\"x\",\"driver\":\"raw\"}]}}");
	CHECK(kl_relay_hook(&c, m) == NULL);
	json_object_put(m);
	teardown(&c);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_hotplug_and_detach);
	RUN(test_snapshot_commit_copy);
	RUN(test_reopen_keeps_flags);
	rmdir(dir);
	return unit_done();
}
