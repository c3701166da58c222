/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Inside the calibration: one run of one engine (calibrate-engines.c). */
#ifndef KL_POLICY_CALIBRATE_INT_H
#define KL_POLICY_CALIBRATE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/calibrate/calibrate.h"

/* The plan's sizes (calibrate.c), also named by the report. */
#define BUF_ALIGN 4096
#define SMALL_BS 4096u
#define LARGE_BS (1u << 20)
#define MAX_QD 32
#define WARMUP_MAX 0.2

/* The queue depths each engine runs at. */
#define KLC_NQDS 2
extern const int klc_qds[KLC_NQDS];

/* "4 KiB", "1 MiB", "123 bytes" into buf. */
void klc_human_size(uint64_t n, char *buf, size_t len);

/* No completion for this long: the run fails rather than hanging. */
#define KLC_STALL_SECONDS 30.0

struct klc_job {
	/* in */
	int fd;                     /* O_DIRECT already set or cleared on it */
	bool direct;
	enum kl_cal_pattern pattern;
	size_t bs;                  /* request size; a multiple of 4096 */
	int qd;                     /* 1..64 */
	uint64_t region;            /* bytes addressed from offset 0; a multiple of bs, >= bs */
	double warmup;              /* seconds run before measuring */
	double measure;             /* seconds measured */
	unsigned char *const *bufs; /* qd buffers of bs bytes, 4096-aligned (writes: the data) */
	uint64_t seed;
	/* state */
	uint64_t rng;
	uint64_t seq_next;
	double t_last;              /* when the last counted request completed */
	/* out */
	uint64_t ios;               /* completed in the window */
	double lat_sum_us;
	double window;              /* seconds of the window */
	char error[256];            /* why it failed, or why the engine is unavailable */
	bool stuck;                 /* requests never completed: the buffers must not be freed */
};

enum klc_status {
	KLC_OK = 0,
	KLC_FAILED = -1,            /* the run failed: error says why */
	KLC_UNAVAILABLE = -2,       /* the engine cannot be set up: error says why */
};

double klc_now(void);
/* Next request offset for the job's pattern. */
uint64_t klc_next_offset(struct klc_job *j);

/* What the engines share (calibrate-engines.c). */
/* Reset the job's counters; the measured window is [*mstart, *mend). */
void klc_job_start(struct klc_job *j, double *mstart, double *mend);
void klc_job_finish(struct klc_job *j, double mstart, double mend);
/* The run's first I/O error (e = 0: end of file) into j->error. */
void klc_io_error(struct klc_job *j, int e, uint64_t off, size_t len);
/* Wait until fd is readable, as an event loop does.  1 ready, 0 nothing for
 * KLC_STALL_SECONDS, -1 error (errno). */
int klc_wait_readable(int fd);
/* Why a run stopped: klc_wait_readable() returned w. */
void klc_stall_error(struct klc_job *j, int w);
/* Clear an eventfd (non-blocking). */
void klc_eventfd_clear(int efd);
/* A completion reaped at t.  Those inside the window count; when nothing
 * completed inside it (slow storage, a short window, or native without
 * O_DIRECT doing a whole batch inside io_submit), the first batch reaped
 * after it counts instead and the window stretches to it. */
static inline void klc_account(struct klc_job *j, double t, double t_submit, double mstart, double mend)
{
	if (t >= mstart && (t < mend || j->ios == 0 || t == j->t_last)) {
		j->ios++;
		j->lat_sum_us += (t - t_submit) * 1e6;
		j->t_last = t;
	}
}

enum klc_status klc_run_threads(struct klc_job *j);
enum klc_status klc_run_libaio(struct klc_job *j);
enum klc_status klc_run_io_uring(struct klc_job *j);

/* Can the engine be set up at all (a context of depth 1)?  0, or
 * KLC_UNAVAILABLE with why. */
enum klc_status klc_check_libaio(char *why, size_t len);
enum klc_status klc_check_io_uring(char *why, size_t len);

#endif
