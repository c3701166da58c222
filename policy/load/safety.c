/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Who may write the policy file.  Whoever can write it chooses the binary
 * kvm-launch executes (qemu =), so, like sudo with sudoers, refuse a file
 * that someone other than root (or the user kvm-launch runs as) could have
 * written: the file and every directory above it must be owned by root or
 * by us, and writable by no one else (a sticky directory such as /tmp is
 * fine: others cannot replace what they do not own there).  Checked for
 * every user, not only root: as libvirt-qemu, a writable policy file would
 * hand that account to whoever can write it.  The checks run on the open
 * fd (fstat) of the file that is then read, so a swap between the check and
 * the read cannot win (issue 17). */
#include "policy/policy-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/cleanup.h"
#include "common/xalloc.h"

static int check_one(const char *file, const char *what, const struct stat *st, bool dir, struct kl_error *err)
{
	uid_t me = geteuid();
	bool sticky = dir && (st->st_mode & S_ISVTX);
	unsigned mode = (unsigned)(st->st_mode & 07777);

	if (st->st_uid != 0 && st->st_uid != me)
		return kl_error_fail(err, "%s: refused: %s is owned by uid %u, not by root%s", file, what,
				     (unsigned)st->st_uid, me ? " or the user kvm-launch runs as" : "");
	if ((st->st_mode & S_IWOTH) && !sticky)
		return kl_error_fail(err, "%s: refused: %s is writable by every user (mode %04o): chmod o-w", file,
				     what, mode);
	if ((st->st_mode & S_IWGRP) && st->st_gid != 0 && !sticky)
		return kl_error_fail(err, "%s: refused: %s is writable by group %u (mode %04o): chmod g-w", file,
				     what, (unsigned)st->st_gid, mode);
	return 0;
}

/* Every directory above path (absolute), up to "/". */
static int check_dirs(const char *file, const char *path, struct kl_error *err)
{
	_cleanup_free_ char *p = xstrdup(path);
	for (;;) {
		char *slash = strrchr(p, '/');
		if (!slash)
			return 0;
		if (slash == p)
			slash[1] = '\0';
		else
			*slash = '\0';
		struct stat st;
		if (stat(p, &st) < 0)
			return kl_error_errno(err, errno, "%s: cannot check directory %s", file, p);
		char what[PATH_MAX + 16];
		snprintf(what, sizeof what, "directory %s", p);
		if (check_one(file, what, &st, true, err) < 0)
			return -1;
		if (!strcmp(p, "/"))
			return 0;
	}
}

int klp_open_file(const char *path, struct kl_error *err)
{
	/* O_NONBLOCK: a FIFO must not hang the launch; klp_check_fd refuses it. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return kl_error_errno(err, errno, "%s: cannot open", path);
	return fd;
}

/* The path the open fd really has (through every symlink), from /proc. */
static char *fd_path(int fd, const char *path)
{
	char link[64], buf[PATH_MAX];
	snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, buf, sizeof buf - 1);
	if (n <= 0 || (size_t)n >= sizeof buf - 1 || buf[0] != '/')
		return realpath(path, NULL);  /* no /proc: the identity check below still holds */
	buf[n] = '\0';
	return xstrdup(buf);
}

int klp_check_fd(int fd, const char *path, struct kl_error *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return kl_error_errno(err, errno, "%s: cannot check", path);
	if (!S_ISREG(st.st_mode))
		return kl_error_fail(err, "%s: refused: not a regular file", path);
	/* The file checked is the one opened: a swap after the open changes nothing we read. */
	if (check_one(path, "the file", &st, false, err) < 0)
		return -1;

	_cleanup_free_ char *abs = NULL;
	if (path[0] == '/') {
		abs = xstrdup(path);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof cwd))
			return kl_error_errno(err, errno, "%s: cannot check: getcwd", path);
		abs = xasprintf("%s/%s", cwd, path);
	}
	if (check_dirs(path, abs, err) < 0)
		return -1;
	/* The directories that really hold the opened file.  Once they are
	 * shown to be writable by root or us alone, nobody else can move the
	 * file, so finding the same inode at that path proves it is the one
	 * we hold (not something put there and taken away meanwhile). */
	_cleanup_free_ char *real = fd_path(fd, path);
	if (!real)
		return kl_error_errno(err, errno, "%s: cannot check: realpath", path);
	if (strcmp(real, abs) != 0 && check_dirs(path, real, err) < 0)
		return -1;
	struct stat now;
	if (stat(real, &now) < 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino)
		return kl_error_fail(err, "%s: refused: the file was replaced while it was being checked", path);
	return 0;
}

int kl_policy_check_file_safety(const char *path, struct kl_error *err)
{
	_cleanup_close_ int fd = klp_open_file(path, err);
	if (fd < 0)
		return -1;
	return klp_check_fd(fd, path, err);
}
