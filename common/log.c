#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
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
	if (on && !use_syslog)
		openlog("kvm-launch", LOG_PID, LOG_DAEMON);
	use_syslog = on;
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
	/* One write per message so lines from QEMU and the agent do not interleave. */
	if (log_fd >= 0)
		dprintf(log_fd, "kvm-launch: %s%s\n",
			level == KL_LOG_WARN ? "warning: " : level == KL_LOG_ERROR ? "error: " : "", line);
	if (use_syslog)
		syslog(prio[level], "%s", line);
}
