/* SPDX-License-Identifier: GPL-2.0-or-later */
/* One -device: the properties that matter for a disk (driver, id, drive,
 * write-cache, share-rw), and setting write-cache.  JSON `{...}` when the
 * argument starts with '{' (as QEMU decides), else QemuOpts with the implied
 * key "driver". */
#ifndef KL_LAUNCHER_DEVICE_H
#define KL_LAUNCHER_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include "common/error.h"
#include "launcher/argv/keyval.h"
#include "launcher/argv/rewrite.h"

struct kl_device {
	size_t argi;                /* position of the value in the QEMU arguments */
	bool json;
	struct kl_jdoc doc;
	struct kl_kv kv;
	const char *driver;
	const char *id;             /* NULL if none */
	const char *drive;          /* the drive= property; NULL if none */
	int write_cache;            /* 1 on, 0 off, -1 absent or auto */
	bool share_rw;
	bool cdrom;                 /* ide-cd, scsi-cd */
	bool has_write_cache;       /* the driver has a write-cache property (checked on QEMU 7.2) */
};

int kl_device_parse(const char *arg, size_t argi, struct kl_device *d, struct kl_error *err);
void kl_device_free(struct kl_device *d);

/* The argument with write-cache=on/off (JSON "write-cache":"on"), or *out =
 * NULL when it already says so. */
int kl_device_set_write_cache(const struct kl_device *d, bool on, char **out, struct kl_error *err);

#endif
