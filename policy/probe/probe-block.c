/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Block devices from sysfs: /sys/dev/block/MAJ:MIN names the device (uevent
 * DEVNAME/DEVTYPE); its name says the kind; dm/uuid tells LVM, multipath and
 * thin pools apart; slaves/ leads to the disks under dm and md.  Major
 * numbers are not used: they are dynamic (here 253 is zram, elsewhere dm). */
#include "policy/probe/probe.h"
#include "common/cleanup.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_DEPTH 6     /* dm over dm over md over partitions... */
#define MAX_SLAVES 64

/* Reads <dir>/<file> where dir is already prefixed with the sys root. */
static ssize_t read_in(const char *dir, const char *file, char *buf, size_t len)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return kl_probe_read_file("", path, buf, len);
}

/* DEVNAME and whether it is a partition, from uevent. */
static bool read_uevent(const char *dir, char *name, size_t name_len, bool *partition)
{
	char buf[1024];
	bool found = false;
	*partition = false;
	if (read_in(dir, "uevent", buf, sizeof buf) < 0)
		return false;
	char *save = NULL;
	for (char *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (strncmp(l, "DEVNAME=", 8) == 0) {
			snprintf(name, name_len, "%s", l + 8);
			found = true;
		} else if (strcmp(l, "DEVTYPE=partition") == 0) {
			*partition = true;
		}
	}
	return found;
}

static bool starts(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static enum kl_block_kind kind_of(const char *name, const char *dir)
{
	if (starts(name, "dm-")) {
		char uuid[256];
		if (read_in(dir, "dm/uuid", uuid, sizeof uuid) >= 0 && starts(uuid, "LVM-"))
			return KL_BLOCK_LVM;
		return KL_BLOCK_DM;
	}
	if (starts(name, "loop"))
		return KL_BLOCK_LOOP;
	if (starts(name, "nvme"))
		return KL_BLOCK_NVME;
	if (starts(name, "md"))
		return KL_BLOCK_MD;
	if (starts(name, "rbd"))
		return KL_BLOCK_RBD;
	if (starts(name, "nbd"))
		return KL_BLOCK_NBD;
	if (starts(name, "sd"))
		return KL_BLOCK_SCSI;
	if (starts(name, "vd"))
		return KL_BLOCK_VIRTIO;
	return KL_BLOCK_OTHER;
}

struct walk {
	bool thin;              /* a thin pool somewhere below */
	const char *why;        /* what made it shared */
};

static enum kl_tri shared_of(const char *dir, int depth, struct walk *w);

/* Combine over slaves/: any shared -> shared; all local -> local. */
static enum kl_tri shared_slaves(const char *dir, int depth, struct walk *w)
{
	char sdir[PATH_MAX];
	if (snprintf(sdir, sizeof sdir, "%s/slaves", dir) >= (int)sizeof sdir)
		return KL_TRI_UNKNOWN;
	_cleanup_closedir_ DIR *d = opendir(sdir);
	if (!d)
		return KL_TRI_UNKNOWN;
	enum kl_tri all = KL_TRI_UNKNOWN;
	int count = 0;
	struct dirent *e;
	while ((e = readdir(d)) && count < MAX_SLAVES) {
		if (e->d_name[0] == '.')
			continue;
		char sub[PATH_MAX];
		if (snprintf(sub, sizeof sub, "%s/%s", sdir, e->d_name) >= (int)sizeof sub)
			continue;
		enum kl_tri t = shared_of(sub, depth + 1, w);
		if (t == KL_TRI_YES)
			return KL_TRI_YES;
		if (count == 0)
			all = t;
		else if (t != all)
			all = KL_TRI_UNKNOWN;
		count++;
	}
	return all;
}

static enum kl_tri nvme_shared(const char *dir, struct walk *w)
{
	char buf[32], ddir[PATH_MAX];
	/* device/transport for a plain controller; for a native multipath
	 * head, device/ is the subsystem and holds the controllers. */
	if (read_in(dir, "device/transport", buf, sizeof buf) < 0) {
		if (snprintf(ddir, sizeof ddir, "%s/device", dir) >= (int)sizeof ddir)
			return KL_TRI_UNKNOWN;
		_cleanup_closedir_ DIR *d = opendir(ddir);
		struct dirent *e;
		bool found = false;
		while (d && (e = readdir(d))) {
			char f[NAME_MAX + 32];
			if (!starts(e->d_name, "nvme"))
				continue;
			snprintf(f, sizeof f, "device/%s/transport", e->d_name);
			if (read_in(dir, f, buf, sizeof buf) >= 0) {
				found = true;
				break;
			}
		}
		if (!found)
			return KL_TRI_UNKNOWN;
	}
	if (strcmp(buf, "pcie") == 0 || strcmp(buf, "loop") == 0)
		return KL_TRI_NO;
	w->why = strcmp(buf, "tcp") == 0 ? "NVMe over TCP" : strcmp(buf, "rdma") == 0 ? "NVMe over RDMA" :
		 strcmp(buf, "fc") == 0 ? "NVMe over Fibre Channel" : "NVMe over fabrics";
	return KL_TRI_YES;
}

static enum kl_tri shared_of(const char *dir, int depth, struct walk *w)
{
	char name[128], disk[PATH_MAX];
	bool part;
	if (depth > MAX_DEPTH || !read_uevent(dir, name, sizeof name, &part))
		return KL_TRI_UNKNOWN;
	if (part) {
		if (snprintf(disk, sizeof disk, "%s/..", dir) >= (int)sizeof disk)
			return KL_TRI_UNKNOWN;
		dir = disk;
		if (!read_uevent(dir, name, sizeof name, &part))
			return KL_TRI_UNKNOWN;
	}
	if (starts(name, "dm-")) {
		char uuid[256];
		if (read_in(dir, "dm/uuid", uuid, sizeof uuid) >= 0) {
			if (starts(uuid, "mpath-")) {
				w->why = "multipath device (SAN)";
				return KL_TRI_YES;
			}
			size_t n = strlen(uuid);
			if (n > 6 && strcmp(uuid + n - 6, "-tpool") == 0)
				w->thin = true;
		}
		return shared_slaves(dir, depth, w);
	}
	if (starts(name, "md"))
		return shared_slaves(dir, depth, w);
	if (starts(name, "rbd")) {
		w->why = "Ceph RBD device";
		return KL_TRI_YES;
	}
	if (starts(name, "sd")) {
		/* The device's physical sysfs path shows its transport:
		 * .../host2/session1/target2:0:0/... for iSCSI,
		 * .../host3/rport-3:0-0/target3:0:0/... for Fibre Channel. */
		char real[PATH_MAX];
		if (realpath(dir, real)) {
			if (strstr(real, "/session")) {
				w->why = "iSCSI LUN";
				return KL_TRI_YES;
			}
			if (strstr(real, "/rport-")) {
				w->why = "Fibre Channel LUN";
				return KL_TRI_YES;
			}
		}
		return KL_TRI_NO;
	}
	if (starts(name, "nvme"))
		return nvme_shared(dir, w);
	if (starts(name, "vd") || starts(name, "zram") || starts(name, "pmem") || starts(name, "mmcblk") ||
	    starts(name, "xvd") || starts(name, "ram"))
		return KL_TRI_NO;
	return KL_TRI_UNKNOWN;  /* loop (its file may be anywhere), nbd, others */
}

void kl_probe_block_sysfs(const struct kl_probe_env *env, unsigned maj, unsigned min, struct kl_disk_facts *out)
{
	const char *sys = env && env->sys_root ? env->sys_root : "";
	char base[PATH_MAX], disk[PATH_MAX], name[128], buf[PATH_MAX];
	bool part;

	snprintf(base, sizeof base, "%s/sys/dev/block/%u:%u", sys, maj, min);
	if (!read_uevent(base, name, sizeof name, &part)) {
		out->block_kind = KL_BLOCK_OTHER;
		strvec_pushf(&out->notes, "block device %u:%u has no sysfs entry", maj, min);
		return;
	}
	char partname[128] = "";
	snprintf(disk, sizeof disk, "%s", base);
	if (part) {
		snprintf(partname, sizeof partname, "%s", name);
		if (snprintf(disk, sizeof disk, "%s/..", base) >= (int)sizeof disk ||
		    !read_uevent(disk, name, sizeof name, &part)) {
			out->block_kind = KL_BLOCK_OTHER;
			strvec_pushf(&out->notes, "partition %s: its disk has no sysfs entry", partname);
			return;
		}
	}
	out->block_kind = kind_of(name, disk);

	if (read_in(disk, "queue/rotational", buf, 16) > 0)
		out->rotational = buf[0] == '1' ? KL_TRI_YES : KL_TRI_NO;

	struct walk w = { false, NULL };
	out->shared = shared_of(disk, 0, &w);
	if (w.why)
		strvec_pushf(&out->notes, "%s: shared storage", w.why);

	/* A disk is allocated up front; thin pools, loop files and network
	 * block devices may not be. */
	switch (out->block_kind) {
	case KL_BLOCK_LVM: case KL_BLOCK_DM: case KL_BLOCK_MD:
		out->preallocated = w.thin ? KL_TRI_NO : KL_TRI_YES;
		break;
	case KL_BLOCK_LOOP: case KL_BLOCK_RBD: case KL_BLOCK_NBD: case KL_BLOCK_OTHER:
		out->preallocated = KL_TRI_UNKNOWN;
		break;
	default:
		out->preallocated = KL_TRI_YES;
	}

	/* Notes that explain the kind. */
	const char *shown = partname[0] ? partname : name;
	switch (out->block_kind) {
	case KL_BLOCK_LVM:
	case KL_BLOCK_DM: {
		char dmname[256] = "";
		read_in(disk, "dm/name", dmname, sizeof dmname);
		strvec_pushf(&out->notes, "%s %s%s%s%s", out->block_kind == KL_BLOCK_LVM ? "LVM logical volume" :
			     "device-mapper device", name, dmname[0] ? " (" : "", dmname, dmname[0] ? ")" : "");
		if (w.thin)
			strvec_pushf(&out->notes, "thin-provisioned: writes allocate from the pool");
		break;
	}
	case KL_BLOCK_LOOP:
		if (read_in(disk, "loop/backing_file", buf, sizeof buf) > 0)
			strvec_pushf(&out->notes, "loop device %s backed by %s", name, buf);
		else
			strvec_pushf(&out->notes, "loop device %s has no backing file", name);
		if (read_in(disk, "loop/dio", buf, 16) > 0 && buf[0] == '1')
			strvec_pushf(&out->notes, "loop device %s does direct I/O to its file", name);
		break;
	case KL_BLOCK_MD:
		if (read_in(disk, "md/level", buf, 64) > 0)
			strvec_pushf(&out->notes, "md array %s (%s)", name, buf);
		break;
	default:
		break;
	}
	if (partname[0])
		strvec_pushf(&out->notes, "partition %s of %s (%s%s)", shown, name, kl_block_kind_name(out->block_kind),
			     out->rotational == KL_TRI_YES ? ", rotational" : "");
	else if (out->block_kind != KL_BLOCK_LVM && out->block_kind != KL_BLOCK_DM)
		strvec_pushf(&out->notes, "block device %s (%s%s)", name, kl_block_kind_name(out->block_kind),
			     out->rotational == KL_TRI_YES ? ", rotational" : "");
}
