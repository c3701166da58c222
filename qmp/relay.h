/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The monitor relay's transport: one manager connection (libvirt, Proxmox,
 * a script) relayed to one fresh connection to QEMU's monitor.  It knows
 * nothing of policy: a hook may replace a whole client message.
 *
 * Client to QEMU: messages framed whole (qmp/frame.h) from bytes read with
 * MSG_PEEK (SO_PEEK_OFF): a unit (a message, and the bytes between messages
 * that follow it) is sent in one sendmsg together with the fds that came with
 * it, as its original bytes or, when the hook returns a replacement, as that
 * object's JSON text, and only then consumed from the client socket.
 * QEMU to client: byte for byte by splice() through a pipe, in order,
 * nothing held in the process's memory.
 *
 * So that another process can take a session over when this one is killed
 * (the relay's standby, launcher/vm/relay-ha.c), everything the session
 * needs lives in the kernel (sockets, the pipe) or in struct
 * qmp_relay_session, which the caller may place in shared memory: the fds
 * and the step of the unit in flight.  qmp_relay_session_run() starts by
 * finishing whatever step it finds there:
 *   IDLE, PEEKED, REWRITTEN   nothing reached QEMU: read the unit again and
 *                             send it (QEMU answers it once)
 *   SENDING, SENT             QEMU has it: consume it from the client
 *                             (SO_PEEK_OFF minus peek_after bytes), never
 *                             send it twice
 *   CONSUMED                  done
 * A unit that fits one socket buffer segment goes out in one non-blocking
 * sendmsg that the kernel queues whole or not at all, and a SIGKILL during
 * that call takes effect when it returns: so SENDING counts as sent.  A
 * larger unit (over ~100 KiB, which no manager sends) killed mid-way leaves
 * QEMU part of it; that is logged.
 *
 * Test hook: KL_TEST_RELAY_STALL=STEP:MS makes a unit whose bytes contain
 * "kl-stall" wait MS ms after STEP (peeked, rewritten, sent, consumed),
 * logging "relay: stall at STEP" first, so a test can kill it there;
 * KL_TEST_RELAY_STALL=MS does the same at the step a unit names as
 * "kl-stall-STEP". */
#ifndef KL_QMP_RELAY_H
#define KL_QMP_RELAY_H

#include <stddef.h>
#include <json-c/json.h>
#include "common/error.h"

struct qmp_relay_hooks {
	/* A whole client message that parsed as a JSON object (borrowed):
	 * return a new object to send instead (the relay puts it), or NULL
	 * to send the bytes as they came.  It runs inside the relay loop:
	 * whatever may crash or block must be isolated by the hook itself. */
	json_object *(*rewrite)(void *ctx, json_object *msg);
	void *ctx;
	/* Optional: fds the loop also polls for POLLIN (up to max), and what to
	 * call when one is readable or the time watch_ms returned (asked before
	 * each wait) passed; -1 or no watch_ms: only when an fd is readable, so
	 * an idle relay sleeps until something happens. */
	size_t (*watch_fds)(void *ctx, int *fds, size_t max);
	void (*watched)(void *ctx);
	int (*watch_ms)(void *ctx);
};

enum qmp_relay_end {
	QMP_RELAY_CLIENT_CLOSED = 0,
	QMP_RELAY_QEMU_CLOSED = 1,
};

enum qmp_relay_step {
	QMP_RELAY_IDLE = 0,
	QMP_RELAY_PEEKED,
	QMP_RELAY_REWRITTEN,
	QMP_RELAY_SENDING,
	QMP_RELAY_SENT,
	QMP_RELAY_CONSUMED,
};

/* One session: may live in memory shared with a standby process.  An fd is
 * recorded before it is used and set to -1 before it is closed. */
struct qmp_relay_session {
	int cfd, qfd;            /* the client's connection, ours to QEMU */
	int pipe_r, pipe_w;      /* QEMU's bytes on their way to the client */
	int step;                /* enum qmp_relay_step of the unit in flight */
	int peek_after;          /* SO_PEEK_OFF once the unit is consumed */
	int atomic;              /* the unit goes out in one sendmsg */
	size_t out_len, sent;    /* bytes of the unit as sent, and sent so far */
	unsigned long long units;  /* units relayed (for logs and tests) */
};

/* The step's name ("peeked", ...). */
const char *qmp_relay_step_name(int step);

/* A session on client_fd and qemu_fd (taken over): makes the pipe. */
int qmp_relay_session_open(struct qmp_relay_session *s, int client_fd, int qemu_fd, struct kl_error *err);
/* The pipe, if the session has none yet (taken over mid-open). */
int qmp_relay_session_pipe(struct qmp_relay_session *s, struct kl_error *err);
/* Close every fd of the session (each set to -1 first). */
void qmp_relay_session_close(struct qmp_relay_session *s);

/* Bytes peeked ahead of what was sent before the relay stops reading. */
#define QMP_RELAY_HIGH_WATER (8 * 1024 * 1024)
/* How long the relay keeps delivering to one side after the other closed. */
#define QMP_RELAY_DRAIN_MS 5000

/* Relay until one side closes, first finishing the step recorded in s.
 * What QEMU already sent is delivered to the client first (within
 * QMP_RELAY_DRAIN_MS); when the client closes, what it sent goes to QEMU.
 * hooks may be NULL.  No fd is closed.  Returns which side ended, or -1 with
 * err on an I/O error. */
int qmp_relay_session_run(struct qmp_relay_session *s, const struct qmp_relay_hooks *hooks, struct kl_error *err);

/* The same on a private session (client_fd and qemu_fd stay open). */
int qmp_relay_run(int client_fd, int qemu_fd, const struct qmp_relay_hooks *hooks, struct kl_error *err);

#endif
