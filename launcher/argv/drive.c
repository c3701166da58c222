/* SPDX-License-Identifier: GPL-2.0-or-later */
/* One -drive: parse and rewrite.  See drive.h. */
#include "launcher/argv/drive.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "common/strbuf.h"
#include "common/xalloc.h"
#include "launcher/argv/blockdev.h"

static const char *const cache_keys[] = {
	"cache.writeback", "cache.direct", "cache.no-flush", "file.cache.direct", "file.cache.no-flush", NULL,
};

static int get_bool(struct kl_drive *d, const char *key, bool *out, struct kl_error *err)
{
	const char *v = kl_kv_get(&d->kv, key);
	if (!v)
		return 0;
	if (kl_kv_parse_bool(v, out) < 0)
		return kl_error_fail(err, "-drive argument %zu: %s=%s is not a boolean", d->argi + 1, key, v);
	return 1;
}

/* QEMU's path_has_protocol(): a ':' before any '/'. */
static size_t protocol_prefix_len(const char *file)
{
	size_t n = strcspn(file, ":/");
	return file[n] == ':' ? n : 0;
}

void kl_drive_free(struct kl_drive *d)
{
	if (!d)
		return;
	kl_kv_free(&d->kv);
	free(d->path);
	d->path = NULL;
	free(d->auto_id);
	d->auto_id = NULL;
}

int kl_drive_parse(const char *arg, size_t argi, struct kl_drive *d, struct kl_error *err)
{
	memset(d, 0, sizeof *d);
	d->argi = argi;
	if (kl_kv_parse(arg, KL_KV_QEMUOPTS, NULL, &d->kv, err) < 0) {
		kl_error_prefix(err, "-drive argument %zu", argi + 1);
		return -1;
	}
	struct kl_kv *kv = &d->kv;
	d->id = kl_kv_get(kv, "id");
	d->node_name = kl_kv_get(kv, "node-name");
	d->ifname = kl_kv_get(kv, "if");
	d->file = kl_kv_get(kv, "file");
	const char *media = kl_kv_get(kv, "media");
	d->cdrom = media && strcmp(media, "cdrom") == 0;

	bool b;
	static const char *const ro_keys[] = { "readonly", "read-only" };
	for (size_t i = 0; i < 2; i++) {
		int r = get_bool(d, ro_keys[i], &b, err);
		if (r < 0)
			return -1;
		if (r && b)
			d->readonly = true;
	}
	int r = get_bool(d, "snapshot", &b, err);
	if (r < 0)
		return -1;
	d->snapshot = r && b;

	const char *aio = kl_kv_get(kv, "file.aio");
	if (!aio)
		aio = kl_kv_get(kv, "aio");
	if (aio && kl_qemu_aio_parse(aio, &d->aio) < 0)
		return kl_error_fail(err, "-drive argument %zu: unknown aio '%s'", argi + 1, aio);

	/* Cache: cache= first, then the explicit flags win. */
	d->flags = kl_cache_flags(KL_CACHE_UNSET);
	const char *cache = kl_kv_get(kv, "cache");
	if (cache) {
		enum kl_cache mode;
		if (kl_qemu_cache_parse(cache, &mode) < 0)
			return kl_error_fail(err, "-drive argument %zu: unknown cache mode '%s'", argi + 1, cache);
		d->flags = kl_cache_flags(mode);
		d->cache_explicit = true;
	}
	static const struct { const char *key; size_t off; } flag_keys[] = {
		{ "cache.writeback", offsetof(struct kl_cache_flags, writeback) },
		{ "cache.direct", offsetof(struct kl_cache_flags, direct) },
		{ "cache.no-flush", offsetof(struct kl_cache_flags, no_flush) },
		{ "file.cache.direct", offsetof(struct kl_cache_flags, direct) },
		{ "file.cache.no-flush", offsetof(struct kl_cache_flags, no_flush) },
	};
	for (size_t i = 0; i < sizeof flag_keys / sizeof *flag_keys; i++) {
		r = get_bool(d, flag_keys[i].key, &b, err);
		if (r < 0)
			return -1;
		if (r) {
			*(bool *)((char *)&d->flags + flag_keys[i].off) = b;
			d->cache_explicit = true;
		}
	}

	/* Format and protocol. */
	const char *fmt = kl_kv_get(kv, "format");
	if (!fmt)
		fmt = kl_kv_get(kv, "driver");
	struct kl_optsrc src = { NULL, kv, "file." };
	const char *proto = kl_kv_get(kv, "file.driver");
	if (!proto && fmt && kl_driver_is_protocol(fmt)) {
		proto = fmt;
		src.prefix = "";
	} else {
		d->format = fmt;
	}
	if (!proto && d->file && *d->file) {
		size_t n = protocol_prefix_len(d->file);
		if (n)
			proto = kl_driver_for_prefix(d->file, n);  /* NULL for json: and unknown ones */
		else if (strncmp(d->file, "/dev/cdrom", 10) == 0)
			proto = "host_cdrom";
		else if (strncmp(d->file, "/dev/", 5) == 0 && strncmp(d->file, "/dev/fdset/", 11) != 0)
			proto = "host_device";
		else
			proto = "file";
	}
	d->driver = proto;
	if (d->file && *d->file) {
		size_t n = protocol_prefix_len(d->file);
		if (n && proto && kl_driver_takes_aio(proto))
			d->path = xstrdup(d->file + n + 1);
		else
			d->path = xstrdup(d->file);
	} else if (proto) {
		d->path = kl_bd_target(proto, &src);
	}
	d->takes_aio = proto && kl_driver_takes_aio(proto) && d->path;
	if (proto && strcmp(proto, "host_cdrom") == 0)
		d->cdrom = true;
	return 0;
}

int kl_drive_edit(const struct kl_drive *d, enum kl_aio aio, enum kl_cache cache, char **out,
		  struct kl_error *err)
{
	*out = NULL;
	if (aio != KL_AIO_UNSET && !d->takes_aio)
		aio = KL_AIO_UNSET;
	if (aio == KL_AIO_UNSET && cache == KL_CACHE_UNSET)
		return 0;
	enum kl_aio final_aio = aio != KL_AIO_UNSET ? aio : d->aio;
	bool final_direct = cache != KL_CACHE_UNSET ? kl_cache_flags(cache).direct : d->flags.direct;
	if (final_aio == KL_AIO_NATIVE && !final_direct)
		return kl_error_fail(err, "-drive argument %zu: refusing to write aio=native without cache.direct=on",
				     d->argi + 1);

	struct kl_kv kv;
	kl_kv_copy(&kv, &d->kv);
	if (cache != KL_CACHE_UNSET) {
		kl_kv_set(&kv, "cache", kl_cache_name(cache), -1);
		for (size_t i = 0; cache_keys[i]; i++)
			kl_kv_remove(&kv, cache_keys[i]);
	}
	if (aio != KL_AIO_UNSET) {
		bool file_aio = kl_kv_find(&kv, "file.aio") >= 0;
		if (file_aio)
			kl_kv_set(&kv, "file.aio", kl_aio_name(aio), -1);
		if (!file_aio || kl_kv_find(&kv, "aio") >= 0)
			kl_kv_set(&kv, "aio", kl_aio_name(aio), -1);
	}
	if (kv.edited)
		*out = kl_kv_format(&kv);
	kl_kv_free(&kv);
	return 0;
}
