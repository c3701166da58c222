/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "common/cachedir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fileutil.h"
#include "common/safefile.h"
#include "common/xalloc.h"

static mode_t dir_mode(void)
{
	return geteuid() == 0 ? 0755 : 0700;
}

mode_t kl_cache_file_mode(void)
{
	return geteuid() == 0 ? 0644 : 0600;
}

/* fd (consumed) is a directory the euid alone may write, or -1 with the reason. */
static int check_private(int fd, const char *what, struct kl_error *err)
{
	if (kl_dir_check_trusted(fd, what, geteuid(), err) == 0)
		return fd;
	close(fd);
	return -1;
}

/* NAME in dirfd as a directory, never through a symlink; made with MODE when absent and CREATE. */
static int open_subdir(int dirfd, const char *name, const char *what, bool create, mode_t mode,
		       struct kl_error *err)
{
	const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int fd = openat(dirfd, name, flags);
	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(dirfd, name, mode) < 0 && errno != EEXIST)
			return kl_error_errno(err, errno, "mkdir %s", what);
		fd = openat(dirfd, name, flags);
	}
	if (fd < 0) {
		if (errno == ELOOP || errno == ENOTDIR)
			return kl_error_fail(err, "%s: not a directory (a symlink is never followed)", what);
		return kl_error_errno(err, errno, "open %s", what);
	}
	return fd;
}

int kl_cache_subdir_open(int dirfd, const char *name, const char *what, bool create, struct kl_error *err)
{
	int fd = open_subdir(dirfd, name, what ? what : name, create, dir_mode(), err);
	return fd < 0 ? -1 : check_private(fd, what ? what : name, err);
}

/* TOP/users/UID for a uid other than root. */
static int open_user_dir(int topfd, const char *top, bool create, char **path, struct kl_error *err)
{
	_cleanup_free_ char *users_path = xasprintf("%s/users", top);
	_cleanup_close_ int users = open_subdir(topfd, "users", users_path, false, 0, err);
	if (users < 0)
		return -1;
	struct stat st;
	if (fstat(users, &st) < 0)
		return kl_error_errno(err, errno, "stat %s", users_path);
	/* Made by root (tmpfiles) or by the uid itself; anyone else could move our directory away. */
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return kl_error_fail(err, "%s: owned by uid %u", users_path, (unsigned)st.st_uid);
	char uid[16];
	snprintf(uid, sizeof uid, "%u", (unsigned)geteuid());
	_cleanup_free_ char *mine = xasprintf("%s/%s", users_path, uid);
	int fd = open_subdir(users, uid, mine, create, 0700, err);
	if (fd < 0 || (fd = check_private(fd, mine, err)) < 0)
		return -1;
	if (path)
		*path = steal_pointer(&mine);
	return fd;
}

int kl_cache_dir_open(const char *top, bool create, char **path, struct kl_error *err)
{
	if (path)
		*path = NULL;
	if (!top || !*top)
		return kl_error_fail(err, "no cache directory");
	/* Root makes its own top (its parents are root's: /var/cache). */
	if (create && geteuid() == 0 && access(top, F_OK) < 0 && errno == ENOENT &&
	    kl_mkdir_p(top, 0755, err) < 0)
		return -1;
	_cleanup_close_ int topfd = open(top, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (topfd < 0) {
		if (errno == ELOOP || errno == ENOTDIR)
			return kl_error_fail(err, "%s: not a directory (a symlink is never followed)", top);
		return kl_error_errno(err, errno, "open %s", top);
	}
	struct stat st;
	if (fstat(topfd, &st) < 0)
		return kl_error_errno(err, errno, "stat %s", top);
	bool own_private = st.st_uid == geteuid() && !(st.st_mode & (S_IWGRP | S_IWOTH));
	if (geteuid() == 0 || own_private) {
		int fd = check_private(steal_fd(&topfd), top, err);
		if (fd >= 0 && path)
			*path = xstrdup(top);
		return fd;
	}
	return open_user_dir(topfd, top, create, path, err);
}
