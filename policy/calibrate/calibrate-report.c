/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A calibration as JSON (stored, and --calibrate --json) and as a table. */
#include "policy/calibrate/calibrate-int.h"

#include <stdio.h>
#include <string.h>

#include "common/json.h"

/* Scores closer than this are reported as about even (the ranking keeps
 * the measured order). */
#define TIE_FRACTION 0.05

static const char *engine_label(enum kl_aio e)
{
	switch (e) {
	case KL_AIO_THREADS: return "threads (pread/pwrite thread pool)";
	case KL_AIO_NATIVE: return "native (libaio)";
	case KL_AIO_IO_URING: return "io_uring (liburing)";
	default: return "?";
	}
}

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
	klc_human_size(c->size, hs, sizeof hs);
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

