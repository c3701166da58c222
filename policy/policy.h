/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The policy table: ordered rules (first match wins; the built-in defaults
 * come after the user's), global settings, and the decision engine with its
 * hard safety rules.  Pure: no QEMU, no I/O besides reading the policy file. */
#ifndef KL_POLICY_POLICY_H
#define KL_POLICY_POLICY_H

#include <stdbool.h>
#include "common/error.h"
#include "common/strbuf.h"
#include "policy/types.h"

enum kl_on_error { KL_ON_ERROR_PASSTHROUGH = 0, KL_ON_ERROR_REFUSE };

struct kl_policy_globals {
	char *qemu;          /* real QEMU path; NULL = not set */
	char *state_dir;     /* NULL = not set */
	char *cache_dir;     /* probe/calibration cache; NULL = not set */
	enum kl_on_error on_error;
	bool monitor_relay;  /* monitor-relay = on: relay the management monitors (default on) */
};

struct kl_policy;

/* A policy holding only the built-in default rules. */
struct kl_policy *kl_policy_builtin(void);
/* Parse a policy file / text.  Errors are "NAME:LINE: message".  Warnings
 * (unknown-but-harmless things, rules that can never match) go to warnings
 * if not NULL.  On several errors err holds the first, with a count.  The
 * grammar is in kvm-launch.conf(5). */
int kl_policy_load_file(const char *path, struct kl_policy **out, struct strvec *warnings, struct kl_error *err);
int kl_policy_load_string(const char *text, const char *name, struct kl_policy **out,
			  struct strvec *warnings, struct kl_error *err);
void kl_policy_free(struct kl_policy *p);
const struct kl_policy_globals *kl_policy_globals(const struct kl_policy *p);

/* The on-error setting of a file that may not load: its "on-error =" line if
 * that line is valid, whatever errors the rest has (passthrough if none, or
 * if the file cannot be read).  So that a typo elsewhere does not turn an
 * operator's "refuse" into passthrough. */
enum kl_on_error kl_policy_file_on_error(const char *path);

/* Refuse a policy file others can write (or owned by another user than root)
 * when we run as root, as sudo does.  0 ok, -1 refused/unreadable (err set).
 * In fact checked whatever user we run as (qemu = chooses what we exec): the
 * file, and every directory above it (also through symlinks), must be owned
 * by root or by our euid, and writable by no other user nor by a group other
 * than root's (sticky directories such as /tmp are fine). */
int kl_policy_check_file_safety(const char *path, struct kl_error *err);

/* --check-policy: every error and warning, one line each, in line order,
 * appended to diagnostics: "FILE:LINE: message" for errors, "FILE:LINE:
 * warning: message" for warnings, "FILE: message" for the file as a whole
 * (including kl_policy_check_file_safety's refusal).  Returns the number of
 * errors (0 = valid). */
int kl_policy_check(const char *path, struct strvec *diagnostics);

/* Decide aio and cache for one disk.  Fills out (caller frees with
 * kl_decision_free).  Never fails: a disk the policy cannot handle is left
 * as given, with a reason.  out->aio / out->cache are UNSET exactly when that
 * setting stays as given (an absent setting counts as QEMU's default:
 * writeback, threads), so changed == (aio or cache not UNSET); network disks
 * always get aio UNSET.  p NULL means the built-in rules.  vm, facts and host
 * may be NULL (nothing known).  Reasons are sentences for operators; the
 * probe notes in facts->notes are not copied into them. */
void kl_decide(const struct kl_policy *p, const struct kl_vm_context *vm, const struct kl_disk_given *given,
	       const struct kl_disk_facts *facts, const struct kl_host_facts *host, struct kl_decision *out);

/* What QEMU runs the disk with after the decision: the decided value, else
 * the given one, else QEMU's default (kl_aio_effective, kl_cache_effective).
 * The aio of a disk that takes none (network) means nothing. */
enum kl_aio kl_decision_aio(const struct kl_disk_given *given, const struct kl_decision *d);
enum kl_cache kl_decision_cache(const struct kl_disk_given *given, const struct kl_decision *d);

/* The rule table, in matching order: the file's rules ("user:NAME", or
 * nova's "nova:file", "nova:block", "nova:network"), then the built-in ones
 * ("default:..."). */
size_t kl_policy_rule_count(const struct kl_policy *p);
const char *kl_policy_rule_name(const struct kl_policy *p, size_t i);  /* NULL past the end */
size_t kl_policy_user_rule_count(const struct kl_policy *p);           /* rules from the file */
/* The file was nova's disk_cachemodes form. */
bool kl_policy_is_nova(const struct kl_policy *p);

#endif
