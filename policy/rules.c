/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The rule table: lifetime, and matching one disk against a rule. */
#include "policy/policy-int.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include "common/xalloc.h"

struct kl_policy *klp_policy_new(const char *name)
{
	struct kl_policy *p = xcalloc(1, sizeof *p);
	p->name = xstrdup(name ? name : "policy");
	p->g.on_error = KL_ON_ERROR_PASSTHROUGH;
	p->g.monitor_relay = true;
	return p;
}

struct klp_rule *klp_policy_add_rule(struct kl_policy *p)
{
	XGROW(p->rules, p->n, p->cap, 16);
	struct klp_rule *r = &p->rules[p->n++];
	memset(r, 0, sizeof *r);
	return r;
}

void klp_match_free(struct klp_match *m)
{
	for (int i = 0; i < KLP_M_COUNT; i++)
		strvec_free(&m->globs[i]);
}

void klp_rule_free(struct klp_rule *r)
{
	klp_match_free(&r->m);
}

void kl_policy_free(struct kl_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++)
		klp_rule_free(&p->rules[i]);
	free(p->rules);
	free(p->g.qemu);
	free(p->g.state_dir);
	free(p->g.cache_dir);
	free(p->name);
	free(p);
}

const struct kl_policy_globals *kl_policy_globals(const struct kl_policy *p)
{
	return &p->g;
}

struct kl_policy *kl_policy_builtin(void)
{
	struct kl_policy *p = klp_policy_new("built-in");
	klp_add_defaults(p);
	return p;
}

size_t kl_policy_rule_count(const struct kl_policy *p)
{
	return p->n;
}

const char *kl_policy_rule_name(const struct kl_policy *p, size_t i)
{
	return i < p->n ? p->rules[i].name : NULL;
}

size_t kl_policy_user_rule_count(const struct kl_policy *p)
{
	return p->n_user;
}

bool kl_policy_is_nova(const struct kl_policy *p)
{
	return p->nova;
}

static void set_bool(struct klp_subject *s, int key, bool v)
{
	s->known |= 1u << key;
	s->val[key] = v ? KLP_YES : KLP_NO;
}

static void set_tri(struct klp_subject *s, int key, enum kl_tri t)
{
	if (t != KL_TRI_UNKNOWN)
		set_bool(s, key, t == KL_TRI_YES);
}

static void set_str(struct klp_subject *s, int key, const char *v)
{
	if (v && *v) {
		s->known |= 1u << key;
		s->str[key] = v;
	}
}

void klp_subject_init(struct klp_subject *s, const struct kl_vm_context *vm, const struct kl_disk_given *given,
		      const struct kl_disk_facts *facts)
{
	memset(s, 0, sizeof *s);
	s->known |= 1u << KLP_M_BACKEND;
	s->val[KLP_M_BACKEND] = (unsigned)facts->backend;
	if (facts->backend == KL_BACKEND_BLOCK && facts->block_kind != KL_BLOCK_NONE) {
		s->known |= 1u << KLP_M_BLOCK_KIND;
		s->val[KLP_M_BLOCK_KIND] = (unsigned)facts->block_kind;
	}
	set_str(s, KLP_M_FS, facts->fs);
	/* The format QEMU will use: the one given, else what the header says. */
	set_str(s, KLP_M_FORMAT, given->format && *given->format ? given->format : facts->format);
	set_tri(s, KLP_M_PREALLOCATED, facts->preallocated);
	set_tri(s, KLP_M_SHARED, facts->shared);
	set_bool(s, KLP_M_READONLY, given->readonly);
	set_bool(s, KLP_M_CDROM, given->cdrom);
	set_bool(s, KLP_M_SHAREABLE, given->shareable);
	set_str(s, KLP_M_DRIVER, given->driver && *given->driver ? given->driver : facts->network_driver);
	set_tri(s, KLP_M_ROTATIONAL, facts->rotational);
	set_str(s, KLP_M_PATH, given->path);
	set_str(s, KLP_M_VM, vm->name);
	set_bool(s, KLP_M_INCOMING, vm->incoming);
	set_tri(s, KLP_M_ODIRECT, facts->odirect);
	set_tri(s, KLP_M_COW, facts->cow);
}

bool klp_rule_matches(const struct klp_rule *r, const struct klp_subject *s)
{
	unsigned keys = r->m.keys;

	/* Every key the rule gives must be known about the disk and accepted. */
	if ((keys & s->known) != keys)
		return false;
	for (int k = 0; keys; k++, keys >>= 1) {
		if (!(keys & 1u))
			continue;
		if (klp_mkeys[k].type == KLP_T_GLOB) {
			const struct strvec *g = &r->m.globs[k];
			size_t i;
			for (i = 0; i < g->n; i++)
				if (fnmatch(g->v[i], s->str[k], 0) == 0)
					break;
			if (i == g->n)
				return false;
		} else if (!(r->m.mask[k] & (1u << s->val[k]))) {
			return false;
		}
	}
	return true;
}

static bool has_wildcard(const char *s)
{
	return strpbrk(s, "*?[\\") != NULL;
}

/* Every string pattern b accepts, some pattern of a accepts: b's pattern is
 * literally one of a's, or a plain string that one of a's globs matches. */
static bool globs_cover(const struct strvec *a, const struct strvec *b)
{
	for (size_t j = 0; j < b->n; j++) {
		bool covered = false;
		for (size_t i = 0; i < a->n && !covered; i++)
			covered = strcmp(a->v[i], b->v[j]) == 0 || strcmp(a->v[i], "*") == 0 ||
				  (!has_wildcard(b->v[j]) && fnmatch(a->v[i], b->v[j], 0) == 0);
		if (!covered)
			return false;
	}
	return true;
}

bool klp_match_covers(const struct klp_match *a, const struct klp_match *b)
{
	/* a constrains a key b leaves free: b matches disks a does not. */
	if ((a->keys & b->keys) != a->keys)
		return false;
	for (int k = 0; k < KLP_M_COUNT; k++) {
		if (!(a->keys & (1u << k)))
			continue;
		if (klp_mkeys[k].type == KLP_T_GLOB) {
			if (!globs_cover(&a->globs[k], &b->globs[k]))
				return false;
		} else if ((b->mask[k] & ~a->mask[k]) != 0) {
			return false;
		}
	}
	return true;
}
