/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Calibration: file naming, ranking on synthetic results, store/lookup round
 * trip, stored files that must be ignored, the JSON and the table, the
 * engines' error paths (end of file, short reads, EINTR), and one short real
 * calibration of a temporary directory. */
#include "unit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fileutil.h"
#include "common/xalloc.h"
#include "policy/calibrate/calibrate-int.h"
#include "policy/calibrate/calibrate.h"

static char tmpdir[256];

static void make_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s/kl-test-calibrate.XXXXXX", base ? base : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		exit(1);
	}
}

static void rm_rf(const char *path)
{
	char *cmd = xasprintf("rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", path);
	free(cmd);
}

static void add(struct kl_calibration *c, enum kl_aio e, bool direct, int qd, enum kl_cal_pattern p, double iops)
{
	struct kl_cal_run r = { .engine = e, .direct = direct, .qd = qd, .pattern = p, .block_size = 4096,
				.ok = iops > 0, .iops = iops, .mbps = iops * 4096 / 1e6, .lat_us = iops > 0 ? qd * 1e6 / iops : 0,
				.seconds = 1, .ios = (uint64_t)iops };
	if (!r.ok)
		snprintf(r.error, sizeof r.error, "read of 4096 bytes at offset 0: Input/output error");
	kl_calibration_add_run(c, &r);
}

/* randread QD1/QD32 (and randwrite when w1 > 0) for one engine and mode. */
static void add4(struct kl_calibration *c, enum kl_aio e, bool direct, double r1, double r32, double w1, double w32)
{
	add(c, e, direct, 1, KL_CAL_RANDREAD, r1);
	add(c, e, direct, 32, KL_CAL_RANDREAD, r32);
	add(c, e, direct, 1, KL_CAL_SEQREAD, 500);
	if (w1 > 0 || w32 > 0) {
		add(c, e, direct, 1, KL_CAL_RANDWRITE, w1);
		add(c, e, direct, 32, KL_CAL_RANDWRITE, w32);
	}
}

static struct kl_calibration *synthetic(bool wrote)
{
	struct kl_calibration *c = xcalloc(1, sizeof *c);
	c->path = xstrdup("/var/lib/libvirt/images");
	snprintf(c->storage_id, sizeof c->storage_id, "dev:253:0");
	snprintf(c->label, sizeof c->label, "ext4 on /var/lib/libvirt/images (dev 253:0)");
	c->backend = KL_BACKEND_FILE;
	snprintf(c->fs, sizeof c->fs, "ext4");
	c->fs_magic = 0xEF53;
	snprintf(c->time, sizeof c->time, "2026-11-26T09:00Z");
	c->timestamp = 1795683600;
	c->seconds = 15;
	c->size = 256 << 20;
	c->temp_file = true;
	c->wrote = wrote;
	c->odirect = true;
	for (size_t i = 0; i < KL_CAL_NENGINES; i++) {
		c->engines[i].engine = kl_cal_engines[i];
		c->engines[i].available = true;
	}
	/* O_DIRECT: threads sqrt(100*400)=200, native sqrt(300*1200)=600, io_uring sqrt(200*3200)=800 */
	add4(c, KL_AIO_THREADS, true, 100, 400, wrote ? 100 : 0, wrote ? 400 : 0);
	add4(c, KL_AIO_NATIVE, true, 300, 1200, wrote ? 300 : 0, wrote ? 1200 : 0);
	add4(c, KL_AIO_IO_URING, true, 200, 3200, wrote ? 200 : 0, wrote ? 3200 : 0);
	/* buffered: native fastest of all, yet it must never rank */
	add4(c, KL_AIO_THREADS, false, 1000, 4000, wrote ? 1000 : 0, wrote ? 4000 : 0);
	add4(c, KL_AIO_NATIVE, false, 9000, 90000, wrote ? 9000 : 0, wrote ? 90000 : 0);
	add4(c, KL_AIO_IO_URING, false, 1000, 1000, wrote ? 1000 : 0, wrote ? 1000 : 0);
	kl_calibration_rank(c);
	return c;
}

static bool near(double a, double b)
{
	return a > b * 0.999999 && a < b * 1.000001;
}

/* ---- naming ---- */

static void test_path_naming(void)
{
	char *p = kl_calibration_path("/var/cache/kvm-launch", "dev:253:0");
	CHECK_STREQ(p, "/var/cache/kvm-launch/calibration/dev-253-0.json");
	free(p);
	p = kl_calibration_path("/c", "dev:7:12");
	CHECK_STREQ(p, "/c/calibration/dev-7-12.json");
	free(p);
	CHECK(kl_calibration_path("/c", "") == NULL);
	CHECK(kl_calibration_path("/c", NULL) == NULL);
	CHECK(kl_calibration_path(NULL, "dev:1:2") == NULL);
	CHECK(kl_calibration_path("", "dev:1:2") == NULL);
	CHECK(kl_calibration_path("/c", "../../etc/passwd") == NULL);
	CHECK(kl_calibration_path("/c", "dev/1:2") == NULL);
	CHECK(kl_calibration_path("/c", ".dev:1:2") == NULL);
	CHECK(kl_calibration_path("/c", "dev:1:2 x") == NULL);
	char longid[80];
	memset(longid, 'a', sizeof longid - 1);
	longid[sizeof longid - 1] = '\0';
	CHECK(kl_calibration_path("/c", longid) == NULL);
}

/* ---- ranking ---- */

static void test_rank_reads_only(void)
{
	struct kl_calibration *c = synthetic(false);
	CHECK_INTEQ(c->rank_direct.order[0], KL_AIO_IO_URING);
	CHECK_INTEQ(c->rank_direct.order[1], KL_AIO_NATIVE);
	CHECK_INTEQ(c->rank_direct.order[2], KL_AIO_THREADS);
	CHECK_INTEQ(c->rank_direct.order[3], KL_AIO_UNSET);
	CHECK(near(c->rank_direct.score[0], 800));
	CHECK(near(c->rank_direct.score[1], 600));
	CHECK(near(c->rank_direct.score[2], 200));
	CHECK_STREQ(c->rank_direct.excluded, "");
	/* buffered: threads 2000 > io_uring 1000; native left out */
	CHECK_INTEQ(c->rank_buffered.order[0], KL_AIO_THREADS);
	CHECK_INTEQ(c->rank_buffered.order[1], KL_AIO_IO_URING);
	CHECK_INTEQ(c->rank_buffered.order[2], KL_AIO_UNSET);
	CHECK(near(c->rank_buffered.score[0], 2000));
	CHECK(strstr(c->rank_buffered.excluded, "native: QEMU refuses aio=native without O_DIRECT") != NULL);
	kl_calibration_free(c);
}

static void test_rank_with_writes(void)
{
	struct kl_calibration *c = synthetic(true);
	/* native's writes make it first: (300*1200*2700*10800)^(1/4) = 1800 vs io_uring (200*3200*200*3200)^(1/4) = 800 */
	c->runs[c->nruns - 1].iops = 1;  /* io_uring buffered randwrite qd32 */
	for (size_t i = 0; i < c->nruns; i++) {
		struct kl_cal_run *r = &c->runs[i];
		if (r->engine == KL_AIO_NATIVE && r->direct && r->pattern == KL_CAL_RANDWRITE)
			r->iops = r->qd == 1 ? 2700 : 10800;
	}
	kl_calibration_rank(c);
	CHECK_INTEQ(c->rank_direct.order[0], KL_AIO_NATIVE);
	CHECK(near(c->rank_direct.score[0], 1800));
	CHECK_INTEQ(c->rank_direct.order[1], KL_AIO_IO_URING);
	CHECK(near(c->rank_direct.score[1], 800));
	/* buffered io_uring: (1000*1000*1000*1)^(1/4) = 177.8 < threads 2000 */
	CHECK_INTEQ(c->rank_buffered.order[0], KL_AIO_THREADS);
	CHECK_INTEQ(c->rank_buffered.order[1], KL_AIO_IO_URING);
	CHECK(near(c->rank_buffered.score[1], 177.82794100389228));
	kl_calibration_free(c);
}

/* A near tie keeps the built-in order (io_uring, native, threads); a clear
 * lead (over KL_CAL_TIE_MARGIN) overtakes. */
static void test_rank_near_tie(void)
{
	struct kl_calibration *c = synthetic(false);
	for (size_t i = 0; i < c->nruns; i++) {
		struct kl_cal_run *r = &c->runs[i];
		if (r->direct && r->engine == KL_AIO_NATIVE)
			r->iops *= 800.0 / 600 * 1.05;   /* 5 % ahead of io_uring: a tie */
	}
	kl_calibration_rank(c);
	CHECK_INTEQ(c->rank_direct.order[0], KL_AIO_IO_URING);
	CHECK_INTEQ(c->rank_direct.order[1], KL_AIO_NATIVE);
	for (size_t i = 0; i < c->nruns; i++) {
		struct kl_cal_run *r = &c->runs[i];
		if (r->direct && r->engine == KL_AIO_NATIVE)
			r->iops *= 1.10;                  /* now 15.5 % ahead */
	}
	kl_calibration_rank(c);
	CHECK_INTEQ(c->rank_direct.order[0], KL_AIO_NATIVE);
	CHECK_INTEQ(c->rank_direct.order[1], KL_AIO_IO_URING);
	kl_calibration_free(c);
}

static void test_rank_missing_failed_unavailable(void)
{
	struct kl_calibration *c = synthetic(true);
	/* io_uring unavailable, a threads O_DIRECT run failed, native's randwrite qd32 missing */
	c->engines[0].available = false;
	snprintf(c->engines[0].reason, sizeof c->engines[0].reason, "io_uring_setup: Operation not permitted");
	for (size_t i = 0; i < c->nruns; i++) {
		struct kl_cal_run *r = &c->runs[i];
		if (r->engine == KL_AIO_THREADS && r->direct && r->pattern == KL_CAL_RANDREAD && r->qd == 32) {
			r->ok = false;
			snprintf(r->error, sizeof r->error, "no request completed for 30 s");
		}
		if (r->engine == KL_AIO_NATIVE && r->direct && r->pattern == KL_CAL_RANDWRITE && r->qd == 32)
			r->pattern = KL_CAL_SEQREAD;
	}
	kl_calibration_rank(c);
	CHECK_INTEQ(c->rank_direct.order[0], KL_AIO_UNSET);
	CHECK(strstr(c->rank_direct.excluded, "io_uring: unavailable (io_uring_setup: Operation not permitted)"));
	CHECK(strstr(c->rank_direct.excluded, "native: randwrite qd32 not measured"));
	CHECK(strstr(c->rank_direct.excluded, "threads: randread qd32 failed (no request completed for 30 s)"));
	CHECK_INTEQ(c->rank_buffered.order[0], KL_AIO_THREADS);
	CHECK_INTEQ(c->rank_buffered.order[1], KL_AIO_UNSET);
	kl_calibration_free(c);

	/* no O_DIRECT at all: the direct ranking says why */
	c = synthetic(false);
	c->odirect = false;
	snprintf(c->odirect_error, sizeof c->odirect_error, "the filesystem refuses O_DIRECT: Invalid argument");
	kl_calibration_rank(c);
	CHECK_INTEQ(c->rank_direct.order[0], KL_AIO_UNSET);
	CHECK(strstr(c->rank_direct.excluded, "no O_DIRECT runs: the filesystem refuses O_DIRECT"));
	CHECK_INTEQ(c->rank_buffered.order[0], KL_AIO_THREADS);
	kl_calibration_free(c);
}

static void test_rank_ties_keep_order(void)
{
	struct kl_calibration *c = xcalloc(1, sizeof *c);
	c->odirect = true;
	add4(c, KL_AIO_THREADS, true, 100, 100, 0, 0);
	add4(c, KL_AIO_NATIVE, true, 100, 100, 0, 0);
	add4(c, KL_AIO_IO_URING, true, 100, 100, 0, 0);
	kl_calibration_rank(c);
	/* engines[] left zero (as for results built by hand): all count as available */
	CHECK_INTEQ(c->rank_direct.order[0], KL_AIO_IO_URING);
	CHECK_INTEQ(c->rank_direct.order[1], KL_AIO_NATIVE);
	CHECK_INTEQ(c->rank_direct.order[2], KL_AIO_THREADS);
	CHECK(near(c->rank_direct.score[2], 100));
	kl_calibration_free(c);
}

/* ---- store and lookup ---- */

static void facts_for(struct kl_disk_facts *f, const char *id)
{
	memset(f, 0, sizeof *f);
	snprintf(f->storage_id, sizeof f->storage_id, "%s", id);
}

static void test_store_lookup_roundtrip(void)
{
	char cache[300];
	snprintf(cache, sizeof cache, "%s/cache/kvm-launch", tmpdir);
	struct kl_calibration *c = synthetic(true);
	struct kl_error err = KL_ERROR_INIT;
	CHECK_INTEQ(kl_calibration_store(cache, c, NULL, &err), 0);
	CHECK_STREQ(err.msg, "");

	char path[400];
	snprintf(path, sizeof path, "%s/calibration/dev-253-0.json", cache);
	struct stat st;
	CHECK(stat(path, &st) == 0);
	CHECK_INTEQ(st.st_mode & 07777, 0644);
	/* nothing else left in the directory (no temporary file) */
	char dir[400];
	snprintf(dir, sizeof dir, "%s/calibration", cache);
	DIR *d = opendir(dir);
	int entries = 0;
	for (struct dirent *e; d && (e = readdir(d));)
		if (e->d_name[0] != '.')
			entries++;
	if (d)
		closedir(d);
	CHECK_INTEQ(entries, 1);

	struct kl_disk_facts f;
	facts_for(&f, "dev:253:0");
	f.backend = KL_BACKEND_FILE;
	f.fs_magic = 0xEF53;
	kl_calibration_lookup(cache, &f);
	CHECK_INTEQ(f.aio_ranking[0], KL_AIO_IO_URING);
	CHECK_INTEQ(f.aio_ranking[1], KL_AIO_NATIVE);
	CHECK_INTEQ(f.aio_ranking[2], KL_AIO_THREADS);
	CHECK_INTEQ(f.aio_ranking[3], KL_AIO_UNSET);
	CHECK_STREQ(f.calibration, "dev-253-0 2026-11-26T09:00Z");

	/* unknown backend and fs: matched by the id alone */
	facts_for(&f, "dev:253:0");
	kl_calibration_lookup(cache, &f);
	CHECK_INTEQ(f.aio_ranking[0], KL_AIO_IO_URING);

	/* another storage: nothing */
	facts_for(&f, "dev:253:1");
	kl_calibration_lookup(cache, &f);
	CHECK_INTEQ(f.aio_ranking[0], KL_AIO_UNSET);
	CHECK_STREQ(f.calibration, "");

	/* a block device with the same number (a filesystem right on it): not the same measurement */
	facts_for(&f, "dev:253:0");
	f.backend = KL_BACKEND_BLOCK;
	kl_calibration_lookup(cache, &f);
	CHECK_INTEQ(f.aio_ranking[0], KL_AIO_UNSET);

	/* the number reused by another filesystem */
	facts_for(&f, "dev:253:0");
	f.backend = KL_BACKEND_FILE;
	f.fs_magic = 0x58465342; /* xfs */
	kl_calibration_lookup(cache, &f);
	CHECK_INTEQ(f.aio_ranking[0], KL_AIO_UNSET);

	/* no cache dir, no id: nothing, no crash */
	facts_for(&f, "dev:253:0");
	kl_calibration_lookup(NULL, &f);
	CHECK_INTEQ(f.aio_ranking[0], KL_AIO_UNSET);
	facts_for(&f, "");
	kl_calibration_lookup(cache, &f);
	CHECK_INTEQ(f.aio_ranking[0], KL_AIO_UNSET);

	/* storing again replaces it */
	snprintf(c->time, sizeof c->time, "2026-11-27T10:30Z");
	CHECK_INTEQ(kl_calibration_store(cache, c, NULL, &err), 0);
	facts_for(&f, "dev:253:0");
	kl_calibration_lookup(cache, &f);
	CHECK_STREQ(f.calibration, "dev-253-0 2026-11-27T10:30Z");

	/* an id that cannot name a file is refused by store */
	snprintf(c->storage_id, sizeof c->storage_id, "../x");
	CHECK_INTEQ(kl_calibration_store(cache, c, NULL, &err), -1);
	CHECK(strstr(err.msg, "cannot name a file") != NULL);
	kl_calibration_free(c);
}

static void test_lookup_buffered_when_no_odirect(void)
{
	char cache[300];
	snprintf(cache, sizeof cache, "%s/cache-nodirect", tmpdir);
	struct kl_calibration *c = synthetic(false);
	c->odirect = false;
	snprintf(c->odirect_error, sizeof c->odirect_error, "the filesystem refuses O_DIRECT: Invalid argument");
	snprintf(c->storage_id, sizeof c->storage_id, "dev:0:45");
	kl_calibration_rank(c);
	struct kl_error err = KL_ERROR_INIT;
	CHECK_INTEQ(kl_calibration_store(cache, c, NULL, &err), 0);
	struct kl_disk_facts f;
	facts_for(&f, "dev:0:45");
	kl_calibration_lookup(cache, &f);
	CHECK_INTEQ(f.aio_ranking[0], KL_AIO_THREADS);
	CHECK_INTEQ(f.aio_ranking[1], KL_AIO_IO_URING);
	CHECK_INTEQ(f.aio_ranking[2], KL_AIO_UNSET);
	CHECK_STREQ(f.calibration, "dev-0-45 2026-11-26T09:00Z");
	kl_calibration_free(c);
}

static void write_file(const char *path, const char *text)
{
	struct kl_error err = KL_ERROR_INIT;
	if (kl_write_file_atomic(path, text, 0644, &err) < 0)
		printf("# %s\n", err.msg);
}

static void test_lookup_ignores_corrupt(void)
{
	char cache[300], dir[400], path[500];
	snprintf(cache, sizeof cache, "%s/cache-corrupt", tmpdir);
	snprintf(dir, sizeof dir, "%s/calibration", cache);
	snprintf(path, sizeof path, "%s/dev-8-0.json", dir);
	struct kl_error err = KL_ERROR_INIT;
	CHECK_INTEQ(kl_mkdir_p(dir, 0755, &err), 0);

	static const char *const good_rk = "\"ranking\":{\"direct\":[{\"engine\":\"io_uring\",\"score\":5}],"
					   "\"buffered\":[]}";
	const char *bad[] = {
		"",
		"garbage",
		"{\"version\":1,\"storage_id\":\"dev:8:0\"",   /* truncated */
		"[1,2,3]",
		"{\"version\":2,\"storage_id\":\"dev:8:0\",\"kind\":\"file\",\"time\":\"t\",%s}",
		"{\"version\":1,\"storage_id\":\"dev:8:1\",\"kind\":\"file\",\"time\":\"t\",%s}",
		"{\"version\":1,\"storage_id\":8,\"kind\":\"file\",\"time\":\"t\",%s}",
		"{\"version\":1,\"storage_id\":\"dev:8:0\",\"kind\":\"tape\",\"time\":\"t\",%s}",
		"{\"version\":1,\"storage_id\":\"dev:8:0\",\"kind\":\"file\",%s}",
		"{\"version\":1,\"storage_id\":\"dev:8:0\",\"kind\":\"file\",\"time\":\"t\"}",
		"{\"version\":1,\"storage_id\":\"dev:8:0\",\"kind\":\"file\",\"time\":\"t\",\"ranking\":{\"direct\":"
		"[{\"engine\":\"posix\"}],\"buffered\":[]}}",
		"{\"version\":1,\"storage_id\":\"dev:8:0\",\"kind\":\"file\",\"time\":\"t\",\"ranking\":{\"direct\":"
		"[{\"engine\":\"threads\"},{\"engine\":\"threads\"}],\"buffered\":[]}}",
		"{\"version\":1,\"storage_id\":\"dev:8:0\",\"kind\":\"file\",\"time\":\"t\",\"ranking\":{\"direct\":"
		"[\"threads\"],\"buffered\":[]}}",
		"{\"version\":1,\"storage_id\":\"dev:8:0\",\"kind\":\"file\",\"time\":\"t\",\"ranking\":{\"direct\":"
		"[{\"engine\":\"auto\"}],\"buffered\":[]}}",
		"{\"version\":1,\"storage_id\":\"dev:8:0\",\"kind\":\"file\",\"time\":\"t\",\"ranking\":{\"direct\":"
		"[],\"buffered\":[]}}",
		"{\"version\":1,\"storage_id\":\"dev:8:0\",\"kind\":\"file\",\"time\":\"t\",%s} trailing",
		"{\"version\":1,\"storage_id\":\"dev:8:0\",\"kind\":\"file\",\"time\":\"t\",%s}{}",
		"{\"version\":1,\"storage_id\":\"dev:8:0\",\"kind\":\"file\",\"time\":"
		"\"0123456789012345678901234567890123456789\",%s}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		_cleanup_free_ char *text = NULL;
		if (strstr(bad[i], "%s")) {
			/* a non-literal format is what this test is about */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
			text = xasprintf(bad[i], good_rk);
#pragma GCC diagnostic pop
		} else {
			text = xstrdup(bad[i]);
		}
		write_file(path, text);
		struct kl_disk_facts f;
		facts_for(&f, "dev:8:0");
		f.aio_ranking[0] = KL_AIO_THREADS;  /* left as it was */
		kl_calibration_lookup(cache, &f);
		if (f.aio_ranking[0] != KL_AIO_THREADS || f.aio_ranking[1] != KL_AIO_UNSET || f.calibration[0]) {
			printf("#   stored file %zu was not ignored: %s\n", i, text);
			unit_case_failed = 1;
		}
	}

	/* the good one, to show the cases above fail for their own reason */
	_cleanup_free_ char *good = xasprintf("{\"version\":1,\"storage_id\":\"dev:8:0\",\"kind\":\"file\",\"time\":"
					      "\"t\",%s}\n", good_rk);
	write_file(path, good);
	struct kl_disk_facts f;
	facts_for(&f, "dev:8:0");
	kl_calibration_lookup(cache, &f);
	CHECK_INTEQ(f.aio_ranking[0], KL_AIO_IO_URING);
	CHECK_INTEQ(f.aio_ranking[1], KL_AIO_UNSET);
	CHECK_STREQ(f.calibration, "dev-8-0 t");

	/* native stored in a buffered ranking is dropped */
	_cleanup_free_ char *nat = xasprintf("{\"version\":1,\"storage_id\":\"dev:8:0\",\"kind\":\"block\",\"time\":"
					     "\"t\",\"ranking\":{\"direct\":[],\"buffered\":[{\"engine\":\"native\"},"
					     "{\"engine\":\"threads\"}]}}");
	write_file(path, nat);
	facts_for(&f, "dev:8:0");
	f.backend = KL_BACKEND_BLOCK;
	kl_calibration_lookup(cache, &f);
	CHECK_INTEQ(f.aio_ranking[0], KL_AIO_THREADS);
	CHECK_INTEQ(f.aio_ranking[1], KL_AIO_UNSET);

	/* too large to be ours */
	FILE *big = fopen(path, "we");
	if (big) {
		fprintf(big, "{\"version\":1,\"storage_id\":\"dev:8:0\",\"kind\":\"file\",\"time\":\"t\",%s,\"pad\":\"",
			good_rk);
		for (int i = 0; i < (2 << 20); i++)
			fputc('x', big);
		fprintf(big, "\"}");
		fclose(big);
	}
	facts_for(&f, "dev:8:0");
	kl_calibration_lookup(cache, &f);
	CHECK_INTEQ(f.aio_ranking[0], KL_AIO_UNSET);

	/* unreadable: a directory in its place */
	unlink(path);
	mkdir(path, 0755);
	facts_for(&f, "dev:8:0");
	kl_calibration_lookup(cache, &f);
	CHECK_INTEQ(f.aio_ranking[0], KL_AIO_UNSET);
}

/* ---- JSON and table ---- */

static void test_json_and_print(void)
{
	struct kl_calibration *c = synthetic(true);
	strvec_push_dup(&c->notes, "a note");
	_cleanup_json_ json_object *j = kl_calibration_json(c);
	json_object *v, *runs, *rk, *arr;
	CHECK(json_object_object_get_ex(j, "storage_id", &v) && strcmp(json_object_get_string(v), "dev:253:0") == 0);
	CHECK(json_object_object_get_ex(j, "kind", &v) && strcmp(json_object_get_string(v), "file") == 0);
	CHECK(json_object_object_get_ex(j, "runs", &runs) && json_object_array_length(runs) == c->nruns);
	json_object *r0 = json_object_array_get_idx(runs, 0);
	CHECK(json_object_object_get_ex(r0, "engine", &v) && strcmp(json_object_get_string(v), "threads") == 0);
	CHECK(json_object_object_get_ex(r0, "pattern", &v) && strcmp(json_object_get_string(v), "randread") == 0);
	CHECK(json_object_object_get_ex(r0, "iops", &v) && json_object_get_double(v) == 100);
	CHECK(json_object_object_get_ex(r0, "mbps", &v) && json_object_get_double(v) > 0.4);
	CHECK(json_object_object_get_ex(r0, "lat_us", &v));
	CHECK(json_object_object_get_ex(r0, "direct", &v) && json_object_get_boolean(v));
	CHECK(json_object_object_get_ex(r0, "qd", &v) && json_object_get_int(v) == 1);
	CHECK(json_object_object_get_ex(j, "ranking", &rk) && json_object_object_get_ex(rk, "direct", &arr) &&
	      json_object_array_length(arr) == 3);
	v = json_object_array_get_idx(arr, 0);
	CHECK(v && json_object_object_get_ex(v, "engine", &v) && strcmp(json_object_get_string(v), "io_uring") == 0);
	CHECK(json_object_object_get_ex(j, "notes", &arr) && json_object_array_length(arr) == 1);
	/* the numbers print short */
	const char *text = json_object_to_json_string(j);
	CHECK(strstr(text, "\"iops\": 100,") != NULL || strstr(text, "\"iops\":100,") != NULL);

	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	kl_calibration_print(c, f);
	fclose(f);
	CHECK(strstr(buf, "Calibration of /var/lib/libvirt/images: ext4 on /var/lib/libvirt/images (dev 253:0)"));
	CHECK(strstr(buf, "threads   direct     1 randread     4K        100       0.4    10000.0"));
	CHECK(strstr(buf, "Ranking for O_DIRECT (cache=none, directsync):\n  1. io_uring"));
	CHECK(strstr(buf, "not ranked: native: QEMU refuses aio=native without O_DIRECT"));
	CHECK(strstr(buf, "aio=auto at launch uses the O_DIRECT ranking."));
	CHECK(strstr(buf, "  - a note"));
	free(buf);
	kl_calibration_free(c);
}

/* ---- engines ---- */

static unsigned char *aligned_bufs[32];

static void alloc_bufs(void)
{
	for (int i = 0; i < 32; i++) {
		if (posix_memalign((void **)&aligned_bufs[i], 4096, 1 << 20) != 0)
			exit(1);
		memset(aligned_bufs[i], 0x5a, 1 << 20);
	}
}

static void test_offsets(void)
{
	struct klc_job j = { .bs = 4096, .region = 16 << 20, .pattern = KL_CAL_RANDREAD, .rng = 1 };
	bool ok = true;
	uint64_t seen_high = 0;
	for (int i = 0; i < 100000; i++) {
		uint64_t off = klc_next_offset(&j);
		if (off % 4096 || off + 4096 > j.region)
			ok = false;
		if (off > seen_high)
			seen_high = off;
	}
	CHECK(ok);
	CHECK(seen_high > j.region / 2);
	struct klc_job s = { .bs = 1 << 20, .region = 4 << 20, .pattern = KL_CAL_SEQREAD };
	CHECK_INTEQ(klc_next_offset(&s), 0);
	CHECK_INTEQ(klc_next_offset(&s), 1 << 20);
	CHECK_INTEQ(klc_next_offset(&s), 2 << 20);
	CHECK_INTEQ(klc_next_offset(&s), 3 << 20);
	CHECK_INTEQ(klc_next_offset(&s), 0);
}

typedef enum klc_status (*engine_fn)(struct klc_job *);
static const struct {
	const char *name;
	engine_fn run;
} engines[] = { { "threads", klc_run_threads }, { "libaio", klc_run_libaio }, { "io_uring", klc_run_io_uring } };

static int small_file(size_t size)
{
	char path[300];
	snprintf(path, sizeof path, "%s/small.XXXXXX", tmpdir);
	int fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -1;
	unlink(path);
	unsigned char *b = xcalloc(1, size);
	memset(b, 1, size);
	if (write(fd, b, size) != (ssize_t)size) {
		close(fd);
		fd = -1;
	}
	free(b);
	return fd;
}

/* Reads past the end of a file: every engine fails the run (short read,
 * then end of file), says so, and drains without hanging. */
static void test_engines_end_of_file(void)
{
	int fd = small_file(6144);  /* one and a half blocks */
	CHECK(fd >= 0);
	for (size_t e = 0; e < sizeof engines / sizeof *engines; e++) {
		for (int qd = 1; qd <= 32; qd += 31) {
			struct klc_job j = { .fd = fd, .pattern = KL_CAL_RANDREAD, .bs = 4096, .qd = qd,
					     .region = 1 << 20, .warmup = 0.01, .measure = 0.05, .bufs = aligned_bufs };
			enum klc_status s = engines[e].run(&j);
			if (s == KLC_UNAVAILABLE) {
				printf("# %s unavailable here: %s\n", engines[e].name, j.error);
				continue;
			}
			if (s != KLC_FAILED || !strstr(j.error, "unexpected end of file") || j.stuck) {
				printf("#   %s qd%d: status %d, error \"%s\"\n", engines[e].name, qd, s, j.error);
				unit_case_failed = 1;
			}
		}
	}
	close(fd);
}

static int alarms;
static void on_alarm(int sig)
{
	int e = errno;
	(void)sig;
	__atomic_add_fetch(&alarms, 1, __ATOMIC_RELAXED);
	errno = e;
}

/* A signal every 200 us, its handler installed without SA_RESTART: the
 * waits return EINTR and the engines carry on. */
static void test_engines_eintr(void)
{
	int fd = small_file(4 << 20);
	CHECK(fd >= 0);
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, &old);
	struct itimerval it = { { 0, 200 }, { 0, 200 } }, off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_REAL, &it, NULL);
	for (size_t e = 0; e < sizeof engines / sizeof *engines; e++) {
		for (int p = 0; p < 2; p++) {
			struct klc_job j = { .fd = fd, .pattern = p ? KL_CAL_RANDWRITE : KL_CAL_RANDREAD, .bs = 4096,
					     .qd = 4, .region = 4 << 20, .warmup = 0.01, .measure = 0.1,
					     .bufs = aligned_bufs };
			enum klc_status s = engines[e].run(&j);
			if (s == KLC_UNAVAILABLE)
				continue;
			if (s != KLC_OK || j.ios == 0) {
				printf("#   %s %s: status %d, ios %llu, error \"%s\"\n", engines[e].name,
				       p ? "write" : "read", s, (unsigned long long)j.ios, j.error);
				unit_case_failed = 1;
			}
		}
	}
	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
	int n = __atomic_load_n(&alarms, __ATOMIC_RELAXED);
	printf("# %d signals during the runs\n", n);
	CHECK(n > 10);
	close(fd);
}

/* ---- a real, short calibration ---- */

static int progress_calls, progress_last_done = -1, progress_total;
static bool progress_monotonic = true;
static void on_progress(void *opaque, int done, int total, const char *what)
{
	(void)what;
	(*(int *)opaque)++;
	progress_calls++;
	if (done < progress_last_done || done > total)
		progress_monotonic = false;
	progress_last_done = done;
	progress_total = total;
}

static void test_calibrate_tmpdir(void)
{
	int opaque = 0;
	struct kl_calibrate_options o = { .seconds = 1, .file_size = 4 << 20, .progress = on_progress,
					  .opaque = &opaque };
	struct kl_calibration *c = NULL;
	struct kl_error err = KL_ERROR_INIT;
	CHECK_INTEQ(kl_calibrate(tmpdir, &o, &c, &err), 0);
	if (!c) {
		printf("# %s\n", err.msg);
		unit_case_failed = 1;
		return;
	}
	struct stat st;
	stat(tmpdir, &st);
	char id[64];
	snprintf(id, sizeof id, "dev:%u:%u", major(st.st_dev), minor(st.st_dev));
	CHECK_STREQ(c->storage_id, id);
	CHECK(c->backend == KL_BACKEND_FILE);
	CHECK(c->temp_file && c->wrote);
	CHECK_INTEQ(c->size, 4 << 20);
	CHECK(c->label[0] != '\0');
	CHECK(opaque == progress_calls && progress_calls >= 2);
	CHECK(progress_monotonic);
	CHECK_INTEQ(progress_last_done, progress_total);
	CHECK_INTEQ(progress_total, (int)c->nruns);
	size_t available = 0;
	for (size_t i = 0; i < KL_CAL_NENGINES; i++)
		available += c->engines[i].available;
	/* 3 patterns x 2 depths x (1 or 2 cache modes) per available engine */
	CHECK_INTEQ(c->nruns, available * 6 * (c->odirect ? 2 : 1));
	for (size_t i = 0; i < c->nruns; i++) {
		const struct kl_cal_run *r = &c->runs[i];
		if (!r->ok || !(r->iops > 0) || !(r->lat_us > 0) || r->seconds <= 0) {
			printf("#   run %zu %s %d: %s\n", i, kl_aio_name(r->engine), r->qd, r->error);
			unit_case_failed = 1;
		}
		CHECK(r->synchronous == (r->engine == KL_AIO_NATIVE && !r->direct));
	}
	CHECK(c->rank_buffered.order[0] != KL_AIO_UNSET);
	for (size_t i = 0; i < 3; i++)
		CHECK(c->rank_buffered.order[i] != KL_AIO_NATIVE);
	/* the temporary file is gone: nothing new in the directory */
	DIR *d = opendir(tmpdir);
	for (struct dirent *e; d && (e = readdir(d));)
		CHECK(strncmp(e->d_name, ".kvm-launch-calibrate", 21) != 0);
	if (d)
		closedir(d);
	kl_calibration_free(c);
}

static void test_calibrate_errors(void)
{
	struct kl_calibration *c = (struct kl_calibration *)1;
	struct kl_error err = KL_ERROR_INIT;
	CHECK_INTEQ(kl_calibrate("/nonexistent/kvm-launch", NULL, &c, &err), -1);
	CHECK(c == NULL);
	CHECK_STREQ(err.msg, "calibrate /nonexistent/kvm-launch: No such file or directory");
	kl_error_clear(&err);
	CHECK_INTEQ(kl_calibrate("/dev/null", NULL, &c, &err), -1);
	CHECK(strstr(err.msg, "neither a block device, a directory nor a regular file") != NULL);
	/* a file too large for the space: fallocate says ENOSPC (or the size is refused) */
	kl_error_clear(&err);
	struct kl_calibrate_options o = { .seconds = 1, .file_size = 1ULL << 60 };
	CHECK_INTEQ(kl_calibrate(tmpdir, &o, &c, &err), -1);
	printf("# huge test file: %s\n", err.msg);
	CHECK(err.msg[0] != '\0');
}

int main(void)
{
	make_tmpdir();
	alloc_bufs();
	RUN(test_path_naming);
	RUN(test_rank_reads_only);
	RUN(test_rank_with_writes);
	RUN(test_rank_near_tie);
	RUN(test_rank_missing_failed_unavailable);
	RUN(test_rank_ties_keep_order);
	RUN(test_store_lookup_roundtrip);
	RUN(test_lookup_buffered_when_no_odirect);
	RUN(test_lookup_ignores_corrupt);
	RUN(test_json_and_print);
	RUN(test_offsets);
	RUN(test_engines_end_of_file);
	RUN(test_engines_eintr);
	RUN(test_calibrate_tmpdir);
	RUN(test_calibrate_errors);
	for (int i = 0; i < 32; i++)
		free(aligned_bufs[i]);
	rm_rf(tmpdir);
	return unit_done();
}
