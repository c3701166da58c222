/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The relay process (kvm-launch --relay, see relay.h): accepts the
 * manager's connections one at a time and relays each to a fresh
 * connection to QEMU's private monitor socket, until QEMU exits. */
#include "launcher/vm/relay.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/json.h"
#include "launcher/vm/procinfo.h"
#include "launcher/vm/relay-int.h"
#include "launcher/vm/detach.h"
#include "launcher/vm/state.h"
#include "qmp/relay.h"

/* The relay's oom_score_adj, below QEMU's (which it inherited): when memory
 * runs out QEMU goes first, never the relay it depends on. */
#define RELAY_OOM_BELOW_QEMU 100

static bool qemu_gone(int pidfd, pid_t pid, unsigned long long ticks)
{
	if (pidfd >= 0) {
		struct pollfd p = { pidfd, POLLIN, 0 };
		return poll(&p, 1, 0) > 0;
	}
	return pid > 0 && kl_proc_check(pid, ticks) != KL_PROC_ALIVE;
}

static void lower_oom_score(void)
{
	/* Without CAP_SYS_RESOURCE only back down to where the launcher was
	 * before it ranked QEMU one above (kl_detach_oom_rank_qemu). */
	if (kl_detach_oom_adjust(-RELAY_OOM_BELOW_QEMU) < 0 && kl_detach_oom_adjust(-1) < 0)
		kl_info("relay: cannot lower oom_score_adj: %s", strerror(errno));
}

bool kl_relay_qemu_gone(const struct kl_relay_proc *p)
{
	return qemu_gone(p->pidfd, p->c->qemu_pid, p->c->qemu_ticks);
}

/* A connection to QEMU's private listener; it takes connections from the
 * moment it exists (the kernel queues them until QEMU accepts). */
static int connect_qemu(const char *path, int pidfd, pid_t pid, unsigned long long ticks)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path)
		return -1;
	strcpy(sa.sun_path, path);
	long long end = kl_monotonic_ms() + KL_RELAY_CONNECT_MS;
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -1;
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
			return fd;
		int e = errno;
		close(fd);
		if (qemu_gone(pidfd, pid, ticks) || kl_monotonic_ms() >= end) {
			kl_warn("relay: cannot connect to QEMU's monitor at %s: %s", path, strerror(e));
			return -1;
		}
		struct timespec ts = { 0, 20 * 1000000L };
		nanosleep(&ts, NULL);
	}
}

int kl_relay_connect_qemu(const struct kl_relay_proc *p)
{
	return connect_qemu(p->qsock, p->pidfd, p->c->qemu_pid, p->c->qemu_ticks);
}

static void unlink_same(const char *path, const struct stat *was)
{
	struct stat now;
	if (lstat(path, &now) == 0 && now.st_dev == was->st_dev && now.st_ino == was->st_ino)
		unlink(path);
}

static void read_state(struct kl_relay_ctx *c, json_object **st)
{
	struct kl_error err = KL_ERROR_INIT;
	*st = NULL;
	if (!*c->state_file || kl_state_read(c->state_file, st, &err) < 0)
		return;
	c->vm_name = kl_json_str(*st, "name");
	c->qemu_pid = (pid_t)kl_json_int(*st, "pid", 0);
	c->qemu_ticks = (unsigned long long)kl_json_int(*st, "start_ticks", 0);
}

/* The sockets as they were at the start: at the end, only these are
 * removed (a newer VM may have bound the same names meanwhile). */
struct sockets {
	const char *qsock, *mpath;
	struct stat qst, mst;
	bool have_q, have_m;
};

static void finish(struct kl_relay_proc *p)
{
	const struct sockets *k = p->finish_arg;
	kl_info("relay: QEMU exited");
	/* QEMU removes the sockets it made: so do we. */
	if (k->have_q)
		unlink_same(k->qsock, &k->qst);
	if (k->have_m)
		unlink_same(k->mpath, &k->mst);
}

int kl_relay_main(int argc, char **argv)
{
	if (argc < 6) {
		kl_err("--relay: QEMU_SOCKET STATE_FILE LOG POLICY QEMU CACHE_DIR [MANAGER_PATH]");
		return 2;
	}
	const char *qsock = argv[0], *log = argv[2], *mpath = argc > 6 ? argv[6] : "";
	struct kl_relay_ctx c = { .state_file = argv[1], .policy_path = argv[3], .qemu = argv[4], .cache_dir = argv[5] };
	signal(SIGPIPE, SIG_IGN);
	int logfd = *log ? open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640) : -1;
	kl_log_set_fd(logfd);
	kl_log_set_level(KL_LOG_INFO);

	int lfd = KL_RELAY_LISTEN_FD;
	int v = 0;
	socklen_t len = sizeof v;
	if (getsockopt(lfd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0 || !v) {
		kl_err("relay: fd %d is not a listening socket", lfd);
		return 1;
	}
	fcntl(lfd, F_SETFD, FD_CLOEXEC);
	int pidfd = fcntl(KL_RELAY_PIDFD, F_GETFD) >= 0 ? KL_RELAY_PIDFD : -1;
	if (pidfd >= 0) {
		fcntl(pidfd, F_SETFD, FD_CLOEXEC);
		if (kl_proc_pidfd_pid(pidfd) < 0)
			pidfd = -1;
	}
	_cleanup_json_ json_object *st = NULL;
	read_state(&c, &st);
	if (pidfd >= 0 && c.qemu_pid > 0 && kl_proc_pidfd_pid(pidfd) != c.qemu_pid)
		pidfd = -1; /* not QEMU's: watch the PID instead */
	if (pidfd < 0 && c.qemu_pid <= 0) {
		/* Nothing tells when QEMU is gone: a relay would outlive it. */
		kl_err("relay: no pidfd at fd %d and no QEMU pid in '%s': not relaying", KL_RELAY_PIDFD, c.state_file);
		return 1;
	}
	lower_oom_score();
	c.nodes = json_object_new_object();
	kl_info("relay: pid %d for QEMU pid %d, QEMU's monitor at %s", (int)getpid(), (int)c.qemu_pid, qsock);

	struct sockets k = { .qsock = qsock, .mpath = mpath };
	k.have_q = lstat(qsock, &k.qst) == 0 && S_ISSOCK(k.qst.st_mode);
	k.have_m = *mpath && lstat(mpath, &k.mst) == 0 && S_ISSOCK(k.mst.st_mode);
	int view_fd = -1, listening = 0;
	len = sizeof listening;
	if (getsockopt(KL_RELAY_VIEWFD, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening) {
		view_fd = KL_RELAY_VIEWFD;
		fcntl(view_fd, F_SETFD, FD_CLOEXEC);
	}
	struct kl_relay_proc p = { .c = &c, .qsock = qsock, .lfd = lfd, .pidfd = pidfd, .view_fd = view_fd,
				   .logfd = logfd, .finish = finish, .finish_arg = &k };
	int rc = kl_relay_ha_run(&p);
	json_object_put(c.nodes);
	if (logfd >= 0)
		close(logfd);
	return rc;
}
