/* SPDX-License-Identifier: GPL-2.0-or-later */
/* No single point of failure: each monitor's relay runs as two processes, an
 * active one that relays and a standby, made with clone(CLONE_FILES) so that
 * both hold the same fd table (the manager's listener, the client's
 * connection, ours to QEMU, the pipe of QEMU's bytes) and a MAP_SHARED
 * record (struct shared) of the session and the step of the message in
 * flight (qmp/relay.h).  Each watches the other with a pidfd:
 *   - the active dies: the standby takes over where the record says (a
 *     message in flight gets QEMU's reply once), closes whatever the dead one
 *     opened and did not record, and starts a new standby;
 *   - the standby dies: the active starts a new one (at most one a second).
 * libvirt's connection stays open throughout, so it never sees the monitor
 * EOF that would make it destroy the domain.
 *
 * The active also watches the agent (its pid from the state file) and starts
 * it again when it was killed while QEMU runs, at most once every 5 s.
 * Only if every process of a relay dies at once does the connection close.
 *
 * Idle, neither process wakes: each sleeps in poll() on pidfds and sockets
 * with no timeout.  A timeout (TICK_MS) is armed only while something waits
 * for time: a standby to start again (rate-limited), an agent not yet seen
 * in the state file or to start again, or a QEMU without a pidfd (Linux
 * before 5.3), whose exit only /proc tells.  tests/qemu/t-relay-idle.sh counts
 * the wakeups of an idle VM's agent and relays. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/cleanup.h"
#include "common/json.h"
#include "common/log.h"
#include "launcher/vm/agent.h"
#include "launcher/vm/procinfo.h"
#include "launcher/vm/relay-int.h"
#include "launcher/vm/state.h"
#include "qmp/relay.h"

#define NODES_MAX (64 * 1024)
#define STANDBY_EVERY_MS 1000
#define AGENT_EVERY_MS 5000
#define TICK_MS 1000

struct shared {
	pid_t active, standby;
	int pidfd_active, pidfd_standby;   /* pidfds in the shared table */
	int agent_pidfd;
	pid_t agent_pid;
	long long standby_next_ms, agent_next_ms;
	bool agent_wait;                   /* check_agent wants another look in TICK_MS */
	unsigned takeovers, agent_restarts, standby_failed;
	struct qmp_relay_session s;
	/* c->nodes as JSON text, double-buffered: a kill mid-copy leaves the
	 * other one valid. */
	int nodes_cur;
	char nodes[2][NODES_MAX];
};

static struct shared *sh;
static struct kl_relay_proc *P;

static bool readable(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };
	return fd >= 0 && poll(&p, 1, 0) > 0;
}

static void clear_close(int *fd)
{
	int f = *fd;
	*fd = -1;
	if (f >= 0)
		close(f);
}

static int pidfd_cloexec(pid_t pid)
{
	int fd = kl_pidfd_open(pid);
	if (fd >= 0)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
	return fd;
}

/* ---- the decided nodes, for a successor ---- */

static void save_nodes(void)
{
	const char *t = json_object_to_json_string_ext(P->c->nodes, JSON_C_TO_STRING_PLAIN);
	size_t n = strlen(t);
	if (n >= NODES_MAX) {
		kl_warn("relay: %zu bytes of decided nodes: a successor would not know them all", n);
		return;
	}
	int next = !sh->nodes_cur;
	memcpy(sh->nodes[next], t, n + 1);
	__atomic_store_n(&sh->nodes_cur, next, __ATOMIC_RELEASE);
}

static void load_nodes(void)
{
	json_object *n = json_tokener_parse(sh->nodes[__atomic_load_n(&sh->nodes_cur, __ATOMIC_ACQUIRE)]);
	if (!n || !json_object_is_type(n, json_type_object)) {
		json_object_put(n);
		return;
	}
	json_object_put(P->c->nodes);
	P->c->nodes = n;
}

static json_object *hook(void *ctx, json_object *msg)
{
	json_object *r = kl_relay_hook(ctx, msg);
	const char *ex = kl_json_str(msg, "execute");
	if (ex && (strstr(ex, "blockdev") || strstr(ex, "device")))
		save_nodes();
	return r;
}

/* ---- the agent ---- */

/* Watch the agent the state names; start it again if it is dead.  Sets
 * agent_wait when only time tells more (the agent not in the state yet, a
 * restart held back or failed, no pidfd): then the caller looks again in
 * TICK_MS; else the agent's pidfd wakes it. */
static void check_agent(void)
{
	sh->agent_wait = false;
	if (sh->agent_pidfd >= 0) {
		if (!readable(sh->agent_pidfd))
			return;
		kl_warn("relay: the agent (pid %d) is gone", (int)sh->agent_pid);
		clear_close(&sh->agent_pidfd);
	}
	if (!*P->c->state_file)
		return; /* no state, no agent */
	struct kl_error err = KL_ERROR_INIT;
	_cleanup_json_ json_object *st = NULL;
	sh->agent_wait = true;
	if (kl_state_read(P->c->state_file, &st, &err) < 0) {
		kl_error_clear(&err);
		return;
	}
	if (kl_json_int(st, "pid", 0) != P->c->qemu_pid) {
		sh->agent_wait = false; /* not our VM's entry any more: nothing to watch */
		return;
	}
	json_object *a = kl_json_get(st, "agent", json_type_object);
	pid_t pid = (pid_t)kl_json_int(a, "pid", 0);
	if (pid <= 0)
		return; /* not started yet */
	if (kl_proc_check(pid, (unsigned long long)kl_json_int(a, "start_ticks", 0)) == KL_PROC_ALIVE) {
		sh->agent_pid = pid;
		sh->agent_pidfd = pidfd_cloexec(pid);
		sh->agent_wait = sh->agent_pidfd < 0;
		return;
	}
	if (kl_monotonic_ms() < sh->agent_next_ms || kl_relay_qemu_gone(P))
		return;
	sh->agent_next_ms = kl_monotonic_ms() + AGENT_EVERY_MS;
	if (kl_agent_start(P->c->state_file, P->c->qemu_pid, P->view_fd, &err) < 0) {
		kl_warn("relay: cannot start the agent again: %s", err.msg);
		kl_error_clear(&err);
		return;
	}
	sh->agent_restarts++;
	kl_warn("relay: the agent (pid %d) was not running: started it again", (int)pid);
}

/* ---- the standby ---- */

static int standby_main(void);

static void spawn_standby(void)
{
	if (sh->pidfd_active < 0 || sh->pidfd_standby >= 0 || kl_monotonic_ms() < sh->standby_next_ms)
		return;
	sh->standby_next_ms = kl_monotonic_ms() + STANDBY_EVERY_MS;
	int pfd = -1;
	struct clone_args ca;
	memset(&ca, 0, sizeof ca);
	ca.flags = CLONE_FILES | CLONE_PIDFD;
	ca.pidfd = (unsigned long long)(uintptr_t)&pfd;
	ca.exit_signal = SIGCHLD;
	pid_t pid = (pid_t)syscall(SYS_clone3, &ca, sizeof ca);
	if (pid < 0 && errno == ENOSYS) /* before Linux 5.3, or under valgrind */
		pid = (pid_t)syscall(SYS_clone, CLONE_FILES | CLONE_PIDFD | SIGCHLD, 0, &pfd, 0, 0);
	if (pid < 0) {
		if (!sh->standby_failed++)
			kl_warn("relay: cannot start a standby: %s", strerror(errno));
		return;
	}
	if (pid == 0)
		_exit(standby_main());
	sh->standby = pid;
	sh->pidfd_standby = pfd;
	kl_info("relay: pid %d active, pid %d standby", (int)getpid(), (int)pid);
}

static void check_standby(void)
{
	if (sh->pidfd_standby >= 0 && readable(sh->pidfd_standby)) {
		kl_warn("relay: the standby (pid %d) is gone", (int)sh->standby);
		clear_close(&sh->pidfd_standby);
		waitpid(sh->standby, NULL, WNOHANG);
		sh->standby = 0;
	}
	spawn_standby();
}

static void watched(void *ctx)
{
	(void)ctx;
	check_standby();
	check_agent();
}

/* How long the active may sleep with no fd readable: -1 (for ever) unless
 * something waits for time (see the top of the file). */
static int tick_ms(void *ctx)
{
	(void)ctx;
	if (P->pidfd < 0 || sh->agent_wait)
		return TICK_MS;
	if (sh->pidfd_active >= 0 && sh->pidfd_standby < 0) {
		long long left = sh->standby_next_ms - kl_monotonic_ms();
		return left <= 0 ? 0 : left < TICK_MS ? (int)left : TICK_MS;
	}
	return -1;
}

static size_t watch_fds(void *ctx, int *fds, size_t max)
{
	(void)ctx;
	size_t n = 0;
	int cand[] = { sh->pidfd_standby, sh->agent_pidfd, P->pidfd };
	for (size_t i = 0; i < sizeof cand / sizeof *cand && n < max; i++)
		if (cand[i] >= 0)
			fds[n++] = cand[i];
	return n;
}

/* ---- taking over ---- */

static bool same_name(int fd, const struct sockaddr_un *want, socklen_t wlen)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof sa;
	int v = 1;
	socklen_t vl = sizeof v;
	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 || len != wlen || memcmp(&sa, want, len) != 0)
		return false;
	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl) == 0 && !v;
}

/* Close what the dead one opened and did not record; a connection it
 * accepted and did not record yet becomes the session. */
static void sweep(void)
{
	struct sockaddr_un lname;
	socklen_t llen = sizeof lname;
	if (getsockname(P->lfd, (struct sockaddr *)&lname, &llen) < 0)
		llen = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	int keep[] = { 0, 1, 2, P->lfd, P->pidfd, P->view_fd, P->logfd, sh->pidfd_active, sh->agent_pidfd,
		       sh->s.cfd, sh->s.qfd, sh->s.pipe_r, sh->s.pipe_w, dirfd(d) };
	int drop[256];
	size_t nd = 0;
	struct dirent *e;
	while ((e = readdir(d)) && nd < sizeof drop / sizeof *drop) {
		if (e->d_name[0] == '.')
			continue;
		int fd = atoi(e->d_name);
		bool known = false;
		for (size_t i = 0; i < sizeof keep / sizeof *keep; i++)
			known |= keep[i] == fd;
		if (!known)
			drop[nd++] = fd;
	}
	closedir(d);
	for (size_t i = 0; i < nd; i++) {
		if (sh->s.cfd < 0 && llen && same_name(drop[i], &lname, llen)) {
			kl_info("relay: taking over a connection accepted at fd %d", drop[i]);
			sh->s.cfd = drop[i];
			continue;
		}
		close(drop[i]);
	}
}

/* The dead one's decision child (relay-decide.c) may hang past its
 * deadline with nobody left to kill it: whatever else is in our process
 * group now is such a leftover (agents get their own session, and the new
 * standby is not started yet). */
static void kill_leftovers(void)
{
	pid_t me = getpid(), grp = getpgrp();
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (d && (e = readdir(d))) {
		pid_t pid = (pid_t)atoi(e->d_name);
		if (pid <= 0 || pid == me)
			continue;
		char path[64], buf[512];
		snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
		if (fd >= 0)
			close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		const char *p = strrchr(buf, ')');
		char state;
		int ppid, pgrp;
		if (!p || sscanf(p + 1, " %c %d %d", &state, &ppid, &pgrp) != 3 || pgrp != grp || state == 'Z')
			continue;
		/* Only our own kind: a relay started by hand shares its group. */
		snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		n = fd >= 0 ? read(fd, buf, sizeof buf) : -1;
		if (fd >= 0)
			close(fd);
		static const char tag[] = "kvm-launch\0--relay"; /* and its NUL */
		if (n > (ssize_t)sizeof tag && memcmp(buf, tag, sizeof tag) == 0) {
			kl_warn("relay: killing pid %d, left by pid %d", (int)pid, (int)sh->active);
			kill(pid, SIGKILL);
		}
	}
	if (d)
		closedir(d);
}

static void take_over(void)
{
	pid_t was = sh->active;
	int dead = sh->pidfd_active;
	kill_leftovers();
	sh->active = getpid();
	sh->pidfd_active = sh->pidfd_standby >= 0 ? sh->pidfd_standby : pidfd_cloexec(getpid());
	sh->pidfd_standby = -1;
	sh->standby = 0;
	sh->standby_next_ms = 0;
	if (dead >= 0)
		close(dead);
	sh->takeovers++;
	kl_warn("relay: pid %d takes over from pid %d (%s, step %s)", (int)getpid(), (int)was,
		sh->s.cfd >= 0 ? "a client connected" : "no client", qmp_relay_step_name(sh->s.step));
	load_nodes();
	sweep();
	spawn_standby();
}

/* ---- the active ---- */

static void run_session(void)
{
	struct kl_error err = KL_ERROR_INIT;
	if (sh->s.qfd < 0) {
		int q = kl_relay_connect_qemu(P);
		if (q < 0) {
			qmp_relay_session_close(&sh->s); /* the client sees EOF, as with QEMU gone */
			return;
		}
		sh->s.qfd = q;
	}
	if (qmp_relay_session_pipe(&sh->s, &err) < 0) {
		kl_warn("%s", err.msg);
		qmp_relay_session_close(&sh->s);
		return;
	}
	struct qmp_relay_hooks hooks = { hook, P->c, watch_fds, watched, tick_ms };
	int r = qmp_relay_session_run(&sh->s, &hooks, &err);
	if (r < 0 && (err.errnum == EPIPE || err.errnum == ECONNRESET))
		kl_info("relay: session ended (%s)", err.msg); /* a side went away mid-write */
	else if (r < 0)
		kl_warn("relay: session ended: %s", err.msg);
	else
		kl_info("relay: session ended (%s closed)", r == QMP_RELAY_CLIENT_CLOSED ? "client" : "QEMU");
	kl_error_clear(&err);
	qmp_relay_session_close(&sh->s);
}

static int active_run(void)
{
	for (;;) {
		if (kl_relay_qemu_gone(P))
			break;
		if (sh->s.cfd >= 0) {
			run_session();
			continue;
		}
		struct pollfd p[4] = { { P->lfd, POLLIN, 0 } };
		int fds[3];
		size_t n = watch_fds(NULL, fds, 3);
		for (size_t i = 0; i < n; i++)
			p[1 + i] = (struct pollfd){ fds[i], POLLIN, 0 };
		int r = poll(p, 1 + n, tick_ms(NULL));
		if (r < 0 && errno != EINTR) {
			kl_err("relay: poll: %s", strerror(errno));
			break;
		}
		watched(NULL);
		if (r <= 0 || !(p[0].revents & POLLIN) || kl_relay_qemu_gone(P))
			continue;
		int client = accept4(P->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (client < 0)
			continue;
		sh->s.step = QMP_RELAY_IDLE;
		sh->s.cfd = client;
		kl_info("relay: client connected");
	}
	P->finish(P);
	/* The standby sees QEMU gone as well and exits. */
	return 0;
}

static int standby_main(void)
{
	kl_log_set_fd(P->logfd);
	for (;;) {
		/* Both pidfds wake it; without QEMU's, only /proc tells. */
		struct pollfd p[2] = { { sh->pidfd_active, POLLIN, 0 }, { P->pidfd, POLLIN, 0 } };
		int r = poll(p, P->pidfd >= 0 ? 2 : 1, P->pidfd >= 0 ? -1 : TICK_MS);
		if (kl_relay_qemu_gone(P))
			return 0;
		if (r > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			break;
		if (r < 0 && errno != EINTR)
			return 1;
	}
	take_over();
	return active_run();
}

int kl_relay_ha_run(struct kl_relay_proc *p)
{
	P = p;
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		kl_err("relay: shared memory: %s", strerror(errno));
		return 1;
	}
	sh->s.cfd = sh->s.qfd = sh->s.pipe_r = sh->s.pipe_w = -1;
	sh->pidfd_standby = sh->agent_pidfd = -1;
	sh->agent_wait = true; /* not looked for yet */
	sh->active = getpid();
	sh->pidfd_active = pidfd_cloexec(getpid());
	if (sh->pidfd_active < 0)
		kl_warn("relay: no pidfd (%s): no standby", strerror(errno));
	save_nodes();
	if (sh->pidfd_active >= 0)
		spawn_standby();
	return active_run();
}
