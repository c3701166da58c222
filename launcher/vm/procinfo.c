/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/vm/procinfo.h"

#include <sys/mman.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

/* /proc/PID/stat: "pid (comm) state ppid ...": comm may hold spaces and
 * parentheses, so fields are counted from the last ')'. */
static int read_stat(pid_t pid, char *buf, size_t len, const char **after_comm)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, len - 1);
	if (n <= 0) {
		if (n == 0)
			errno = ENOENT;
		return -1;
	}
	buf[n] = '\0';
	const char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ') {
		errno = EINVAL;
		return -1;
	}
	*after_comm = p + 2; /* field 3, the state */
	return 0;
}

int kl_proc_start_ticks(pid_t pid, unsigned long long *out)
{
	char buf[1024];
	const char *p;

	if (pid <= 0) {
		errno = ESRCH;
		return -1;
	}
	if (read_stat(pid, buf, sizeof buf, &p) < 0)
		return -1;
	/* p is field 3; starttime is field 22: skip 19 fields. */
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p) {
			errno = EINVAL;
			return -1;
		}
		p++;
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(p, &end, 10);
	if (errno || end == p) {
		errno = EINVAL;
		return -1;
	}
	*out = v;
	return 0;
}

char kl_proc_state_char(pid_t pid)
{
	char buf[1024];
	const char *p;

	if (pid <= 0 || read_stat(pid, buf, sizeof buf, &p) < 0)
		return 0;
	return *p;
}

enum kl_proc_state kl_proc_check(pid_t pid, unsigned long long start_ticks)
{
	unsigned long long now;
	char buf[1024];
	const char *p;

	if (pid <= 0 || read_stat(pid, buf, sizeof buf, &p) < 0)
		return KL_PROC_GONE;
	if (*p == 'Z' || *p == 'X')
		return KL_PROC_GONE;
	if (kl_proc_start_ticks(pid, &now) < 0)
		return KL_PROC_GONE;
	if (start_ticks && now != start_ticks)
		return KL_PROC_REUSED;
	return KL_PROC_ALIVE;
}

const char *kl_proc_state_name(enum kl_proc_state s)
{
	switch (s) {
	case KL_PROC_ALIVE: return "alive";
	case KL_PROC_REUSED: return "reused";
	default: return "gone";
	}
}

int kl_proc_fd_flags(pid_t pid, int fd, unsigned long *flags)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/fdinfo/%d", (int)pid, fd);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "flags:", 6) == 0) {
			char *end;
			errno = 0;
			unsigned long v = strtoul(line + 6, &end, 8);
			if (errno || end == line + 6) {
				errno = EINVAL;
				return -1;
			}
			*flags = v;
			return 0;
		}
	}
	errno = ENOENT;
	return -1;
}

/* Calls fn for every fd of pid with its link; stops when fn returns non-zero. */
static int each_fd(pid_t pid, int (*fn)(int fd, const char *link, void *ctx), void *ctx)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	_cleanup_closedir_ DIR *d = opendir(path);
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char lpath[384], link[PATH_MAX];
		snprintf(lpath, sizeof lpath, "/proc/%d/fd/%s", (int)pid, e->d_name);
		ssize_t n = readlink(lpath, link, sizeof link - 1);
		if (n < 0)
			continue;
		link[n] = '\0';
		if (fn(atoi(e->d_name), link, ctx))
			break;
	}
	return 0;
}

struct fds_ctx {
	const char *target;
	int *fds;
	size_t max, n;
};

static int match_path(int fd, const char *link, void *vctx)
{
	struct fds_ctx *c = vctx;
	if (strcmp(link, c->target) == 0) {
		if (c->n < c->max)
			c->fds[c->n] = fd;
		c->n++;
	}
	return 0;
}

int kl_proc_fds_for_path(pid_t pid, const char *target, int *fds, size_t max)
{
	char real[PATH_MAX];
	struct fds_ctx c = { target, fds, max, 0 };

	if (realpath(target, real))
		c.target = real;
	if (each_fd(pid, match_path, &c) < 0)
		return -1;
	return (int)c.n;
}

static int match_io_uring(int fd, const char *link, void *vctx)
{
	(void)fd;
	if (strcmp(link, "anon_inode:[io_uring]") == 0) {
		*(bool *)vctx = true;
		return 1;
	}
	return 0;
}

enum kl_tri kl_proc_has_io_uring(pid_t pid)
{
	bool found = false;
	if (each_fd(pid, match_io_uring, &found) < 0)
		return KL_TRI_UNKNOWN;
	return found ? KL_TRI_YES : KL_TRI_NO;
}

enum kl_tri kl_proc_has_libaio(pid_t pid)
{
	char path[64], line[512];
	snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return KL_TRI_UNKNOWN;
	enum kl_tri r = KL_TRI_NO;
	bool read_any = false;
	while (fgets(line, sizeof line, f)) {
		read_any = true;
		/* The pathname column of an io_setup() ring is "/[aio] (deleted)". */
		if (strstr(line, " /[aio]")) {
			r = KL_TRI_YES;
			break;
		}
	}
	return read_any ? r : KL_TRI_UNKNOWN;
}

long kl_proc_vmrss_kib(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			return strtol(line + 6, NULL, 10);
	return -1;
}

pid_t kl_proc_pidfd_pid(int fd)
{
	char path[64], line[256], link[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, link, sizeof link - 1);
	if (n < 0)
		return -1;
	link[n] = '\0';
	if (!strstr(link, "pidfd")) /* "anon_inode:[pidfd]"; pidfs: "pidfd:[N]" */
		return -1;
	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "Pid:", 4) == 0)
			return (pid_t)strtol(line + 4, NULL, 10);
	return -1;
}

int kl_pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

void kl_release_text_pages(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	if (!f)
		return;
	while (fgets(line, sizeof line, f)) {
		unsigned long start, end;
		char perms[5];
		int path_at = 0;
		if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %n", &start, &end, perms, &path_at) < 3)
			continue;
		/* Executable, private, file-backed, and not the vDSO/vsyscall. */
		if (strcmp(perms, "r-xp") != 0 || !path_at || line[path_at] != '/')
			continue;
		madvise((void *)start, end - start, MADV_DONTNEED);
	}
	fclose(f);
}
