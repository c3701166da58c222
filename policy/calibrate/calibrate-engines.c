/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The three engines of the calibration, each as QEMU drives it: a pool of
 * threads doing pread/pwrite behind a queue (aio=threads), Linux AIO through
 * libaio (aio=native), one io_uring through liburing (aio=io_uring).
 *
 * Completions are awaited as QEMU's event loop awaits them: poll() on a file
 * descriptor that becomes readable (an eventfd the workers or the kernel's
 * AIO signal, or the io_uring fd), then reaping whatever is ready without
 * blocking (libaio: from the completion ring in user space, like QEMU's
 * io_getevents_peek; io_uring: the CQ ring).  A tight blocking
 * io_getevents/io_uring_wait_cqe loop would leave out the wake-up costs QEMU
 * pays, and rank native and io_uring differently from QEMU.
 *
 * Each run keeps qd requests in flight: it submits qd, and resubmits one for
 * each completion, until warm-up + measured window are over; then it stops
 * submitting and drains.  Completions inside the window count (IOPS, and
 * latency from submission to completion).  Short transfers are continued
 * from where they stopped, EINTR and EAGAIN retried; an I/O error or end of
 * file fails the run.
 *
 * This file: what the engines share, and the thread pool; libaio in
 * calibrate-libaio.c, io_uring in calibrate-uring.c. */
#include "policy/calibrate/calibrate-int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/xalloc.h"

double klc_now(void)
{
	return kl_monotonic_s();
}

uint64_t klc_next_offset(struct klc_job *j)
{
	uint64_t nblocks = j->region / j->bs;
	if (j->pattern == KL_CAL_SEQREAD) {
		uint64_t off = j->seq_next;
		j->seq_next += j->bs;
		if (j->seq_next + j->bs > j->region)
			j->seq_next = 0;
		return off;
	}
	/* xorshift64* */
	j->rng ^= j->rng >> 12;
	j->rng ^= j->rng << 25;
	j->rng ^= j->rng >> 27;
	return ((j->rng * 0x2545F4914F6CDD1DULL) >> 11) % nblocks * j->bs;
}

void klc_job_start(struct klc_job *j, double *mstart, double *mend)
{
	j->rng = j->seed ? j->seed : 0x9e3779b97f4a7c15ULL;
	j->seq_next = 0;
	j->ios = 0;
	j->lat_sum_us = 0;
	j->t_last = 0;
	j->window = j->measure;
	j->error[0] = '\0';
	*mstart = klc_now() + j->warmup;
	*mend = *mstart + j->measure;
}

void klc_job_finish(struct klc_job *j, double mstart, double mend)
{
	j->window = j->t_last > mend ? j->t_last - mstart : j->measure;
}

void klc_io_error(struct klc_job *j, int e, uint64_t off, size_t len)
{
	if (j->error[0])
		return;
	if (e == 0)
		snprintf(j->error, sizeof j->error, "%s of %zu bytes at offset %llu: unexpected end of file",
			 j->pattern == KL_CAL_RANDWRITE ? "write" : "read", len, (unsigned long long)off);
	else
		snprintf(j->error, sizeof j->error, "%s of %zu bytes at offset %llu: %s",
			 j->pattern == KL_CAL_RANDWRITE ? "write" : "read", len, (unsigned long long)off,
			 strerror(e));
}

/* Wait until fd is readable, as an event loop does.  1 ready, 0 nothing for
 * KLC_STALL_SECONDS, -1 error (errno). */
int klc_wait_readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	double deadline = klc_now() + KLC_STALL_SECONDS;
	for (;;) {
		double left = deadline - klc_now();
		if (left <= 0)
			return 0;
		int r = poll(&pfd, 1, (int)(left * 1000) + 1);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

/* Why a run stopped: klc_wait_readable() returned w (0 timed out, -1 failed). */
void klc_stall_error(struct klc_job *j, int w)
{
	if (w == 0)
		snprintf(j->error, sizeof j->error, "no request completed for %.0f s", KLC_STALL_SECONDS);
	else
		snprintf(j->error, sizeof j->error, "poll: %s", strerror(errno));
}

/* Clear an eventfd (non-blocking). */
void klc_eventfd_clear(int efd)
{
	uint64_t v;
	while (read(efd, &v, sizeof v) < 0 && errno == EINTR)
		;
}

/* ---- threads: a queue, qd workers (QEMU's pool has up to 64), a completion queue ---- */

struct tp_slot {
	uint64_t off;
	double t_submit;
	int err;          /* 0, an errno, or -1 for end of file */
};

struct tp {
	struct klc_job *j;
	pthread_mutex_t mu;
	pthread_cond_t work_cv;
	int efd;                   /* completions: the event notifier QEMU's pool sets for its bottom half */
	int *work, *done;          /* rings of qd slot indexes */
	size_t wh, wn, dh, dn;     /* head and count of each */
	bool stop;
	struct tp_slot *slots;
};

static int full_io(struct klc_job *j, int fd, unsigned char *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = j->pattern == KL_CAL_RANDWRITE ? pwrite(fd, buf + done, len - done, (off_t)(off + done))
							    : pread(fd, buf + done, len - done, (off_t)(off + done));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return errno;
		if (n == 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

static void *tp_worker(void *arg)
{
	struct tp *p = arg;
	struct klc_job *j = p->j;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && p->wn == 0)
			pthread_cond_wait(&p->work_cv, &p->mu);
		if (p->wn == 0)
			break;
		int idx = p->work[p->wh];
		p->wh = (p->wh + 1) % (size_t)j->qd;
		p->wn--;
		pthread_mutex_unlock(&p->mu);

		struct tp_slot *s = &p->slots[idx];
		s->err = full_io(j, j->fd, j->bufs[idx], j->bs, s->off);

		pthread_mutex_lock(&p->mu);
		p->done[(p->dh + p->dn) % (size_t)j->qd] = idx;
		if (p->dn++ == 0) {
			uint64_t one = 1;
			while (write(p->efd, &one, sizeof one) < 0 && errno == EINTR)
				;
		}
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Called with the lock held. */
static void tp_submit(struct tp *p, int idx)
{
	struct klc_job *j = p->j;
	p->slots[idx].off = klc_next_offset(j);
	p->slots[idx].t_submit = klc_now();
	p->work[(p->wh + p->wn) % (size_t)j->qd] = idx;
	p->wn++;
	pthread_cond_signal(&p->work_cv);
}

/* On the heap: a worker stuck in the kernel may outlive the run.  efd < 0
 * (errno set) when the completion eventfd could not be made. */
static struct tp *tp_new(struct klc_job *j)
{
	struct tp *p = xcalloc(1, sizeof *p);
	p->j = j;
	p->work = xcalloc((size_t)j->qd, sizeof *p->work);
	p->done = xcalloc((size_t)j->qd, sizeof *p->done);
	p->slots = xcalloc((size_t)j->qd, sizeof *p->slots);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work_cv, NULL);
	p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return p;
}

/* Once every worker has been joined. */
static void tp_free(struct tp *p)
{
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->work_cv);
	if (p->efd >= 0)
		close(p->efd);
	free(p->work);
	free(p->done);
	free(p->slots);
	free(p);
}

enum klc_status klc_run_threads(struct klc_job *j)
{
	struct tp *p = tp_new(j);
	int nworkers = j->qd, started = 0, inflight = 0;
	pthread_t *threads = xcalloc((size_t)nworkers, sizeof *threads);
	int *batch = xcalloc((size_t)j->qd, sizeof *batch);
	double mstart = 0, mend = 0;
	enum klc_status rc = KLC_OK;

	if (p->efd < 0) {
		snprintf(j->error, sizeof j->error, "eventfd: %s", strerror(errno));
		rc = KLC_FAILED;
		nworkers = 0;
	}

	for (; started < nworkers; started++) {
		int e = pthread_create(&threads[started], NULL, tp_worker, p);
		if (e) {
			snprintf(j->error, sizeof j->error, "starting worker thread %d of %d: %s", started + 1,
				 nworkers, strerror(e));
			rc = KLC_FAILED;
			break;
		}
	}

	pthread_mutex_lock(&p->mu);
	if (rc == KLC_OK) {
		klc_job_start(j, &mstart, &mend);
		for (int i = 0; i < j->qd; i++)
			tp_submit(p, i);
		inflight = j->qd;
	}
	while (inflight > 0 && !j->stuck) {
		while (p->dn == 0) {
			pthread_mutex_unlock(&p->mu);
			int w = klc_wait_readable(p->efd);
			klc_eventfd_clear(p->efd);
			pthread_mutex_lock(&p->mu);
			if (w <= 0 && p->dn == 0) {
				klc_stall_error(j, w);
				j->stuck = true;
				break;
			}
		}
		if (j->stuck)
			break;
		size_t n = 0;
		while (p->dn > 0) {
			batch[n++] = p->done[p->dh];
			p->dh = (p->dh + 1) % (size_t)j->qd;
			p->dn--;
		}
		pthread_mutex_unlock(&p->mu);
		double t = klc_now();
		bool more = t < mend && !j->error[0];
		for (size_t k = 0; k < n; k++) {
			struct tp_slot *s = &p->slots[batch[k]];
			if (s->err) {
				klc_io_error(j, s->err < 0 ? 0 : s->err, s->off, j->bs);
				more = false;
			} else {
				klc_account(j, t, s->t_submit, mstart, mend);
			}
		}
		pthread_mutex_lock(&p->mu);
		for (size_t k = 0; k < n; k++) {
			if (more)
				tp_submit(p, batch[k]);
			else
				inflight--;
		}
	}
	p->stop = true;
	pthread_cond_broadcast(&p->work_cv);
	pthread_mutex_unlock(&p->mu);
	if (rc == KLC_OK)
		klc_job_finish(j, mstart, mend);

	if (j->stuck) {
		/* Leave the stuck worker (and what it uses) be. */
		for (int i = 0; i < started; i++)
			pthread_detach(threads[i]);
	} else {
		for (int i = 0; i < started; i++)
			pthread_join(threads[i], NULL);
		tp_free(p);
	}
	free(threads);
	free(batch);
	return j->error[0] ? KLC_FAILED : rc;
}

