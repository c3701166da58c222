/* SPDX-License-Identifier: GPL-2.0-or-later */
/* --check-policy: every error and warning of a policy file, one line each,
 * "FILE:LINE: message" (warnings "FILE:LINE: warning: message"). */
#include "policy/policy-int.h"

#include <stdlib.h>
#include "common/cleanup.h"

int kl_policy_check(const char *path, struct strvec *diagnostics)
{
	struct kl_error e = KL_ERROR_INIT;
	_cleanup_free_ char *text = NULL;
	int errors = 0;

	_cleanup_close_ int fd = klp_open_file(path, &e);
	if (fd < 0) {
		strvec_push_dup(diagnostics, e.msg);
		return 1; /* missing or unreadable: nothing more to say */
	}
	/* A refused file is still read, for its other diagnostics: it is never used. */
	if (klp_check_fd(fd, path, &e) < 0) {
		strvec_push_dup(diagnostics, e.msg);
		if (e.errnum)
			return 1;
		errors++;
	}
	kl_error_clear(&e);
	if (klp_read_fd(fd, path, &text, &e) < 0) {
		strvec_push_dup(diagnostics, e.msg);
		return errors + 1;
	}

	struct klp_diags d = { 0 };
	struct kl_policy *p = klp_parse(text, path, &d);
	klp_diags_sort(&d);
	for (size_t i = 0; i < d.n; i++)
		strvec_push(diagnostics, klp_diag_format(&d, &d.v[i], true));
	errors += (int)d.errors;
	klp_diags_free(&d);
	kl_policy_free(p);
	return errors;
}
