/* SPDX-License-Identifier: GPL-2.0-or-later */
/* aio-engines: 4 KiB random O_DIRECT reads with libaio or io_uring at a fixed
 * queue depth, for a fixed time.  Built ad hoc (not part of the test suite):
 *
 *   cc -O2 -o aio-engines tests/bench/aio-engines.c -laio -luring
 *   ./aio-engines PATH libaio|io_uring QD SECONDS
 *
 * Prints "ENGINE qd=QD iops=N cpu_us_per_io=C".  PATH may be a regular file or a block
 * device; it is opened read-only with O_DIRECT.  Used to choose the built-in
 * order of aio=auto (policy/defaults.c). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <liburing.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BS 4096
#define MAXQD 256

static uint64_t nblocks;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static off_t next_offset(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (off_t)(rng % nblocks) * BS;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, int e)
{
	fprintf(stderr, "aio-engines: %s: %s\n", what, strerror(e));
	exit(1);
}

static uint64_t run_libaio(int fd, int qd, double secs, char **bufs)
{
	io_context_t ctx = 0;
	struct iocb cbs[MAXQD], *cbp[MAXQD];
	struct io_event ev[MAXQD];
	uint64_t done = 0;
	int r = io_setup(qd, &ctx);
	if (r < 0)
		die("io_setup", -r);
	for (int i = 0; i < qd; i++) {
		io_prep_pread(&cbs[i], fd, bufs[i], BS, next_offset());
		cbs[i].data = (void *)(intptr_t)i;
		cbp[i] = &cbs[i];
	}
	if ((r = io_submit(ctx, qd, cbp)) != qd)
		die("io_submit", r < 0 ? -r : EIO);
	double end = now() + secs;
	while (now() < end) {
		int n = io_getevents(ctx, 1, qd, ev, NULL);
		if (n < 0)
			die("io_getevents", -n);
		for (int i = 0; i < n; i++) {
			struct iocb *cb = ev[i].obj;
			if ((long)ev[i].res != BS)
				die("read", (long)ev[i].res < 0 ? (int)-(long)ev[i].res : EIO);
			io_prep_pread(cb, fd, cb->u.c.buf, BS, next_offset());
			cbp[i] = cb;
		}
		if (n && (r = io_submit(ctx, n, cbp)) != n)
			die("io_submit", r < 0 ? -r : EIO);
		done += (uint64_t)n;
	}
	io_destroy(ctx);
	return done;
}

static uint64_t run_uring(int fd, int qd, double secs, char **bufs)
{
	struct io_uring ring;
	uint64_t done = 0;
	int r = io_uring_queue_init((unsigned)qd, &ring, 0);
	if (r < 0)
		die("io_uring_queue_init", -r);
	for (int i = 0; i < qd; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
		io_uring_prep_read(sqe, fd, bufs[i], BS, (uint64_t)next_offset());
		io_uring_sqe_set_data(sqe, bufs[i]);
	}
	io_uring_submit(&ring);
	double end = now() + secs;
	while (now() < end) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;
		if ((r = io_uring_wait_cqe(&ring, &cqe)) < 0)
			die("io_uring_wait_cqe", -r);
		io_uring_for_each_cqe(&ring, head, cqe) {
			if (cqe->res != BS)
				die("read", cqe->res < 0 ? -cqe->res : EIO);
			char *buf = io_uring_cqe_get_data(cqe);
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
			io_uring_prep_read(sqe, fd, buf, BS, (uint64_t)next_offset());
			io_uring_sqe_set_data(sqe, buf);
			n++;
		}
		io_uring_cq_advance(&ring, n);
		io_uring_submit(&ring);
		done += n;
	}
	io_uring_queue_exit(&ring);
	return done;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s PATH libaio|io_uring QD SECONDS\n", argv[0]);
		return 2;
	}
	int qd = atoi(argv[3]);
	double secs = atof(argv[4]);
	if (qd < 1 || qd > MAXQD || secs <= 0)
		return 2;
	int fd = open(argv[1], O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0)
		die(argv[1], errno);
	struct stat st;
	if (fstat(fd, &st) < 0)
		die("fstat", errno);
	uint64_t size = (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &size) < 0)
		die("BLKGETSIZE64", errno);
	nblocks = size / BS;
	if (nblocks == 0)
		die("size", EINVAL);
	char *bufs[MAXQD];
	for (int i = 0; i < qd; i++)
		if (posix_memalign((void **)&bufs[i], BS, BS))
			die("posix_memalign", ENOMEM);
	double t0 = now();
	uint64_t n = strcmp(argv[2], "libaio") == 0 ? run_libaio(fd, qd, secs, bufs) : run_uring(fd, qd, secs, bufs);
	double t = now() - t0;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	/* CPU time of this process per I/O: the submitting thread's cost. */
	printf("%s qd=%d iops=%.0f cpu_us_per_io=%.2f\n", argv[2], qd, n / t, n ? cpu * 1e6 / (double)n : 0.0);
	return 0;
}
