/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/vm/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "qmp/qmp.h"
#include "launcher/vm/block.h"
#include "launcher/vm/detach.h"
#include "launcher/vm/procinfo.h"
#include "launcher/vm/state.h"
#include "launcher/vm/view.h"


#define QMP_CALL_TIMEOUT_MS 5000

/* ---- spawning ---- */

struct agent_fallback {
	const char *state_file;
	int pidfd, view_fd;
};

/* No /proc or exec refused: the agent runs in the launcher's copy. */
static int agent_fallback(void *arg)
{
	const struct agent_fallback *f = arg;
	return kl_agent_run(f->state_file, f->pidfd, f->view_fd);
}

int kl_agent_spawn(const struct kl_launch *l, struct kl_error *err)
{
	/* Without monitors the agent still removes the entry when QEMU exits. */
	if (!l->state_file)
		return 0;
	/* l->pid is our own PID, or QEMU's daemon when -daemonize is followed. */
	return kl_agent_start(l->state_file, l->pid > 0 ? l->pid : getpid(), l->state_fds ? l->state_fds->view_fd : -1, err);
}

int kl_agent_start(const char *state_file, pid_t qemu, int view_fd, struct kl_error *err)
{
	int pidfd = kl_pidfd_open(qemu);
	if (pidfd < 0)
		kl_debug("pidfd_open: %s: the agent will poll for QEMU's exit", strerror(errno));
	/* QEMU's pidfd goes to fd 3 and the view socket to fd 4; everything
	 * else inherited (libvirt's monitor and log fds, the launcher's own,
	 * QEMU's monitor listeners) is closed. */
	int fds[2] = { pidfd, view_fd };
	struct agent_fallback fb = { state_file, pidfd >= 0 ? KL_AGENT_PIDFD : -1, view_fd >= 0 ? KL_AGENT_VIEWFD : -1 };
	char *argv[] = { (char *)"kvm-launch", (char *)"--agent", (char *)state_file, NULL };
	/* Its start overlaps QEMU's and nothing it does is urgent: on a busy
	 * host QEMU gets the CPU first. */
	struct kl_detach_helper h = { "agent", argv, fds, 2, KL_AGENT_NICE, true, agent_fallback, &fb };
	int r = kl_detach_spawn(&h, err);
	if (pidfd >= 0)
		close(pidfd);
	return r;
}

/* ---- the agent ---- */

struct agent {
	const char *state_file;
	struct kl_statedir dir;  /* the entry's directory, ours */
	char *stem;
	int view_fd;             /* the read-only view's listener, -1 if none */
	pid_t qemu_pid;
	unsigned long long qemu_ticks;
	bool unnamed;
	int pidfd;
	struct qmp_client *qmp;
	json_object *state;      /* as read at start (disks, sockets) */
	bool entry_gone;         /* our entry was replaced by a newer launch */
};

static double now_unix(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Has QEMU exited?  Waits up to timeout_ms (0: just look). */
static bool qemu_gone(struct agent *a, int timeout_ms)
{
	if (a->pidfd >= 0) {
		struct pollfd p = { .fd = a->pidfd, .events = POLLIN };
		int r;
		do
			r = poll(&p, 1, timeout_ms);
		while (r < 0 && errno == EINTR);
		return r > 0;
	}
	if (kl_proc_check(a->qemu_pid, a->qemu_ticks) != KL_PROC_ALIVE)
		return true;
	if (timeout_ms > 0) {
		struct timespec ts = { timeout_ms / 1000, (timeout_ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
	return kl_proc_check(a->qemu_pid, a->qemu_ticks) != KL_PROC_ALIVE;
}

/* ---- state updates ---- */

struct agent_update {
	const char *state;        /* new agent.state, or NULL */
	const char *error;        /* agent.error, or NULL */
	json_object *applied;     /* entries to append to agent.applied (borrowed) */
	json_object *events;      /* entries to append to agent.events (borrowed) */
	unsigned long dropped;    /* events QMP dropped */
};

static json_object *ensure_array(json_object *parent, const char *key)
{
	json_object *a = kl_json_get(parent, key, json_type_array);
	if (!a) {
		a = json_object_new_array();
		json_object_object_add(parent, key, a);
	}
	return a;
}

static void append_capped(json_object *arr, json_object *items, size_t cap)
{
	for (size_t i = 0; items && i < json_object_array_length(items); i++)
		json_object_array_add(arr, json_object_get(json_object_array_get_idx(items, i)));
	size_t n = json_object_array_length(arr);
	if (n > cap)
		json_object_array_del_idx(arr, 0, n - cap);
}

/* agent.io_errors: BLOCK_IO_ERROR events counted per node (else device),
 * for good; the events list itself is capped and would undercount. */
static void count_io_errors(json_object *agent, json_object *events)
{
	for (size_t i = 0; events && i < json_object_array_length(events); i++) {
		json_object *e = json_object_array_get_idx(events, i);
		const char *name = kl_json_str(e, "event");
		if (!name || strcmp(name, "BLOCK_IO_ERROR") != 0)
			continue;
		json_object *data = kl_json_get(e, "data", json_type_object);
		const char *key = kl_json_str(data, "node-name");
		if (!key || !*key)
			key = kl_json_str(data, "device");
		if (!key || !*key)
			key = "?";
		json_object *counts = kl_json_get(agent, "io_errors", json_type_object);
		if (!counts) {
			counts = json_object_new_object();
			json_object_object_add(agent, "io_errors", counts);
		}
		json_object_object_add(counts, key, json_object_new_int64(kl_json_int(counts, key, 0) + 1));
	}
}

static int apply_update(json_object *st, void *vctx, struct kl_error *err)
{
	struct agent_update *u = vctx;
	(void)err;
	json_object *agent = kl_json_get(st, "agent", json_type_object);
	if (!agent) {
		agent = json_object_new_object();
		json_object_object_add(st, "agent", agent);
	}
	unsigned long long ticks = 0;
	kl_proc_start_ticks(getpid(), &ticks);
	json_object_object_add(agent, "pid", json_object_new_int64(getpid()));
	json_object_object_add(agent, "start_ticks", json_object_new_int64((int64_t)ticks));
	if (u->state)
		json_object_object_add(agent, "state", json_object_new_string(u->state));
	if (u->error)
		json_object_object_add(agent, "error", json_object_new_string(u->error));
	if (u->applied)
		append_capped(ensure_array(agent, "applied"), u->applied, 64);
	if (u->events) {
		append_capped(ensure_array(agent, "events"), u->events, KL_STATE_MAX_EVENTS);
		count_io_errors(agent, u->events);
	}
	if (u->dropped)
		json_object_object_add(agent, "events_dropped", json_object_new_int64((int64_t)u->dropped));
	return 1;
}

static void record(struct agent *a, struct agent_update *u)
{
	struct kl_error err = KL_ERROR_INIT;
	bool gone = false;
	if (a->entry_gone)
		return;
	if (kl_state_update(a->state_file, a->qemu_pid, a->qemu_ticks, apply_update, u, &gone, &err) < 0)
		kl_warn("agent: cannot update %s: %s", a->state_file, err.msg);
	if (gone) {
		kl_info("agent: %s no longer describes QEMU pid %d: not updating it", a->state_file, (int)a->qemu_pid);
		a->entry_gone = true;
	}
}

static void record_state(struct agent *a, const char *state, const char *error)
{
	struct agent_update u = { .state = state, .error = error };
	record(a, &u);
}

/* ---- live settings ---- */

static bool wants_throttles(const struct agent *a)
{
	json_object *disks = kl_json_get(a->state, "disks", json_type_array);
	size_t n = disks ? json_object_array_length(disks) : 0;
	for (size_t i = 0; i < n; i++)
		if (kl_json_get(json_object_array_get_idx(disks, i), "throttle", json_type_object))
			return true;
	return false;
}

/* Called when wants_throttles(a). */
static void apply_throttles(struct agent *a)
{
	json_object *disks = kl_json_get(a->state, "disks", json_type_array);
	size_t n = disks ? json_object_array_length(disks) : 0;
	_cleanup_json_ json_object *blocks = NULL;
	_cleanup_json_ json_object *applied = json_object_new_array();
	struct kl_error err = KL_ERROR_INIT;
	if (qmp_execute(a->qmp, "query-block", NULL, QMP_CALL_TIMEOUT_MS, &blocks, &err) < 0) {
		kl_warn("agent: query-block: %s: throttling not applied", err.msg);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		json_object *disk = json_object_array_get_idx(disks, i);
		json_object *want = kl_json_get(disk, "throttle", json_type_object);
		if (!want)
			continue;
		const char *label = kl_json_str(disk, "id") ? kl_json_str(disk, "id") : kl_json_str(disk, "node");
		json_object *entry = json_object_new_object();
		json_object_object_add(entry, "time", json_object_new_double(now_unix()));
		json_object_object_add(entry, "disk", json_object_new_string(label ? label : "?"));
		json_object_object_add(entry, "setting", json_object_new_string("throttle"));
		json_object_object_add(entry, "values", json_object_get(want));
		json_object *block = kl_block_find(blocks, disk);
		if (!block) {
			kl_warn("agent: disk %s: not found in query-block: throttling not applied", label ? label : "?");
			json_object_object_add(entry, "ok", json_object_new_boolean(false));
			json_object_object_add(entry, "error", json_object_new_string("disk not found in query-block"));
			json_object_array_add(applied, entry);
			continue;
		}
		_cleanup_json_ json_object *args = kl_throttle_args(block, want);
		kl_error_clear(&err);
		if (qmp_execute(a->qmp, "block_set_io_throttle", args, QMP_CALL_TIMEOUT_MS, NULL, &err) < 0) {
			kl_warn("agent: disk %s: block_set_io_throttle: %s", label ? label : "?", err.msg);
			json_object_object_add(entry, "ok", json_object_new_boolean(false));
			json_object_object_add(entry, "error", json_object_new_string(err.msg));
		} else {
			_cleanup_free_ char *text = kl_throttle_text(want);
			kl_info("agent: disk %s: throttle %s", label ? label : "?", text);
			json_object_object_add(entry, "ok", json_object_new_boolean(true));
		}
		json_object_array_add(applied, entry);
	}
	struct agent_update u = { .applied = applied };
	record(a, &u);
}

/* ---- events ---- */

static bool notable(const char *ev)
{
	static const char *const prefixes[] = {
		"BLOCK_", "SHUTDOWN", "POWERDOWN", "RESET", "STOP", "RESUME", "SUSPEND", "WAKEUP",
		"GUEST_PANICKED", "GUEST_CRASHLOADED", "DEVICE_DELETED", "DEVICE_TRAY_MOVED", "WATCHDOG",
		"MIGRATION", "MEMORY_FAILURE", "QUORUM_",
	};
	if (strcmp(ev, "MIGRATION_PASS") == 0)
		return false;
	for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
		if (strncmp(ev, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

static json_object *event_entry(json_object *ev)
{
	const char *name = kl_json_str(ev, "event");
	json_object *e = json_object_new_object();
	json_object *ts = kl_json_get(ev, "timestamp", json_type_object);
	double t = ts ? (double)kl_json_int(ts, "seconds", 0) + (double)kl_json_int(ts, "microseconds", 0) / 1e6
		      : now_unix();
	json_object_object_add(e, "time", json_object_new_double(t));
	json_object_object_add(e, "event", json_object_new_string(name ? name : "?"));
	json_object *data = kl_json_get(ev, "data", json_type_object);
	if (data)
		json_object_object_add(e, "data", json_object_get(data));
	return e;
}

/* Take every event already here; record the notable ones.  Returns -1 when
 * the connection is gone. */
static int drain_events(struct agent *a)
{
	_cleanup_json_ json_object *batch = json_object_new_array();
	struct kl_error err = KL_ERROR_INIT;
	int r;
	json_object *ev;

	while ((r = qmp_next_event(a->qmp, 0, &ev, &err)) == 1) {
		const char *name = kl_json_str(ev, "event");
		if (name && notable(name)) {
			json_object *data = kl_json_get(ev, "data", json_type_object);
			kl_info("agent: event %s%s%s", name, data ? " " : "",
				data ? json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN) : "");
			json_object_array_add(batch, event_entry(ev));
		}
		json_object_put(ev);
	}
	if (json_object_array_length(batch) > 0) {
		struct agent_update u = { .events = batch, .dropped = qmp_dropped_events(a->qmp) };
		record(a, &u);
	}
	if (r < 0) {
		kl_info("agent: monitor connection ended: %s", err.msg);
		return -1;
	}
	return 0;
}

/* ---- exit ---- */

struct finish_ctx {
	struct agent *a;
	bool keep_log;
};

static int finish_entry(json_object *st, void *vctx, struct kl_error *err)
{
	struct finish_ctx *f = vctx;
	(void)st;
	(void)err;
	kl_state_remove_at(f->a->dir.fd, f->a->stem, f->a->dir.owner, f->keep_log);
	return 0;
}

static void finish(struct agent *a)
{
	struct kl_error err = KL_ERROR_INIT;
	struct finish_ctx f = { a, !a->unnamed };
	kl_info("agent: QEMU (pid %d) exited: removing its state", (int)a->qemu_pid);
	if (kl_state_update(a->state_file, a->qemu_pid, a->qemu_ticks, finish_entry, &f, NULL, &err) < 0)
		kl_warn("agent: %s", err.msg);
}

/* ---- main loop ---- */

/* The socket was bound (and is listening) since before QEMU's exec, so the
 * connection is made at once; the greeting comes when QEMU is up. */
static int connect_monitor(struct agent *a)
{
	struct kl_error err = KL_ERROR_INIT;
	_cleanup_free_ char *name = xasprintf("%s.agent.sock", a->stem);
	int fd = kl_vm_connect_at(&a->dir, name, a->qemu_pid, a->dir.owner, 5000, &err);
	if (fd >= 0 && qmp_connect_fd(fd, KL_AGENT_CONNECT_TIMEOUT_MS, &a->qmp, &err) < 0) {
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		kl_warn("agent: %s: %s", name, err.msg);
		return -1;
	}
	return 0;
}

/* The entry's directory (ours, trusted), its stem, the entry itself and the
 * log, all from the state file's name. */
static int open_entry(struct agent *a, int *logfd)
{
	struct kl_error err = KL_ERROR_INIT;
	const char *slash = strrchr(a->state_file, '/');
	size_t len = strlen(a->state_file);
	if (!slash || len < 6 || strcmp(a->state_file + len - 5, ".json") != 0) {
		kl_err("agent: %s: not a state file", a->state_file);
		return -1;
	}
	_cleanup_free_ char *dir = xstrndup(a->state_file, (size_t)(slash - a->state_file));
	a->stem = xstrndup(slash + 1, strlen(slash + 1) - 5);
	if (kl_statedir_open(*dir ? dir : "/", geteuid(), &a->dir, &err) < 0 ||
	    kl_state_read_at(a->dir.fd, slash + 1, a->dir.owner, &a->state, &err) < 0) {
		kl_err("agent: %s", err.msg);
		return -1;
	}
	_cleanup_free_ char *log = xasprintf("%s.agent.log", a->stem);
	int fd = openat(a->dir.fd, log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
			0600);
	struct stat st;
	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
		close(fd);
		fd = -1;
	}
	*logfd = fd;
	return 0;
}

/* Make sure the pidfd is QEMU's; else open one (the caller then checks it
 * is still the process that started at start_ticks, not a reused PID). */
static void ensure_qemu_pidfd(struct agent *a)
{
	if (a->pidfd >= 0 && kl_proc_pidfd_pid(a->pidfd) != a->qemu_pid) {
		close(a->pidfd);
		a->pidfd = -1;
	}
	if (a->pidfd >= 0)
		return;
	a->pidfd = kl_pidfd_open(a->qemu_pid);
	if (a->pidfd >= 0) {
		int fl = fcntl(a->pidfd, F_GETFD);
		if (fl >= 0)
			fcntl(a->pidfd, F_SETFD, fl | FD_CLOEXEC);
	} else {
		kl_info("agent: pidfd_open: %s: polling /proc every 500 ms instead", strerror(errno));
	}
}

int kl_agent_run(const char *state_file, int pidfd, int view_fd)
{
	struct agent a = { .state_file = state_file, .pidfd = pidfd, .view_fd = view_fd, .dir = KL_STATEDIR_INIT };
	int rc = 0, logfd = -1;

	signal(SIGPIPE, SIG_IGN);
	/* One below QEMU, which ranked itself one above before starting us
	 * (kl_detach_oom_rank_qemu): the OOM killer takes QEMU first. */
	kl_detach_oom_adjust(-1);
	if (open_entry(&a, &logfd) < 0) {
		rc = 1;
		goto out;
	}
	if (a.view_fd >= 0) {
		int fl = fcntl(a.view_fd, F_GETFL);
		fcntl(a.view_fd, F_SETFL, (fl < 0 ? 0 : fl) | O_NONBLOCK);
		fcntl(a.view_fd, F_SETFD, FD_CLOEXEC);
	}
	kl_log_set_fd(logfd);
	if (kl_log_get_level() < KL_LOG_INFO)
		kl_log_set_level(KL_LOG_INFO);

	a.qemu_pid = (pid_t)kl_json_int(a.state, "pid", 0);
	a.qemu_ticks = (unsigned long long)kl_json_int(a.state, "start_ticks", 0);
	a.unnamed = kl_json_str(a.state, "name") == NULL;
	kl_info("agent: pid %d for QEMU pid %d (%s)", (int)getpid(), (int)a.qemu_pid, state_file);

	ensure_qemu_pidfd(&a);
	if (kl_proc_check(a.qemu_pid, a.qemu_ticks) != KL_PROC_ALIVE) {
		kl_info("agent: QEMU pid %d is not running", (int)a.qemu_pid);
		finish(&a);
		goto out;
	}

	record_state(&a, "connecting", NULL);
	bool connected = false;
	if (!kl_json_str(a.state, "agent_socket")) {
		record_state(&a, "no-monitor", "no agent socket");
	} else if (connect_monitor(&a) < 0) {
		if (!qemu_gone(&a, 0))
			record_state(&a, "no-monitor", "QEMU's monitor did not answer");
	} else if (wants_throttles(&a)) {
		/* Each record rewrites the state file: "connected" only when
		 * throttling comes between it and "watching". */
		record_state(&a, "connected", NULL);
		apply_throttles(&a);
		connected = true;
	} else {
		connected = true;
	}
	/* Once per VM start, QEMU up: the launcher leaves this off the start path. */
	kl_state_clean_stale_at(a.dir.fd, a.dir.path, a.dir.owner);
	if (connected)
		record_state(&a, "watching", NULL);

	/* Sleep until QEMU exits; wake for events. */
	for (;;) {
		if (a.qmp && drain_events(&a) < 0)
			qmp_close(steal_pointer(&a.qmp));
		/* Wake-ups are rare (QEMU events), so this costs nothing. */
		kl_release_text_pages();
		struct pollfd p[3];
		nfds_t np = 0, view = 3;
		if (a.pidfd >= 0)
			p[np++] = (struct pollfd){ .fd = a.pidfd, .events = POLLIN };
		if (a.qmp)
			p[np++] = (struct pollfd){ .fd = qmp_fd(a.qmp), .events = POLLIN };
		if (a.view_fd >= 0) {
			view = np;
			p[np++] = (struct pollfd){ .fd = a.view_fd, .events = POLLIN };
		}
		int timeout = a.pidfd >= 0 ? -1 : 500;
		int r = poll(p, np, timeout);
		if (r < 0 && errno != EINTR) {
			kl_err("agent: poll: %s", strerror(errno));
			rc = 1;
			break;
		}
		if (r > 0 && view < np && (p[view].revents & POLLIN))
			kl_view_serve(a.view_fd, a.qmp);
		if (qemu_gone(&a, 0))
			break;
		if (a.entry_gone && !a.qmp)
			break; /* a newer launch took the name over and we have nothing left to watch */
	}
	if (a.qmp) {
		/* Last words (SHUTDOWN and the like) before the socket closed. */
		drain_events(&a);
		qmp_close(steal_pointer(&a.qmp));
	}
	finish(&a);
out:
	qmp_close(a.qmp);
	if (a.pidfd >= 0)
		close(a.pidfd);
	if (a.view_fd >= 0)
		close(a.view_fd);
	kl_statedir_close(&a.dir);
	free(a.stem);
	if (a.state)
		json_object_put(a.state);
	if (logfd >= 0)
		close(logfd);
	kl_log_set_fd(-1);
	return rc;
}

int kl_agent_main(const char *state_file)
{
	if (!state_file || !*state_file) {
		kl_err("--agent needs the state file");
		return 2;
	}
	/* Started by kl_agent_spawn: fd 3 is QEMU's pidfd.  Started by hand:
	 * fd 3 may be anything, and kl_agent_run checks it. */
	int pidfd = fcntl(KL_AGENT_PIDFD, F_GETFD) >= 0 ? KL_AGENT_PIDFD : -1;
	if (pidfd >= 0)
		fcntl(pidfd, F_SETFD, FD_CLOEXEC);
	if (pidfd >= 0 && kl_proc_pidfd_pid(pidfd) < 0)
		pidfd = -1; /* not a pidfd: leave it alone */
	/* fd 4: the view socket's listener, if it is one. */
	int listening = 0;
	socklen_t len = sizeof listening;
	int view_fd = getsockopt(KL_AGENT_VIEWFD, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening
			      ? KL_AGENT_VIEWFD : -1;
	return kl_agent_run(state_file, pidfd, view_fd);
}
