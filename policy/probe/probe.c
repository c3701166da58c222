/* SPDX-License-Identifier: GPL-2.0-or-later */
/* kl_probe_disk: what kind of backend a disk has, and what the file or
 * device under it is.  Dispatches to probe-block.c (sysfs), probe-file.c
 * (statfs, mount table, allocation) and probe-format.c (image header).
 *
 * Everything here is cheap and bounded: one stat, one statfs, at most two
 * 512-byte reads, two opens and a handful of sysfs files.  Nothing waits on
 * I/O beyond what an open and a cached read of the image do anyway (a hung
 * NFS hard mount hangs us exactly where it would hang QEMU). */
#include "policy/probe/probe.h"
#include "common/cleanup.h"
#include "common/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

const struct kl_probe_env kl_probe_env_real = {
	.sys_root = "",
	.proc_root = "",
};

ssize_t kl_probe_read_file(const char *root, const char *path, char *buf, size_t len)
{
	char full[PATH_MAX];
	if (len == 0) {
		errno = EINVAL;
		return -1;
	}
	if (snprintf(full, sizeof full, "%s%s", root ? root : "", path) >= (int)sizeof full) {
		errno = ENAMETOOLONG;
		return -1;
	}
	_cleanup_close_ int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -1;
	ssize_t n;
	do
		n = read(fd, buf, len - 1);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	return n;
}

/* ---- network backends ---- */

static const char *const network_drivers[] = {
	"rbd", "nbd", "iscsi", "iser", "gluster", "ssh", "http", "https", "ftp", "ftps", "nfs", "curl",
	"sheepdog", "vxhs", "vitastor", NULL,
};

static bool is_network_driver(const char *d, size_t len)
{
	for (const char *const *p = network_drivers; *p; p++)
		if (strlen(*p) == len && strncmp(*p, d, len) == 0)
			return true;
	return false;
}

static bool in_list(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

/* Protocol drivers over a local name. */
static bool is_local_driver(const char *d)
{
	static const char *const local[] = { "file", "host_device", "host_cdrom", NULL };
	return in_list(local, d);
}

/* Format driver names a caller may hand us when no protocol node was spelt
 * out (-drive file=x,format=qcow2 implies the protocol from the name). */
static bool is_format_driver(const char *d)
{
	static const char *const formats[] = {
		"raw", "qcow2", "qcow", "qed", "vmdk", "vdi", "vhdx", "vpc", "luks", "parallels", "dmg", "bochs",
		"cloop", NULL,
	};
	return in_list(formats, d);
}

bool kl_probe_is_network(const char *driver, const char *path, char *drv, size_t drv_len)
{
	const char *name = NULL;
	size_t len = 0;

	if (driver && *driver && is_network_driver(driver, strlen(driver))) {
		name = driver;
		len = strlen(driver);
	} else if (driver && *driver && !is_format_driver(driver)) {
		return false;  /* a local or unknown protocol driver: the path is a plain name */
	} else if (path) {
		/* "nbd:host:port", "gluster+tcp://h/v/i", "rbd:pool/img": a scheme
		 * of [a-z0-9+.-] before the first ':', its base before '+'. */
		size_t n = strspn(path, "abcdefghijklmnopqrstuvwxyz0123456789+.-");
		if (n == 0 || path[n] != ':')
			return false;
		len = strcspn(path, "+:");
		if (!is_network_driver(path, len))
			return false;
		name = path;
	}
	if (!name)
		return false;
	if (drv && drv_len) {
		if (len >= drv_len)
			len = drv_len - 1;
		memcpy(drv, name, len);
		drv[len] = '\0';
	}
	return true;
}

/* ---- system calls through the test hooks ---- */

static int do_stat(const struct kl_probe_env *env, const char *path, struct stat *st)
{
	return env->stat_fn ? env->stat_fn(path, st) : stat(path, st);
}

static int do_open(const struct kl_probe_env *env, const char *path, int flags)
{
	return env->open_fn ? env->open_fn(path, flags) : open(path, flags);
}

static ssize_t pread_full(int fd, unsigned char *buf, size_t len, off_t off)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, off + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return got ? (ssize_t)got : -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* ---- the disk ---- */

#define HEADER_LEN 512

/* Reads the header (and for files whose header says nothing, the last 512
 * bytes) and fills format; also the btrfs NOCOW flag, which needs an fd. */
static void probe_content(const struct kl_probe_env *env, const char *path, const struct stat *st,
			  const struct kl_disk_given *given, struct kl_disk_facts *out, struct kl_image_info *img)
{
	unsigned char head[HEADER_LEN], tail[HEADER_LEN];
	int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | (given->cdrom ? O_NONBLOCK : 0);

	memset(img, 0, sizeof *img);
	_cleanup_close_ int fd = do_open(env, path, flags);
	if (fd < 0) {
		strvec_pushf(&out->notes, "cannot read the image header of %s: %s", path, strerror(errno));
		return;
	}
	ssize_t n = pread_full(fd, head, sizeof head, 0);
	if (n < 0) {
		strvec_pushf(&out->notes, "cannot read the image header of %s: %s", path, strerror(errno));
		return;
	}
	ssize_t tn = -1;
	kl_image_detect(head, (size_t)n, NULL, 0, img);
	/* Only regular files: the last sector of a big block device is one more
	 * uncached seek, for formats (fixed VHD, DMG) nobody keeps there. */
	if (strcmp(img->format, "raw") == 0 && S_ISREG(st->st_mode) && st->st_size >= 2 * HEADER_LEN) {
		tn = pread_full(fd, tail, sizeof tail, st->st_size - HEADER_LEN);
		if (tn > 0)
			kl_image_detect(head, (size_t)n, tail, (size_t)tn, img);
	}
	snprintf(out->format, sizeof out->format, "%s", img->format);

	if (img->version && strcmp(img->format, "qcow2") == 0)
		strvec_pushf(&out->notes, "qcow2 version %u image", img->version);
	if (img->has_backing)
		strvec_pushf(&out->notes, "%s image has a backing file (the chain is not probed)", img->format);
	if (strcmp(img->format, "vpc") == 0 && tn > 0)
		strvec_pushf(&out->notes, "fixed-size VHD (footer at the end of the file)");
	/* (a block device's tail is not read: a fixed VHD or a DMG there looks raw) */
	bool tail_unread = tn < 0 && (strcmp(img->format, "raw") == 0) && given->format &&
			   (strcmp(given->format, "vpc") == 0 || strcmp(given->format, "dmg") == 0);
	if (given->format && *given->format && strcmp(given->format, img->format) != 0 && !tail_unread)
		strvec_pushf(&out->notes, "the image header looks like %s, the command line says format %s",
			     img->format, given->format);

	/* btrfs: copy-on-write unless the file has the NOCOW attribute (chattr +C). */
	if (out->fs_magic == 0x9123683E && S_ISREG(st->st_mode)) {
		int attr = 0;
		/* Unreadable flags: btrfs's default, copy-on-write, is assumed. */
		bool nocow = ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0 && (attr & FS_NOCOW_FL);
		out->cow = nocow ? KL_TRI_NO : KL_TRI_YES;
		if (nocow)
			strvec_pushf(&out->notes, "btrfs file has the NOCOW attribute: writes go in place, without data "
						  "checksums");
		else
			strvec_pushf(&out->notes, "btrfs is copy-on-write: every write allocates, even in a preallocated file");
	} else if (out->fs_magic == 0x2FC12FC1 || out->fs_magic == 0xca451a4e) {
		out->cow = KL_TRI_YES;
		strvec_pushf(&out->notes, "%s is copy-on-write: every write allocates, even in a preallocated file",
			     out->fs);
	}
}

/* An O_DIRECT open is what QEMU's cache.direct=on does: trust its answer
 * over any table of filesystems (tmpfs gained O_DIRECT in Linux 6.6, ZFS in
 * 0.8, FUSE depends on the daemon). */
static void probe_odirect(const struct kl_probe_env *env, const char *path, const struct kl_disk_given *given,
			  struct kl_disk_facts *out)
{
	int flags = O_RDONLY | O_DIRECT | O_CLOEXEC | O_NOCTTY | (given->cdrom ? O_NONBLOCK : 0);
	int fd = do_open(env, path, flags);
	if (fd >= 0) {
		close(fd);
		out->odirect = KL_TRI_YES;
		if (out->fs_magic == 0x01021994)
			strvec_pushf(&out->notes, "tmpfs accepts O_DIRECT on this kernel");
		return;
	}
	int e = errno;
	if (e == EINVAL) {
		out->odirect = KL_TRI_NO;
		strvec_pushf(&out->notes, "O_DIRECT open of %s: filesystem refuses O_DIRECT%s%s%s", path,
			     out->fs[0] ? " (" : "", out->fs, out->fs[0] ? ")" : "");
	} else {
		out->odirect = KL_TRI_UNKNOWN;
		strvec_pushf(&out->notes, "O_DIRECT open of %s: %s", path, strerror(e));
	}
}

static const char *strip_prefix(const char *path)
{
	static const char *const prefixes[] = { "file:", "host_device:", "host_cdrom:", NULL };
	if (!path)
		return NULL;
	for (const char *const *p = prefixes; *p; p++)
		if (strncmp(path, *p, strlen(*p)) == 0)
			return path + strlen(*p);
	return path;
}

static enum kl_tri network_shared(const char *drv, const char *path)
{
	if (strcmp(drv, "nbd") == 0) {
		/* qemu-nbd or nbdkit on a local socket is this host's storage. */
		if (path && (strncmp(path, "nbd+unix:", 9) == 0 || strstr(path, ":unix:")))
			return KL_TRI_NO;
		return KL_TRI_UNKNOWN;
	}
	/* rbd, iscsi, gluster, nfs, ssh, http...: another host holds the data. */
	return KL_TRI_YES;
}

int kl_probe_disk(const struct kl_probe_env *env, const struct kl_disk_given *given,
		  struct kl_disk_facts *out, struct kl_error *err)
{
	if (!given || !out)
		return kl_error_fail(err, "kl_probe_disk: called without %s", given ? "facts" : "a disk");
	if (!env)
		env = &kl_probe_env_real;
	memset(out, 0, sizeof *out);

	char drv[sizeof out->network_driver];
	if (kl_probe_is_network(given->driver, given->path, drv, sizeof drv)) {
		out->backend = KL_BACKEND_NETWORK;
		snprintf(out->network_driver, sizeof out->network_driver, "%s", drv);
		out->shared = network_shared(drv, given->path);
		strvec_pushf(&out->notes, "network backend %s: QEMU talks to it directly (no aio=, no host page cache)",
			     drv);
		return 0;
	}
	if (given->driver && *given->driver && !is_local_driver(given->driver) && !is_format_driver(given->driver)) {
		strvec_pushf(&out->notes, "driver %s is not probed", given->driver);
		return 0;
	}

	const char *path = strip_prefix(given->path);
	if (!path || !*path) {
		strvec_pushf(&out->notes, "no file name to probe");
		return 0;
	}
	if (strncmp(path, "/dev/fdset/", 11) == 0) {
		strvec_pushf(&out->notes, "cannot probe an fd set (%s): the file comes from libvirt as a passed fd",
			     path);
		return 0;
	}
	if (strncmp(path, "json:", 5) == 0) {
		strvec_pushf(&out->notes, "json: pseudo-protocol file names are not probed");
		return 0;
	}

	struct stat st;
	if (do_stat(env, path, &st) < 0) {
		strvec_pushf(&out->notes, "stat %s: %s", path, strerror(errno));
		return 0;
	}

	struct kl_image_info img;
	if (S_ISBLK(st.st_mode)) {
		out->backend = KL_BACKEND_BLOCK;
		snprintf(out->storage_id, sizeof out->storage_id, "dev:%u:%u", major(st.st_rdev), minor(st.st_rdev));
		kl_probe_block_sysfs(env, major(st.st_rdev), minor(st.st_rdev), out);
		probe_content(env, path, &st, given, out, &img);
	} else if (S_ISREG(st.st_mode)) {
		out->backend = KL_BACKEND_FILE;
		kl_probe_file_fs(env, path, &st, out);
		probe_content(env, path, &st, given, out, &img);
		kl_probe_file_alloc(&st, out->format[0] ? &img : NULL, out);
	} else {
		strvec_pushf(&out->notes, "%s is neither a regular file nor a block device", path);
		return 0;
	}
	probe_odirect(env, path, given, out);
	return 0;
}
