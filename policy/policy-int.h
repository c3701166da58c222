/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Internals of the policy module shared by its files (not for the launcher):
 * the rule table, the match keys, diagnostics, the decision context.
 *
 *   parse.c      policy text -> globals and user rules (lines, sections, keys)
 *   diag.c       errors and warnings with their lines
 *   keys.c       the key tables: match keys, actions, their values
 *   nova.c       nova's disk_cachemodes -> nova:file/block/network rules
 *   defaults.c   the built-in rules and their reasons (and the aio measurements)
 *   lint.c       warnings for rules that can never match
 *   rules.c      matching a disk against rules; rule/policy lifetime
 *   autosel.c    cache=auto/direct/host and aio=auto or an engine list
 *   hardrules.c  the safety rules applied after the policy
 *   decide.c     kl_decide: the pipeline
 *   check.c      --check-policy
 *   safety.c     who may write the policy file
 */
#ifndef KL_POLICY_INT_H
#define KL_POLICY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include "common/strbuf.h"
#include "policy/policy.h"
#include "policy/types.h"

/* Match keys.  Each is a set of accepted values (bit mask) or a glob list. */
enum klp_mkey {
	KLP_M_BACKEND,
	KLP_M_BLOCK_KIND,
	KLP_M_FS,
	KLP_M_FORMAT,
	KLP_M_PREALLOCATED,
	KLP_M_SHARED,
	KLP_M_READONLY,
	KLP_M_CDROM,
	KLP_M_SHAREABLE,
	KLP_M_DRIVER,
	KLP_M_ROTATIONAL,
	KLP_M_PATH,
	KLP_M_VM,
	KLP_M_INCOMING,
	KLP_M_ODIRECT,
	KLP_M_COW,
	KLP_M_COUNT
};

enum klp_mtype { KLP_T_BACKEND, KLP_T_BLOCK_KIND, KLP_T_BOOL, KLP_T_GLOB };

struct klp_mkey_info {
	const char *name;
	enum klp_mtype type;
};
extern const struct klp_mkey_info klp_mkeys[KLP_M_COUNT];

/* Booleans as mask bits. */
#define KLP_NO 0u
#define KLP_YES 1u

struct klp_match {
	unsigned keys;                      /* bit (1u << enum klp_mkey) per key given */
	unsigned mask[KLP_M_COUNT];         /* accepted values: bit (1u << value) */
	struct strvec globs[KLP_M_COUNT];   /* glob keys: fnmatch patterns */
	int line[KLP_M_COUNT];              /* where each key was given (0 = built in) */
};

/* The cache action beyond the concrete modes and keep/auto. */
enum klp_cache_twin {
	KLP_TWIN_NONE = 0,  /* cache is a concrete mode, keep, or unset */
	KLP_TWIN_AUTO,      /* direct twin if the storage takes O_DIRECT, else host twin */
	KLP_TWIN_DIRECT,    /* none or directsync: O_DIRECT, the given write cache kept */
	KLP_TWIN_HOST,      /* writeback or writethrough: host page cache, the given write cache kept */
};

enum klp_origin { KLP_USER, KLP_NOVA, KLP_BUILTIN };

/* Which built-in explanation a rule carries (defaults.c). */
enum klp_kind {
	KLP_K_USER = 0,
	KLP_K_NOVA,
	KLP_K_UNKNOWN,
	KLP_K_CDROM,
	KLP_K_READONLY,
	KLP_K_NETWORK,
	KLP_K_BLOCK,
	KLP_K_BTRFS,
	KLP_K_SHARED,
	KLP_K_NO_ODIRECT,
	KLP_K_RAW_PREALLOC,
	KLP_K_FILE,
};

/* Action keys (bits of klp_rule.actions, for duplicate detection). */
enum klp_akey {
	KLP_A_AIO,
	KLP_A_CACHE,
	KLP_A_ALLOW_HOST_CACHE,
	KLP_A_BPS, KLP_A_BPS_RD, KLP_A_BPS_WR,
	KLP_A_IOPS, KLP_A_IOPS_RD, KLP_A_IOPS_WR,
	KLP_A_BPS_MAX, KLP_A_BPS_RD_MAX, KLP_A_BPS_WR_MAX,
	KLP_A_IOPS_MAX, KLP_A_IOPS_RD_MAX, KLP_A_IOPS_WR_MAX,
	KLP_A_IOPS_SIZE,
	KLP_A_GROUP,
	KLP_A_COUNT
};

#define KLP_MAX_ENGINES 3

struct klp_rule {
	char name[64];               /* "user:NAME", "nova:file", "default:block" */
	enum klp_origin origin;
	enum klp_kind kind;
	int line;                    /* of the [rule] header; 0 built in */
	struct klp_match m;

	unsigned actions;            /* bit (1u << enum klp_akey) per action given */
	int action_line[KLP_A_COUNT];
	/* aio: UNSET (not given: keep), a concrete engine, KEEP, or AUTO.  With
	 * AUTO, aio_list_n > 0 is the operator's order of preference ("aio =
	 * io_uring, threads"); aio_list_n == 0 is the built-in order and a
	 * calibration may reorder it. */
	enum kl_aio aio;
	enum kl_aio aio_list[KLP_MAX_ENGINES];
	size_t aio_list_n;
	/* cache: UNSET (not given: keep), a concrete mode, KEEP, or AUTO with
	 * twin saying which kind of auto. */
	enum kl_cache cache;
	enum klp_cache_twin twin;
	bool allow_host_cache;
	bool has_throttle;
	struct kl_throttle throttle;
	char nova_setting[48];       /* nova rules: "file=writeback" */
};

struct kl_policy {
	char *name;                  /* file name for messages */
	struct kl_policy_globals g;
	struct klp_rule *rules;      /* user (or nova) rules, then the built-in ones */
	size_t n, cap;
	size_t n_user;               /* rules before the built-in ones */
	bool nova;                   /* a nova disk_cachemodes policy */
};

/* rules.c */
struct klp_rule *klp_policy_add_rule(struct kl_policy *p);
void klp_rule_free(struct klp_rule *r);
void klp_match_free(struct klp_match *m);
struct kl_policy *klp_policy_new(const char *name);

/* What one disk is, in match-key terms (built once per decision). */
struct klp_subject {
	unsigned known;                    /* bit per key whose value is known */
	unsigned val[KLP_M_COUNT];         /* enum / bool keys */
	const char *str[KLP_M_COUNT];      /* glob keys */
};
void klp_subject_init(struct klp_subject *s, const struct kl_vm_context *vm, const struct kl_disk_given *given,
		      const struct kl_disk_facts *facts);
bool klp_rule_matches(const struct klp_rule *r, const struct klp_subject *s);
/* Every disk b matches, a matches too (the simple, per-key cases). */
bool klp_match_covers(const struct klp_match *a, const struct klp_match *b);

/* Diagnostics of one parse, sorted by line before they are handed out. */
struct klp_diag {
	int line;                    /* 0: about the file as a whole */
	bool warning;
	char *msg;
	size_t seq;                  /* order found, for a stable sort */
};
struct klp_diags {
	const char *name;
	struct klp_diag *v;
	size_t n, cap;
	size_t errors;
};
void klp_diag_add(struct klp_diags *d, int line, bool warning, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void klp_diags_sort(struct klp_diags *d);
void klp_diags_free(struct klp_diags *d);
/* "NAME:LINE: msg", or with "warning: " before msg when with_tag. */
char *klp_diag_format(const struct klp_diags *d, const struct klp_diag *x, bool with_tag);

/* parse.c: everything in one pass; returns the policy even with errors
 * (d->errors says) so that --check-policy sees all of them. */
struct kl_policy *klp_parse(const char *text, const char *name, struct klp_diags *d);
/* load/safety.c: open a policy file (O_NONBLOCK, following symlinks), and
 * run kl_policy_check_file_safety's checks on that open fd. */
int klp_open_file(const char *path, struct kl_error *err);
int klp_check_fd(int fd, const char *path, struct kl_error *err);
/* load/load.c: read an open policy file (regular, at most 1 MiB, no NUL
 * bytes); klp_read_file opens, checks (klp_check_fd) and reads, in one open. */
int klp_read_fd(int fd, const char *path, char **text, struct kl_error *err);
int klp_read_file(const char *path, char **text, struct kl_error *err);

/* keys.c */
int klp_mkey_lookup(const char *key);                      /* enum klp_mkey or -1 */
int klp_akey_lookup(const char *key);                      /* enum klp_akey or -1 */
/* Set a match key / action from its text; -1 with *msg (malloc'd) on error. */
int klp_set_match(struct klp_match *m, int key, const char *value, int line, char **msg);
int klp_set_action(struct klp_rule *r, int key, const char *value, int line, char **msg);
/* Rule-level checks after the last key (throttle consistency); -1 with *msg. */
int klp_check_actions(const struct klp_rule *r, char **msg);
const char *klp_akey_name(int key);
/* "a, b, c" -> items (trimmed); -1 with *msg on an empty item. */
int klp_split_list(const char *value, struct strvec *out, char **msg);
/* "yes"/"no" (true/false, on/off); -1 if neither. */
int klp_parse_bool(const char *s, bool *out);
/* A suggestion for a mistyped key ("block_kind" -> "block-kind"), or NULL. */
const char *klp_suggest_key(const char *key);

/* nova.c: parse "file=writeback,block=none" into rules; diagnostics at line. */
int klp_nova_rules(struct kl_policy *p, const char *value, int line, struct klp_diags *d);

/* defaults.c */
void klp_add_defaults(struct kl_policy *p);
struct klp_ctx;
/* The sentence that explains why a built-in rule chose what it did. */
char *klp_default_reason(const struct klp_rule *r, const struct klp_ctx *c);

/* lint.c: warnings about rules that can never match. */
void klp_lint(const struct kl_policy *p, struct klp_diags *d);

/* The decision in progress. */
struct klp_ctx {
	const struct kl_vm_context *vm;
	const struct kl_disk_given *given;
	const struct kl_disk_facts *facts;
	const struct kl_host_facts *host;
	const struct klp_rule *rule;       /* NULL: none matched */
	enum kl_aio given_aio;             /* concrete or UNSET */
	enum kl_cache given_cache;         /* concrete or UNSET */
	enum kl_aio aio;                   /* the candidate: concrete or UNSET */
	enum kl_cache cache;
	bool network;
	struct kl_decision *out;
};

/* autosel.c */
bool klp_io_uring_usable(const struct kl_host_facts *h);   /* kernel YES and QEMU not NO */
bool klp_io_uring_refused(const struct kl_host_facts *h);  /* kernel NO or QEMU NO */
bool klp_libaio_ok(const struct kl_host_facts *h);         /* libaio and its headroom not NO */
bool klp_cache_direct(enum kl_cache c);                    /* UNSET counts as writeback */
enum kl_cache klp_cache_direct_twin(enum kl_cache given);
enum kl_cache klp_cache_host_twin(enum kl_cache given);
/* Resolve the rule's cache and aio actions into c->cache / c->aio. */
void klp_resolve_actions(struct klp_ctx *c);
/* A human name for a cache value: "none", "the default (writeback)". */
const char *klp_cache_words(enum kl_cache c);
const char *klp_aio_words(enum kl_aio a);

/* hardrules.c: in order; rules 1-3 only when only_fixes. */
void klp_apply_hard_rules(struct klp_ctx *c, bool only_fixes);

#define klp_reason(c, ...) strvec_pushf(&(c)->out->reasons, __VA_ARGS__)

#endif
