/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Calibration: measure the storage behind a path with the three engines QEMU
 * can use, rank them, store the ranking per storage, and hand it to the
 * policy at launch time (kvm-launch --calibrate PATH [--seconds N] [--write]
 * [--json]).
 *
 * The engines, as QEMU runs them:
 *   threads   a pool of worker threads doing pread/pwrite, one request per
 *             worker, handed over through a queue (QEMU's aio=threads)
 *   native    Linux AIO: io_submit/io_getevents through libaio (aio=native)
 *   io_uring  one ring through liburing, readv/writev (aio=io_uring)
 * each with and without O_DIRECT, at queue depth 1 and 32, doing 4 KiB random
 * reads, 4 KiB random writes (when writing is allowed) and 1 MiB sequential
 * reads.
 *
 * What is measured:
 *   a block device      the device itself (the whole of it), read-only unless
 *                       allow_write: then it is opened O_EXCL (refused while
 *                       mounted or held) and random writes DESTROY its data
 *   a directory         a temporary file created in it (O_TMPFILE, else
 *                       mkstemp + unlink at once, so it never outlives the
 *                       process, whatever signal ends it), preallocated and
 *                       written once so reads hit real blocks; random writes
 *                       go to that file and are always measured
 *   a regular file      the same, in the file's directory; the file itself is
 *                       never opened for writing
 *
 * The ranking (best first) is per use: O_DIRECT (cache=none, directsync) and
 * buffered (writeback, writethrough, unsafe).  An engine's score is the
 * geometric mean of its randread QD1 and QD32 IOPS, and of its randwrite QD1
 * and QD32 IOPS when writes were measured; an engine with any of these runs
 * missing or failed does not rank.  native never ranks for buffered use:
 * QEMU refuses aio=native without O_DIRECT (and libaio without O_DIRECT
 * completes inside io_submit: it is measured and marked synchronous). */
#ifndef KL_POLICY_CALIBRATE_H
#define KL_POLICY_CALIBRATE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include <json-c/json.h>

#include "common/error.h"
#include "common/strbuf.h"
#include "policy/types.h"

#define KL_CALIBRATE_SECONDS_DEFAULT 15
/* An engine must beat one listed before it by more than this to rank ahead. */
#define KL_CAL_TIE_MARGIN 0.10
#define KL_CALIBRATE_FILE_SIZE_DEFAULT (256ULL << 20)

enum kl_cal_pattern {
	KL_CAL_RANDREAD = 0,   /* 4 KiB random reads */
	KL_CAL_RANDWRITE,      /* 4 KiB random writes */
	KL_CAL_SEQREAD,        /* 1 MiB sequential reads */
};

/* The engines, in the order they are measured and listed. */
#define KL_CAL_NENGINES 3
extern const enum kl_aio kl_cal_engines[KL_CAL_NENGINES];  /* io_uring, native, threads */

/* One measured run. */
struct kl_cal_run {
	enum kl_aio engine;         /* KL_AIO_THREADS, KL_AIO_NATIVE or KL_AIO_IO_URING */
	bool direct;                /* O_DIRECT */
	int qd;                     /* queue depth: requests in flight */
	enum kl_cal_pattern pattern;
	unsigned block_size;        /* bytes per request */
	bool ok;                    /* measured; else error says why */
	char error[256];
	bool synchronous;           /* native without O_DIRECT: io_submit does the I/O */
	bool page_cache;            /* buffered: may be served by the host page cache */
	uint64_t ios;               /* requests completed in the measured window */
	double seconds;             /* the measured window (after the warm-up) */
	double iops;
	double mbps;                /* 10^6 bytes per second */
	double lat_us;              /* mean completion latency (submission to completion) */
};

/* Whether an engine could be set up at all on this host. */
struct kl_cal_engine_status {
	enum kl_aio engine;
	bool available;
	char reason[256];           /* why not ("io_uring_setup: Operation not permitted (kernel.io_uring_disabled = 2)") */
};

struct kl_cal_ranking {
	enum kl_aio order[4];       /* best first, KL_AIO_UNSET-terminated */
	double score[3];            /* geometric-mean IOPS of order[i] */
	char excluded[512];         /* engines left out and why, "" if none */
};

struct kl_calibration {
	char *path;                 /* as given */
	char storage_id[64];        /* "dev:MAJ:MIN": the block device's rdev, or the filesystem's st_dev */
	char label[512];            /* "loop0 (block device, 512 MiB)", "ext4 on /var (dev 254:1)" */
	enum kl_backend backend;    /* KL_BACKEND_BLOCK or KL_BACKEND_FILE */
	char fs[32];                /* filesystem name, "" for a block device */
	unsigned long fs_magic;     /* statfs f_type, 0 for a block device */
	char mount[256];            /* mount point, "" unknown or a block device */
	char time[32];              /* start, UTC, "2026-11-26T09:00Z" */
	int64_t timestamp;          /* the same, seconds since the epoch */
	int seconds;                /* the budget the runs shared */
	uint64_t size;              /* bytes exercised: the test file or the device */
	bool temp_file;             /* a temporary file was measured */
	bool wrote;                 /* random writes were measured */
	bool odirect;               /* O_DIRECT works there */
	char odirect_error[256];    /* why not */
	struct kl_cal_engine_status engines[KL_CAL_NENGINES];
	struct kl_cal_run *runs;
	size_t nruns;
	struct kl_cal_ranking rank_direct;    /* for cache=none/directsync */
	struct kl_cal_ranking rank_buffered;  /* for cache=writeback/writethrough/unsafe */
	struct strvec notes;        /* remarks for the reader (page cache, synchronous libaio...) */
};

struct kl_calibrate_options {
	int seconds;                /* total time of the runs, split evenly; <= 0: 15 */
	bool allow_write;           /* block devices: also random writes (destroys data) */
	/* Called before each run and once at the end (done == total); may be NULL. */
	void (*progress)(void *opaque, int done, int total, const char *what);
	void *opaque;
	uint64_t file_size;         /* temporary file size; 0: 256 MiB */
};

/* Measure the storage behind path.  Returns 0 with *out (free with
 * kl_calibration_free), -1 with err when the storage cannot be measured at
 * all (path missing, not a block device/file/directory, no space for the
 * test file, --write on a device in use...).  An engine that cannot be set
 * up (io_uring disabled, io_setup failing with EAGAIN when fs.aio-nr is
 * exhausted) is reported unavailable with the reason, and a run that fails
 * has its error: neither fails the calibration. */
int kl_calibrate(const char *path, const struct kl_calibrate_options *o, struct kl_calibration **out,
		 struct kl_error *err);
void kl_calibration_free(struct kl_calibration *c);

/* Compute rank_direct and rank_buffered from the runs (kl_calibrate does it;
 * exposed for tests and for results built by hand). */
void kl_calibration_rank(struct kl_calibration *c);
/* Append a run (copied). */
void kl_calibration_add_run(struct kl_calibration *c, const struct kl_cal_run *r);

/* The stored file of a storage in a uid's cache directory DIR (see
 * common/cachedir.h: root's is CACHE_DIR itself): DIR/calibration/dev-MAJ-MIN.json (the
 * storage id with ':' replaced by '-').  NULL if the id cannot name a file
 * (empty, too long, or characters other than [A-Za-z0-9:._-], or a leading
 * '.'). */
char *kl_calibration_path(const char *cache_dir, const char *storage_id);

/* The calibration directory of the caller's own cache under cache_dir
 * (common/cachedir.h), opened without following a symlink and refused when
 * another uid owns it or may write it; with create, made when absent.  *dir
 * gets its path.  An O_CLOEXEC fd, or -1 (err->errnum ENOENT: none yet). */
int kl_calibration_dir_open(const char *cache_dir, bool create, char **dir, struct kl_error *err);

/* Write c as JSON into the caller's own cache under cache_dir
 * (common/cachedir.h), atomically, creating the directories (root: 0755, file
 * 0644; others: 0700, file 0600).  No component is followed when it is a
 * symlink, and a directory another uid owns or may write is refused, so the
 * file lands nowhere else.  *stored (may be NULL) gets the path written. */
int kl_calibration_store(const char *cache_dir, const struct kl_calibration *c, char **stored,
			 struct kl_error *err);

/* For the launcher (struct kl_prepare_config.lookup_calibration): when
 * cache_dir holds a calibration of facts->storage_id, fill facts->aio_ranking
 * and facts->calibration ("dev-253-0 2026-11-26T09:00Z").  The ranking given
 * is the O_DIRECT one, because the default policies run disks with
 * cache=none; when O_DIRECT did not work on that storage (no O_DIRECT
 * ranking), it is the buffered one, where native never appears.  A stored
 * calibration is ignored when its kind (block device vs filesystem) or its
 * filesystem magic disagrees with facts (a device number reused by other
 * storage).  One small file read, from the caller's own cache only: a file
 * another uid owns, a symlink, a FIFO, more than 1 MiB, anything missing,
 * unreadable or corrupt leaves facts untouched (logged at debug level).
 * Never fails. */
void kl_calibration_lookup(const char *cache_dir, struct kl_disk_facts *facts);

/* A table for a person: one line per run, the rankings and the notes. */
void kl_calibration_print(const struct kl_calibration *c, FILE *f);
/* The whole result as JSON (what kl_calibration_store writes). */
json_object *kl_calibration_json(const struct kl_calibration *c);

const char *kl_cal_pattern_name(enum kl_cal_pattern p);  /* "randread", "randwrite", "seqread" */

#endif
