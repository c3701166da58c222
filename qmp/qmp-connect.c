/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Connecting a QMP client: the socket (waiting for it to appear if asked),
 * the greeting and qmp_capabilities. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "qmp/qmp-int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/xalloc.h"

/* ---- connection ---- */

static FILE *default_trace;

static struct qmp_client *client_new(int fd, const char *name)
{
	struct qmp_client *c = xcalloc(1, sizeof *c);
	c->fd = fd;
	c->trace = default_trace;
	c->name = xstrdup(name);
	c->tok = json_tokener_new_ex(QMP_MAX_DEPTH);
	if (!c->tok) {
		kl_err("out of memory");
		abort();
	}
	json_tokener_set_flags(c->tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
	c->rbuf = xmalloc(QMP_READ_CHUNK);
	c->events = xcalloc(QMP_MAX_QUEUED_EVENTS, sizeof *c->events);
	return c;
}

static void client_free(struct qmp_client *c)
{
	if (!c)
		return;
	while (c->ev_len)
		json_object_put(qmpi_dequeue_event(c));
	free(c->events);
	json_object_put(c->greeting);
	json_tokener_free(c->tok);
	free(c->rbuf);
	free(c->name);
	free(c);
}

/* Greeting, then qmp_capabilities. */
static int handshake(struct qmp_client *c, deadline_t dl, int timeout_ms, struct kl_error *err)
{
	json_object *m = NULL;
	int r = qmpi_read_msg(c, dl, "the greeting", &m, err);
	if (r < 0)
		return -1;
	if (r == 0)
		return qmpi_qerr(err, ETIMEDOUT,
			    "qmp: %s: no greeting within %d ms (is another client connected to this monitor?)",
			    c->name, timeout_ms);
	json_object *qmp, *version, *caps;
	if (!json_object_object_get_ex(m, "QMP", &qmp) || !json_object_is_type(qmp, json_type_object) ||
	    !json_object_object_get_ex(qmp, "version", &version) || !json_object_is_type(version, json_type_object) ||
	    !json_object_object_get_ex(qmp, "capabilities", &caps) || !json_object_is_type(caps, json_type_array)) {
		qmpi_qbreak(c, err, EPROTO, "qmp: %s: unexpected greeting: %.300s", c->name,
		       json_object_to_json_string_ext(m, QMP_SERIALIZE_FLAGS));
		json_object_put(m);
		return -1;
	}
	c->greeting = m;

	if (qmpi_run_command(c, "qmp_capabilities", NULL, dl, timeout_ms, NULL, err) < 0) {
		if (err && err->errnum == 0) /* a QMP error reply: say what refused */
			kl_error_prefix(err, "qmp: %s: qmp_capabilities", c->name);
		return -1;
	}
	return 0;
}

static int start(int fd, const char *name, deadline_t dl, int timeout_ms, struct qmp_client **out,
		 struct kl_error *err)
{
	struct qmp_client *c = client_new(fd, name);
	c->received = false;
	if (handshake(c, dl, timeout_ms, err) < 0) {
		client_free(c); /* the caller still owns fd */
		return -1;
	}
	*out = c;
	return 0;
}

/* Fills sa for path.  A path too long for sun_path is reached through
 * /proc/self/fd/N/BASENAME, with *dirfd_out an O_PATH fd of its directory. */
static int make_addr(const char *path, struct sockaddr_un *sa, int *dirfd_out, struct kl_error *err)
{
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	*dirfd_out = -1;
	size_t len = strlen(path);
	if (len == 0)
		return qmpi_qerr(err, EINVAL, "qmp: empty socket path");
	if (len < sizeof sa->sun_path) {
		memcpy(sa->sun_path, path, len + 1);
		return 0;
	}
	const char *slash = strrchr(path, '/');
	if (!slash || !slash[1])
		return qmpi_qerr(err, ENAMETOOLONG, "qmp: %s: socket path too long", path);
	_cleanup_free_ char *dir = slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path));
	int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return qmpi_qerr(err, errno, "qmp: %s: %s", path, strerror(errno));
	int n = snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/self/fd/%d/%s", dfd, slash + 1);
	if (n < 0 || (size_t)n >= sizeof sa->sun_path) {
		close(dfd);
		return qmpi_qerr(err, ENAMETOOLONG, "qmp: %s: socket path too long", path);
	}
	*dirfd_out = dfd;
	return 0;
}

/* Connects a non-blocking, close-on-exec socket.  With wait, a missing or
 * refusing socket is retried until the deadline. */
static int unix_connect(const char *path, deadline_t dl, int timeout_ms, bool wait, struct kl_error *err)
{
	struct sockaddr_un sa;
	_cleanup_close_ int dirfd = -1;
	if (make_addr(path, &sa, &dirfd, err) < 0)
		return -1;

	for (;;) {
		_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			return qmpi_qerr(err, errno, "qmp: socket: %s", strerror(errno));
		int e = 0;
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
			return steal_fd(&fd);
		e = errno;
		if (e == EINPROGRESS || e == EINTR) {
			int r = qmpi_wait_fd(fd, POLLOUT, dl);
			if (r < 0)
				return qmpi_qerr(err, errno, "qmp: %s: poll: %s", path, strerror(errno));
			if (r == 0)
				return qmpi_qerr(err, ETIMEDOUT, "qmp: %s: connect: no answer within %d ms", path, timeout_ms);
			socklen_t len = sizeof e;
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
				e = errno;
			if (e == 0)
				return steal_fd(&fd);
		}
		/* EAGAIN: the listen backlog is full.  ENOENT/ECONNREFUSED: QEMU is not
		 * listening yet (or any more). */
		bool retry = e == EAGAIN || (wait && (e == ENOENT || e == ECONNREFUSED));
		if (!retry)
			return qmpi_qerr(err, e, "qmp: %s: connect: %s", path, strerror(e));
		if (qmpi_expired(dl))
			return qmpi_qerr(err, ETIMEDOUT, "qmp: %s: connect: still failing after %d ms: %s", path, timeout_ms,
				    strerror(e));
		int64_t next = kl_monotonic_ns() + (int64_t)QMP_RETRY_INTERVAL_MS * 1000000;
		qmpi_sleep_until(dl >= 0 && dl < next ? dl : next);
	}
}

static int connect_path(const char *socket_path, int timeout_ms, bool wait, struct qmp_client **out,
			struct kl_error *err)
{
	if (out)
		*out = NULL;
	if (!socket_path || !out)
		return qmpi_qerr(err, EINVAL, "qmp: connect: invalid argument");
	deadline_t dl = qmpi_deadline_in(timeout_ms);
	int fd = unix_connect(socket_path, dl, timeout_ms, wait, err);
	if (fd < 0)
		return -1;
	if (start(fd, socket_path, dl, timeout_ms, out, err) < 0) {
		close(fd);
		return -1;
	}
	return 0;
}

int qmp_connect(const char *socket_path, int timeout_ms, struct qmp_client **out, struct kl_error *err)
{
	return connect_path(socket_path, timeout_ms, false, out, err);
}

int qmp_connect_wait(const char *socket_path, int timeout_ms, struct qmp_client **out, struct kl_error *err)
{
	return connect_path(socket_path, timeout_ms, true, out, err);
}

int qmp_connect_fd(int fd, int timeout_ms, struct qmp_client **out, struct kl_error *err)
{
	if (out)
		*out = NULL;
	if (fd < 0 || !out)
		return qmpi_qerr(err, EINVAL, "qmp: connect: invalid argument");
	char name[32];
	snprintf(name, sizeof name, "fd %d", fd);
	int type;
	socklen_t len = sizeof type;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return qmpi_qerr(err, errno, "qmp: %s: %s", name, errno == ENOTSOCK ? "not a socket" : strerror(errno));
	if (type != SOCK_STREAM)
		return qmpi_qerr(err, EINVAL, "qmp: %s: not a stream socket", name);
	int flags = fcntl(fd, F_GETFD);
	if (flags < 0 || (!(flags & FD_CLOEXEC) && fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0))
		return qmpi_qerr(err, errno, "qmp: %s: fcntl: %s", name, strerror(errno));
	/* recv/send use MSG_DONTWAIT: the file status flags stay as they are. */
	return start(fd, name, qmpi_deadline_in(timeout_ms), timeout_ms, out, err);
}

void qmp_close(struct qmp_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	client_free(c);
}


void qmp_set_default_trace(FILE *f)
{
	default_trace = f;
}
