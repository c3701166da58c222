/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The hard rules: whatever the policy says, these hold.  Applied in order
 * after the policy's choice; each change leaves a reason; none can fail.
 *
 *   1. aio=native only with O_DIRECT (cache none or directsync).
 *   2. O_DIRECT refused by the storage: none -> writeback, directsync ->
 *      writethrough; then 1 again.
 *   3. io_uring only where the kernel and QEMU have it; native only where
 *      libaio works and fs.aio-nr has headroom.
 *   4. Shared storage or an incoming migration: no host-cache mode that was
 *      not given, unless the rule says allow-host-cache = yes.  On an
 *      incoming migration the guest-visible write cache is never turned on
 *      when the command line had it off.
 *   5. unsafe only when the rule names it; shareable disks keep O_DIRECT.
 *   6. Read-only and CD-ROM media never get native.
 *   7. Network backends get no aio.
 *   8. (decide.c) An unknown backend stays as given unless a user rule names
 *      backend = unknown; then only 1-4 and 7 correct what QEMU would refuse.
 */
#include "policy/policy-int.h"

#include <stdio.h>
#include <string.h>

static enum kl_aio fallback_engine(const struct klp_ctx *c)
{
	return klp_io_uring_usable(c->host) ? KL_AIO_IO_URING : KL_AIO_THREADS;
}

static enum kl_cache eff_cache(enum kl_cache c)
{
	return c == KL_CACHE_UNSET ? KL_CACHE_WRITEBACK : c;
}

/* Rule 1. */
static void native_needs_direct(struct klp_ctx *c)
{
	if (c->aio != KL_AIO_NATIVE || klp_cache_direct(c->cache))
		return;
	enum kl_aio to = fallback_engine(c);
	bool from_cmdline = c->given_aio == KL_AIO_NATIVE && c->given_cache == c->cache;
	klp_reason(c, "aio=native needs O_DIRECT, which cache=%s does not use%s: %s instead",
		   klp_cache_words(c->cache), from_cmdline ? " (QEMU would refuse the command line as given)" : "",
		   kl_aio_name(to));
	c->aio = to;
}

static const char *storage_words(const struct klp_ctx *c, char *buf, size_t n)
{
	if (c->facts->fs[0])
		snprintf(buf, n, "filesystem %s", c->facts->fs);
	else if (c->facts->backend == KL_BACKEND_BLOCK)
		snprintf(buf, n, "the block device");
	else
		snprintf(buf, n, "the storage");
	return buf;
}

/* Rule 2. */
static void odirect_refused(struct klp_ctx *c)
{
	char where[64];
	if (c->facts->odirect != KL_TRI_NO || !klp_cache_direct(c->cache))
		return;
	enum kl_cache to = klp_cache_host_twin(c->cache);
	klp_reason(c, "%s refuses O_DIRECT: %s -> %s keeps the guest's write cache and flush semantics",
		   storage_words(c, where, sizeof where), kl_cache_name(c->cache), kl_cache_name(to));
	c->cache = to;
	native_needs_direct(c);
}

/* Rule 3. */
static void engines_available(struct klp_ctx *c)
{
	const struct kl_host_facts *h = c->host;
	if (c->aio == KL_AIO_IO_URING && klp_io_uring_refused(h)) {
		bool native = klp_cache_direct(c->cache) && c->facts->odirect != KL_TRI_NO && klp_libaio_ok(h);
		enum kl_aio to = native ? KL_AIO_NATIVE : KL_AIO_THREADS;
		klp_reason(c, "io_uring is not usable (%s): %s instead",
			   h->io_uring_kernel == KL_TRI_NO ? "the kernel refuses it" : "QEMU is built without it",
			   kl_aio_name(to));
		c->aio = to;
	}
	if (c->aio == KL_AIO_NATIVE && !klp_libaio_ok(h)) {
		enum kl_aio to = fallback_engine(c);
		if (h->libaio == KL_TRI_NO)
			klp_reason(c, "libaio is not usable on this host: %s instead of native", kl_aio_name(to));
		else
			klp_reason(c, "fs.aio-nr (%ld) is too close to fs.aio-max-nr (%ld): another libaio context "
				   "could fail to start the VM: %s instead of native", h->aio_nr, h->aio_max_nr,
				   kl_aio_name(to));
		c->aio = to;
	}
}

/* Rule 4. */
static void migration_safe(struct klp_ctx *c)
{
	bool incoming = c->vm->incoming, shared = c->facts->shared == KL_TRI_YES;
	char why[128];

	if (!incoming && !shared)
		return;
	if (klp_cache_direct(c->cache) || eff_cache(c->cache) == eff_cache(c->given_cache))
		return;
	if (shared && incoming)
		snprintf(why, sizeof why, "the disk is on shared storage and the VM is receiving a migration");
	else if (shared)
		snprintf(why, sizeof why, "the disk is on shared storage%s%s%s", c->facts->fs[0] ? " (" : "",
			 c->facts->fs, c->facts->fs[0] ? ")" : "");
	else
		snprintf(why, sizeof why, "the VM is receiving a migration");

	if (c->rule && c->rule->allow_host_cache) {
		klp_reason(c, "%s, and the rule allows a host-cache mode (allow-host-cache = yes): cache=%s", why,
			   kl_cache_name(c->cache));
		return;
	}
	if (klp_cache_direct(c->given_cache)) {
		/* O_DIRECT stays; the guest-visible write cache is the rule's. */
		enum kl_cache to = klp_cache_direct_twin(c->cache);
		bool refused = c->facts->odirect == KL_TRI_NO;
		klp_reason(c, "%s: libvirt judged migration safety on cache=%s, so O_DIRECT stays: %s rather than %s "
			   "(a rule with allow-host-cache = yes permits that)%s", why, kl_cache_name(c->given_cache),
			   kl_cache_name(to), kl_cache_name(c->cache),
			   refused ? "; the storage refuses O_DIRECT, so QEMU will likely fail to open the disk" : "");
		c->cache = to;
	} else {
		klp_reason(c, "%s: the given %s stays rather than becoming another host-cache mode, %s "
			   "(a rule with allow-host-cache = yes permits that)", why, klp_cache_words(c->given_cache),
			   kl_cache_name(c->cache));
		c->cache = c->given_cache;
	}
}

/* Rule 4, second half.  The guest of an incoming migration learnt its write
 * cache flag on the source.  A guest that believes in write-through sends no
 * flushes, so turning the cache on under it loses data on a host crash
 * (seen through virsh save/restore); turning it off only costs speed. */
static void incoming_keeps_write_through(struct klp_ctx *c)
{
	if (!c->vm->incoming || kl_cache_flags(c->given_cache).writeback || !kl_cache_flags(c->cache).writeback)
		return;
	enum kl_cache to = klp_cache_direct(c->cache) ? KL_CACHE_DIRECTSYNC : KL_CACHE_WRITETHROUGH;
	klp_reason(c, "the VM is receiving a migration and its guest was given a write-through cache (cache=%s): "
		   "%s keeps it, rather than %s", kl_cache_name(c->given_cache), kl_cache_name(to),
		   kl_cache_name(c->cache));
	c->cache = to;
}

/* Rule 5. */
static void no_unsafe_no_shared_cache(struct klp_ctx *c)
{
	const struct klp_rule *r = c->rule;
	if (c->cache == KL_CACHE_UNSAFE && c->given_cache != KL_CACHE_UNSAFE &&
	    !(r && r->origin != KLP_BUILTIN && r->cache == KL_CACHE_UNSAFE)) {
		klp_reason(c, "cache=unsafe ignores the guest's flushes and is used only where a rule names it: "
			   "writeback instead");
		c->cache = KL_CACHE_WRITEBACK;
	}
	if (!c->given->shareable || klp_cache_direct(c->cache))
		return;
	if (c->facts->odirect == KL_TRI_NO) {
		if (klp_cache_direct(c->given_cache)) {
			klp_reason(c, "shareable disk: the host page cache is not coherent with the other VMs writing it, "
				   "so cache=%s stays although the storage refuses O_DIRECT", kl_cache_name(c->given_cache));
			c->cache = c->given_cache;
		} else {
			klp_reason(c, "shareable disk with cache=%s: the host page cache is not coherent with the other "
				   "VMs writing it, but the storage refuses O_DIRECT", klp_cache_words(c->cache));
		}
		return;
	}
	enum kl_cache to = klp_cache_direct_twin(c->cache);
	klp_reason(c, "shareable disk: the host page cache is not coherent with the other VMs writing it: %s -> %s",
		   klp_cache_words(c->cache), kl_cache_name(to));
	c->cache = to;
}

/* Rule 6. */
static void readonly_no_native(struct klp_ctx *c)
{
	if (c->aio != KL_AIO_NATIVE || !(c->given->readonly || c->given->cdrom))
		return;
	enum kl_aio to = fallback_engine(c);
	klp_reason(c, "%s media do not get native AIO: %s instead", c->given->cdrom ? "CD-ROM" : "read-only",
		   kl_aio_name(to));
	c->aio = to;
}

/* Rule 7. */
static void network_no_aio(struct klp_ctx *c)
{
	if (!c->network || c->aio == KL_AIO_UNSET)
		return;
	const char *drv = c->given->driver && *c->given->driver ? c->given->driver : c->facts->network_driver;
	klp_reason(c, "network driver %s takes no aio setting", drv && *drv ? drv : "(unknown)");
	c->aio = KL_AIO_UNSET;
}

void klp_apply_hard_rules(struct klp_ctx *c, bool only_fixes)
{
	native_needs_direct(c);
	odirect_refused(c);
	engines_available(c);
	migration_safe(c);
	incoming_keeps_write_through(c);
	if (!only_fixes) {
		no_unsafe_no_shared_cache(c);
		readonly_no_native(c);
	}
	network_no_aio(c);
}
