/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Host capabilities: can this process use io_uring and libaio, and is there
 * room left in the kernel's system-wide AIO event budget (fs.aio-nr against
 * fs.aio-max-nr).
 *
 * Why the default reserve is 4096 events: QEMU's linux-aio backend
 * (block/linux-aio.c, laio_init) calls io_setup(MAX_EVENTS) once for every
 * AioContext that runs an aio=native node: the main loop, plus each iothread
 * that has such a disk.  MAX_EVENTS is 1024 in current QEMU (older releases
 * used 128); since Linux 4.12 the kernel charges exactly the requested count
 * to fs.aio-nr (before, twice as much).  Measured on this host's QEMU 7.2: one or two aio=native
 * disks in the main loop raise fs.aio-nr by 1024 (one context for the
 * AioContext, not one per disk).  A VM whose disks use the main loop and
 * three iothreads therefore needs 4 x 1024 = 4096 events; when fewer are
 * left, io_setup() fails with EAGAIN and QEMU refuses to open the disk
 * ("failed to create linux AIO context"), so we keep that much free. */
#include "policy/probe/probe.h"

#include <errno.h>
#include <libaio.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kl_probe_io_uring_real(struct kl_error *err)
{
	struct io_uring ring;
	struct io_uring_cqe *cqe;
	int r = io_uring_queue_init(4, &ring, 0);
	if (r < 0)
		return kl_error_errno(err, -r, "io_uring_queue_init");

	/* The opcodes QEMU's block/io_uring.c submits.  The probe opcode needs
	 * Linux 5.6; without it READV/WRITEV/FSYNC (5.1) are all there is. */
	struct io_uring_probe *p = io_uring_get_probe_ring(&ring);
	if (p) {
		static const struct { int op; const char *name; } need[] = {
			{ IORING_OP_READV, "READV" }, { IORING_OP_WRITEV, "WRITEV" }, { IORING_OP_FSYNC, "FSYNC" },
		};
		for (size_t i = 0; i < sizeof need / sizeof *need; i++)
			if (!io_uring_opcode_supported(p, need[i].op)) {
				io_uring_free_probe(p);
				io_uring_queue_exit(&ring);
				return kl_error_fail(err, "io_uring lacks IORING_OP_%s", need[i].name);
			}
		io_uring_free_probe(p);
	}

	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	if (!sqe) {
		io_uring_queue_exit(&ring);
		return kl_error_fail(err, "io_uring: no submission queue entry");
	}
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, 0x4b4c);
	r = io_uring_submit(&ring);
	if (r < 0) {
		io_uring_queue_exit(&ring);
		return kl_error_errno(err, -r, "io_uring_submit");
	}
	struct __kernel_timespec ts = { .tv_sec = 1, .tv_nsec = 0 };
	r = io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
	if (r < 0) {
		io_uring_queue_exit(&ring);
		return kl_error_errno(err, -r, "io_uring: waiting for a NOP completion");
	}
	int res = cqe->res;
	io_uring_cqe_seen(&ring, cqe);
	io_uring_queue_exit(&ring);
	if (res < 0)
		return kl_error_errno(err, -res, "io_uring: NOP completed with an error");
	return 0;
}

/* io_setup(0) answers EINVAL when the kernel has AIO and lets us call it,
 * ENOSYS without CONFIG_AIO, the filter's errno under seccomp: the same
 * answers as io_setup(1), without the io_destroy() that must follow, which
 * waits for an RCU grace period (25-35 ms measured here, 200 times all the
 * other probes together).  Running out of fs.aio-max-nr, the one failure
 * io_setup(1) would add, is what libaio_headroom reports. */
int kl_probe_libaio_real(struct kl_error *err)
{
	io_context_t ctx = 0;
	int r = io_setup(0, &ctx);   /* libaio returns -errno */
	if (r == -EINVAL)
		return 0;
	if (r == 0) {                /* a kernel that accepted 0 events: fine too */
		io_destroy(ctx);
		return 0;
	}
	if (r == -EAGAIN)
		return kl_error_errno(err, -r, "io_setup (fs.aio-max-nr reached)");
	return kl_error_errno(err, r < 0 ? -r : EIO, "io_setup");
}

static bool read_long(const char *root, const char *path, long *out)
{
	char buf[64], *end;
	if (kl_probe_read_file(root, path, buf, sizeof buf) <= 0)
		return false;
	errno = 0;
	long v = strtol(buf, &end, 10);
	if (errno || end == buf)
		return false;
	*out = v;
	return true;
}

int kl_probe_host(const struct kl_probe_env *env, struct kl_host_facts *out, struct kl_error *err)
{
	if (!out)
		return kl_error_fail(err, "kl_probe_host: called without facts");
	if (!env)
		env = &kl_probe_env_real;
	const char *proc = env->proc_root ? env->proc_root : "";
	struct kl_error e = KL_ERROR_INIT;

	memset(out, 0, sizeof *out);
	out->aio_nr = out->aio_max_nr = -1;

	/* io_uring: the sysctl first (Linux >= 6.6; absent means allowed). */
	long disabled = 0;
	read_long(proc, "/proc/sys/kernel/io_uring_disabled", &disabled);
	if (disabled >= 2) {
		out->io_uring_kernel = KL_TRI_NO;
		strvec_pushf(&out->notes, "io_uring is disabled by the kernel (kernel.io_uring_disabled=%ld)", disabled);
	} else {
		if (disabled == 1) {
			long gid = -1;
			read_long(proc, "/proc/sys/kernel/io_uring_group", &gid);
			if (gid >= 0)
				strvec_pushf(&out->notes, "io_uring is limited to group %ld and CAP_SYS_ADMIN "
					     "(kernel.io_uring_disabled=1)", gid);
			else
				strvec_pushf(&out->notes, "io_uring is limited to CAP_SYS_ADMIN (kernel.io_uring_disabled=1)");
		}
		int r = env->io_uring_fn ? env->io_uring_fn(&e) : kl_probe_io_uring_real(&e);
		if (r == 0) {
			out->io_uring_kernel = KL_TRI_YES;
		} else {
			out->io_uring_kernel = KL_TRI_NO;
			strvec_pushf(&out->notes, "io_uring unusable: %s", e.set ? e.msg : "no reason given");
		}
	}
	out->io_uring_qemu = KL_TRI_UNKNOWN;  /* the launcher asks QEMU */

	kl_error_clear(&e);
	int r = env->libaio_fn ? env->libaio_fn(&e) : kl_probe_libaio_real(&e);
	if (r == 0) {
		out->libaio = KL_TRI_YES;
	} else {
		out->libaio = KL_TRI_NO;
		strvec_pushf(&out->notes, "libaio unusable: %s", e.set ? e.msg : "no reason given");
	}

	/* Read after the libaio probe, whose context is gone by now. */
	unsigned long reserve = env->aio_reserve ? env->aio_reserve : KL_AIO_RESERVE_DEFAULT;
	bool have_nr = read_long(proc, "/proc/sys/fs/aio-nr", &out->aio_nr);
	bool have_max = read_long(proc, "/proc/sys/fs/aio-max-nr", &out->aio_max_nr);
	if (!have_nr)
		out->aio_nr = -1;
	if (!have_max)
		out->aio_max_nr = -1;
	if (have_nr && have_max) {
		if (out->aio_nr >= 0 && (unsigned long)out->aio_nr + reserve <= (unsigned long)out->aio_max_nr) {
			out->libaio_headroom = KL_TRI_YES;
		} else {
			out->libaio_headroom = KL_TRI_NO;
			strvec_pushf(&out->notes, "fs.aio-nr is %ld of fs.aio-max-nr %ld: fewer than %lu AIO events left "
				     "(QEMU takes 1024 per AioContext with aio=native)",
				     out->aio_nr, out->aio_max_nr, reserve);
		}
	} else {
		out->libaio_headroom = KL_TRI_UNKNOWN;
		strvec_pushf(&out->notes, "cannot read fs.aio-nr/fs.aio-max-nr under %s/proc/sys/fs", proc);
	}
	return 0;
}
