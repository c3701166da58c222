/* SPDX-License-Identifier: GPL-2.0-or-later */
/* One logger: every line starts "kvm-launch: " so it is findable in libvirt's
 * domain log.  Level set by -v/--verbose (info) and --debug. */
#ifndef KL_LOG_H
#define KL_LOG_H

enum kl_log_level {
	KL_LOG_ERROR = 0,
	KL_LOG_WARN,
	KL_LOG_INFO,
	KL_LOG_DEBUG,
};

void kl_log_set_level(enum kl_log_level level);
enum kl_log_level kl_log_get_level(void);
/* Also send each message to syslog (daemon facility), e.g. from the agent. */
void kl_log_use_syslog(int on);
/* Where plain messages go; default stderr (fd 2).  -1 silences the stream. */
void kl_log_set_fd(int fd);
void kl_log(enum kl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define kl_err(...) kl_log(KL_LOG_ERROR, __VA_ARGS__)
#define kl_warn(...) kl_log(KL_LOG_WARN, __VA_ARGS__)
#define kl_info(...) kl_log(KL_LOG_INFO, __VA_ARGS__)
#define kl_debug(...) kl_log(KL_LOG_DEBUG, __VA_ARGS__)

#endif
