/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The policy module: the file's grammar, its errors and warnings, nova's
 * disk_cachemodes, the built-in rules, the hard rules, --check-policy, the
 * file-safety check, and the cost of a decision. */
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "common/cleanup.h"
#include "common/xalloc.h"
#include "policy/policy.h"
#include "policy/policy-int.h"

#define YES KL_TRI_YES
#define NO KL_TRI_NO
#define UNK KL_TRI_UNKNOWN

/* ---- helpers ---- */

static struct kl_policy *load_w(const char *text, struct strvec *warnings)
{
	struct kl_error err = KL_ERROR_INIT;
	struct kl_policy *p = NULL;
	if (kl_policy_load_string(text, "t.conf", &p, warnings, &err) < 0) {
		printf("#   load failed: %s\n", err.msg);
		return NULL;
	}
	return p;
}

static struct kl_policy *load(const char *text)
{
	return load_w(text, NULL);
}

/* The first error must read exactly "t.conf:LINE: msg" (plus the count of
 * further errors, which is not compared). */
static bool error_is(const char *text, const char *expected)
{
	struct kl_error err = KL_ERROR_INIT;
	struct kl_policy *p = (struct kl_policy *)1;
	int r = kl_policy_load_string(text, "t.conf", &p, NULL, &err);
	if (r != -1 || p != NULL) {
		printf("#   expected an error \"%s\", the policy loaded\n", expected);
		kl_policy_free(r == 0 ? p : NULL);
		return false;
	}
	size_t n = strlen(expected);
	if (strncmp(err.msg, expected, n) != 0 || (err.msg[n] && strncmp(err.msg + n, " (and ", 6) != 0)) {
		printf("#   error \"%s\"\n#   expected \"%s\"\n", err.msg, expected);
		return false;
	}
	return true;
}

static bool has_line(const struct strvec *v, const char *s)
{
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->v[i], s) == 0)
			return true;
	printf("#   missing \"%s\" among %zu line(s):\n", s, v->n);
	for (size_t i = 0; i < v->n; i++)
		printf("#     %s\n", v->v[i]);
	return false;
}

static struct kl_host_facts host_good(void)
{
	return (struct kl_host_facts){ .io_uring_kernel = YES, .io_uring_qemu = YES, .libaio = YES,
				       .aio_nr = 1024, .aio_max_nr = 65536, .libaio_headroom = YES };
}

static struct kl_host_facts host_no_uring(void)
{
	struct kl_host_facts h = host_good();
	h.io_uring_kernel = NO;
	return h;
}

static struct kl_disk_facts f_block(enum kl_block_kind kind)
{
	struct kl_disk_facts f = { .backend = KL_BACKEND_BLOCK, .block_kind = kind, .rotational = NO,
				   .preallocated = YES, .shared = NO, .odirect = YES };
	snprintf(f.storage_id, sizeof f.storage_id, "dev:253:1");
	return f;
}

static struct kl_disk_facts f_file(const char *fs, const char *format, enum kl_tri prealloc)
{
	struct kl_disk_facts f = { .backend = KL_BACKEND_FILE, .rotational = NO, .preallocated = prealloc,
				   .shared = NO, .odirect = YES };
	/* What the probe says on btrfs without NOCOW; unknown elsewhere. */
	f.cow = strcmp(fs, "btrfs") == 0 ? YES : UNK;
	snprintf(f.fs, sizeof f.fs, "%s", fs);
	snprintf(f.format, sizeof f.format, "%s", format);
	return f;
}

static struct kl_disk_facts f_network(const char *driver)
{
	struct kl_disk_facts f = { .backend = KL_BACKEND_NETWORK };
	snprintf(f.network_driver, sizeof f.network_driver, "%s", driver);
	return f;
}

static struct kl_disk_given g_disk(const char *path, const char *driver, const char *format)
{
	return (struct kl_disk_given){ .id = "virtio-disk0", .node = "libvirt-1-format", .path = path,
				       .driver = driver, .format = format };
}

static struct kl_decision D;
static const struct kl_vm_context VM = { .name = "web1" };
static const struct kl_vm_context VM_IN = { .name = "web1", .incoming = true };

static void decide(const struct kl_policy *p, const struct kl_vm_context *vm, const struct kl_disk_given *g,
		   const struct kl_disk_facts *f, const struct kl_host_facts *h)
{
	kl_decision_free(&D);
	kl_decide(p, vm, g, f, h, &D);
}

static void dump_decision(void)
{
	printf("#   decision: rule %s aio \"%s\" cache \"%s\" changed %d\n", D.rule, kl_aio_name(D.aio),
	       kl_cache_name(D.cache), D.changed);
	for (size_t i = 0; i < D.reasons.n; i++)
		printf("#     reason: %s\n", D.reasons.v[i]);
}

#define CHECK_DEC(a, c, ch) do { \
	if (D.aio != (a) || D.cache != (c) || D.changed != (ch)) { \
		printf("#   %s:%d: expected aio \"%s\" cache \"%s\" changed %d\n", __FILE__, __LINE__, \
		       kl_aio_name(a), kl_cache_name(c), (int)(ch)); \
		dump_decision(); \
		unit_case_failed = 1; \
	} } while (0)

static bool reason_has(const char *sub)
{
	for (size_t i = 0; i < D.reasons.n; i++)
		if (strstr(D.reasons.v[i], sub))
			return true;
	printf("#   no reason contains \"%s\"\n", sub);
	dump_decision();
	return false;
}

#define CHECK_REASON(sub) CHECK(reason_has(sub))

/* ---- the grammar ---- */

static void test_globals(void)
{
	struct kl_policy *p = load("\xef\xbb\xbf# globals\r\n"
				   "qemu = /usr/bin/qemu-system-x86_64.distrib   # the real one\r\n"
				   "state-dir = /run/kvm-launch\n"
				   "cache-dir=/var/cache/kvm-launch\n"
				   "  on-error = refuse\n"
				   "; an ini-style comment\n");
	CHECK(p != NULL);
	if (!p)
		return;
	const struct kl_policy_globals *g = kl_policy_globals(p);
	CHECK_STREQ(g->qemu, "/usr/bin/qemu-system-x86_64.distrib");
	CHECK_STREQ(g->state_dir, "/run/kvm-launch");
	CHECK_STREQ(g->cache_dir, "/var/cache/kvm-launch");
	CHECK_INTEQ(g->on_error, KL_ON_ERROR_REFUSE);
	CHECK_INTEQ(kl_policy_user_rule_count(p), 0);
	CHECK(kl_policy_rule_count(p) > 0);
	CHECK(!kl_policy_is_nova(p));
	kl_policy_free(p);

	p = load("");
	CHECK(p != NULL);
	if (p) {
		g = kl_policy_globals(p);
		CHECK(g->qemu == NULL && g->state_dir == NULL && g->cache_dir == NULL);
		CHECK_INTEQ(g->on_error, KL_ON_ERROR_PASSTHROUGH);
		CHECK(g->monitor_relay); /* on unless turned off */
		kl_policy_free(p);
	}
	p = load("on-error = passthrough\n");
	CHECK(p && kl_policy_globals(p)->on_error == KL_ON_ERROR_PASSTHROUGH);
	kl_policy_free(p);
	p = load("monitor-relay = off\n");
	CHECK(p && !kl_policy_globals(p)->monitor_relay);
	kl_policy_free(p);
	p = load("monitor-relay = on\n");
	CHECK(p && kl_policy_globals(p)->monitor_relay);
	kl_policy_free(p);
	p = load("monitor-relay = on\nmonitor-relay = off\n");
	CHECK(p && !kl_policy_globals(p)->monitor_relay);
	kl_policy_free(p);
}

/* One rule with every match key: it matches a disk that has all of them,
 * and stops matching when any one of them differs. */
static void test_every_match_key(void)
{
	struct kl_policy *p = load("[rule all]\n"
				   "backend = block, file\n"
				   "block-kind = lvm, nvme\n"
				   "fs = ext*, xfs\n"
				   "format = raw\n"
				   "preallocated = yes\n"
				   "shared = no\n"
				   "readonly = no\n"
				   "cdrom = false\n"
				   "shareable = off\n"
				   "driver = host_device\n"
				   "rotational = no\n"
				   "path = /dev/vg0/*\n"
				   "vm = web*, db1\n"
				   "incoming = no\n"
				   "odirect = yes\n"
				   "aio = threads\n");
	CHECK(p != NULL);
	if (!p)
		return;
	struct kl_host_facts h = host_good();
	struct kl_disk_facts f = f_block(KL_BLOCK_LVM);
	snprintf(f.fs, sizeof f.fs, "ext4");
	struct kl_disk_given g = g_disk("/dev/vg0/web1", "host_device", "raw");

	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "user:all");

#define MISS(stmt, restore) do { stmt; decide(p, &VM, &g, &f, &h); \
	if (strcmp(D.rule, "user:all") == 0) { printf("#   still matched after: %s\n", #stmt); unit_case_failed = 1; } \
	restore; } while (0)
	MISS(f.backend = KL_BACKEND_NETWORK, f.backend = KL_BACKEND_BLOCK);
	MISS(f.block_kind = KL_BLOCK_LOOP, f.block_kind = KL_BLOCK_LVM);
	MISS(snprintf(f.fs, sizeof f.fs, "btrfs"), snprintf(f.fs, sizeof f.fs, "ext4"));
	MISS(f.fs[0] = '\0', snprintf(f.fs, sizeof f.fs, "ext4"));
	MISS(g.format = "qcow2", g.format = "raw");
	MISS(f.preallocated = NO, f.preallocated = YES);
	MISS(f.preallocated = UNK, f.preallocated = YES);
	MISS(f.shared = YES, f.shared = NO);
	MISS(g.readonly = true, g.readonly = false);
	MISS(g.cdrom = true, g.cdrom = false);
	MISS(g.shareable = true, g.shareable = false);
	MISS(g.driver = "file", g.driver = "host_device");
	MISS(f.rotational = YES, f.rotational = NO);
	MISS(g.path = "/dev/vg1/web1", g.path = "/dev/vg0/web1");
	MISS(g.path = NULL, g.path = "/dev/vg0/web1");
	struct kl_vm_context other = { .name = "mail" };
	decide(p, &other, &g, &f, &h);
	CHECK(strcmp(D.rule, "user:all") != 0);
	decide(p, &VM_IN, &g, &f, &h);
	CHECK(strcmp(D.rule, "user:all") != 0);
	MISS(f.odirect = NO, f.odirect = YES);
#undef MISS
	/* The list and glob forms: the second item and a plain name. */
	f.block_kind = KL_BLOCK_NVME;
	snprintf(f.fs, sizeof f.fs, "xfs");
	struct kl_vm_context db = { .name = "db1" };
	decide(p, &db, &g, &f, &h);
	CHECK_STREQ(D.rule, "user:all");
	/* format falls back to the probed one when none is given. */
	g.format = NULL;
	snprintf(f.format, sizeof f.format, "raw");
	decide(p, &db, &g, &f, &h);
	CHECK_STREQ(D.rule, "user:all");
	kl_policy_free(p);

	/* Each boolean's "yes" side, and unknown backends. */
	p = load("[rule ro]\nreadonly = yes\ncdrom = yes\nshareable = yes\nshared = yes\nrotational = yes\n"
		 "incoming = yes\nodirect = no\npreallocated = no\naio = threads\n"
		 "[rule unk]\nbackend = unknown\ncache = keep\n"
		 "[rule net]\nbackend = network\ndriver = rbd\ncache = none\n");
	CHECK(p != NULL);
	if (!p)
		return;
	struct kl_disk_facts f2 = f_file("nfs", "raw", NO);
	f2.shared = YES;
	f2.rotational = YES;
	f2.odirect = NO;
	struct kl_disk_given g2 = g_disk("/srv/a.iso", "file", "raw");
	g2.readonly = g2.cdrom = g2.shareable = true;
	decide(p, &VM_IN, &g2, &f2, &h);
	CHECK_STREQ(D.rule, "user:ro");
	struct kl_disk_facts fu = { .backend = KL_BACKEND_UNKNOWN };
	decide(p, &VM, &g, &fu, &h);
	CHECK_STREQ(D.rule, "user:unk");
	struct kl_disk_facts fn = f_network("rbd");
	struct kl_disk_given gn = g_disk("pool/vol", "rbd", "raw");
	decide(p, &VM, &gn, &fn, &h);
	CHECK_STREQ(D.rule, "user:net");
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_NONE, true);
	kl_policy_free(p);
}

static void test_actions(void)
{
	struct kl_host_facts h = host_good();
	struct kl_disk_facts f = f_block(KL_BLOCK_LVM);
	struct kl_disk_given g = g_disk("/dev/vg0/a", "host_device", "raw");
	static const struct { const char *aio, *cache; enum kl_aio ea; enum kl_cache ec; } t[] = {
		{ "threads", "none", KL_AIO_UNSET, KL_CACHE_NONE },             /* threads = the default */
		{ "native", "directsync", KL_AIO_NATIVE, KL_CACHE_DIRECTSYNC },
		{ "io_uring", "writeback", KL_AIO_IO_URING, KL_CACHE_UNSET },   /* writeback = the default */
		{ "io_uring", "writethrough", KL_AIO_IO_URING, KL_CACHE_WRITETHROUGH },
		{ "io_uring", "unsafe", KL_AIO_IO_URING, KL_CACHE_UNSAFE },
		{ "auto", "auto", KL_AIO_IO_URING, KL_CACHE_NONE },
		{ "keep", "keep", KL_AIO_UNSET, KL_CACHE_UNSET },
		{ "threads, io_uring", "direct", KL_AIO_UNSET, KL_CACHE_NONE },  /* threads = the default */
		{ "native, threads", "host", KL_AIO_UNSET, KL_CACHE_UNSET },    /* native needs O_DIRECT */
	};
	for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
		char text[256];
		snprintf(text, sizeof text, "[rule r]\nbackend = block\naio = %s\ncache = %s\n", t[i].aio, t[i].cache);
		struct kl_policy *p = load(text);
		CHECK(p != NULL);
		if (!p)
			continue;
		decide(p, &VM, &g, &f, &h);
		if (D.aio != t[i].ea || D.cache != t[i].ec)
			printf("#   case aio = %s, cache = %s\n", t[i].aio, t[i].cache);
		CHECK_DEC(t[i].ea, t[i].ec, t[i].ea != KL_AIO_UNSET || t[i].ec != KL_CACHE_UNSET);
		CHECK_STREQ(D.rule, "user:r");
		kl_policy_free(p);
	}

	/* Throttle settings, with size suffixes for byte counts. */
	struct kl_policy *p = load("[rule limits]\n"
				   "path = /dev/vg0/*\n"
				   "bps_rd = 100M\nbps_wr = 50m\n"
				   "iops_rd = 2000\niops_wr = 1000\n"
				   "bps_rd_max = 1G\nbps_wr_max = 51200K\n"
				   "iops_rd_max = 4000\niops_wr_max = 1000\n"
				   "iops_size = 4k\n"
				   "group = tenant-a\n"
				   "[rule totals]\n"
				   "path = /dev/vg1/*\n"
				   "bps = 1T\nbps_max = 2T\niops = 10\niops_max = 20\n"
				   "[rule keepers]\n"
				   "path = /dev/vg2/*\n"
				   "allow-host-cache = yes\n"
				   "cache = writeback\n");
	CHECK(p != NULL);
	if (!p)
		return;
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "user:limits");
	CHECK(D.has_throttle);
	CHECK_INTEQ(D.throttle.bps_rd, 100LL << 20);
	CHECK_INTEQ(D.throttle.bps_wr, 50LL << 20);
	CHECK_INTEQ(D.throttle.iops_rd, 2000);
	CHECK_INTEQ(D.throttle.iops_wr, 1000);
	CHECK_INTEQ(D.throttle.bps_rd_max, 1LL << 30);
	CHECK_INTEQ(D.throttle.bps_wr_max, 51200LL << 10);
	CHECK_INTEQ(D.throttle.iops_rd_max, 4000);
	CHECK_INTEQ(D.throttle.iops_wr_max, 1000);
	CHECK_INTEQ(D.throttle.iops_size, 4096);
	CHECK_STREQ(D.throttle.group, "tenant-a");
	CHECK_INTEQ(D.throttle.bps, 0);
	/* A throttle-only rule leaves aio and cache as given. */
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_UNSET, false);
	CHECK_REASON("I/O limits applied by the agent");

	g.path = "/dev/vg1/b";
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "user:totals");
	CHECK_INTEQ(D.throttle.bps, 1LL << 40);
	CHECK_INTEQ(D.throttle.bps_max, 2LL << 40);
	CHECK_INTEQ(D.throttle.iops, 10);
	CHECK_INTEQ(D.throttle.iops_max, 20);
	CHECK_STREQ(D.throttle.group, "");

	g.path = "/dev/vg2/c";
	g.cache = KL_CACHE_NONE;
	decide(p, &VM_IN, &g, &f, &h);
	CHECK_STREQ(D.rule, "user:keepers");
	CHECK(!D.has_throttle);
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_WRITEBACK, true);
	CHECK_REASON("allow-host-cache = yes");
	kl_policy_free(p);
}

static void test_errors(void)
{
	static const struct { const char *text, *error; } t[] = {
		{ "[rule a]\nbackend\naio = threads\n", "t.conf:2: \"backend\": missing '= value'" },
		{ "[rule a]\nbackend block\n", "t.conf:2: expected \"key = value\", a [rule NAME] header or a comment" },
		{ "[rule a]\nbackend = block\nblock_kind = lvm\naio = threads\n",
		  "t.conf:3: unknown key \"block_kind\" in rule \"a\" (did you mean \"block-kind\"?)" },
		{ "[rule a]\nbackend = block\ncolour = blue\naio = threads\n", "t.conf:3: unknown key \"colour\" in rule \"a\"" },
		{ "qemu = /usr/bin/q\nstatedir = /run/x\n",
		  "t.conf:2: unknown key \"statedir\" (global settings: qemu, state-dir, cache-dir, on-error, monitor-relay)" },
		{ "# comment\nbackend = block\n", "t.conf:2: \"backend\" belongs in a [rule NAME] section" },
		{ "aio = native\n", "t.conf:1: \"aio\" belongs in a [rule NAME] section" },
		{ "[rule a]\naio = threads\nqemu = /usr/bin/q\n",
		  "t.conf:3: \"qemu\" is a global setting: put it before the first section, not in rule \"a\"" },
		{ "[rules a]\naio = threads\n", "t.conf:1: unknown section [rules a]: rules are written [rule NAME]" },
		{ "[global]\nqemu = /x\n", "t.conf:1: unknown section [global]: rules are written [rule NAME]" },
		{ "[rule]\naio = threads\n", "t.conf:1: [rule] needs a name: [rule NAME]" },
		{ "[rule  ]\naio = threads\n", "t.conf:1: [rule] needs a name: [rule NAME]" },
		{ "[rule a b]\naio = threads\n",
		  "t.conf:1: rule name \"a b\": use up to 48 letters, digits, '_', '.' and '-', starting with a letter or digit" },
		{ "[rule default:x]\naio = threads\n",
		  "t.conf:1: rule name \"default:x\": use up to 48 letters, digits, '_', '.' and '-', starting with a letter or digit" },
		{ "[rule a\naio = threads\n", "t.conf:1: missing ']' in the section header" },
		{ "[rule a] x\naio = threads\n", "t.conf:1: unexpected text after ']'" },
		{ "[rule a]\naio = threads\n\n[rule a]\ncache = none\n", "t.conf:4: duplicate rule name \"a\" (first at line 1)" },
		{ "[rule a]\nbackend = block\nbackend = file\naio = threads\n",
		  "t.conf:3: \"backend\" given twice in rule \"a\" (first at line 2)" },
		{ "[rule a]\naio = threads\naio = native\n", "t.conf:3: \"aio\" given twice in rule \"a\" (first at line 2)" },
		{ "[rule a]\nbackend =\naio = threads\n", "t.conf:2: \"backend\": missing value after '='" },
		{ "[rule a]\nbackend = # nothing\naio = threads\n", "t.conf:2: \"backend\": missing value after '='" },
		{ "[rule a]\n= block\n", "t.conf:2: missing key before '='" },
		{ "[rule a]\nbackend = blok\naio = threads\n",
		  "t.conf:2: backend: unknown value \"blok\" (block, file, network, unknown)" },
		{ "[rule a]\nbackend = block,\naio = threads\n", "t.conf:2: empty item in the list \"block,\"" },
		{ "[rule a]\nblock-kind = lvm, zfs\naio = threads\n",
		  "t.conf:2: block-kind: unknown value \"zfs\" (lvm, dm, loop, nvme, md, rbd, nbd, scsi, virtio, other)" },
		{ "[rule a]\nshared = maybe\naio = threads\n", "t.conf:2: shared: expected yes or no, not \"maybe\"" },
		{ "[rule a]\nreadonly = yes, no\naio = threads\n", "t.conf:2: readonly: expected yes or no, not \"yes, no\"" },
		{ "[rule a]\naio = fast\n",
		  "t.conf:2: aio: unknown value \"fast\" (threads, native, io_uring, auto, keep, or a list such as \"io_uring, threads\")" },
		{ "[rule a]\naio = io_uring, auto\n",
		  "t.conf:2: aio: \"auto\" cannot be in a list of engines (threads, native, io_uring)" },
		{ "[rule a]\naio = io_uring, io_uring\n", "t.conf:2: aio: io_uring is listed twice" },
		{ "[rule a]\ncache = default\n",
		  "t.conf:2: cache: unknown value \"default\" (none, writeback, writethrough, directsync, unsafe, auto, direct, host, keep)" },
		{ "[rule a]\ncache = none\nallow-host-cache = sometimes\n",
		  "t.conf:3: allow-host-cache: expected yes or no, not \"sometimes\"" },
		{ "[rule a]\niops = many\n", "t.conf:2: iops: expected a whole number, not \"many\"" },
		{ "[rule a]\niops = 10K\n", "t.conf:2: iops: expected a whole number, not \"10K\"" },
		{ "[rule a]\nbps = -5\n",
		  "t.conf:2: bps: expected a number of bytes, optionally with K, M, G or T, not \"-5\"" },
		{ "[rule a]\nbps = 10MB\n",
		  "t.conf:2: bps: expected a number of bytes, optionally with K, M, G or T, not \"10MB\"" },
		{ "[rule a]\nbps = 2000T\n", "t.conf:2: bps: 2000T is more than QEMU accepts (10^15)" },
		{ "[rule a]\niops = 99999999999999999999999\n",
		  "t.conf:2: iops: 99999999999999999999999 is more than QEMU accepts (10^15)" },
		{ "[rule a]\nbps = 1M\nbps_rd = 1M\n",
		  "t.conf:1: bps cannot be combined with bps_rd or bps_wr (QEMU refuses it)" },
		{ "[rule a]\niops = 1\niops_wr = 1\n",
		  "t.conf:1: iops cannot be combined with iops_rd or iops_wr (QEMU refuses it)" },
		{ "[rule a]\niops_max = 100\n", "t.conf:1: iops_max needs iops: a burst is relative to its average" },
		{ "[rule a]\nbps_wr = 2M\nbps_wr_max = 1M\n", "t.conf:1: bps_wr_max (1048576) is lower than bps_wr (2097152)" },
		{ "[rule a]\ngroup = g1\n",
		  "t.conf:1: group \"g1\" needs at least one limit (bps, bps_rd, bps_wr, iops, iops_rd, iops_wr)" },
		{ "[rule a]\niops = 5\ngroup = a b\n", "t.conf:3: group: \"a b\": use letters, digits, '_', '.', ':' and '-'" },
		{ "[rule a]\nbackend = block\nallow-host-cache = yes\n",
		  "t.conf:1: rule \"a\" has no actions: give aio, cache or a throttle setting" },
		{ "[rule a]\n", "t.conf:1: rule \"a\" has no actions: give aio, cache or a throttle setting" },
		{ "qemu = qemu-system-x86_64\n", "t.conf:1: qemu: \"qemu-system-x86_64\" is not an absolute path" },
		{ "state-dir = run/kl\n", "t.conf:1: state-dir: \"run/kl\" is not an absolute path" },
		{ "cache-dir = ~/cache\n", "t.conf:1: cache-dir: \"~/cache\" is not an absolute path" },
		{ "on-error = ignore\n", "t.conf:1: on-error: expected passthrough or refuse, not \"ignore\"" },
		{ "monitor-relay = yes\n", "t.conf:1: monitor-relay: expected on or off, not \"yes\"" },
	};
	for (size_t i = 0; i < sizeof t / sizeof *t; i++)
		if (!error_is(t[i].text, t[i].error)) {
			printf("#   case %zu\n", i);
			unit_case_failed = 1;
		}

	/* Several errors: the first, and how many more. */
	struct kl_error err = KL_ERROR_INIT;
	struct kl_policy *p = NULL;
	CHECK_INTEQ(kl_policy_load_string("[rule a]\naio = x\ncache = y\n[bad]\n", "t.conf", &p, NULL, &err), -1);
	CHECK(p == NULL);
	CHECK_STREQ(err.msg, "t.conf:2: aio: unknown value \"x\" (threads, native, io_uring, auto, keep, or a list such "
			     "as \"io_uring, threads\") (and 2 more errors: kvm-launch --check-policy t.conf)");

	/* A bounded table. */
	struct strbuf big = STRBUF_INIT;
	for (int i = 0; i <= 1000; i++)
		strbuf_appendf(&big, "[rule r%d]\nvm = v%d\naio = threads\n", i, i);
	CHECK(error_is(strbuf_str(&big), "t.conf:3001: more than 1000 rules"));
	strbuf_free(&big);

	/* A file that cannot be read. */
	kl_error_clear(&err);
	CHECK_INTEQ(kl_policy_load_file("/nonexistent/kl.conf", &p, NULL, &err), -1);
	CHECK_STREQ(err.msg, "/nonexistent/kl.conf: cannot open: No such file or directory");
}

static void test_warnings(void)
{
	struct strvec w = STRVEC_INIT;
	struct kl_policy *p = load_w("qemu = /usr/bin/a\n"               /* 1 */
				     "qemu = /usr/bin/b\n"               /* 2 */
				     "[rule kind-on-file]\n"             /* 3 */
				     "backend = file\nblock-kind = lvm\naio = native\n"
				     "[rule fs-on-network]\n"            /* 7 */
				     "backend = network\nfs = ext4\ncache = none\n"
				     "[rule rbd-on-block]\n"             /* 11 */
				     "backend = block\ndriver = rbd, nbd\ncache = none\n"
				     "[rule lvm]\n"                      /* 15 */
				     "backend = block\nblock-kind = lvm\ncache = none\n"
				     "[rule lvm-fast]\n"                 /* 19 */
				     "backend = block\nblock-kind = lvm\nrotational = no\naio = native\n"
				     "[rule ext]\n"                      /* 24 */
				     "fs = ext*\ncache = none\n"
				     "[rule ext4-raw]\n"                 /* 27 */
				     "fs = ext4\nformat = raw\naio = threads\n"
				     "[rule ext4-or-xfs]\n"              /* 31 */
				     "fs = ext4, xfs\naio = threads\n"
				     "[rule net-aio]\n"                  /* 34 */
				     "backend = network\naio = native\n"
				     "[rule everything]\n"               /* 37 */
				     "cache = keep\n"
				     "[rule after-all]\n"                /* 39 */
				     "backend = file\nvm = x\naio = threads\n", &w);
	CHECK(p != NULL);
	CHECK(has_line(&w, "t.conf:2: \"qemu\" is set again (first at line 1): the last value wins"));
	CHECK(has_line(&w, "t.conf:3: rule \"kind-on-file\" can never match: block-kind applies only to block devices, "
			   "and backend excludes block"));
	CHECK(has_line(&w, "t.conf:7: rule \"fs-on-network\" can never match: a network backend is on no filesystem (fs)"));
	CHECK(has_line(&w, "t.conf:11: rule \"rbd-on-block\" can never match: its drivers belong to another backend "
			   "than block"));
	CHECK(has_line(&w, "t.conf:19: rule \"lvm-fast\" can never match: rule \"lvm\" (line 15) comes first and takes "
			   "every disk it would"));
	CHECK(has_line(&w, "t.conf:27: rule \"ext4-raw\" can never match: rule \"ext\" (line 24) comes first and takes "
			   "every disk it would"));
	CHECK(has_line(&w, "t.conf:36: rule \"net-aio\": aio has no effect on network backends (QEMU's network "
			   "drivers take no aio)"));
	CHECK(has_line(&w, "t.conf:39: rule \"after-all\" can never match: rule \"everything\" (line 37) comes first "
			   "and takes every disk it would"));
	/* ext4-or-xfs is wider than ext for xfs: not shadowed; lvm is not
	 * shadowed by the rules before it. */
	for (size_t i = 0; i < w.n; i++) {
		CHECK(strstr(w.v[i], "\"ext4-or-xfs\" can never") == NULL);
		CHECK(strstr(w.v[i], "\"lvm\" can never") == NULL);
	}
	CHECK_INTEQ(w.n, 8);
	CHECK_STREQ(kl_policy_globals(p)->qemu, "/usr/bin/b");
	kl_policy_free(p);
	strvec_free(&w);

	/* Narrow before wide is the right order: no warnings. */
	p = load_w("[rule a]\nbackend = block\nblock-kind = lvm\naio = native\n"
		   "[rule b]\nbackend = block, file\naio = threads\n"
		   "[rule c]\nfs = ext4\nvm = a*\naio = threads\n"
		   "[rule d]\nfs = ext*\nvm = a*, b*\naio = threads\n", &w);
	CHECK(p != NULL);
	CHECK_INTEQ(w.n, 0);
	kl_policy_free(p);
	strvec_free(&w);
}

static void test_rule_order(void)
{
	struct kl_host_facts h = host_good();
	struct kl_disk_facts f = f_block(KL_BLOCK_LVM);
	struct kl_disk_given g = g_disk("/dev/vg0/a", "host_device", "raw");
	struct kl_policy *p = load("[rule first]\nbackend = block\naio = threads\ncache = directsync\n"
				   "[rule second]\nbackend = block\nblock-kind = lvm\naio = native\ncache = none\n");
	CHECK(p != NULL);
	if (!p)
		return;
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "user:first");
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_DIRECTSYNC, true);
	CHECK_REASON("rule \"first\" matched: cache=directsync, aio=threads");
	/* User rules come before the built-in ones, which take the rest. */
	CHECK_STREQ(kl_policy_rule_name(p, 0), "user:first");
	CHECK_STREQ(kl_policy_rule_name(p, 1), "user:second");
	CHECK_STREQ(kl_policy_rule_name(p, 2), "default:cdrom");
	CHECK(kl_policy_rule_name(p, kl_policy_rule_count(p)) == NULL);
	CHECK_INTEQ(kl_policy_user_rule_count(p), 2);
	struct kl_disk_facts ff = f_file("xfs", "qcow2", NO);
	g.path = "/var/lib/libvirt/images/a.qcow2";
	g.driver = "file";
	g.format = "qcow2";
	decide(p, &VM, &g, &ff, &h);
	CHECK_STREQ(D.rule, "default:file");
	kl_policy_free(p);

	p = load("[rule lvm]\nbackend = block\nblock-kind = lvm\naio = native\ncache = none\n"
		 "[rule blocks]\nbackend = block\naio = threads\ncache = none\n");
	CHECK(p != NULL);
	if (!p)
		return;
	g = g_disk("/dev/vg0/a", "host_device", "raw");
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "user:lvm");
	CHECK_DEC(KL_AIO_NATIVE, KL_CACHE_NONE, true);
	f.block_kind = KL_BLOCK_NVME;
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "user:blocks");
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_NONE, true);
	kl_policy_free(p);
}

/* ---- nova ---- */

static void nova_expect(struct kl_policy *p, enum kl_cache file, enum kl_cache block, enum kl_cache network)
{
	struct kl_host_facts h = host_good();
	struct kl_disk_facts ff = f_file("ext4", "qcow2", NO);
	struct kl_disk_given gf = g_disk("/var/lib/nova/instances/x/disk", "file", "qcow2");
	decide(p, &VM, &gf, &ff, &h);
	CHECK_STREQ(D.rule, "nova:file");
	CHECK_INTEQ(D.cache, file);
	CHECK_INTEQ(D.aio, KL_AIO_IO_URING);

	struct kl_disk_facts fb = f_block(KL_BLOCK_SCSI);
	struct kl_disk_given gb = g_disk("/dev/disk/by-path/ip-10.0.0.1:3260-iscsi-iqn-lun-1", "host_device", "raw");
	decide(p, &VM, &gb, &fb, &h);
	CHECK_STREQ(D.rule, "nova:block");
	CHECK_INTEQ(D.cache, block);
	CHECK_INTEQ(D.aio, KL_AIO_IO_URING);

	struct kl_disk_facts fn = f_network("rbd");
	struct kl_disk_given gn = g_disk("volumes/volume-1", "rbd", "raw");
	gn.cache = KL_CACHE_NONE;
	decide(p, &VM, &gn, &fn, &h);
	CHECK_STREQ(D.rule, "nova:network");
	CHECK_INTEQ(D.cache, network);
	CHECK_INTEQ(D.aio, KL_AIO_UNSET);
}

static void test_nova(void)
{
	struct kl_policy *p = load("disk_cachemodes = file=writeback,block=none,network=writeback\n");
	CHECK(p != NULL);
	if (p) {
		CHECK(kl_policy_is_nova(p));
		CHECK_INTEQ(kl_policy_user_rule_count(p), 3);
		CHECK_STREQ(kl_policy_rule_name(p, 0), "nova:file");
		CHECK_STREQ(kl_policy_rule_name(p, 1), "nova:block");
		CHECK_STREQ(kl_policy_rule_name(p, 2), "nova:network");
		CHECK_STREQ(kl_policy_rule_name(p, 3), "default:cdrom");
		/* writeback for the file equals the given default: unchanged. */
		nova_expect(p, KL_CACHE_UNSET, KL_CACHE_NONE, KL_CACHE_WRITEBACK);
		CHECK_REASON("nova disk_cachemodes network=writeback: cache=writeback for network disks");
		kl_policy_free(p);
	}

	p = load("# nova.conf excerpt\n[libvirt]\n# cache modes per disk type\n"
		 "disk_cachemodes = file=directsync,block=writethrough\n");
	CHECK(p != NULL);
	if (p) {
		CHECK(kl_policy_is_nova(p));
		CHECK_INTEQ(kl_policy_user_rule_count(p), 2);
		struct kl_host_facts h = host_good();
		struct kl_disk_facts ff = f_file("ext4", "qcow2", NO);
		struct kl_disk_given gf = g_disk("/var/lib/nova/instances/x/disk", "file", "qcow2");
		decide(p, &VM, &gf, &ff, &h);
		CHECK_STREQ(D.rule, "nova:file");
		CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_DIRECTSYNC, true);
		struct kl_disk_facts fb = f_block(KL_BLOCK_LVM);
		struct kl_disk_given gb = g_disk("/dev/nova/x_disk", "host_device", "raw");
		decide(p, &VM, &gb, &fb, &h);
		CHECK_STREQ(D.rule, "nova:block");
		/* writethrough has no O_DIRECT: native cannot be chosen. */
		CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_WRITETHROUGH, true);
		/* No network entry: the built-in rule. */
		struct kl_disk_facts fn = f_network("rbd");
		struct kl_disk_given gn = g_disk("vms/x_disk", "rbd", "raw");
		decide(p, &VM, &gn, &fn, &h);
		CHECK_STREQ(D.rule, "default:network");
		kl_policy_free(p);
	}

	/* Spaces, "default" (keep), and qemu= beside it. */
	p = load("qemu = /usr/bin/qemu-system-x86_64.distrib\n[libvirt]\n"
		 "disk_cachemodes =  file = default ,\tblock=none , network = unsafe   # comment\n");
	CHECK(p != NULL);
	if (p) {
		CHECK_STREQ(kl_policy_globals(p)->qemu, "/usr/bin/qemu-system-x86_64.distrib");
		struct kl_host_facts h = host_good();
		struct kl_disk_facts ff = f_file("ext4", "qcow2", NO);
		struct kl_disk_given gf = g_disk("/i/disk", "file", "qcow2");
		gf.cache = KL_CACHE_WRITETHROUGH;
		decide(p, &VM, &gf, &ff, &h);
		CHECK_STREQ(D.rule, "nova:file");
		CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_UNSET, true);
		CHECK_REASON("nova disk_cachemodes file=default: cache left as given for image files");
		/* unsafe, named explicitly by the operator, is allowed. */
		struct kl_disk_facts fn = f_network("rbd");
		struct kl_disk_given gn = g_disk("vms/x", "rbd", "raw");
		decide(p, &VM, &gn, &fn, &h);
		CHECK_DEC(KL_AIO_UNSET, KL_CACHE_UNSAFE, true);
		kl_policy_free(p);
	}

	/* Nova's last entry for a type wins, with a warning. */
	struct strvec w = STRVEC_INIT;
	p = load_w("disk_cachemodes = file=none,file=writeback\n", &w);
	CHECK(p != NULL);
	CHECK(has_line(&w, "t.conf:1: disk_cachemodes: file is given twice: the last (writeback) wins, as in nova"));
	kl_policy_free(p);
	strvec_free(&w);

	CHECK(error_is("disk_cachemodes = file=fast\n",
		       "t.conf:1: disk_cachemodes: unknown cache mode \"fast\" for file "
		       "(default, none, writethrough, writeback, directsync, unsafe)"));
	CHECK(error_is("[libvirt]\ndisk_cachemodes = block=none,network=\n",
		       "t.conf:2: disk_cachemodes: unknown cache mode \"\" for network "
		       "(default, none, writethrough, writeback, directsync, unsafe)"));
	CHECK(error_is("disk_cachemodes = volume=none\n",
		       "t.conf:1: disk_cachemodes: unknown disk type \"volume\" (file, block, network)"));
	CHECK(error_is("disk_cachemodes = none\n",
		       "t.conf:1: disk_cachemodes: \"none\" is not TYPE=MODE (for example file=none)"));
	CHECK(error_is("disk_cachemodes = file=none,,block=none\n",
		       "t.conf:1: disk_cachemodes: empty item in the list \"file=none,,block=none\""));
	CHECK(error_is("[libvirt]\nvirt_type = kvm\ndisk_cachemodes = file=none\n",
		       "t.conf:2: [libvirt] (nova compatibility) takes only disk_cachemodes, not \"virt_type\""));
	CHECK(error_is("disk_cachemodes = file=none\n[rule a]\naio = threads\n",
		       "t.conf:1: disk_cachemodes (nova compatibility) cannot be combined with [rule] sections "
		       "(first at line 2): write the rules instead"));
}

/* ---- the built-in rules, one backend kind at a time ---- */

static void test_defaults(void)
{
	struct kl_policy *p = kl_policy_builtin();
	struct kl_host_facts h = host_good(), hn = host_no_uring();

	/* Block device (LVM): none + io_uring; native where io_uring is not usable. */
	struct kl_disk_facts f = f_block(KL_BLOCK_LVM);
	struct kl_disk_given g = g_disk("/dev/vg0/web1", "host_device", "raw");
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "default:block");
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_NONE, true);
	CHECK_REASON("block device (lvm): O_DIRECT with io_uring avoids the host page cache and a thread pool");
	decide(p, &VM, &g, &f, &hn);
	CHECK_DEC(KL_AIO_NATIVE, KL_CACHE_NONE, true);
	CHECK_REASON("block device (lvm): O_DIRECT with native AIO avoids the host page cache and a thread pool");
	CHECK_REASON("aio=native: next in the built-in order io_uring, native, threads: io_uring is not usable here "
		     "(the kernel refuses it)");
	/* A guest given writethrough keeps a write-through disk. */
	g.cache = KL_CACHE_WRITETHROUGH;
	decide(p, &VM, &g, &f, &h);
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_DIRECTSYNC, true);
	/* Already as the policy wants: unchanged. */
	g.cache = KL_CACHE_NONE;
	g.aio = KL_AIO_IO_URING;
	decide(p, &VM, &g, &f, &h);
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_UNSET, false);
	CHECK_STREQ(D.rule, "default:block");

	/* Preallocated raw file: none + io_uring / native. */
	f = f_file("ext4", "raw", YES);
	g = g_disk("/var/lib/libvirt/images/a.img", "file", "raw");
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "default:raw-preallocated");
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_NONE, true);
	CHECK_REASON("preallocated raw image on ext4");
	decide(p, &VM, &g, &f, &hn);
	CHECK_DEC(KL_AIO_NATIVE, KL_CACHE_NONE, true);

	/* Sparse raw file: none + io_uring, threads, never native. */
	f = f_file("xfs", "raw", NO);
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "default:file");
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_NONE, true);
	CHECK_REASON("sparse raw image on xfs: O_DIRECT, and no native AIO");
	decide(p, &VM, &g, &f, &hn);
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_NONE, true);  /* threads, as given (default) */
	CHECK_REASON("aio=threads: next in the rule's list io_uring, threads");

	/* qcow2: the same. */
	f = f_file("ext4", "qcow2", YES);
	g = g_disk("/var/lib/libvirt/images/a.qcow2", "file", "qcow2");
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "default:file");
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_NONE, true);
	CHECK_REASON("qcow2 image on ext4");
	decide(p, &VM, &g, &f, &hn);
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_NONE, true);

	/* tmpfs without O_DIRECT: host page cache, guest semantics kept. */
	f = f_file("tmpfs", "raw", YES);
	f.odirect = NO;
	g = g_disk("/dev/shm/a.img", "file", "raw");
	g.cache = KL_CACHE_NONE;
	g.aio = KL_AIO_NATIVE;
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "default:no-odirect");
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_WRITEBACK, true);
	CHECK_REASON("filesystem tmpfs refuses O_DIRECT: none -> writeback keeps the guest's write cache and flush "
		     "semantics (aio=io_uring)");
	g.cache = KL_CACHE_DIRECTSYNC;
	decide(p, &VM, &g, &f, &hn);
	CHECK_DEC(KL_AIO_THREADS, KL_CACHE_WRITETHROUGH, true);

	/* btrfs: writeback + threads. */
	f = f_file("btrfs", "qcow2", NO);
	g = g_disk("/srv/vm/a.qcow2", "file", "qcow2");
	g.cache = KL_CACHE_NONE;
	g.aio = KL_AIO_NATIVE;
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "default:btrfs");
	CHECK_DEC(KL_AIO_THREADS, KL_CACHE_WRITEBACK, true);
	CHECK_REASON("copy-on-write image on btrfs");
	/* A NOCOW file: no data checksums, writes in place; decided like any
	 * file on a local filesystem (preallocated raw: O_DIRECT and auto aio). */
	f = f_file("btrfs", "raw", YES);
	f.cow = NO;
	g = g_disk("/srv/vm/nocow.img", "file", "raw");
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "default:raw-preallocated");
	CHECK(D.cache == KL_CACHE_NONE && D.aio != KL_AIO_THREADS);
	f.preallocated = NO;
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "default:file");
	CHECK(D.cache == KL_CACHE_NONE && D.aio != KL_AIO_NATIVE);
	/* Back to the copy-on-write qcow2: given nothing, kept as given. */
	f = f_file("btrfs", "qcow2", NO);
	g = g_disk("/srv/vm/a.qcow2", "file", "qcow2");
	g.cache = KL_CACHE_UNSET;
	g.aio = KL_AIO_UNSET;
	decide(p, &VM, &g, &f, &h);
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_UNSET, false);

	/* NFS (shared): none. */
	f = f_file("nfs", "qcow2", NO);
	f.shared = YES;
	f.fs_magic = 0x6969;
	g = g_disk("/mnt/nfs/a.qcow2", "file", "qcow2");
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "default:shared");
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_NONE, true);
	CHECK_REASON("image on shared filesystem nfs: O_DIRECT");

	/* Network (rbd): cache as given, no aio. */
	f = f_network("rbd");
	g = g_disk("rbd:pool/vol", "rbd", "raw");
	g.cache = KL_CACHE_WRITEBACK;
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "default:network");
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_UNSET, false);
	CHECK_REASON("network disk (rbd)");

	/* CD-ROM and read-only: as given. */
	f = f_file("ext4", "raw", YES);
	g = g_disk("/srv/iso/debian.iso", "file", "raw");
	g.cdrom = g.readonly = true;
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "default:cdrom");
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_UNSET, false);
	g.cdrom = false;
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "default:readonly");
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_UNSET, false);

	/* Unknown: as given. */
	struct kl_disk_facts fu = { .backend = KL_BACKEND_UNKNOWN };
	g = g_disk("/weird", NULL, NULL);
	g.cache = KL_CACHE_WRITETHROUGH;
	decide(p, &VM, &g, &fu, &h);
	CHECK_STREQ(D.rule, "default:unknown");
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_UNSET, false);
	CHECK_REASON("backend unknown");

	/* Nothing known at all (NULL facts and host) never fails. */
	decide(p, NULL, &g, NULL, NULL);
	CHECK_STREQ(D.rule, "default:unknown");
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_UNSET, false);
	/* A NULL policy is the built-in one. */
	f = f_block(KL_BLOCK_NVME);
	g = g_disk("/dev/nvme0n1", "host_device", "raw");
	decide(NULL, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "default:block");
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_NONE, true);
	CHECK_INTEQ(kl_decision_aio(&g, &D), KL_AIO_IO_URING);
	CHECK_INTEQ(kl_decision_cache(&g, &D), KL_CACHE_NONE);
	kl_policy_free(p);
}

/* ---- the hard rules ---- */

static void test_hard_rule_1_native_needs_odirect(void)
{
	struct kl_host_facts h = host_good(), hn = host_no_uring();
	struct kl_policy *p = load("[rule wb-native]\nbackend = block\naio = native\ncache = writeback\n");
	CHECK(p != NULL);
	if (!p)
		return;
	struct kl_disk_facts f = f_block(KL_BLOCK_LVM);
	struct kl_disk_given g = g_disk("/dev/vg0/a", "host_device", "raw");
	g.cache = KL_CACHE_NONE;
	decide(p, &VM, &g, &f, &h);
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_WRITEBACK, true);
	CHECK_REASON("aio=native needs O_DIRECT, which cache=writeback does not use: io_uring instead");
	decide(p, &VM, &g, &f, &hn);
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_WRITEBACK, true);  /* threads = the default */
	kl_policy_free(p);

	/* The command line itself asks for native without O_DIRECT: fixed. */
	p = kl_policy_builtin();
	f = f_file("ext4", "raw", YES);
	g = g_disk("/srv/a.iso", "file", "raw");
	g.cdrom = true;
	g.aio = KL_AIO_NATIVE;
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "default:cdrom");
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_UNSET, true);
	CHECK_REASON("aio=native needs O_DIRECT, which cache=writeback (QEMU's default) does not use (QEMU would "
		     "refuse the command line as given): io_uring instead");
	kl_policy_free(p);
}

static void test_hard_rule_2_odirect_refused(void)
{
	struct kl_host_facts h = host_good();
	struct kl_policy *p = load("[rule direct]\nbackend = file\naio = native\ncache = none\n"
				   "[rule dsync]\nbackend = block\ncache = directsync\n");
	CHECK(p != NULL);
	if (!p)
		return;
	struct kl_disk_facts f = f_file("tmpfs", "raw", YES);
	f.odirect = NO;
	struct kl_disk_given g = g_disk("/dev/shm/a", "file", "raw");
	decide(p, &VM, &g, &f, &h);
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_UNSET, true);
	CHECK_REASON("filesystem tmpfs refuses O_DIRECT: none -> writeback keeps the guest's write cache and flush "
		     "semantics");
	CHECK_REASON("aio=native needs O_DIRECT, which cache=writeback does not use: io_uring instead");

	struct kl_disk_facts fb = f_block(KL_BLOCK_OTHER);
	fb.odirect = NO;
	struct kl_disk_given gb = g_disk("/dev/weird0", "host_device", "raw");
	decide(p, &VM, &gb, &fb, &h);
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_WRITETHROUGH, true);
	CHECK_REASON("the block device refuses O_DIRECT: directsync -> writethrough");
	kl_policy_free(p);
}

static void test_hard_rule_3_engines(void)
{
	struct kl_policy *p = load("[rule uring]\nbackend = block\naio = io_uring\ncache = none\n"
				   "[rule native]\nbackend = file\naio = native\ncache = none\n");
	CHECK(p != NULL);
	if (!p)
		return;
	struct kl_disk_facts fb = f_block(KL_BLOCK_NVME);
	struct kl_disk_given gb = g_disk("/dev/nvme0n1", "host_device", "raw");
	struct kl_disk_facts ff = f_file("ext4", "raw", YES);
	struct kl_disk_given gf = g_disk("/srv/a.img", "file", "raw");

	/* io_uring disabled in the kernel: native (O_DIRECT, libaio fine). */
	struct kl_host_facts h = host_no_uring();
	decide(p, &VM, &gb, &fb, &h);
	CHECK_DEC(KL_AIO_NATIVE, KL_CACHE_NONE, true);
	CHECK_REASON("io_uring is not usable (the kernel refuses it): native instead");
	/* QEMU built without io_uring. */
	h = host_good();
	h.io_uring_qemu = NO;
	decide(p, &VM, &gb, &fb, &h);
	CHECK_DEC(KL_AIO_NATIVE, KL_CACHE_NONE, true);
	CHECK_REASON("io_uring is not usable (QEMU is built without it): native instead");
	/* ... and no libaio headroom either: threads. */
	h.libaio_headroom = NO;
	h.aio_nr = 65500;
	decide(p, &VM, &gb, &fb, &h);
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_NONE, true);
	CHECK_REASON("io_uring is not usable (QEMU is built without it): threads instead");
	/* An unknown io_uring kernel answer does not override the rule. */
	h = host_good();
	h.io_uring_kernel = UNK;
	decide(p, &VM, &gb, &fb, &h);
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_NONE, true);

	/* aio-nr exhausted: native -> io_uring, or threads without it. */
	h = host_good();
	h.libaio_headroom = NO;
	h.aio_nr = 65500;
	decide(p, &VM, &gf, &ff, &h);
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_NONE, true);
	CHECK_REASON("fs.aio-nr (65500) is too close to fs.aio-max-nr (65536): another libaio context could fail "
		     "to start the VM: io_uring instead of native");
	h.io_uring_kernel = NO;
	decide(p, &VM, &gf, &ff, &h);
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_NONE, true);
	h = host_good();
	h.libaio = NO;
	decide(p, &VM, &gf, &ff, &h);
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_NONE, true);
	CHECK_REASON("libaio is not usable on this host: io_uring instead of native");
	kl_policy_free(p);

	/* The built-in rules, aio-nr exhausted and no io_uring: threads. */
	p = kl_policy_builtin();
	h = host_no_uring();
	h.libaio_headroom = NO;
	h.aio_nr = 65530;
	decide(p, &VM, &gb, &fb, &h);
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_NONE, true);
	CHECK_REASON("fs.aio-nr (65530) is too close to fs.aio-max-nr (65536) for another libaio context");
	kl_policy_free(p);
}

static void test_hard_rule_4_shared_and_incoming(void)
{
	struct kl_host_facts h = host_good();
	struct kl_policy *p = load("[rule wb]\npath = /srv/wb/*\ncache = writeback\n"
				   "[rule wb-allowed]\npath = /srv/ok/*\ncache = writeback\nallow-host-cache = yes\n"
				   "[rule wt]\npath = /srv/wt/*\ncache = writethrough\n"
				   "[rule keep]\npath = /srv/keep/*\ncache = keep\naio = io_uring\n");
	CHECK(p != NULL);
	if (!p)
		return;
	struct kl_disk_facts f = f_file("ext4", "raw", YES);
	struct kl_disk_given g = g_disk("/srv/wb/a", "file", "raw");
	g.cache = KL_CACHE_NONE;

	/* Not shared, no migration: the rule applies. */
	decide(p, &VM, &g, &f, &h);
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_WRITEBACK, true);
	/* -incoming: none stays. */
	decide(p, &VM_IN, &g, &f, &h);
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_UNSET, false);
	CHECK_REASON("the VM is receiving a migration: libvirt judged migration safety on cache=none, so O_DIRECT "
		     "stays: none rather than writeback (a rule with allow-host-cache = yes permits that)");
	/* -incoming, given none, the rule says writethrough: O_DIRECT stays and
	 * the write cache stays off as the rule made it on the source:
	 * directsync (virsh save/restore lost flushes when none came back). */
	g.path = "/srv/wt/a";
	decide(p, &VM_IN, &g, &f, &h);
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_DIRECTSYNC, true);
	CHECK_REASON("so O_DIRECT stays: directsync rather than writethrough");
	g.path = "/srv/wb/a";
	/* -incoming with allow-host-cache = yes: writeback. */
	g.path = "/srv/ok/a";
	decide(p, &VM_IN, &g, &f, &h);
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_WRITEBACK, true);
	CHECK_REASON("the VM is receiving a migration, and the rule allows a host-cache mode (allow-host-cache = yes)");
	/* Shared storage: the same. */
	f.shared = YES;
	snprintf(f.fs, sizeof f.fs, "nfs");
	g.path = "/srv/wb/a";
	decide(p, &VM, &g, &f, &h);
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_UNSET, false);
	CHECK_REASON("the disk is on shared storage (nfs)");
	g.path = "/srv/ok/a";
	decide(p, &VM, &g, &f, &h);
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_WRITEBACK, true);
	/* Given a host-cache mode already: kept when the policy keeps it... */
	g.path = "/srv/keep/a";
	g.cache = KL_CACHE_WRITEBACK;
	decide(p, &VM_IN, &g, &f, &h);
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_UNSET, true);
	/* ... and not turned into another host-cache mode. */
	g.path = "/srv/wt/a";
	g.cache = KL_CACHE_UNSET;
	decide(p, &VM, &g, &f, &h);
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_UNSET, false);
	CHECK_REASON("the given writeback (QEMU's default) stays rather than becoming another host-cache mode");
	/* -incoming, given writethrough, a rule turning the write cache on
	 * (none): the guest learnt write-through on the source and sends no
	 * flushes, so the cache stays off: directsync. */
	{
		struct kl_policy *pn = load("[rule n]\ncache = none\n");
		struct kl_disk_facts fl = f_file("ext4", "qcow2", NO);
		struct kl_disk_given gt = g_disk("/srv/x.qcow2", "file", "qcow2");
		gt.cache = KL_CACHE_WRITETHROUGH;
		decide(pn, &VM, &gt, &fl, &h);
		CHECK_DEC(KL_AIO_UNSET, KL_CACHE_NONE, true);
		decide(pn, &VM_IN, &gt, &fl, &h);
		CHECK_DEC(KL_AIO_UNSET, KL_CACHE_DIRECTSYNC, true);
		CHECK_REASON("its guest was given a write-through cache (cache=writethrough): directsync keeps it, rather than none");
		kl_policy_free(pn);
	}
	/* Moving to O_DIRECT is always fine. */
	g.cache = KL_CACHE_WRITEBACK;
	kl_policy_free(p);
	p = kl_policy_builtin();
	decide(p, &VM_IN, &g, &f, &h);
	CHECK_STREQ(D.rule, "default:shared");
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_NONE, true);
	/* Shared storage that refuses O_DIRECT (a FUSE cluster fs), given none:
	 * not silently turned into writeback. */
	snprintf(f.fs, sizeof f.fs, "fuse.glusterfs");
	f.odirect = NO;
	g.cache = KL_CACHE_NONE;
	decide(p, &VM, &g, &f, &h);
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_UNSET, true);
	CHECK_REASON("fuse.glusterfs refuses O_DIRECT: none -> writeback");
	CHECK_REASON("so QEMU will likely fail to open the disk");
	/* Given writethrough there: kept (nova's choice for such storage). */
	g.cache = KL_CACHE_WRITETHROUGH;
	decide(p, &VM, &g, &f, &h);
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_UNSET, true);
	kl_policy_free(p);
}

static void test_hard_rule_5_unsafe_and_shareable(void)
{
	struct kl_host_facts h = host_good();
	struct kl_policy *p = load("[rule scratch]\nvm = ci-*\ncache = unsafe\n"
				   "[rule wb]\nbackend = block\ncache = writeback\n"
				   "[rule auto]\nbackend = file\ncache = auto\n");
	CHECK(p != NULL);
	if (!p)
		return;
	struct kl_disk_facts f = f_file("ext4", "qcow2", NO);
	struct kl_disk_given g = g_disk("/srv/ci/a.qcow2", "file", "qcow2");
	struct kl_vm_context ci = { .name = "ci-42" };

	/* unsafe named by a rule: used. */
	decide(p, &ci, &g, &f, &h);
	CHECK_STREQ(D.rule, "user:scratch");
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_UNSAFE, true);
	/* cache=auto never yields unsafe, even for a disk given unsafe. */
	g.cache = KL_CACHE_UNSAFE;
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "user:auto");
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_NONE, true);
	/* Nor do the built-in rules. */
	struct kl_policy *b = kl_policy_builtin();
	decide(b, &VM, &g, &f, &h);
	CHECK(D.cache != KL_CACHE_UNSAFE);
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_NONE, true);

	/* Shareable: never a host-cache mode. */
	struct kl_disk_facts fb = f_block(KL_BLOCK_SCSI);
	struct kl_disk_given gb = g_disk("/dev/sdb", "host_device", "raw");
	gb.shareable = true;
	gb.cache = KL_CACHE_NONE;
	decide(p, &VM, &gb, &fb, &h);
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_UNSET, false);
	CHECK_REASON("shareable disk: the host page cache is not coherent with the other VMs writing it: "
		     "writeback -> none");
	/* Given writeback (libvirt's default) on a shareable disk: none. */
	gb.cache = KL_CACHE_UNSET;
	decide(b, &VM, &gb, &fb, &h);
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_NONE, true);
	/* Not even unsafe named by a rule. */
	gb.cache = KL_CACHE_NONE;
	decide(p, &ci, &gb, &fb, &h);
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_UNSET, false);
	CHECK_REASON("unsafe -> none");
	/* The storage refuses O_DIRECT: none stays (QEMU decides), never writeback. */
	fb.odirect = NO;
	decide(p, &VM, &gb, &fb, &h);
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_UNSET, false);
	CHECK_REASON("so cache=none stays although the storage refuses O_DIRECT");
	kl_policy_free(p);
	kl_policy_free(b);
}

static void test_hard_rule_6_readonly(void)
{
	struct kl_host_facts h = host_good(), hn = host_no_uring();
	struct kl_policy *p = load("[rule native]\nbackend = block, file\naio = native\ncache = none\n");
	CHECK(p != NULL);
	if (!p)
		return;
	struct kl_disk_facts f = f_block(KL_BLOCK_SCSI);
	struct kl_disk_given g = g_disk("/dev/sr0", "host_cdrom", "raw");
	g.cdrom = g.readonly = true;
	decide(p, &VM, &g, &f, &h);
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_NONE, true);
	CHECK_REASON("CD-ROM media do not get native AIO: io_uring instead");
	g.cdrom = false;
	decide(p, &VM, &g, &f, &hn);
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_NONE, true);
	CHECK_REASON("read-only media do not get native AIO: threads instead");
	kl_policy_free(p);
}

static void test_hard_rule_7_network(void)
{
	struct kl_host_facts h = host_good();
	struct kl_policy *p = load("[rule all]\naio = native\ncache = none\n");
	CHECK(p != NULL);
	if (!p)
		return;
	struct kl_disk_facts f = f_network("nbd");
	struct kl_disk_given g = g_disk("nbd://10.0.0.1/x", "nbd", "raw");
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "user:all");
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_NONE, true);
	CHECK_REASON("network driver nbd takes no aio setting");
	kl_policy_free(p);
}

static void test_hard_rule_8_unknown(void)
{
	struct kl_host_facts h = host_good();
	struct kl_policy *p = load("[rule by-path]\npath = /weird/*\naio = io_uring\ncache = none\n");
	CHECK(p != NULL);
	if (!p)
		return;
	struct kl_disk_facts f = { .backend = KL_BACKEND_UNKNOWN };
	struct kl_disk_given g = g_disk("/weird/x", NULL, NULL);
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "user:by-path");
	CHECK_DEC(KL_AIO_UNSET, KL_CACHE_UNSET, false);
	CHECK_REASON("backend unknown: rule \"by-path\" matched, but only a rule that says backend = unknown changes "
		     "such a disk");
	/* What QEMU would refuse is still fixed. */
	g.aio = KL_AIO_NATIVE;
	decide(p, &VM, &g, &f, &h);
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_UNSET, true);
	kl_policy_free(p);

	p = load("[rule unknown-ok]\nbackend = unknown\npath = /weird/*\naio = io_uring\ncache = none\n");
	CHECK(p != NULL);
	if (!p)
		return;
	g.aio = KL_AIO_UNSET;
	decide(p, &VM, &g, &f, &h);
	CHECK_STREQ(D.rule, "user:unknown-ok");
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_NONE, true);
	kl_policy_free(p);
}

/* ---- aio=auto ---- */

static void test_auto_calibration(void)
{
	struct kl_policy *p = kl_policy_builtin();
	struct kl_host_facts h = host_good();
	struct kl_disk_facts f = f_block(KL_BLOCK_NVME);
	struct kl_disk_given g = g_disk("/dev/nvme0n1", "host_device", "raw");

	/* Without a calibration: the built-in order. */
	decide(p, &VM, &g, &f, &h);
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_NONE, true);
	CHECK_STREQ(D.calibration, "");
	CHECK_REASON("aio=io_uring: first in the built-in order io_uring, native, threads");

	/* A calibration that ranks native first. */
	f.aio_ranking[0] = KL_AIO_NATIVE;
	f.aio_ranking[1] = KL_AIO_IO_URING;
	f.aio_ranking[2] = KL_AIO_THREADS;
	snprintf(f.calibration, sizeof f.calibration, "dev:259:0@2026-11-20");
	decide(p, &VM, &g, &f, &h);
	CHECK_DEC(KL_AIO_NATIVE, KL_CACHE_NONE, true);
	CHECK_STREQ(D.calibration, "dev:259:0@2026-11-20");
	CHECK_REASON("aio=native: calibration \"dev:259:0@2026-11-20\" measured it fastest on this storage");

	/* Its first choice does not fit (no libaio headroom): its second. */
	h.libaio_headroom = NO;
	decide(p, &VM, &g, &f, &h);
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_NONE, true);
	CHECK_STREQ(D.calibration, "dev:259:0@2026-11-20");
	CHECK_REASON("aio=io_uring: the next engine that fits in calibration \"dev:259:0@2026-11-20\" of this storage: "
		     "fs.aio-nr (1024) is too close to fs.aio-max-nr (65536) for another libaio context");

	/* The sparse-file rule's own list ignores a calibration: never native. */
	h = host_good();
	struct kl_disk_facts ff = f_file("ext4", "raw", NO);
	memcpy(ff.aio_ranking, f.aio_ranking, sizeof ff.aio_ranking);
	snprintf(ff.calibration, sizeof ff.calibration, "x");
	struct kl_disk_given gf = g_disk("/srv/a.img", "file", "raw");
	decide(p, &VM, &gf, &ff, &h);
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_NONE, true);
	CHECK_STREQ(D.calibration, "");
	kl_policy_free(p);

	/* A user rule with aio = auto and a host-cache mode: native does not fit. */
	p = load("[rule a]\nbackend = block\ncache = writeback\naio = auto\n");
	CHECK(p != NULL);
	if (!p)
		return;
	decide(p, &VM, &g, &f, &h);
	CHECK_DEC(KL_AIO_IO_URING, KL_CACHE_UNSET, true);
	CHECK_REASON("native needs O_DIRECT, which cache=writeback does not use");
	kl_policy_free(p);
}

/* ---- --check-policy and the fixtures ---- */

static char tmpdir[64];

static void make_tmpdir(void)
{
	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof tmpdir, "/tmp/kl-policy.XXXXXX");
		if (!mkdtemp(tmpdir))
			perror("mkdtemp");
	}
}

static char *write_file(const char *name, const char *text, mode_t mode)
{
	make_tmpdir();
	char *path = xasprintf("%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	chmod(path, mode);
	return path;
}

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	struct strbuf b = STRBUF_INIT;
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		strbuf_append_len(&b, buf, n);
	fclose(f);
	return strbuf_steal(&b);
}

static const char *top(void)
{
	const char *t = getenv("KL_TOP");
	return t && *t ? t : ".";
}

static void test_check_policy(void)
{
	_cleanup_free_ char *path = write_file("check.conf",
					       "qemu = /a\nqemu = /b\n"
					       "[rule a]\nbackend = block\naio = native\n"
					       "[rule b]\nbackend = block\nblock-kind = lvm\naio = io_uring\n"
					       "[rule c]\nkind = lvm\n"
					       "[rule d]\n", 0644);
	struct strvec d = STRVEC_INIT;
	CHECK_INTEQ(kl_policy_check(path, &d), 2);
	CHECK_INTEQ(d.n, 4);
	if (d.n == 4) {
		char *want[4] = {
			xasprintf("%s:2: warning: \"qemu\" is set again (first at line 1): the last value wins", path),
			xasprintf("%s:6: warning: rule \"b\" can never match: rule \"a\" (line 3) comes first and takes "
				  "every disk it would", path),
			xasprintf("%s:11: unknown key \"kind\" in rule \"c\"", path),
			xasprintf("%s:12: rule \"d\" has no actions: give aio, cache or a throttle setting", path),
		};
		for (int i = 0; i < 4; i++) {
			CHECK_STREQ(d.v[i], want[i]);
			free(want[i]);
		}
	}
	strvec_free(&d);

	_cleanup_free_ char *ok = write_file("ok.conf", "[rule a]\naio = auto\n", 0644);
	CHECK_INTEQ(kl_policy_check(ok, &d), 0);
	CHECK_INTEQ(d.n, 0);
	strvec_free(&d);

	/* A file with errors still tells its on-error setting. */
	_cleanup_free_ char *refuse = write_file("refuse.conf", "on-error = refuse\n[rule a]\nbogus = 1\n", 0644);
	CHECK_INTEQ(kl_policy_file_on_error(refuse), KL_ON_ERROR_REFUSE);
	CHECK_INTEQ(kl_policy_file_on_error(ok), KL_ON_ERROR_PASSTHROUGH);
	CHECK_INTEQ(kl_policy_file_on_error("/nonexistent/x.conf"), KL_ON_ERROR_PASSTHROUGH);

	CHECK_INTEQ(kl_policy_check("/nonexistent/x.conf", &d), 1);
	CHECK(d.n == 1 && strstr(d.v[0], "/nonexistent/x.conf: cannot open: No such file or directory"));
	strvec_free(&d);
}

/* tests/policies/NAME.conf with NAME.expected: the --check-policy lines with
 * the directory left out.  The CLI test runs the same files through the
 * binary. */
static void test_fixtures(void)
{
	static const char *const names[] = { "good-full", "good-nova", "good-nova-bare", "bad-errors",
					     "warn-never-match", "bad-nova" };
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		_cleanup_free_ char *src = xasprintf("%s/tests/policies/%s.conf", top(), names[i]);
		_cleanup_free_ char *exp = xasprintf("%s/tests/policies/%s.expected", top(), names[i]);
		_cleanup_free_ char *text = read_all(src), *want = read_all(exp);
		if (!text || !want) {
			printf("#   cannot read %s or %s\n", src, exp);
			unit_case_failed = 1;
			continue;
		}
		_cleanup_free_ char *base = xasprintf("%s.conf", names[i]);
		_cleanup_free_ char *path = write_file(base, text, 0644);
		struct strvec d = STRVEC_INIT;
		int errors = kl_policy_check(path, &d);
		struct strbuf got = STRBUF_INIT;
		size_t dl = strlen(tmpdir) + 1;
		for (size_t j = 0; j < d.n; j++)
			strbuf_appendf(&got, "%s\n", strncmp(d.v[j], path, strlen(path)) == 0 ? d.v[j] + dl : d.v[j]);
		if (strcmp(strbuf_str(&got), want) != 0) {
			printf("#   %s: got:\n%s#   expected:\n%s", names[i], strbuf_str(&got), want);
			unit_case_failed = 1;
		}
		CHECK((errors == 0) == (strncmp(names[i], "bad-", 4) != 0));
		strbuf_free(&got);
		strvec_free(&d);
	}
}

/* The example policy is the built-in rules written out: both decide alike
 * over every combination of facts that matters to them. */
static void test_example_matches_builtin(void)
{
	_cleanup_free_ char *path = xasprintf("%s/contrib/kvm-launch.conf.example", top());
	struct kl_error err = KL_ERROR_INIT;
	struct kl_policy *ex = NULL, *b = kl_policy_builtin();
	struct strvec w = STRVEC_INIT;
	if (kl_policy_load_file(path, &ex, &w, &err) < 0) {
		printf("#   %s\n", err.msg);
		unit_case_failed = 1;
		kl_policy_free(b);
		return;
	}
	CHECK_INTEQ(w.n, 0);
	strvec_free(&w);

	static const enum kl_backend backends[] = { KL_BACKEND_BLOCK, KL_BACKEND_FILE, KL_BACKEND_NETWORK,
						    KL_BACKEND_UNKNOWN };
	static const char *const fss[] = { "ext4", "btrfs", "tmpfs", "nfs", "" };
	static const char *const fmts[] = { "raw", "qcow2", "" };
	static const enum kl_tri tris[] = { YES, NO, UNK };
	static const enum kl_cache caches[] = { KL_CACHE_UNSET, KL_CACHE_NONE, KL_CACHE_WRITETHROUGH, KL_CACHE_UNSAFE,
						KL_CACHE_DIRECTSYNC };
	static const enum kl_aio aios[] = { KL_AIO_UNSET, KL_AIO_NATIVE, KL_AIO_IO_URING };
	struct kl_host_facts hosts[3] = { host_good(), host_no_uring(), host_good() };
	hosts[2].libaio_headroom = NO;
	long n = 0, diff = 0;
	struct kl_decision da = { 0 }, db = { 0 };

	for (size_t ib = 0; ib < 4; ib++)
	for (size_t ifs = 0; ifs < 5; ifs++)
	for (size_t ifm = 0; ifm < 3; ifm++)
	for (size_t ip = 0; ip < 3; ip++)
	for (size_t io = 0; io < 3; io++)
	for (size_t ish = 0; ish < 2; ish++)
	for (size_t fl = 0; fl < 4; fl++)
	for (size_t ic = 0; ic < 5; ic++)
	for (size_t ia = 0; ia < 3; ia++)
	for (size_t ih = 0; ih < 3; ih++)
	for (size_t in = 0; in < 2; in++) {
		struct kl_disk_facts f = { .backend = backends[ib], .preallocated = tris[ip], .odirect = tris[io],
					   .shared = ish ? YES : NO };
		if (f.backend == KL_BACKEND_BLOCK)
			f.block_kind = ifs % 2 ? KL_BLOCK_LVM : KL_BLOCK_NVME;
		if (f.backend == KL_BACKEND_NETWORK)
			snprintf(f.network_driver, sizeof f.network_driver, "rbd");
		else if (f.backend == KL_BACKEND_FILE)
			snprintf(f.fs, sizeof f.fs, "%s", fss[ifs]);
		else if (ifs)
			continue;
		snprintf(f.format, sizeof f.format, "%s", fmts[ifm]);
		struct kl_disk_given g = g_disk("/x", NULL, NULL);
		g.readonly = fl == 1 || fl == 2;
		g.cdrom = fl == 2;
		g.shareable = fl == 3;
		g.cache = caches[ic];
		g.aio = aios[ia];
		const struct kl_vm_context *vm = in ? &VM_IN : &VM;
		kl_decide(ex, vm, &g, &f, &hosts[ih], &da);
		kl_decide(b, vm, &g, &f, &hosts[ih], &db);
		const char *ra = strchr(da.rule, ':'), *rb = strchr(db.rule, ':');
		if (da.aio != db.aio || da.cache != db.cache || da.changed != db.changed ||
		    strcmp(ra ? ra : "", rb ? rb : "") != 0) {
			if (diff++ < 5)
				printf("#   differ: backend %d fs %s fmt %s prealloc %d odirect %d shared %d flags %zu "
				       "cache %d aio %d host %zu incoming %zu: example %s %s/%s, built-in %s %s/%s\n",
				       f.backend, f.fs, f.format, f.preallocated, f.odirect, f.shared, fl, g.cache, g.aio,
				       ih, in, da.rule, kl_aio_name(da.aio), kl_cache_name(da.cache), db.rule,
				       kl_aio_name(db.aio), kl_cache_name(db.cache));
		}
		kl_decision_free(&da);
		kl_decision_free(&db);
		n++;
	}
	printf("# %ld decisions compared, %ld differ\n", n, diff);
	CHECK_INTEQ(diff, 0);
	CHECK(n > 10000);
	kl_policy_free(ex);
	kl_policy_free(b);
}

/* ---- who may write the policy file ---- */

static void test_file_safety(void)
{
	struct kl_error err = KL_ERROR_INIT;
	_cleanup_free_ char *path = write_file("safe.conf", "[rule a]\naio = auto\n", 0644);

	CHECK_INTEQ(kl_policy_check_file_safety(path, &err), 0);
	if (err.set)
		printf("#   %s\n", err.msg);

	chmod(path, 0666);
	kl_error_clear(&err);
	CHECK_INTEQ(kl_policy_check_file_safety(path, &err), -1);
	CHECK(strstr(err.msg, "refused: the file is writable by every user (mode 0666)") != NULL);
	/* --check-policy reports it too. */
	struct strvec d = STRVEC_INIT;
	CHECK_INTEQ(kl_policy_check(path, &d), 1);
	CHECK(d.n == 1 && strstr(d.v[0], "writable by every user"));
	strvec_free(&d);

	chmod(path, 0620);
	kl_error_clear(&err);
	if (chown(path, geteuid(), 4242) == 0) {
		CHECK_INTEQ(kl_policy_check_file_safety(path, &err), -1);
		CHECK(strstr(err.msg, "refused: the file is writable by group 4242 (mode 0620)") != NULL);
	}
	chmod(path, 0644);

	/* Not a regular file. */
	kl_error_clear(&err);
	CHECK_INTEQ(kl_policy_check_file_safety(tmpdir, &err), -1);
	CHECK(strstr(err.msg, "refused: not a regular file") != NULL);

	if (geteuid() != 0) {
		printf("# not root: the ownership cases need chown; skipped\n");
		return;
	}
	/* Owned by another user. */
	CHECK_INTEQ(chown(path, 12345, 0), 0);
	kl_error_clear(&err);
	CHECK_INTEQ(kl_policy_check_file_safety(path, &err), -1);
	CHECK(strstr(err.msg, "refused: the file is owned by uid 12345, not by root") != NULL);
	CHECK_INTEQ(chown(path, 0, 0), 0);

	/* In a directory others can write: they could swap the file. */
	_cleanup_free_ char *dir = xasprintf("%s/open", tmpdir);
	CHECK_INTEQ(mkdir(dir, 0755), 0);
	_cleanup_free_ char *inner = xasprintf("%s/k.conf", dir);
	FILE *f = fopen(inner, "w");
	if (f) {
		fputs("[rule a]\naio = auto\n", f);
		fclose(f);
	}
	chmod(inner, 0644);
	kl_error_clear(&err);
	CHECK_INTEQ(kl_policy_check_file_safety(inner, &err), 0);
	chmod(dir, 0777);
	kl_error_clear(&err);
	CHECK_INTEQ(kl_policy_check_file_safety(inner, &err), -1);
	CHECK(strstr(err.msg, "is writable by every user (mode 0777)") != NULL);
	/* Sticky, like /tmp: fine. */
	chmod(dir, 01777);
	kl_error_clear(&err);
	CHECK_INTEQ(kl_policy_check_file_safety(inner, &err), 0);
	/* Owned by another user. */
	chmod(dir, 0755);
	CHECK_INTEQ(chown(dir, 12345, 0), 0);
	kl_error_clear(&err);
	CHECK_INTEQ(kl_policy_check_file_safety(inner, &err), -1);
	CHECK(strstr(err.msg, "is owned by uid 12345") != NULL);
	/* Through a symlink from a safe place: the real directory counts. */
	_cleanup_free_ char *link = xasprintf("%s/link.conf", tmpdir);
	CHECK_INTEQ(symlink(inner, link), 0);
	kl_error_clear(&err);
	CHECK_INTEQ(kl_policy_check_file_safety(link, &err), -1);
	CHECK(strstr(err.msg, "is owned by uid 12345") != NULL);
	CHECK_INTEQ(chown(dir, 0, 0), 0);
	kl_error_clear(&err);
	CHECK_INTEQ(kl_policy_check_file_safety(link, &err), 0);
	unlink(link);
	unlink(inner);
	rmdir(dir);
}

/* The checks hold for the file that is read, not for whatever the path names
 * a moment before or after (a swap between check and open). */
static void test_file_safety_on_the_open_fd(void)
{
	struct kl_error err = KL_ERROR_INIT;
	_cleanup_free_ char *path = write_file("swap.conf", "[rule a]\naio = auto\n", 0644);
	_cleanup_free_ char *evil = write_file("evil.conf", "[rule a]\ncache = unsafe\n", 0666);
	_cleanup_free_ char *good = write_file("good.conf", "[rule a]\naio = auto\n", 0644);

	/* Opened while it was the writable file, then swapped for a safe one: refused. */
	CHECK_INTEQ(rename(evil, path), 0);
	int fd = klp_open_file(path, &err);
	CHECK(fd >= 0);
	CHECK_INTEQ(rename(good, path), 0);
	CHECK_INTEQ(kl_policy_check_file_safety(path, &err), 0);  /* the path alone now looks fine */
	kl_error_clear(&err);
	CHECK_INTEQ(klp_check_fd(fd, path, &err), -1);
	CHECK(strstr(err.msg, "writable by every user") != NULL);
	close(fd);

	/* Opened while safe, then replaced: the fd is no longer what the path names. */
	free(good);
	good = write_file("good.conf", "[rule a]\naio = auto\n", 0644);
	fd = klp_open_file(path, &err);
	CHECK(fd >= 0);
	CHECK_INTEQ(rename(good, path), 0);
	kl_error_clear(&err);
	CHECK_INTEQ(klp_check_fd(fd, path, &err), -1);
	CHECK(strstr(err.msg, "replaced while it was being checked") != NULL);
	close(fd);

	/* The normal case: checked and read through one fd. */
	char *text = NULL;
	kl_error_clear(&err);
	CHECK_INTEQ(klp_read_file(path, &text, &err), 0);
	CHECK_STREQ(text, "[rule a]\naio = auto\n");
	free(text);
	unlink(path);
}

/* ---- cost ---- */

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void test_timing(void)
{
	struct kl_policy *p = load("[rule db]\nvm = db-*\npath = /dev/vg0/*\nbackend = block\naio = native\ncache = none\n"
				   "[rule ci]\nvm = ci-*\ncache = unsafe\n"
				   "[rule nfs]\nfs = nfs*\nshared = yes\ncache = none\naio = io_uring, threads\n");
	CHECK(p != NULL);
	if (!p)
		return;
	struct kl_host_facts h = host_good();
	struct kl_disk_facts f[4] = { f_block(KL_BLOCK_LVM), f_file("ext4", "raw", YES), f_file("xfs", "qcow2", NO),
				      f_network("rbd") };
	struct kl_disk_given g[4] = { g_disk("/dev/vg1/web1", "host_device", "raw"),
				      g_disk("/var/lib/libvirt/images/web1-data.img", "file", "raw"),
				      g_disk("/var/lib/libvirt/images/web1.qcow2", "file", "qcow2"),
				      g_disk("pool/web1-vol", "rbd", "raw") };
	struct kl_decision d;
	const int iters = 10000;

	for (int w = 0; w < 100; w++) /* warm up */
		for (int i = 0; i < 4; i++) {
			kl_decide(p, &VM, &g[i], &f[i], &h, &d);
			kl_decision_free(&d);
		}
	double t0 = now_us();
	for (int it = 0; it < iters; it++)
		for (int i = 0; i < 4; i++) {
			kl_decide(p, &VM, &g[i], &f[i], &h, &d);
			kl_decision_free(&d);
		}
	double per = (now_us() - t0) / iters;
	printf("# 4-disk decision: %.2f us (%d iterations)\n", per, iters);
	CHECK(per < 100.0);
	kl_policy_free(p);
}

int main(void)
{
	RUN(test_globals);
	RUN(test_every_match_key);
	RUN(test_actions);
	RUN(test_errors);
	RUN(test_warnings);
	RUN(test_rule_order);
	RUN(test_nova);
	RUN(test_defaults);
	RUN(test_hard_rule_1_native_needs_odirect);
	RUN(test_hard_rule_2_odirect_refused);
	RUN(test_hard_rule_3_engines);
	RUN(test_hard_rule_4_shared_and_incoming);
	RUN(test_hard_rule_5_unsafe_and_shareable);
	RUN(test_hard_rule_6_readonly);
	RUN(test_hard_rule_7_network);
	RUN(test_hard_rule_8_unknown);
	RUN(test_auto_calibration);
	RUN(test_check_policy);
	RUN(test_fixtures);
	RUN(test_example_matches_builtin);
	RUN(test_file_safety);
	RUN(test_file_safety_on_the_open_fd);
	RUN(test_timing);
	kl_decision_free(&D);
	if (tmpdir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", tmpdir);
	}
	return unit_done();
}
