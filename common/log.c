/* SPDX-License-Identifier: GPL-2.0-or-later */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <syslog.h>
#include <unistd.h>

static enum kl_log_level current_level = KL_LOG_WARN;
static int use_syslog;
static int log_fd = STDERR_FILENO;

void kl_log_set_level(enum kl_log_level level) { current_level = level; }
enum kl_log_level kl_log_get_level(void) { return current_level; }
void kl_log_set_fd(int fd) { log_fd = fd; }

void kl_log_use_syslog(int on)
{
	use_syslog = on;
}

/* Would a line written to fd be lost?  Yes when the fd is closed (or was
 * silenced with -1) or is /dev/null (char device 1:3), as when a daemon
 * started kvm-launch with its output thrown away.  A terminal, a pipe
 * (libvirt's domain log goes through virtlogd's pipe), a socket (the
 * journal's stdout stream) or a regular file is read by someone: no. */
static bool stream_lost(int fd)
{
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return true;
	return S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3);
}

/* Started with fd 2 closed: put /dev/null there before anything else is
 * opened, or the first file we open would become "stderr" and receive our
 * messages.  Those then go to syslog (stream_lost), and QEMU inherits
 * /dev/null instead of a closed fd 2. */
__attribute__((constructor)) static void guard_closed_stderr(void)
{
	if (fcntl(STDERR_FILENO, F_GETFD) >= 0 || errno != EBADF)
		return;
	int fd = open("/dev/null", O_RDWR | O_NOCTTY);
	if (fd >= 0 && fd != STDERR_FILENO) {
		dup2(fd, STDERR_FILENO);
		close(fd);
	}
}

void kl_log(enum kl_log_level level, const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[4096];
	va_list ap;

	if (level > current_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	/* One message, one line: a newline or terminal escape in a VM name or a
	 * QMP reply must not forge "kvm-launch:" lines in libvirt's domain log. */
	for (char *p = line; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	/* Checked per message: the agent moves its messages to a file. */
	bool lost = stream_lost(log_fd);
	/* One write per message so lines from QEMU and the agent do not interleave. */
	if (!lost)
		dprintf(log_fd, "kvm-launch: %s%s\n",
			level == KL_LOG_WARN ? "warning: " : level == KL_LOG_ERROR ? "error: " : "", line);
	if (use_syslog || lost) {
		static bool opened;
		if (!opened) {
			openlog("kvm-launch", LOG_PID, LOG_DAEMON);
			opened = true;
		}
		syslog(prio[level], "%s", line);
	}
}
