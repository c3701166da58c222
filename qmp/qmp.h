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
 * (-1: none) and never block past it. */
#ifndef KL_QMP_H
#define KL_QMP_H

#include <stdbool.h>
#include <stdio.h>
#include <json-c/json.h>
#include "../common/error.h"

struct qmp_client;

/* Connect, read the greeting, negotiate capabilities.  The whole exchange is
 * bounded by timeout_ms. */
int qmp_connect(const char *socket_path, int timeout_ms, struct qmp_client **out, struct kl_error *err);
/* Same over an already-connected socket fd (taken over; closed by qmp_close). */
int qmp_connect_fd(int fd, int timeout_ms, struct qmp_client **out, struct kl_error *err);
void qmp_close(struct qmp_client *c);

/* Execute a command.  args may be NULL; it is borrowed (not freed).  On
 * success *ret_out (if not NULL) receives the "return" value (caller puts
 * it).  A QMP error reply returns -1 with err->msg "CLASS: desc". */
int qmp_execute(struct qmp_client *c, const char *command, json_object *args, int timeout_ms,
		json_object **ret_out, struct kl_error *err);

/* Take the next event (queued or read within timeout_ms; 0 = only what is
 * already buffered or readable now).  Returns 1 with *event_out (caller
 * puts it), 0 on timeout, -1 on error (connection closed: err set). */
int qmp_next_event(struct qmp_client *c, int timeout_ms, json_object **event_out, struct kl_error *err);

/* The socket fd, for poll() (POLLIN means qmp_next_event may have data). */
int qmp_fd(const struct qmp_client *c);
/* The greeting's version object {"qemu":{"major",...},"package"} (borrowed). */
json_object *qmp_greeting(const struct qmp_client *c);

/* Write every message sent and received, one line each, to f (NULL: off). */
void qmp_set_trace(struct qmp_client *c, FILE *f);

/* Limits that protect us from a hostile peer. */
#define QMP_MAX_MESSAGE (64 * 1024 * 1024)  /* bytes in one message */
#define QMP_MAX_QUEUED_EVENTS 1024          /* older events are dropped past this */

#endif
