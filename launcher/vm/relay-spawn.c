/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The launch side of the monitor relay: listeners, the relay processes, and
 * the rewritten monitor arguments (relay.h). */
#include "launcher/vm/relay.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "common/json.h"
#include "launcher/argv/monitors.h"
#include "launcher/vm/detach.h"
#include "launcher/vm/procinfo.h"
#include "launcher/vm/state.h"


struct relay_args {
	const char *qemu_sock, *state_file, *log, *policy, *qemu, *cache_dir, *manager_path;
};

/* A relay whose start waits for QEMU's PID (kl_relay_config.defer). */
struct deferred {
	char *s[7];         /* relay_args, in its order, owned */
	int mfd;            /* the manager's listener */
	bool own_mfd;       /* bound by us (else the inherited fd=N) */
};

struct kl_relay_setup {
	size_t n;
	int *private_fds;   /* QEMU's listeners (FD_CLOEXEC until kl_relay_pass_fds) */
	int *inherited;     /* the manager's fd=N we inherited: QEMU must not keep it; -1 */
	struct deferred *later;
	size_t nlater;
};

static void deferred_free(struct deferred *d)
{
	for (size_t i = 0; i < 7; i++)
		free(d->s[i]);
	if (d->own_mfd && d->mfd >= 0)
		close(d->mfd);
	d->mfd = -1;
}

void kl_relay_setup_free(struct kl_relay_setup *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		if (s->private_fds[i] >= 0)
			close(s->private_fds[i]);
	free(s->private_fds);
	free(s->inherited);
	for (size_t i = 0; i < s->nlater; i++)
		deferred_free(&s->later[i]);
	free(s->later);
	free(s);
}

/* A listening AF_UNIX stream socket bound at path: private (umask 077), or
 * with the process's umask, as QEMU would have bound the manager's socket. */
static int listen_at(const char *path, bool private, struct kl_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof sa.sun_path)
		return kl_error_fail(err, "socket path too long: %s", path);
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kl_error_errno(err, errno, "socket");
	struct stat st;
	/* QEMU replaces a stale socket at the path; anything else stays. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	mode_t old = private ? umask(077) : 0;
	int r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	int e = errno;
	if (private)
		umask(old);
	if (r < 0 || listen(fd, 1) < 0) {
		if (r == 0)
			e = errno;
		close(fd);
		return kl_error_errno(err, e, "cannot listen on %s", path);
	}
	return fd;
}

/* fd=N must be a listening AF_UNIX socket (what libvirt passes). */
static int check_inherited(int fd, struct kl_error *err)
{
	int v = 0;
	socklen_t len = sizeof v;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) < 0 || !v)
		return kl_error_fail(err, "fd %d is not a listening socket", fd);
	len = sizeof v;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) < 0 || v != AF_UNIX)
		return kl_error_fail(err, "fd %d is not a unix socket", fd);
	return 0;
}

/* The relay gets the manager's listener at fd 3, QEMU's pidfd at 4 and the
 * agent's view listener at 5 (to start the agent again if it is killed). */
static int spawn(const struct relay_args *a, int listen_fd, int view_fd, pid_t qemu_pid, struct kl_error *err)
{
	int pidfd = kl_pidfd_open(qemu_pid);
	int fds[3] = { listen_fd, pidfd, view_fd };
	char *argv[] = { (char *)"kvm-launch", (char *)"--relay", (char *)a->qemu_sock, (char *)a->state_file,
			 (char *)a->log, (char *)a->policy, (char *)a->qemu, (char *)a->cache_dir,
			 (char *)a->manager_path, NULL };
	/* Waited for: QEMU's monitor goes through it only if it started. */
	struct kl_detach_helper h = { "relay", argv, fds, 3, 0, false, NULL, NULL };
	int r = kl_detach_spawn(&h, err);
	if (pidfd >= 0)
		close(pidfd);
	return r;
}

/* STATE_DIR/STEM.relayI.sock, else STATE_DIR/PID.rI.sock, else NULL. */
static char *private_path(const struct kl_launch *l, size_t i)
{
	const char *b = strrchr(l->state_file, '/');
	b = b ? b + 1 : l->state_file;
	size_t n = strlen(b);
	if (n > 5 && strcmp(b + n - 5, ".json") == 0)
		n -= 5;
	char *p = xasprintf("%s/%.*s.relay%zu.sock", l->state_dir, (int)n, b, i);
	if (strlen(p) < sizeof ((struct sockaddr_un *)0)->sun_path)
		return p;
	free(p);
	p = xasprintf("%s/%d.r%zu.sock", l->state_dir, (int)l->pid, i);
	if (strlen(p) < sizeof ((struct sockaddr_un *)0)->sun_path)
		return p;
	free(p);
	return NULL;
}

/* STATE_DIR/STEM.relay.log, beside the entry. */
static char *relay_log_path(const struct kl_launch *l)
{
	size_t n = strlen(l->state_file);
	if (n > 5 && strcmp(l->state_file + n - 5, ".json") == 0)
		n -= 5;
	return xasprintf("%.*s.relay.log", (int)n, l->state_file);
}

/* One monitor: its listeners and its relay.  Returns QEMU's listener. */
static int set_up_one(struct kl_launch *l, const struct kl_relay_config *cfg, struct kl_relay_setup *s,
		      const struct kl_monitor *m, size_t i, struct kl_error *err)
{
	_cleanup_free_ char *qpath = private_path(l, i);
	if (!qpath)
		return kl_error_fail(err, "no private socket path fits in %s", l->state_dir);
	_cleanup_free_ char *log = relay_log_path(l);
	int mfd = m->fd;
	if (m->fd >= 0 && check_inherited(m->fd, err) < 0)
		return -1;
	if (m->path && (mfd = listen_at(m->path, false, err)) < 0)
		return -1;
	int qfd = listen_at(qpath, true, err);
	if (qfd < 0) {
		if (m->path)
			close(mfd);
		return -1;
	}
	/* The relay runs in "/": a relative --config must still name the file. */
	_cleanup_free_ char *policy = cfg->policy_path ? realpath(cfg->policy_path, NULL) : NULL;
	struct relay_args a = { qpath, l->state_file, log, policy ? policy : cfg->policy_path ? cfg->policy_path : "", l->qemu,
				cfg->cache_dir ? cfg->cache_dir : "", m->path ? m->path : "" };
	if (cfg->defer) {
		struct deferred *d = &s->later[s->nlater++];
		const char *v[7] = { a.qemu_sock, a.state_file, a.log, a.policy, a.qemu, a.cache_dir, a.manager_path };
		for (size_t k = 0; k < 7; k++)
			d->s[k] = xstrdup(v[k]);
		d->mfd = mfd;
		d->own_mfd = m->path != NULL;
		return qfd;
	}
	int r = spawn(&a, mfd, l->state_fds ? l->state_fds->view_fd : -1, getpid(), err);
	if (m->path)
		close(mfd); /* the relay has its copy; QEMU must not */
	if (r < 0) {
		close(qfd);
		unlink(qpath);
		return -1;
	}
	return qfd;
}

void kl_relay_setup(struct kl_launch *l, const struct kl_relay_config *cfg)
{
	if (!l->state_dir || !l->state_file || l->exec_argv.n < 2)
		return;
	struct kl_monitors ms;
	kl_monitors_find((int)l->exec_argv.n - 1, l->exec_argv.v + 1, &ms);
	if (ms.n == 0) {
		kl_info("monitor relay: no management monitor of a known shape: none relayed");
		kl_monitors_free(&ms);
		return;
	}
	struct kl_relay_setup *s = xcalloc(1, sizeof *s);
	s->private_fds = xcalloc(ms.n, sizeof *s->private_fds);
	s->inherited = xcalloc(ms.n, sizeof *s->inherited);
	s->later = xcalloc(ms.n, sizeof *s->later);
	s->n = ms.n;
	size_t ok = 0;
	/* One log per VM start (the relays append to it), as the agent's. */
	_cleanup_free_ char *log = relay_log_path(l);
	int lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0640);
	if (lfd >= 0)
		close(lfd);
	for (size_t i = 0; i < ms.n; i++) {
		struct kl_error err = KL_ERROR_INIT;
		s->inherited[i] = -1;
		s->private_fds[i] = set_up_one(l, cfg, s, &ms.v[i], i, &err);
		if (s->private_fds[i] < 0) {
			kl_warn("monitor %s is not relayed (QEMU serves it as given): %s", ms.v[i].id, err.msg);
			continue;
		}
		s->inherited[i] = ms.v[i].fd;
		ok++;
	}
	struct strvec out = STRVEC_INIT;
	struct kl_error err = KL_ERROR_INIT;
	strvec_push_dup(&out, l->exec_argv.v[0]);
	if (ok && kl_monitors_rewrite((int)l->exec_argv.n - 1, l->exec_argv.v + 1, &ms, s->private_fds, &out, &err) == 0) {
		strvec_free(&l->exec_argv);
		l->exec_argv = out;
		for (size_t i = 0; i < ms.n; i++)
			if (s->private_fds[i] >= 0)
				kl_info("monitor %s: relayed (QEMU listens on fd %d)", ms.v[i].id, s->private_fds[i]);
	} else {
		if (ok)
			kl_warn("monitor relay: %s: no monitor relayed", err.msg);
		strvec_free(&out);
		/* QEMU serves the monitors as given; the relays find no QEMU
		 * behind their private sockets and close what they accept. */
		for (size_t i = 0; i < ms.n; i++) {
			if (s->private_fds[i] >= 0)
				close(s->private_fds[i]);
			s->private_fds[i] = -1;
			s->inherited[i] = -1;
		}
		/* Deferred relays serve what QEMU does not: none then. */
		for (size_t i = 0; i < s->nlater; i++)
			deferred_free(&s->later[i]);
		s->nlater = 0;
	}
	kl_monitors_free(&ms);
	kl_relay_setup_free(l->relay);
	l->relay = s;
}

void kl_relay_pass_fds(struct kl_launch *l)
{
	struct kl_relay_setup *s = l->relay;
	for (size_t i = 0; s && i < s->n; i++) {
		if (s->private_fds[i] < 0)
			continue;
		int fl = fcntl(s->private_fds[i], F_GETFD);
		if (fl >= 0)
			fcntl(s->private_fds[i], F_SETFD, fl & ~FD_CLOEXEC);
		s->private_fds[i] = -1; /* QEMU's now */
		if (s->inherited[i] >= 0) {
			fl = fcntl(s->inherited[i], F_GETFD);
			if (fl >= 0)
				fcntl(s->inherited[i], F_SETFD, fl | FD_CLOEXEC);
		}
	}
}

void kl_relay_start_deferred(struct kl_launch *l)
{
	struct kl_relay_setup *s = l->relay;
	for (size_t i = 0; s && i < s->nlater; i++) {
		struct deferred *d = &s->later[i];
		struct relay_args a = { d->s[0], d->s[1], d->s[2], d->s[3], d->s[4], d->s[5], d->s[6] };
		struct kl_error err = KL_ERROR_INIT;
		if (spawn(&a, d->mfd, l->state_fds ? l->state_fds->view_fd : -1, l->pid, &err) < 0)
			kl_warn("monitor relay for QEMU pid %d: %s", (int)l->pid, err.msg);
		deferred_free(d);
	}
	if (s)
		s->nlater = 0;
}

void kl_relay_forget_private(struct kl_launch *l)
{
	struct kl_relay_setup *s = l->relay;
	for (size_t i = 0; s && i < s->n; i++) {
		if (s->private_fds[i] >= 0)
			close(s->private_fds[i]);
		s->private_fds[i] = -1;
	}
}
