/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Inside the QMP client: the client's state and what qmp.c, qmp-wire.c and
 * qmp-connect.c share.  Not for use outside qmp/. */
#ifndef KL_QMP_INT_H
#define KL_QMP_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <json-c/json.h>
#include "common/error.h"
#include "qmp/qmp.h"


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


typedef int64_t deadline_t; /* CLOCK_MONOTONIC nanoseconds; -1: none */

/* ---- qmp-wire.c ---- */

/* Fill err (errnum, message) and return -1. */
int qmpi_qerr(struct kl_error *err, int errnum, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Same, and mark the client broken: every later call fails with this message. */
int qmpi_qbreak(struct qmp_client *c, struct kl_error *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
deadline_t qmpi_deadline_in(int timeout_ms);
bool qmpi_expired(deadline_t dl);
/* poll() fd for events until dl: 1 ready, 0 timed out, -1 error (errno). */
int qmpi_wait_fd(int fd, short events, deadline_t dl);
void qmpi_sleep_until(int64_t ns_deadline);
void qmpi_trace(struct qmp_client *c, const char *dir, const char *text);
int qmpi_send_msg(struct qmp_client *c, json_object *msg, const char *what, deadline_t dl, int timeout_ms,
		  struct kl_error *err);
int qmpi_read_msg(struct qmp_client *c, deadline_t dl, const char *what, json_object **out, struct kl_error *err);
const char *qmpi_json_type_word(json_object *o);

/* ---- qmp.c ---- */

json_object *qmpi_dequeue_event(struct qmp_client *c);
int qmpi_run_command(struct qmp_client *c, const char *command, json_object *args, deadline_t dl, int timeout_ms,
		     json_object **ret_out, struct kl_error *err);

#endif
