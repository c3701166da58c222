/* SPDX-License-Identifier: GPL-2.0-or-later */
/* One -drive: what it gives, and its rewrite.
 *
 * -drive is QemuOpts (no implied key; "ro"/"noro" flags).  The keys that
 * matter: file, format/driver, if, id, node-name, media, readonly/read-only,
 * snapshot, aio (and file.aio), cache and the cache.writeback, cache.direct,
 * cache.no-flush keys that win over it (and file.cache.direct/no-flush for
 * the protocol node), file.driver.  The protocol comes from file.driver, a
 * protocol driver= (driver=nbd,...), a "PREFIX:" in file= (nbd:, rbd:,
 * iscsi:, gluster:, ssh:, http:, json:...), or the path itself (/dev/... is a
 * host device, /dev/fdset/N an fd set of regular files). */
#ifndef KL_LAUNCHER_DRIVE_H
#define KL_LAUNCHER_DRIVE_H

#include <stdbool.h>
#include <stddef.h>
#include "common/error.h"
#include "policy/types.h"
#include "launcher/argv/keyval.h"

struct kl_drive {
	size_t argi;                /* position of the value in the QEMU arguments */
	struct kl_kv kv;
	const char *id;             /* NULL if none */
	char *auto_id;              /* owned: the id QEMU gives it when id is NULL (drive-id.h) */
	const char *node_name;
	const char *ifname;         /* if=; NULL = the machine's default */
	const char *file;
	const char *format;         /* format/driver= unless that is a protocol driver */
	const char *driver;         /* protocol driver; NULL if unknown (json:, unknown prefix, no medium) */
	char *path;                 /* owned: file name without "file:", or the network target */
	bool takes_aio;
	bool readonly, snapshot, cdrom;
	enum kl_aio aio;            /* file.aio, else aio; UNSET if absent */
	bool cache_explicit;        /* cache= or a cache.* key given */
	struct kl_cache_flags flags;
};

int kl_drive_parse(const char *arg, size_t argi, struct kl_drive *d, struct kl_error *err);
void kl_drive_free(struct kl_drive *d);

/* The argument with aio/cache set (UNSET = leave): cache=MODE in place or
 * appended, cache.* keys that would contradict it removed, aio (or
 * file.aio) set only when the protocol takes it.  *out is NULL when nothing
 * changes.  Refuses to produce aio=native without O_DIRECT. */
int kl_drive_edit(const struct kl_drive *d, enum kl_aio aio, enum kl_cache cache, char **out,
		  struct kl_error *err);

#endif
