/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The native engine: Linux AIO through libaio, as QEMU's aio=native drives
 * it (see calibrate-engines.c). */
#include "policy/calibrate/calibrate-int.h"

#include <errno.h>
#include <libaio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/xalloc.h"

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
	klc_io_error(j, -r, s->off, j->bs);
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
		klc_io_error(j, (int)-res, s->off, j->bs);
		return;
	}
	s->done += (size_t)res;
	if (s->done < j->bs) {
		/* short transfer: continue it */
		if (!j->error[0])
			aio_queue(j, ar, s);
		return;
	}
	klc_account(j, t, s->t_submit, ar->mstart, ar->mend);
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

	klc_job_start(j, &ar.mstart, &ar.mend);
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
		int w = klc_wait_readable(ar.efd);
		if (w <= 0) {
			klc_stall_error(j, w);
			stalled = true;
			break;
		}
		klc_eventfd_clear(ar.efd);
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
	klc_job_finish(j, ar.mstart, ar.mend);
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

