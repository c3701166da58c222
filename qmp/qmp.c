/* SPDX-License-Identifier: GPL-2.0-or-later */
/* QMP client: see qmp.h.  This file: matching replies to commands, the
 * event queue, the public calls; qmp-wire.c reads and writes messages,
 * qmp-connect.c connects and greets.
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

static int fail_fast(const struct qmp_client *c, struct kl_error *err)
{
	return qmpi_qerr(err, c->broken_errnum, "qmp: connection unusable after an earlier error: %s", c->broken_msg);
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
/* A greeting after the first, or a message that is no QMP at all: neither
 * a reply nor an event anyone waits for. */
static void discard_stray(struct qmp_client *c, json_object *m)
{
	discard(c, m, classify(m) == MSG_GREETING ? "an unexpected greeting" : "an unknown message");
}

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

json_object *qmpi_dequeue_event(struct qmp_client *c)
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
			return qmpi_qerr(err, 0, "%s: %s", json_object_get_string(cls), json_object_get_string(desc));
		return qmpi_qerr(err, EPROTO, "qmp: %s: malformed error reply to '%s': %.300s", c->name, command,
			    json_object_to_json_string_ext(msg, QMP_SERIALIZE_FLAGS));
	}
	if (json_object_object_get_ex(msg, "return", &v)) {
		if (ret_out)
			*ret_out = json_object_get(v);
		return 0;
	}
	return qmpi_qerr(err, EPROTO, "qmp: %s: reply to '%s' has neither \"return\" nor \"error\"", c->name, command);
}

/* Sends a command and waits for the reply with its id; events met meanwhile
 * are queued.  The caller has checked that the client is usable. */
int qmpi_run_command(struct qmp_client *c, const char *command, json_object *args, deadline_t dl, int timeout_ms,
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
	if (qmpi_send_msg(c, msg, what, dl, timeout_ms, err) < 0)
		return -1;

	snprintf(what, sizeof what, "the reply to '%s'", command);
	for (;;) {
		json_object *m;
		int r = qmpi_read_msg(c, dl, what, &m, err);
		if (r < 0)
			return -1;
		if (r == 0)
			return qmpi_qerr(err, ETIMEDOUT, "qmp: %s: no reply to '%s' within %d ms", c->name, command,
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
		case MSG_OTHER:
			discard_stray(c, m);
			break;
		}
	}
}

/* ---- commands and events ---- */

int qmp_execute(struct qmp_client *c, const char *command, json_object *args, int timeout_ms,
		json_object **ret_out, struct kl_error *err)
{
	if (ret_out)
		*ret_out = NULL;
	if (!c || !command || !*command)
		return qmpi_qerr(err, EINVAL, "qmp: execute: invalid argument");
	if (c->broken)
		return fail_fast(c, err);
	if (args && !json_object_is_type(args, json_type_object))
		return qmpi_qerr(err, EINVAL, "qmp: %s: arguments of '%s' must be a JSON object, not a %s", c->name, command,
			    qmpi_json_type_word(args));
	c->received = false;
	return qmpi_run_command(c, command, args, qmpi_deadline_in(timeout_ms), timeout_ms, ret_out, err);
}

int qmp_next_event(struct qmp_client *c, int timeout_ms, json_object **event_out, struct kl_error *err)
{
	if (!event_out || !c)
		return qmpi_qerr(err, EINVAL, "qmp: next event: invalid argument");
	*event_out = qmpi_dequeue_event(c);
	if (*event_out)
		return 1;
	if (c->broken)
		return fail_fast(c, err);
	deadline_t dl = qmpi_deadline_in(timeout_ms);
	c->received = false;
	for (;;) {
		json_object *m;
		int r = qmpi_read_msg(c, dl, "an event", &m, err);
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
		case MSG_OTHER:
			discard_stray(c, m);
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


