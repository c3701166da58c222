/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "policy/types.h"

#include <stddef.h>
#include <string.h>

static const char *const aio_names[] = {
	[KL_AIO_UNSET] = "", [KL_AIO_THREADS] = "threads", [KL_AIO_NATIVE] = "native",
	[KL_AIO_IO_URING] = "io_uring", [KL_AIO_AUTO] = "auto", [KL_AIO_KEEP] = "keep",
};

static const char *const cache_names[] = {
	[KL_CACHE_UNSET] = "", [KL_CACHE_WRITEBACK] = "writeback", [KL_CACHE_NONE] = "none",
	[KL_CACHE_WRITETHROUGH] = "writethrough", [KL_CACHE_DIRECTSYNC] = "directsync",
	[KL_CACHE_UNSAFE] = "unsafe", [KL_CACHE_AUTO] = "auto", [KL_CACHE_KEEP] = "keep",
};

#define FIELD(f) (int)offsetof(struct kl_throttle, f)
const struct kl_throttle_key kl_throttle_keys[KL_THROTTLE_NKEYS] = {
	{ "bps", true, FIELD(bps) }, { "bps_rd", true, FIELD(bps_rd) }, { "bps_wr", true, FIELD(bps_wr) },
	{ "iops", false, FIELD(iops) }, { "iops_rd", false, FIELD(iops_rd) }, { "iops_wr", false, FIELD(iops_wr) },
	{ "bps_max", true, FIELD(bps_max) }, { "bps_rd_max", true, FIELD(bps_rd_max) },
	{ "bps_wr_max", true, FIELD(bps_wr_max) }, { "iops_max", false, FIELD(iops_max) },
	{ "iops_rd_max", false, FIELD(iops_rd_max) }, { "iops_wr_max", false, FIELD(iops_wr_max) },
	{ "bps_max_length", false, -1 }, { "bps_rd_max_length", false, -1 }, { "bps_wr_max_length", false, -1 },
	{ "iops_max_length", false, -1 }, { "iops_rd_max_length", false, -1 }, { "iops_wr_max_length", false, -1 },
	{ "iops_size", true, FIELD(iops_size) },
};
#undef FIELD

int kl_throttle_key_find(const char *name)
{
	for (size_t i = 0; i < KL_THROTTLE_NKEYS; i++)
		if (strcmp(name, kl_throttle_keys[i].name) == 0)
			return (int)i;
	return -1;
}

int64_t *kl_throttle_field(struct kl_throttle *t, size_t i)
{
	if (i >= KL_THROTTLE_NKEYS || kl_throttle_keys[i].field < 0)
		return NULL;
	return (int64_t *)((char *)t + kl_throttle_keys[i].field);
}

static const char *const block_kind_names[] = {
	[KL_BLOCK_NONE] = "", [KL_BLOCK_OTHER] = "other", [KL_BLOCK_LVM] = "lvm",
	[KL_BLOCK_DM] = "dm", [KL_BLOCK_LOOP] = "loop", [KL_BLOCK_NVME] = "nvme",
	[KL_BLOCK_MD] = "md", [KL_BLOCK_RBD] = "rbd", [KL_BLOCK_NBD] = "nbd",
	[KL_BLOCK_SCSI] = "scsi", [KL_BLOCK_VIRTIO] = "virtio",
};

const char *kl_aio_name(enum kl_aio aio)
{
	return (unsigned)aio < sizeof aio_names / sizeof *aio_names ? aio_names[aio] : "";
}

const char *kl_cache_name(enum kl_cache cache)
{
	return (unsigned)cache < sizeof cache_names / sizeof *cache_names ? cache_names[cache] : "";
}

enum kl_aio kl_aio_effective(enum kl_aio aio)
{
	return aio == KL_AIO_THREADS || aio == KL_AIO_NATIVE || aio == KL_AIO_IO_URING ? aio : KL_AIO_THREADS;
}

enum kl_cache kl_cache_effective(enum kl_cache cache)
{
	return cache >= KL_CACHE_WRITEBACK && cache <= KL_CACHE_UNSAFE ? cache : KL_CACHE_WRITEBACK;
}

const char *kl_block_kind_name(enum kl_block_kind k)
{
	return (unsigned)k < sizeof block_kind_names / sizeof *block_kind_names ? block_kind_names[k] : "";
}

const char *kl_backend_name(enum kl_backend b)
{
	switch (b) {
	case KL_BACKEND_BLOCK: return "block";
	case KL_BACKEND_FILE: return "file";
	case KL_BACKEND_NETWORK: return "network";
	default: return "unknown";
	}
}

int kl_aio_parse(const char *s, enum kl_aio *out)
{
	for (unsigned i = 1; i < sizeof aio_names / sizeof *aio_names; i++)
		if (strcmp(s, aio_names[i]) == 0) {
			*out = (enum kl_aio)i;
			return 0;
		}
	return -1;
}

int kl_cache_parse(const char *s, enum kl_cache *out)
{
	for (unsigned i = 1; i < sizeof cache_names / sizeof *cache_names; i++)
		if (strcmp(s, cache_names[i]) == 0) {
			*out = (enum kl_cache)i;
			return 0;
		}
	return -1;
}

struct kl_cache_flags kl_cache_flags(enum kl_cache cache)
{
	switch (cache) {
	case KL_CACHE_NONE: return (struct kl_cache_flags){ true, true, false };
	case KL_CACHE_WRITETHROUGH: return (struct kl_cache_flags){ false, false, false };
	case KL_CACHE_DIRECTSYNC: return (struct kl_cache_flags){ false, true, false };
	case KL_CACHE_UNSAFE: return (struct kl_cache_flags){ true, false, true };
	default: return (struct kl_cache_flags){ true, false, false };
	}
}

enum kl_cache kl_cache_from_flags(struct kl_cache_flags f)
{
	if (f.no_flush)
		return f.writeback && !f.direct ? KL_CACHE_UNSAFE : KL_CACHE_UNSET;
	if (f.writeback)
		return f.direct ? KL_CACHE_NONE : KL_CACHE_WRITEBACK;
	return f.direct ? KL_CACHE_DIRECTSYNC : KL_CACHE_WRITETHROUGH;
}

void kl_disk_facts_free(struct kl_disk_facts *f)
{
	strvec_free(&f->notes);
}

void kl_host_facts_free(struct kl_host_facts *h)
{
	strvec_free(&h->notes);
}

void kl_decision_free(struct kl_decision *d)
{
	strvec_free(&d->reasons);
}
