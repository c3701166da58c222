/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Which kernel AIO engines a running QEMU uses, for --status.
 *
 * /proc shows an io_uring instance as an fd "anon_inode:[io_uring]" and a
 * libaio context as a "/[aio]" mapping.  QEMU 7.2 sets both up when it opens
 * a node with aio=io_uring/native; QEMU 9 and later (10.0 in
 * bookworm-backports) set them up per AioContext at the first request that
 * uses them (block/file-posix.c raw_check_linux_io_uring/_aio, through
 * aio_setup_linux_io_uring), and fall back to the thread pool if that fails.
 * A request that is not aligned for O_DIRECT never reaches the engine (the
 * thread pool serves it): SeaBIOS's boot-sector read on QEMU 10.0 leaves no
 * ring, a Linux guest's first reads make one (both seen here).  So no context is "not yet" while no disk with that
 * engine has done any I/O, and "not seen" once one has: only unaligned
 * requests so far, or QEMU fell back to its thread pool; /proc cannot tell
 * which, and neither guess is made. */
#ifndef KL_LAUNCHER_AIOUSE_H
#define KL_LAUNCHER_AIOUSE_H

#include <json-c/json.h>
#include "policy/types.h"

enum kl_aio_use {
	KL_AIO_USE_NO = 0,      /* no disk is configured with the engine, and no context */
	KL_AIO_USE_YES,         /* QEMU holds the engine's context */
	KL_AIO_USE_NOT_YET,     /* configured, no context, and no I/O on its disks yet */
	KL_AIO_USE_NOT_SEEN,    /* configured, I/O done, and still no context */
	KL_AIO_USE_UNKNOWN,     /* /proc unreadable, or no I/O counters to tell */
};

const char *kl_aio_use_name(enum kl_aio_use u);   /* "yes", "no", "not yet", "not seen", "unknown" */

/* engine: "io_uring" or "native" as in a disk's "aio"; disks: --status's
 * disk views ("aio", "stats" with rd/wr/flush_operations, or null);
 * seen: what /proc shows. */
enum kl_aio_use kl_aio_use_of(json_object *disks, const char *engine, enum kl_tri seen);

/* {"io_uring": "yes"|..., "libaio": ...} for a VM's disk views. */
json_object *kl_aio_use_json(json_object *disks, enum kl_tri io_uring_seen, enum kl_tri libaio_seen);

/* The table's words: "io_uring", "io_uring, libaio", "none", "not yet
 * (io_uring is set up at the first I/O)", "libaio; not yet (...)", "none
 * (io_uring configured but not set up after I/O: ...)". */
char *kl_aio_use_text(json_object *aio_in_use);

#endif
