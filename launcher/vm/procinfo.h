/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What /proc says about a process: its start time (to tell a live PID from a
 * reused one), its file descriptors and their open flags, and which kernel
 * AIO engines it holds.  Every function takes the PID of the process to look
 * at; none of them fails loudly: an unreadable entry is "unknown". */
#ifndef KL_LAUNCHER_PROCINFO_H
#define KL_LAUNCHER_PROCINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "policy/types.h"

enum kl_proc_state {
	KL_PROC_GONE = 0,     /* no such process (or a zombie) */
	KL_PROC_ALIVE,        /* running with the expected start time */
	KL_PROC_REUSED,       /* the PID is alive but belongs to another process */
};

/* Field 22 of /proc/PID/stat (clock ticks since boot).  0 on success, -1
 * with errno. */
int kl_proc_start_ticks(pid_t pid, unsigned long long *out);
/* The state letter of /proc/PID/stat ('R', 'S', 'T', 'Z'...); 0 if unknown. */
char kl_proc_state_char(pid_t pid);
/* Is PID the process that started at start_ticks? (start_ticks 0: any.) */
enum kl_proc_state kl_proc_check(pid_t pid, unsigned long long start_ticks);
const char *kl_proc_state_name(enum kl_proc_state s);

/* The "flags:" value (octal) of /proc/PID/fdinfo/FD.  0 or -1 with errno. */
int kl_proc_fd_flags(pid_t pid, int fd, unsigned long *flags);
#define KL_O_DIRECT_FLAG 040000UL   /* O_DIRECT on x86 and most architectures */

/* The descriptors of PID whose link is target (compared after realpath() of
 * target).  Fills up to max fds; returns how many matched in total, -1 with
 * errno if /proc/PID/fd cannot be read. */
int kl_proc_fds_for_path(pid_t pid, const char *target, int *fds, size_t max);

/* Does PID hold an io_uring instance (an fd "anon_inode:[io_uring]") / a
 * libaio context (a "/[aio]" mapping)?  UNKNOWN when /proc is not readable. */
enum kl_tri kl_proc_has_io_uring(pid_t pid);
enum kl_tri kl_proc_has_libaio(pid_t pid);

/* VmRSS of PID in KiB, -1 if unknown. */
long kl_proc_vmrss_kib(pid_t pid);

/* The PID a pidfd refers to (the "Pid:" line of /proc/self/fdinfo/FD), -1 if
 * fd is not a pidfd. */
pid_t kl_proc_pidfd_pid(int fd);
/* pidfd_open(2); -1 with errno (ENOSYS before Linux 5.3). */
int kl_pidfd_open(pid_t pid);

/* Drop this process's page-table entries for executable file mappings
 * (our text and the libraries'): start-up faulted in far more code (and
 * fault-around maps neighbours) than a process sleeping in poll() needs.
 * The pages stay in the page cache and fault back in when used; only
 * text (r-xp) is touched, never relocated or written mappings.  Lowers
 * VmRSS of the long-lived agent; best effort. */
void kl_release_text_pages(void);

#endif
