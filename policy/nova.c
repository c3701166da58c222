/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Nova compatibility: a policy holding only nova's
 *
 *   [libvirt]
 *   disk_cachemodes = file=writeback,block=none,network=writeback
 *
 * means what it means to nova (nova/virt/libvirt/driver.py): _set_cache_mode
 * looks up the libvirt <disk type=...> of each disk in that map and, when
 * found, sets its <driver cache=...>.  Nova's disk types map onto our
 * backends: "file" is an image file (qcow2/raw under instances_path, NFS and
 * other file-based volumes), "block" is a host block device (LVM images,
 * iSCSI/FC volumes attached by os-brick), "network" is a disk QEMU opens
 * itself (rbd, and the other network protocols).  Nova drops an entry whose
 * mode it does not know with a warning; here that is an error, since a
 * typo would silently change the cache mode.  Nova's "default" leaves the
 * mode alone: keep.  The rules are named nova:file, nova:block and
 * nova:network; aio is chosen as aio=auto would (file, block) or left alone
 * (network), and the built-in rules follow. */
#include "policy/policy-int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/xalloc.h"

static const struct {
	const char *type;
	const char *backend;
	enum kl_aio aio;
} nova_types[] = {
	{ "file", "file", KL_AIO_AUTO },
	{ "block", "block", KL_AIO_AUTO },
	{ "network", "network", KL_AIO_KEEP },
};
#define N_TYPES (sizeof nova_types / sizeof *nova_types)

/* Nova's valid_cachemodes. */
static int nova_mode(const char *s, enum kl_cache *out)
{
	static const char *const modes[] = { "default", "none", "writethrough", "writeback", "directsync", "unsafe" };
	for (size_t i = 0; i < sizeof modes / sizeof *modes; i++)
		if (!strcmp(s, modes[i])) {
			if (i == 0)
				*out = KL_CACHE_KEEP;
			else
				kl_cache_parse(s, out);
			return 0;
		}
	return -1;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	char *e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return s;
}

int klp_nova_rules(struct kl_policy *p, const char *value, int line, struct klp_diags *d)
{
	enum kl_cache mode[N_TYPES];
	char setting[N_TYPES][48];  /* as written, for the reasons: "file=none" */
	bool given[N_TYPES] = { false };
	_cleanup_strvec_ struct strvec items = STRVEC_INIT;
	char *msg = NULL;
	size_t errors = d->errors;

	if (klp_split_list(value, &items, &msg) < 0) {
		klp_diag_add(d, line, false, "disk_cachemodes: %s", msg);
		free(msg);
		return -1;
	}
	for (size_t i = 0; i < items.n; i++) {
		char *item = items.v[i], *eq = strchr(item, '=');
		if (!eq) {
			klp_diag_add(d, line, false, "disk_cachemodes: \"%s\" is not TYPE=MODE (for example file=none)",
				     item);
			continue;
		}
		*eq = '\0';
		char *type = trim(item), *m = trim(eq + 1);
		size_t t;
		for (t = 0; t < N_TYPES; t++)
			if (!strcmp(type, nova_types[t].type))
				break;
		if (t == N_TYPES) {
			klp_diag_add(d, line, false, "disk_cachemodes: unknown disk type \"%s\" (file, block, network)",
				     type);
			continue;
		}
		enum kl_cache c;
		if (nova_mode(m, &c) < 0) {
			klp_diag_add(d, line, false,
				     "disk_cachemodes: unknown cache mode \"%s\" for %s "
				     "(default, none, writethrough, writeback, directsync, unsafe)", m, type);
			continue;
		}
		if (given[t])
			klp_diag_add(d, line, true, "disk_cachemodes: %s is given twice: the last (%s) wins, as in nova",
				     type, m);
		given[t] = true;
		mode[t] = c;
		snprintf(setting[t], sizeof setting[t], "%s=%.32s", nova_types[t].type, m);
	}
	if (d->errors != errors)
		return -1;

	for (size_t t = 0; t < N_TYPES; t++) {
		if (!given[t])
			continue;
		struct klp_rule *r = klp_policy_add_rule(p);
		snprintf(r->name, sizeof r->name, "nova:%s", nova_types[t].type);
		r->origin = KLP_NOVA;
		r->kind = KLP_K_NOVA;
		r->line = line;
		if (klp_set_match(&r->m, KLP_M_BACKEND, nova_types[t].backend, line, &msg) < 0)
			abort(); /* a fixed, valid value */
		r->cache = mode[t];
		r->aio = nova_types[t].aio;
		r->actions = (1u << KLP_A_AIO) | (1u << KLP_A_CACHE);
		memcpy(r->nova_setting, setting[t], sizeof r->nova_setting);
	}
	return 0;
}
