/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/vm/state.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "common/cleanup.h"
#include "common/fileutil.h"
#include "common/hash.h"
#include "common/json.h"
#include "common/log.h"
#include "common/xalloc.h"


/* ---- small helpers ---- */

static bool name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

char *kl_state_qemu_escape(const char *s)
{
	struct strbuf b = STRBUF_INIT;
	for (; *s; s++) {
		strbuf_appendc(&b, *s);
		if (*s == ',')
			strbuf_appendc(&b, ',');
	}
	return strbuf_steal(&b);
}

/* ---- names ---- */

char *kl_state_name(const char *vm_name, pid_t pid)
{
	if (!vm_name || !*vm_name)
		return xasprintf("pid-%d", (int)pid);

	struct strbuf b = STRBUF_INIT;
	bool changed = false;
	size_t i;
	for (i = 0; vm_name[i] && b.len < KL_STATE_NAME_MAX; i++) {
		char c = vm_name[i];
		if (!name_char_ok(c) || (b.len == 0 && c == '.')) {
			c = '_';
			changed = true;
		}
		strbuf_appendc(&b, c);
	}
	if (vm_name[i])
		changed = true; /* cut */
	if (changed) {
		uint64_t h = kl_fnv1a(vm_name);
		strbuf_appendf(&b, "-%08x", (unsigned)(uint32_t)(h ^ (h >> 32)));
	}
	return strbuf_steal(&b);
}

int kl_state_dir_ensure(const char *dir, struct kl_error *err)
{
	_cleanup_statedir_ struct kl_statedir d = KL_STATEDIR_INIT;
	if (!dir)
		return kl_error_fail(err, "empty state directory name");
	return kl_statedir_for_launch(dir, &d, err);
}

void kl_state_fds_free(struct kl_state_fds *f)
{
	if (!f)
		return;
	int *fds[] = { &f->dirfd, &f->agent_fd, &f->query_fd, &f->view_fd };
	for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
		if (*fds[i] >= 0)
			close(*fds[i]);
	free(f->stem);
	free(f);
}

int kl_state_write(const struct kl_launch *l, struct kl_error *err)
{
	struct kl_state_fds *f = l->state_fds;
	if (!l->state_file || !f)
		return kl_error_fail(err, "no state file chosen (kl_state_prepare was not called)");
	_cleanup_json_ json_object *o = kl_state_to_json(l);
	/* The lock keeps an agent of an earlier VM of the same name from
	 * removing this file while it cleans up after its own QEMU. */
	struct kl_statedir d = { f->dirfd, l->state_dir, f->owner };
	_cleanup_close_ int lock = kl_statedir_lock(&d, 2000);
	if (lock < 0)
		kl_debug("%s: cannot lock (%s): writing anyway", l->state_dir, strerror(errno));
	_cleanup_free_ char *name = xasprintf("%s.json", f->stem);
	return kl_state_write_at(f->dirfd, name, f->owner, o, err);
}

/* ---- launch side ---- */

/* The stem for this VM: a live VM of the same name (two QEMUs given one
 * -name) keeps its entry and we take STEM@PID.  Called under the lock. */
static char *choose_stem(int dirfd, uid_t owner, const char *vm_name, pid_t pid)
{
	char *stem = kl_state_name(vm_name, pid);
	_cleanup_free_ char *probe = xasprintf("%s.json", stem);
	_cleanup_json_ json_object *old = NULL;
	if (kl_state_read_at(dirfd, probe, owner, &old, NULL) == 0 && kl_json_int(old, "pid", 0) != pid &&
	    kl_proc_check((pid_t)kl_json_int(old, "pid", 0), (unsigned long long)kl_json_int(old, "start_ticks", 0)) ==
		    KL_PROC_ALIVE) {
		char *s = xasprintf("%s@%d", stem, (int)pid);
		free(stem);
		stem = s;
	}
	return stem;
}

static int write_claim(const struct kl_launch *l, struct kl_error *err)
{
	struct kl_state_fds *f = l->state_fds;
	_cleanup_json_ json_object *claim = json_object_new_object();
	json_object_object_add(claim, "version", json_object_new_int(KL_STATE_VERSION));
	json_object_object_add(claim, "name", l->vm.name ? json_object_new_string(l->vm.name) : NULL);
	json_object_object_add(claim, "stem", json_object_new_string(f->stem));
	json_object_object_add(claim, "pid", json_object_new_int64(l->pid));
	json_object_object_add(claim, "start_ticks", json_object_new_int64((int64_t)l->start_ticks));
	json_object_object_add(claim, "started", json_object_new_int64(l->started_unix));
	json_object_object_add(claim, "running", json_object_new_boolean(true));
	_cleanup_free_ char *name = xasprintf("%s.json", f->stem);
	return kl_state_write_at(f->dirfd, name, f->owner, claim, err);
}

/* The model knows; a fail-open launch may have none (no policy, or the
 * parse failed), and it must not be followed either: read argv then. */
static bool daemonizes(const struct kl_launch *l)
{
	if (l->model)
		return kl_model_daemonize(l->model);
	for (int i = 0; i < l->argc; i++)
		if (l->argv[i] && (strcmp(l->argv[i], "-daemonize") == 0 || strcmp(l->argv[i], "--daemonize") == 0))
			return true;
	return false;
}

int kl_state_prepare(struct kl_launch *l, const char *state_dir, struct kl_error *err)
{
	_cleanup_statedir_ struct kl_statedir d = KL_STATEDIR_INIT;
	pid_t pid = getpid();

	if (daemonizes(l) && !l->follow)
		return kl_error_fail(err, "-daemonize without -pidfile: QEMU leaves the launched process, so it cannot be followed");
	/* Stale entries of other VMs are the agent's to sweep, after QEMU
	 * runs: reading every entry here would put a cost that grows with the
	 * host's VM count in front of every start. */
	if (kl_statedir_for_launch(state_dir, &d, err) < 0)
		return -1;
	if (kl_proc_start_ticks(pid, &l->start_ticks) < 0)
		return kl_error_errno(err, errno, "cannot read /proc/%d/stat", (int)pid);

	/* The name is chosen and claimed under the lock: two launches of one
	 * -name at the same moment must not both take it. */
	_cleanup_close_ int lock = kl_statedir_lock(&d, 2000);
	if (lock < 0)
		kl_debug("%s: cannot lock (%s): choosing the name anyway", d.path, strerror(errno));
	kl_state_fds_free(l->state_fds);
	struct kl_state_fds *f = l->state_fds = xcalloc(1, sizeof *f);
	f->agent_fd = f->query_fd = f->view_fd = -1;
	f->stem = choose_stem(d.fd, d.owner, l->vm.name, pid);
	f->owner = d.owner;
	f->dirfd = steal_fd(&d.fd);

	free(l->state_dir);
	free(l->state_file);
	free(l->agent_log);
	free(l->agent_socket);
	free(l->query_socket);
	l->state_dir = xstrdup(d.path);
	l->state_file = xasprintf("%s/%s.json", d.path, f->stem);
	l->agent_log = xasprintf("%s/%s.agent.log", d.path, f->stem);
	l->agent_socket = l->query_socket = NULL;
	l->pid = pid;
	if (!l->started_unix)
		l->started_unix = (long long)time(NULL);
	/* The claim: a first entry naming our PID, which kl_state_write
	 * replaces; another launch now sees the name taken by a live VM. */
	if (write_claim(l, err) < 0) {
		kl_state_fds_free(steal_pointer(&l->state_fds));
		return -1;
	}
	return 0;
}

/* A listening socket DIR/STEM.SUFFIX made by us with mode `mode`. */
static int listen_at(const struct kl_launch *l, const char *suffix, mode_t mode, struct kl_error *err)
{
	struct kl_state_fds *f = l->state_fds;
	struct kl_statedir d = { f->dirfd, l->state_dir, f->owner };
	_cleanup_free_ char *name = xasprintf("%s%s", f->stem, suffix);
	struct sockaddr_un sa;
	socklen_t len;
	if (kl_statedir_sockaddr(&d, name, &sa, &len) < 0)
		return kl_error_fail(err, "%s/%s: no socket address fits", l->state_dir, name);
	kl_statedir_remove(f->dirfd, name, S_IFSOCK, f->owner);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kl_error_errno(err, errno, "socket");
	mode_t old = umask(0777 & ~mode);
	int r = bind(fd, (struct sockaddr *)&sa, len);
	int e = errno;
	umask(old);
	if (r < 0)
		return kl_error_errno(err, e, "cannot bind %s/%s", l->state_dir, name);
	if (listen(fd, 16) < 0)
		return kl_error_errno(err, errno, "listen %s/%s", l->state_dir, name);
	return steal_fd(&fd);
}

static void add_monitor(struct strvec *argv, const char *id, int fd)
{
	strvec_push_dup(argv, "-chardev");
	strvec_pushf(argv, "socket,id=%s,fd=%d,server=on,wait=off", id, fd);
	strvec_push_dup(argv, "-mon");
	strvec_pushf(argv, "chardev=%s,mode=control", id);
}

void kl_state_add_monitors(struct kl_launch *l)
{
	struct kl_state_fds *f = l->state_fds;
	struct kl_error err = KL_ERROR_INIT;
	if (!f)
		return;
	f->agent_fd = listen_at(l, ".agent.sock", 0600, &err);
	if (f->agent_fd >= 0)
		f->query_fd = listen_at(l, ".qmp.sock", 0600, &err);
	if (f->query_fd >= 0)
		f->view_fd = listen_at(l, ".view.sock", 0660, &err);
	if (f->view_fd < 0) {
		kl_warn("%s: the VM starts without kvm-launch's monitors", err.msg);
		for (int *p = &f->agent_fd; p <= &f->view_fd; p++)
			if (*p >= 0)
				close(*p);
		f->agent_fd = f->query_fd = f->view_fd = -1;
		return; /* a socket bound before the failure goes with the entry */
	}
	free(l->agent_socket);
	free(l->query_socket);
	l->agent_socket = xasprintf("%s/%s.agent.sock", l->state_dir, f->stem);
	l->query_socket = xasprintf("%s/%s.qmp.sock", l->state_dir, f->stem);
	if (l->exec_argv.n == 0)
		strvec_push_dup(&l->exec_argv, l->qemu ? l->qemu : KL_DEFAULT_QEMU);
	add_monitor(&l->exec_argv, KL_MONITOR_ID_PREFIX "agent", f->agent_fd);
	add_monitor(&l->exec_argv, KL_MONITOR_ID_PREFIX "query", f->query_fd);
}

void kl_state_pass_fds(struct kl_launch *l)
{
	struct kl_state_fds *f = l->state_fds;
	if (!f)
		return;
	int keep[] = { f->agent_fd, f->query_fd };
	for (size_t i = 0; i < 2; i++) {
		int fl = keep[i] >= 0 ? fcntl(keep[i], F_GETFD) : -1;
		if (fl >= 0)
			fcntl(keep[i], F_SETFD, fl & ~FD_CLOEXEC);
	}
	/* The view socket is the agent's now, the directory nobody's. */
	if (f->view_fd >= 0)
		close(f->view_fd);
	if (f->dirfd >= 0)
		close(f->dirfd);
	f->view_fd = f->dirfd = -1;
}

/* With -daemonize the monitors must be bound by QEMU's daemon itself: the
 * peer credentials of a connection name the process that listens, and that
 * is how launcher/follow.c confirms the daemon's PID. */
static int add_path_monitor(struct kl_launch *l, const char *suffix, const char *id, char **out,
			    struct kl_error *err)
{
	struct kl_state_fds *f = l->state_fds;
	_cleanup_free_ char *name = xasprintf("%s%s", f->stem, suffix);
	char *path = xasprintf("%s/%s", l->state_dir, name);
	if (path[0] != '/' || strlen(path) >= sizeof ((struct sockaddr_un *)0)->sun_path) {
		free(path);
		return kl_error_fail(err, "%s/%s: not an absolute socket path that fits", l->state_dir, name);
	}
	kl_statedir_remove(f->dirfd, name, S_IFSOCK, f->owner);
	_cleanup_free_ char *esc = kl_state_qemu_escape(path);
	strvec_push_dup(&l->exec_argv, "-chardev");
	strvec_pushf(&l->exec_argv, "socket,id=%s,path=%s,server=on,wait=off", id, esc);
	strvec_push_dup(&l->exec_argv, "-mon");
	strvec_pushf(&l->exec_argv, "chardev=%s,mode=control", id);
	free(*out);
	*out = path;
	return 0;
}

int kl_state_add_path_monitors(struct kl_launch *l, struct kl_error *err)
{
	struct kl_state_fds *f = l->state_fds;
	if (!f)
		return kl_error_fail(err, "no state directory");
	f->view_fd = listen_at(l, ".view.sock", 0660, err);
	if (f->view_fd < 0)
		return -1;
	if (l->exec_argv.n == 0)
		strvec_push_dup(&l->exec_argv, l->qemu ? l->qemu : KL_DEFAULT_QEMU);
	size_t n = l->exec_argv.n;
	if (add_path_monitor(l, ".agent.sock", KL_MONITOR_ID_PREFIX "agent", &l->agent_socket, err) < 0 ||
	    add_path_monitor(l, ".qmp.sock", KL_MONITOR_ID_PREFIX "query", &l->query_socket, err) < 0) {
		while (l->exec_argv.n > n)
			free(l->exec_argv.v[--l->exec_argv.n]);
		l->exec_argv.v[l->exec_argv.n] = NULL;
		free(steal_pointer(&l->agent_socket));
		free(steal_pointer(&l->query_socket));
		close(f->view_fd);
		f->view_fd = -1;
		return -1;
	}
	return 0;
}
