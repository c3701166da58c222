/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Reading the policy file from disk: the only I/O of the policy layer, kept
 * apart so that policy/ itself stays pure (text in, decisions out). */
#include "policy/policy-int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/cleanup.h"
#include "common/xalloc.h"

/* Far larger than any policy; a bigger file is a mistake, not a policy. */
#define KLP_MAX_FILE (1024 * 1024)

int klp_read_fd(int fd, const char *path, char **text, struct kl_error *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return kl_error_errno(err, errno, "%s: cannot stat", path);
	if (!S_ISREG(st.st_mode))
		return kl_error_fail(err, "%s: not a regular file", path);
	if (st.st_size > KLP_MAX_FILE)
		return kl_error_fail(err, "%s: larger than %d bytes: not a policy file", path, KLP_MAX_FILE);

	size_t cap = (size_t)st.st_size + 1, len = 0;
	_cleanup_free_ char *buf = xmalloc(cap + 1);
	for (;;) {
		if (len == cap)
			return kl_error_fail(err, "%s: grew while being read", path);
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return kl_error_errno(err, errno, "%s: cannot read", path);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	if (memchr(buf, '\0', len))
		return kl_error_fail(err, "%s: contains a NUL byte: not a policy file", path);
	*text = steal_pointer(&buf);
	return 0;
}

int klp_read_file(const char *path, char **text, struct kl_error *err)
{
	/* One open: the safety checks and the read are on the same fd. */
	_cleanup_close_ int fd = klp_open_file(path, err);
	if (fd < 0 || klp_check_fd(fd, path, err) < 0)
		return -1;
	return klp_read_fd(fd, path, text, err);
}

int kl_policy_load_file(const char *path, struct kl_policy **out, struct strvec *warnings, struct kl_error *err)
{
	_cleanup_free_ char *text = NULL;
	*out = NULL;
	if (klp_read_file(path, &text, err) < 0)
		return -1;
	return kl_policy_load_string(text, path, out, warnings, err);
}

enum kl_on_error kl_policy_file_on_error(const char *path)
{
	struct kl_error err = KL_ERROR_INIT;
	_cleanup_free_ char *text = NULL;
	if (klp_read_file(path, &text, &err) < 0)
		return KL_ON_ERROR_PASSTHROUGH;
	struct klp_diags d = { 0 };
	struct kl_policy *p = klp_parse(text, path, &d);
	enum kl_on_error e = p->g.on_error;
	klp_diags_free(&d);
	kl_policy_free(p);
	return e;
}
