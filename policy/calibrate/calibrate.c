/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Calibration: the target (block device or temporary file), the plan of
 * runs, and the runs themselves (see calibrate.h).  The engines are in
 * calibrate-engines.c, the ranking in calibrate-rank.c, the JSON and table
 * in calibrate-report.c, the stored result in calibrate-store.c. */
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


/* The built-in preference order: near ties keep it. */
const enum kl_aio kl_cal_engines[KL_CAL_NENGINES] = { KL_AIO_IO_URING, KL_AIO_NATIVE, KL_AIO_THREADS };

const int klc_qds[KLC_NQDS] = { 1, MAX_QD };

const char *kl_cal_pattern_name(enum kl_cal_pattern p)
{
	switch (p) {
	case KL_CAL_RANDREAD: return "randread";
	case KL_CAL_RANDWRITE: return "randwrite";
	case KL_CAL_SEQREAD: return "seqread";
	}
	return "?";
}

void klc_human_size(uint64_t n, char *buf, size_t len)
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
	klc_human_size(c->size, size, sizeof size);
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
	klc_human_size(size, hs, sizeof hs);
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
			for (size_t q = 0; q < KLC_NQDS; q++)
				for (size_t e = 0; e < KL_CAL_NENGINES; e++) {
					if (!c->engines[e].available || n >= max)
						continue;
					items[n++] = (struct plan_item){ c->engines[e].engine, d == 1, klc_qds[q], pats[p] };
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

/* Stat path and open what is measured: the block device itself, or a
 * temporary file in the directory (of the file) given. */
static int open_target(struct kl_calibration *c, const char *path, const struct kl_calibrate_options *o,
		       struct target *t, struct kl_error *err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return kl_error_errno(err, errno, "calibrate %s", path);
	if (S_ISBLK(st.st_mode)) {
		c->backend = KL_BACKEND_BLOCK;
		snprintf(c->storage_id, sizeof c->storage_id, "dev:%u:%u", major(st.st_rdev), minor(st.st_rdev));
		if (open_block(c, path, o, t, err) < 0)
			return -1;
		c->wrote = o->allow_write;
		block_label(c, &st, path);
		return 0;
	}
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
		return kl_error_fail(err, "calibrate %s: neither a block device, a directory nor a regular file", path);
	c->backend = KL_BACKEND_FILE;
	snprintf(c->storage_id, sizeof c->storage_id, "dev:%u:%u", major(st.st_dev), minor(st.st_dev));
	_cleanup_free_ char *dir = NULL;
	if (S_ISDIR(st.st_mode)) {
		dir = xstrdup(path);
	} else {
		const char *slash = strrchr(path, '/');
		dir = slash ? (slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path))) : xstrdup(".");
	}
	fs_label(c, path, &st);
	uint64_t size = o->file_size ? o->file_size : KL_CALIBRATE_FILE_SIZE_DEFAULT;
	size = size < 2 * (uint64_t)LARGE_BS ? 2 * (uint64_t)LARGE_BS : size - size % LARGE_BS;
	if (open_temp_file(c, dir, &st, size, t, err) < 0)
		return -1;
	c->wrote = true;  /* our own file */
	return 0;
}

/* Which engines can be set up at all. */
static void check_engines(struct kl_calibration *c)
{
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
}

/* What the runs share: the target, the buffers, the time each gets, and
 * the state one run leaves for the next. */
struct runs {
	struct target t;
	unsigned char *bufs[MAX_QD];
	double per, warmup;          /* seconds a run, of which warm-up */
	bool last_direct, dirty;     /* O_DIRECT as last set; buffered writes not yet synced */
	bool stuck;                  /* a run hung: its buffers may still be written to */
};

/* One engine's job (O_DIRECT already as asked) into r. */
static void measure(struct runs *rs, const struct plan_item *p, size_t i, struct kl_cal_run *r)
{
	struct klc_job j = {
		.fd = rs->t.fd, .direct = p->direct, .pattern = p->pattern, .bs = r->block_size, .qd = p->qd,
		.region = rs->t.size, .warmup = rs->warmup, .measure = rs->per - rs->warmup, .bufs = rs->bufs,
		.seed = 0x853c49e6748fea9bULL + i,
	};
	enum klc_status s = p->engine == KL_AIO_IO_URING ? klc_run_io_uring(&j)
			  : p->engine == KL_AIO_NATIVE	 ? klc_run_libaio(&j)
							 : klc_run_threads(&j);
	if (p->pattern == KL_CAL_RANDWRITE && !p->direct)
		rs->dirty = true;
	if (j.stuck)
		rs->stuck = true;
	if (s != KLC_OK) {
		snprintf(r->error, sizeof r->error, "%s", j.error[0] ? j.error : "failed");
	} else if (j.ios == 0) {
		snprintf(r->error, sizeof r->error, "no request completed in the %.2f s window", j.window);
	} else {
		r->ok = true;
		r->ios = j.ios;
		r->seconds = j.window;
		r->iops = (double)j.ios / j.window;
		r->mbps = r->iops * r->block_size / 1e6;
		r->lat_us = j.lat_sum_us / (double)j.ios;
	}
}

/* Run plan item i and add its result to c. */
static void run_item(struct kl_calibration *c, struct runs *rs, const struct plan_item *p, size_t i, size_t n,
		     const struct kl_calibrate_options *o)
{
	struct kl_cal_run r = {
		.engine = p->engine, .direct = p->direct, .qd = p->qd, .pattern = p->pattern,
		.block_size = p->pattern == KL_CAL_SEQREAD ? LARGE_BS : SMALL_BS,
		.synchronous = p->engine == KL_AIO_NATIVE && !p->direct,
		.page_cache = !p->direct && p->pattern != KL_CAL_RANDWRITE,
	};
	char what[96];
	snprintf(what, sizeof what, "%s %s qd%d %s", kl_aio_name(p->engine), p->direct ? "direct" : "buffered", p->qd,
		 kl_cal_pattern_name(p->pattern));
	progress(o, (int)i, (int)n, what);
	if (rs->stuck) {
		snprintf(r.error, sizeof r.error, "not run: an earlier run hung");
		kl_calibration_add_run(c, &r);
		return;
	}
	if (rs->dirty || !p->direct) {
		/* Written-back data and a cold page cache before each buffered run. */
		fdatasync(rs->t.fd);
		posix_fadvise(rs->t.fd, 0, 0, POSIX_FADV_DONTNEED);
		rs->dirty = false;
	}
	if ((i == 0 || p->direct != rs->last_direct) && set_direct(rs->t.fd, p->direct) < 0) {
		snprintf(r.error, sizeof r.error, "setting O_DIRECT %s: %s", p->direct ? "on" : "off", strerror(errno));
		kl_calibration_add_run(c, &r);
		return;
	}
	rs->last_direct = p->direct;
	measure(rs, p, i, &r);
	if (!r.ok)
		kl_debug("calibrate: %s: %s", what, r.error);
	kl_calibration_add_run(c, &r);
}

/* A hung run may still write into its buffers and use the fd: then both
 * are left behind on purpose. */
static void runs_free(struct runs *rs)
{
	if (rs->stuck)
		return;
	for (size_t i = 0; i < MAX_QD; i++)
		free(rs->bufs[i]);
	if (rs->t.fd >= 0)
		close(rs->t.fd);
}

static void calibration_freep(struct kl_calibration **c)
{
	kl_calibration_free(*c);
}

int kl_calibrate(const char *path, const struct kl_calibrate_options *o, struct kl_calibration **out,
		 struct kl_error *err)
{
	static const struct kl_calibrate_options defaults = { 0 };
	_cleanup_(runs_free) struct runs rs = { .t = { .fd = -1 }, .last_direct = true };
	struct plan_item plan[64];

	if (!o)
		o = &defaults;
	*out = NULL;
	_cleanup_(calibration_freep) struct kl_calibration *c = xcalloc(1, sizeof *c);
	c->path = xstrdup(path);
	c->seconds = o->seconds > 0 ? o->seconds : KL_CALIBRATE_SECONDS_DEFAULT;
	now_utc(c);

	for (size_t i = 0; i < MAX_QD; i++)
		if (posix_memalign((void **)&rs.bufs[i], BUF_ALIGN, LARGE_BS) != 0)
			return kl_error_fail(err, "out of memory for I/O buffers");
	uint64_t seed = 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < MAX_QD; i++)
		fill_pattern(rs.bufs[i], LARGE_BS, &seed);
	if (open_target(c, path, o, &rs.t, err) < 0)
		return -1;
	c->odirect = check_odirect(rs.t.fd, rs.bufs[0], c->odirect_error, sizeof c->odirect_error);
	check_engines(c);

	size_t nplan = make_plan(c, plan, sizeof plan / sizeof *plan);
	if (c->temp_file) {
		progress(o, 0, (int)nplan, "preparing the test file");
		if (fill_temp_file(&rs.t, path, rs.bufs[0], err) < 0)
			return -1;
		fill_pattern(rs.bufs[0], LARGE_BS, &seed);
	}
	rs.per = nplan ? (double)c->seconds / (double)nplan : 0;
	rs.warmup = rs.per * 0.25 < WARMUP_MAX ? rs.per * 0.25 : WARMUP_MAX;
	for (size_t i = 0; i < nplan; i++)
		run_item(c, &rs, &plan[i], i, nplan, o);
	if (!rs.stuck && rs.t.fd >= 0 && (rs.dirty || c->wrote))
		fdatasync(rs.t.fd);
	progress(o, (int)nplan, (int)nplan, "done");

	kl_calibration_rank(c);
	add_notes(c);
	*out = steal_pointer(&c);
	return 0;
}
