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
 * file fails the run. */
#include "policy/calibrate/calibrate-int.h"

#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <liburing.h>
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

static void job_start(struct klc_job *j, double *mstart, double *mend)
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

/* A completion reaped at t.  Those inside the window count; when nothing
 * completed inside it (slow storage, a short window, or native without
 * O_DIRECT doing a whole batch inside io_submit), the first batch reaped
 * after it counts instead and the window stretches to it. */
static inline void account(struct klc_job *j, double t, double t_submit, double mstart, double mend)
{
	if (t >= mstart && (t < mend || j->ios == 0 || t == j->t_last)) {
		j->ios++;
		j->lat_sum_us += (t - t_submit) * 1e6;
		j->t_last = t;
	}
}

static void job_finish(struct klc_job *j, double mstart, double mend)
{
	j->window = j->t_last > mend ? j->t_last - mstart : j->measure;
}

static void io_error(struct klc_job *j, int e, uint64_t off, size_t len)
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
static int wait_readable(int fd)
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

/* Why a run stopped: wait_readable() returned w (0 timed out, -1 failed). */
static void stall_error(struct klc_job *j, int w)
{
	if (w == 0)
		snprintf(j->error, sizeof j->error, "no request completed for %.0f s", KLC_STALL_SECONDS);
	else
		snprintf(j->error, sizeof j->error, "poll: %s", strerror(errno));
}

/* Clear an eventfd (non-blocking). */
static void eventfd_clear(int efd)
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

enum klc_status klc_run_threads(struct klc_job *j)
{
	/* On the heap: a worker stuck in the kernel may outlive this call. */
	struct tp *p = xcalloc(1, sizeof *p);
	int nworkers = j->qd, started = 0, inflight = 0;
	pthread_t *threads = xcalloc((size_t)nworkers, sizeof *threads);
	int *batch = xcalloc((size_t)j->qd, sizeof *batch);
	double mstart = 0, mend = 0;
	enum klc_status rc = KLC_OK;

	p->j = j;
	p->work = xcalloc((size_t)j->qd, sizeof *p->work);
	p->done = xcalloc((size_t)j->qd, sizeof *p->done);
	p->slots = xcalloc((size_t)j->qd, sizeof *p->slots);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->work_cv, NULL);
	p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
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
		job_start(j, &mstart, &mend);
		for (int i = 0; i < j->qd; i++)
			tp_submit(p, i);
		inflight = j->qd;
	}
	while (inflight > 0 && !j->stuck) {
		while (p->dn == 0) {
			pthread_mutex_unlock(&p->mu);
			int w = wait_readable(p->efd);
			eventfd_clear(p->efd);
			pthread_mutex_lock(&p->mu);
			if (w <= 0 && p->dn == 0) {
				stall_error(j, w);
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
				io_error(j, s->err < 0 ? 0 : s->err, s->off, j->bs);
				more = false;
			} else {
				account(j, t, s->t_submit, mstart, mend);
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
		job_finish(j, mstart, mend);

	if (j->stuck) {
		/* Leave the stuck worker (and what it uses) be. */
		for (int i = 0; i < started; i++)
			pthread_detach(threads[i]);
	} else {
		for (int i = 0; i < started; i++)
			pthread_join(threads[i], NULL);
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->work_cv);
		if (p->efd >= 0)
			close(p->efd);
		free(p->work);
		free(p->done);
		free(p->slots);
		free(p);
	}
	free(threads);
	free(batch);
	return j->error[0] ? KLC_FAILED : rc;
}

/* ---- native: libaio ---- */

static void aio_headroom(char *buf, size_t len)
{
	char nr[32] = "", max[32] = "";
	FILE *f;
	if ((f = fopen("/proc/sys/fs/aio-nr", "re"))) {
		if (!fgets(nr, sizeof nr, f))
			nr[0] = '\0';
		fclose(f);
	}
	if ((f = fopen("/proc/sys/fs/aio-max-nr", "re"))) {
		if (!fgets(max, sizeof max, f))
			max[0] = '\0';
		fclose(f);
	}
	nr[strcspn(nr, "\n")] = '\0';
	max[strcspn(max, "\n")] = '\0';
	if (nr[0] && max[0])
		snprintf(buf, len, " (fs.aio-nr %s of fs.aio-max-nr %s)", nr, max);
	else
		buf[0] = '\0';
}

static enum klc_status libaio_setup(int depth, io_context_t *ctx, char *why, size_t len)
{
	*ctx = 0;
	int r = io_setup(depth, ctx);
	if (r == 0)
		return KLC_OK;
	char extra[96] = "";
	if (r == -EAGAIN)
		aio_headroom(extra, sizeof extra);
	snprintf(why, len, "io_setup(%d): %s%s", depth, strerror(-r), extra);
	return KLC_UNAVAILABLE;
}

enum klc_status klc_check_libaio(char *why, size_t len)
{
	io_context_t ctx;
	enum klc_status s = libaio_setup(1, &ctx, why, len);
	if (s == KLC_OK)
		io_destroy(ctx);
	return s;
}

struct aio_slot {
	struct iocb cb;
	uint64_t off;
	size_t done;
	double t_submit;
};

static void aio_prep(struct klc_job *j, struct aio_slot *s, int idx, int efd)
{
	unsigned char *buf = j->bufs[idx] + s->done;
	size_t len = j->bs - s->done;
	if (j->pattern == KL_CAL_RANDWRITE)
		io_prep_pwrite(&s->cb, j->fd, buf, len, (long long)(s->off + s->done));
	else
		io_prep_pread(&s->cb, j->fd, buf, len, (long long)(s->off + s->done));
	io_set_eventfd(&s->cb, efd);  /* as QEMU does: completions wake its event loop */
	s->cb.data = s;
}

/* One libaio run's state. */
struct aio_run {
	io_context_t ctx;
	int efd;
	struct aio_slot *slots;
	struct iocb **subq;           /* prepared, not yet submitted */
	struct io_event *ev;
	size_t nsub;
	int inflight, again;
	double mstart, mend;
};

/* Queue slot idx's (next part of its) request for submission. */
static void aio_queue(struct klc_job *j, struct aio_run *ar, struct aio_slot *s)
{
	aio_prep(j, s, (int)(s - ar->slots), ar->efd);
	ar->subq[ar->nsub++] = &s->cb;
}

/* Submit what is queued.  Returns 1 to go on, 0 to loop again at once, -1
 * when submitting has failed for too long (error set). */
static int aio_submit_queued(struct klc_job *j, struct aio_run *ar)
{
	int r = io_submit(ar->ctx, (long)ar->nsub, ar->subq);
	if (r > 0) {
		memmove(ar->subq, ar->subq + r, (ar->nsub - (size_t)r) * sizeof *ar->subq);
		ar->nsub -= (size_t)r;
		ar->inflight += r;
		ar->again = 0;
		return 1;
	}
	if (r == -EAGAIN || r == -EINTR || r == 0) {
		/* The ring is full or the kernel is short of something: reap,
		 * or wait a little. */
		if (ar->inflight > 0)
			return 1;
		if (++ar->again > 100000) {
			snprintf(j->error, sizeof j->error, "io_submit: %s for too long", strerror(r ? -r : EAGAIN));
			return -1;
		}
		struct timespec ts = { 0, 100000 };
		nanosleep(&ts, NULL);
		return 0;
	}
	/* The first iocb was refused: it fails, the others wait. */
	struct aio_slot *s = ar->subq[0]->data;
	io_error(j, -r, s->off, j->bs);
	ar->nsub = 0;  /* submit no more; drain what is in flight */
	return 0;
}

/* One completion at time t: retry, continue a short transfer, count it and
 * start the slot's next request while the window lasts. */
static void aio_complete(struct klc_job *j, struct aio_run *ar, const struct io_event *e, double t)
{
	struct aio_slot *s = e->data;
	long res = (long)e->res;
	bool more = t < ar->mend && !j->error[0];
	if (res == -EAGAIN || res == -EINTR) {
		if (!j->error[0])
			aio_queue(j, ar, s);
		return;
	}
	if (res <= 0) {
		io_error(j, (int)-res, s->off, j->bs);
		return;
	}
	s->done += (size_t)res;
	if (s->done < j->bs) {
		/* short transfer: continue it */
		if (!j->error[0])
			aio_queue(j, ar, s);
		return;
	}
	account(j, t, s->t_submit, ar->mstart, ar->mend);
	if (more) {
		s->off = klc_next_offset(j);
		s->done = 0;
		s->t_submit = t;
		aio_queue(j, ar, s);
	}
}

enum klc_status klc_run_libaio(struct klc_job *j)
{
	struct aio_run ar = { .efd = -1 };
	char why[256];
	if (libaio_setup(j->qd, &ar.ctx, why, sizeof why) != KLC_OK) {
		snprintf(j->error, sizeof j->error, "%s", why);
		return KLC_UNAVAILABLE;
	}
	ar.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ar.efd < 0) {
		snprintf(j->error, sizeof j->error, "eventfd: %s", strerror(errno));
		io_destroy(ar.ctx);
		return KLC_FAILED;
	}
	ar.slots = xcalloc((size_t)j->qd, sizeof *ar.slots);
	ar.subq = xcalloc((size_t)j->qd, sizeof *ar.subq);
	ar.ev = xcalloc((size_t)j->qd, sizeof *ar.ev);
	bool stalled = false;

	job_start(j, &ar.mstart, &ar.mend);
	for (int i = 0; i < j->qd; i++) {
		ar.slots[i].off = klc_next_offset(j);
		ar.slots[i].done = 0;
		aio_queue(j, &ar, &ar.slots[i]);
	}
	double t0 = klc_now();
	for (int i = 0; i < j->qd; i++)
		ar.slots[i].t_submit = t0;

	while (ar.nsub > 0 || ar.inflight > 0) {
		if (ar.nsub > 0) {
			int r = aio_submit_queued(j, &ar);
			if (r < 0)
				break;
			if (r == 0)
				continue;
		}
		if (ar.inflight == 0)
			continue;
		int w = wait_readable(ar.efd);
		if (w <= 0) {
			stall_error(j, w);
			stalled = true;
			break;
		}
		eventfd_clear(ar.efd);
		struct timespec zero = { 0, 0 };
		int n = io_getevents(ar.ctx, 0, j->qd, ar.ev, &zero);
		if (n == -EINTR || n == 0)
			continue;
		if (n < 0) {
			snprintf(j->error, sizeof j->error, "io_getevents: %s", strerror(-n));
			stalled = true;
			break;
		}
		double t = klc_now();
		ar.inflight -= n;
		for (int k = 0; k < n; k++)
			aio_complete(j, &ar, &ar.ev[k], t);
		if (j->error[0])
			ar.nsub = 0;  /* stop submitting; drain what is in flight */
	}
	job_finish(j, ar.mstart, ar.mend);
	if (stalled && ar.inflight > 0) {
		/* io_destroy would wait for the stuck requests: leave them. */
		j->stuck = true;
		return KLC_FAILED;
	}
	io_destroy(ar.ctx);
	close(ar.efd);
	free(ar.slots);
	free(ar.subq);
	free(ar.ev);
	return j->error[0] ? KLC_FAILED : KLC_OK;
}

/* ---- io_uring: liburing, readv/writev like QEMU 7.2 ---- */

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
};

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

	job_start(j, &mstart, &mend);
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
			int w = wait_readable(ring.ring_fd);
			if (w <= 0) {
				stall_error(j, w);
				stalled = true;
				break;
			}
			if (io_uring_cq_ready(&ring) == 0)
				continue;
		}
		double t = klc_now();
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe) {
			struct uring_slot *s = io_uring_cqe_get_data(cqe);
			int res = cqe->res;
			int idx = (int)(s - slots);
			bool more = t < mend && !j->error[0];
			seen++;
			if (res == -EAGAIN || res == -EINTR) {
				if (j->error[0] || !uring_prep(j, &ring, s, idx))
					outstanding--;
				continue;
			}
			if (res <= 0) {
				io_error(j, -res, s->off, j->bs);
				outstanding--;
				continue;
			}
			s->done += (size_t)res;
			if (s->done < j->bs) {
				/* short transfer: continue it */
				if (j->error[0] || !uring_prep(j, &ring, s, idx))
					outstanding--;
				continue;
			}
			account(j, t, s->t_submit, mstart, mend);
			if (more) {
				s->off = klc_next_offset(j);
				s->done = 0;
				s->t_submit = t;
				if (!uring_prep(j, &ring, s, idx))
					outstanding--;
			} else {
				outstanding--;
			}
		}
		io_uring_cq_advance(&ring, seen);
	}
	job_finish(j, mstart, mend);
	if (stalled) {
		/* Requests may still be in the kernel: keep the ring and buffers. */
		j->stuck = true;
		return KLC_FAILED;
	}
	io_uring_queue_exit(&ring);
	free(slots);
	return j->error[0] ? KLC_FAILED : KLC_OK;
}
