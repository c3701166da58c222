/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/vm/detach.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/* Close every fd >= from. */
static void close_all_from(int from)
{
	if (syscall(SYS_close_range, (unsigned)from, ~0U, 0) == 0)
		return;
	/* Before Linux 5.9: walk /proc/self/fd (opendir's own fd is skipped). */
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		int dfd = dirfd(d);
		struct dirent *e;
		int fds[1024];
		size_t n = 0;
		while ((e = readdir(d)) && n < sizeof fds / sizeof *fds) {
			int fd = atoi(e->d_name);
			if (e->d_name[0] != '.' && fd >= from && fd != dfd)
				fds[n++] = fd;
		}
		closedir(d);
		for (size_t i = 0; i < n; i++)
			close(fds[i]);
		return;
	}
	long max = sysconf(_SC_OPEN_MAX);
	for (long fd = from; fd < (max > 0 ? max : 65536); fd++)
		close((int)fd);
}

static void reset_signals(void)
{
	sigset_t none;
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

#define MAX_PLACED 8

/* In the grandchild: becomes the helper.  Never returns. */
static _Noreturn void helper(const int *fds, size_t nfds, char *const argv[], int (*fallback)(void *), void *arg)
{
	/* First out of the way of 3.., then into place (dup2 clears close-on-exec). */
	int parked[MAX_PLACED];
	for (size_t i = 0; i < nfds; i++) {
		parked[i] = fds[i] >= 0 ? fcntl(fds[i], F_DUPFD_CLOEXEC, 3 + MAX_PLACED) : -1;
		if (fds[i] >= 0 && parked[i] < 0)
			_exit(1);
	}
	for (size_t i = 0; i < nfds; i++) {
		if (parked[i] >= 0 && dup2(parked[i], 3 + (int)i) < 0)
			_exit(1);
		if (parked[i] < 0)
			close(3 + (int)i);
	}
	close_all_from(3 + (int)nfds);
	int null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}
	if (chdir("/") < 0) {
		/* harmless: helpers use absolute paths only */
	}
	extern char **environ;
	execve("/proc/self/exe", argv, environ);
	_exit(fallback ? fallback(arg) : 127);
}

int kl_detach_spawn(const int *fds, size_t nfds, char *const argv[], int (*fallback)(void *arg), void *arg,
		    const char *what, struct kl_error *err)
{
	if (nfds > MAX_PLACED)
		return kl_error_fail(err, "%s: too many fds to pass", what);
	pid_t child = fork();
	if (child < 0)
		return kl_error_errno(err, errno, "cannot fork the %s", what);
	if (child == 0) {
		/* The launcher's crash guard must not run QEMU in here. */
		reset_signals();
		setsid();
		pid_t g = fork();
		if (g < 0)
			_exit(1);
		if (g == 0)
			helper(fds, nfds, argv, fallback, arg);
		_exit(0);
	}
	int status;
	while (waitpid(child, &status, 0) < 0) {
		if (errno == EINTR)
			continue;
		if (errno == ECHILD) /* SIGCHLD ignored by our parent: reaped already */
			return 0;
		return kl_error_errno(err, errno, "waiting for the %s's first fork", what);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return kl_error_fail(err, "the %s could not be started (second fork failed)", what);
	return 0;
}

int kl_detach_oom_adjust(int delta)
{
	int fd = open("/proc/self/oom_score_adj", O_RDWR | O_CLOEXEC);
	char buf[32] = "";
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	int v = n > 0 ? atoi(buf) : 0;
	int want = v + delta < -1000 ? -1000 : v + delta > 1000 ? 1000 : v + delta;
	int len = snprintf(buf, sizeof buf, "%d\n", want);
	int r = 0;
	if (want != v && (lseek(fd, 0, SEEK_SET) < 0 || write(fd, buf, (size_t)len) != len))
		r = -1;
	int e = errno;
	close(fd);
	errno = e;
	return r;
}

void kl_detach_oom_rank_qemu(void)
{
	if (kl_detach_oom_adjust(1) < 0)
		kl_debug("oom_score_adj +1: %s", strerror(errno));
}
