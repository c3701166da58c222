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

	if (kl_policy_check_file_safety(path, &e) < 0) {
		strvec_push_dup(diagnostics, e.msg);
		if (e.errnum)
			return 1; /* missing or unreachable: nothing more to say */
		errors++;
	}
	kl_error_clear(&e);
	if (klp_read_file(path, &text, &e) < 0) {
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
