/* SPDX-License-Identifier: GPL-2.0-or-later */
/* kvm-launch-top: the live view behind `kvm-launch --top`.  A program of
 * its own (installed in PKGLIBDIR, exec'd by kvm-launch) so that ncurses is
 * never loaded on the path that starts VMs.  The figures come from the same
 * collector as --status (kl_status_collect); the rates from two samples
 * (launcher/vm/toprows.c).
 *
 *   kvm-launch-top [--interval S] [--state-dir DIR]
 */
#include <curses.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/cleanup.h"
#include "common/json.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "launcher/vm/state.h"
#include "launcher/vm/status.h"
#include "launcher/vm/toprows.h"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

static void restore_terminal(void)
{
	if (!isendwin())
		endwin();
}

struct view {
	const char *state_dir;
	double interval;
	enum kl_top_sort sort;
	bool reverse;
	json_object *prev;
	double prev_t;
	struct kl_top_row *rows;
	size_t nrows;
	size_t nvms;
	char *note;        /* collect errors, shown at the bottom */
	json_object *host;
};

/* Text from VM names and paths, with control characters shown as '?'. */
static void put(int y, int x, int width, const char *s, bool right)
{
	char buf[256];
	int n = 0;
	if (width <= 0 || x >= COLS)
		return;
	if (width > COLS - x)
		width = COLS - x;
	if (width > (int)sizeof buf - 1)
		width = (int)sizeof buf - 1;
	for (; s[n] && n < width; n++)
		buf[n] = (unsigned char)s[n] < 0x20 || s[n] == 0x7f ? '?' : s[n];
	buf[n] = '\0';
	mvaddstr(y, right ? x + width - n : x, buf);
}

static void fig(char *buf, size_t len, bool have, double v)
{
	if (!have || v < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, v >= 100 ? "%.0f" : "%.1f", v);
}

static const struct col {
	const char *title;
	int width;
	bool right;
} cols[] = {
	{ "VM", 16, false }, { "PID", 7, true }, { "DISK", 14, false }, { "IOPS", 8, true }, { "RD/s", 8, true },
	{ "WR/s", 8, true }, { "MB/s", 8, true }, { "LAT ms", 8, true }, { "AIO", 9, false }, { "CACHE", 12, false },
	{ "RULE", 0, false },
};
#define NCOLS (sizeof cols / sizeof *cols)

static void draw_row(int y, const struct kl_top_row *r)
{
	char cells[NCOLS][64];
	snprintf(cells[0], 64, "%s", r->vm);
	snprintf(cells[1], 64, "%lld", r->pid);
	snprintf(cells[2], 64, "%s", r->disk);
	fig(cells[3], 64, r->have_rate, r->iops);
	fig(cells[4], 64, r->have_rate, r->rd_iops);
	fig(cells[5], 64, r->have_rate, r->wr_iops);
	fig(cells[6], 64, r->have_rate, r->mbps);
	fig(cells[7], 64, r->have_rate, r->lat_ms >= 0 ? r->lat_ms : -1);
	snprintf(cells[8], 64, "%s", r->aio);
	snprintf(cells[9], 64, "%s", r->cache);
	int x = 0;
	for (size_t c = 0; c < NCOLS; c++) {
		const char *text = c == NCOLS - 1 ? r->rule : cells[c];
		int w = cols[c].width ? cols[c].width : COLS - x;
		put(y, x, w, text, cols[c].right);
		x += w + 1;
	}
}

static void draw(struct view *v)
{
	char head[256], when[16];
	time_t now = time(NULL);
	struct tm tm;
	erase();
	strftime(when, sizeof when, "%H:%M:%S", localtime_r(&now, &tm));
	snprintf(head, sizeof head, "kvm-launch top - %zu VM%s, %zu disk%s - every %gs - sort %s%s - aio-nr %lld/%lld",
		 v->nvms, v->nvms == 1 ? "" : "s", v->nrows, v->nrows == 1 ? "" : "s", v->interval,
		 kl_top_sort_name(v->sort), v->reverse ? " (reversed)" : "", kl_json_int(v->host, "aio_nr", 0),
		 kl_json_int(v->host, "aio_max_nr", 0));
	put(0, 0, COLS - 9, head, false);
	put(0, COLS - 8, 8, when, true);
	attron(A_REVERSE);
	mvhline(2, 0, ' ', COLS);
	int x = 0;
	for (size_t c = 0; c < NCOLS; c++) {
		int w = cols[c].width ? cols[c].width : COLS - x;
		put(2, x, w, cols[c].title, cols[c].right);
		x += w + 1;
	}
	attroff(A_REVERSE);
	int y = 3;
	for (size_t i = 0; i < v->nrows && y < LINES - 1; i++, y++)
		draw_row(y, &v->rows[i]);
	if (v->nrows == 0)
		put(3, 0, COLS, "No VMs launched through kvm-launch are running.", false);
	put(LINES - 1, 0, COLS, v->note ? v->note : "keys: i IOPS  m MB/s  l latency  n name  r reverse  space refresh  q quit",
	    false);
	refresh();
}

static void sample(struct view *v)
{
	json_object *doc = kl_status_collect(v->state_dir, NULL, KL_STATUS_TIMEOUT_MS);
	double t = kl_monotonic_s();
	kl_top_rows_free(v->rows, v->nrows);
	kl_top_rows(v->prev, doc, t - v->prev_t, &v->rows, &v->nrows);
	kl_top_sort(v->rows, v->nrows, v->sort, v->reverse);
	json_object *vms = kl_json_get(doc, "vms", json_type_array);
	v->nvms = vms ? json_object_array_length(vms) : 0;
	v->host = kl_json_get(doc, "host", json_type_object);
	json_object *errors = kl_json_get(doc, "errors", json_type_array);
	free(v->note);
	v->note = errors ? xstrdup(json_object_get_string(json_object_array_get_idx(errors, 0))) : NULL;
	if (v->prev)
		json_object_put(v->prev);
	v->prev = doc;
	v->prev_t = t;
}

/* Returns false to quit. */
static bool key(struct view *v, int ch)
{
	switch (ch) {
	case 'q': case 'Q': return false;
	case 'i': v->sort = KL_TOP_SORT_IOPS; break;
	case 'm': v->sort = KL_TOP_SORT_MBPS; break;
	case 'l': v->sort = KL_TOP_SORT_LAT; break;
	case 'n': v->sort = KL_TOP_SORT_NAME; break;
	case 'r': v->reverse = !v->reverse; break;
	default: return true;
	}
	kl_top_sort(v->rows, v->nrows, v->sort, v->reverse);
	draw(v);
	return true;
}

static int run(struct view *v)
{
	bool go = true;
	while (go && !stop_signal) {
		sample(v);
		draw(v);
		double deadline = v->prev_t + v->interval;
		while (go && !stop_signal) {
			double left = deadline - kl_monotonic_s();
			if (left <= 0)
				break;
			timeout((int)(left * 1000) + 1);
			int ch = getch();
			if (ch == ' ')
				break;
			if (ch == KEY_RESIZE)
				draw(v);
			else if (ch != ERR)
				go = key(v, ch);
		}
	}
	return 0;
}

static void usage(FILE *f)
{
	fputs("Usage: kvm-launch-top [--interval S] [--state-dir DIR]   (run as kvm-launch --top)\n", f);
}

int main(int argc, char **argv)
{
	struct view v = { .interval = 2, .sort = KL_TOP_SORT_IOPS };
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
			char *end;
			v.interval = strtod(argv[++i], &end);
			if (*end || !(v.interval >= 0.5 && v.interval <= 3600)) {
				fprintf(stderr, "kvm-launch: --interval: expected 0.5 to 3600 seconds, got '%s'\n", argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "--state-dir") == 0 && i + 1 < argc) {
			v.state_dir = argv[++i];
		} else if (strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
		fprintf(stderr, "kvm-launch: --top needs a terminal (use --status for a one-time listing)\n");
		return 1;
	}
	SCREEN *scr = newterm(NULL, stdout, stdin);
	if (!scr) {
		fprintf(stderr, "kvm-launch: --top: cannot use the terminal (TERM=%s)\n", getenv("TERM") ? getenv("TERM") : "");
		return 1;
	}
	atexit(restore_terminal);
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: getch() returns at once and the loop ends. */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	cbreak();
	noecho();
	keypad(stdscr, TRUE);
	curs_set(0);
	kl_log_set_fd(-1); /* a warning would tear the screen */
	run(&v);
	endwin();
	delscreen(scr);
	kl_top_rows_free(v.rows, v.nrows);
	if (v.prev)
		json_object_put(v.prev);
	free(v.note);
	if (stop_signal == SIGINT || stop_signal == SIGTERM || stop_signal == SIGHUP) {
		signal(stop_signal, SIG_DFL);
		raise(stop_signal); /* exit as killed by it, terminal already restored */
	}
	return 0;
}
