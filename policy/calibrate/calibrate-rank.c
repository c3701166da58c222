/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The results of a calibration, and the ranking of the engines from them. */
#include "policy/calibrate/calibrate-int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

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
			for (size_t qi = 0; qi < KLC_NQDS && !why[0]; qi++) {
				const struct kl_cal_run *r = find_run(c, e, direct, klc_qds[qi], pats[pi]);
				if (!r)
					snprintf(why, sizeof why, "%s qd%d not measured", kl_cal_pattern_name(pats[pi]),
						 klc_qds[qi]);
				else if (!r->ok || !(r->iops > 0))
					snprintf(why, sizeof why, "%s qd%d failed (%s)", kl_cal_pattern_name(pats[pi]),
						 klc_qds[qi], r->error[0] ? r->error : "no I/O completed");
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

