/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Regular files: the filesystem under them (statfs, and for FUSE the mount
 * table), the device it lives on, and how much of the image is allocated. */
#include "policy/probe/probe.h"
#include "common/cleanup.h"
#include "common/xalloc.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define FUSE_MAGIC 0x65735546UL

static int do_statfs(const struct kl_probe_env *env, const char *path, struct statfs *out)
{
	return env->statfs_fn ? env->statfs_fn(path, out) : statfs(path, out);
}

/* ---- mount table ---- */

/* Undo the mount table's octal escapes ("\040" for a space) in place. */
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; ) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' &&
		    r[3] <= '7') {
			*w++ = (char)((r[1] - '0') << 6 | (r[2] - '0') << 3 | (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

/* Length of mnt if it is a path prefix of path ("/" of everything, "/a" of
 * "/a" and "/a/b" but not "/ab"), else -1. */
static long prefix_len(const char *mnt, const char *path)
{
	size_t n = strlen(mnt);
	while (n > 1 && mnt[n - 1] == '/')
		n--;
	if (n == 1 && mnt[0] == '/')
		return 1;
	if (strncmp(mnt, path, n) != 0 || (path[n] != '\0' && path[n] != '/'))
		return -1;
	return (long)n;
}

#define DEV_MATCH (1L << 20)   /* beats any prefix length */

struct mount_best {
	long score;     /* -1 none */
	char type[64];
	char mnt[PATH_MAX];
};

static void consider(struct mount_best *b, const char *path, const char *mnt, const char *type, bool dev_match)
{
	long len = prefix_len(mnt, path);
	long score;
	if (len < 0 && !dev_match)
		return;
	/* A device match beats any prefix; then the longest prefix; ties go
	 * to the later line (the mount on top). */
	score = (dev_match ? DEV_MATCH : 0) + (len < 0 ? 0 : len);
	if (score < b->score)
		return;
	b->score = score;
	snprintf(b->type, sizeof b->type, "%s", type);
	snprintf(b->mnt, sizeof b->mnt, "%s", mnt);
}

static int scan_mountinfo(const char *file, const char *path, dev_t dev, struct mount_best *b)
{
	_cleanup_fclose_ FILE *f = fopen(file, "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;

	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0) {
		/* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
		char *save = NULL, *fields[6];
		int n = 0;
		while (n < 6 && (fields[n] = strtok_r(n ? NULL : line, " \n", &save)))
			n++;
		if (n < 6)
			continue;
		char *type = NULL;
		for (char *t = strtok_r(NULL, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
			if (strcmp(t, "-") == 0) {
				type = strtok_r(NULL, " \n", &save);
				break;
			}
		if (!type)
			continue;
		unsigned ma, mi;
		bool dev_match = sscanf(fields[2], "%u:%u", &ma, &mi) == 2 && dev && makedev(ma, mi) == dev;
		unescape(fields[4]);
		unescape(type);
		consider(b, path, fields[4], type, dev_match);
	}
	return 0;
}

static int scan_mounts(const char *file, const char *path, struct mount_best *b)
{
	_cleanup_fclose_ FILE *f = fopen(file, "re");
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;

	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0) {
		char *save = NULL;
		char *src = strtok_r(line, " \t\n", &save);
		char *mnt = src ? strtok_r(NULL, " \t\n", &save) : NULL;
		char *type = mnt ? strtok_r(NULL, " \t\n", &save) : NULL;
		if (!type)
			continue;
		unescape(mnt);
		unescape(type);
		consider(b, path, mnt, type, false);
	}
	return 0;
}

static void absolute(const char *path, char *out, size_t len)
{
	if (path[0] == '/' || !getcwd(out, len - 1))
		snprintf(out, len, "%s", path);
	else
		snprintf(out + strlen(out), len - strlen(out), "/%s", path);
}

static bool scan(const char *root, const char *path, dev_t dev, struct mount_best *b)
{
	char file[PATH_MAX];
	b->score = -1;
	snprintf(file, sizeof file, "%s/proc/self/mountinfo", root);
	if (scan_mountinfo(file, path, dev, b) == 0 && b->score >= 0)
		return true;
	snprintf(file, sizeof file, "%s/proc/self/mounts", root);
	return scan_mounts(file, path, b) == 0 && b->score >= 0;
}

int kl_probe_mount_type(const struct kl_probe_env *env, const char *path, dev_t dev, char *type, size_t type_len,
			char *mnt, size_t mnt_len)
{
	char lexical[PATH_MAX], real[PATH_MAX];
	const char *root = env && env->proc_root ? env->proc_root : "";
	struct mount_best *b = xcalloc(1, sizeof *b);
	int ret = -1;

	/* The device decides when it matches (every FUSE mount has its own;
	 * bind mounts of it share the type).  Only otherwise resolve symlinks,
	 * which costs a round trip to a FUSE daemon per path component. */
	absolute(path, lexical, sizeof lexical);
	bool found = scan(root, lexical, dev, b);
	if (!(found && b->score >= DEV_MATCH) && realpath(path, real) && strcmp(real, lexical) != 0)
		found = scan(root, real, dev, b);
	if (found) {
		snprintf(type, type_len, "%s", b->type);
		if (mnt && mnt_len)
			snprintf(mnt, mnt_len, "%s", b->mnt);
		ret = 0;
	}
	free(b);
	return ret;
}

/* ---- the filesystem ---- */

static const char *tri_shared_words(enum kl_tri t)
{
	switch (t) {
	case KL_TRI_YES: return "shared storage";
	case KL_TRI_NO: return "local storage";
	default: return "storage that may be shared";
	}
}

void kl_probe_file_fs(const struct kl_probe_env *env, const char *path, const struct stat *st,
		      struct kl_disk_facts *out)
{
	struct statfs sfs;
	unsigned ma = major(st->st_dev), mi = minor(st->st_dev);

	snprintf(out->storage_id, sizeof out->storage_id, "dev:%u:%u", ma, mi);

	if (do_statfs(env, path, &sfs) < 0) {
		strvec_pushf(&out->notes, "statfs %s: %s", path, strerror(errno));
		out->shared = KL_TRI_UNKNOWN;
	} else {
		unsigned long magic = (unsigned long)sfs.f_type & 0xffffffffUL;
		const char *name = kl_fs_name(magic, NULL);
		out->fs_magic = magic;
		out->shared = kl_fs_shared(magic);
		if (name)
			snprintf(out->fs, sizeof out->fs, "%s", name);
		else
			strvec_pushf(&out->notes, "unknown filesystem type 0x%lx", magic);

		if (magic == FUSE_MAGIC) {
			char type[64], mnt[PATH_MAX];
			if (kl_probe_mount_type(env, path, st->st_dev, type, sizeof type, mnt, sizeof mnt) == 0 &&
			    strncmp(type, "fuse", 4) == 0) {
				if (snprintf(out->fs, sizeof out->fs, "%s", type) >= (int)sizeof out->fs)
					out->fs[sizeof out->fs - 1] = '\0';  /* truncated: still names it */
				out->shared = kl_fuse_shared(type);
				strvec_pushf(&out->notes, "FUSE filesystem %s on %s: %s", type, mnt,
					     tri_shared_words(out->shared));
			} else {
				strvec_pushf(&out->notes, "FUSE filesystem of unknown type (not in the mount table): %s",
					     tri_shared_words(out->shared));
			}
		} else if (name && out->shared != KL_TRI_NO) {
			strvec_pushf(&out->notes, "%s is %s", name, tri_shared_words(out->shared));
		}
	}

	/* The device under the filesystem: a whole disk has queue/, a
	 * partition's disk is its parent directory (sysfs links resolve ".."
	 * physically).  Anonymous devices (major 0: tmpfs, NFS, btrfs) have no
	 * entry. */
	if (ma != 0) {
		char rel[96], buf[16];
		const char *sys = env->sys_root ? env->sys_root : "";
		snprintf(rel, sizeof rel, "/sys/dev/block/%u:%u/queue/rotational", ma, mi);
		ssize_t n = kl_probe_read_file(sys, rel, buf, sizeof buf);
		if (n < 0) {
			snprintf(rel, sizeof rel, "/sys/dev/block/%u:%u/../queue/rotational", ma, mi);
			n = kl_probe_read_file(sys, rel, buf, sizeof buf);
		}
		if (n > 0)
			out->rotational = buf[0] == '1' ? KL_TRI_YES : KL_TRI_NO;
	}
}

/* ---- allocation ---- */

static void human(char *buf, size_t len, uint64_t bytes)
{
	if (bytes >= 10ULL << 30)
		snprintf(buf, len, "%llu GiB", (unsigned long long)(bytes >> 30));
	else if (bytes >= 10ULL << 20)
		snprintf(buf, len, "%llu MiB", (unsigned long long)(bytes >> 20));
	else
		snprintf(buf, len, "%llu KiB", (unsigned long long)(bytes >> 10));
}

void kl_probe_file_alloc(const struct stat *st, const struct kl_image_info *img, struct kl_disk_facts *out)
{
	uint64_t alloc = (uint64_t)st->st_blocks * 512;
	uint64_t need = st->st_size > 0 ? (uint64_t)st->st_size : 0;
	bool guest = false;
	char a[32], b[32];

	/* A growable image format's file only holds what the guest wrote:
	 * compare with the guest size, so that a qcow2 made with
	 * preallocation=falloc/full counts as preallocated and one made with
	 * preallocation=metadata or none does not. */
	if (img && img->virtual_size && strcmp(img->format, "raw") != 0 && strcmp(img->format, "luks") != 0) {
		need = img->virtual_size;
		guest = true;
	}
	/* Slack for file tails, metadata-free filesystems and compressed
	 * blocks: 64 KiB plus 0.1%. */
	uint64_t slack = (64ULL << 10) + need / 1024;
	human(a, sizeof a, alloc);
	human(b, sizeof b, need);
	if (need == 0 && !guest) {
		/* An empty file (a snapshot overlay or copy target before QEMU
		 * writes its header) allocates with every write. */
		out->preallocated = KL_TRI_NO;
		strvec_pushf(&out->notes, "empty file: every write allocates blocks");
		return;
	}
	if (alloc + slack >= need) {
		out->preallocated = KL_TRI_YES;
		if (guest)
			strvec_pushf(&out->notes, "%s image is preallocated: %s allocated for a %s guest disk",
				     img->format, a, b);
	} else {
		out->preallocated = KL_TRI_NO;
		if (guest)
			strvec_pushf(&out->notes, "%s image allocates as the guest writes: %s allocated of a %s guest disk",
				     img->format, a, b);
		else
			strvec_pushf(&out->notes, "sparse file: %s allocated of %s, writes allocate blocks", a, b);
	}
	if (img && !guest && strcmp(img->format, "raw") != 0 && strcmp(img->format, "luks") != 0)
		strvec_pushf(&out->notes, "%s header gives no guest size here: allocation compared with the file size",
			     img->format);
}
