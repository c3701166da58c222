/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Following -daemonize (follow.h). */
#include "launcher/follow.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "launcher/argv/model.h"
#include "launcher/argv/monitors.h"
#include "launcher/exec.h"
#include "launcher/vm/agent.h"
#include "launcher/vm/detach.h"
#include "launcher/vm/procinfo.h"
#include "launcher/vm/state.h"

bool kl_follow_wanted(const struct kl_launch *l)
{
	return l->model && !l->untouched_why && !l->failed_open && kl_model_daemonize(l->model);
}

/* The pidfile to confirm the daemon by: the command line's, else one that
 * kvm-launch adds in the state directory (STEM.pid; the agent removes it
 * with the entry).  NULL: none can be had. */
static char *pidfile_for(struct kl_launch *l)
{
	if (kl_model_pidfile(l->model))
		return xstrdup(kl_model_pidfile(l->model));
	if (!l->state_fds || !l->state_dir)
		return NULL;
	char *p = xasprintf("%s/%s.pid", l->state_dir, l->state_fds->stem);
	strvec_push_dup(&l->exec_argv, "-pidfile");
	strvec_push_dup(&l->exec_argv, p);
	return p;
}

static int read_pidfile(const char *path, pid_t *out, struct kl_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return kl_error_errno(err, errno, "cannot open the pidfile %s", path);
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return kl_error_fail(err, "the pidfile %s is not a regular file", path);
	char buf[32];
	ssize_t n = read(fd, buf, sizeof buf - 1);
	if (n <= 0)
		return kl_error_fail(err, "the pidfile %s is empty", path);
	buf[n] = '\0';
	char *end;
	errno = 0;
	long v = strtol(buf, &end, 10);
	while (*end == '\n' || *end == ' ')
		end++;
	if (errno || end == buf || *end || v <= 1 || v > 0x3fffffff)
		return kl_error_fail(err, "the pidfile %s holds no PID", path);
	*out = (pid_t)v;
	return 0;
}

/* The process that listens on the socket at path (SO_PEERCRED). */
static int socket_owner(const char *path, pid_t *out, struct kl_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path)
		return kl_error_fail(err, "socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kl_error_errno(err, errno, "socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		return kl_error_errno(err, errno, "cannot connect to QEMU's monitor %s", path);
	struct ucred cred;
	socklen_t len = sizeof cred;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return kl_error_errno(err, errno, "SO_PEERCRED on %s", path);
	*out = cred.pid;
	return 0;
}

pid_t kl_follow_confirm(const char *pidfile, const char *sock, struct kl_error *err)
{
	pid_t by_file = 0, by_socket = 0;
	if (read_pidfile(pidfile, &by_file, err) < 0 || socket_owner(sock, &by_socket, err) < 0)
		return -1;
	if (by_file != by_socket)
		return kl_error_fail(err, "the pidfile %s names PID %d, but QEMU's monitor is served by PID %d", pidfile,
				     (int)by_file, (int)by_socket);
	return by_file;
}

/* Everything this launch made, when QEMU did not start or is not followed:
 * the entry and its sockets and logs, the relays' private sockets, and the
 * manager's sockets we bound for the relays (QEMU would have bound them). */
static void remove_ours(struct kl_launch *l, bool manager_sockets)
{
	struct kl_state_fds *f = l->state_fds;
	if (!f)
		return;
	struct kl_monitors ms;
	kl_monitors_find(l->argc, l->argv, &ms);
	char name[600];
	for (size_t i = 0; i < ms.n; i++) {
		snprintf(name, sizeof name, "%s.relay%zu.sock", f->stem, i);
		kl_statedir_remove(f->dirfd, name, S_IFSOCK, f->owner);
		snprintf(name, sizeof name, "%d.r%zu.sock", (int)getpid(), i);
		kl_statedir_remove(f->dirfd, name, S_IFSOCK, f->owner);
		struct stat st;
		if (manager_sockets && l->relay && ms.v[i].path && lstat(ms.v[i].path, &st) == 0 &&
		    S_ISSOCK(st.st_mode) && st.st_uid == geteuid())
			unlink(ms.v[i].path);
	}
	kl_monitors_free(&ms);
	snprintf(name, sizeof name, "%s.relay.log", f->stem);
	kl_statedir_remove(f->dirfd, name, S_IFREG, f->owner);
	snprintf(name, sizeof name, "%s.pid", f->stem);
	if (!kl_model_pidfile(l->model))
		kl_statedir_remove(f->dirfd, name, S_IFREG, f->owner);
	kl_state_remove_at(f->dirfd, f->stem, f->owner, false);
}

static _Noreturn void exec_child(struct kl_launch *l)
{
	struct kl_error err = KL_ERROR_INIT;
	kl_state_pass_fds(l);
	kl_relay_pass_fds(l);
	/* QEMU ranks above the agent and relays that the parent starts later. */
	if (l->state_file)
		kl_detach_oom_rank_qemu();
	kl_exec_qemu(strvec_terminate(&l->exec_argv), &err);
	kl_err("%s", err.msg);
	_exit(127);
}

/* Wait for QEMU's launching process; its exit status as a shell shows it. */
static int wait_status(pid_t child)
{
	int status;
	while (waitpid(child, &status, 0) < 0)
		if (errno != EINTR)
			return 127;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
}

/* QEMU is up: find its daemon, and set the state, relays and agent up for it. */
static void follow_daemon(struct kl_launch *l, const char *pidfile)
{
	struct kl_error err = KL_ERROR_INIT;
	pid_t pid = kl_follow_confirm(pidfile, l->query_socket, &err);
	if (pid < 0) {
		kl_warn("QEMU's daemon not followed (no state, no agent): %s", err.msg);
		remove_ours(l, false);
		return;
	}
	l->pid = pid;
	if (kl_proc_start_ticks(pid, &l->start_ticks) < 0 || kl_state_write(l, &err) < 0) {
		kl_warn("no state for this VM (--status will not list it): %s",
			err.msg[0] ? err.msg : "QEMU's daemon is gone");
		remove_ours(l, false);
		kl_relay_start_deferred(l); /* the manager's monitor must still reach QEMU */
		return;
	}
	kl_relay_start_deferred(l);
	if (kl_agent_spawn(l, &err) < 0)
		kl_warn("no agent for this VM (live settings not applied): %s", err.msg);
	kl_info("%s: following QEMU's daemon, PID %d", l->vm.name ? l->vm.name : "vm", (int)pid);
}

int kl_follow_run(struct kl_launch *l, const char *state_dir, const struct kl_relay_config *relay)
{
	struct kl_error err = KL_ERROR_INIT;
	bool have_state = false;

	l->follow = true;
	if (kl_state_prepare(l, state_dir, &err) < 0) {
		kl_warn("no state for this VM (--status will not list it): %s", err.msg);
	} else if (kl_state_add_path_monitors(l, &err) < 0) {
		kl_warn("no state for this VM (--status will not list it): %s", err.msg);
		remove_ours(l, false);
	} else {
		have_state = true;
		if (relay) {
			struct kl_relay_config cfg = *relay;
			cfg.defer = true;
			kl_relay_setup(l, &cfg);
		}
	}
	_cleanup_free_ char *pidfile = have_state ? pidfile_for(l) : NULL;
	if (!pidfile && have_state) {
		remove_ours(l, false);
		have_state = false;
	}
	if (!have_state) {
		/* As without kvm-launch's extras: exec in place. */
		kl_exec_qemu(strvec_terminate(&l->exec_argv), &err);
		kl_err("%s", err.msg);
		return 127;
	}
	fflush(NULL);
	pid_t child = fork();
	if (child < 0) {
		kl_err("cannot fork to run QEMU: %s", strerror(errno));
		remove_ours(l, true);
		return 127;
	}
	if (child == 0)
		exec_child(l);
	kl_relay_forget_private(l);
	int rc = wait_status(child);
	if (rc != 0) {
		remove_ours(l, true);
		return rc;
	}
	follow_daemon(l, pidfile);
	return 0;
}
