/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/vm/detach.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#include "common/log.h"
#include "common/xalloc.h"

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

/* Close every fd >= from.  No malloc: the caller may share the launcher's
 * memory. */
static void close_all_from(int from)
{
	if (syscall(SYS_close_range, (unsigned)from, ~0U, 0) == 0)
		return;
	/* Before Linux 5.9: read /proc/self/fd (its own fd is skipped). */
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		char buf[4096] __attribute__((aligned(8)));
		int fds[1024];
		size_t n = 0;
		long got;
		while ((got = syscall(SYS_getdents64, dfd, buf, sizeof buf)) > 0) {
			for (long off = 0; off < got;) {
				struct dirent64 *e = (struct dirent64 *)(buf + off);
				int fd = atoi(e->d_name);
				if (e->d_name[0] != '.' && fd >= from && fd != dfd && n < sizeof fds / sizeof *fds)
					fds[n++] = fd;
				off += e->d_reclen;
			}
		}
		close(dfd);
		for (size_t i = 0; i < n; i++)
			close(fds[i]);
		return;
	}
	long max = sysconf(_SC_OPEN_MAX);
	for (long fd = from; fd < (max > 0 ? max : 65536); fd++)
		close((int)fd);
}

/* Caught signals go back to default at the execve anyway; this covers
 * ignored ones, the mask, and the moment before the exec, where the
 * launcher's crash guard must not run QEMU in here.  glibc's own signals
 * (32, 33) are left alone: sigaction refuses them, and the helper may share
 * the launcher's memory and errno (see kl_detach_exec_follows). */
static void reset_signals(void)
{
	sigset_t none;
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP && (sig < __SIGRTMIN || sig >= SIGRTMIN))
			sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

#define MAX_PLACED 8
#define MAX_ARGS 16
#define CHILD_STACK (64 * 1024)

/* Everything a helper reads before its execve, in one block.  When the
 * launcher does not wait for that execve, the block is never freed: the
 * launcher's own execve of QEMU is what ends it. */
struct detach_block {
	const struct kl_detach_helper *h; /* only while the caller waits */
	const char *what;
	int fds[MAX_PLACED];
	size_t nfds;
	char *argv[MAX_ARGS + 1];
	int nice;
	int fork_errno;
	int go_read, go_write; /* background: EOF on go_read once the launcher has exec'd */
	char first_stack[CHILD_STACK] __attribute__((aligned(16)));
	char helper_stack[CHILD_STACK] __attribute__((aligned(16)));
};

static bool exec_follows;

/* First children not waited for yet (kl_detach_helper.background). */
#define MAX_PENDING 4
static struct {
	pid_t pid;
	struct detach_block *b;
} pending[MAX_PENDING];
static size_t npending;

void kl_detach_exec_follows(void)
{
	exec_follows = true;
}

/* In the helper: fds into place, stdio on /dev/null, exec.  Only syscalls
 * (it may share the launcher's memory).  Returns only if the exec failed. */
static void become_helper(struct detach_block *b)
{
	reset_signals();
	if (b->go_read >= 0) {
		/* The launcher's end is close-on-exec: EOF means QEMU runs (or
		 * the launcher is gone), and this helper's exec no longer
		 * competes with the launcher for a CPU. */
		char c;
		close(b->go_write);
		while (read(b->go_read, &c, 1) < 0 && errno == EINTR)
			;
		close(b->go_read);
	}
	if (b->nice)
		setpriority(PRIO_PROCESS, 0, getpriority(PRIO_PROCESS, 0) + b->nice);
	/* First out of the way of 3.., then into place (dup2 clears close-on-exec). */
	int parked[MAX_PLACED];
	for (size_t i = 0; i < b->nfds; i++) {
		parked[i] = b->fds[i] >= 0 ? fcntl(b->fds[i], F_DUPFD_CLOEXEC, 3 + MAX_PLACED) : -1;
		if (b->fds[i] >= 0 && parked[i] < 0)
			_exit(1);
	}
	for (size_t i = 0; i < b->nfds; i++) {
		if (parked[i] >= 0 && dup2(parked[i], 3 + (int)i) < 0)
			_exit(1);
		if (parked[i] < 0)
			close(3 + (int)i);
	}
	close_all_from(3 + (int)b->nfds);
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
	execve("/proc/self/exe", b->argv, environ);
}

/* The helper when the launcher execs next: it runs in the launcher's
 * memory, on its own stack, reading only the block. */
static int shared_helper(void *vb)
{
	become_helper(vb);
	_exit(127);
}

/* The helper forked off (the caller goes on living): it may fall back. */
static _Noreturn void forked_helper(struct detach_block *b)
{
	become_helper(b);
	_exit(b->h->fallback ? b->h->fallback(b->h->arg) : 127);
}

/* valgrind runs a clone(CLONE_VM) only as a thread or a vfork (which it
 * turns into a fork), and aborts on anything else. */
static int vfork_under_valgrind(void)
{
	return RUNNING_ON_VALGRIND ? CLONE_VFORK : 0;
}

/* The first child: it shares the caller's memory and the caller sleeps
 * until it exits (CLONE_VM | CLONE_VFORK), so it costs no copy of the
 * caller.  A new session, the helper, exit.  When the caller execs next,
 * the helper too shares that memory and nobody waits for its execve, and
 * for a background helper the caller does not wait for this child either
 * (kl_detach_reap); else the helper is a fork.  Only syscalls here, errno
 * untouched unless one fails. */
static int first_child(void *vb)
{
	struct detach_block *b = vb;
	setsid();
	pid_t g;
	if (!b->h) {
		g = clone(shared_helper, b->helper_stack + CHILD_STACK, CLONE_VM | vfork_under_valgrind() | SIGCHLD, b);
	} else {
		g = fork();
		if (g == 0)
			forked_helper(b);
	}
	b->fork_errno = g < 0 ? errno : 0;
	return 0;
}

int kl_detach_spawn(const struct kl_detach_helper *h, struct kl_error *err)
{
	size_t argc = 0;
	while (h->argv[argc])
		argc++;
	if (h->nfds > MAX_PLACED || argc > MAX_ARGS)
		return kl_error_fail(err, "%s: too many fds or arguments to pass", h->what);
	/* Without /proc the exec fails and only a forked helper can fall back. */
	bool shared = exec_follows && access("/proc/self/exe", X_OK) == 0;
	bool later = shared && h->background && npending < MAX_PENDING;
	struct detach_block *b = xcalloc(1, sizeof *b);
	b->h = shared ? NULL : h;
	b->what = h->what;
	memcpy(b->fds, h->fds, h->nfds * sizeof *h->fds);
	b->nfds = h->nfds;
	for (size_t i = 0; i < argc; i++)
		b->argv[i] = shared ? xstrdup(h->argv[i]) : h->argv[i];
	b->nice = h->nice;
	int go[2] = { -1, -1 };
	/* (Under valgrind the helper is a vfork of the first child: it must
	 * not wait, or the first child and we with it never go on.) */
	if (later && !vfork_under_valgrind() && pipe2(go, O_CLOEXEC) < 0)
		go[0] = go[1] = -1; /* then it just does not wait */
	b->go_read = go[0];
	b->go_write = go[1];
	int flags = CLONE_VM | SIGCHLD | (later ? vfork_under_valgrind() : CLONE_VFORK);
	pid_t child = clone(first_child, b->first_stack + CHILD_STACK, flags, b);
	if (go[0] >= 0)
		close(go[0]); /* go[1] stays open until the exec */
	if (child < 0) {
		int e = errno;
		if (go[1] >= 0)
			close(go[1]);
		if (!shared)
			free(b);
		return kl_error_errno(err, e, "cannot fork the %s", h->what);
	}
	if (later) {
		pending[npending].pid = child;
		pending[npending++].b = b;
		return 0;
	}
	/* It has exited already (CLONE_VFORK): reap it. */
	while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
		;
	int fork_errno = b->fork_errno;
	if (!shared)
		free(b);
	if (fork_errno)
		return kl_error_errno(err, fork_errno, "the %s could not be started (second fork failed)", h->what);
	return 0;
}

void kl_detach_reap(void)
{
	for (size_t i = 0; i < npending; i++) {
		while (waitpid(pending[i].pid, NULL, 0) < 0 && errno == EINTR)
			;
		if (pending[i].b->fork_errno)
			kl_warn("the %s could not be started: %s", pending[i].b->what,
				strerror(pending[i].b->fork_errno));
	}
	npending = 0;
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
