/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A QMP client over a Unix socket, with json-c.  It knows nothing of policy.
 *
 *   struct qmp_client *c;
 *   if (qmp_connect("/run/x.sock", 1000, &c, err) < 0) ...   greeting + qmp_capabilities
 *   json_object *ret;
 *   if (qmp_execute(c, "query-block", NULL, 1000, &ret, err) < 0) ...
 *   json_object_put(ret); qmp_close(c);
 *
 * Replies are matched by "id"; events that arrive meanwhile are queued and
 * handed out by qmp_next_event().  All calls take a timeout in milliseconds
 * (-1: none) and never block past it.
 *
 * Errors: err->errnum tells what kind of failure it was.
 *   0            QEMU answered with an error: err->msg is "CLASS: desc"
 *                (e.g. "GenericError: Device 'x' not found"); the client is
 *                still usable.
 *   ETIMEDOUT    the timeout passed; the client is still usable unless a
 *                command was only half sent (a late reply is dropped).
 *   EPIPE        the peer closed the connection (QEMU exited): not usable.
 *   EPROTO       the peer broke the protocol (not JSON, not an object, bad
 *                greeting), EMSGSIZE a message over QMP_MAX_MESSAGE: not usable.
 *   EINVAL       a bad argument from the caller; other values: a system call.
 * Once not usable (see qmp_usable), every call fails at once with the
 * original message.  A client is not thread-safe. */
#ifndef KL_QMP_H
#define KL_QMP_H

#include <stdbool.h>
#include <stdio.h>
#include <json-c/json.h>
#include "common/error.h"

struct qmp_client;

/* Connect, read the greeting, negotiate capabilities.  The whole exchange is
 * bounded by timeout_ms.  A path longer than sun_path is reached through its
 * directory.  A monitor that already serves another client accepts the
 * connection but sends no greeting: that ends in a timeout. */
int qmp_connect(const char *socket_path, int timeout_ms, struct qmp_client **out, struct kl_error *err);
/* Same, but while the socket does not exist yet or refuses connections
 * (QEMU still starting), retry every 20 ms until timeout_ms has passed. */
int qmp_connect_wait(const char *socket_path, int timeout_ms, struct qmp_client **out, struct kl_error *err);
/* Same over an already-connected stream socket fd (e.g. one end of a
 * socketpair whose other end is QEMU's `-qmp stdio`).  On success the fd is
 * taken over (set close-on-exec; closed by qmp_close); on failure the caller
 * still owns it and must close it. */
int qmp_connect_fd(int fd, int timeout_ms, struct qmp_client **out, struct kl_error *err);
/* Closes the socket and frees everything, queued events included.  NULL is fine. */
void qmp_close(struct qmp_client *c);
static inline void qmp_closep(struct qmp_client **c) { qmp_close(*c); }
#define _cleanup_qmp_ __attribute__((cleanup(qmp_closep)))

/* Execute a command.  args may be NULL; it is borrowed (not freed) and must
 * be an object.  On success *ret_out (if not NULL) receives the "return"
 * value (caller puts it).  A QMP error reply returns -1 with err->msg
 * "CLASS: desc". */
int qmp_execute(struct qmp_client *c, const char *command, json_object *args, int timeout_ms,
		json_object **ret_out, struct kl_error *err);

/* Take the next event (queued or read within timeout_ms; 0 = only what is
 * already buffered or readable now).  Returns 1 with *event_out (caller
 * puts it), 0 on timeout, -1 on error (connection closed: err set, errnum
 * EPIPE when QEMU closed it, e.g. because it exited).
 * Before sleeping in poll() on qmp_fd(), drain with timeout 0 until this
 * returns 0: events may already sit in the queue or the read buffer. */
int qmp_next_event(struct qmp_client *c, int timeout_ms, json_object **event_out, struct kl_error *err);

/* The socket fd, for poll() (POLLIN means qmp_next_event may have data). */
int qmp_fd(const struct qmp_client *c);
/* The greeting's version object {"qemu":{"major",...},"package"} (borrowed). */
json_object *qmp_greeting(const struct qmp_client *c);
/* The greeting's QEMU version; -1 if it has none with integer fields. */
int qmp_qemu_version(const struct qmp_client *c, int *major, int *minor, int *micro);
/* False once the stream is lost (EOF, I/O or protocol error). */
bool qmp_usable(const struct qmp_client *c);
/* Events dropped because more than QMP_MAX_QUEUED_EVENTS were waiting. */
unsigned long qmp_dropped_events(const struct qmp_client *c);

/* Write every message sent and received, one line each ("-> {json}" and
 * "<- {json}"), to f (NULL: off). */
void qmp_set_trace(struct qmp_client *c, FILE *f);
/* The trace file of clients connected from now on, so that the greeting and
 * capabilities exchange are traced too (the --trace-qmp switch). */
void qmp_set_default_trace(FILE *f);

/* Limits that protect us from a hostile peer. */
#define QMP_MAX_MESSAGE (64 * 1024 * 1024)  /* bytes in one message */
#define QMP_MAX_QUEUED_EVENTS 1024          /* older events are dropped past this */

#endif
