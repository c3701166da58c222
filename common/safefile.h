/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Files in directories another uid might reach: open a directory only when
 * its owner alone can write it, then read and write inside it by name from
 * that directory fd, never through a symlink, a FIFO or a device, and never
 * more than a cap.  Issue 17: a path checked with stat() and opened again can
 * be swapped in between; an fd cannot. */
#ifndef KL_SAFEFILE_H
#define KL_SAFEFILE_H

#include <stddef.h>
#include <sys/types.h>
#include "common/error.h"

/* Any owner (for the owner arguments below). */
#define KL_ANY_OWNER ((uid_t)-1)

/* Open PATH (its last component must not be a symlink) as a directory that
 * OWNER owns (KL_ANY_OWNER: any) and that neither its group nor others may
 * write.  Returns an O_CLOEXEC fd, or -1. */
int kl_dir_open_trusted(const char *path, uid_t owner, struct kl_error *err);
/* The same checks on a directory fd already open (WHAT names it in messages):
 * 0, or -1 with the reason. */
int kl_dir_check_trusted(int fd, const char *what, uid_t owner, struct kl_error *err);

/* Read NAME in DIRFD (a plain name: no '/', not "." or ".."): not a symlink,
 * a regular file (a FIFO is refused without blocking), owned by OWNER
 * (KL_ANY_OWNER: any), at most MAX bytes (also refused when it grows past MAX
 * while being read).  *OUT gets a malloc'd NUL-terminated copy, *LEN (may be
 * NULL) its length.  Returns 0 or -1 (err->errnum is ENOENT when absent). */
int kl_read_at(int dirfd, const char *name, uid_t owner, size_t max, char **out, size_t *len,
	       struct kl_error *err);

/* Read an open file up to MAX bytes (refused when it has more, or grows past
 * MAX while read); NAME names it in messages.  Same *OUT / *LEN as above. */
int kl_read_fd(int fd, const char *name, size_t max, char **out, size_t *len, struct kl_error *err);

/* Replace NAME in DIRFD atomically: write a new ".NAME.XXXXXX" created
 * O_EXCL|O_NOFOLLOW with exactly MODE (umask aside), then renameat over NAME
 * (a symlink at NAME is replaced, never followed).  Readers see the old or the
 * new content; on failure the temporary file is removed.  No fsync: what we
 * write is runtime state or a cache that a host crash makes moot. */
int kl_write_at(int dirfd, const char *name, const void *data, size_t len, mode_t mode,
		struct kl_error *err);

#endif
