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
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		kl_error_errno(err, errno, "open %s", path);
		return NULL;
	}
	size_t cap = 4096, len = 0;
	_cleanup_free_ char *buf = xmalloc(cap);
	for (;;) {
		if (len + 1 >= cap) {
			if (cap > max) {
				kl_error_set(err, "%s: larger than %zu bytes", path, max);
				return NULL;
			}
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		ssize_t n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			kl_error_errno(err, errno, "read %s", path);
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > max) {
		kl_error_set(err, "%s: larger than %zu bytes", path, max);
		return NULL;
	}
	buf[len] = '\0';
	return steal_pointer(&buf);
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
