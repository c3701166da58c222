/* SPDX-License-Identifier: GPL-2.0-or-later */
/* qmp-ready: how long a QEMU (or kvm-launch in front of it) takes from process start until its QMP monitor
 * answers query-status.  A helper of tests/bench/bench.sh, built ad hoc by it:
 *
 *   cc -O2 -o qmp-ready tests/bench/qmp-ready.c
 *   qmp-ready [-t SECONDS] [-l PATH] -- PROGRAM ARGS...
 *
 * PROGRAM must be started with `-qmp stdio` among its arguments.  With -l PATH it talks to QEMU as libvirt does
 * instead: it binds and listens on the unix socket PATH itself, hands the listener to PROGRAM as fd 3 (so the
 * arguments carry `-chardev socket,id=...,fd=3,server=on,wait=off -mon chardev=...,mode=control`), connects to it
 * right after the fork and speaks QMP on that connection; PROGRAM's stdin and stdout are /dev/null.  qmp-ready forks it with its stdin and stdout on
 * pipes, writes qmp_capabilities and query-status at once (QEMU reads them after its greeting), and stops the clock
 * when a line holding the query-status reply ("status" inside a "return") arrives.  Then it sends quit and waits for
 * the process to exit.  The clock starts just before fork(), so it covers exec, kvm-launch's probes and policy (when
 * PROGRAM is kvm-launch), QEMU's own start-up and the first QMP round trip.  PROGRAM's stderr is inherited.
 *
 * Prints the milliseconds, e.g. `123.456`, on stdout; exit 0.  Exit 1 when PROGRAM exits or says nothing useful
 * within the timeout (default 60 s), 2 on usage errors. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int write_all(int fd, const char *s)
{
	size_t len = strlen(s);
	while (len > 0) {
		ssize_t n = write(fd, s, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	double timeout_s = 60;
	const char *listen_path = NULL;
	int i = 1;
	for (;;) {
		if (i + 1 < argc && !strcmp(argv[i], "-t")) {
			timeout_s = atof(argv[i + 1]);
			i += 2;
		} else if (i + 1 < argc && !strcmp(argv[i], "-l")) {
			listen_path = argv[i + 1];
			i += 2;
		} else {
			break;
		}
	}
	if (i >= argc || strcmp(argv[i], "--") || i + 1 >= argc) {
		fprintf(stderr, "usage: qmp-ready [-t SECONDS] [-l PATH] -- PROGRAM ARGS...\n");
		return 2;
	}
	char **cmd = argv + i + 1;

	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
		perror("qmp-ready: pipe");
		return 1;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int lfd = -1;
	if (listen_path) {
		if (strlen(listen_path) >= sizeof sa.sun_path) {
			fprintf(stderr, "qmp-ready: %s: path too long\n", listen_path);
			return 2;
		}
		strcpy(sa.sun_path, listen_path);
		unlink(listen_path);
		lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(lfd, 4) < 0) {
			perror("qmp-ready: listen");
			return 1;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	double t0 = now_ms();
	pid_t pid = fork();
	if (pid < 0) {
		perror("qmp-ready: fork");
		return 1;
	}
	if (pid == 0) {
		if (lfd >= 0) {
			int null = open("/dev/null", O_RDWR);
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			dup2(lfd, 3); /* dup2 clears close-on-exec */
		} else {
			dup2(in[0], STDIN_FILENO);
			dup2(out[1], STDOUT_FILENO);
		}
		signal(SIGPIPE, SIG_DFL);
		execvp(cmd[0], cmd);
		fprintf(stderr, "qmp-ready: exec %s: %s\n", cmd[0], strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	if (lfd >= 0) {
		/* As libvirt: connect at once (the listener queues it), talk on the connection. */
		int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof sa) < 0) {
			perror("qmp-ready: connect");
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			return 1;
		}
		close(lfd);
		unlink(listen_path);
		close(in[1]);
		close(out[0]);
		in[1] = c;
		out[0] = dup(c);
	}
	write_all(in[1], "{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"query-status\"}\n");

	char buf[65536];
	size_t have = 0;
	double t1 = -1, deadline = t0 + timeout_s * 1e3;
	int eof = 0;
	while (t1 < 0 && !eof) {
		double left = deadline - now_ms();
		if (left <= 0)
			break;
		struct pollfd p = { .fd = out[0], .events = POLLIN };
		int r = poll(&p, 1, (int)left + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		ssize_t n = read(out[0], buf + have, sizeof buf - 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			eof = 1;
			break;
		}
		double tr = now_ms();
		have += (size_t)n;
		buf[have] = '\0';
		/* Look at complete lines only; keep a partial last line for the next read. */
		char *line = buf, *nl;
		while ((nl = strchr(line, '\n')) != NULL) {
			*nl = '\0';
			if (strstr(line, "\"return\"") && strstr(line, "\"status\"")) {
				t1 = tr;
				break;
			}
			line = nl + 1;
		}
		if (t1 >= 0)
			break;
		have = strlen(line);
		memmove(buf, line, have);
		if (have >= sizeof buf - 1)
			have = 0; /* an absurd line: drop it */
	}

	write_all(in[1], "{\"execute\":\"quit\"}\n");
	if (lfd >= 0)
		shutdown(in[1], SHUT_WR);
	close(in[1]);
	/* Drain stdout so QEMU never blocks on a full pipe while quitting. */
	for (;;) {
		struct pollfd p = { .fd = out[0], .events = POLLIN };
		if (poll(&p, 1, 10000) <= 0)
			break;
		if (read(out[0], buf, sizeof buf) <= 0)
			break;
	}
	close(out[0]);
	int status = 0;
	if (waitpid(pid, &status, WNOHANG) == 0) {
		/* quit was sent; give it a moment, then insist */
		for (int k = 0; k < 100 && waitpid(pid, &status, WNOHANG) == 0; k++)
			usleep(50000);
		if (kill(pid, 0) == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
		}
	}
	if (t1 < 0) {
		fprintf(stderr, "qmp-ready: no query-status reply from %s\n", cmd[0]);
		return 1;
	}
	printf("%.3f\n", t1 - t0);
	return 0;
}
