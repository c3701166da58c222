/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/vm/statedir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/safefile.h"
#include "common/xalloc.h"

#define ROOT_DIR KL_DEFAULT_STATE_DIR "/root"
#define USERS_DIR KL_DEFAULT_STATE_DIR "/users"

void kl_statedir_close(struct kl_statedir *d)
{
	if (d->fd >= 0)
		close(d->fd);
	free(d->path);
	d->fd = -1;
	d->path = NULL;
}

void kl_statedirs_free(struct kl_statedir *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		kl_statedir_close(&d[i]);
	free(d);
}

gid_t kl_kvm_gid(void)
{
	struct group gr, *res = NULL;
	char buf[4096];
	if (getgrnam_r("kvm", &gr, buf, sizeof buf, &res) != 0 || !res)
		return (gid_t)-1;
	return res->gr_gid;
}

int kl_statedir_check_fd(int fd, const char *path, uid_t owner, struct kl_error *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return kl_error_errno(err, errno, "%s", path);
	if (!S_ISDIR(st.st_mode))
		return kl_error_fail(err, "%s: not a directory", path);
	if (owner != (uid_t)-1 && st.st_uid != owner)
		return kl_error_fail(err, "%s: owned by uid %u, not uid %u: refusing it", path, (unsigned)st.st_uid,
				     (unsigned)owner);
	if (st.st_mode & S_IWOTH)
		return kl_error_fail(err, "%s: writable by everyone (mode %04o): refusing it", path,
				     (unsigned)(st.st_mode & 07777));
	if (st.st_mode & S_IWGRP)
		return kl_error_fail(err, "%s: writable by its group (mode %04o): refusing it", path,
				     (unsigned)(st.st_mode & 07777));
	return 0;
}

/* openat(O_DIRECTORY|O_NOFOLLOW) with a message saying what was there. */
static int open_dir_at(int at, const char *name, const char *path, struct kl_error *err)
{
	int fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	int e = errno;
	struct stat st;
	if ((e == ELOOP || e == ENOTDIR) && fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return kl_error_fail(err, "%s: %s (made by uid %u): refusing it", path,
				     S_ISLNK(st.st_mode) ? "is a symbolic link" : "not a directory", (unsigned)st.st_uid);
	return kl_error_errno(err, e, "%s", path);
}

int kl_statedir_open(const char *path, uid_t owner, struct kl_statedir *out, struct kl_error *err)
{
	out->fd = -1;
	out->path = NULL;
	_cleanup_close_ int fd = open_dir_at(AT_FDCWD, path, path, err);
	if (fd < 0)
		return -1;
	if (kl_statedir_check_fd(fd, path, owner, err) < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return kl_error_errno(err, errno, "%s", path);
	out->owner = st.st_uid;
	out->path = xstrdup(path);
	out->fd = steal_fd(&fd);
	return 0;
}

/* ---- the launcher's directory ---- */

static int mkdir_parents(const char *dir, struct kl_error *err)
{
	_cleanup_free_ char *p = xstrdup(dir);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return kl_error_errno(err, errno, "cannot create %s", p);
		*s = '/';
	}
	return 0;
}

static int writable(struct kl_statedir *d, struct kl_error *err)
{
	if (faccessat(d->fd, ".", W_OK | X_OK, 0) < 0) {
		kl_error_errno(err, errno, "%s: not writable", d->path);
		kl_statedir_close(d);
		return -1;
	}
	return 0;
}

static int explicit_for_launch(const char *dir, struct kl_statedir *out, struct kl_error *err)
{
	if (!*dir)
		return kl_error_fail(err, "empty state directory name");
	if (mkdir_parents(dir, err) < 0)
		return -1;
	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		return kl_error_errno(err, errno, "cannot create %s", dir);
	if (kl_statedir_open(dir, geteuid(), out, err) < 0)
		return -1;
	struct stat st;
	/* World access goes; the special bits stay. */
	if (fstat(out->fd, &st) == 0 && (st.st_mode & S_IRWXO) && fchmod(out->fd, st.st_mode & 07770) < 0) {
		kl_error_errno(err, errno, "%s: cannot remove world access", dir);
		kl_statedir_close(out);
		return -1;
	}
	return writable(out, err);
}

/* RUN/kvm-launch: root's, not writable by others. */
static int open_base(bool create, struct kl_error *err)
{
	if (create && mkdir_parents(ROOT_DIR, err) < 0)
		return -1;
	_cleanup_close_ int fd = open_dir_at(AT_FDCWD, KL_DEFAULT_STATE_DIR, KL_DEFAULT_STATE_DIR, err);
	if (fd < 0 || kl_statedir_check_fd(fd, KL_DEFAULT_STATE_DIR, 0, err) < 0)
		return -1;
	return steal_fd(&fd);
}

/* mkdirat + open + fchown/fchmod on the fd (never by path) when made now. */
static int make_private(int at, const char *name, const char *path, uid_t uid, mode_t mode,
			struct kl_statedir *out, struct kl_error *err)
{
	bool made = mkdirat(at, name, 0700) == 0;
	if (!made && errno != EEXIST)
		return kl_error_errno(err, errno, "cannot create %s", path);
	_cleanup_close_ int fd = open_dir_at(at, name, path, err);
	if (fd < 0)
		return -1;
	if (made) {
		gid_t kvm = kl_kvm_gid();
		if (geteuid() == 0 && fchown(fd, uid, kvm) < 0)
			return kl_error_errno(err, errno, "%s: chown", path);
		if (fchmod(fd, kvm == (gid_t)-1 ? 0700 : mode) < 0)
			return kl_error_errno(err, errno, "%s: chmod", path);
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return kl_error_errno(err, errno, "%s", path);
	if (st.st_uid != uid)
		return kl_error_fail(err, "%s: made by uid %u, not by uid %u: refusing it (root must remove it)", path,
				     (unsigned)st.st_uid, (unsigned)uid);
	if (kl_statedir_check_fd(fd, path, uid, err) < 0)
		return -1;
	out->fd = steal_fd(&fd);
	out->path = xstrdup(path);
	out->owner = uid;
	return writable(out, err);
}

static int xdg_for_launch(struct kl_statedir *out, struct kl_error *err)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (!xdg || *xdg != '/')
		return kl_error_fail(err, "no state directory: %s/users is not ours to use and XDG_RUNTIME_DIR is not set",
				     KL_DEFAULT_STATE_DIR);
	_cleanup_close_ int at = open_dir_at(AT_FDCWD, xdg, xdg, err);
	if (at < 0 || kl_statedir_check_fd(at, xdg, geteuid(), err) < 0)
		return -1;
	_cleanup_free_ char *path = xasprintf("%s/kvm-launch", xdg);
	return make_private(at, "kvm-launch", path, geteuid(), 0700, out, err);
}

int kl_statedir_for_launch(const char *explicit_dir, struct kl_statedir *out, struct kl_error *err)
{
	uid_t uid = geteuid();
	out->fd = -1;
	out->path = NULL;
	if (explicit_dir)
		return explicit_for_launch(explicit_dir, out, err);
	if (uid == 0) {
		if (mkdir(KL_DEFAULT_STATE_DIR, 0755) < 0 && errno != EEXIST && errno != ENOENT)
			return kl_error_errno(err, errno, "cannot create %s", KL_DEFAULT_STATE_DIR);
		_cleanup_close_ int base = open_base(true, err);
		if (base < 0)
			return -1;
		return make_private(base, "root", ROOT_DIR, 0, 02750, out, err);
	}
	/* users/: root's, sticky (nobody removes another's directory). */
	_cleanup_close_ int users = open_dir_at(AT_FDCWD, USERS_DIR, USERS_DIR, NULL);
	struct stat st;
	if (users < 0 || fstat(users, &st) < 0 || st.st_uid != 0 || !(st.st_mode & S_ISVTX) ||
	    faccessat(users, ".", W_OK | X_OK, 0) < 0)
		return xdg_for_launch(out, err);
	char name[32];
	snprintf(name, sizeof name, "%u", (unsigned)uid);
	_cleanup_free_ char *path = xasprintf("%s/%s", USERS_DIR, name);
	return make_private(users, name, path, uid, 02750, out, err);
}

/* ---- readers ---- */

static void push_dir(struct kl_statedir **v, size_t *n, struct kl_statedir *d)
{
	*v = xrealloc(*v, (*n + 1) * sizeof **v);
	(*v)[(*n)++] = *d;
	d->fd = -1;
	d->path = NULL;
}

/* Problems with a users/UID are said with -v only: anyone in group kvm can
 * put junk in users/, and it must not make --status fail or chatter. */
static void try_dir(int at, const char *name, const char *path, uid_t owner, struct kl_statedir **v, size_t *n,
		    struct strvec *errors)
{
	struct kl_error err = KL_ERROR_INIT;
	_cleanup_close_ int fd = open_dir_at(at, name, path, &err);
	if (fd < 0 && (err.errnum == ENOENT || err.errnum == EACCES))
		return;
	if (fd < 0 || kl_statedir_check_fd(fd, path, owner, &err) < 0) {
		if (errors)
			strvec_pushf(errors, "%s: ignored", err.msg);
		else
			kl_info("%s: ignored", err.msg);
		return;
	}
	struct kl_statedir d = { steal_fd(&fd), xstrdup(path), owner };
	push_dir(v, n, &d);
}

static void users_dirs(struct kl_statedir **v, size_t *n)
{
	int fd = open(USERS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		errno = 0;
		unsigned long u = strtoul(de->d_name, &end, 10);
		if (de->d_name[0] < '0' || de->d_name[0] > '9' || *end || errno || u == 0 || u >= (uid_t)-1)
			continue;
		_cleanup_free_ char *path = xasprintf("%s/%s", USERS_DIR, de->d_name);
		try_dir(dirfd(d), de->d_name, path, (uid_t)u, v, n, NULL);
	}
	closedir(d);
}

size_t kl_statedir_for_read(const char *explicit_dir, struct kl_statedir **out, struct strvec *errors)
{
	size_t n = 0;
	*out = NULL;
	if (explicit_dir) {
		struct kl_error err = KL_ERROR_INIT;
		struct kl_statedir d;
		if (kl_statedir_open(explicit_dir, (uid_t)-1, &d, &err) < 0) {
			if (err.errnum != ENOENT && errors)
				strvec_pushf(errors, "%s", err.msg);
			return 0;
		}
		if (geteuid() != 0 && d.owner != geteuid() && d.owner != 0) {
			if (errors)
				strvec_pushf(errors, "%s: owned by uid %u, neither us nor root: ignored", explicit_dir,
					     (unsigned)d.owner);
			kl_statedir_close(&d);
			return 0;
		}
		push_dir(out, &n, &d);
		return n;
	}
	try_dir(AT_FDCWD, ROOT_DIR, ROOT_DIR, 0, out, &n, errors);
	users_dirs(out, &n);
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (geteuid() != 0 && xdg && *xdg == '/') {
		_cleanup_free_ char *path = xasprintf("%s/kvm-launch", xdg);
		try_dir(AT_FDCWD, path, path, geteuid(), out, &n, errors);
	}
	return n;
}

/* ---- locking ---- */

static int open_lock(const struct kl_statedir *d)
{
	int fl = O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
	int fd = openat(d->fd, ".lock", fl | (geteuid() == d->owner ? O_CREAT : 0), 0600);
	if (fd < 0 && errno == ENOENT && geteuid() == 0) {
		/* Root locking a user's directory: the file must stay the user's. */
		fd = openat(d->fd, ".lock", fl | O_CREAT | O_EXCL, 0600);
		if (fd >= 0 && fchown(fd, d->owner, (gid_t)-1) < 0) {
			close(fd);
			return -1;
		}
	}
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != d->owner) {
		close(fd);
		errno = EPERM;
		return -1;
	}
	return fd;
}

int kl_statedir_lock(const struct kl_statedir *d, int timeout_ms)
{
	int fd = open_lock(d);
	if (fd < 0)
		return -1;
	for (int waited = 0;; waited += 10) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		if (errno != EWOULDBLOCK && errno != EINTR)
			break;
		if (waited >= timeout_ms) {
			errno = ETIMEDOUT;
			break;
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	int e = errno;
	close(fd);
	errno = e;
	return -1;
}

/* ---- files ---- */

int kl_statedir_read(int dirfd, const char *name, uid_t owner, size_t max, char **out, size_t *len,
		     struct kl_error *err)
{
	return kl_read_at(dirfd, name, owner, max, out, len, err);
}

int kl_statedir_write(int dirfd, const char *name, const char *data, size_t len, mode_t mode, uid_t owner,
		      struct kl_error *err)
{
	if (kl_write_at(dirfd, name, data, len, mode, err) < 0)
		return -1;
	/* Root writing into a user's directory: the entry stays the user's
	 * (readers believe only entries owned by the directory's owner). */
	if (geteuid() != owner && fchownat(dirfd, name, owner, (gid_t)-1, AT_SYMLINK_NOFOLLOW) < 0)
		return kl_error_errno(err, errno, "%s: chown", name);
	return 0;
}

void kl_statedir_remove(int dirfd, const char *name, mode_t type, uid_t owner)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if ((st.st_mode & S_IFMT) != type || st.st_uid != owner)
		return;
	if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
		kl_debug("cannot remove %s: %s", name, strerror(errno));
}

int kl_statedir_sockaddr(const struct kl_statedir *d, const char *name, struct sockaddr_un *sa, socklen_t *len)
{
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	int n = -1;
	if (d->fd >= 0 && faccessat(AT_FDCWD, "/proc/self/fd", X_OK, 0) == 0)
		n = snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/self/fd/%d/%s", d->fd, name);
	if ((n < 0 || (size_t)n >= sizeof sa->sun_path) && d->path)
		n = snprintf(sa->sun_path, sizeof sa->sun_path, "%s/%s", d->path, name);
	if (n < 0 || (size_t)n >= sizeof sa->sun_path)
		return -1;
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
	return 0;
}
