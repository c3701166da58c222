/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The cache (QEMU capabilities, calibrations) per uid, so that no process
 * ever reads what another uid wrote (issue 17):
 *   root    TOP itself (0755 root; files 0644)
 *   others  TOP/users/UID (0700, made on demand; TOP/users is 3770 root:kvm),
 *           or TOP itself when that is a private directory of theirs (a
 *           cache_dir of their own in the policy)
 * A directory is used only when its owner is the caller's euid and neither
 * its group nor others may write it; anything else (a squat, a symlink, an
 * old group-writable layout) means no cache, never a cache of someone else. */
#ifndef KL_CACHEDIR_H
#define KL_CACHEDIR_H

#include <stdbool.h>
#include <sys/types.h>
#include "common/error.h"

/* Open the caller's cache directory under TOP (see above); with CREATE, make
 * it (and root's TOP) when absent.  *PATH (may be NULL) gets its path for
 * messages.  Returns an O_CLOEXEC directory fd, or -1 (err->errnum ENOENT
 * when it simply does not exist yet). */
int kl_cache_dir_open(const char *top, bool create, char **path, struct kl_error *err);

/* A subdirectory NAME of a cache directory fd, on the same terms (owned by
 * the euid, not writable by group or others, not a symlink); with CREATE,
 * made with the mode of the parent's kind (0755 for root, 0700 for others).
 * WHAT names it in messages (NULL: NAME). */
int kl_cache_subdir_open(int dirfd, const char *name, const char *what, bool create, struct kl_error *err);

/* Mode for a cache file of the caller: 0644 for root (read by anyone, as
 * the shipped layout says), 0600 for others. */
mode_t kl_cache_file_mode(void);

/* Largest cache file read: about 1 MiB (ours are a few KiB). */
#define KL_CACHE_FILE_MAX (1u << 20)

#endif
