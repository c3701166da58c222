/* SPDX-License-Identifier: GPL-2.0-or-later */
/* kl_decide: first matching rule -> its actions made concrete -> hard rules
 * -> what to change.  Pure and allocation-light: it runs once per disk on
 * every VM start. */
#include "policy/policy-int.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static struct kl_policy *builtin;
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

static void make_builtin(void)
{
	builtin = kl_policy_builtin();
}

static enum kl_aio concrete_aio(enum kl_aio a)
{
	return a == KL_AIO_THREADS || a == KL_AIO_NATIVE || a == KL_AIO_IO_URING ? a : KL_AIO_UNSET;
}

static enum kl_cache concrete_cache(enum kl_cache c)
{
	return c >= KL_CACHE_WRITEBACK && c <= KL_CACHE_UNSAFE ? c : KL_CACHE_UNSET;
}

static bool is_network(const struct kl_disk_given *g, const struct kl_disk_facts *f)
{
	static const char *const drivers[] = { "nbd", "rbd", "iscsi", "gluster", "ssh", "http", "https",
					       "ftp", "ftps", "nfs", "curl", "vxhs", "libssh" };
	if (f->backend == KL_BACKEND_NETWORK)
		return true;
	if (g->driver)
		for (size_t i = 0; i < sizeof drivers / sizeof *drivers; i++)
			if (!strcmp(g->driver, drivers[i]))
				return true;
	return false;
}

/* Rule 8: may this rule change a disk whose backend is unknown? */
static bool names_unknown_backend(const struct klp_rule *r)
{
	return r->origin == KLP_USER && (r->m.keys & (1u << KLP_M_BACKEND)) &&
	       (r->m.mask[KLP_M_BACKEND] & (1u << KL_BACKEND_UNKNOWN));
}

void kl_decide(const struct kl_policy *p, const struct kl_vm_context *vm, const struct kl_disk_given *given,
	       const struct kl_disk_facts *facts, const struct kl_host_facts *host, struct kl_decision *out)
{
	static const struct kl_vm_context no_vm;
	static const struct kl_disk_given no_given;
	static const struct kl_disk_facts no_facts;
	static const struct kl_host_facts no_host = { .aio_nr = -1, .aio_max_nr = -1 };
	struct klp_subject s;

	if (!p) {
		pthread_once(&builtin_once, make_builtin);
		p = builtin;
	}
	vm = vm ? vm : &no_vm;
	given = given ? given : &no_given;
	facts = facts ? facts : &no_facts;
	host = host ? host : &no_host;
	memset(out, 0, sizeof *out);

	struct klp_ctx c = {
		.vm = vm, .given = given, .facts = facts, .host = host, .out = out,
		.given_aio = concrete_aio(given->aio),
		.given_cache = concrete_cache(given->cache),
		.network = is_network(given, facts),
	};
	c.aio = c.given_aio;
	c.cache = c.given_cache;

	klp_subject_init(&s, vm, given, facts);
	for (size_t i = 0; i < p->n; i++)
		if (klp_rule_matches(&p->rules[i], &s)) {
			c.rule = &p->rules[i];
			break;
		}

	if (!c.rule) {
		/* The built-in rules cover every backend; a table without them
		 * leaves the disk alone. */
		snprintf(out->rule, sizeof out->rule, "none");
		klp_reason(&c, "no rule matched: aio and cache left as given");
		klp_apply_hard_rules(&c, true);
	} else {
		snprintf(out->rule, sizeof out->rule, "%s", c.rule->name);
		if (facts->backend == KL_BACKEND_UNKNOWN && c.rule->origin != KLP_BUILTIN &&
		    !names_unknown_backend(c.rule)) {
			klp_reason(&c, "backend unknown: rule \"%s\" matched, but only a rule that says backend = unknown "
				   "changes such a disk: aio and cache left as given", strchr(c.rule->name, ':') + 1);
			klp_apply_hard_rules(&c, true);
		} else if (facts->backend == KL_BACKEND_UNKNOWN && c.rule->origin == KLP_BUILTIN) {
			klp_resolve_actions(&c); /* the built-in rule keeps both */
			klp_apply_hard_rules(&c, true);
		} else {
			klp_resolve_actions(&c);
			klp_apply_hard_rules(&c, false);
		}
		if (c.rule->has_throttle) {
			out->throttle = c.rule->throttle;
			out->has_throttle = true;
		}
	}

	/* UNSET = leave as given: whatever equals the given setting (QEMU's
	 * default for an absent one) is not rewritten. */
	enum kl_cache ec = c.cache == KL_CACHE_UNSET ? KL_CACHE_WRITEBACK : c.cache;
	enum kl_cache egc = c.given_cache == KL_CACHE_UNSET ? KL_CACHE_WRITEBACK : c.given_cache;
	out->cache = c.cache == KL_CACHE_UNSET || ec == egc ? KL_CACHE_UNSET : c.cache;
	if (c.network) {
		out->aio = KL_AIO_UNSET;
	} else {
		enum kl_aio ea = c.aio == KL_AIO_UNSET ? KL_AIO_THREADS : c.aio;
		enum kl_aio ega = c.given_aio == KL_AIO_UNSET ? KL_AIO_THREADS : c.given_aio;
		out->aio = c.aio == KL_AIO_UNSET || ea == ega ? KL_AIO_UNSET : c.aio;
	}
	out->changed = out->aio != KL_AIO_UNSET || out->cache != KL_CACHE_UNSET;
}

enum kl_aio kl_decision_aio(const struct kl_disk_given *given, const struct kl_decision *d)
{
	return kl_aio_effective(d->aio != KL_AIO_UNSET ? d->aio : given->aio);
}

enum kl_cache kl_decision_cache(const struct kl_disk_given *given, const struct kl_decision *d)
{
	return kl_cache_effective(d->cache != KL_CACHE_UNSET ? d->cache : given->cache);
}
