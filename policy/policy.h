/* The policy table: ordered rules (first match wins; the built-in defaults
 * come after the user's), global settings, and the decision engine with its
 * hard safety rules.  Pure: no QEMU, no I/O besides reading the policy file. */
#ifndef KL_POLICY_POLICY_H
#define KL_POLICY_POLICY_H

#include <stdbool.h>
#include "../common/error.h"
#include "../common/strbuf.h"
#include "types.h"

enum kl_on_error { KL_ON_ERROR_PASSTHROUGH = 0, KL_ON_ERROR_REFUSE };

struct kl_policy_globals {
	char *qemu;          /* real QEMU path; NULL = not set */
	char *state_dir;     /* NULL = not set */
	char *cache_dir;     /* probe/calibration cache; NULL = not set */
	enum kl_on_error on_error;
};

struct kl_policy;

/* A policy holding only the built-in default rules. */
struct kl_policy *kl_policy_builtin(void);
/* Parse a policy file / text.  Errors are "NAME:LINE: message".  Warnings
 * (unknown-but-harmless things, rules that can never match) go to warnings
 * if not NULL. */
int kl_policy_load_file(const char *path, struct kl_policy **out, struct strvec *warnings, struct kl_error *err);
int kl_policy_load_string(const char *text, const char *name, struct kl_policy **out,
			  struct strvec *warnings, struct kl_error *err);
void kl_policy_free(struct kl_policy *p);
const struct kl_policy_globals *kl_policy_globals(const struct kl_policy *p);

/* Refuse a policy file others can write (or owned by another user than root)
 * when we run as root, as sudo does.  0 ok, -1 refused/unreadable (err set). */
int kl_policy_check_file_safety(const char *path, struct kl_error *err);

/* --check-policy: every error and warning, one "FILE:LINE: ..." line each,
 * appended to diagnostics.  Returns the number of errors (0 = valid). */
int kl_policy_check(const char *path, struct strvec *diagnostics);

/* Decide aio and cache for one disk.  Fills out (caller frees with
 * kl_decision_free).  Never fails: a disk the policy cannot handle is left
 * as given, with a reason. */
void kl_decide(const struct kl_policy *p, const struct kl_vm_context *vm, const struct kl_disk_given *given,
	       const struct kl_disk_facts *facts, const struct kl_host_facts *host, struct kl_decision *out);

#endif
