/* SPDX-License-Identifier: GPL-2.0-or-later */
/* QMP client: see qmp.h.
 *
 * Reading: bytes arrive in a fixed read buffer and are fed to one incremental
 * json_tokener (which keeps the partial message in its own growing buffer),
 * so a message may be split over any number of reads and one read may hold
 * several messages; what the tokener did not consume stays in the read buffer
 * for the next message.  The tokener runs in json-c's strict mode (no
 * trailing commas and the like), allowing the bytes of the next message after
 * the current one.
 *
 * Time: each public call computes one CLOCK_MONOTONIC deadline and every
 * wait inside it (connect, send, each read) uses what is left of it.
 *
 * Failure: a protocol error (bad JSON, a non-object, an oversize message),
 * an I/O error, end of file or a half-sent command leave the stream in an
 * unknown state: the client is then marked broken and every later call fails
 * at once with the original message.  A timeout while waiting for a reply
 * does not break it: a late reply has an id nobody waits for and is dropped. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "qmp/qmp.h"

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

#define QMP_READ_CHUNK (64 * 1024)
/* QEMU's own JSON parser allows 1024 levels; json-c's default of 32 is too
 * little for query-block's nested backing-image chains. */
#define QMP_MAX_DEPTH 1024
#define QMP_SERIALIZE_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
/* While qmp_connect_wait waits for a socket to appear. */
#define QMP_RETRY_INTERVAL_MS 20

struct qmp_client {
	int fd;
	char *name;                /* socket path or "fd N", for messages */
	json_tokener *tok;
	char *rbuf;                /* QMP_READ_CHUNK bytes */
	size_t rpos, rlen;         /* unconsumed bytes are rbuf[rpos..rlen) */
	size_t msg_bytes;          /* bytes fed to the tokener for the message in progress */
	json_object *greeting;     /* the whole {"QMP":{...}} object */
	uint64_t next_id;
	json_object **events;      /* ring of QMP_MAX_QUEUED_EVENTS */
	size_t ev_head, ev_len;
	unsigned long ev_dropped;
	FILE *trace;
	bool received;             /* recv() returned data during this public call */
	bool broken;
	int broken_errnum;
	char broken_msg[sizeof ((struct kl_error *)0)->msg];
};

/* ---- errors ---- */

/* Like kl_error_set, but also records errnum without appending strerror(). */
__attribute__((format(printf, 3, 4)))
static int qerr(struct kl_error *err, int errnum, const char *fmt, ...)
{
	if (!err)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	err->errnum = errnum;
	err->set = true;
	return -1;
}

/* The stream is lost: remember why, so later calls fail fast. */
__attribute__((format(printf, 4, 5)))
static int qbreak(struct qmp_client *c, struct kl_error *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->broken_msg, sizeof c->broken_msg, fmt, ap);
	va_end(ap);
	c->broken = true;
	c->broken_errnum = errnum;
	kl_debug("qmp: %s", c->broken_msg);
	return qerr(err, errnum, "%s", c->broken_msg);
}

static int fail_fast(const struct qmp_client *c, struct kl_error *err)
{
	return qerr(err, c->broken_errnum, "qmp: connection unusable after an earlier error: %s", c->broken_msg);
}

/* ---- time ---- */

typedef int64_t deadline_t; /* CLOCK_MONOTONIC nanoseconds; -1: none */

static deadline_t deadline_in(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : kl_monotonic_ns() + (int64_t)timeout_ms * 1000000;
}

/* Time left as a timespec for ppoll (NULL: wait forever).  Never negative. */
static struct timespec *time_left(deadline_t dl, struct timespec *ts)
{
	if (dl < 0)
		return NULL;
	int64_t left = dl - kl_monotonic_ns();
	if (left < 0)
		left = 0;
	ts->tv_sec = left / 1000000000;
	ts->tv_nsec = left % 1000000000;
	return ts;
}

static bool expired(deadline_t dl)
{
	return dl >= 0 && kl_monotonic_ns() >= dl;
}

/* Waits for events on fd until the deadline: 1 ready, 0 timed out, -1 error
 * (errno set).  EINTR restarts with the time that is left. */
static int wait_fd(int fd, short events, deadline_t dl)
{
	for (;;) {
		struct pollfd p = { .fd = fd, .events = events };
		struct timespec ts;
		int r = ppoll(&p, 1, time_left(dl, &ts), NULL);
		if (r > 0)
			return 1; /* POLLERR/POLLHUP too: the next recv/send reports it */
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

static void sleep_until(int64_t ns_deadline)
{
	struct timespec ts;
	while (kl_monotonic_ns() < ns_deadline) {
		time_left(ns_deadline, &ts);
		nanosleep(&ts, NULL);
	}
}

/* ---- tracing ---- */

static void trace(struct qmp_client *c, const char *dir, const char *text)
{
	if (!c->trace)
		return;
	fprintf(c->trace, "%s %s\n", dir, text);
	fflush(c->trace);
}

/* ---- sending ---- */

/* Sends one message.  what names it in errors ("'query-status'"). */
static int send_msg(struct qmp_client *c, json_object *msg, const char *what, deadline_t dl, int timeout_ms,
		    struct kl_error *err)
{
	const char *text = json_object_to_json_string_ext(msg, QMP_SERIALIZE_FLAGS);
	if (!text)
		return qerr(err, ENOMEM, "qmp: %s: cannot serialise %s", c->name, what);
	trace(c, "->", text);
	size_t len = strlen(text);
	_cleanup_free_ char *line = xmalloc(len + 2);
	memcpy(line, text, len);
	line[len++] = '\r';
	line[len++] = '\n';

	size_t off = 0;
	while (off < len) {
		ssize_t n = send(c->fd, line + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			int e = errno;
			if (e == EPIPE || e == ECONNRESET)
				return qbreak(c, err, EPIPE, "qmp: %s: connection closed by the peer while sending %s",
					      c->name, what);
			return qbreak(c, err, e, "qmp: %s: sending %s: %s", c->name, what, strerror(e));
		}
		int r = wait_fd(c->fd, POLLOUT, dl);
		if (r < 0)
			return qbreak(c, err, errno, "qmp: %s: poll: %s", c->name, strerror(errno));
		if (r == 0) {
			if (off == 0) /* nothing went out: the stream is still in step */
				return qerr(err, ETIMEDOUT, "qmp: %s: could not send %s within %d ms", c->name, what,
					    timeout_ms);
			return qbreak(c, err, ETIMEDOUT, "qmp: %s: sending %s timed out after %d ms, %zu of %zu bytes sent",
				      c->name, what, timeout_ms, off, len);
		}
	}
	return 0;
}

/* ---- receiving ---- */

static const char *json_type_word(json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_null: return "null";
	case json_type_boolean: return "boolean";
	case json_type_double:
	case json_type_int: return "number";
	case json_type_string: return "string";
	case json_type_array: return "array";
	case json_type_object: return "object";
	}
	return "value";
}

static bool is_json_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Reads the next message (a JSON object).  Returns 1 with *out (caller puts
 * it), 0 when the deadline passed first (a partial message stays buffered),
 * -1 on error (the client is then broken).  what says what we were waiting
 * for, for messages ("the reply to 'query-status'"). */
static int read_msg(struct qmp_client *c, deadline_t dl, const char *what, json_object **out, struct kl_error *err)
{
	*out = NULL;
	for (;;) {
		if (c->msg_bytes == 0) /* whitespace between messages is not part of one */
			while (c->rpos < c->rlen && is_json_space(c->rbuf[c->rpos]))
				c->rpos++;
		if (c->rpos < c->rlen) {
			size_t avail = c->rlen - c->rpos;
			json_object *o = json_tokener_parse_ex(c->tok, c->rbuf + c->rpos, (int)avail);
			enum json_tokener_error jerr = json_tokener_get_error(c->tok);
			if (jerr == json_tokener_continue) {
				c->rpos = c->rlen;
				c->msg_bytes += avail;
				if (c->msg_bytes > QMP_MAX_MESSAGE)
					return qbreak(c, err, EMSGSIZE,
						      "qmp: %s: message larger than %d bytes while waiting for %s",
						      c->name, QMP_MAX_MESSAGE, what);
				continue;
			}
			if (jerr != json_tokener_success) {
				json_object_put(o);
				return qbreak(c, err, EPROTO, "qmp: %s: invalid JSON from the peer while waiting for %s: %s",
					      c->name, what, json_tokener_error_desc(jerr));
			}
			size_t used = json_tokener_get_parse_end(c->tok);
			if (used > avail) /* cannot happen; never trust it blindly */
				used = avail;
			c->rpos += used;
			c->msg_bytes += used;
			size_t size = c->msg_bytes;
			c->msg_bytes = 0;
			if (size > QMP_MAX_MESSAGE) {
				json_object_put(o);
				return qbreak(c, err, EMSGSIZE, "qmp: %s: message larger than %d bytes while waiting for %s",
					      c->name, QMP_MAX_MESSAGE, what);
			}
			if (!json_object_is_type(o, json_type_object)) {
				const char *type = json_type_word(o); /* json-c's null is a NULL pointer */
				json_object_put(o);
				return qbreak(c, err, EPROTO,
					      "qmp: %s: the peer sent a JSON %s, not an object, while waiting for %s",
					      c->name, type, what);
			}
			if (c->trace)
				trace(c, "<-", json_object_to_json_string_ext(o, QMP_SERIALIZE_FLAGS));
			*out = o;
			return 1;
		}

		/* Past the deadline, finish what is buffered but read no more: a peer
		 * that never pauses must not keep us.  (Each public call may read
		 * once, so that timeout 0 takes what is readable now.) */
		if (c->received && expired(dl))
			return 0;
		c->rpos = c->rlen = 0;
		ssize_t n = recv(c->fd, c->rbuf, QMP_READ_CHUNK, MSG_DONTWAIT);
		if (n > 0) {
			c->rlen = (size_t)n;
			c->received = true;
			continue;
		}
		if (n == 0) {
			if (c->msg_bytes > 0)
				return qbreak(c, err, EPIPE,
					      "qmp: %s: connection closed by the peer in the middle of a message "
					      "(%zu bytes received) while waiting for %s", c->name, c->msg_bytes, what);
			return qbreak(c, err, EPIPE, "qmp: %s: connection closed by the peer while waiting for %s",
				      c->name, what);
		}
		if (errno == EINTR)
			continue;
		if (errno == ECONNRESET)
			return qbreak(c, err, EPIPE, "qmp: %s: connection reset by the peer while waiting for %s",
				      c->name, what);
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return qbreak(c, err, errno, "qmp: %s: read: %s", c->name, strerror(errno));
		int r = wait_fd(c->fd, POLLIN, dl);
		if (r < 0)
			return qbreak(c, err, errno, "qmp: %s: poll: %s", c->name, strerror(errno));
		if (r == 0)
			return 0;
	}
}

/* ---- messages ---- */

enum msg_kind { MSG_EVENT, MSG_REPLY, MSG_GREETING, MSG_OTHER };

static enum msg_kind classify(json_object *m)
{
	json_object *v;
	if (json_object_object_get_ex(m, "event", &v))
		return json_object_is_type(v, json_type_string) ? MSG_EVENT : MSG_OTHER;
	if (json_object_object_get_ex(m, "return", NULL) || json_object_object_get_ex(m, "error", NULL) ||
	    json_object_object_get_ex(m, "id", NULL))
		return MSG_REPLY;
	if (json_object_object_get_ex(m, "QMP", NULL))
		return MSG_GREETING;
	return MSG_OTHER;
}

static void discard(struct qmp_client *c, json_object *m, const char *why)
{
	if (kl_log_get_level() >= KL_LOG_DEBUG)
		kl_debug("qmp: %s: discarding %s: %.300s", c->name, why,
			 json_object_to_json_string_ext(m, QMP_SERIALIZE_FLAGS));
	json_object_put(m);
}

/* Takes m. */
static void queue_event(struct qmp_client *c, json_object *m)
{
	if (c->ev_len == QMP_MAX_QUEUED_EVENTS) {
		json_object *old = c->events[c->ev_head];
		if (c->ev_dropped++ == 0)
			kl_warn("qmp: %s: more than %d events queued: dropping the oldest", c->name,
				QMP_MAX_QUEUED_EVENTS);
		else if (kl_log_get_level() >= KL_LOG_DEBUG)
			kl_debug("qmp: %s: event queue full: dropping %.200s", c->name,
				 json_object_to_json_string_ext(old, QMP_SERIALIZE_FLAGS));
		json_object_put(old);
		c->ev_head = (c->ev_head + 1) % QMP_MAX_QUEUED_EVENTS;
		c->ev_len--;
	}
	c->events[(c->ev_head + c->ev_len) % QMP_MAX_QUEUED_EVENTS] = m;
	c->ev_len++;
}

static json_object *dequeue_event(struct qmp_client *c)
{
	if (c->ev_len == 0)
		return NULL;
	json_object *m = c->events[c->ev_head];
	c->events[c->ev_head] = NULL;
	c->ev_head = (c->ev_head + 1) % QMP_MAX_QUEUED_EVENTS;
	c->ev_len--;
	return m;
}

/* A reply for us: turns it into the result.  Takes m. */
static int take_reply(struct qmp_client *c, const char *command, json_object *m, json_object **ret_out,
		      struct kl_error *err)
{
	_cleanup_json_ json_object *msg = m;
	json_object *e, *v;
	if (json_object_object_get_ex(msg, "error", &e)) {
		json_object *cls, *desc;
		if (json_object_is_type(e, json_type_object) &&
		    json_object_object_get_ex(e, "class", &cls) && json_object_is_type(cls, json_type_string) &&
		    json_object_object_get_ex(e, "desc", &desc) && json_object_is_type(desc, json_type_string))
			return qerr(err, 0, "%s: %s", json_object_get_string(cls), json_object_get_string(desc));
		return qerr(err, EPROTO, "qmp: %s: malformed error reply to '%s': %.300s", c->name, command,
			    json_object_to_json_string_ext(msg, QMP_SERIALIZE_FLAGS));
	}
	if (json_object_object_get_ex(msg, "return", &v)) {
		if (ret_out)
			*ret_out = json_object_get(v);
		return 0;
	}
	return qerr(err, EPROTO, "qmp: %s: reply to '%s' has neither \"return\" nor \"error\"", c->name, command);
}

/* Sends a command and waits for the reply with its id; events met meanwhile
 * are queued.  The caller has checked that the client is usable. */
static int run_command(struct qmp_client *c, const char *command, json_object *args, deadline_t dl, int timeout_ms,
		       json_object **ret_out, struct kl_error *err)
{
	char id[32], what[256];
	snprintf(id, sizeof id, "kl-%" PRIu64, ++c->next_id);
	snprintf(what, sizeof what, "'%s'", command);

	_cleanup_json_ json_object *msg = json_object_new_object();
	json_object_object_add(msg, "execute", json_object_new_string(command));
	if (args)
		json_object_object_add(msg, "arguments", json_object_get(args));
	json_object_object_add(msg, "id", json_object_new_string(id));
	if (send_msg(c, msg, what, dl, timeout_ms, err) < 0)
		return -1;

	snprintf(what, sizeof what, "the reply to '%s'", command);
	for (;;) {
		json_object *m;
		int r = read_msg(c, dl, what, &m, err);
		if (r < 0)
			return -1;
		if (r == 0)
			return qerr(err, ETIMEDOUT, "qmp: %s: no reply to '%s' within %d ms", c->name, command,
				    timeout_ms);
		switch (classify(m)) {
		case MSG_EVENT:
			queue_event(c, m);
			break;
		case MSG_REPLY: {
			json_object *idv;
			if (json_object_object_get_ex(m, "id", &idv)) {
				if (json_object_is_type(idv, json_type_string) &&
				    strcmp(json_object_get_string(idv), id) == 0)
					return take_reply(c, command, m, ret_out, err);
				discard(c, m, "a reply with an unknown id");
			} else if (json_object_object_get_ex(m, "error", NULL)) {
				/* QEMU answers a request it could not parse without an id; ours is
				 * the only one in flight. */
				kl_debug("qmp: %s: taking an error reply without id as the reply to '%s'", c->name,
					 command);
				return take_reply(c, command, m, ret_out, err);
			} else {
				discard(c, m, "a reply without id");
			}
			break;
		}
		case MSG_GREETING:
			discard(c, m, "an unexpected greeting");
			break;
		case MSG_OTHER:
			discard(c, m, "an unknown message");
			break;
		}
	}
}

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
		json_object_put(dequeue_event(c));
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
	int r = read_msg(c, dl, "the greeting", &m, err);
	if (r < 0)
		return -1;
	if (r == 0)
		return qerr(err, ETIMEDOUT,
			    "qmp: %s: no greeting within %d ms (is another client connected to this monitor?)",
			    c->name, timeout_ms);
	json_object *qmp, *version, *caps;
	if (!json_object_object_get_ex(m, "QMP", &qmp) || !json_object_is_type(qmp, json_type_object) ||
	    !json_object_object_get_ex(qmp, "version", &version) || !json_object_is_type(version, json_type_object) ||
	    !json_object_object_get_ex(qmp, "capabilities", &caps) || !json_object_is_type(caps, json_type_array)) {
		qbreak(c, err, EPROTO, "qmp: %s: unexpected greeting: %.300s", c->name,
		       json_object_to_json_string_ext(m, QMP_SERIALIZE_FLAGS));
		json_object_put(m);
		return -1;
	}
	c->greeting = m;

	if (run_command(c, "qmp_capabilities", NULL, dl, timeout_ms, NULL, err) < 0) {
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
		return qerr(err, EINVAL, "qmp: empty socket path");
	if (len < sizeof sa->sun_path) {
		memcpy(sa->sun_path, path, len + 1);
		return 0;
	}
	const char *slash = strrchr(path, '/');
	if (!slash || !slash[1])
		return qerr(err, ENAMETOOLONG, "qmp: %s: socket path too long", path);
	_cleanup_free_ char *dir = slash == path ? xstrdup("/") : xstrndup(path, (size_t)(slash - path));
	int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return qerr(err, errno, "qmp: %s: %s", path, strerror(errno));
	int n = snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/self/fd/%d/%s", dfd, slash + 1);
	if (n < 0 || (size_t)n >= sizeof sa->sun_path) {
		close(dfd);
		return qerr(err, ENAMETOOLONG, "qmp: %s: socket path too long", path);
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
			return qerr(err, errno, "qmp: socket: %s", strerror(errno));
		int e = 0;
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
			return steal_fd(&fd);
		e = errno;
		if (e == EINPROGRESS || e == EINTR) {
			int r = wait_fd(fd, POLLOUT, dl);
			if (r < 0)
				return qerr(err, errno, "qmp: %s: poll: %s", path, strerror(errno));
			if (r == 0)
				return qerr(err, ETIMEDOUT, "qmp: %s: connect: no answer within %d ms", path, timeout_ms);
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
			return qerr(err, e, "qmp: %s: connect: %s", path, strerror(e));
		if (expired(dl))
			return qerr(err, ETIMEDOUT, "qmp: %s: connect: still failing after %d ms: %s", path, timeout_ms,
				    strerror(e));
		int64_t next = kl_monotonic_ns() + (int64_t)QMP_RETRY_INTERVAL_MS * 1000000;
		sleep_until(dl >= 0 && dl < next ? dl : next);
	}
}

static int connect_path(const char *socket_path, int timeout_ms, bool wait, struct qmp_client **out,
			struct kl_error *err)
{
	if (out)
		*out = NULL;
	if (!socket_path || !out)
		return qerr(err, EINVAL, "qmp: connect: invalid argument");
	deadline_t dl = deadline_in(timeout_ms);
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
		return qerr(err, EINVAL, "qmp: connect: invalid argument");
	char name[32];
	snprintf(name, sizeof name, "fd %d", fd);
	int type;
	socklen_t len = sizeof type;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return qerr(err, errno, "qmp: %s: %s", name, errno == ENOTSOCK ? "not a socket" : strerror(errno));
	if (type != SOCK_STREAM)
		return qerr(err, EINVAL, "qmp: %s: not a stream socket", name);
	int flags = fcntl(fd, F_GETFD);
	if (flags < 0 || (!(flags & FD_CLOEXEC) && fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0))
		return qerr(err, errno, "qmp: %s: fcntl: %s", name, strerror(errno));
	/* recv/send use MSG_DONTWAIT: the file status flags stay as they are. */
	return start(fd, name, deadline_in(timeout_ms), timeout_ms, out, err);
}

void qmp_close(struct qmp_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	client_free(c);
}

/* ---- commands and events ---- */

int qmp_execute(struct qmp_client *c, const char *command, json_object *args, int timeout_ms,
		json_object **ret_out, struct kl_error *err)
{
	if (ret_out)
		*ret_out = NULL;
	if (!c || !command || !*command)
		return qerr(err, EINVAL, "qmp: execute: invalid argument");
	if (c->broken)
		return fail_fast(c, err);
	if (args && !json_object_is_type(args, json_type_object))
		return qerr(err, EINVAL, "qmp: %s: arguments of '%s' must be a JSON object, not a %s", c->name, command,
			    json_type_word(args));
	c->received = false;
	return run_command(c, command, args, deadline_in(timeout_ms), timeout_ms, ret_out, err);
}

int qmp_next_event(struct qmp_client *c, int timeout_ms, json_object **event_out, struct kl_error *err)
{
	if (!event_out || !c)
		return qerr(err, EINVAL, "qmp: next event: invalid argument");
	*event_out = dequeue_event(c);
	if (*event_out)
		return 1;
	if (c->broken)
		return fail_fast(c, err);
	deadline_t dl = deadline_in(timeout_ms);
	c->received = false;
	for (;;) {
		json_object *m;
		int r = read_msg(c, dl, "an event", &m, err);
		if (r <= 0)
			return r;
		switch (classify(m)) {
		case MSG_EVENT:
			*event_out = m;
			return 1;
		case MSG_REPLY:
			discard(c, m, "a reply nobody waits for");
			break;
		case MSG_GREETING:
			discard(c, m, "an unexpected greeting");
			break;
		case MSG_OTHER:
			discard(c, m, "an unknown message");
			break;
		}
	}
}

/* ---- accessors ---- */

int qmp_fd(const struct qmp_client *c)
{
	return c ? c->fd : -1;
}

json_object *qmp_greeting(const struct qmp_client *c)
{
	json_object *qmp, *version;
	if (c && c->greeting && json_object_object_get_ex(c->greeting, "QMP", &qmp) &&
	    json_object_object_get_ex(qmp, "version", &version))
		return version;
	return NULL;
}

int qmp_qemu_version(const struct qmp_client *c, int *major, int *minor, int *micro)
{
	json_object *qemu, *v;
	json_object *version = qmp_greeting(c);
	int out[3];
	static const char *const keys[3] = { "major", "minor", "micro" };
	if (!version || !json_object_object_get_ex(version, "qemu", &qemu) ||
	    !json_object_is_type(qemu, json_type_object))
		return -1;
	for (int i = 0; i < 3; i++) {
		if (!json_object_object_get_ex(qemu, keys[i], &v) || !json_object_is_type(v, json_type_int))
			return -1;
		int64_t n = json_object_get_int64(v);
		if (n < 0 || n > INT_MAX)
			return -1;
		out[i] = (int)n;
	}
	if (major)
		*major = out[0];
	if (minor)
		*minor = out[1];
	if (micro)
		*micro = out[2];
	return 0;
}

bool qmp_usable(const struct qmp_client *c)
{
	return c && !c->broken;
}

unsigned long qmp_dropped_events(const struct qmp_client *c)
{
	return c ? c->ev_dropped : 0;
}

void qmp_set_trace(struct qmp_client *c, FILE *f)
{
	if (c)
		c->trace = f;
}

void qmp_set_default_trace(FILE *f)
{
	default_trace = f;
}
