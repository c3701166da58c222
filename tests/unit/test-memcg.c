/* SPDX-License-Identifier: GPL-2.0-or-later */
/* launcher/vm/memcg against fabricated cgroup trees and /proc files: cgroup v2
 * with and without memory.peak, unified and hybrid mounts, v1 with total_cache
 * or only cache, a combined v1 mount, no memory controller, no cgroup at all,
 * a vanished directory, garbage in the files.  The real hierarchies of the
 * host are tested by tests/cli/t-memcg.sh. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "unit.h"
#include "common/xalloc.h"
#include "launcher/vm/memcg.h"

static char top[PATH_MAX - 64];
static int case_no;
static char root[PATH_MAX], proc[PATH_MAX];

static void mkdirs(const char *path)
{
	char *p = xstrdup(path);
	for (char *s = p + 1; *s; s++)
		if (*s == '/') {
			*s = 0;
			mkdir(p, 0755);
			*s = '/';
		}
	mkdir(p, 0755);
	free(p);
}

/* put("cg", "memory/vm/memory.current", "5\n"): a file below the case's root ("cg") or proc ("proc"). */
static void put(const char *where, const char *rel, const char *text)
{
	char *p = xasprintf("%s/%s", !strcmp(where, "proc") ? proc : root, rel);
	char *slash = strrchr(p, '/');
	*slash = 0;
	mkdirs(p);
	*slash = '/';
	FILE *f = fopen(p, "we");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	free(p);
}

/* A fresh case: an empty root and proc. */
static struct kl_memcg_env fresh(void)
{
	case_no++;
	snprintf(root, sizeof root, "%s/c%d/cg", top, case_no);
	snprintf(proc, sizeof proc, "%s/c%d/proc", top, case_no);
	mkdirs(root);
	mkdirs(proc);
	return (struct kl_memcg_env){ root, proc };
}

static const char *V2STAT = "anon 1048576\nfile 8388608\nkernel 4096\nfile_mapped 0\n";
static const char *V1STAT = "cache 100\nrss 200\nmapped_file 0\ntotal_cache 4096000\ntotal_rss 2048000\n";

static void v2_tree(const char *base, bool peak)
{
	char p[256];
	snprintf(p, sizeof p, "%scgroup.controllers", base);
	put("cg", p, "cpuset cpu io memory pids\n");
	snprintf(p, sizeof p, "%smachine/vm1/cgroup.controllers", base);
	put("cg", p, "cpu io memory\n");
	snprintf(p, sizeof p, "%smachine/vm1/memory.current", base);
	put("cg", p, "12582912\n");
	if (peak) {
		snprintf(p, sizeof p, "%smachine/vm1/memory.peak", base);
		put("cg", p, "20971520\n");
	}
	snprintf(p, sizeof p, "%smachine/vm1/memory.stat", base);
	put("cg", p, V2STAT);
	snprintf(p, sizeof p, "%smachine/vm1/memory.max", base);
	put("cg", p, "max\n");
	snprintf(p, sizeof p, "%smachine/vm1/memory.events", base);
	put("cg", p, "low 0\nhigh 0\nmax 3\noom 0\noom_kill 1\n");
}

static void test_v2_with_peak(void)
{
	struct kl_memcg_env env = fresh();
	v2_tree("", true);
	put("proc", "100/cgroup", "0::/machine/vm1\n");
	struct kl_error err = KL_ERROR_INIT;
	_cleanup_memcg_ struct kl_memcg cg = { 0, NULL };
	CHECK_INTEQ(kl_memcg_of_pid(&env, 100, KL_MEMCG_ANY, &cg, &err), 0);
	CHECK_INTEQ(cg.version, KL_MEMCG_V2);
	struct kl_memcg_usage u;
	CHECK_INTEQ(kl_memcg_read(&cg, &u, &err), 0);
	CHECK_INTEQ(u.current, 12582912);
	CHECK_INTEQ(u.peak, 20971520);
	CHECK_INTEQ(u.file, 8388608);
	CHECK_INTEQ(u.anon, 1048576);
	CHECK_INTEQ(u.limit, -1);
	CHECK_INTEQ(u.limit_hits, 3);
	CHECK_INTEQ(u.oom_kills, 1);
}

static void test_v2_no_peak_hybrid(void)
{
	/* Older kernels have no memory.peak; a hybrid host mounts the v2 tree at unified/. */
	struct kl_memcg_env env = fresh();
	v2_tree("unified/", false);
	put("proc", "7/cgroup", "1:name=systemd:/machine/vm1\n0::/machine/vm1\n");
	struct kl_error err = KL_ERROR_INIT;
	_cleanup_memcg_ struct kl_memcg cg = { 0, NULL };
	CHECK_INTEQ(kl_memcg_of_pid(&env, 7, KL_MEMCG_ANY, &cg, &err), 0);
	CHECK(cg.dir && strstr(cg.dir, "/unified/machine/vm1"));
	struct kl_memcg_usage u;
	CHECK_INTEQ(kl_memcg_read(&cg, &u, &err), 0);
	CHECK_INTEQ(u.peak, -1);
	CHECK_INTEQ(u.current, 12582912);
}

static void v1_tree(const char *mount, const char *stat)
{
	char p[256];
	snprintf(p, sizeof p, "%s/vm/memory.usage_in_bytes", mount);
	put("cg", p, "7340032\n");
	snprintf(p, sizeof p, "%s/vm/memory.max_usage_in_bytes", mount);
	put("cg", p, "9437184\n");
	snprintf(p, sizeof p, "%s/vm/memory.limit_in_bytes", mount);
	put("cg", p, "9223372036854771712\n");
	snprintf(p, sizeof p, "%s/vm/memory.failcnt", mount);
	put("cg", p, "0\n");
	snprintf(p, sizeof p, "%s/vm/memory.oom_control", mount);
	put("cg", p, "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
	snprintf(p, sizeof p, "%s/vm/memory.stat", mount);
	put("cg", p, stat);
}

static void test_v1_total_cache(void)
{
	struct kl_memcg_env env = fresh();
	v1_tree("memory", V1STAT);
	put("cg", "unified/cgroup.controllers", "\n");
	put("proc", "5/cgroup", "9:name=systemd:/\n4:memory:/vm\n3:cpu:/\n0::/\n");
	struct kl_error err = KL_ERROR_INIT;
	_cleanup_memcg_ struct kl_memcg cg = { 0, NULL };
	CHECK_INTEQ(kl_memcg_of_pid(&env, 5, KL_MEMCG_ANY, &cg, &err), 0);
	CHECK_INTEQ(cg.version, KL_MEMCG_V1);
	struct kl_memcg_usage u;
	CHECK_INTEQ(kl_memcg_read(&cg, &u, &err), 0);
	CHECK_INTEQ(u.current, 7340032);
	CHECK_INTEQ(u.peak, 9437184);
	CHECK_INTEQ(u.file, 4096000);   /* total_cache wins over cache */
	CHECK_INTEQ(u.anon, 2048000);
	CHECK_INTEQ(u.limit, -1);       /* v1's "no limit" */
	CHECK_INTEQ(u.oom_kills, 2);
	/* The same process asked for v2: the unified tree has no memory controller. */
	_cleanup_memcg_ struct kl_memcg c2 = { 0, NULL };
	struct kl_error e2 = KL_ERROR_INIT;
	CHECK_INTEQ(kl_memcg_of_pid(&env, 5, KL_MEMCG_V2, &c2, &e2), -1);
	CHECK(strstr(e2.msg, "no memory controller") != NULL);
}

static void test_v1_cache_only_combined(void)
{
	/* No total_* lines (a cgroup without hierarchy), and a combined mount "memory,hugetlb". */
	struct kl_memcg_env env = fresh();
	v1_tree("memory,hugetlb", "cache 100\nrss 200\n");
	put("proc", "5/cgroup", "4:memory,hugetlb:/vm\n");
	struct kl_error err = KL_ERROR_INIT;
	_cleanup_memcg_ struct kl_memcg cg = { 0, NULL };
	CHECK_INTEQ(kl_memcg_of_pid(&env, 5, KL_MEMCG_ANY, &cg, &err), 0);
	struct kl_memcg_usage u;
	CHECK_INTEQ(kl_memcg_read(&cg, &u, &err), 0);
	CHECK_INTEQ(u.file, 100);
	CHECK_INTEQ(u.anon, 200);
}

static void expect_error(const struct kl_memcg_env *env, int pid, enum kl_memcg_version want, const char *text)
{
	struct kl_error err = KL_ERROR_INIT;
	_cleanup_memcg_ struct kl_memcg cg = { 0, NULL };
	CHECK_INTEQ(kl_memcg_of_pid(env, pid, want, &cg, &err), -1);
	if (!strstr(err.msg, text))
		printf("#   error \"%s\" lacks \"%s\"\n", err.msg, text);
	CHECK(strstr(err.msg, text) != NULL);
	CHECK(cg.dir == NULL);
}

static void test_no_controller(void)
{
	struct kl_memcg_env env = fresh();
	put("cg", "cgroup.controllers", "cpu io pids\n");
	put("cg", "machine/cgroup.controllers", "cpu io\n");
	put("proc", "9/cgroup", "0::/machine\n");
	expect_error(&env, 9, KL_MEMCG_ANY, "no memory controller");
	expect_error(&env, 9, KL_MEMCG_V1, "no cgroup v1 memory controller");
	/* v2 with memory, but the process sits in the root cgroup: the whole host. */
	put("cg", "cgroup.controllers", "cpu memory\n");
	put("proc", "10/cgroup", "0::/\n");
	expect_error(&env, 10, KL_MEMCG_ANY, "root cgroup");
	/* No cgroup line at all, and no such process. */
	put("proc", "11/cgroup", "1:name=systemd:/x\n");
	expect_error(&env, 11, KL_MEMCG_ANY, "no memory cgroup");
	expect_error(&env, 12, KL_MEMCG_ANY, "cannot tell the memory cgroup of process 12");
}

static void test_missing(void)
{
	/* An empty root: nothing mounted. */
	struct kl_memcg_env env = fresh();
	put("proc", "5/cgroup", "4:memory:/vm\n0::/vm\n");
	expect_error(&env, 5, KL_MEMCG_ANY, "no memory hierarchy is mounted");
	expect_error(&env, 5, KL_MEMCG_V2, "no cgroup2 is mounted");
	/* Mounted, but the process's cgroup is gone. */
	put("cg", "memory/memory.usage_in_bytes", "1\n");
	expect_error(&env, 5, KL_MEMCG_ANY, "is gone");
	/* Gone between finding and reading. */
	v1_tree("memory", V1STAT);
	struct kl_error err = KL_ERROR_INIT;
	_cleanup_memcg_ struct kl_memcg cg = { 0, NULL };
	CHECK_INTEQ(kl_memcg_of_pid(&env, 5, KL_MEMCG_ANY, &cg, &err), 0);
	char *cmd = xasprintf("rm -rf '%s/memory/vm'", root);
	CHECK_INTEQ(system(cmd), 0);
	free(cmd);
	struct kl_memcg_usage u;
	CHECK_INTEQ(kl_memcg_read(&cg, &u, &err), -1);
	CHECK(strstr(err.msg, "gone") != NULL);
	CHECK_INTEQ(u.current, -1);
	/* Removing what is already gone is fine. */
	CHECK_INTEQ(kl_memcg_remove(&cg, 0, &err), 0);
}

static void expect_read_error(const char *dir, const char *text)
{
	struct kl_error err = KL_ERROR_INIT;
	_cleanup_memcg_ struct kl_memcg cg = { 0, NULL };
	struct kl_memcg_usage u;
	CHECK_INTEQ(kl_memcg_at(dir, &cg, &err), 0);
	CHECK_INTEQ(kl_memcg_read(&cg, &u, &err), -1);
	if (!strstr(err.msg, text))
		printf("#   error \"%s\" lacks \"%s\"\n", err.msg, text);
	CHECK(strstr(err.msg, text) != NULL);
}

static void test_garbage(void)
{
	fresh();
	v2_tree("", true);
	char *d = xasprintf("%s/machine/vm1", root);
	put("cg", "machine/vm1/memory.current", "lots\n");
	expect_read_error(d, "memory.current: not a byte count");
	put("cg", "machine/vm1/memory.current", "-5\n");
	expect_read_error(d, "not a byte count");
	put("cg", "machine/vm1/memory.current", "5\n");
	put("cg", "machine/vm1/memory.stat", "anon 1\n");
	expect_read_error(d, "no \"file\" line");
	put("cg", "machine/vm1/memory.stat", "anon 1\nfile 12abc\n");
	expect_read_error(d, "(file): not a byte count");
	put("cg", "machine/vm1/memory.stat", V2STAT);
	put("cg", "machine/vm1/memory.events", "max x\n");
	expect_read_error(d, "memory.events (max)");
	/* A directory that is no memory cgroup at all, and one of v2 without the controller. */
	struct kl_error err = KL_ERROR_INIT;
	_cleanup_memcg_ struct kl_memcg cg = { 0, NULL };
	CHECK_INTEQ(kl_memcg_at(top, &cg, &err), -1);
	CHECK(strstr(err.msg, "not a memory cgroup") != NULL);
	put("cg", "plain/cgroup.controllers", "cpu\n");
	char *p = xasprintf("%s/plain", root);
	CHECK_INTEQ(kl_memcg_at(p, &cg, &err), -1);
	CHECK(strstr(err.msg, "without the memory controller") != NULL);
	/* create under a fake parent: the child gets no memory files, so it fails and is removed again. */
	struct kl_memcg parent = { KL_MEMCG_V1, p };
	CHECK_INTEQ(kl_memcg_create(&parent, "child", 0, &cg, &err), -1);
	char *child = xasprintf("%s/child", p);
	CHECK(access(child, F_OK) != 0);
	CHECK_INTEQ(kl_memcg_create(&parent, "../x", 0, &cg, &err), -1);
	CHECK(strstr(err.msg, "bad cgroup name") != NULL);
	free(child);
	free(p);
	free(d);
}

static void test_v2_root(void)
{
	struct kl_memcg_env env = fresh();
	struct kl_error err = KL_ERROR_INIT;
	_cleanup_memcg_ struct kl_memcg cg = { 0, NULL };
	CHECK_INTEQ(kl_memcg_v2_root(&env, &cg, &err), -1);
	CHECK(strstr(err.msg, "no cgroup2 mounted") != NULL);
	put("cg", "unified/cgroup.controllers", "cpu io\n");
	CHECK_INTEQ(kl_memcg_v2_root(&env, &cg, &err), -1);
	CHECK(strstr(err.msg, "without the memory controller") != NULL);
	put("cg", "unified/cgroup.controllers", "cpu io memory\n");
	CHECK_INTEQ(kl_memcg_v2_root(&env, &cg, &err), 0);
	CHECK(cg.version == KL_MEMCG_V2 && cg.dir && strstr(cg.dir, "/unified"));
	/* A child whose memory files never appear (no kernel here): refused, and removed again. */
	_cleanup_memcg_ struct kl_memcg child = { 0, NULL };
	CHECK_INTEQ(kl_memcg_create(&cg, "vm", 0, &child, &err), -1);
	CHECK(strstr(err.msg, "does not hand the memory controller down") != NULL);
	char *p = xasprintf("%s/vm", cg.dir);
	CHECK(access(p, F_OK) != 0);
	free(p);
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	snprintf(top, sizeof top, "%s/kl-memcg-XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(top)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_v2_with_peak);
	RUN(test_v2_no_peak_hybrid);
	RUN(test_v1_total_cache);
	RUN(test_v1_cache_only_combined);
	RUN(test_no_controller);
	RUN(test_missing);
	RUN(test_garbage);
	RUN(test_v2_root);
	char *cmd = xasprintf("rm -rf '%s'", top);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", top);
	free(cmd);
	return unit_done();
}
