/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The built-in rules.  They come after the user's rules (first match wins)
 * and are written out, as a policy file, in contrib/kvm-launch.conf.example
 * (tests/unit/test-policy.c checks the two decide alike).
 *
 * cache: "auto"/"direct"/"host" keep the guest-visible write cache as given
 * (none or directsync with O_DIRECT, writeback or writethrough through the
 * host page cache), so a guest given writethrough keeps a write-through disk.
 *
 * aio: the built-in order of aio=auto is io_uring, native, threads (see
 * autosel.c).  Measured on the reference host (Linux 6.18, 2 vCPUs, virtio
 * disk under ext4; tests/bench/aio-engines.sh: 4 KiB random reads, O_DIRECT,
 * 3 s per run, median of 5 runs, IOPS):
 *
 *                                   QD 8              QD 32
 *                               libaio  io_uring   libaio  io_uring
 *   preallocated file on ext4   43 939   45 781    59 174   59 924
 *   loop device (direct-io=on)  42 011   44 721    61 944   64 498
 *
 * io_uring's median was ahead in every configuration (1 to 7 %), by less
 * than the spread between runs (10 to 20 %), and it used less CPU per I/O
 * (QD 32 on the loop device: 2.0-2.1 us against 2.45 us of the benchmark's
 * own time).  So io_uring first; native second (it also needs O_DIRECT and
 * an io_setup() context from fs.aio-max-nr); threads last.
 *
 * Sparse raw and qcow2 images never get native: io_submit() blocks while a
 * write allocates blocks, stalling the vCPU or iothread that submitted it. */
#include "policy/policy-int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/xalloc.h"

struct kv {
	const char *key, *value;
};

static const struct {
	const char *name;
	enum klp_kind kind;
	struct kv match[3];
	const char *cache, *aio;
} defaults[] = {
	{ "default:cdrom", KLP_K_CDROM, { { "cdrom", "yes" } }, "keep", "keep" },
	{ "default:readonly", KLP_K_READONLY, { { "readonly", "yes" } }, "keep", "keep" },
	{ "default:network", KLP_K_NETWORK, { { "backend", "network" } }, "keep", "keep" },
	{ "default:block", KLP_K_BLOCK, { { "backend", "block" } }, "auto", "auto" },
	/* A NOCOW file (chattr +C) keeps no data checksums and is written in
	 * place: it falls through to the rules for other files. */
	{ "default:btrfs", KLP_K_BTRFS, { { "backend", "file" }, { "fs", "btrfs" }, { "cow", "yes" } }, "host", "threads" },
	{ "default:shared", KLP_K_SHARED, { { "backend", "file" }, { "shared", "yes" } }, "direct", "auto" },
	{ "default:no-odirect", KLP_K_NO_ODIRECT, { { "backend", "file" }, { "odirect", "no" } }, "host", "auto" },
	{ "default:raw-preallocated", KLP_K_RAW_PREALLOC,
	  { { "backend", "file" }, { "format", "raw" }, { "preallocated", "yes" } }, "auto", "auto" },
	{ "default:file", KLP_K_FILE, { { "backend", "file" } }, "auto", "io_uring, threads" },
	/* Last: the rules above all need a known backend (or are cdrom/readonly,
	 * which keep everything anyway). */
	{ "default:unknown", KLP_K_UNKNOWN, { { "backend", "unknown" } }, "keep", "keep" },
};

void klp_add_defaults(struct kl_policy *p)
{
	for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++) {
		struct klp_rule *r = klp_policy_add_rule(p);
		char *msg = NULL;
		snprintf(r->name, sizeof r->name, "%s", defaults[i].name);
		r->origin = KLP_BUILTIN;
		r->kind = defaults[i].kind;
		for (size_t k = 0; k < 3 && defaults[i].match[k].key; k++)
			if (klp_set_match(&r->m, klp_mkey_lookup(defaults[i].match[k].key), defaults[i].match[k].value, 0,
					  &msg) < 0)
				goto bug;
		if (klp_set_action(r, KLP_A_CACHE, defaults[i].cache, 0, &msg) < 0 ||
		    klp_set_action(r, KLP_A_AIO, defaults[i].aio, 0, &msg) < 0)
			goto bug;
		continue;
bug:
		fprintf(stderr, "kvm-launch: built-in rule %s: %s\n", defaults[i].name, msg);
		abort();
	}
}

/* What the chosen cache does, in a phrase. */
static const char *cache_phrase(enum kl_cache c)
{
	switch (c) {
	case KL_CACHE_NONE: return "O_DIRECT with the guest's write cache";
	case KL_CACHE_DIRECTSYNC: return "O_DIRECT, write-through as given";
	case KL_CACHE_WRITETHROUGH: return "the host page cache, write-through as given";
	default: return "the host page cache";
	}
}

static const char *image_words(const struct klp_ctx *c)
{
	const char *fmt = c->given->format && *c->given->format ? c->given->format : c->facts->format;
	if (!strcmp(fmt, "raw"))
		return c->facts->preallocated == KL_TRI_NO ? "sparse raw image" : "raw image";
	if (!*fmt)
		return "image";
	return NULL;
}

char *klp_default_reason(const struct klp_rule *r, const struct klp_ctx *c)
{
	const struct kl_disk_facts *f = c->facts;
	const char *fs = f->fs[0] ? f->fs : "an unknown filesystem";
	const char *cache = kl_cache_name(c->cache), *aio = kl_aio_name(c->aio);
	bool direct = klp_cache_direct(c->cache);

	switch (r->kind) {
	case KLP_K_UNKNOWN:
		return xstrdup("backend unknown (it could not be probed): aio and cache left as given");
	case KLP_K_CDROM:
		return xstrdup("CD-ROM media: aio and cache left as given");
	case KLP_K_READONLY:
		return xstrdup("read-only disk: aio and cache left as given");
	case KLP_K_NETWORK: {
		const char *drv = c->given->driver && *c->given->driver ? c->given->driver : f->network_driver;
		return xasprintf("network disk (%s): QEMU's driver talks to the storage itself and takes no aio; "
				 "cache left as given", *drv ? drv : "driver unknown");
	}
	case KLP_K_BLOCK: {
		const char *kind = f->block_kind != KL_BLOCK_NONE ? kl_block_kind_name(f->block_kind) : "kind unknown";
		if (!direct)
			return xasprintf("block device (%s) refuses O_DIRECT: cache=%s (%s), aio=%s", kind, cache,
					 cache_phrase(c->cache), aio);
		if (c->aio == KL_AIO_THREADS)
			return xasprintf("block device (%s): O_DIRECT avoids the host page cache; threads, as no "
					 "asynchronous engine fits (cache=%s)", kind, cache);
		return xasprintf("block device (%s): O_DIRECT with %s avoids the host page cache and a thread pool "
				 "(cache=%s, aio=%s)", kind, c->aio == KL_AIO_NATIVE ? "native AIO" : "io_uring", cache,
				 aio);
	}
	case KLP_K_BTRFS:
		return xasprintf("copy-on-write image on btrfs: %s with threads, since O_DIRECT on btrfs can fail "
				 "data checksums when a guest changes a buffer that is being written (cache=%s, aio=%s)",
				 cache_phrase(c->cache), cache, aio);
	case KLP_K_SHARED:
		return xasprintf("image on shared filesystem %s: O_DIRECT, so that no host keeps stale or unwritten "
				 "data in its page cache when the VM migrates (cache=%s, aio=%s)", fs, cache, aio);
	case KLP_K_NO_ODIRECT: {
		char where[48];
		snprintf(where, sizeof where, "%s%s", f->fs[0] ? "filesystem " : "the filesystem", f->fs);
		if (klp_cache_direct(c->given_cache))
			return xasprintf("%s refuses O_DIRECT: %s -> %s keeps the guest's write cache and flush semantics "
					 "(aio=%s)", where, kl_cache_name(c->given_cache), cache, aio);
		return xasprintf("%s refuses O_DIRECT: cache=%s, through the host page cache (aio=%s)", where, cache,
				 aio);
	}
	case KLP_K_RAW_PREALLOC:
		return xasprintf("preallocated raw image on %s: writes never allocate, so %s%s runs without "
				 "blocking (cache=%s, aio=%s)", fs, direct ? "O_DIRECT with " : "",
				 kl_aio_name(c->aio), cache, aio);
	case KLP_K_FILE: {
		const char *what = image_words(c);
		const char *fmt = c->given->format && *c->given->format ? c->given->format : f->format;
		char buf[48];
		if (!what) {
			snprintf(buf, sizeof buf, "%s image", fmt);
			what = buf;
		}
		return xasprintf("%s on %s: %s, and no native AIO, which blocks while a write allocates blocks "
				 "(cache=%s, aio=%s)", what, fs, direct ? "O_DIRECT" : cache_phrase(c->cache), cache,
				 aio);
	}
	default:
		return xasprintf("built-in rule %s (cache=%s, aio=%s)", r->name, cache, aio);
	}
}
