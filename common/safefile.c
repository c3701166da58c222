/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "common/safefile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/xalloc.h"

/* A refusal with a reason of our own (no strerror), errnum still telling the kind. */
__attribute__((format(printf, 3, 4)))
static int refuse(struct kl_error *err, int errnum, const char *fmt, ...)
{
	char msg[sizeof err->msg];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	kl_error_set(err, "%s", msg);
	if (err)
		err->errnum = errnum;
	return -1;
}

static bool plain_name(const char *name)
{
	return name && *name && !strchr(name, '/') && strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

int kl_dir_check_trusted(int fd, const char *what, uid_t owner, struct kl_error *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return kl_error_errno(err, errno, "stat %s", what);
	if (!S_ISDIR(st.st_mode))
		return kl_error_fail(err, "%s: not a directory", what);
	if (owner != KL_ANY_OWNER && st.st_uid != owner)
		return kl_error_fail(err, "%s: owned by uid %u, not by uid %u", what, (unsigned)st.st_uid,
				     (unsigned)owner);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return kl_error_fail(err, "%s: writable by %s (mode %04o)", what,
				     st.st_mode & S_IWOTH ? "others" : "its group", (unsigned)(st.st_mode & 07777));
	return 0;
}

int kl_dir_open_trusted(const char *path, uid_t owner, struct kl_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP || errno == ENOTDIR)
			return kl_error_errno(err, errno, "%s: not a directory (or a symlink)", path);
		return kl_error_errno(err, errno, "open %s", path);
	}
	if (kl_dir_check_trusted(fd, path, owner, err) < 0)
		return -1;
	return steal_fd(&fd);
}

/* Read at most max bytes; one byte more tells that the file is (or became) larger. */
int kl_read_fd(int fd, const char *name, size_t max, char **out, size_t *lenp, struct kl_error *err)
{
	*out = NULL;
	size_t cap = max < 4096 ? max + 1 : 4096, len = 0;
	_cleanup_free_ char *buf = xmalloc(cap + 1);
	for (;;) {
		if (len == cap) {
			if (cap > max)
				return refuse(err, EFBIG, "%s: larger than %zu bytes (or growing)", name, max);
			cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
			buf = xrealloc(buf, cap + 1);
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kl_error_errno(err, errno, "read %s", name);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (lenp)
		*lenp = len;
	*out = steal_pointer(&buf);
	return 0;
}

int kl_read_at(int dirfd, const char *name, uid_t owner, size_t max, char **out, size_t *len,
	       struct kl_error *err)
{
	*out = NULL;
	if (!plain_name(name)) {
		return refuse(err, EINVAL, "%s: not a plain file name", name ? name : "(null)");
	}
	/* O_NONBLOCK: opening a FIFO must not wait for a writer. */
	_cleanup_close_ int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ELOOP)
			return kl_error_errno(err, errno, "%s: a symlink, not followed", name);
		return kl_error_errno(err, errno, "open %s", name);
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return kl_error_errno(err, errno, "stat %s", name);
	if (!S_ISREG(st.st_mode)) {
		return refuse(err, EINVAL, "%s: not a regular file", name);
	}
	if (owner != KL_ANY_OWNER && st.st_uid != owner) {
		return refuse(err, EPERM, "%s: owned by uid %u, not uid %u", name, (unsigned)st.st_uid,
			      (unsigned)owner);
	}
	if (st.st_size < 0 || (uintmax_t)st.st_size > max) {
		return refuse(err, EFBIG, "%s: larger than %zu bytes", name, max);
	}
	return kl_read_fd(fd, name, max, out, len, err);
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? errno : ENOSPC;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A fresh ".NAME.XXXXXX" in dirfd, created O_EXCL so nothing planted there is reused. */
static int create_temp(int dirfd, const char *name, mode_t mode, char **tmp)
{
	for (int tries = 0; tries < 100; tries++) {
		uint32_t r;
		if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
			r = (uint32_t)getpid() * 2654435761u ^ (uint32_t)time(NULL) ^ (uint32_t)tries;
		free(*tmp);
		*tmp = xasprintf(".%s.%06x", name, r & 0xffffff);
		int fd = openat(dirfd, *tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, mode);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	errno = EEXIST;
	return -1;
}

int kl_write_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
		struct kl_error *err)
{
	if (!plain_name(name)) {
		return refuse(err, EINVAL, "%s: not a plain file name", name ? name : "(null)");
	}
	_cleanup_free_ char *tmp = NULL;
	int fd = create_temp(dirfd, name, mode, &tmp);
	if (fd < 0)
		return kl_error_errno(err, errno, "cannot create a temporary file for %s", name);
	/* fchmod: the mode asked for, whatever the caller's umask. */
	int e = fchmod(fd, mode) < 0 ? errno : 0;
	if (!e)
		e = write_all(fd, data, len);
	if (close(fd) < 0 && !e)
		e = errno;
	if (!e && renameat(dirfd, tmp, dirfd, name) < 0)
		e = errno;
	if (e) {
		unlinkat(dirfd, tmp, 0);
		return kl_error_errno(err, e, "cannot write %s", name);
	}
	return 0;
}
