/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The QMP wire: messages read and written whole under a deadline, errors
 * that break the stream, tracing.  See qmp.c for the design. */
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

/* ---- errors ---- */

/* Like kl_error_set, but also records errnum without appending strerror(). */
__attribute__((format(printf, 3, 4)))
int qmpi_qerr(struct kl_error *err, int errnum, const char *fmt, ...)
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
int qmpi_qbreak(struct qmp_client *c, struct kl_error *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->broken_msg, sizeof c->broken_msg, fmt, ap);
	va_end(ap);
	c->broken = true;
	c->broken_errnum = errnum;
	kl_debug("qmp: %s", c->broken_msg);
	return qmpi_qerr(err, errnum, "%s", c->broken_msg);
}

/* ---- time ---- */

deadline_t qmpi_deadline_in(int timeout_ms)
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

bool qmpi_expired(deadline_t dl)
{
	return dl >= 0 && kl_monotonic_ns() >= dl;
}

/* Waits for events on fd until the deadline: 1 ready, 0 timed out, -1 error
 * (errno set).  EINTR restarts with the time that is left. */
int qmpi_wait_fd(int fd, short events, deadline_t dl)
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

void qmpi_sleep_until(int64_t ns_deadline)
{
	struct timespec ts;
	while (kl_monotonic_ns() < ns_deadline) {
		time_left(ns_deadline, &ts);
		nanosleep(&ts, NULL);
	}
}

/* ---- tracing ---- */

void qmpi_trace(struct qmp_client *c, const char *dir, const char *text)
{
	if (!c->trace)
		return;
	fprintf(c->trace, "%s %s\n", dir, text);
	fflush(c->trace);
}

/* ---- sending ---- */

/* Sends one message.  what names it in errors ("'query-status'"). */
int qmpi_send_msg(struct qmp_client *c, json_object *msg, const char *what, deadline_t dl, int timeout_ms,
		    struct kl_error *err)
{
	const char *text = json_object_to_json_string_ext(msg, QMP_SERIALIZE_FLAGS);
	if (!text)
		return qmpi_qerr(err, ENOMEM, "qmp: %s: cannot serialise %s", c->name, what);
	qmpi_trace(c, "->", text);
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
				return qmpi_qbreak(c, err, EPIPE, "qmp: %s: connection closed by the peer while sending %s",
					      c->name, what);
			return qmpi_qbreak(c, err, e, "qmp: %s: sending %s: %s", c->name, what, strerror(e));
		}
		int r = qmpi_wait_fd(c->fd, POLLOUT, dl);
		if (r < 0)
			return qmpi_qbreak(c, err, errno, "qmp: %s: poll: %s", c->name, strerror(errno));
		if (r == 0) {
			if (off == 0) /* nothing went out: the stream is still in step */
				return qmpi_qerr(err, ETIMEDOUT, "qmp: %s: could not send %s within %d ms", c->name, what,
					    timeout_ms);
			return qmpi_qbreak(c, err, ETIMEDOUT, "qmp: %s: sending %s timed out after %d ms, %zu of %zu bytes sent",
				      c->name, what, timeout_ms, off, len);
		}
	}
	return 0;
}

/* ---- receiving ---- */

const char *qmpi_json_type_word(json_object *o)
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
int qmpi_read_msg(struct qmp_client *c, deadline_t dl, const char *what, json_object **out, struct kl_error *err)
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
					return qmpi_qbreak(c, err, EMSGSIZE,
						      "qmp: %s: message larger than %d bytes while waiting for %s",
						      c->name, QMP_MAX_MESSAGE, what);
				continue;
			}
			if (jerr != json_tokener_success) {
				json_object_put(o);
				return qmpi_qbreak(c, err, EPROTO, "qmp: %s: invalid JSON from the peer while waiting for %s: %s",
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
				return qmpi_qbreak(c, err, EMSGSIZE, "qmp: %s: message larger than %d bytes while waiting for %s",
					      c->name, QMP_MAX_MESSAGE, what);
			}
			if (!json_object_is_type(o, json_type_object)) {
				const char *type = qmpi_json_type_word(o); /* json-c's null is a NULL pointer */
				json_object_put(o);
				return qmpi_qbreak(c, err, EPROTO,
					      "qmp: %s: the peer sent a JSON %s, not an object, while waiting for %s",
					      c->name, type, what);
			}
			if (c->trace)
				qmpi_trace(c, "<-", json_object_to_json_string_ext(o, QMP_SERIALIZE_FLAGS));
			*out = o;
			return 1;
		}

		/* Past the deadline, finish what is buffered but read no more: a peer
		 * that never pauses must not keep us.  (Each public call may read
		 * once, so that timeout 0 takes what is readable now.) */
		if (c->received && qmpi_expired(dl))
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
				return qmpi_qbreak(c, err, EPIPE,
					      "qmp: %s: connection closed by the peer in the middle of a message "
					      "(%zu bytes received) while waiting for %s", c->name, c->msg_bytes, what);
			return qmpi_qbreak(c, err, EPIPE, "qmp: %s: connection closed by the peer while waiting for %s",
				      c->name, what);
		}
		if (errno == EINTR)
			continue;
		if (errno == ECONNRESET)
			return qmpi_qbreak(c, err, EPIPE, "qmp: %s: connection reset by the peer while waiting for %s",
				      c->name, what);
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return qmpi_qbreak(c, err, errno, "qmp: %s: read: %s", c->name, strerror(errno));
		int r = qmpi_wait_fd(c->fd, POLLIN, dl);
		if (r < 0)
			return qmpi_qbreak(c, err, errno, "qmp: %s: poll: %s", c->name, strerror(errno));
		if (r == 0)
			return 0;
	}
}

