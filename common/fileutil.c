/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "common/fileutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/safefile.h"
#include "common/xalloc.h"

char *kl_read_small_file(const char *path, size_t max, struct kl_error *err)
{
	/* O_NONBLOCK: a FIFO must not hang us; only a regular file is read. */
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		kl_error_errno(err, errno, "open %s", path);
		return NULL;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		kl_error_errno(err, errno, "stat %s", path);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		kl_error_set(err, "%s: not a regular file", path);
		return NULL;
	}
	char *text = NULL;
	return kl_read_fd(fd, path, max, &text, NULL, err) < 0 ? NULL : text;
}

int kl_write_file_atomic(const char *path, const char *content, mode_t mode, struct kl_error *err)
{
	/* The directory by path (callers name their own); the file itself goes
	 * through the one atomic writer, kl_write_at. */
	const char *slash = strrchr(path, '/');
	_cleanup_free_ char *dir = slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup(".");
	_cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return kl_error_errno(err, errno, "cannot write %s: open %s", path, dir);
	if (kl_write_at(dirfd, slash ? slash + 1 : path, content, strlen(content), mode, err) < 0) {
		kl_error_prefix(err, "%s", dir);
		return -1;
	}
	return 0;
}

int kl_mkdir_p(const char *path, mode_t mode, struct kl_error *err)
{
	_cleanup_free_ char *p = xstrdup(path);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return kl_error_errno(err, errno, "mkdir %s", p);
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return kl_error_errno(err, errno, "mkdir %s", p);
	return 0;
}
