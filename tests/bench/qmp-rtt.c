/* SPDX-License-Identifier: GPL-2.0-or-later */
/* qmp-rtt: what the monitor relay costs, measured against QEMU's own socket.  A helper of
 * tests/bench/relay-cost.sh, built ad hoc by it:
 *
 *   cc -O2 -o qmp-rtt tests/bench/qmp-rtt.c
 *   qmp-rtt rtt N RELAY_SOCKET DIRECT_SOCKET [COMMAND]
 *       N round trips of COMMAND (default query-status) on each socket, interleaved call by call (the first
 *       of each pair alternates), so that load on the host falls on both alike.  Prints one line per call:
 *       `relay US` or `direct US` (microseconds from the write of the command to the end of its reply line).
 *   qmp-rtt events N RELAY_SOCKET DIRECT_SOCKET
 *       N cont/stop commands (cont first: start QEMU with -S) sent on the direct socket; for each STOP/RESUME event, on each socket, prints
 *       `relay US` / `direct US`: arrival (wall clock) minus QEMU's timestamp of the event.  QEMU writes an
 *       event to its monitors one after the other, so the two also differ by that order.
 *
 *   qmp-rtt hold SOCKET...
 *       A management client that stays connected and says nothing, as libvirt does: one QMP session on each
 *       SOCKET (greeting, qmp_capabilities), prints `held N`, then sleeps until killed, reading (and
 *       dropping) whatever comes (events).  For tests/bench/idle.sh.
 *
 * Each socket gets its own QMP session (greeting read, qmp_capabilities).  Exit 1 on any I/O error or when a
 * reply does not come within 10 s, 2 on usage errors. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct conn {
	int fd;
	char buf[1 << 20];
	size_t len;
	const char *label;
};

static double mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static double wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void die(const char *what)
{
	fprintf(stderr, "qmp-rtt: %s: %s\n", what, errno ? strerror(errno) : "failed");
	exit(1);
}

/* Next line (without its end) into line (at most cap bytes kept); waits up to 10 s. */
static size_t next_line(struct conn *c, char *line, size_t cap)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (nl) {
			size_t n = (size_t)(nl - c->buf) + 1;
			size_t k = n - 1 < cap - 1 ? n - 1 : cap - 1;
			memcpy(line, c->buf, k);
			line[k] = 0;
			memmove(c->buf, c->buf + n, c->len - n);
			c->len -= n;
			return n;
		}
		if (c->len == sizeof c->buf)
			c->len = 0; /* a line longer than the buffer: only its end counts */
		struct pollfd p = { c->fd, POLLIN, 0 };
		if (poll(&p, 1, 10000) <= 0)
			die("no reply within 10 s");
		ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
		if (r <= 0)
			die("read");
		c->len += (size_t)r;
	}
}

static void send_all(struct conn *c, const char *s)
{
	size_t n = strlen(s);
	while (n) {
		ssize_t w = write(c->fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write");
		s += w;
		n -= (size_t)w;
	}
}

/* Send a command and read lines until its reply ("return" or "error"); events are skipped. */
static void call(struct conn *c, const char *cmd)
{
	char line[256];
	send_all(c, cmd);
	for (;;) {
		next_line(c, line, sizeof line);
		if (strstr(line, "\"return\"") || strstr(line, "\"error\""))
			return;
	}
}

static void open_conn(struct conn *c, const char *path, const char *label)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char line[256];
	if (strlen(path) >= sizeof sa.sun_path)
		die("socket path too long");
	strcpy(sa.sun_path, path);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die(path);
	c->len = 0;
	c->label = label;
	next_line(c, line, sizeof line); /* greeting */
	call(c, "{\"execute\":\"qmp_capabilities\"}\r\n");
}

static void rtt(struct conn *c[2], long n, const char *cmd)
{
	for (long i = 0; i < n; i++)
		for (int k = 0; k < 2; k++) {
			struct conn *x = c[(i + k) % 2];
			double t0 = mono_us();
			call(x, cmd);
			printf("%s %.1f\n", x->label, mono_us() - t0);
		}
}

/* The event on c: arrival minus its timestamp; 0 when the line is not an
 * event (2 when it is a command's reply). */
static int event_delay(struct conn *c, double *us)
{
	char line[512];
	next_line(c, line, sizeof line);
	double now = wall_us();
	const char *ts = strstr(line, "\"timestamp\"");
	if (strstr(line, "\"return\"") || strstr(line, "\"error\""))
		return 2;
	if (!strstr(line, "\"event\"") || !ts)
		return 0;
	const char *s = strstr(ts, "\"seconds\"");
	const char *u = strstr(ts, "\"microseconds\"");
	if (!s || !u)
		return 0;
	double sec = strtod(strchr(s, ':') + 1, NULL), usec = strtod(strchr(u, ':') + 1, NULL);
	*us = now - (sec * 1e6 + usec);
	return 1;
}

/* Lines from c until an event; prints its delay.  1 if a reply went by. */
static int await_event(struct conn *c)
{
	double us;
	int r, replied = 0;
	while ((r = event_delay(c, &us)) != 1)
		replied |= r == 2;
	printf("%s %.1f\n", c->label, us);
	return replied;
}

static void events(struct conn *c[2], long n)
{
	char cmd[128], line[256];
	for (long i = 0; i < n; i++) {
		snprintf(cmd, sizeof cmd, "{\"execute\":\"%s\"}\r\n", i % 2 ? "stop" : "cont");
		send_all(c[1], cmd);
		/* Read the two connections in turn, the first alternating: the
		 * one read second is seen a little later. */
		int replied = 0;
		for (int k = 0; k < 2; k++)
			if (await_event(c[(i + k) % 2]) && (i + k) % 2 == 1)
				replied = 1;
		while (!replied) { /* the command's own reply on the direct connection */
			next_line(c[1], line, sizeof line);
			if (strstr(line, "\"return\"") || strstr(line, "\"error\""))
				break;
		}
	}
}

static int hold(int n, char **paths)
{
	struct conn *c = calloc((size_t)n, sizeof *c);
	struct pollfd *p = calloc((size_t)n, sizeof *p);
	if (!c || !p)
		die("calloc");
	for (int i = 0; i < n; i++) {
		open_conn(&c[i], paths[i], "hold");
		p[i] = (struct pollfd){ c[i].fd, POLLIN, 0 };
	}
	printf("held %d\n", n);
	fflush(stdout);
	for (int open = n; open > 0;) {
		if (poll(p, (nfds_t)n, -1) < 0 && errno != EINTR)
			die("poll");
		for (int i = 0; i < n; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (read(p[i].fd, c[i].buf, sizeof c[i].buf) <= 0) {
				p[i].fd = -1; /* closed: QEMU went away */
				open--;
			}
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "hold") == 0)
		return hold(argc - 2, argv + 2);
	if (argc < 5 || (strcmp(argv[1], "rtt") != 0 && strcmp(argv[1], "events") != 0)) {
		fprintf(stderr, "usage: qmp-rtt rtt|events N RELAY_SOCKET DIRECT_SOCKET [COMMAND] | hold SOCKET...\n");
		return 2;
	}
	long n = atol(argv[2]);
	static struct conn relay, direct;
	struct conn *c[2] = { &relay, &direct };
	open_conn(&relay, argv[3], "relay");
	open_conn(&direct, argv[4], "direct");
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(argv[1], "rtt") == 0) {
		char cmd[512];
		snprintf(cmd, sizeof cmd, "{\"execute\":\"%s\"}\r\n", argc > 5 ? argv[5] : "query-status");
		rtt(c, n, cmd);
	} else {
		events(c, n);
	}
	return 0;
}
