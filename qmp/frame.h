/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Framing a QMP client's byte stream into whole messages, keeping the exact
 * bytes and the file descriptors that came with them: what the monitor relay
 * needs to forward every message byte for byte (or rewritten, when whole) and
 * each SCM_RIGHTS fd with the very message that carried it.
 *
 *   struct qmp_framer *f = qmp_framer_new(QMP_MAX_MESSAGE);
 *   qmp_framer_feed(f, buf, n, fds, nfds);   (per recvmsg; the fds are taken over)
 *   struct qmp_frame fr;
 *   while (qmp_framer_next(f, &fr)) { ...forward fr.bytes with fr.fds...; qmp_frame_clear(&fr); }
 *
 * Boundaries follow QEMU's JSON streamer (qobject/json-streamer.c): a message
 * ends where the nesting of {} and [] outside strings ('...' and "...", with
 * backslash escapes) returns to zero.  Bytes outside any object or array
 * (whitespace, CRLF, garbage, top-level scalars) are passed on as frames that
 * are not whole; so is a message longer than the limit, from the point where
 * it crossed it, so that memory stays bounded and QEMU still sees every byte.
 *
 * File descriptors: libvirt sends one command per sendmsg with its fd, and
 * QEMU drops fds it has not claimed when the next ones arrive, so fds must
 * reach QEMU with the bytes of the command that carried them.  A recvmsg
 * returns the fds of the last segment it read (the kernel joins a writer's
 * segments until one that carries fds), and a client sends a command's fds
 * with its first byte: so fds belong to the last message that starts in the
 * bytes read with them; if none starts there, to the message being read,
 * or between messages to the next message that starts. */
#ifndef KL_QMP_FRAME_H
#define KL_QMP_FRAME_H

#include <stdbool.h>
#include <stddef.h>

struct qmp_frame {
	char *bytes;
	size_t len;
	int *fds;        /* owned: closed by qmp_frame_clear unless taken (set to -1) */
	size_t nfds;
	bool whole;      /* a complete top-level object or array, under the size limit */
};

struct qmp_framer;

struct qmp_framer *qmp_framer_new(size_t max_message);
void qmp_framer_free(struct qmp_framer *f);
static inline void qmp_framer_freep(struct qmp_framer **f) { qmp_framer_free(*f); }
#define _cleanup_framer_ __attribute__((cleanup(qmp_framer_freep)))

/* Bytes read by one recvmsg and the fds that came with it (taken over). */
void qmp_framer_feed(struct qmp_framer *f, const char *buf, size_t len, const int *fds, size_t nfds);
/* The next frame ready to forward: 1 with *out filled, 0 when none is. */
int qmp_framer_next(struct qmp_framer *f, struct qmp_frame *out);
/* At end of stream: queue what is left (an unfinished message, fds still
 * waiting for a message) as a frame that is not whole; drain with _next. */
void qmp_framer_finish(struct qmp_framer *f);
/* Bytes buffered and not yet handed out. */
size_t qmp_framer_pending(const struct qmp_framer *f);

/* Free the bytes and close the fds still owned (entries not set to -1). */
void qmp_frame_clear(struct qmp_frame *fr);

#endif
