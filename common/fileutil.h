/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Small file helpers used by several modules. */
#ifndef KL_FILEUTIL_H
#define KL_FILEUTIL_H

#include <stddef.h>
#include <sys/types.h>
#include "common/error.h"

/* Read a whole regular file of at most max bytes (NUL-terminated; NULL on
 * error, when larger than max, or not a regular file: a FIFO does not block).
 * For a file in a directory another uid may write, use kl_read_at. */
char *kl_read_small_file(const char *path, size_t max, struct kl_error *err);
/* kl_write_at (common/safefile.h) in the directory of PATH, opened by path:
 * readers see the old or the new file, never a part.  For files in a
 * directory another uid may write, open it with kl_dir_open_trusted and use
 * kl_write_at directly. */
int kl_write_file_atomic(const char *path, const char *content, mode_t mode, struct kl_error *err);
/* mkdir -p; existing directories are fine. */
int kl_mkdir_p(const char *path, mode_t mode, struct kl_error *err);

#endif
