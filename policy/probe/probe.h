/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Backend probes: what a disk really is, and what the host can do.  Every
 * probe reads through a kl_probe_env so tests can point it at a fake /sys and
 * /proc and fake system-call answers.  A permission error is a fact (a note),
 * not a failure. */
#ifndef KL_POLICY_PROBE_H
#define KL_POLICY_PROBE_H

#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include "common/error.h"
#include "policy/types.h"

struct kl_probe_env {
	const char *sys_root;    /* prefix for /sys paths ("" = real) */
	const char *proc_root;   /* prefix for /proc paths ("" = real) */
	/* Test hooks; NULL = the real call. */
	int (*statfs_fn)(const char *path, struct statfs *out);
	int (*stat_fn)(const char *path, struct stat *out);
	int (*open_fn)(const char *path, int flags);       /* used for the O_DIRECT probe */
	int (*io_uring_fn)(struct kl_error *err);          /* 0 usable, -1 not (err says why) */
	int (*libaio_fn)(struct kl_error *err);            /* 0 usable, -1 not */
	unsigned long aio_reserve;                         /* headroom kept free in fs.aio-nr; 0 = default */
};

/* The real machine. */
extern const struct kl_probe_env kl_probe_env_real;

/* Fill facts for one disk from what the command line gives (driver, path,
 * format, readonly).  Returns 0; -1 only on a bug-level failure (err set).
 * An unreachable or unknown backend is KL_BACKEND_UNKNOWN with a note. */
int kl_probe_disk(const struct kl_probe_env *env, const struct kl_disk_given *given,
		  struct kl_disk_facts *out, struct kl_error *err);

/* Fill host facts (io_uring in the kernel, libaio and its headroom).  The
 * QEMU build's io_uring support (io_uring_qemu) is left UNKNOWN here: the
 * launcher asks QEMU and fills it in. */
int kl_probe_host(const struct kl_probe_env *env, struct kl_host_facts *out, struct kl_error *err);

/* Names for statfs magics ("ext4", "nfs"...); NULL if unknown.  shared is set
 * for cluster/network filesystems. */
const char *kl_fs_name(unsigned long magic, bool *shared);

/* ---- Additions (probe module): building blocks of the two probes above,
 * usable and testable on their own. ---- */

/* fs.aio-nr headroom kept free when env->aio_reserve is 0: 4 contexts of
 * QEMU's 1024 events (see probe-host.c for the derivation). */
#define KL_AIO_RESERVE_DEFAULT 4096UL

/* Note on kl_probe_disk/kl_probe_host: they zero *out first, so pass facts
 * that hold no notes yet (the launcher fills aio_ranking/calibration and
 * io_uring_qemu afterwards). */

/* The real checks the NULL hooks stand for: io_uring sets up a ring, submits
 * a NOP and reaps it (with a 1 s deadline) and checks READV/WRITEV/FSYNC;
 * libaio calls io_setup(0) (EINVAL = the syscall works; no io_destroy, which
 * costs an RCU grace period).  0 usable, -1 not (err says why). */
int kl_probe_io_uring_real(struct kl_error *err);
int kl_probe_libaio_real(struct kl_error *err);

/* Is a filesystem shared storage, by statfs magic: YES network/cluster, NO
 * local, UNKNOWN for unknown magics and for those that can be either (FUSE,
 * 9p, virtiofs, vxfs). */
enum kl_tri kl_fs_shared(unsigned long magic);
/* Same for a FUSE mount type from the mount table ("fuse.glusterfs",
 * "fuse.lxcfs", "fuseblk"): YES known network, NO known local, else UNKNOWN. */
enum kl_tri kl_fuse_shared(const char *type);

/* What an image header says. */
struct kl_image_info {
	char format[16];        /* QEMU driver name: "raw", "qcow2", "qcow", "qed", "vmdk", "vdi",
				 * "vhdx", "vpc", "luks", "dmg", "parallels", "bochs", "cloop" */
	unsigned version;       /* qcow/qcow2/luks version, 0 if none */
	uint64_t virtual_size;  /* guest size from the header (qcow, qcow2, qed, vmdk sparse, vdi,
				 * vpc, parallels), 0 unknown */
	bool has_backing;       /* qcow/qcow2/qed with a backing file, differencing VHD */
};
/* Detect the format from the first bytes of an image (up to 512) and, when
 * the caller has them, its last 512 bytes (VHD fixed-disk footer, DMG
 * trailer; tail may be NULL).  Anything unrecognised is "raw". */
void kl_image_detect(const unsigned char *head, size_t head_len, const unsigned char *tail, size_t tail_len,
		     struct kl_image_info *out);

/* Filesystem type of the mount holding path (resolved with realpath when it
 * exists): from <proc_root>/proc/self/mountinfo, preferring entries whose
 * device is dev and then the longest mount-point prefix; else from
 * <proc_root>/proc/self/mounts by longest prefix.  Returns 0 and fills type
 * (and mnt if not NULL), -1 if no mount table could be read or nothing
 * matched. */
int kl_probe_mount_type(const struct kl_probe_env *env, const char *path, dev_t dev, char *type, size_t type_len,
			char *mnt, size_t mnt_len);

/* A block device MAJ:MIN from <sys_root>/sys/dev/block: kind (partitions
 * count as their disk), rotational, shared (multipath, iSCSI/FC LUNs, NVMe
 * over fabrics, rbd; followed through dm/md slaves), preallocated (NO for
 * thin LVM) and notes.  Never fails: what sysfs lacks stays UNKNOWN. */
void kl_probe_block_sysfs(const struct kl_probe_env *env, unsigned maj, unsigned min, struct kl_disk_facts *out);

/* Regular files: statfs (fs, fs_magic, shared; a FUSE mount's type from the
 * mount table), rotational of the filesystem's device and storage_id. */
void kl_probe_file_fs(const struct kl_probe_env *env, const char *path, const struct stat *st,
		      struct kl_disk_facts *out);
/* Regular files: preallocated when the allocated blocks (st_blocks * 512)
 * cover, within 64 KiB + 0.1%, the guest size the header gives (qcow2, qed,
 * vmdk, vdi, vpc, parallels) or else st_size.  img may be NULL (raw). */
void kl_probe_file_alloc(const struct stat *st, const struct kl_image_info *img, struct kl_disk_facts *out);

/* Does the command line name a network backend?  True for a network driver
 * (rbd, nbd, iscsi, gluster, ssh, http(s), ftp(s), nfs, curl...) or, when the
 * driver is absent or only a format name, a protocol prefix in path ("nbd:",
 * "rbd:", "gluster+tcp://"...); drv gets the driver name ("gluster").  With
 * file/host_device/host_cdrom the path is a plain name, as in QEMU. */
bool kl_probe_is_network(const char *driver, const char *path, char *drv, size_t drv_len);

/* Read a small text file <root><path> (sysfs, procfs) into buf, without the
 * trailing newline.  Returns its length, -1 with errno on failure. */
ssize_t kl_probe_read_file(const char *root, const char *path, char *buf, size_t len);

#endif
