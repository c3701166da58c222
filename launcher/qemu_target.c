/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/qemu_target.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/xalloc.h"

#define PREFIX "qemu-system-"

static const char *last_component(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/* A target name as QEMU and Debian spell them: letters, digits, '_', '-' (x86_64, aarch64, s390x, and
 * Debian's x86_64-microvm build). */
static size_t target_len(const char *s)
{
	size_t n = 0;
	while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_' || s[n] == '-')
		n++;
	return n;
}

const char *kl_qemu_target_of_name(const char *name)
{
	if (!name)
		return NULL;
	const char *base = last_component(name);
	if (strncmp(base, PREFIX, strlen(PREFIX)) != 0)
		return NULL;
	const char *t = base + strlen(PREFIX);
	size_t n = target_len(t);
	return n > 0 && t[n] == '\0' ? t : NULL;
}

char *kl_qemu_for_target(const char *configured, const char *invoked_as)
{
	const char *target = kl_qemu_target_of_name(invoked_as);
	const char *base = last_component(configured);
	if (!target || strncmp(base, PREFIX, strlen(PREFIX)) != 0)
		return xstrdup(configured);
	const char *old = base + strlen(PREFIX);
	size_t old_n = target_len(old);
	/* Only a whole target followed by nothing or a '.' suffix: never a name we do not understand. */
	if (old_n == 0 || (old[old_n] != '\0' && old[old_n] != '.'))
		return xstrdup(configured);
	if (old_n == strlen(target) && strncmp(old, target, old_n) == 0)
		return xstrdup(configured);
	return xasprintf("%.*s%s%s", (int)(old - configured), configured, target, old + old_n);
}

char *kl_qemu_invoked_as(const char *argv0)
{
	char *cur = xstrdup(argv0 ? argv0 : "");
	for (int hop = 0; hop < 8; hop++) {
		char buf[PATH_MAX];
		ssize_t n = readlink(cur, buf, sizeof(buf) - 1);
		if (n <= 0)
			break;
		buf[n] = '\0';
		if (!kl_qemu_target_of_name(buf))
			break;
		char *next = buf[0] == '/' ? xstrdup(buf)
					   : xasprintf("%.*s%s", (int)(last_component(cur) - cur), cur, buf);
		free(cur);
		cur = next;
	}
	return cur;
}

char *kl_qemu_for_kvm_name(const char *invoked_as)
{
	if (!invoked_as || strcmp(last_component(invoked_as), "kvm") != 0)
		return NULL;
	char *real = strchr(invoked_as, '/')
			     ? xasprintf("%.*skvm.distrib", (int)(last_component(invoked_as) - invoked_as), invoked_as)
			     : xstrdup("/usr/bin/kvm.distrib");
	struct stat st;
	if (stat(real, &st) == 0 && S_ISREG(st.st_mode))
		return real;
	free(real);
	return NULL;
}
