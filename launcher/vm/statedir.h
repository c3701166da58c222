/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The trusted directory layer of the state store (see SECURITY and
 * contrib/kvm-launch.tmpfiles):
 *
 *   RUN/kvm-launch               0755 root root   only root creates entries here
 *   RUN/kvm-launch/root          2750 root kvm    root's VMs
 *   RUN/kvm-launch/users         3770 root kvm    where a QEMU user of group kvm makes its dir
 *   RUN/kvm-launch/users/UID     2750 UID  kvm    that uid's VMs
 *   $XDG_RUNTIME_DIR/kvm-launch  0700             other users
 *
 * A VM directory is trusted only when it is a directory (opened with
 * O_DIRECTORY|O_NOFOLLOW) owned by the uid it is for and not writable by
 * group or others: then nobody but that uid (and root) can create, rename or
 * remove anything in it.  Everything else works from the directory's fd with
 * *at() calls, so a path swapped later changes nothing. */
#ifndef KL_LAUNCHER_STATEDIR_H
#define KL_LAUNCHER_STATEDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include "common/error.h"
#include "common/strbuf.h"

/* Largest state entry read (a real one is a few KiB). */
#define KL_STATE_MAX_BYTES (1024 * 1024)

struct kl_statedir {
	int fd;          /* O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC, checked */
	char *path;      /* for messages, and to be written for humans */
	uid_t owner;     /* the directory's owner = the owner of every entry believed */
};
#define KL_STATEDIR_INIT { -1, NULL, 0 }
void kl_statedir_close(struct kl_statedir *d);
static inline void kl_statedir_closep(struct kl_statedir *d) { kl_statedir_close(d); }
#define _cleanup_statedir_ __attribute__((cleanup(kl_statedir_closep)))

/* Check an open directory: a directory, owned by owner ((uid_t)-1: anyone),
 * not writable by group or others. */
int kl_statedir_check_fd(int fd, const char *path, uid_t owner, struct kl_error *err);
/* Open path as a trusted directory (no symlink in its last component). */
int kl_statedir_open(const char *path, uid_t owner, struct kl_statedir *out, struct kl_error *err);

/* The directory this process's VMs go to: explicit (--state-dir, state-dir
 * =) must be owned by us and not group/other-writable (created 0750 when
 * missing, parents 0755; world access removed when we own it); else the
 * layout above for root and for members of group kvm, else $XDG_RUNTIME_DIR
 * /kvm-launch.  A users/UID made by another uid is refused, naming it. */
int kl_statedir_for_launch(const char *explicit_dir, struct kl_statedir *out, struct kl_error *err);
/* Every directory --status/--set read: explicit (owned by us or by root, or
 * any owner when we are root), else root/, each trusted users/UID, and
 * $XDG_RUNTIME_DIR/kvm-launch for a non-root caller.  Directories that are
 * missing are skipped; untrusted ones are skipped and said in errors (may be
 * NULL).  Returns how many were opened (*out: caller frees each and the
 * array). */
size_t kl_statedir_for_read(const char *explicit_dir, struct kl_statedir **out, struct strvec *errors);
void kl_statedirs_free(struct kl_statedir *d, size_t n);

/* flock on DIR/.lock (0600, owned by the directory's owner; never the
 * directory itself, which group members can open).  The locked fd, or -1
 * (errno) after timeout_ms. */
int kl_statedir_lock(const struct kl_statedir *d, int timeout_ms);

/* Read DIR/NAME: O_NOFOLLOW|O_NONBLOCK, a regular file owned by owner,
 * at most max bytes (NUL-terminated). */
int kl_statedir_read(int dirfd, const char *name, uid_t owner, size_t max, char **out, size_t *len,
		     struct kl_error *err);
/* Write DIR/NAME atomically: an O_EXCL|O_NOFOLLOW temporary file, owned by
 * owner (chowned when we are root), then renameat. */
int kl_statedir_write(int dirfd, const char *name, const char *data, size_t len, mode_t mode, uid_t owner,
		      struct kl_error *err);
/* Unlink DIR/NAME if, seen with AT_SYMLINK_NOFOLLOW, it has type (S_IFSOCK,
 * S_IFREG) and is owned by owner. */
void kl_statedir_remove(int dirfd, const char *name, mode_t type, uid_t owner);

/* A Unix socket address for DIR/NAME: /proc/self/fd/N/NAME (short whatever
 * the directory's path, and bound to the directory we checked), else the
 * plain path if it fits.  -1 when neither fits. */
int kl_statedir_sockaddr(const struct kl_statedir *d, const char *name, struct sockaddr_un *sa, socklen_t *len);

/* The gid of group kvm, or (gid_t)-1. */
gid_t kl_kvm_gid(void);

#endif
