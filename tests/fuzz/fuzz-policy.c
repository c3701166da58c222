/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Fuzz target: the policy file parser (policy/parse.c, keys.c, nova.c,
 * lint.c), the --check-policy diagnostics, and the decision engine
 * (policy/decide.c, hardrules.c, autosel.c) on a few disks.  The input is
 * the policy text.
 *
 * Invariants (a broken one aborts): every diagnostic names the file; a
 * policy that loads decides for every disk, and the decision keeps the hard
 * rules: changed == (aio or cache decided), no aio on a network disk, no
 * aio=native without O_DIRECT in what QEMU will run, no O_DIRECT mode on a
 * backend that refuses O_DIRECT, no io_uring where the host refuses it,
 * no aio=native on read-only media. */
#include "fuzz.h"

#include "policy/policy.h"
#include "policy/policy-int.h"
#include "policy/types.h"

#define FUZZ_MAX_INPUT 65536

static bool direct(enum kl_cache c)
{
	return c == KL_CACHE_NONE || c == KL_CACHE_DIRECTSYNC;
}

static void facts_set(struct kl_disk_facts *f, int k)
{
	memset(f, 0, sizeof *f);
	switch (k) {
	case 0: /* LVM volume */
		f->backend = KL_BACKEND_BLOCK;
		f->block_kind = KL_BLOCK_LVM;
		f->rotational = KL_TRI_NO;
		f->odirect = KL_TRI_YES;
		f->preallocated = KL_TRI_YES;
		f->shared = KL_TRI_NO;
		break;
	case 1: /* sparse qcow2 on ext4 */
		f->backend = KL_BACKEND_FILE;
		strcpy(f->fs, "ext4");
		strcpy(f->format, "qcow2");
		f->odirect = KL_TRI_YES;
		f->preallocated = KL_TRI_NO;
		f->shared = KL_TRI_NO;
		break;
	case 2: /* old tmpfs: no O_DIRECT */
		f->backend = KL_BACKEND_FILE;
		strcpy(f->fs, "tmpfs");
		strcpy(f->format, "raw");
		f->odirect = KL_TRI_NO;
		f->preallocated = KL_TRI_YES;
		break;
	case 3: /* NFS */
		f->backend = KL_BACKEND_FILE;
		strcpy(f->fs, "nfs");
		strcpy(f->format, "raw");
		f->odirect = KL_TRI_YES;
		f->shared = KL_TRI_YES;
		break;
	case 4: /* rbd */
		f->backend = KL_BACKEND_NETWORK;
		strcpy(f->network_driver, "rbd");
		break;
	default: /* nothing known */
		break;
	}
}

/* The given settings vary with v; the driver and path fit the facts k. */
static void given_set(struct kl_disk_given *g, int k, int v)
{
	static const char *const drivers[] = { "host_device", "file", "file", "file", "rbd", NULL };
	memset(g, 0, sizeof *g);
	g->id = "virtio-disk0";
	g->node = "libvirt-1-format";
	g->path = k == 4 ? "rbd:pool/img" : "/var/lib/images/disk0";
	g->driver = drivers[k % 6];
	g->format = k == 1 ? "qcow2" : "raw";
	switch (v % 3) {
	case 0: break;
	case 1: g->aio = KL_AIO_NATIVE; g->cache = KL_CACHE_NONE; break;
	case 2: g->aio = KL_AIO_THREADS; g->cache = KL_CACHE_WRITETHROUGH; g->readonly = true; g->cdrom = true; break;
	}
	g->shareable = k == 3;
}

static void host_set(struct kl_host_facts *h, int k)
{
	memset(h, 0, sizeof *h);
	h->io_uring_kernel = k ? KL_TRI_YES : KL_TRI_NO;
	h->io_uring_qemu = k == 2 ? KL_TRI_NO : KL_TRI_YES;
	h->libaio = KL_TRI_YES;
	h->libaio_headroom = k == 1 ? KL_TRI_NO : KL_TRI_YES;
	h->aio_nr = 0;
	h->aio_max_nr = 65536;
}

static void decide_all(const struct kl_policy *p)
{
	static const struct kl_vm_context vms[] = { { "web1", false }, { NULL, true } };
	for (int fk = 0; fk < 6; fk++) {
		for (int hk = 0; hk < 3; hk++) {
			struct kl_disk_facts f;
			struct kl_disk_given g;
			struct kl_host_facts h;
			facts_set(&f, fk);
			given_set(&g, fk, fk + hk);
			host_set(&h, hk);
			const struct kl_vm_context *vm = &vms[(fk + hk) % 2];
			struct kl_decision d;
			memset(&d, 0, sizeof d);
			kl_decide(p, vm, &g, &f, &h, &d);
			FUZZ_CHECK(d.changed == (d.aio != KL_AIO_UNSET || d.cache != KL_CACHE_UNSET));
			FUZZ_CHECK(d.aio == KL_AIO_UNSET || (d.aio >= KL_AIO_THREADS && d.aio <= KL_AIO_IO_URING));
			FUZZ_CHECK(d.cache == KL_CACHE_UNSET ||
				   (d.cache >= KL_CACHE_WRITEBACK && d.cache <= KL_CACHE_UNSAFE));
			FUZZ_CHECK(memchr(d.rule, '\0', sizeof d.rule) != NULL);
			if (f.backend == KL_BACKEND_NETWORK)
				FUZZ_CHECK(d.aio == KL_AIO_UNSET);
			if (d.changed && f.backend != KL_BACKEND_NETWORK && kl_decision_aio(&g, &d) == KL_AIO_NATIVE)
				FUZZ_CHECK(direct(kl_decision_cache(&g, &d)));
			if (f.odirect == KL_TRI_NO && d.cache != KL_CACHE_UNSET)
				FUZZ_CHECK(!direct(d.cache));
			if (h.io_uring_kernel == KL_TRI_NO || h.io_uring_qemu == KL_TRI_NO)
				FUZZ_CHECK(d.aio != KL_AIO_IO_URING);
			if (g.readonly)
				FUZZ_CHECK(d.aio != KL_AIO_NATIVE);
			kl_decision_free(&d);
			kl_disk_facts_free(&f);
			kl_host_facts_free(&h);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_quiet();
	if (size > FUZZ_MAX_INPUT)
		return 0;
	char *text = fuzz_cstr(data, size);

	/* What --check-policy prints. */
	struct klp_diags d = { 0 };
	struct kl_policy *p = klp_parse(text, "fuzz.conf", &d);
	FUZZ_CHECK(p != NULL);
	klp_diags_sort(&d);
	for (size_t i = 0; i < d.n; i++) {
		char *m = klp_diag_format(&d, &d.v[i], true);
		FUZZ_CHECK(strncmp(m, "fuzz.conf:", 10) == 0);
		free(m);
	}
	size_t errors = d.errors;
	klp_diags_free(&d);
	kl_policy_free(p);

	/* What a launch loads. */
	struct strvec warnings = STRVEC_INIT;
	struct kl_error err = KL_ERROR_INIT;
	struct kl_policy *lp = NULL;
	int r = kl_policy_load_string(text, "fuzz.conf", &lp, &warnings, &err);
	FUZZ_CHECK((r == 0) == (errors == 0));
	if (r == 0) {
		FUZZ_CHECK(lp != NULL);
		const struct kl_policy_globals *gl = kl_policy_globals(lp);
		FUZZ_CHECK(!gl->qemu || gl->qemu[0] == '/');
		for (size_t i = 0; i < kl_policy_rule_count(lp); i++)
			FUZZ_CHECK(kl_policy_rule_name(lp, i) != NULL);
		FUZZ_CHECK(kl_policy_rule_name(lp, kl_policy_rule_count(lp)) == NULL);
		(void)kl_policy_is_nova(lp);
		decide_all(lp);
		kl_policy_free(lp);
	} else {
		FUZZ_CHECK(lp == NULL && err.set);
	}
	strvec_free(&warnings);
	free(text);
	return 0;
}
