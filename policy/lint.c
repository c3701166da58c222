/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Warnings for rules that can never match: contradictory match keys, and a
 * rule every disk of which an earlier rule already takes (first match wins). */
#include "policy/policy-int.h"

#include <string.h>

#define BIT(b) (1u << (b))

/* The backend a protocol driver implies (0: cannot tell). */
static unsigned driver_backends(const char *drv)
{
	static const char *const network[] = { "nbd", "rbd", "iscsi", "gluster", "ssh", "http", "https", "ftp",
					       "ftps", "nfs", "curl", "vxhs", "libssh" };
	if (strpbrk(drv, "*?[\\"))
		return 0;
	if (!strcmp(drv, "file"))
		return BIT(KL_BACKEND_FILE);
	if (!strcmp(drv, "host_device"))
		return BIT(KL_BACKEND_BLOCK);
	for (size_t i = 0; i < sizeof network / sizeof *network; i++)
		if (!strcmp(drv, network[i]))
			return BIT(KL_BACKEND_NETWORK);
	return 0;
}

static const char *short_name(const struct klp_rule *r)
{
	const char *c = strchr(r->name, ':');
	return c ? c + 1 : r->name;
}

static void contradictions(const struct klp_rule *r, struct klp_diags *d)
{
	const struct klp_match *m = &r->m;
	unsigned be = m->mask[KLP_M_BACKEND];
	bool has_be = m->keys & BIT(KLP_M_BACKEND);

	if (!has_be)
		return;
	if ((m->keys & BIT(KLP_M_BLOCK_KIND)) && !(be & BIT(KL_BACKEND_BLOCK)))
		klp_diag_add(d, r->line, true,
			     "rule \"%s\" can never match: block-kind applies only to block devices, and backend "
			     "excludes block", short_name(r));
	if ((m->keys & BIT(KLP_M_FS)) && !(be & ~BIT(KL_BACKEND_NETWORK)))
		klp_diag_add(d, r->line, true,
			     "rule \"%s\" can never match: a network backend is on no filesystem (fs)", short_name(r));
	if ((m->keys & BIT(KLP_M_DRIVER)) && !(be & BIT(KL_BACKEND_UNKNOWN))) {
		const struct strvec *g = &m->globs[KLP_M_DRIVER];
		unsigned implied = 0;
		size_t i;
		for (i = 0; i < g->n; i++) {
			unsigned b = driver_backends(g->v[i]);
			if (!b)
				break;
			implied |= b;
		}
		if (i == g->n && !(implied & be))
			klp_diag_add(d, r->line, true,
				     "rule \"%s\" can never match: its drivers belong to another backend than %s",
				     short_name(r), be == BIT(KL_BACKEND_BLOCK) ? "block"
				     : be == BIT(KL_BACKEND_FILE) ? "file"
				     : be == BIT(KL_BACKEND_NETWORK) ? "network" : "the ones given");
	}
	if (be == BIT(KL_BACKEND_NETWORK) && (r->actions & BIT(KLP_A_AIO)) && r->aio != KL_AIO_KEEP)
		klp_diag_add(d, r->action_line[KLP_A_AIO], true,
			     "rule \"%s\": aio has no effect on network backends (QEMU's network drivers take no aio)",
			     short_name(r));
}

void klp_lint(const struct kl_policy *p, struct klp_diags *d)
{
	for (size_t i = 0; i < p->n; i++) {
		const struct klp_rule *r = &p->rules[i];
		if (r->origin != KLP_USER || r->line <= 0)
			continue;
		contradictions(r, d);
		for (size_t j = 0; j < i; j++) {
			const struct klp_rule *e = &p->rules[j];
			if (e->origin != KLP_USER || e->line <= 0)
				continue;
			if (klp_match_covers(&e->m, &r->m)) {
				klp_diag_add(d, r->line, true,
					     "rule \"%s\" can never match: rule \"%s\" (line %d) comes first and takes "
					     "every disk it would", short_name(r), short_name(e), e->line);
				break;
			}
		}
	}
}
