/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Calibration: the target (block device or temporary file), the plan of
 * runs, the ranking, and the stored result (see calibrate.h).  The engines
 * themselves are in calibrate-engines.c. */
#include "policy/calibrate/calibrate.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fileutil.h"
#include "common/json.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "policy/calibrate/calibrate-int.h"
#include "policy/probe/probe.h"

#define BUF_ALIGN 4096
#define SMALL_BS 4096u
#define LARGE_BS (1u << 20)
#define MAX_QD 32
#define STORE_MAX (1u << 20)
#define WARMUP_MAX 0.2
/* Scores closer than this are reported as about even (the ranking keeps
 * the measured order). */
#define TIE_FRACTION 0.05

/* The built-in preference order: near ties keep it. */
const enum kl_aio kl_cal_engines[KL_CAL_NENGINES] = { KL_AIO_IO_URING, KL_AIO_NATIVE, KL_AIO_THREADS };

static const int qds[] = { 1, MAX_QD };

const char *kl_cal_pattern_name(enum kl_cal_pattern p)
{
	switch (p) {
	case KL_CAL_RANDREAD: return "randread";
	case KL_CAL_RANDWRITE: return "randwrite";
	case KL_CAL_SEQREAD: return "seqread";
	}
	return "?";
}

static const char *engine_label(enum kl_aio e)
{
	switch (e) {
	case KL_AIO_THREADS: return "threads (pread/pwrite thread pool)";
	case KL_AIO_NATIVE: return "native (libaio)";
	case KL_AIO_IO_URING: return "io_uring (liburing)";
	default: return "?";
	}
}

static void human_size(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = { "bytes", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)n;
	unsigned u = 0;
	while (v >= 1024 && u + 1 < sizeof units / sizeof *units) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu bytes", (unsigned long long)n);
	else if (v == (double)(uint64_t)v)
		snprintf(buf, len, "%.0f %s", v, units[u]);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
}

/* ---- results ---- */

void kl_calibration_add_run(struct kl_calibration *c, const struct kl_cal_run *r)
{
	c->runs = xrealloc(c->runs, (c->nruns + 1) * sizeof *c->runs);
	c->runs[c->nruns++] = *r;
}

void kl_calibration_free(struct kl_calibration *c)
{
	if (!c)
		return;
	free(c->path);
	free(c->runs);
	strvec_free(&c->notes);
	free(c);
}

static const struct kl_cal_run *find_run(const struct kl_calibration *c, enum kl_aio e, bool direct, int qd,
					 enum kl_cal_pattern p)
{
	for (size_t i = 0; i < c->nruns; i++) {
		const struct kl_cal_run *r = &c->runs[i];
		if (r->engine == e && r->direct == direct && r->qd == qd && r->pattern == p)
			return r;
	}
	return NULL;
}

static const struct kl_cal_engine_status *engine_status(const struct kl_calibration *c, enum kl_aio e)
{
	for (size_t i = 0; i < KL_CAL_NENGINES; i++)
		if (c->engines[i].engine == e)
			return &c->engines[i];
	return NULL;
}

static void append(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strlen(buf);
	if (used + 1 >= len)
		return;
	if (used)
		snprintf(buf + used, len - used, "; "), used = strlen(buf);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

/* x^(1/n) for x > 0, by Newton's method (no libm in the link). */
static double nth_root(double x, int n)
{
	if (n <= 1 || x <= 0)
		return x;
	double y = x > 1 ? x / n : 1;
	for (int i = 0; i < 2000; i++) {
		double p = 1;
		for (int k = 1; k < n; k++)
			p *= y;
		double next = ((n - 1) * y + x / p) / n;
		if (next == y || (next > y ? next - y : y - next) <= y * 1e-13) {
			y = next;
			break;
		}
		y = next;
	}
	return y;
}

static void rank_one(const struct kl_calibration *c, bool direct, struct kl_cal_ranking *out)
{
	enum kl_cal_pattern pats[2] = { KL_CAL_RANDREAD, KL_CAL_RANDWRITE };
	size_t npats = c->wrote ? 2 : 1;
	size_t n = 0;

	memset(out, 0, sizeof *out);
	if (direct && !c->odirect && c->odirect_error[0]) {
		append(out->excluded, sizeof out->excluded, "no O_DIRECT runs: %s", c->odirect_error);
		return;
	}
	for (size_t i = 0; i < KL_CAL_NENGINES; i++) {
		enum kl_aio e = kl_cal_engines[i];
		const struct kl_cal_engine_status *st = engine_status(c, e);
		if (!direct && e == KL_AIO_NATIVE) {
			append(out->excluded, sizeof out->excluded,
			       "native: QEMU refuses aio=native without O_DIRECT");
			continue;
		}
		if (st && !st->available) {
			append(out->excluded, sizeof out->excluded, "%s: unavailable (%s)", kl_aio_name(e),
			       st->reason);
			continue;
		}
		double product = 1;
		int k = 0;
		char why[300] = "";
		for (size_t pi = 0; pi < npats && !why[0]; pi++) {
			for (size_t qi = 0; qi < sizeof qds / sizeof *qds && !why[0]; qi++) {
				const struct kl_cal_run *r = find_run(c, e, direct, qds[qi], pats[pi]);
				if (!r)
					snprintf(why, sizeof why, "%s qd%d not measured", kl_cal_pattern_name(pats[pi]),
						 qds[qi]);
				else if (!r->ok || !(r->iops > 0))
					snprintf(why, sizeof why, "%s qd%d failed (%s)", kl_cal_pattern_name(pats[pi]),
						 qds[qi], r->error[0] ? r->error : "no I/O completed");
				else {
					product *= r->iops;
					k++;
				}
			}
		}
		if (why[0]) {
			append(out->excluded, sizeof out->excluded, "%s: %s", kl_aio_name(e), why);
			continue;
		}
		double score = nth_root(product, k);
		/* Insert, best first.  Engines are listed in the built-in order
		 * (io_uring, native, threads); one overtakes an earlier one only
		 * when clearly faster: run-to-run noise here is 5-10 % (seen
		 * against qemu-img bench), and a near tie is no reason to leave
		 * the built-in choice. */
		size_t pos = n;
		while (pos > 0 && out->score[pos - 1] * (1.0 + KL_CAL_TIE_MARGIN) < score) {
			out->order[pos] = out->order[pos - 1];
			out->score[pos] = out->score[pos - 1];
			pos--;
		}
		out->order[pos] = e;
		out->score[pos] = score;
		n++;
	}
	out->order[n] = KL_AIO_UNSET;
}

void kl_calibration_rank(struct kl_calibration *c)
{
	rank_one(c, true, &c->rank_direct);
	rank_one(c, false, &c->rank_buffered);
}

/* ---- the target ---- */

struct target {
	int fd;
	uint64_t size;        /* bytes usable, a multiple of LARGE_BS */
};

static void read_sys_line(const char *path, char *buf, size_t len)
{
	buf[0] = '\0';
	if (kl_probe_read_file("", path, buf, len) < 0)
		buf[0] = '\0';
}

static void block_label(struct kl_calibration *c, const struct stat *st, const char *path)
{
	unsigned ma = major(st->st_rdev), mi = minor(st->st_rdev);
	char p[128], uevent[512], name[64] = "", dm[128] = "", size[32];

	snprintf(p, sizeof p, "/sys/dev/block/%u:%u/uevent", ma, mi);
	read_sys_line(p, uevent, sizeof uevent);
	char *dn = strstr(uevent, "DEVNAME=");
	if (dn) {
		dn += 8;
		snprintf(name, sizeof name, "%.*s", (int)strcspn(dn, "\n"), dn);
	}
	if (!name[0]) {
		const char *b = strrchr(path, '/');
		snprintf(name, sizeof name, "%s", b ? b + 1 : path);
	}
	snprintf(p, sizeof p, "/sys/dev/block/%u:%u/dm/name", ma, mi);
	read_sys_line(p, dm, sizeof dm);
	human_size(c->size, size, sizeof size);
	if (dm[0])
		snprintf(c->label, sizeof c->label, "%s (%s; block device %u:%u, %s)", name, dm, ma, mi, size);
	else
		snprintf(c->label, sizeof c->label, "%s (block device %u:%u, %s)", name, ma, mi, size);
}

static void fs_label(struct kl_calibration *c, const char *path, const struct stat *st)
{
	struct statfs sfs;
	char type[64] = "", mnt[PATH_MAX] = "";

	if (statfs(path, &sfs) == 0) {
		c->fs_magic = (unsigned long)sfs.f_type & 0xffffffffUL;
		const char *n = kl_fs_name(c->fs_magic, NULL);
		if (n)
			snprintf(c->fs, sizeof c->fs, "%s", n);
	}
	if (kl_probe_mount_type(&kl_probe_env_real, path, st->st_dev, type, sizeof type, mnt, sizeof mnt) == 0) {
		if (!c->fs[0] || strncmp(type, "fuse", 4) == 0)
			snprintf(c->fs, sizeof c->fs, "%s", type);
		snprintf(c->mount, sizeof c->mount, "%s", mnt);
	}
	if (!c->fs[0])
		snprintf(c->fs, sizeof c->fs, "0x%lx", c->fs_magic);
	snprintf(c->label, sizeof c->label, "%s on %s (dev %u:%u)", c->fs, c->mount[0] ? c->mount : "?",
		 major(st->st_dev), minor(st->st_dev));
}

static void fill_pattern(unsigned char *buf, size_t len, uint64_t *seed)
{
	uint64_t x = *seed;
	for (size_t i = 0; i + 8 <= len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(buf + i, &x, 8);
	}
	*seed = x;
}

/* A temporary file in dir that no name points to. */
static int open_temp(const char *dir, bool *used_tmpfile, struct kl_error *err)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0) {
		*used_tmpfile = true;
		return fd;
	}
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL && errno != ENOENT)
		return kl_error_errno(err, errno, "creating a temporary file in %s", dir);
	*used_tmpfile = false;
	/* mkstemp + unlink, with the terminating signals held in between so
	 * the name cannot be left behind. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	_cleanup_free_ char *tmpl = xasprintf("%s/.kvm-launch-calibrate.XXXXXX", dir);
	fd = mkostemp(tmpl, O_CLOEXEC);
	int e = errno;
	if (fd >= 0 && unlink(tmpl) < 0) {
		e = errno;
		close(fd);
		unlink(tmpl);
		fd = -1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (fd < 0)
		return kl_error_errno(err, e, "creating a temporary file in %s", dir);
	return fd;
}

static int write_all(int fd, const unsigned char *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = ENOSPC;
			return -1;
		}
		done += (size_t)n;
	}
	return 0;
}

static void progress(const struct kl_calibrate_options *o, int done, int total, const char *what)
{
	if (o->progress)
		o->progress(o->opaque, done, total, what);
}

static int open_temp_file(struct kl_calibration *c, const char *dir, const struct stat *want, uint64_t size,
			  struct target *t, struct kl_error *err)
{
	bool tmpfile;
	char hs[32];
	int fd = open_temp(dir, &tmpfile, err);
	if (fd < 0)
		return -1;
	t->fd = fd;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return kl_error_errno(err, errno, "fstat of the temporary file in %s", dir);
	if (st.st_dev != want->st_dev)
		return kl_error_fail(err, "%s is on device %u:%u but a file created in %s is on %u:%u (a bind mount?): "
				     "calibrate the directory that really holds it", c->path, major(want->st_dev),
				     minor(want->st_dev), dir, major(st.st_dev), minor(st.st_dev));
	human_size(size, hs, sizeof hs);
	int r = fallocate(fd, 0, 0, (off_t)size);
	if (r < 0 && errno == ENOSPC)
		return kl_error_errno(err, errno, "no room for a %s test file in %s", hs, dir);
	if (r < 0 && errno != EOPNOTSUPP && errno != ENOSYS)
		return kl_error_errno(err, errno, "fallocate of a %s test file in %s", hs, dir);
	if (r < 0 && ftruncate(fd, (off_t)size) < 0)
		return kl_error_errno(err, errno, "sizing a %s test file in %s", hs, dir);
	t->size = size;
	c->size = size;
	c->temp_file = true;
	strvec_pushf(&c->notes, "measured a %s temporary file in %s (%s; it disappears with the process)", hs, dir,
		     tmpfile ? "O_TMPFILE" : "created and unlinked at once");
	return 0;
}

/* Written once: reads of preallocated (unwritten) extents would return
 * zeros without touching the disk. */
static int fill_temp_file(const struct target *t, const char *path, unsigned char *scratch, struct kl_error *err)
{
	uint64_t seed = 0x2545f4914f6cdd1dULL ^ (uint64_t)getpid();
	for (uint64_t off = 0; off < t->size; off += LARGE_BS) {
		fill_pattern(scratch, LARGE_BS, &seed);
		if (write_all(t->fd, scratch, LARGE_BS, off) < 0)
			return kl_error_errno(err, errno, "writing the test file for %s", path);
	}
	if (fdatasync(t->fd) < 0)
		return kl_error_errno(err, errno, "fdatasync of the test file for %s", path);
	posix_fadvise(t->fd, 0, 0, POSIX_FADV_DONTNEED);
	return 0;
}

static int open_block(struct kl_calibration *c, const char *path, const struct kl_calibrate_options *o,
		      struct target *t, struct kl_error *err)
{
	int flags = o->allow_write ? O_RDWR | O_EXCL : O_RDONLY;
	int fd = open(path, flags | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && errno == EBUSY && o->allow_write)
		return kl_error_errno(err, errno, "%s is in use (mounted, or held by device-mapper, md...): "
				      "refusing to write to it", path);
	if (fd < 0)
		return kl_error_errno(err, errno, "open %s%s", path, o->allow_write ? " for writing" : "");
	t->fd = fd;
	uint64_t size = 0;
	if (ioctl(fd, BLKGETSIZE64, &size) < 0)
		return kl_error_errno(err, errno, "%s: BLKGETSIZE64", path);
	size -= size % LARGE_BS;
	if (size < 2 * (uint64_t)LARGE_BS)
		return kl_error_fail(err, "%s: too small to measure (%llu bytes)", path, (unsigned long long)size);
	t->size = size;
	c->size = size;
	return 0;
}

/* Does O_DIRECT work on fd: the flag is accepted and an aligned 4 KiB read
 * succeeds?  Leaves the flag cleared. */
static bool check_odirect(int fd, unsigned char *buf, char *why, size_t len)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_DIRECT) < 0) {
		snprintf(why, len, "the filesystem refuses O_DIRECT: %s", strerror(errno));
		return false;
	}
	ssize_t n;
	do
		n = pread(fd, buf, SMALL_BS, 0);
	while (n < 0 && errno == EINTR);
	int e = errno;
	fcntl(fd, F_SETFL, fl & ~O_DIRECT);
	if (n < 0) {
		snprintf(why, len, "an O_DIRECT read of 4 KiB fails: %s", strerror(e));
		return false;
	}
	return true;
}

static int set_direct(int fd, bool direct)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -1;
	fl = direct ? fl | O_DIRECT : fl & ~O_DIRECT;
	return fcntl(fd, F_SETFL, fl);
}

/* ---- the plan ---- */

struct plan_item {
	enum kl_aio engine;
	bool direct;
	int qd;
	enum kl_cal_pattern pattern;
};

static size_t make_plan(const struct kl_calibration *c, struct plan_item *items, size_t max)
{
	static const enum kl_cal_pattern pats[] = { KL_CAL_RANDREAD, KL_CAL_SEQREAD, KL_CAL_RANDWRITE };
	size_t n = 0;
	for (int d = 1; d >= 0; d--) {
		if (d && !c->odirect)
			continue;
		for (size_t p = 0; p < sizeof pats / sizeof *pats; p++) {
			if (pats[p] == KL_CAL_RANDWRITE && !c->wrote)
				continue;
			for (size_t q = 0; q < sizeof qds / sizeof *qds; q++)
				for (size_t e = 0; e < KL_CAL_NENGINES; e++) {
					if (!c->engines[e].available || n >= max)
						continue;
					items[n++] = (struct plan_item){ c->engines[e].engine, d == 1, qds[q], pats[p] };
				}
		}
	}
	return n;
}

static void now_utc(struct kl_calibration *c)
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	c->timestamp = (int64_t)now;
	strftime(c->time, sizeof c->time, "%Y-%m-%dT%H:%MZ", &tm);
}

static void add_notes(struct kl_calibration *c)
{
	bool buffered = false, native_buffered = false, buffered_write = false;
	for (size_t i = 0; i < c->nruns; i++) {
		const struct kl_cal_run *r = &c->runs[i];
		if (!r->direct) {
			buffered = true;
			if (r->engine == KL_AIO_NATIVE)
				native_buffered = true;
			if (r->pattern == KL_CAL_RANDWRITE)
				buffered_write = true;
		}
	}
	if (!c->odirect)
		strvec_pushf(&c->notes, "O_DIRECT: %s: only buffered runs (QEMU cannot use cache=none or directsync "
			     "here)", c->odirect_error);
	if (buffered && c->temp_file)
		strvec_pushf(&c->notes, "buffered reads hit the host page cache: it was dropped "
			     "(POSIX_FADV_DONTNEED) before each buffered run, but the test file fits in memory and "
			     "is re-read within a run, so buffered numbers measure the page cache as much as the "
			     "storage");
	else if (buffered)
		strvec_pushf(&c->notes, "buffered reads go through the block device's page cache (dropped with "
			     "POSIX_FADV_DONTNEED before each buffered run): repeated blocks are served from memory");
	if (buffered_write)
		strvec_pushf(&c->notes, "buffered random writes land in the page cache; writing them back "
			     "(fdatasync after the run) is not timed");
	if (native_buffered)
		strvec_pushf(&c->notes, "native without O_DIRECT is synchronous (io_submit does the I/O before "
			     "returning): measured for comparison, never ranked for buffered use, since QEMU refuses "
			     "aio=native without cache.direct=on");
	if (c->backend == KL_BACKEND_BLOCK && !c->wrote)
		strvec_pushf(&c->notes, "random writes not measured: the device was opened read-only (--write "
			     "measures them and destroys data on it)");
}

int kl_calibrate(const char *path, const struct kl_calibrate_options *o, struct kl_calibration **out,
		 struct kl_error *err)
{
	static const struct kl_calibrate_options defaults = { 0 };
	struct target t = { .fd = -1 };
	struct stat st;
	unsigned char *bufs[MAX_QD] = { 0 };
	struct plan_item plan[64];
	bool stuck = false;
	int rc = -1;

	if (!o)
		o = &defaults;
	*out = NULL;
	struct kl_calibration *c = xcalloc(1, sizeof *c);
	c->path = xstrdup(path);
	c->seconds = o->seconds > 0 ? o->seconds : KL_CALIBRATE_SECONDS_DEFAULT;
	now_utc(c);

	for (size_t i = 0; i < MAX_QD; i++)
		if (posix_memalign((void **)&bufs[i], BUF_ALIGN, LARGE_BS) != 0) {
			kl_error_fail(err, "out of memory for I/O buffers");
			goto out;
		}
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < MAX_QD; i++)
		fill_pattern(bufs[i], LARGE_BS, &seed);

	if (stat(path, &st) < 0) {
		kl_error_errno(err, errno, "calibrate %s", path);
		goto out;
	}
	if (S_ISBLK(st.st_mode)) {
		c->backend = KL_BACKEND_BLOCK;
		snprintf(c->storage_id, sizeof c->storage_id, "dev:%u:%u", major(st.st_rdev), minor(st.st_rdev));
		if (open_block(c, path, o, &t, err) < 0)
			goto out;
		c->wrote = o->allow_write;
		block_label(c, &st, path);
	} else if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)) {
		c->backend = KL_BACKEND_FILE;
		snprintf(c->storage_id, sizeof c->storage_id, "dev:%u:%u", major(st.st_dev), minor(st.st_dev));
		_cleanup_free_ char *dir = NULL;
		if (S_ISDIR(st.st_mode)) {
			dir = xstrdup(path);
		} else {
			const char *slash = strrchr(path, '/');
			dir = slash ? (slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path)))
				    : xstrdup(".");
		}
		fs_label(c, path, &st);
		uint64_t size = o->file_size ? o->file_size : KL_CALIBRATE_FILE_SIZE_DEFAULT;
		size = size < 2 * (uint64_t)LARGE_BS ? 2 * (uint64_t)LARGE_BS : size - size % LARGE_BS;
		if (open_temp_file(c, dir, &st, size, &t, err) < 0)
			goto out;
		c->wrote = true;  /* our own file */
	} else {
		kl_error_fail(err, "calibrate %s: neither a block device, a directory nor a regular file", path);
		goto out;
	}

	c->odirect = check_odirect(t.fd, bufs[0], c->odirect_error, sizeof c->odirect_error);

	for (size_t i = 0; i < KL_CAL_NENGINES; i++) {
		struct kl_cal_engine_status *es = &c->engines[i];
		es->engine = kl_cal_engines[i];
		enum klc_status s = KLC_OK;
		if (es->engine == KL_AIO_IO_URING)
			s = klc_check_io_uring(es->reason, sizeof es->reason);
		else if (es->engine == KL_AIO_NATIVE)
			s = klc_check_libaio(es->reason, sizeof es->reason);
		es->available = s == KLC_OK;
		if (!es->available)
			kl_debug("calibrate: %s unavailable: %s", kl_aio_name(es->engine), es->reason);
	}

	size_t nplan = make_plan(c, plan, sizeof plan / sizeof *plan);
	if (c->temp_file) {
		progress(o, 0, (int)nplan, "preparing the test file");
		if (fill_temp_file(&t, path, bufs[0], err) < 0)
			goto out;
		fill_pattern(bufs[0], LARGE_BS, &seed);
	}
	double per = nplan ? (double)c->seconds / (double)nplan : 0;
	double warmup = per * 0.25 < WARMUP_MAX ? per * 0.25 : WARMUP_MAX;
	bool last_direct = true, dirty = false;
	for (size_t i = 0; i < nplan; i++) {
		const struct plan_item *p = &plan[i];
		struct kl_cal_run r = {
			.engine = p->engine, .direct = p->direct, .qd = p->qd, .pattern = p->pattern,
			.block_size = p->pattern == KL_CAL_SEQREAD ? LARGE_BS : SMALL_BS,
			.synchronous = p->engine == KL_AIO_NATIVE && !p->direct,
			.page_cache = !p->direct && p->pattern != KL_CAL_RANDWRITE,
		};
		char what[96];
		snprintf(what, sizeof what, "%s %s qd%d %s", kl_aio_name(p->engine), p->direct ? "direct" : "buffered",
			 p->qd, kl_cal_pattern_name(p->pattern));
		progress(o, (int)i, (int)nplan, what);
		if (stuck) {
			snprintf(r.error, sizeof r.error, "not run: an earlier run hung");
			kl_calibration_add_run(c, &r);
			continue;
		}
		if (dirty || !p->direct) {
			/* Written-back data and a cold page cache before each buffered run. */
			fdatasync(t.fd);
			posix_fadvise(t.fd, 0, 0, POSIX_FADV_DONTNEED);
			dirty = false;
		}
		if ((i == 0 || p->direct != last_direct) && set_direct(t.fd, p->direct) < 0) {
			snprintf(r.error, sizeof r.error, "setting O_DIRECT %s: %s", p->direct ? "on" : "off",
				 strerror(errno));
			kl_calibration_add_run(c, &r);
			continue;
		}
		last_direct = p->direct;
		struct klc_job j = {
			.fd = t.fd, .direct = p->direct, .pattern = p->pattern, .bs = r.block_size, .qd = p->qd,
			.region = t.size, .warmup = warmup, .measure = per - warmup, .bufs = bufs,
			.seed = 0x853c49e6748fea9bULL + i,
		};
		enum klc_status s = p->engine == KL_AIO_IO_URING ? klc_run_io_uring(&j)
				  : p->engine == KL_AIO_NATIVE	 ? klc_run_libaio(&j)
								 : klc_run_threads(&j);
		if (p->pattern == KL_CAL_RANDWRITE && !p->direct)
			dirty = true;
		if (j.stuck)
			stuck = true;
		if (s != KLC_OK) {
			snprintf(r.error, sizeof r.error, "%s", j.error[0] ? j.error : "failed");
		} else if (j.ios == 0) {
			snprintf(r.error, sizeof r.error, "no request completed in the %.2f s window", j.window);
		} else {
			r.ok = true;
			r.ios = j.ios;
			r.seconds = j.window;
			r.iops = (double)j.ios / j.window;
			r.mbps = r.iops * r.block_size / 1e6;
			r.lat_us = j.lat_sum_us / (double)j.ios;
		}
		if (!r.ok)
			kl_debug("calibrate: %s: %s", what, r.error);
		kl_calibration_add_run(c, &r);
	}
	if (!stuck && t.fd >= 0 && (dirty || c->wrote))
		fdatasync(t.fd);
	progress(o, (int)nplan, (int)nplan, "done");

	kl_calibration_rank(c);
	add_notes(c);
	*out = steal_pointer(&c);
	rc = 0;
out:
	if (!stuck) {
		for (size_t i = 0; i < MAX_QD; i++)
			free(bufs[i]);
		if (t.fd >= 0)
			close(t.fd);
	}
	kl_calibration_free(c);
	return rc;
}

/* ---- JSON ---- */

static json_object *num(double v, int decimals)
{
	char buf[64];
	snprintf(buf, sizeof buf, "%.*f", decimals, v);
	return json_object_new_double_s(v, buf);
}

static json_object *ranking_json(const struct kl_cal_ranking *r)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < 3 && r->order[i] != KL_AIO_UNSET; i++) {
		json_object *e = json_object_new_object();
		json_object_object_add(e, "engine", json_object_new_string(kl_aio_name(r->order[i])));
		json_object_object_add(e, "score", num(r->score[i], 0));
		json_object_array_add(a, e);
	}
	return a;
}

json_object *kl_calibration_json(const struct kl_calibration *c)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "version", json_object_new_int(1));
	json_object_object_add(o, "storage_id", json_object_new_string(c->storage_id));
	json_object_object_add(o, "label", json_object_new_string(c->label));
	json_object_object_add(o, "path", kl_json_nonempty(c->path));
	json_object_object_add(o, "kind", json_object_new_string(c->backend == KL_BACKEND_BLOCK ? "block" : "file"));
	json_object_object_add(o, "fs", kl_json_nonempty(c->fs));
	json_object_object_add(o, "fs_magic", json_object_new_int64((int64_t)c->fs_magic));
	json_object_object_add(o, "mount", kl_json_nonempty(c->mount));
	json_object_object_add(o, "time", json_object_new_string(c->time));
	json_object_object_add(o, "timestamp", json_object_new_int64(c->timestamp));
	json_object_object_add(o, "seconds", json_object_new_int(c->seconds));
	json_object_object_add(o, "size", json_object_new_int64((int64_t)c->size));
	json_object_object_add(o, "temp_file", json_object_new_boolean(c->temp_file));
	json_object_object_add(o, "write", json_object_new_boolean(c->wrote));
	json_object_object_add(o, "odirect", json_object_new_boolean(c->odirect));
	json_object_object_add(o, "odirect_error", kl_json_nonempty(c->odirect_error));

	json_object *engines = json_object_new_array();
	for (size_t i = 0; i < KL_CAL_NENGINES; i++) {
		const struct kl_cal_engine_status *es = &c->engines[i];
		if (es->engine == KL_AIO_UNSET)
			continue;
		json_object *e = json_object_new_object();
		json_object_object_add(e, "engine", json_object_new_string(kl_aio_name(es->engine)));
		json_object_object_add(e, "available", json_object_new_boolean(es->available));
		json_object_object_add(e, "reason", kl_json_nonempty(es->reason));
		json_object_array_add(engines, e);
	}
	json_object_object_add(o, "engines", engines);

	json_object *runs = json_object_new_array();
	for (size_t i = 0; i < c->nruns; i++) {
		const struct kl_cal_run *r = &c->runs[i];
		json_object *e = json_object_new_object();
		json_object_object_add(e, "engine", json_object_new_string(kl_aio_name(r->engine)));
		json_object_object_add(e, "direct", json_object_new_boolean(r->direct));
		json_object_object_add(e, "qd", json_object_new_int(r->qd));
		json_object_object_add(e, "pattern", json_object_new_string(kl_cal_pattern_name(r->pattern)));
		json_object_object_add(e, "block_size", json_object_new_int((int)r->block_size));
		json_object_object_add(e, "ok", json_object_new_boolean(r->ok));
		json_object_object_add(e, "error", kl_json_nonempty(r->error));
		json_object_object_add(e, "iops", num(r->iops, 0));
		json_object_object_add(e, "mbps", num(r->mbps, 1));
		json_object_object_add(e, "lat_us", num(r->lat_us, 1));
		json_object_object_add(e, "ios", json_object_new_int64((int64_t)r->ios));
		json_object_object_add(e, "seconds", num(r->seconds, 3));
		json_object_object_add(e, "synchronous", json_object_new_boolean(r->synchronous));
		json_object_object_add(e, "page_cache", json_object_new_boolean(r->page_cache));
		json_object_array_add(runs, e);
	}
	json_object_object_add(o, "runs", runs);

	json_object *rk = json_object_new_object();
	json_object_object_add(rk, "method", json_object_new_string(
		c->wrote ? "geometric mean of randread QD1, randread QD32, randwrite QD1 and randwrite QD32 IOPS"
			 : "geometric mean of randread QD1 and randread QD32 IOPS"));
	json_object_object_add(rk, "direct", ranking_json(&c->rank_direct));
	json_object_object_add(rk, "direct_excluded", kl_json_nonempty(c->rank_direct.excluded));
	json_object_object_add(rk, "buffered", ranking_json(&c->rank_buffered));
	json_object_object_add(rk, "buffered_excluded", kl_json_nonempty(c->rank_buffered.excluded));
	json_object_object_add(rk, "used_by_launch", json_object_new_string(
		c->rank_direct.order[0] != KL_AIO_UNSET ? "direct" : "buffered"));
	json_object_object_add(o, "ranking", rk);

	json_object *notes = json_object_new_array();
	for (size_t i = 0; i < c->notes.n; i++)
		json_object_array_add(notes, json_object_new_string(c->notes.v[i]));
	json_object_object_add(o, "notes", notes);
	return o;
}

/* ---- the table ---- */

static void print_ranking(FILE *f, const char *title, const struct kl_cal_ranking *r)
{
	fprintf(f, "%s:\n", title);
	if (r->order[0] == KL_AIO_UNSET)
		fprintf(f, "  (no engine ranks)\n");
	for (size_t i = 0; i < 3 && r->order[i] != KL_AIO_UNSET; i++) {
		fprintf(f, "  %zu. %-9s %10.0f", i + 1, kl_aio_name(r->order[i]), r->score[i]);
		if (i > 0 && r->score[0] > 0)
			fprintf(f, "  (%+.1f%%)", (r->score[i] / r->score[0] - 1) * 100);
		if (i > 0 && r->score[i - 1] > 0 && r->score[i] >= r->score[i - 1] * (1 - TIE_FRACTION))
			fprintf(f, "  within %.0f%% of %s: about even", TIE_FRACTION * 100, kl_aio_name(r->order[i - 1]));
		fputc('\n', f);
	}
	if (r->excluded[0])
		fprintf(f, "  not ranked: %s\n", r->excluded);
}

void kl_calibration_print(const struct kl_calibration *c, FILE *f)
{
	char hs[32];
	human_size(c->size, hs, sizeof hs);
	fprintf(f, "Calibration of %s: %s\n", c->path ? c->path : "?", c->label);
	fprintf(f, "storage %s, %s, %d s over %zu runs, %s %s\n", c->storage_id, c->time, c->seconds, c->nruns,
		hs, c->temp_file ? "test file" : "device");
	for (size_t i = 0; i < KL_CAL_NENGINES; i++)
		if (c->engines[i].engine != KL_AIO_UNSET && !c->engines[i].available)
			fprintf(f, "%s: unavailable: %s\n", engine_label(c->engines[i].engine), c->engines[i].reason);
	fputc('\n', f);
	fprintf(f, "%-9s %-8s %3s %-9s %5s %10s %9s %10s  %s\n", "engine", "cache", "qd", "pattern", "bs", "IOPS",
		"MB/s", "lat(us)", "notes");
	for (size_t i = 0; i < c->nruns; i++) {
		const struct kl_cal_run *r = &c->runs[i];
		char bs[16];
		if (r->block_size >= LARGE_BS)
			snprintf(bs, sizeof bs, "%uM", r->block_size >> 20);
		else
			snprintf(bs, sizeof bs, "%uK", r->block_size >> 10);
		fprintf(f, "%-9s %-8s %3d %-9s %5s ", kl_aio_name(r->engine), r->direct ? "direct" : "buffered", r->qd,
			kl_cal_pattern_name(r->pattern), bs);
		if (r->ok)
			fprintf(f, "%10.0f %9.1f %10.1f", r->iops, r->mbps, r->lat_us);
		else
			fprintf(f, "%10s %9s %10s", "-", "-", "-");
		const char *sep = "  ";
		if (r->synchronous)
			fprintf(f, "%ssynchronous", sep), sep = ", ";
		if (r->page_cache)
			fprintf(f, "%spage cache", sep), sep = ", ";
		if (!r->ok)
			fprintf(f, "%sfailed: %s", sep, r->error);
		fputc('\n', f);
	}
	fputc('\n', f);
	fprintf(f, "Score: %s.\n", c->wrote ? "geometric mean of randread QD1, randread QD32, randwrite QD1 and "
					       "randwrite QD32 IOPS"
					     : "geometric mean of randread QD1 and randread QD32 IOPS");
	print_ranking(f, "Ranking for O_DIRECT (cache=none, directsync)", &c->rank_direct);
	print_ranking(f, "Ranking for buffered I/O (cache=writeback, writethrough, unsafe)", &c->rank_buffered);
	fprintf(f, "aio=auto at launch uses the %s ranking.\n",
		c->rank_direct.order[0] != KL_AIO_UNSET ? "O_DIRECT" : "buffered");
	if (c->notes.n) {
		fprintf(f, "Notes:\n");
		for (size_t i = 0; i < c->notes.n; i++)
			fprintf(f, "  - %s\n", c->notes.v[i]);
	}
}

/* ---- store and lookup ---- */

char *kl_calibration_path(const char *cache_dir, const char *storage_id)
{
	size_t len = storage_id ? strlen(storage_id) : 0;
	if (!cache_dir || !cache_dir[0] || len == 0 || len >= 64 || storage_id[0] == '.')
		return NULL;
	char stem[64];
	for (size_t i = 0; i < len; i++) {
		char ch = storage_id[i];
		if (ch == ':')
			ch = '-';
		else if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
			   ch == '.' || ch == '_' || ch == '-'))
			return NULL;
		stem[i] = ch;
	}
	stem[len] = '\0';
	return xasprintf("%s/calibration/%s.json", cache_dir, stem);
}

int kl_calibration_store(const char *cache_dir, const struct kl_calibration *c, struct kl_error *err)
{
	_cleanup_free_ char *path = kl_calibration_path(cache_dir, c->storage_id);
	if (!path)
		return kl_error_fail(err, "storing the calibration: storage id \"%s\" cannot name a file",
				     c->storage_id);
	_cleanup_free_ char *dir = xasprintf("%s/calibration", cache_dir);
	if (kl_mkdir_p(dir, 0755, err) < 0) {
		kl_error_prefix(err, "storing the calibration");
		return -1;
	}
	_cleanup_json_ json_object *j = kl_calibration_json(c);
	_cleanup_free_ char *text = xasprintf(
		"%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	if (kl_write_file_atomic(path, text, 0644, err) < 0) {
		kl_error_prefix(err, "storing the calibration");
		return -1;
	}
	return 0;
}

/* Engines of a stored ranking array, best first; -1 if malformed. */
static int parse_ranking(json_object *a, bool buffered, enum kl_aio out[4])
{
	size_t n = 0;
	if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) > 3)
		return -1;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *e = json_object_array_get_idx(a, i), *name;
		enum kl_aio aio;
		if (!json_object_is_type(e, json_type_object) || !json_object_object_get_ex(e, "engine", &name) ||
		    !json_object_is_type(name, json_type_string) ||
		    kl_aio_parse(json_object_get_string(name), &aio) < 0 ||
		    (aio != KL_AIO_THREADS && aio != KL_AIO_NATIVE && aio != KL_AIO_IO_URING))
			return -1;
		for (size_t k = 0; k < n; k++)
			if (out[k] == aio)
				return -1;
		if (buffered && aio == KL_AIO_NATIVE)
			continue;  /* never for buffered use */
		out[n++] = aio;
	}
	out[n] = KL_AIO_UNSET;
	return 0;
}

static const char *lookup_parse(json_object *o, const struct kl_disk_facts *facts, enum kl_aio ranking[4],
				const char **when)
{
	json_object *v, *rk, *direct, *buffered;
	enum kl_aio rd[4], rb[4];

	if (!json_object_is_type(o, json_type_object))
		return "not a JSON object";
	if (!json_object_object_get_ex(o, "version", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int(v) != 1)
		return "unknown version";
	if (!json_object_object_get_ex(o, "storage_id", &v) || !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), facts->storage_id) != 0)
		return "another storage id";
	if (!json_object_object_get_ex(o, "kind", &v) || !json_object_is_type(v, json_type_string))
		return "no kind";
	const char *kind = json_object_get_string(v);
	if (strcmp(kind, "block") != 0 && strcmp(kind, "file") != 0)
		return "unknown kind";
	if ((facts->backend == KL_BACKEND_BLOCK && strcmp(kind, "block") != 0) ||
	    (facts->backend == KL_BACKEND_FILE && strcmp(kind, "file") != 0))
		return "measured through another kind of storage (block device vs filesystem)";
	if (facts->backend == KL_BACKEND_FILE && facts->fs_magic && json_object_object_get_ex(o, "fs_magic", &v) &&
	    json_object_is_type(v, json_type_int) && json_object_get_int64(v) != 0 &&
	    (unsigned long)json_object_get_int64(v) != facts->fs_magic)
		return "measured on another filesystem type";
	if (!json_object_object_get_ex(o, "time", &v) || !json_object_is_type(v, json_type_string) ||
	    strlen(json_object_get_string(v)) > 31)
		return "no time";
	*when = json_object_get_string(v);
	if (!json_object_object_get_ex(o, "ranking", &rk) || !json_object_is_type(rk, json_type_object) ||
	    !json_object_object_get_ex(rk, "direct", &direct) || !json_object_object_get_ex(rk, "buffered", &buffered) ||
	    parse_ranking(direct, false, rd) < 0 || parse_ranking(buffered, true, rb) < 0)
		return "malformed ranking";
	memcpy(ranking, rd[0] != KL_AIO_UNSET ? rd : rb, sizeof rd);
	if (ranking[0] == KL_AIO_UNSET)
		return "no engine ranked";
	return NULL;
}

void kl_calibration_lookup(const char *cache_dir, struct kl_disk_facts *facts)
{
	if (!cache_dir || !facts || !facts->storage_id[0])
		return;
	_cleanup_free_ char *path = kl_calibration_path(cache_dir, facts->storage_id);
	if (!path)
		return;
	struct kl_error err = KL_ERROR_INIT;
	_cleanup_free_ char *text = kl_read_small_file(path, STORE_MAX, &err);
	if (!text) {
		if (err.errnum != ENOENT)
			kl_debug("calibration %s ignored: %s", path, err.msg);
		return;
	}
	_cleanup_json_ json_object *o = NULL;
	const char *bad;
	if (kl_json_parse_object(text, strlen(text), &o, &bad) < 0) {
		kl_debug("calibration %s ignored: %s", path, bad);
		return;
	}
	enum kl_aio ranking[4];
	const char *when = NULL;
	const char *why = lookup_parse(o, facts, ranking, &when);
	if (why) {
		kl_debug("calibration %s ignored: %s", path, why);
		return;
	}
	const char *base = strrchr(path, '/') + 1;
	memcpy(facts->aio_ranking, ranking, sizeof facts->aio_ranking);
	snprintf(facts->calibration, sizeof facts->calibration, "%.*s %s", (int)(strlen(base) - 5), base, when);
}
