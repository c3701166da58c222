/* SPDX-License-Identifier: GPL-2.0-or-later */
/* kl-powercut-fs: a FUSE filesystem that loses whatever was not synced when it dies (tests/guest/t-power-loss.sh).
 *
 *   kl-powercut-fs [-t SUBTYPE] BACKING MOUNTPOINT [LOG]
 *
 * (-t names the mount fuse.SUBTYPE, default kl-powercut: `-t sshfs` makes the file look like shared storage to
 * kvm-launch's probe, for tests of what it does there.)
 * Serves one file, MOUNTPOINT/disk.img, of BACKING's size (fixed).  BACKING plays the stable storage of a disk
 * and this process's memory plays its volatile write cache:
 *   - write:  into a private copy-on-write mapping of BACKING (MAP_PRIVATE), and a dirty bit per 4 KiB block;
 *             BACKING is not touched;
 *   - read:   from that mapping, so the daemon's own view includes unsynced writes (like a disk's cache);
 *   - fsync and fdatasync (FUSE_FSYNC): every dirty block is written to BACKING, then fdatasync(BACKING);
 *             only then does the fsync return.  This is the only way data reaches BACKING;
 *   - flush (FUSE_FLUSH, sent on every close()) is NOT a durability point: close() promises nothing;
 *   - no syncfs, no fallocate (EOPNOTSUPP: callers fall back to writes), no size change.
 * SIGKILL is the power cut: the mapping and the dirty blocks vanish, BACKING holds exactly what was synced.
 *
 * Mounted without writeback_cache (the kernel sends every write() to the daemon before it returns, so the host
 * page cache holds no dirty data of this file) and without direct_io (the page cache may cache clean pages; an
 * O_DIRECT open is accepted and its I/O bypasses that cache, as QEMU's cache.direct=on expects).  Opens with
 * O_DIRECT are counted.  Runs in the foreground, single-threaded.  LOG (or stderr) gets one line per open and per
 * fsync: `open flags=0x... direct=0|1 pid=N`, `fsync datasync=N blocks=N pid=N`, and `mounted` once the mount is live.
 */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define BLK 4096u
#define NAME "/disk.img"

static struct {
	int fd;             /* BACKING, O_RDWR */
	unsigned char *map; /* MAP_PRIVATE of BACKING: the volatile view */
	uint64_t size;
	uint8_t *dirty;     /* one byte per block: simple, and 16 KiB per 64 MiB */
	uint64_t nblocks;
	FILE *log;
} g;

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfprintf(g.log, fmt, ap);
	va_end(ap);
	fputc('\n', g.log);
	fflush(g.log);
}

static void *pc_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/* No writeback cache: a write() returns only after the daemon has it. */
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	cfg->direct_io = 0;
	cfg->kernel_cache = 0;
	cfg->auto_cache = 0;
	cfg->attr_timeout = 0;
	cfg->entry_timeout = 0;
	logf_("mounted size=%llu", (unsigned long long)g.size);
	return NULL;
}

static int pc_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	(void)fi;
	memset(st, 0, sizeof *st);
	if (strcmp(path, "/") == 0) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return 0;
	}
	if (strcmp(path, NAME) != 0)
		return -ENOENT;
	st->st_mode = S_IFREG | 0644;
	st->st_nlink = 1;
	st->st_size = (off_t)g.size;
	st->st_blocks = (blkcnt_t)(g.size / 512);
	st->st_blksize = BLK;
	return 0;
}

static int pc_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	(void)off, (void)fi, (void)flags;
	if (strcmp(path, "/") != 0)
		return -ENOENT;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, NAME + 1, NULL, 0, 0);
	return 0;
}

static int pc_open(const char *path, struct fuse_file_info *fi)
{
	if (strcmp(path, NAME) != 0)
		return -ENOENT;
	fi->direct_io = 0;
	fi->keep_cache = 0;
	logf_("open flags=0x%x direct=%d pid=%d", (unsigned)fi->flags, (fi->flags & O_DIRECT) ? 1 : 0,
	      (int)fuse_get_context()->pid);
	return 0;
}

static int pc_read(const char *path, char *buf, size_t n, off_t off, struct fuse_file_info *fi)
{
	(void)path, (void)fi;
	if (off < 0 || (uint64_t)off >= g.size)
		return 0;
	if (n > g.size - (uint64_t)off)
		n = (size_t)(g.size - (uint64_t)off);
	memcpy(buf, g.map + off, n);
	return (int)n;
}

static int pc_write(const char *path, const char *buf, size_t n, off_t off, struct fuse_file_info *fi)
{
	(void)path, (void)fi;
	if (off < 0 || (uint64_t)off + n > g.size)
		return -ENOSPC; /* fixed size, like a disk */
	memcpy(g.map + off, buf, n);
	for (uint64_t b = (uint64_t)off / BLK; b <= ((uint64_t)off + n - 1) / BLK && n; b++)
		g.dirty[b] = 1;
	return (int)n;
}

static int pc_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path, (void)fi;
	uint64_t count = 0;
	for (uint64_t b = 0; b < g.nblocks; b++) {
		if (!g.dirty[b])
			continue;
		uint64_t off = b * BLK, len = g.size - off < BLK ? g.size - off : BLK;
		if (pwrite(g.fd, g.map + off, len, (off_t)off) != (ssize_t)len) {
			int e = errno ? errno : EIO;
			logf_("fsync: write to the backing file at %llu: %s", (unsigned long long)off, strerror(e));
			return -e;
		}
		g.dirty[b] = 0;
		count++;
	}
	if (fdatasync(g.fd) < 0)
		return -errno;
	logf_("fsync datasync=%d blocks=%llu pid=%d", datasync, (unsigned long long)count, (int)fuse_get_context()->pid);
	return 0;
}

static int pc_flush(const char *path, struct fuse_file_info *fi)
{
	(void)path, (void)fi;
	return 0; /* close() is not a durability point */
}

static int pc_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	(void)path, (void)fi;
	return (uint64_t)size == g.size ? 0 : -EPERM;
}

static int pc_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
	(void)path, (void)mode, (void)off, (void)len, (void)fi;
	return -EOPNOTSUPP;
}

static int pc_statfs(const char *path, struct statvfs *sv)
{
	(void)path;
	memset(sv, 0, sizeof *sv);
	sv->f_bsize = sv->f_frsize = BLK;
	sv->f_blocks = g.nblocks;
	sv->f_namemax = 255;
	return 0;
}

static int pc_chmod(const char *path, mode_t m, struct fuse_file_info *fi)
{
	(void)path, (void)m, (void)fi;
	return 0;
}

static int pc_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	(void)path, (void)tv, (void)fi;
	return 0;
}

static const struct fuse_operations ops = {
	.init = pc_init,
	.getattr = pc_getattr,
	.readdir = pc_readdir,
	.open = pc_open,
	.read = pc_read,
	.write = pc_write,
	.fsync = pc_fsync,
	.flush = pc_flush,
	.truncate = pc_truncate,
	.fallocate = pc_fallocate,
	.statfs = pc_statfs,
	.chmod = pc_chmod,
	.utimens = pc_utimens,
};

int main(int argc, char **argv)
{
	const char *subtype = "kl-powercut";
	if (argc > 2 && strcmp(argv[1], "-t") == 0) {
		subtype = argv[2];
		argv[2] = argv[0];
		argv += 2;
		argc -= 2;
	}
	if (argc < 3 || argc > 4 || strchr(subtype, ',')) {
		fprintf(stderr, "usage: kl-powercut-fs [-t SUBTYPE] BACKING MOUNTPOINT [LOG]\n");
		return 2;
	}
	g.log = stderr;
	if (argc == 4 && !(g.log = fopen(argv[3], "ae"))) {
		perror(argv[3]);
		return 1;
	}
	g.fd = open(argv[1], O_RDWR | O_CLOEXEC);
	struct stat st;
	if (g.fd < 0 || fstat(g.fd, &st) < 0 || st.st_size <= 0) {
		fprintf(stderr, "kl-powercut-fs: %s: %s\n", argv[1], g.fd < 0 ? strerror(errno) : "empty or unreadable");
		return 1;
	}
	g.size = (uint64_t)st.st_size;
	g.nblocks = (g.size + BLK - 1) / BLK;
	g.map = mmap(NULL, g.size, PROT_READ | PROT_WRITE, MAP_PRIVATE, g.fd, 0);
	g.dirty = calloc(g.nblocks, 1);
	if (g.map == MAP_FAILED || !g.dirty) {
		perror("kl-powercut-fs: mmap");
		return 1;
	}
	char opts[128];
	snprintf(opts, sizeof opts, "fsname=kl-powercut,subtype=%s", subtype);
	char *fargs[] = { argv[0], "-o", opts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, fargs);
	struct fuse *f = fuse_new(&args, &ops, sizeof ops, NULL);
	if (!f)
		return 1;
	if (fuse_mount(f, argv[2]) != 0) {
		fuse_destroy(f);
		return 1;
	}
	int rc = fuse_loop(f); /* single-threaded: the handlers share g without locks */
	fuse_unmount(f);
	fuse_destroy(f);
	return rc ? 1 : 0;
}
