/* SPDX-License-Identifier: GPL-2.0-or-later */
/* One -device: parse, and set write-cache.  See device.h. */
#include "launcher/argv/device.h"

#include <stdlib.h>
#include <string.h>
#include "common/strbuf.h"
#include "common/xalloc.h"

/* Drivers with the write-cache property (`-device DRIVER,help` on QEMU
 * 7.2).  scsi-block, scsi-generic, sd-card and cfi.pflash01 have none. */
static const char *const write_cache_drivers[] = {
	"virtio-blk-pci", "virtio-blk-pci-transitional", "virtio-blk-pci-non-transitional",
	"virtio-blk-device", "virtio-blk-ccw", "virtio-blk", "ide-hd", "ide-cd", "scsi-hd", "scsi-cd",
	"usb-storage", "floppy", "nvme", "nvme-ns", NULL,
};

static bool in_list(const char *s, const char *const *list)
{
	for (; s && *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

void kl_device_free(struct kl_device *d)
{
	if (!d)
		return;
	if (d->json)
		kl_jdoc_free(&d->doc);
	else
		kl_kv_free(&d->kv);
}

static int on_off_auto(const char *v, int *out)
{
	if (strcmp(v, "on") == 0)
		*out = 1;
	else if (strcmp(v, "off") == 0)
		*out = 0;
	else if (strcmp(v, "auto") == 0)
		*out = -1;
	else
		return -1;
	return 0;
}

int kl_device_parse(const char *arg, size_t argi, struct kl_device *d, struct kl_error *err)
{
	memset(d, 0, sizeof *d);
	d->argi = argi;
	d->write_cache = -1;
	const char *wc = NULL;
	bool share = false;
	int share_given = 0;

	if (arg[0] == '{') {
		d->json = true;
		if (kl_jdoc_parse(arg, &d->doc, err) < 0) {
			kl_error_prefix(err, "-device argument %zu", argi + 1);
			return -1;
		}
		const struct kl_jvalue *o = d->doc.root;
		static const char *const str_keys[] = { "driver", "id", "drive", "write-cache" };
		for (size_t i = 0; i < 4; i++) {
			const struct kl_jvalue *v = kl_jdoc_get(o, str_keys[i]);
			if (v && v->type != KL_J_STRING)
				return kl_error_fail(err, "-device argument %zu: '%s' must be a string", argi + 1,
						     str_keys[i]);
		}
		d->driver = kl_jdoc_get_str(o, "driver");
		d->id = kl_jdoc_get_str(o, "id");
		d->drive = kl_jdoc_get_str(o, "drive");
		wc = kl_jdoc_get_str(o, "write-cache");
		share_given = kl_jdoc_get_bool(o, "share-rw", &share);
	} else {
		if (kl_kv_parse(arg, KL_KV_QEMUOPTS, "driver", &d->kv, err) < 0) {
			kl_error_prefix(err, "-device argument %zu", argi + 1);
			return -1;
		}
		d->driver = kl_kv_get(&d->kv, "driver");
		d->id = kl_kv_get(&d->kv, "id");
		d->drive = kl_kv_get(&d->kv, "drive");
		wc = kl_kv_get(&d->kv, "write-cache");
		const char *s = kl_kv_get(&d->kv, "share-rw");
		if (s)
			share_given = kl_kv_parse_bool(s, &share) == 0 ? 1 : -1;
	}
	if (!d->driver || !*d->driver)
		return kl_error_fail(err, "-device argument %zu: no driver", argi + 1);
	if (wc && on_off_auto(wc, &d->write_cache) < 0)
		return kl_error_fail(err, "-device argument %zu: write-cache '%s' is not on, off or auto", argi + 1, wc);
	if (share_given < 0)
		return kl_error_fail(err, "-device argument %zu: share-rw is not a boolean", argi + 1);
	d->share_rw = share_given == 1 && share;
	d->cdrom = strcmp(d->driver, "ide-cd") == 0 || strcmp(d->driver, "scsi-cd") == 0;
	d->has_write_cache = wc || in_list(d->driver, write_cache_drivers);
	return 0;
}

int kl_device_set_write_cache(const struct kl_device *d, bool on, char **out, struct kl_error *err)
{
	const char *v = on ? "on" : "off";
	*out = NULL;
	if (d->json) {
		static const char *const after[] = { "bootindex", "id", "drive", NULL };
		struct kl_jedit e;
		kl_jedit_init(&e, &d->doc);
		char *text = xasprintf("\"%s\"", v);
		bool changed = kl_jedit_set(&e, d->doc.root, "write-cache", text, after, false);
		free(text);
		int r = changed ? kl_jedit_apply(&e, out, err) : 0;
		kl_jedit_free(&e);
		return r;
	}
	struct kl_kv kv;
	kl_kv_copy(&kv, &d->kv);
	ssize_t anchor = kl_kv_find(&kv, "bootindex");
	if (anchor < 0)
		anchor = kl_kv_find(&kv, "id");
	if (anchor < 0)
		anchor = kl_kv_find(&kv, "drive");
	kl_kv_set(&kv, "write-cache", v, anchor);
	if (kv.edited)
		*out = kl_kv_format(&kv);
	kl_kv_free(&kv);
	return 0;
}
