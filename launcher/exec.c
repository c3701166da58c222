/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/exec.h"
#include "common/sanitizer.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

static char *const *guard_argv;
static bool guard_refuse;

static const int guarded_signals[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGALRM };

bool kl_exec_is_self(const char *path)
{
	struct stat a, b;
	if (stat(path, &a) < 0 || stat("/proc/self/exe", &b) < 0)
		return false;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static void say(const char *msg)
{
	ssize_t r = write(STDERR_FILENO, msg, strlen(msg));
	(void)r;
}

/* Async-signal-safe: write(), execve() and _exit() only. */
static void guard_handler(int sig)
{
	say(sig == SIGALRM ? "kvm-launch: error: timed out preparing the launch"
			   : "kvm-launch: error: internal failure (signal) preparing the launch");
	if (guard_refuse) {
		say("; refusing to start (on-error = refuse)\n");
		_exit(1);
	}
	say("; starting QEMU with the original arguments\n");
	signal(SIGABRT, SIG_DFL);
	execve(guard_argv[0], guard_argv, environ);
	say("kvm-launch: error: cannot exec QEMU\n");
	_exit(127);
}

void kl_exec_guard_arm(char *const *original_argv, bool refuse, unsigned timeout_s)
{
	struct sigaction sa;

	guard_argv = original_argv;
	guard_refuse = refuse;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = guard_handler;
	sa.sa_flags = SA_RESETHAND | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof guarded_signals / sizeof *guarded_signals; i++) {
#if KL_ASAN
		/* The sanitizers must see crashes to report them. */
		if (guarded_signals[i] != SIGALRM)
			continue;
#endif
		sigaction(guarded_signals[i], &sa, NULL);
	}
	alarm(timeout_s);
}

void kl_exec_guard_update(char *const *original_argv, bool refuse)
{
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old); /* the handler sees both or neither */
	guard_argv = original_argv;
	guard_refuse = refuse;
	sigprocmask(SIG_SETMASK, &old, NULL);
}

void kl_exec_guard_disarm(void)
{
	alarm(0);
	for (size_t i = 0; i < sizeof guarded_signals / sizeof *guarded_signals; i++)
		signal(guarded_signals[i], SIG_DFL);
}

int kl_exec_qemu(char *const *argv, struct kl_error *err)
{
	execve(argv[0], argv, environ);
	return kl_error_errno(err, errno, "exec %s", argv[0]);
}
