/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/top.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "common/xalloc.h"

extern char **environ;

char *kl_top_program(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			char *p = xasprintf("%s/kvm-launch-top", self);
			if (access(p, X_OK) == 0)
				return p;
			free(p);
		}
	}
	return xstrdup(KL_PKGLIBDIR "/kvm-launch-top");
}

int kl_top_main(const char *state_dir, const char *interval)
{
	char *prog = kl_top_program();
	struct strvec argv = STRVEC_INIT;

	strvec_push_dup(&argv, prog);
	if (interval) {
		strvec_push_dup(&argv, "--interval");
		strvec_push_dup(&argv, interval);
	}
	if (state_dir) {
		strvec_push_dup(&argv, "--state-dir");
		strvec_push_dup(&argv, state_dir);
	}
	fflush(NULL);
	execve(prog, strvec_terminate(&argv), environ);
	kl_err("--top: cannot run %s: %s", prog, strerror(errno));
	strvec_free(&argv);
	free(prog);
	return 1;
}
