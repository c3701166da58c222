/* SPDX-License-Identifier: GPL-2.0-or-later */
/* memcg-cli: launcher/vm/memcg for shell tests and the benchmark.
 *   memcg-cli [--root DIR] [--proc DIR] [--v1|--v2] pid PID   the memory cgroup of PID and its figures
 *   memcg-cli read DIR                                         the figures of the cgroup at DIR
 *   memcg-cli [--parent DIR] create NAME [LIMIT_MIB]           a child of this process's memory cgroup
 *                                                              (or of DIR; on cgroup v2, failing that, of the
 *                                                              root); prints its directory
 *   memcg-cli limit DIR LIMIT_MIB                              set (0: remove) the limit
 *   memcg-cli exec DIR -- CMD [ARG...]                         move into DIR, then exec CMD
 *   memcg-cli rm DIR [WAIT_MS]                                 remove it (waiting for exiting tasks)
 *   memcg-cli evict FILE                                       fsync FILE and drop its pages from the page
 *                                                              cache (so the next reader is charged for them)
 * Figures are key=value lines in bytes, -1 when the kernel does not say.
 * Errors go to stderr as "memcg-cli: MESSAGE", exit 1; usage errors exit 2. */
#include "launcher/vm/memcg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"

static int usage(void)
{
	fprintf(stderr, "usage: memcg-cli [--root DIR] [--proc DIR] [--v1|--v2] [--parent DIR] "
		"pid PID | read DIR | create NAME [LIMIT_MIB] | limit DIR MIB | exec DIR -- CMD... | rm DIR [MS] | evict FILE\n");
	return 2;
}

static int fail(const struct kl_error *err)
{
	fprintf(stderr, "memcg-cli: %s\n", err->msg);
	return 1;
}

static int show(const struct kl_memcg *cg)
{
	struct kl_error err = KL_ERROR_INIT;
	struct kl_memcg_usage u;
	if (kl_memcg_read(cg, &u, &err) < 0)
		return fail(&err);
	printf("version=%s\ndir=%s\n", cg->version == KL_MEMCG_V1 ? "v1" : "v2", cg->dir);
	printf("current=%lld\npeak=%lld\nfile=%lld\nanon=%lld\n", u.current, u.peak, u.file, u.anon);
	printf("limit=%lld\nlimit_hits=%lld\noom_kills=%lld\n", u.limit, u.limit_hits, u.oom_kills);
	return 0;
}

static int evict(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0) {
		fprintf(stderr, "memcg-cli: %s: %s\n", path, strerror(errno));
		return 1;
	}
	int e = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	if (e) {
		fprintf(stderr, "memcg-cli: posix_fadvise %s: %s\n", path, strerror(e));
		return 1;
	}
	return 0;
}

static long long mib(const char *s)
{
	char *end;
	long long v = strtoll(s, &end, 10);
	return *s && !*end && v >= 0 ? v * 1024 * 1024 : -1;
}

int main(int argc, char **argv)
{
	struct kl_memcg_env env = { NULL, NULL };
	enum kl_memcg_version want = KL_MEMCG_ANY;
	const char *parent_dir = NULL;
	int i = 1;
	for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
		if (!strcmp(argv[i], "--v1"))
			want = KL_MEMCG_V1;
		else if (!strcmp(argv[i], "--v2"))
			want = KL_MEMCG_V2;
		else if (i + 1 < argc && !strcmp(argv[i], "--root"))
			env.cgroot = argv[++i];
		else if (i + 1 < argc && !strcmp(argv[i], "--proc"))
			env.proc = argv[++i];
		else if (i + 1 < argc && !strcmp(argv[i], "--parent"))
			parent_dir = argv[++i];
		else
			return usage();
	}
	if (i >= argc)
		return usage();
	const char *cmd = argv[i++];
	int n = argc - i;
	struct kl_error err = KL_ERROR_INIT;
	_cleanup_memcg_ struct kl_memcg cg = { KL_MEMCG_ANY, NULL };

	if (!strcmp(cmd, "evict") && n == 1)
		return evict(argv[i]);
	if (!strcmp(cmd, "pid") && n == 1) {
		if (kl_memcg_of_pid(&env, (pid_t)atoi(argv[i]), want, &cg, &err) < 0)
			return fail(&err);
		return show(&cg);
	}
	if (!strcmp(cmd, "create") && (n == 1 || n == 2)) {
		_cleanup_memcg_ struct kl_memcg parent = { KL_MEMCG_ANY, NULL };
		long long limit = n == 2 ? mib(argv[i + 1]) : 0;
		if (limit < 0)
			return usage();
		if ((parent_dir ? kl_memcg_at(parent_dir, &parent, &err)
				: kl_memcg_of_pid(&env, getpid(), want, &parent, &err)) < 0)
			return fail(&err);
		if (kl_memcg_create(&parent, argv[i], limit, &cg, &err) < 0) {
			/* v2: our own cgroup has processes, so it cannot hand the controller
			 * down; the root can. */
			struct kl_error e2 = KL_ERROR_INIT;
			kl_memcg_free(&parent);
			if (parent_dir || kl_memcg_v2_root(&env, &parent, &e2) < 0 ||
			    kl_memcg_create(&parent, argv[i], limit, &cg, &e2) < 0)
				return fail(&err);
		}
		printf("%s\n", cg.dir);
		return 0;
	}
	if (n < 1)
		return usage();
	if (kl_memcg_at(argv[i], &cg, &err) < 0)
		return fail(&err);
	if (!strcmp(cmd, "read") && n == 1)
		return show(&cg);
	if (!strcmp(cmd, "limit") && n == 2) {
		long long limit = mib(argv[i + 1]);
		if (limit < 0)
			return usage();
		return kl_memcg_set_limit(&cg, limit, &err) < 0 ? fail(&err) : 0;
	}
	if (!strcmp(cmd, "rm") && (n == 1 || n == 2))
		return kl_memcg_remove(&cg, n == 2 ? atoi(argv[i + 1]) : 2000, &err) < 0 ? fail(&err) : 0;
	if (!strcmp(cmd, "exec") && n >= 3 && !strcmp(argv[i + 1], "--")) {
		if (kl_memcg_attach(&cg, 0, &err) < 0)
			return fail(&err);
		execvp(argv[i + 2], argv + i + 2);
		fprintf(stderr, "memcg-cli: exec %s: %s\n", argv[i + 2], strerror(errno));
		return 127;
	}
	return usage();
}
