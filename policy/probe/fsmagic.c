/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Filesystem names and "is it shared storage" by statfs magic, and the same
 * question for FUSE mount types.  Pure tables: no I/O. */
#include "policy/probe/probe.h"

#include <string.h>

struct fs_entry {
	unsigned long magic;
	const char *name;
	enum kl_tri shared;   /* YES: network/cluster; NO: local; UNKNOWN: can be either */
};

/* ext2/3/4 share one magic: "ext4" is the name policies will match most. */
static const struct fs_entry fs_table[] = {
	/* local */
	{ 0xEF53,     "ext4",      KL_TRI_NO },
	{ 0x58465342, "xfs",       KL_TRI_NO },
	{ 0x9123683E, "btrfs",     KL_TRI_NO },
	{ 0x01021994, "tmpfs",     KL_TRI_NO },
	{ 0x858458f6, "ramfs",     KL_TRI_NO },
	{ 0x958458f6, "hugetlbfs", KL_TRI_NO },
	{ 0x2FC12FC1, "zfs",       KL_TRI_NO },
	{ 0x794c7630, "overlayfs", KL_TRI_NO },
	{ 0xF2F52010, "f2fs",      KL_TRI_NO },
	{ 0xca451a4e, "bcachefs",  KL_TRI_NO },
	{ 0x3434,     "nilfs2",    KL_TRI_NO },
	{ 0x3153464a, "jfs",       KL_TRI_NO },
	{ 0x52654973, "reiserfs",  KL_TRI_NO },
	{ 0x5346544e, "ntfs",      KL_TRI_NO },
	{ 0x7366746e, "ntfs3",     KL_TRI_NO },
	{ 0x2011BAB0, "exfat",     KL_TRI_NO },
	{ 0x4d44,     "vfat",      KL_TRI_NO },
	{ 0x9660,     "iso9660",   KL_TRI_NO },
	{ 0x15013346, "udf",       KL_TRI_NO },
	{ 0x73717368, "squashfs",  KL_TRI_NO },
	{ 0xE0F5E1E2, "erofs",     KL_TRI_NO },
	{ 0xf15f,     "ecryptfs",  KL_TRI_NO },
	/* network and cluster filesystems */
	{ 0x6969,     "nfs",       KL_TRI_YES },
	{ 0x517B,     "smb",       KL_TRI_YES },
	{ 0xFF534D42, "cifs",      KL_TRI_YES },
	{ 0xFE534D42, "smb2",      KL_TRI_YES },
	{ 0x01161970, "gfs2",      KL_TRI_YES },
	{ 0x7461636f, "ocfs2",     KL_TRI_YES },
	{ 0x00C36400, "ceph",      KL_TRI_YES },
	{ 0x47504653, "gpfs",      KL_TRI_YES },
	{ 0x6B414653, "afs",       KL_TRI_YES },   /* kAFS */
	{ 0x5346414F, "afs",       KL_TRI_YES },   /* OpenAFS */
	{ 0x19830326, "beegfs",    KL_TRI_YES },
	{ 0x0BD00BD0, "lustre",    KL_TRI_YES },
	{ 0x20030528, "orangefs",  KL_TRI_YES },
	{ 0x73757245, "coda",      KL_TRI_YES },
	{ 0x564c,     "ncpfs",     KL_TRI_YES },
	/* either: VxFS may be the cluster variant (CFS); 9p and virtiofs are a
	 * directory shared by our own host when we run nested; FUSE needs the
	 * mount table (kl_fuse_shared). */
	{ 0xa501FCF5, "vxfs",      KL_TRI_UNKNOWN },
	{ 0x01021997, "9p",        KL_TRI_UNKNOWN },
	{ 0x6a656a63, "virtiofs",  KL_TRI_UNKNOWN },
	{ 0x65735546, "fuse",      KL_TRI_UNKNOWN },
};

static const struct fs_entry *fs_lookup(unsigned long magic)
{
	magic &= 0xffffffffUL;  /* f_type is a signed word on 32-bit hosts */
	for (size_t i = 0; i < sizeof fs_table / sizeof *fs_table; i++)
		if (fs_table[i].magic == magic)
			return &fs_table[i];
	return NULL;
}

const char *kl_fs_name(unsigned long magic, bool *shared)
{
	const struct fs_entry *e = fs_lookup(magic);
	if (shared)
		*shared = e && e->shared == KL_TRI_YES;
	return e ? e->name : NULL;
}

enum kl_tri kl_fs_shared(unsigned long magic)
{
	const struct fs_entry *e = fs_lookup(magic);
	return e ? e->shared : KL_TRI_UNKNOWN;
}

/* FUSE subtypes (the part after "fuse." in the mount table). */
static const char *const fuse_network[] = {
	"glusterfs", "sshfs", "ceph-fuse", "ceph", "cephfs", "s3fs", "gcsfuse", "goofys", "rclone",
	"juicefs", "mfs", "moosefs", "lizardfs", "seaweedfs", "weed", "blobfuse", "blobfuse2",
	"quobyte", "xtreemfs", "cvmfs2", "cvmfs", "davfs", "davfs2", "curlftpfs", "gdrivefs",
	"beegfs", "lustre", "orangefs", "pvfs2fuse", "hdfs", "alluxio-fuse", "mountpoint-s3",
	"objectivefs", "ossfs", "cosfs", "geesefs", "nfs", "smbnetfs", "gvfs-sftp",
	NULL,
};

/* Known to keep their data on this host. */
static const char *const fuse_local[] = {
	"lxcfs", "squashfuse", "squashfuse_ll", "fuse-overlayfs", "fuse2fs", "fuse-ext2",
	"ntfs-3g", "ntfs", "exfat", "vmhgfs-fuse", "portal", "xdg-document-portal", "appimage",
	"archivemount", "fuse-zip", "guestmount", "zfs-fuse", "dislocker", "vdfuse",
	NULL,
};

static bool in_list(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

enum kl_tri kl_fuse_shared(const char *type)
{
	if (!type)
		return KL_TRI_UNKNOWN;
	/* "fuseblk" is FUSE over a local block device (ntfs-3g, exfat-fuse). */
	if (strcmp(type, "fuseblk") == 0 || strncmp(type, "fuseblk.", 8) == 0)
		return KL_TRI_NO;
	const char *sub = type;
	if (strncmp(type, "fuse.", 5) == 0)
		sub = type + 5;
	else if (strcmp(type, "fuse") == 0)
		return KL_TRI_UNKNOWN;  /* no subtype: cannot tell */
	if (in_list(fuse_network, sub))
		return KL_TRI_YES;
	if (in_list(fuse_local, sub))
		return KL_TRI_NO;
	/* Stacked filesystems (bindfs, mergerfs, encfs, gocryptfs...) are as
	 * shared as what lies beneath: unknown. */
	return KL_TRI_UNKNOWN;
}
