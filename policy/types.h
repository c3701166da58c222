/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The vocabulary shared by probes, policy and launcher: what a disk is
 * (facts), what the command line asked for (given), and what we decided. */
#ifndef KL_POLICY_TYPES_H
#define KL_POLICY_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "common/strbuf.h"
#include "common/tri.h"

enum kl_backend {
	KL_BACKEND_UNKNOWN = 0,
	KL_BACKEND_BLOCK,
	KL_BACKEND_FILE,
	KL_BACKEND_NETWORK,
};

enum kl_block_kind {
	KL_BLOCK_NONE = 0,  /* not a block device */
	KL_BLOCK_OTHER,
	KL_BLOCK_LVM,       /* device-mapper with an LVM- uuid */
	KL_BLOCK_DM,        /* other device-mapper */
	KL_BLOCK_LOOP,
	KL_BLOCK_NVME,
	KL_BLOCK_MD,
	KL_BLOCK_RBD,
	KL_BLOCK_NBD,
	KL_BLOCK_SCSI,      /* sd*: SCSI, SATA, SAS, USB, iSCSI LUNs */
	KL_BLOCK_VIRTIO,    /* vd* (nested guests) */
};

/* Concrete values and the policy's two pseudo values (auto/keep). UNSET means
 * "not given on the command line" (QEMU's default applies). */
enum kl_aio {
	KL_AIO_UNSET = 0,
	KL_AIO_THREADS,
	KL_AIO_NATIVE,
	KL_AIO_IO_URING,
	KL_AIO_AUTO,
	KL_AIO_KEEP,
};

enum kl_cache {
	KL_CACHE_UNSET = 0,  /* QEMU default: writeback */
	KL_CACHE_WRITEBACK,
	KL_CACHE_NONE,
	KL_CACHE_WRITETHROUGH,
	KL_CACHE_DIRECTSYNC,
	KL_CACHE_UNSAFE,
	KL_CACHE_AUTO,
	KL_CACHE_KEEP,
};

/* The three flags a cache mode stands for (table in DESIGN.md). */
struct kl_cache_flags {
	bool writeback;   /* guest-visible write cache */
	bool direct;      /* O_DIRECT */
	bool no_flush;
};

/* What the probes found about one disk's backend. */
struct kl_disk_facts {
	enum kl_backend backend;
	enum kl_block_kind block_kind;
	enum kl_tri rotational;
	char fs[32];               /* "ext4", "xfs", "tmpfs", "nfs", "fuse.glusterfs"; "" unknown */
	unsigned long fs_magic;    /* statfs f_type, 0 unknown */
	char format[16];           /* from the image header: "raw", "qcow2", "vmdk"...; "" unknown */
	enum kl_tri preallocated;  /* files: allocated blocks cover the size */
	enum kl_tri cow;           /* files: every write goes to new blocks (btrfs without NOCOW, ZFS, bcachefs) */
	enum kl_tri shared;        /* on shared/cluster storage */
	enum kl_tri odirect;       /* an O_DIRECT open of the image works */
	char network_driver[16];   /* "rbd", "nbd", ...: for KL_BACKEND_NETWORK */
	char storage_id[64];       /* identity for calibration: "dev:MAJ:MIN" of the device or filesystem */
	struct strvec notes;       /* probe remarks that become reasons ("O_DIRECT open: permission denied") */
	/* Filled by the launcher from a stored calibration of this storage
	 * (kvm-launch --calibrate): engines fastest first, UNSET-terminated. */
	enum kl_aio aio_ranking[4];
	char calibration[64];      /* which calibration, "" if none */
};

/* Host-wide capabilities. */
struct kl_host_facts {
	enum kl_tri io_uring_kernel;   /* a ring can be set up and a NOP completes */
	enum kl_tri io_uring_qemu;     /* the real QEMU was built with io_uring */
	enum kl_tri libaio;            /* io_setup works */
	long aio_nr, aio_max_nr;       /* /proc/sys/fs/aio-nr, aio-max-nr; -1 unknown */
	enum kl_tri libaio_headroom;   /* aio-nr + reserve < aio-max-nr */
	struct strvec notes;
};

/* What the command line gives for one disk (from the argv model). */
struct kl_disk_given {
	const char *id;            /* device id ("virtio-disk0") or drive id; may be NULL */
	const char *node;          /* top (format) node name, or drive id */
	const char *path;          /* file name / device path / network target; may be NULL */
	const char *driver;        /* protocol driver: file, host_device, host_cdrom, nbd, rbd...; may be NULL */
	const char *format;        /* format driver given: raw, qcow2...; may be NULL */
	enum kl_aio aio;           /* as given (UNSET if absent) */
	enum kl_cache cache;       /* as given, derived from cache= or the cache.* flags */
	bool readonly;
	bool cdrom;
	bool shareable;            /* libvirt <shareable/>: share-rw=on on the device */
	bool snapshot;
};

/* The VM around the disks. */
struct kl_vm_context {
	const char *name;          /* -name guest=; may be NULL */
	bool incoming;             /* -incoming present */
};

/* Live settings the agent applies over QMP (block_set_io_throttle). 0 = unset. */
struct kl_throttle {
	int64_t bps, bps_rd, bps_wr, iops, iops_rd, iops_wr;
	int64_t bps_max, bps_rd_max, bps_wr_max, iops_max, iops_rd_max, iops_wr_max;
	int64_t iops_size;
	char group[64];
};

/* The throttle limits by their QMP names (block_set_io_throttle), in the
 * order every file, table and message lists them: the six base limits,
 * their bursts (_max), the bursts' lengths (_max_length), iops_size.  The
 * policy sets all but the lengths (they have no field in struct
 * kl_throttle); --set and --status know them all.  "group" is no limit. */
#define KL_THROTTLE_NBASE 6
#define KL_THROTTLE_NKEYS 19
struct kl_throttle_key {
	const char *name;
	bool bytes;          /* a byte count (K, M, G, T suffixes), not a count of requests */
	int field;           /* offsetof(struct kl_throttle, ...), -1 for the lengths */
};
extern const struct kl_throttle_key kl_throttle_keys[KL_THROTTLE_NKEYS];
/* The index of a limit in kl_throttle_keys, -1 if name is none. */
int kl_throttle_key_find(const char *name);
/* The field of limit i in t; NULL for the lengths. */
int64_t *kl_throttle_field(struct kl_throttle *t, size_t i);

struct kl_decision {
	enum kl_aio aio;           /* concrete value, or UNSET = leave as given */
	enum kl_cache cache;       /* concrete value, or UNSET = leave as given */
	bool changed;              /* aio or cache differ from what was given */
	char rule[64];             /* name of the rule that matched ("default:block", "user:fast-lvm", "nova") */
	char calibration[64];      /* calibration used for aio=auto, "" if none */
	struct kl_throttle throttle;
	bool has_throttle;
	struct strvec reasons;     /* human-readable, in the order they applied */
};

const char *kl_aio_name(enum kl_aio aio);        /* "threads", ...; "" for UNSET */
const char *kl_cache_name(enum kl_cache cache);  /* "none", ...; "" for UNSET */
const char *kl_backend_name(enum kl_backend b);  /* "block", "file", "network", "unknown" */
const char *kl_block_kind_name(enum kl_block_kind k);
/* Parse names; return -1 if unknown. Accept "auto"/"keep" too. */
int kl_aio_parse(const char *s, enum kl_aio *out);
int kl_cache_parse(const char *s, enum kl_cache *out);
/* What QEMU runs with for a setting: the setting itself when it is a mode
 * QEMU knows, else QEMU's default (threads; writeback).  The one place that
 * says what QEMU's defaults are. */
enum kl_aio kl_aio_effective(enum kl_aio aio);
enum kl_cache kl_cache_effective(enum kl_cache cache);
/* Flags of a concrete mode (UNSET maps to writeback, QEMU's default). */
struct kl_cache_flags kl_cache_flags(enum kl_cache cache);
/* The mode name for a flag triple, KL_CACHE_UNSET if it has no name
 * (writeback=off with no-flush=on). */
enum kl_cache kl_cache_from_flags(struct kl_cache_flags f);

void kl_disk_facts_free(struct kl_disk_facts *f);
void kl_host_facts_free(struct kl_host_facts *h);
void kl_decision_free(struct kl_decision *d);

#endif
