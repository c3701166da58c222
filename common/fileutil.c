#include "common/fileutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
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
	const char *slash = strrchr(path, '/');
	_cleanup_free_ char *tmp = slash ? xasprintf("%.*s/.%s.XXXXXX", (int)(slash - path), path, slash + 1)
					 : xasprintf(".%s.XXXXXX", path);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return kl_error_errno(err, errno, "cannot create a temporary file for %s", path);
	size_t len = strlen(content), off = 0;
	int e = 0;
	if (fchmod(fd, mode) < 0)
		e = errno;
	while (!e && off < len) {
		ssize_t n = write(fd, content + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			e = n < 0 ? errno : ENOSPC;
		else
			off += (size_t)n;
	}
	if (close(fd) < 0 && !e)
		e = errno;
	if (!e && rename(tmp, path) < 0)
		e = errno;
	if (e) {
		unlink(tmp);
		return kl_error_errno(err, e, "cannot write %s", path);
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
