/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests of the backend probes against a fake /sys and /proc built at
 * test time in a temporary directory, and fake stat/statfs/open/io_uring/
 * libaio answers.  The last cases run the real host probes. */
#include "policy/probe/probe.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static char tmp[1024];     /* the fake root */

/* ---- building the fake tree ---- */

static void mkdir_p(const char *path)
{
	char buf[4096];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(buf, 0755);
			*p = '/';
		}
	mkdir(buf, 0755);
}

static void tpath(char *buf, size_t len, const char *rel)
{
	if (snprintf(buf, len, "%s/%s", tmp, rel) >= (int)len) {
		fprintf(stderr, "path too long: %s/%s\n", tmp, rel);
		exit(99);
	}
}

/* Writes data (len bytes, or a string when len is 0) to tmp/rel, creating dirs. */
static void put(const char *rel, const void *data, size_t len)
{
	char path[4096], dir[4096];
	tpath(path, sizeof path, rel);
	snprintf(dir, sizeof dir, "%s", path);
	*strrchr(dir, '/') = '\0';
	mkdir_p(dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		perror(path);
		exit(99);
	}
	if (!len)
		len = strlen(data);
	if (write(fd, data, len) != (ssize_t)len) {
		perror(path);
		exit(99);
	}
	close(fd);
}

static void putf(const char *rel, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(const char *rel, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	put(rel, buf, 0);
}

/* tmp/rel -> target (target relative, as sysfs does, or absolute under tmp when it starts with '@') */
static void link_to(const char *rel, const char *target)
{
	char path[4096], dir[4096], t[4096];
	tpath(path, sizeof path, rel);
	snprintf(dir, sizeof dir, "%s", path);
	*strrchr(dir, '/') = '\0';
	mkdir_p(dir);
	if (target[0] == '@')
		tpath(t, sizeof t, target + 1);
	else
		snprintf(t, sizeof t, "%s", target);
	unlink(path);
	if (symlink(t, path) < 0) {
		perror(path);
		exit(99);
	}
}

/* A block device directory under sys/devices with its uevent, and the
 * sys/dev/block/MAJ:MIN link to it. */
static void blockdev(const char *devdir, const char *name, unsigned ma, unsigned mi, bool partition)
{
	char rel[1024], target[1024];
	snprintf(rel, sizeof rel, "sys/%s/uevent", devdir);
	putf(rel, "MAJOR=%u\nMINOR=%u\nDEVNAME=%s\nDEVTYPE=%s\n", ma, mi, name, partition ? "partition" : "disk");
	if (partition) {
		snprintf(rel, sizeof rel, "sys/%s/partition", devdir);
		put(rel, "1\n", 0);
	}
	snprintf(rel, sizeof rel, "sys/dev/block/%u:%u", ma, mi);
	snprintf(target, sizeof target, "../../%s", devdir);
	link_to(rel, target);
}

static void rotational(const char *devdir, int rot)
{
	char rel[1024];
	snprintf(rel, sizeof rel, "sys/%s/queue/rotational", devdir);
	putf(rel, "%d\n", rot);
}

#define SDA "devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda"
#define SDB "devices/platform/host2/session1/target2:0:0/2:0:0:0/block/sdb"
#define SDC "devices/pci0000:00/0000:00:03.0/host3/rport-3:0-0/target3:0:0/3:0:0:1/block/sdc"
#define NVME0 "devices/pci0000:00/0000:00:04.0/nvme/nvme0"
#define NVME1 "devices/virtual/nvme-fabrics/ctl/nvme1"
#define VIRT "devices/virtual/block"

static void build_sys(void)
{
	/* sda: rotational SATA disk with two partitions */
	blockdev(SDA, "sda", 8, 0, false);
	rotational(SDA, 1);
	blockdev(SDA "/sda1", "sda1", 8, 1, true);
	blockdev(SDA "/sda2", "sda2", 8, 2, true);
	/* sdb: iSCSI LUN, sdc: Fibre Channel LUN */
	blockdev(SDB, "sdb", 8, 16, false);
	rotational(SDB, 0);
	blockdev(SDC, "sdc", 8, 32, false);
	rotational(SDC, 1);
	/* nvme0n1 on PCIe with a partition; nvme1n1 over TCP */
	blockdev(NVME0 "/nvme0n1", "nvme0n1", 259, 0, false);
	rotational(NVME0 "/nvme0n1", 0);
	put("sys/" NVME0 "/transport", "pcie\n", 0);
	link_to("sys/" NVME0 "/nvme0n1/device", "..");
	blockdev(NVME0 "/nvme0n1/nvme0n1p1", "nvme0n1p1", 259, 1, true);
	blockdev(NVME1 "/nvme1n1", "nvme1n1", 259, 2, false);
	rotational(NVME1 "/nvme1n1", 0);
	put("sys/" NVME1 "/transport", "tcp\n", 0);
	link_to("sys/" NVME1 "/nvme1n1/device", "..");
	/* dm-0: LVM on sda2 */
	blockdev(VIRT "/dm-0", "dm-0", 253, 0, false);
	rotational(VIRT "/dm-0", 1);
	put("sys/" VIRT "/dm-0/dm/uuid", "LVM-Xy3KqT0aLxJ2Wm8nVb5cRz1pQd6sFg7hJk4lMn9oPq2rSt5uVw8xYz1aBc3dEf\n", 0);
	put("sys/" VIRT "/dm-0/dm/name", "vg0-lv0\n", 0);
	link_to("sys/" VIRT "/dm-0/slaves/sda2", "@sys/" SDA "/sda2");
	/* dm-1: dm-crypt on the NVMe partition */
	blockdev(VIRT "/dm-1", "dm-1", 253, 1, false);
	rotational(VIRT "/dm-1", 0);
	put("sys/" VIRT "/dm-1/dm/uuid", "CRYPT-LUKS2-0a1b2c3d4e5f-luks-0a1b\n", 0);
	put("sys/" VIRT "/dm-1/dm/name", "luks-0a1b\n", 0);
	link_to("sys/" VIRT "/dm-1/slaves/nvme0n1p1", "@sys/" NVME0 "/nvme0n1/nvme0n1p1");
	/* dm-2: multipath over sdb and sdc */
	blockdev(VIRT "/dm-2", "dm-2", 253, 2, false);
	rotational(VIRT "/dm-2", 0);
	put("sys/" VIRT "/dm-2/dm/uuid", "mpath-3600508b400105e210000900000490000\n", 0);
	link_to("sys/" VIRT "/dm-2/slaves/sdb", "@sys/" SDB);
	/* dm-3: thin LV on the pool dm-4 (itself on sda1) */
	blockdev(VIRT "/dm-3", "dm-3", 253, 3, false);
	rotational(VIRT "/dm-3", 1);
	put("sys/" VIRT "/dm-3/dm/uuid", "LVM-Xy3KqT0aLxJ2Wm8nVb5cRz1pQd6sFg7hthin0000000000000000000000000000\n", 0);
	put("sys/" VIRT "/dm-3/dm/name", "vg0-thin1\n", 0);
	blockdev(VIRT "/dm-4", "dm-4", 253, 4, false);
	put("sys/" VIRT "/dm-4/dm/uuid", "LVM-Xy3KqT0aLxJ2Wm8nVb5cRz1pQd6sFg7hpool000000000000000000000000000-tpool\n", 0);
	link_to("sys/" VIRT "/dm-3/slaves/dm-4", "@sys/" VIRT "/dm-4");
	link_to("sys/" VIRT "/dm-4/slaves/sda1", "@sys/" SDA "/sda1");
	/* dm-5: LVM on the iSCSI LUN: shared through its slave */
	blockdev(VIRT "/dm-5", "dm-5", 253, 5, false);
	put("sys/" VIRT "/dm-5/dm/uuid", "LVM-sharedvg00000000000000000000lv000000000000000000000000000000\n", 0);
	link_to("sys/" VIRT "/dm-5/slaves/sdb", "@sys/" SDB);
	/* loop0 with a backing file */
	blockdev(VIRT "/loop0", "loop0", 7, 0, false);
	rotational(VIRT "/loop0", 0);
	put("sys/" VIRT "/loop0/loop/backing_file", "/var/lib/images/disk.img\n", 0);
	put("sys/" VIRT "/loop0/loop/dio", "1\n", 0);
	/* md0: raid1 over sda1 and nvme0n1p1 */
	blockdev(VIRT "/md0", "md0", 9, 0, false);
	rotational(VIRT "/md0", 0);
	put("sys/" VIRT "/md0/md/level", "raid1\n", 0);
	link_to("sys/" VIRT "/md0/slaves/sda1", "@sys/" SDA "/sda1");
	link_to("sys/" VIRT "/md0/slaves/nvme0n1p1", "@sys/" NVME0 "/nvme0n1/nvme0n1p1");
	/* rbd0, nbd0, vda, sr0 */
	blockdev("devices/virtual/block/rbd0", "rbd0", 252, 0, false);
	rotational(VIRT "/rbd0", 0);
	blockdev("devices/virtual/block/nbd0", "nbd0", 43, 0, false);
	rotational(VIRT "/nbd0", 0);
	blockdev("devices/pci0000:00/0000:00:05.0/virtio3/block/vda", "vda", 254, 0, false);
	rotational("devices/pci0000:00/0000:00:05.0/virtio3/block/vda", 1);
	blockdev("devices/pci0000:00/0000:00:1f.2/ata2/host1/target1:0:0/1:0:0:0/block/sr0", "sr0", 11, 0, false);
}

/* ---- fake system calls ---- */

enum { F_ODIRECT_ONLY = 1 };

struct fake {
	const char *path;
	int stat_errno;
	mode_t mode;
	unsigned rdev_ma, rdev_mi;   /* block devices */
	unsigned dev_ma, dev_mi;     /* files: the filesystem's device */
	long long size, blocks;
	unsigned long magic;         /* statfs f_type */
	int statfs_errno;
	int open_errno;              /* every open */
	int odirect_errno;           /* only O_DIRECT opens */
	const char *backing;         /* real file under tmp that open() opens */
};

static const struct fake *fakes;
static size_t nfakes;
static int n_odirect_opens, n_plain_opens;

static const struct fake *find_fake(const char *path)
{
	for (size_t i = 0; i < nfakes; i++)
		if (strcmp(fakes[i].path, path) == 0)
			return &fakes[i];
	return NULL;
}

static int fake_stat(const char *path, struct stat *st)
{
	const struct fake *f = find_fake(path);
	if (!f) {
		errno = ENOENT;
		return -1;
	}
	if (f->stat_errno) {
		errno = f->stat_errno;
		return -1;
	}
	memset(st, 0, sizeof *st);
	st->st_mode = f->mode | 0600;
	st->st_rdev = makedev(f->rdev_ma, f->rdev_mi);
	st->st_dev = makedev(f->dev_ma, f->dev_mi);
	st->st_size = f->size;
	st->st_blocks = f->blocks;
	return 0;
}

static int fake_statfs(const char *path, struct statfs *sfs)
{
	const struct fake *f = find_fake(path);
	if (!f) {
		errno = ENOENT;
		return -1;
	}
	if (f->statfs_errno) {
		errno = f->statfs_errno;
		return -1;
	}
	memset(sfs, 0, sizeof *sfs);
	sfs->f_type = (__fsword_t)f->magic;
	return 0;
}

static int fake_open(const char *path, int flags)
{
	const struct fake *f = find_fake(path);
	char real[4096];
	if (flags & O_DIRECT)
		n_odirect_opens++;
	else
		n_plain_opens++;
	if (!f) {
		errno = ENOENT;
		return -1;
	}
	if (f->open_errno) {
		errno = f->open_errno;
		return -1;
	}
	if ((flags & O_DIRECT) && f->odirect_errno) {
		errno = f->odirect_errno;
		return -1;
	}
	tpath(real, sizeof real, f->backing ? f->backing : "img/zero.raw");
	return open(real, (flags & ~O_DIRECT) | O_CLOEXEC);
}

static int uring_calls, aio_calls;
static int fake_uring_ok(struct kl_error *err) { (void)err; uring_calls++; return 0; }
static int fake_uring_eperm(struct kl_error *err) { uring_calls++; return kl_error_errno(err, EPERM, "io_uring_queue_init"); }
static int fake_aio_ok(struct kl_error *err) { (void)err; aio_calls++; return 0; }
static int fake_aio_eagain(struct kl_error *err) { aio_calls++; return kl_error_errno(err, EAGAIN, "io_setup (fs.aio-max-nr reached)"); }

static char sys_root[4096], proc_root[4096];

static struct kl_probe_env fake_env(void)
{
	struct kl_probe_env env = {
		.sys_root = sys_root,
		.proc_root = proc_root,
		.statfs_fn = fake_statfs,
		.stat_fn = fake_stat,
		.open_fn = fake_open,
		.io_uring_fn = fake_uring_ok,
		.libaio_fn = fake_aio_ok,
	};
	return env;
}

/* ---- helpers ---- */

static bool has_note(const struct strvec *notes, const char *needle)
{
	for (size_t i = 0; i < notes->n; i++)
		if (strstr(notes->v[i], needle))
			return true;
	return false;
}

static void dump_notes(const struct strvec *notes)
{
	for (size_t i = 0; i < notes->n; i++)
		printf("#     note: %s\n", notes->v[i]);
}

#define CHECK_NOTE(facts, needle) do { \
	if (!has_note(&(facts).notes, needle)) { \
		printf("#   %s:%d: no note containing \"%s\"\n", __FILE__, __LINE__, needle); \
		dump_notes(&(facts).notes); \
		unit_case_failed = 1; \
	} } while (0)

static void probe_with(const struct fake *table, size_t n, const char *path, const char *driver, const char *format,
		       struct kl_disk_facts *out)
{
	struct kl_probe_env env = fake_env();
	struct kl_disk_given g = { .path = path, .driver = driver, .format = format };
	struct kl_error err = KL_ERROR_INIT;
	fakes = table;
	nfakes = n;
	CHECK_INTEQ(kl_probe_disk(&env, &g, out, &err), 0);
}

#define PROBE(table, path, out) probe_with(table, sizeof table / sizeof *table, path, NULL, NULL, out)

#define GiB (1LL << 30)

static const struct fake blockdevs[] = {
	{ .path = "/dev/vg0/lv0", .mode = S_IFBLK, .rdev_ma = 253, .rdev_mi = 0 },
	{ .path = "/dev/mapper/luks-0a1b", .mode = S_IFBLK, .rdev_ma = 253, .rdev_mi = 1,
	  .backing = "img/qcow2-v3" },
	{ .path = "/dev/mapper/mpatha", .mode = S_IFBLK, .rdev_ma = 253, .rdev_mi = 2 },
	{ .path = "/dev/vg0/thin1", .mode = S_IFBLK, .rdev_ma = 253, .rdev_mi = 3 },
	{ .path = "/dev/sharedvg/lv", .mode = S_IFBLK, .rdev_ma = 253, .rdev_mi = 5 },
	{ .path = "/dev/nvme0n1", .mode = S_IFBLK, .rdev_ma = 259, .rdev_mi = 0 },
	{ .path = "/dev/nvme0n1p1", .mode = S_IFBLK, .rdev_ma = 259, .rdev_mi = 1 },
	{ .path = "/dev/nvme1n1", .mode = S_IFBLK, .rdev_ma = 259, .rdev_mi = 2 },
	{ .path = "/dev/loop0", .mode = S_IFBLK, .rdev_ma = 7, .rdev_mi = 0 },
	{ .path = "/dev/sda", .mode = S_IFBLK, .rdev_ma = 8, .rdev_mi = 0 },
	{ .path = "/dev/sda1", .mode = S_IFBLK, .rdev_ma = 8, .rdev_mi = 1 },
	{ .path = "/dev/sdb", .mode = S_IFBLK, .rdev_ma = 8, .rdev_mi = 16 },
	{ .path = "/dev/sdc", .mode = S_IFBLK, .rdev_ma = 8, .rdev_mi = 32 },
	{ .path = "/dev/md0", .mode = S_IFBLK, .rdev_ma = 9, .rdev_mi = 0 },
	{ .path = "/dev/rbd0", .mode = S_IFBLK, .rdev_ma = 252, .rdev_mi = 0 },
	{ .path = "/dev/nbd0", .mode = S_IFBLK, .rdev_ma = 43, .rdev_mi = 0 },
	{ .path = "/dev/vda", .mode = S_IFBLK, .rdev_ma = 254, .rdev_mi = 0 },
	{ .path = "/dev/sr0", .mode = S_IFBLK, .rdev_ma = 11, .rdev_mi = 0 },
	{ .path = "/dev/sdz", .mode = S_IFBLK, .rdev_ma = 65, .rdev_mi = 144 },   /* not in sysfs */
	{ .path = "/dev/sdy", .mode = S_IFBLK, .rdev_ma = 65, .rdev_mi = 128, .odirect_errno = EACCES },
	{ .path = "/dev/null", .mode = S_IFCHR, .rdev_ma = 1, .rdev_mi = 3 },
};

/* ---- block devices ---- */

static void test_lvm(void)
{
	struct kl_disk_facts f;
	PROBE(blockdevs, "/dev/vg0/lv0", &f);
	CHECK_INTEQ(f.backend, KL_BACKEND_BLOCK);
	CHECK_INTEQ(f.block_kind, KL_BLOCK_LVM);
	CHECK_INTEQ(f.rotational, KL_TRI_YES);
	CHECK_STREQ(f.storage_id, "dev:253:0");
	CHECK_INTEQ(f.shared, KL_TRI_NO);          /* on a local SATA partition */
	CHECK_INTEQ(f.preallocated, KL_TRI_YES);
	CHECK_INTEQ(f.odirect, KL_TRI_YES);
	CHECK_STREQ(f.format, "raw");
	CHECK_STREQ(f.fs, "");
	CHECK_NOTE(f, "LVM logical volume dm-0 (vg0-lv0)");
	kl_disk_facts_free(&f);
}

static void test_dm_crypt_qcow2(void)
{
	struct kl_disk_facts f;
	PROBE(blockdevs, "/dev/mapper/luks-0a1b", &f);
	CHECK_INTEQ(f.block_kind, KL_BLOCK_DM);
	CHECK_INTEQ(f.rotational, KL_TRI_NO);
	CHECK_INTEQ(f.shared, KL_TRI_NO);          /* dm-crypt on a PCIe NVMe partition */
	CHECK_STREQ(f.format, "qcow2");            /* qcow2 written straight on the device */
	CHECK_NOTE(f, "device-mapper device dm-1 (luks-0a1b)");
	kl_disk_facts_free(&f);
}

static void test_multipath(void)
{
	struct kl_disk_facts f;
	PROBE(blockdevs, "/dev/mapper/mpatha", &f);
	CHECK_INTEQ(f.block_kind, KL_BLOCK_DM);
	CHECK_INTEQ(f.shared, KL_TRI_YES);
	CHECK_NOTE(f, "multipath");
	kl_disk_facts_free(&f);

	PROBE(blockdevs, "/dev/sharedvg/lv", &f);
	CHECK_INTEQ(f.block_kind, KL_BLOCK_LVM);
	CHECK_INTEQ(f.shared, KL_TRI_YES);         /* LVM on an iSCSI LUN */
	CHECK_NOTE(f, "iSCSI LUN: shared storage");
	kl_disk_facts_free(&f);
}

static void test_thin_lvm(void)
{
	struct kl_disk_facts f;
	PROBE(blockdevs, "/dev/vg0/thin1", &f);
	CHECK_INTEQ(f.block_kind, KL_BLOCK_LVM);
	CHECK_INTEQ(f.preallocated, KL_TRI_NO);
	CHECK_INTEQ(f.shared, KL_TRI_NO);
	CHECK_NOTE(f, "thin-provisioned");
	kl_disk_facts_free(&f);
}

static void test_nvme(void)
{
	struct kl_disk_facts f;
	PROBE(blockdevs, "/dev/nvme0n1", &f);
	CHECK_INTEQ(f.block_kind, KL_BLOCK_NVME);
	CHECK_INTEQ(f.rotational, KL_TRI_NO);
	CHECK_INTEQ(f.shared, KL_TRI_NO);
	CHECK_STREQ(f.storage_id, "dev:259:0");
	kl_disk_facts_free(&f);

	PROBE(blockdevs, "/dev/nvme0n1p1", &f);   /* partition: the disk's kind */
	CHECK_INTEQ(f.block_kind, KL_BLOCK_NVME);
	CHECK_INTEQ(f.rotational, KL_TRI_NO);
	CHECK_STREQ(f.storage_id, "dev:259:1");
	CHECK_NOTE(f, "partition nvme0n1p1 of nvme0n1");
	kl_disk_facts_free(&f);

	PROBE(blockdevs, "/dev/nvme1n1", &f);
	CHECK_INTEQ(f.block_kind, KL_BLOCK_NVME);
	CHECK_INTEQ(f.shared, KL_TRI_YES);
	CHECK_NOTE(f, "NVMe over TCP");
	kl_disk_facts_free(&f);
}

static void test_loop(void)
{
	struct kl_disk_facts f;
	PROBE(blockdevs, "/dev/loop0", &f);
	CHECK_INTEQ(f.block_kind, KL_BLOCK_LOOP);
	CHECK_INTEQ(f.preallocated, KL_TRI_UNKNOWN);
	CHECK_INTEQ(f.shared, KL_TRI_UNKNOWN);
	CHECK_NOTE(f, "loop device loop0 backed by /var/lib/images/disk.img");
	CHECK_NOTE(f, "direct I/O");
	kl_disk_facts_free(&f);
}

static void test_scsi_rotational(void)
{
	struct kl_disk_facts f;
	PROBE(blockdevs, "/dev/sda", &f);
	CHECK_INTEQ(f.block_kind, KL_BLOCK_SCSI);
	CHECK_INTEQ(f.rotational, KL_TRI_YES);
	CHECK_INTEQ(f.shared, KL_TRI_NO);
	CHECK_STREQ(f.storage_id, "dev:8:0");
	kl_disk_facts_free(&f);

	PROBE(blockdevs, "/dev/sda1", &f);
	CHECK_INTEQ(f.block_kind, KL_BLOCK_SCSI);
	CHECK_INTEQ(f.rotational, KL_TRI_YES);     /* the parent's queue */
	CHECK_NOTE(f, "partition sda1 of sda (scsi, rotational)");
	kl_disk_facts_free(&f);

	PROBE(blockdevs, "/dev/sdb", &f);
	CHECK_INTEQ(f.block_kind, KL_BLOCK_SCSI);
	CHECK_INTEQ(f.rotational, KL_TRI_NO);
	CHECK_INTEQ(f.shared, KL_TRI_YES);
	CHECK_NOTE(f, "iSCSI LUN");
	kl_disk_facts_free(&f);

	PROBE(blockdevs, "/dev/sdc", &f);
	CHECK_INTEQ(f.shared, KL_TRI_YES);
	CHECK_NOTE(f, "Fibre Channel LUN");
	kl_disk_facts_free(&f);
}

static void test_md(void)
{
	struct kl_disk_facts f;
	PROBE(blockdevs, "/dev/md0", &f);
	CHECK_INTEQ(f.block_kind, KL_BLOCK_MD);
	CHECK_INTEQ(f.rotational, KL_TRI_NO);
	CHECK_INTEQ(f.shared, KL_TRI_NO);          /* both members local */
	CHECK_NOTE(f, "md array md0 (raid1)");
	kl_disk_facts_free(&f);
}

static void test_other_kinds(void)
{
	struct kl_disk_facts f;
	PROBE(blockdevs, "/dev/rbd0", &f);
	CHECK_INTEQ(f.block_kind, KL_BLOCK_RBD);
	CHECK_INTEQ(f.shared, KL_TRI_YES);
	kl_disk_facts_free(&f);
	PROBE(blockdevs, "/dev/nbd0", &f);
	CHECK_INTEQ(f.block_kind, KL_BLOCK_NBD);
	CHECK_INTEQ(f.shared, KL_TRI_UNKNOWN);
	kl_disk_facts_free(&f);
	PROBE(blockdevs, "/dev/vda", &f);
	CHECK_INTEQ(f.block_kind, KL_BLOCK_VIRTIO);
	CHECK_INTEQ(f.rotational, KL_TRI_YES);
	kl_disk_facts_free(&f);
	PROBE(blockdevs, "/dev/sr0", &f);
	CHECK_INTEQ(f.block_kind, KL_BLOCK_OTHER);
	CHECK_INTEQ(f.rotational, KL_TRI_UNKNOWN);
	kl_disk_facts_free(&f);
	PROBE(blockdevs, "/dev/sdz", &f);
	CHECK_INTEQ(f.backend, KL_BACKEND_BLOCK);
	CHECK_INTEQ(f.block_kind, KL_BLOCK_OTHER);
	CHECK_STREQ(f.storage_id, "dev:65:144");
	CHECK_NOTE(f, "block device 65:144 has no sysfs entry");
	kl_disk_facts_free(&f);
	PROBE(blockdevs, "/dev/null", &f);
	CHECK_INTEQ(f.backend, KL_BACKEND_UNKNOWN);
	CHECK_NOTE(f, "neither a regular file nor a block device");
	kl_disk_facts_free(&f);
}

/* ---- files ---- */

static const struct fake files[] = {
	{ .path = "/run/vm/disk.img", .mode = S_IFREG, .dev_ma = 0, .dev_mi = 40, .size = GiB, .blocks = GiB / 512,
	  .magic = TMPFS_MAGIC, .odirect_errno = EINVAL },
	{ .path = "/mnt/nfs/vm.qcow2", .mode = S_IFREG, .dev_ma = 0, .dev_mi = 51, .size = 200 << 20,
	  .blocks = (200 << 20) / 512, .magic = NFS_SUPER_MAGIC, .backing = "img/qcow2-v3" },
	{ .path = "/mnt/cifs/vm.img", .mode = S_IFREG, .dev_ma = 0, .dev_mi = 52, .size = GiB, .blocks = 8,
	  .magic = CIFS_SUPER_MAGIC },
	{ .path = "/mnt/smb2/vm.img", .mode = S_IFREG, .dev_ma = 0, .dev_mi = 53, .size = GiB, .blocks = GiB / 512,
	  .magic = (unsigned long)(int32_t)0xFE534D42 },  /* sign-extended as a 32-bit f_type would be */
	{ .path = "/srv/btrfs/vm.img", .mode = S_IFREG, .dev_ma = 0, .dev_mi = 60, .size = GiB, .blocks = GiB / 512,
	  .magic = BTRFS_SUPER_MAGIC },
	{ .path = "/tank/vm.img", .mode = S_IFREG, .dev_ma = 0, .dev_mi = 61, .size = GiB, .blocks = GiB / 512,
	  .magic = 0x2FC12FC1 },
	{ .path = "/mnt/gluster/vm1.img", .mode = S_IFREG, .dev_ma = 0, .dev_mi = 55, .size = GiB,
	  .blocks = GiB / 512, .magic = FUSE_SUPER_MAGIC, .odirect_errno = EINVAL },
	{ .path = "/var/lib/lxcfs/vm.img", .mode = S_IFREG, .dev_ma = 0, .dev_mi = 56, .size = GiB,
	  .blocks = GiB / 512, .magic = FUSE_SUPER_MAGIC },
	{ .path = "/mnt/bind fs/vm.img", .mode = S_IFREG, .dev_ma = 0, .dev_mi = 57, .size = GiB,
	  .blocks = GiB / 512, .magic = FUSE_SUPER_MAGIC },
	{ .path = "/mnt/nowhere/vm.img", .mode = S_IFREG, .dev_ma = 0, .dev_mi = 58, .size = GiB,
	  .blocks = GiB / 512, .magic = FUSE_SUPER_MAGIC },
	{ .path = "/var/lib/libvirt/images/vm.img", .mode = S_IFREG, .dev_ma = 8, .dev_mi = 1, .size = GiB,
	  .blocks = 2048, .magic = EXT4_SUPER_MAGIC },
	{ .path = "/srv/xfs/vm.img", .mode = S_IFREG, .dev_ma = 253, .dev_mi = 1, .size = GiB, .blocks = GiB / 512,
	  .magic = XFS_SUPER_MAGIC },
	{ .path = "/weird/vm.img", .mode = S_IFREG, .dev_ma = 0, .dev_mi = 70, .size = 4096, .blocks = 8,
	  .magic = 0x12345678 },
	{ .path = "/nostatfs/vm.img", .mode = S_IFREG, .dev_ma = 8, .dev_mi = 2, .size = 4096, .blocks = 8,
	  .statfs_errno = EACCES, .magic = EXT4_SUPER_MAGIC },
	{ .path = "/secret/vm.img", .stat_errno = EACCES },
	{ .path = "/noodirect/vm.img", .mode = S_IFREG, .dev_ma = 8, .dev_mi = 2, .size = 4096, .blocks = 8,
	  .magic = EXT4_SUPER_MAGIC, .odirect_errno = EPERM },
	{ .path = "/unreadable/vm.img", .mode = S_IFREG, .dev_ma = 8, .dev_mi = 2, .size = 4096, .blocks = 8,
	  .magic = EXT4_SUPER_MAGIC, .open_errno = EACCES },
};

static void test_tmpfs_no_odirect(void)
{
	struct kl_disk_facts f;
	PROBE(files, "/run/vm/disk.img", &f);
	CHECK_INTEQ(f.backend, KL_BACKEND_FILE);
	CHECK_STREQ(f.fs, "tmpfs");
	CHECK_INTEQ(f.fs_magic, TMPFS_MAGIC);
	CHECK_INTEQ(f.odirect, KL_TRI_NO);
	CHECK_INTEQ(f.shared, KL_TRI_NO);
	CHECK_INTEQ(f.preallocated, KL_TRI_YES);
	CHECK_INTEQ(f.rotational, KL_TRI_UNKNOWN);  /* anonymous device */
	CHECK_STREQ(f.storage_id, "dev:0:40");
	CHECK_STREQ(f.format, "raw");
	CHECK_NOTE(f, "filesystem refuses O_DIRECT (tmpfs)");
	kl_disk_facts_free(&f);
}

static void test_nfs(void)
{
	struct kl_disk_facts f;
	PROBE(files, "/mnt/nfs/vm.qcow2", &f);
	CHECK_STREQ(f.fs, "nfs");
	CHECK_INTEQ(f.shared, KL_TRI_YES);
	CHECK_STREQ(f.format, "qcow2");
	CHECK_INTEQ(f.odirect, KL_TRI_YES);
	/* 200 MiB allocated for a 10 GiB guest disk */
	CHECK_INTEQ(f.preallocated, KL_TRI_NO);
	CHECK_NOTE(f, "nfs is shared storage");
	CHECK_NOTE(f, "qcow2 image allocates as the guest writes");
	kl_disk_facts_free(&f);
}

static void test_cifs(void)
{
	struct kl_disk_facts f;
	PROBE(files, "/mnt/cifs/vm.img", &f);
	CHECK_STREQ(f.fs, "cifs");
	CHECK_INTEQ(f.shared, KL_TRI_YES);
	CHECK_INTEQ(f.preallocated, KL_TRI_NO);
	CHECK_NOTE(f, "sparse file");
	kl_disk_facts_free(&f);
	PROBE(files, "/mnt/smb2/vm.img", &f);
	CHECK_STREQ(f.fs, "smb2");
	CHECK_INTEQ(f.fs_magic, 0xFE534D42);
	CHECK_INTEQ(f.shared, KL_TRI_YES);
	kl_disk_facts_free(&f);
}

static void test_cow_filesystems(void)
{
	struct kl_disk_facts f;
	PROBE(files, "/srv/btrfs/vm.img", &f);
	CHECK_STREQ(f.fs, "btrfs");
	CHECK_INTEQ(f.shared, KL_TRI_NO);
	CHECK_INTEQ(f.preallocated, KL_TRI_YES);
	CHECK_NOTE(f, "btrfs is copy-on-write");
	/* The fake file has no attribute flags to read: btrfs's default.  Real
	 * NOCOW files: tests/qemu/t-probe-fs.sh on a loop-mounted btrfs. */
	CHECK_INTEQ(f.cow, KL_TRI_YES);
	kl_disk_facts_free(&f);
	PROBE(files, "/tank/vm.img", &f);
	CHECK_STREQ(f.fs, "zfs");
	CHECK_INTEQ(f.shared, KL_TRI_NO);
	CHECK_NOTE(f, "zfs is copy-on-write");
	CHECK_INTEQ(f.cow, KL_TRI_YES);
	kl_disk_facts_free(&f);
}

static void test_fuse(void)
{
	struct kl_disk_facts f;
	PROBE(files, "/mnt/gluster/vm1.img", &f);
	CHECK_STREQ(f.fs, "fuse.glusterfs");
	CHECK_INTEQ(f.fs_magic, FUSE_SUPER_MAGIC);
	CHECK_INTEQ(f.shared, KL_TRI_YES);
	CHECK_INTEQ(f.odirect, KL_TRI_NO);
	CHECK_NOTE(f, "FUSE filesystem fuse.glusterfs on /mnt/gluster: shared storage");
	kl_disk_facts_free(&f);
	PROBE(files, "/var/lib/lxcfs/vm.img", &f);
	CHECK_STREQ(f.fs, "fuse.lxcfs");
	CHECK_INTEQ(f.shared, KL_TRI_NO);
	kl_disk_facts_free(&f);
	PROBE(files, "/mnt/bind fs/vm.img", &f);    /* "\040" in the mount table */
	CHECK_STREQ(f.fs, "fuse.bindfs");
	CHECK_INTEQ(f.shared, KL_TRI_UNKNOWN);
	CHECK_NOTE(f, "may be shared");
	kl_disk_facts_free(&f);
	PROBE(files, "/mnt/nowhere/vm.img", &f);    /* only "/" (ext4) matches: no FUSE type */
	CHECK_STREQ(f.fs, "fuse");
	CHECK_INTEQ(f.shared, KL_TRI_UNKNOWN);
	CHECK_NOTE(f, "not in the mount table");
	kl_disk_facts_free(&f);
}

static void test_local_fs(void)
{
	struct kl_disk_facts f;
	PROBE(files, "/var/lib/libvirt/images/vm.img", &f);
	CHECK_STREQ(f.fs, "ext4");
	CHECK_INTEQ(f.shared, KL_TRI_NO);
	CHECK_INTEQ(f.rotational, KL_TRI_YES);     /* on sda1: the parent's queue */
	CHECK_STREQ(f.storage_id, "dev:8:1");
	CHECK_INTEQ(f.preallocated, KL_TRI_NO);     /* 1 MiB of 1 GiB */
	CHECK_NOTE(f, "sparse file: 1024 KiB allocated of 1024 MiB");
	kl_disk_facts_free(&f);
	PROBE(files, "/srv/xfs/vm.img", &f);
	CHECK_STREQ(f.fs, "xfs");
	CHECK_INTEQ(f.rotational, KL_TRI_NO);      /* dm-1 */
	CHECK_INTEQ(f.preallocated, KL_TRI_YES);
	kl_disk_facts_free(&f);
	PROBE(files, "/weird/vm.img", &f);
	CHECK_STREQ(f.fs, "");
	CHECK_INTEQ(f.fs_magic, 0x12345678);
	CHECK_INTEQ(f.shared, KL_TRI_UNKNOWN);
	CHECK_NOTE(f, "unknown filesystem type 0x12345678");
	kl_disk_facts_free(&f);
	PROBE(files, "/nostatfs/vm.img", &f);
	CHECK_INTEQ(f.backend, KL_BACKEND_FILE);
	CHECK_STREQ(f.fs, "");
	CHECK_NOTE(f, "statfs /nostatfs/vm.img: Permission denied");
	kl_disk_facts_free(&f);
}

static void test_permission_denied(void)
{
	struct kl_disk_facts f;
	PROBE(files, "/secret/vm.img", &f);
	CHECK_INTEQ(f.backend, KL_BACKEND_UNKNOWN);
	CHECK_NOTE(f, "stat /secret/vm.img: Permission denied");
	kl_disk_facts_free(&f);

	n_odirect_opens = 0;
	PROBE(files, "/noodirect/vm.img", &f);
	CHECK_INTEQ(f.backend, KL_BACKEND_FILE);
	CHECK_INTEQ(n_odirect_opens, 1);
	CHECK_INTEQ(f.odirect, KL_TRI_UNKNOWN);
	CHECK_STREQ(f.format, "raw");
	CHECK_NOTE(f, "O_DIRECT open of /noodirect/vm.img: Operation not permitted");
	kl_disk_facts_free(&f);

	PROBE(blockdevs, "/dev/sdy", &f);
	CHECK_INTEQ(f.backend, KL_BACKEND_BLOCK);
	CHECK_INTEQ(f.odirect, KL_TRI_UNKNOWN);
	CHECK_NOTE(f, "O_DIRECT open of /dev/sdy: Permission denied");
	kl_disk_facts_free(&f);

	PROBE(files, "/unreadable/vm.img", &f);
	CHECK_STREQ(f.format, "");
	CHECK_INTEQ(f.odirect, KL_TRI_UNKNOWN);
	CHECK_NOTE(f, "cannot read the image header of /unreadable/vm.img: Permission denied");
	kl_disk_facts_free(&f);
}

/* ---- names that cannot be probed, network backends ---- */

static void test_fdset_and_missing(void)
{
	struct kl_disk_facts f;
	n_plain_opens = n_odirect_opens = 0;
	PROBE(files, "/dev/fdset/3", &f);
	CHECK_INTEQ(f.backend, KL_BACKEND_UNKNOWN);
	CHECK_NOTE(f, "cannot probe an fd set (/dev/fdset/3)");
	CHECK_INTEQ(n_plain_opens + n_odirect_opens, 0);
	kl_disk_facts_free(&f);

	probe_with(files, sizeof files / sizeof *files, NULL, NULL, NULL, &f);
	CHECK_INTEQ(f.backend, KL_BACKEND_UNKNOWN);
	CHECK_NOTE(f, "no file name to probe");
	kl_disk_facts_free(&f);

	PROBE(files, "/does/not/exist.img", &f);
	CHECK_INTEQ(f.backend, KL_BACKEND_UNKNOWN);
	CHECK_NOTE(f, "stat /does/not/exist.img: No such file or directory");
	kl_disk_facts_free(&f);

	probe_with(files, sizeof files / sizeof *files, "json:{\"driver\":\"rbd\"}", NULL, NULL, &f);
	CHECK_INTEQ(f.backend, KL_BACKEND_UNKNOWN);
	kl_disk_facts_free(&f);

	/* "file:" prefix is stripped, for file and for no driver */
	probe_with(files, sizeof files / sizeof *files, "file:/run/vm/disk.img", NULL, NULL, &f);
	CHECK_INTEQ(f.backend, KL_BACKEND_FILE);
	CHECK_STREQ(f.fs, "tmpfs");
	kl_disk_facts_free(&f);
	probe_with(blockdevs, sizeof blockdevs / sizeof *blockdevs, "/dev/sda", "host_device", NULL, &f);
	CHECK_INTEQ(f.backend, KL_BACKEND_BLOCK);
	kl_disk_facts_free(&f);

	/* a format driver name where the protocol driver was implied: probe the file */
	probe_with(files, sizeof files / sizeof *files, "/run/vm/disk.img", "qcow2", NULL, &f);
	CHECK_INTEQ(f.backend, KL_BACKEND_FILE);
	kl_disk_facts_free(&f);

	/* drivers we cannot look behind */
	probe_with(files, sizeof files / sizeof *files, "nvme://0000:00:04.0/1", "nvme", NULL, &f);
	CHECK_INTEQ(f.backend, KL_BACKEND_UNKNOWN);
	CHECK_NOTE(f, "driver nvme is not probed");
	kl_disk_facts_free(&f);
}

static void test_network(void)
{
	static const struct { const char *driver, *path, *expect; enum kl_tri shared; } cases[] = {
		{ "rbd", "pool/image", "rbd", KL_TRI_YES },
		{ "nbd", NULL, "nbd", KL_TRI_UNKNOWN },
		{ "iscsi", "iscsi://10.0.0.1/iqn.2000-01.com.example:t/1", "iscsi", KL_TRI_YES },
		{ "gluster", "gluster://h/vol/img", "gluster", KL_TRI_YES },
		{ "ssh", NULL, "ssh", KL_TRI_YES },
		{ "http", NULL, "http", KL_TRI_YES },
		{ "https", NULL, "https", KL_TRI_YES },
		{ "ftp", NULL, "ftp", KL_TRI_YES },
		{ "ftps", NULL, "ftps", KL_TRI_YES },
		{ "nfs", NULL, "nfs", KL_TRI_YES },
		{ "curl", NULL, "curl", KL_TRI_YES },
		{ NULL, "nbd:localhost:10809", "nbd", KL_TRI_UNKNOWN },
		{ NULL, "nbd+unix:///export?socket=/run/nbd.sock", "nbd", KL_TRI_NO },
		{ NULL, "nbd:unix:/run/nbd.sock:exportname=x", "nbd", KL_TRI_NO },
		{ NULL, "rbd:pool/image:id=admin", "rbd", KL_TRI_YES },
		{ NULL, "iscsi://10.0.0.1/iqn.2000-01.com.example:t/1", "iscsi", KL_TRI_YES },
		{ NULL, "gluster+tcp://h:24007/vol/img", "gluster", KL_TRI_YES },
		{ NULL, "gluster:vol/img", "gluster", KL_TRI_YES },
		{ NULL, "ssh://user@host/images/x.img", "ssh", KL_TRI_YES },
		{ NULL, "http://example.com/x.iso", "http", KL_TRI_YES },
		{ NULL, "https://example.com/x.iso", "https", KL_TRI_YES },
		{ NULL, "nfs://server/export/x.img", "nfs", KL_TRI_YES },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct kl_disk_facts f;
		n_plain_opens = n_odirect_opens = 0;
		probe_with(files, sizeof files / sizeof *files, cases[i].path, cases[i].driver, "raw", &f);
		if (f.backend != KL_BACKEND_NETWORK || strcmp(f.network_driver, cases[i].expect) != 0 ||
		    f.shared != cases[i].shared) {
			printf("#   case %zu (%s, %s): backend %s driver \"%s\" shared %d\n", i,
			       cases[i].driver ? cases[i].driver : "-", cases[i].path ? cases[i].path : "-",
			       kl_backend_name(f.backend), f.network_driver, f.shared);
			unit_case_failed = 1;
		}
		CHECK_INTEQ(n_plain_opens + n_odirect_opens, 0);
		CHECK_INTEQ(f.odirect, KL_TRI_UNKNOWN);
		kl_disk_facts_free(&f);
	}
	/* not network: a colon later in a path, an explicit local driver, an unknown scheme */
	char drv[16];
	CHECK(!kl_probe_is_network(NULL, "/images/nbd:x.img", drv, sizeof drv));
	CHECK(!kl_probe_is_network("file", "nbd:localhost:10809", drv, sizeof drv));
	CHECK(!kl_probe_is_network(NULL, "C:/x.img", drv, sizeof drv));
	CHECK(!kl_probe_is_network(NULL, "foo:bar", drv, sizeof drv));
	CHECK(!kl_probe_is_network(NULL, NULL, drv, sizeof drv));
	CHECK(kl_probe_is_network("raw", "nbd:localhost:10809", drv, sizeof drv));  /* format name, no protocol */
	CHECK_STREQ(drv, "nbd");
	CHECK(!kl_probe_is_network("host_device", "rbd:pool/x", drv, sizeof drv));
	CHECK(kl_probe_is_network(NULL, "sheepdog+unix:///vdi?socket=/s", drv, sizeof drv));
	CHECK_STREQ(drv, "sheepdog");
}

/* ---- image formats ---- */

struct hdr { const char *name; unsigned char b[1024]; size_t len; size_t tail_at; };

static void be32put(unsigned char *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static void be64put(unsigned char *p, uint64_t v) { be32put(p, v >> 32); be32put(p + 4, (uint32_t)v); }
static void le32put(unsigned char *p, uint32_t v) { p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24; }
static void le64put(unsigned char *p, uint64_t v) { le32put(p, (uint32_t)v); le32put(p + 4, v >> 32); }

/* Writes tmp/img/NAME holding the given head, padded to size, with tail
 * bytes at size - 512 when tail is not NULL. */
static void write_image(const char *name, const void *head, size_t hlen, const void *tail, size_t tlen, size_t size)
{
	unsigned char *buf = calloc(1, size);
	char rel[256];
	memcpy(buf, head, hlen);
	if (tail)
		memcpy(buf + size - 512, tail, tlen);
	snprintf(rel, sizeof rel, "img/%s", name);
	put(rel, buf, size);
	free(buf);
}

static void build_images(void)
{
	unsigned char h[512];

	memset(h, 0, sizeof h);
	write_image("zero.raw", h, sizeof h, NULL, 0, 65536);
	put("img/empty.raw", "", 0);
	put("img/short.raw", "QF", 2);

	memcpy(h, "QFI\xfb", 4);
	be32put(h + 4, 3);
	be64put(h + 24, 10 * GiB);
	write_image("qcow2-v3", h, 512, NULL, 0, 196608);
	be32put(h + 4, 2);
	be64put(h + 8, 0x68);    /* backing file offset */
	be64put(h + 24, 256 << 10);
	write_image("qcow2-v2-backing", h, 512, NULL, 0, 512 << 10);
	memset(h, 0, sizeof h);
	memcpy(h, "QFI\xfb", 4);
	be32put(h + 4, 1);
	be64put(h + 24, GiB);
	write_image("qcow", h, 512, NULL, 0, 4096);

	memset(h, 0, sizeof h);
	memcpy(h, "QED\0", 4);
	le64put(h + 16, 1);      /* QED_F_BACKING_FILE */
	le64put(h + 48, 2 * GiB);
	write_image("qed", h, 512, NULL, 0, 4096);

	memset(h, 0, sizeof h);
	memcpy(h, "KDMV", 4);
	le32put(h + 4, 1);
	le64put(h + 12, 2097152); /* sectors */
	write_image("vmdk-sparse", h, 512, NULL, 0, 4096);
	static const char desc[] = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\ncreateType=\"monolithicFlat\"\n";
	write_image("vmdk-desc", desc, strlen(desc), NULL, 0, 512);

	memset(h, 0, sizeof h);
	memcpy(h, "<<< Oracle VM VirtualBox Disk Image >>>\n", 40);
	le32put(h + 0x40, 0xbeda107f);
	le64put(h + 0x170, 4 * GiB);
	write_image("vdi", h, 512, NULL, 0, 4096);

	write_image("vhdx", "vhdxfile", strlen("vhdxfile"), NULL, 0, 4096);

	memset(h, 0, sizeof h);
	memcpy(h, "conectix", 8);
	be64put(h + 48, 8 * GiB);
	be32put(h + 60, 3);      /* dynamic */
	write_image("vpc-dynamic", h, 512, NULL, 0, 4096);
	be32put(h + 60, 2);      /* fixed: footer at the end only */
	write_image("vpc-fixed", "", 0, h, 512, 8192);

	memset(h, 0, sizeof h);
	memcpy(h, "LUKS\xba\xbe\x00\x02", 8);
	write_image("luks2", h, 512, NULL, 0, 16384);

	memset(h, 0, sizeof h);
	memcpy(h, "koly", 4);
	write_image("dmg", "", 0, h, 512, 8192);

	memset(h, 0, sizeof h);
	memcpy(h, "WithoutFreeSpace", 16);
	le64put(h + 36, 2048);
	write_image("parallels", h, 512, NULL, 0, 4096);
	static const char bochs[] = "Bochs Virtual HD Image";
	static const char cloop[] = "#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n";
	write_image("bochs", bochs, strlen(bochs), NULL, 0, 4096);
	write_image("cloop", cloop, strlen(cloop), NULL, 0, 4096);
}

static void test_formats(void)
{
	static const struct { const char *file, *format; unsigned version; } cases[] = {
		{ "zero.raw", "raw", 0 }, { "empty.raw", "raw", 0 }, { "short.raw", "raw", 0 },
		{ "qcow2-v3", "qcow2", 3 }, { "qcow2-v2-backing", "qcow2", 2 }, { "qcow", "qcow", 1 },
		{ "qed", "qed", 0 }, { "vmdk-sparse", "vmdk", 0 }, { "vmdk-desc", "vmdk", 0 }, { "vdi", "vdi", 0 },
		{ "vhdx", "vhdx", 0 }, { "vpc-dynamic", "vpc", 0 }, { "vpc-fixed", "vpc", 0 },
		{ "luks2", "luks", 2 }, { "dmg", "dmg", 0 }, { "parallels", "parallels", 0 },
		{ "bochs", "bochs", 0 }, { "cloop", "cloop", 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char path[4096], rel[256];
		struct kl_disk_facts f;
		struct kl_disk_given g = { 0 };
		struct kl_error err = KL_ERROR_INIT;
		snprintf(rel, sizeof rel, "img/%s", cases[i].file);
		tpath(path, sizeof path, rel);
		g.path = path;
		/* the real machine's stat, statfs and open */
		CHECK_INTEQ(kl_probe_disk(&kl_probe_env_real, &g, &f, &err), 0);
		CHECK_INTEQ(f.backend, KL_BACKEND_FILE);
		if (strcmp(f.format, cases[i].format) != 0) {
			printf("#   %s: format \"%s\", expected \"%s\"\n", cases[i].file, f.format, cases[i].format);
			unit_case_failed = 1;
		}
		kl_disk_facts_free(&f);
	}

	/* what the header says besides the name */
	struct kl_image_info info;
	unsigned char h[512] = { 0 };
	memcpy(h, "QFI\xfb", 4);
	be32put(h + 4, 3);
	be64put(h + 24, 10 * GiB);
	kl_image_detect(h, sizeof h, NULL, 0, &info);
	CHECK_STREQ(info.format, "qcow2");
	CHECK_INTEQ(info.version, 3);
	CHECK_INTEQ(info.virtual_size, 10 * GiB);
	CHECK(!info.has_backing);
	be64put(h + 8, 0x68);
	kl_image_detect(h, sizeof h, NULL, 0, &info);
	CHECK(info.has_backing);
	kl_image_detect(h, 6, NULL, 0, &info);             /* truncated: no version */
	CHECK_STREQ(info.format, "raw");
	kl_image_detect(h, 8, NULL, 0, &info);
	CHECK_STREQ(info.format, "qcow2");
	CHECK_INTEQ(info.virtual_size, 0);
	kl_image_detect(NULL, 0, NULL, 0, &info);
	CHECK_STREQ(info.format, "raw");
	memset(h, 0, sizeof h);
	memcpy(h, "KDMV", 4);
	le64put(h + 12, 2097152);
	kl_image_detect(h, sizeof h, NULL, 0, &info);
	CHECK_INTEQ(info.virtual_size, GiB);
	memset(h, 0, sizeof h);
	memcpy(h, "LUKS\xba\xbe\x00\x01", 8);
	kl_image_detect(h, sizeof h, NULL, 0, &info);
	CHECK_STREQ(info.format, "luks");
	CHECK_INTEQ(info.version, 1);
}

static void test_format_notes_and_alloc(void)
{
	char path[4096];
	struct kl_disk_facts f;
	struct kl_error err = KL_ERROR_INIT;
	struct kl_disk_given g = { .format = "raw" };

	/* the command line says raw, the header says qcow2 */
	tpath(path, sizeof path, "img/qcow2-v2-backing");
	g.path = path;
	CHECK_INTEQ(kl_probe_disk(&kl_probe_env_real, &g, &f, &err), 0);
	CHECK_NOTE(f, "the image header looks like qcow2, the command line says format raw");
	CHECK_NOTE(f, "qcow2 image has a backing file");
	CHECK_NOTE(f, "qcow2 version 2");
	/* 512 KiB written for a 256 KiB guest disk: preallocated */
	CHECK_INTEQ(f.preallocated, KL_TRI_YES);
	kl_disk_facts_free(&f);

	/* the guest-size rule on its own */
	struct stat st = { .st_size = 20 << 20, .st_blocks = (20 << 20) / 512 };
	struct kl_image_info img = { .format = "qcow2", .virtual_size = 10 * GiB };
	memset(&f, 0, sizeof f);
	kl_probe_file_alloc(&st, &img, &f);
	CHECK_INTEQ(f.preallocated, KL_TRI_NO);           /* preallocation=metadata look-alike */
	kl_disk_facts_free(&f);
	st.st_size = 10 * GiB + (2 << 20);
	st.st_blocks = st.st_size / 512;
	memset(&f, 0, sizeof f);
	kl_probe_file_alloc(&st, &img, &f);
	CHECK_INTEQ(f.preallocated, KL_TRI_YES);          /* preallocation=falloc */
	kl_disk_facts_free(&f);
	/* raw: slack of 64 KiB + 0.1% */
	struct stat raw = { .st_size = GiB, .st_blocks = (GiB - (1 << 20)) / 512 };
	memset(&f, 0, sizeof f);
	kl_probe_file_alloc(&raw, NULL, &f);
	CHECK_INTEQ(f.preallocated, KL_TRI_YES);          /* 1 MiB hole < 64 KiB + 1 MiB */
	kl_disk_facts_free(&f);
	raw.st_blocks = (GiB - (2 << 20)) / 512;
	memset(&f, 0, sizeof f);
	kl_probe_file_alloc(&raw, NULL, &f);
	CHECK_INTEQ(f.preallocated, KL_TRI_NO);
	kl_disk_facts_free(&f);
	struct stat empty = { 0 };
	memset(&f, 0, sizeof f);
	kl_probe_file_alloc(&empty, NULL, &f);
	/* a snapshot overlay or copy target before QEMU writes its header */
	CHECK_INTEQ(f.preallocated, KL_TRI_NO);
	CHECK_NOTE(f, "empty file: every write allocates blocks");
	kl_disk_facts_free(&f);
}

/* ---- filesystem table, mount table ---- */

static void test_fs_names(void)
{
	static const struct { unsigned long magic; const char *name; bool shared; } cases[] = {
		{ 0xEF53, "ext4", false }, { 0x58465342, "xfs", false }, { 0x9123683E, "btrfs", false },
		{ 0x01021994, "tmpfs", false }, { 0x2FC12FC1, "zfs", false }, { 0x6969, "nfs", true },
		{ 0x517B, "smb", true }, { 0xFF534D42, "cifs", true }, { 0xFE534D42, "smb2", true },
		{ 0x01161970, "gfs2", true }, { 0x7461636f, "ocfs2", true }, { 0x00C36400, "ceph", true },
		{ 0x47504653, "gpfs", true }, { 0x6B414653, "afs", true }, { 0x19830326, "beegfs", true },
		{ 0x65735546, "fuse", false }, { 0x794c7630, "overlayfs", false }, { 0xF2F52010, "f2fs", false },
		{ 0xca451a4e, "bcachefs", false }, { 0x0BD00BD0, "lustre", true }, { 0xa501FCF5, "vxfs", false },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		bool shared = !cases[i].shared;
		const char *name = kl_fs_name(cases[i].magic, &shared);
		if (!name || strcmp(name, cases[i].name) != 0 || shared != cases[i].shared) {
			printf("#   0x%lx: %s shared=%d, expected %s shared=%d\n", cases[i].magic, name ? name : "(null)",
			       shared, cases[i].name, cases[i].shared);
			unit_case_failed = 1;
		}
	}
	bool shared = true;
	CHECK(kl_fs_name(0x12345678, &shared) == NULL);
	CHECK(!shared);
	CHECK(kl_fs_name(0xEF53, NULL) != NULL);
	CHECK_STREQ(kl_fs_name((unsigned long)(long)(int32_t)0xFF534D42, NULL), "cifs");
	CHECK_INTEQ(kl_fs_shared(0x6969), KL_TRI_YES);
	CHECK_INTEQ(kl_fs_shared(0xEF53), KL_TRI_NO);
	CHECK_INTEQ(kl_fs_shared(0x65735546), KL_TRI_UNKNOWN);
	CHECK_INTEQ(kl_fs_shared(0x12345678), KL_TRI_UNKNOWN);
	CHECK_INTEQ(kl_fuse_shared("fuse.glusterfs"), KL_TRI_YES);
	CHECK_INTEQ(kl_fuse_shared("fuse.sshfs"), KL_TRI_YES);
	CHECK_INTEQ(kl_fuse_shared("fuse.ceph-fuse"), KL_TRI_YES);
	CHECK_INTEQ(kl_fuse_shared("fuse.s3fs"), KL_TRI_YES);
	CHECK_INTEQ(kl_fuse_shared("fuse.lxcfs"), KL_TRI_NO);
	CHECK_INTEQ(kl_fuse_shared("fuseblk"), KL_TRI_NO);
	CHECK_INTEQ(kl_fuse_shared("fuse.mergerfs"), KL_TRI_UNKNOWN);
	CHECK_INTEQ(kl_fuse_shared("fuse"), KL_TRI_UNKNOWN);
	CHECK_INTEQ(kl_fuse_shared(NULL), KL_TRI_UNKNOWN);
}

static void build_proc(const char *name, bool mountinfo)
{
	char rel[256];
	snprintf(rel, sizeof rel, "%s/proc/self/%s", name, mountinfo ? "mountinfo" : "mounts");
	if (mountinfo)
		put(rel,
		    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
		    "27 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
		    "60 27 0:55 / /mnt/gluster rw,relatime shared:5 - fuse.glusterfs srv:/vol rw,user_id=0\n"
		    "61 27 0:56 / /var/lib/lxcfs rw,nosuid - fuse.lxcfs lxcfs rw\n"
		    "62 27 0:57 / /mnt/bind\\040fs rw - fuse.bindfs /src rw\n"
		    "63 27 0:59 / /mnt/glusterx rw - fuse.sshfs h:/ rw\n"
		    "64 60 0:55 /sub /mnt/gluster/sub rw - fuse.glusterfs srv:/vol rw\n", 0);
	else
		put(rel,
		    "/dev/sda1 / ext4 rw,relatime 0 0\n"
		    "h:/ /mnt/ssh fuse.sshfs rw 0 0\n"
		    "h:/x /mnt/ssh/deeper fuse.s3fs rw 0 0\n"
		    "h:/ /mnt/sshx fuse.glusterfs rw 0 0\n", 0);
}

static void test_mount_lookup(void)
{
	struct kl_probe_env env = fake_env();
	char type[64], mnt[256], root[4096];

	env.proc_root = proc_root;  /* mountinfo */
	CHECK_INTEQ(kl_probe_mount_type(&env, "/mnt/gluster/a/b.img", makedev(0, 55), type, sizeof type, mnt, sizeof mnt), 0);
	CHECK_STREQ(type, "fuse.glusterfs");
	CHECK_STREQ(mnt, "/mnt/gluster");
	CHECK_INTEQ(kl_probe_mount_type(&env, "/mnt/glusterx/b.img", makedev(0, 59), type, sizeof type, mnt, sizeof mnt), 0);
	CHECK_STREQ(type, "fuse.sshfs");                   /* not /mnt/gluster's */
	CHECK_INTEQ(kl_probe_mount_type(&env, "/mnt/gluster/sub/x", makedev(0, 55), type, sizeof type, mnt, sizeof mnt), 0);
	CHECK_STREQ(mnt, "/mnt/gluster/sub");             /* longest of two device matches */
	CHECK_INTEQ(kl_probe_mount_type(&env, "/elsewhere/x", makedev(9, 9), type, sizeof type, NULL, 0), 0);
	CHECK_STREQ(type, "ext4");
	CHECK_INTEQ(kl_probe_mount_type(&env, "/mnt/bind fs/x", makedev(0, 57), type, sizeof type, mnt, sizeof mnt), 0);
	CHECK_STREQ(mnt, "/mnt/bind fs");

	/* only /proc/self/mounts: longest prefix, no devices */
	tpath(root, sizeof root, "proc-mounts");
	env.proc_root = root;
	CHECK_INTEQ(kl_probe_mount_type(&env, "/mnt/ssh/vm.img", 0, type, sizeof type, mnt, sizeof mnt), 0);
	CHECK_STREQ(type, "fuse.sshfs");
	CHECK_INTEQ(kl_probe_mount_type(&env, "/mnt/ssh/deeper/vm.img", 0, type, sizeof type, mnt, sizeof mnt), 0);
	CHECK_STREQ(type, "fuse.s3fs");
	CHECK_INTEQ(kl_probe_mount_type(&env, "/mnt/sshy/vm.img", 0, type, sizeof type, mnt, sizeof mnt), 0);
	CHECK_STREQ(type, "ext4");

	/* and through kl_probe_disk: FUSE sshfs via /proc/self/mounts */
	static const struct fake sshfs[] = {
		{ .path = "/mnt/ssh/vm.img", .mode = S_IFREG, .dev_mi = 80, .size = 4096, .blocks = 8,
		  .magic = FUSE_SUPER_MAGIC },
	};
	struct kl_disk_facts f;
	struct kl_disk_given g = { .path = "/mnt/ssh/vm.img" };
	struct kl_error err = KL_ERROR_INIT;
	fakes = sshfs;
	nfakes = 1;
	CHECK_INTEQ(kl_probe_disk(&env, &g, &f, &err), 0);
	CHECK_STREQ(f.fs, "fuse.sshfs");
	CHECK_INTEQ(f.shared, KL_TRI_YES);
	kl_disk_facts_free(&f);

	/* a symlink into a mount point: resolved only when no device matched */
	char rel[1200], target[1100];
	put("realmnt/x.img", "", 0);
	tpath(target, sizeof target, "realmnt");
	tpath(rel, sizeof rel, "link");
	CHECK_INTEQ(symlink(target, rel), 0);
	snprintf(rel, sizeof rel, "27 1 8:1 / / rw - ext4 /dev/sda1 rw\n90 27 0:91 / %s rw - fuse.sshfs h:/ rw\n", target);
	put("proc-link/proc/self/mountinfo", rel, 0);
	tpath(root, sizeof root, "proc-link");
	env.proc_root = root;
	char linked[1100];
	tpath(linked, sizeof linked, "link/x.img");
	CHECK_INTEQ(kl_probe_mount_type(&env, linked, makedev(7, 7), type, sizeof type, mnt, sizeof mnt), 0);
	CHECK_STREQ(type, "fuse.sshfs");
	CHECK_STREQ(mnt, target);

	/* no mount table at all */
	tpath(root, sizeof root, "no-such-proc");
	env.proc_root = root;
	CHECK_INTEQ(kl_probe_mount_type(&env, "/x", 0, type, sizeof type, NULL, 0), -1);
}

/* ---- host ---- */

static void host_proc(const char *disabled, const char *group, const char *nr, const char *max)
{
	char rel[256];
	static const char *const files_[] = { "kernel/io_uring_disabled", "kernel/io_uring_group", "fs/aio-nr",
					      "fs/aio-max-nr" };
	const char *vals[] = { disabled, group, nr, max };
	for (int i = 0; i < 4; i++) {
		char path[4096];
		snprintf(rel, sizeof rel, "hostproc/proc/sys/%s", files_[i]);
		tpath(path, sizeof path, rel);
		unlink(path);
		if (vals[i])
			put(rel, vals[i], 0);
	}
}

static void probe_host_with(struct kl_probe_env *env, struct kl_host_facts *h)
{
	char root[4096];
	struct kl_error err = KL_ERROR_INIT;
	tpath(root, sizeof root, "hostproc");
	env->proc_root = root;
	CHECK_INTEQ(kl_probe_host(env, h, &err), 0);
}

static void test_host_io_uring(void)
{
	struct kl_probe_env env = fake_env();
	struct kl_host_facts h;

	host_proc("2\n", NULL, "0\n", "65536\n");
	uring_calls = 0;
	probe_host_with(&env, &h);
	CHECK_INTEQ(h.io_uring_kernel, KL_TRI_NO);
	CHECK_INTEQ(uring_calls, 0);                   /* not even tried */
	CHECK_INTEQ(h.io_uring_qemu, KL_TRI_UNKNOWN);
	CHECK_NOTE(h, "io_uring is disabled by the kernel (kernel.io_uring_disabled=2)");
	kl_host_facts_free(&h);

	host_proc("1\n", "1000\n", "0\n", "65536\n");
	probe_host_with(&env, &h);
	CHECK_INTEQ(h.io_uring_kernel, KL_TRI_YES);
	CHECK_INTEQ(uring_calls, 1);
	CHECK_NOTE(h, "io_uring is limited to group 1000");
	kl_host_facts_free(&h);

	host_proc("1\n", "-1\n", "0\n", "65536\n");
	env.io_uring_fn = fake_uring_eperm;
	probe_host_with(&env, &h);
	CHECK_INTEQ(h.io_uring_kernel, KL_TRI_NO);
	CHECK_NOTE(h, "io_uring is limited to CAP_SYS_ADMIN");
	CHECK_NOTE(h, "io_uring unusable: io_uring_queue_init: Operation not permitted");
	kl_host_facts_free(&h);

	host_proc(NULL, NULL, "0\n", "65536\n");       /* kernel < 6.6: no sysctl */
	env.io_uring_fn = fake_uring_ok;
	probe_host_with(&env, &h);
	CHECK_INTEQ(h.io_uring_kernel, KL_TRI_YES);
	CHECK_INTEQ(h.notes.n, 0);
	kl_host_facts_free(&h);
}

static void test_host_aio(void)
{
	struct kl_probe_env env = fake_env();
	struct kl_host_facts h;

	host_proc("0\n", NULL, "64512\n", "65536\n");  /* 1024 left */
	probe_host_with(&env, &h);
	CHECK_INTEQ(h.libaio, KL_TRI_YES);
	CHECK_INTEQ(h.aio_nr, 64512);
	CHECK_INTEQ(h.aio_max_nr, 65536);
	CHECK_INTEQ(h.libaio_headroom, KL_TRI_NO);
	CHECK_NOTE(h, "fs.aio-nr is 64512 of fs.aio-max-nr 65536");
	kl_host_facts_free(&h);

	env.aio_reserve = 1024;                        /* exactly enough */
	probe_host_with(&env, &h);
	CHECK_INTEQ(h.libaio_headroom, KL_TRI_YES);
	kl_host_facts_free(&h);
	env.aio_reserve = 1025;
	probe_host_with(&env, &h);
	CHECK_INTEQ(h.libaio_headroom, KL_TRI_NO);
	kl_host_facts_free(&h);

	env.aio_reserve = 0;
	host_proc("0\n", NULL, "61440\n", "65536\n");  /* 4096 left: the default reserve fits */
	probe_host_with(&env, &h);
	CHECK_INTEQ(h.libaio_headroom, KL_TRI_YES);
	kl_host_facts_free(&h);

	env.libaio_fn = fake_aio_eagain;
	aio_calls = 0;
	host_proc("0\n", NULL, "65536\n", "65536\n");
	probe_host_with(&env, &h);
	CHECK_INTEQ(aio_calls, 1);
	CHECK_INTEQ(h.libaio, KL_TRI_NO);
	CHECK_INTEQ(h.libaio_headroom, KL_TRI_NO);
	CHECK_NOTE(h, "libaio unusable: io_setup (fs.aio-max-nr reached): Resource temporarily unavailable");
	kl_host_facts_free(&h);

	host_proc("0\n", NULL, NULL, NULL);
	probe_host_with(&env, &h);
	CHECK_INTEQ(h.aio_nr, -1);
	CHECK_INTEQ(h.aio_max_nr, -1);
	CHECK_INTEQ(h.libaio_headroom, KL_TRI_UNKNOWN);
	CHECK_NOTE(h, "cannot read fs.aio-nr");
	kl_host_facts_free(&h);
}

/* The real host: whatever it says must be consistent with its sysctls. */
static void test_host_real(void)
{
	struct kl_host_facts h;
	struct kl_error err = KL_ERROR_INIT;
	char buf[32];

	CHECK_INTEQ(kl_probe_host(NULL, &h, &err), 0);
	for (size_t i = 0; i < h.notes.n; i++)
		printf("#   real host note: %s\n", h.notes.v[i]);
	CHECK(h.io_uring_kernel != KL_TRI_UNKNOWN);
	if (kl_probe_read_file("", "/proc/sys/kernel/io_uring_disabled", buf, sizeof buf) > 0 && buf[0] == '2')
		CHECK_INTEQ(h.io_uring_kernel, KL_TRI_NO);
	CHECK(h.libaio != KL_TRI_UNKNOWN);
	CHECK(h.aio_nr >= 0);
	CHECK(h.aio_max_nr > 0);
	CHECK(h.libaio_headroom != KL_TRI_UNKNOWN);
	printf("#   real host: io_uring=%d libaio=%d aio-nr=%ld aio-max-nr=%ld\n", h.io_uring_kernel, h.libaio,
	       h.aio_nr, h.aio_max_nr);
	kl_host_facts_free(&h);

	CHECK_INTEQ(kl_probe_io_uring_real(&err) == 0, h.io_uring_kernel == KL_TRI_YES);
	CHECK_INTEQ(kl_probe_libaio_real(&err) == 0, h.libaio == KL_TRI_YES);
}

static void test_bad_calls(void)
{
	struct kl_error err = KL_ERROR_INIT;
	struct kl_disk_facts f;
	CHECK_INTEQ(kl_probe_disk(NULL, NULL, &f, &err), -1);
	CHECK(err.set);
	CHECK_INTEQ(kl_probe_host(NULL, NULL, &err), -1);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	return remove(path);
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	snprintf(tmp, sizeof tmp, "%s/kl-probe-XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 99;
	}
	build_sys();
	build_images();
	build_proc("proc-info", true);
	build_proc("proc-mounts", false);
	snprintf(sys_root, sizeof sys_root, "%s", tmp);
	tpath(proc_root, sizeof proc_root, "proc-info");

	RUN(test_lvm);
	RUN(test_dm_crypt_qcow2);
	RUN(test_multipath);
	RUN(test_thin_lvm);
	RUN(test_nvme);
	RUN(test_loop);
	RUN(test_scsi_rotational);
	RUN(test_md);
	RUN(test_other_kinds);
	RUN(test_tmpfs_no_odirect);
	RUN(test_nfs);
	RUN(test_cifs);
	RUN(test_cow_filesystems);
	RUN(test_fuse);
	RUN(test_local_fs);
	RUN(test_permission_denied);
	RUN(test_fdset_and_missing);
	RUN(test_network);
	RUN(test_formats);
	RUN(test_format_notes_and_alloc);
	RUN(test_fs_names);
	RUN(test_mount_lookup);
	RUN(test_host_io_uring);
	RUN(test_host_aio);
	RUN(test_host_real);
	RUN(test_bad_calls);

	if (!getenv("KL_KEEP_TMP"))
		nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	else
		printf("# fake root kept in %s\n", tmp);
	return unit_done();
}
