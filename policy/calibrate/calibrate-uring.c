/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The io_uring engine: one ring through liburing, readv/writev as QEMU 7.2
 * drives it (see calibrate-engines.c). */
#include "policy/calibrate/calibrate-int.h"

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/xalloc.h"

static void uring_reason(int r, char *why, size_t len)
{
	char extra[80] = "";
	FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
	if (f) {
		int v;
		if (fscanf(f, "%d", &v) == 1 && v != 0)
			snprintf(extra, sizeof extra, " (kernel.io_uring_disabled = %d)", v);
		fclose(f);
	}
	if (r == -ENOSYS && !extra[0])
		snprintf(extra, sizeof extra, " (no io_uring in this kernel, or a seccomp filter denies it)");
	snprintf(why, len, "io_uring_setup: %s%s", strerror(-r), extra);
}

enum klc_status klc_check_io_uring(char *why, size_t len)
{
	struct io_uring ring;
	int r = io_uring_queue_init(1, &ring, 0);
	if (r < 0) {
		uring_reason(r, why, len);
		return KLC_UNAVAILABLE;
	}
	io_uring_queue_exit(&ring);
	return KLC_OK;
}

struct uring_slot {
	struct iovec iov;
	uint64_t off;
	size_t done;
	double t_submit;
	int canceled; /* -ECANCELED completions of this request so far */
};

/* How often one request is tried again after -ECANCELED.  Nothing here
 * cancels a request, but the kernel completes one with -ECANCELED when it
 * cannot hand it to an io-wq worker (a worker thread it failed to start,
 * as under a pids limit or on a loaded machine); seen rarely in
 * calibration runs, and every time for buffered writes when no thread can
 * be started (pids.max reached).  The n-th retry waits min(n, 10) ms
 * first, so one request waits at most about 1 s in all. */
enum { URING_CANCELED_MAX = 100 };

/* Prepare the slot's (rest of its) request.  There is room: the ring has
 * 2 * qd entries and at most qd requests (plus liburing's own timeout entry
 * on kernels without IORING_FEAT_EXT_ARG) are ever prepared.  Returns false
 * if there is none after all (then the run fails). */
static bool uring_prep(struct klc_job *j, struct io_uring *ring, struct uring_slot *s, int idx)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	if (!sqe) {
		io_uring_submit(ring);
		sqe = io_uring_get_sqe(ring);
	}
	if (!sqe) {
		if (!j->error[0])
			snprintf(j->error, sizeof j->error, "io_uring: submission queue full");
		return false;
	}
	s->iov.iov_base = j->bufs[idx] + s->done;
	s->iov.iov_len = j->bs - s->done;
	if (j->pattern == KL_CAL_RANDWRITE)
		io_uring_prep_writev(sqe, j->fd, &s->iov, 1, s->off + s->done);
	else
		io_uring_prep_readv(sqe, j->fd, &s->iov, 1, s->off + s->done);
	io_uring_sqe_set_data(sqe, s);
	return true;
}

/* One completion at time t: retry, continue a short transfer, count it and
 * start the slot's next request while the window lasts.  Returns whether
 * the slot still has a request prepared or in flight. */
static bool uring_complete(struct klc_job *j, struct io_uring *ring, struct uring_slot *slots,
			   const struct io_uring_cqe *cqe, double t, double mstart, double mend)
{
	struct uring_slot *s = io_uring_cqe_get_data(cqe);
	int res = cqe->res;
	int idx = (int)(s - slots);
	bool more = t < mend && !j->error[0];
	if (res == -EAGAIN || res == -EINTR)
		return !j->error[0] && uring_prep(j, ring, s, idx);
	if (res == -ECANCELED && ++s->canceled <= URING_CANCELED_MAX) {
		struct timespec ts = { 0, (s->canceled < 10 ? s->canceled : 10) * 1000000L };
		nanosleep(&ts, NULL);
		return !j->error[0] && uring_prep(j, ring, s, idx);
	}
	if (res <= 0) {
		klc_io_error(j, -res, s->off, j->bs);
		return false;
	}
	s->done += (size_t)res;
	if (s->done < j->bs) /* short transfer: continue it */
		return !j->error[0] && uring_prep(j, ring, s, idx);
	klc_account(j, t, s->t_submit, mstart, mend);
	if (!more)
		return false;
	s->off = klc_next_offset(j);
	s->done = 0;
	s->canceled = 0;
	s->t_submit = t;
	return uring_prep(j, ring, s, idx);
}

enum klc_status klc_run_io_uring(struct klc_job *j)
{
	struct io_uring ring;
	int r = io_uring_queue_init((unsigned)(2 * j->qd), &ring, 0);
	if (r < 0) {
		uring_reason(r, j->error, sizeof j->error);
		return KLC_UNAVAILABLE;
	}
	struct uring_slot *slots = xcalloc((size_t)j->qd, sizeof *slots);
	int outstanding = 0, again = 0;   /* prepared or submitted, not completed */
	double mstart, mend;
	bool stalled = false;

	klc_job_start(j, &mstart, &mend);
	double t0 = klc_now();
	for (int i = 0; i < j->qd; i++) {
		slots[i].off = klc_next_offset(j);
		slots[i].t_submit = t0;
		if (uring_prep(j, &ring, &slots[i], i))
			outstanding++;
	}

	while (outstanding > 0) {
		unsigned ready = io_uring_sq_ready(&ring);
		if (ready > 0) {
			r = io_uring_submit(&ring);
			if (r == -EAGAIN || r == -EBUSY || r == -EINTR) {
				if ((unsigned)outstanding == ready) {
					/* nothing to reap: wait a little */
					if (++again > 100000) {
						snprintf(j->error, sizeof j->error, "io_uring_submit: %s for too long",
							 strerror(-r));
						stalled = true;
						break;
					}
					struct timespec ts = { 0, 100000 };
					nanosleep(&ts, NULL);
					continue;
				}
			} else if (r < 0) {
				snprintf(j->error, sizeof j->error, "io_uring_submit: %s", strerror(-r));
				stalled = true;
				break;
			} else {
				again = 0;
			}
		}
		struct io_uring_cqe *cqe;
		if (io_uring_cq_ready(&ring) == 0) {
			/* The event loop's wait: poll the ring's fd. */
			int w = klc_wait_readable(ring.ring_fd);
			if (w <= 0) {
				klc_stall_error(j, w);
				stalled = true;
				break;
			}
			if (io_uring_cq_ready(&ring) == 0)
				continue;
		}
		double t = klc_now();
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			seen++;
			if (!uring_complete(j, &ring, slots, cqe, t, mstart, mend))
				outstanding--;
		}
		io_uring_cq_advance(&ring, seen);
	}
	klc_job_finish(j, mstart, mend);
	if (stalled) {
		/* Requests may still be in the kernel: keep the ring and buffers. */
		j->stuck = true;
		return KLC_FAILED;
	}
	io_uring_queue_exit(&ring);
	free(slots);
	return j->error[0] ? KLC_FAILED : KLC_OK;
}
