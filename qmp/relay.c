/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "qmp/relay.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "qmp/frame.h"
#include "qmp/qmp.h"

/* SCM_MAX_FD in the kernel: the most fds one message can carry. */
#define MAX_FDS_PER_MSG 253
/* More than one socket buffer segment of a client (sndbuf/2 at most 212 KiB
 * for an unprivileged writer): a peek never stops inside a segment, so the
 * fds of a segment are seen once. */
#define PEEK_CHUNK (256 * 1024)
/* Bytes between messages that ride with the message before them. */
#define UNIT_TAIL_MAX 4096
/* QEMU refuses deeper JSON (json-streamer MAX_NESTING); so does our parse. */
#define QMP_RELAY_MAX_NESTING 1024
/* QEMU's bytes held in the kernel on their way to the client. */
#define PIPE_SIZE (1024 * 1024)

static const char *const step_names[] = { "idle", "peeked", "rewritten", "sending", "sent", "consumed" };

const char *qmp_relay_step_name(int step)
{
	return step >= 0 && step <= QMP_RELAY_CONSUMED ? step_names[step] : "?";
}

/* ---- the test hook: KL_TEST_RELAY_STALL=STEP:MS ---- */

static int stall_step = -1, stall_ms;

static void stall_init(void)
{
	static bool done;
	const char *e = getenv("KL_TEST_RELAY_STALL");
	if (done || !e)
		return;
	done = true;
	stall_ms = atoi(e); /* "MS": the step is named in the unit, kl-stall-STEP */
	for (int i = QMP_RELAY_PEEKED; i <= QMP_RELAY_CONSUMED; i++) {
		size_t n = strlen(step_names[i]);
		if (strncmp(e, step_names[i], n) == 0 && e[n] == ':') {
			stall_step = i;
			stall_ms = atoi(e + n + 1);
		}
	}
}

/* The step a unit stalls at, -1 for none. */
static int stall_at(const char *b, size_t len)
{
	if (stall_ms <= 0 || !len)
		return -1;
	const char *m = memmem(b, len, "kl-stall", 8);
	if (!m || stall_step >= 0)
		return m ? stall_step : -1;
	size_t rest = len - (size_t)(m - b) - 8;
	for (int i = QMP_RELAY_PEEKED; i <= QMP_RELAY_CONSUMED; i++) {
		size_t n = strlen(step_names[i]);
		if (rest > n && m[8] == '-' && strncmp(m + 9, step_names[i], n) == 0)
			return i;
	}
	return -1;
}

/* ---- sessions ---- */

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int qmp_relay_session_pipe(struct qmp_relay_session *s, struct kl_error *err)
{
	if (s->pipe_r >= 0 && s->pipe_w >= 0)
		return 0;
	int p[2];
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return kl_error_errno(err, errno, "relay: pipe");
	s->pipe_r = p[0];
	s->pipe_w = p[1];
	fcntl(p[1], F_SETPIPE_SZ, PIPE_SIZE); /* else the default 64 KiB */
	return 0;
}

int qmp_relay_session_open(struct qmp_relay_session *s, int client_fd, int qemu_fd, struct kl_error *err)
{
	memset(s, 0, sizeof *s);
	s->pipe_r = s->pipe_w = -1;
	s->cfd = client_fd;
	s->qfd = qemu_fd;
	return qmp_relay_session_pipe(s, err);
}

static void clear_close(int *fd)
{
	int f = *fd;
	*fd = -1;
	if (f >= 0)
		close(f);
}

void qmp_relay_session_close(struct qmp_relay_session *s)
{
	clear_close(&s->pipe_w);
	clear_close(&s->pipe_r);
	clear_close(&s->qfd);
	clear_close(&s->cfd);
	s->step = QMP_RELAY_IDLE;
}

/* ---- the relay ---- */

struct frameq {
	struct qmp_frame *v;
	size_t n, cap;
};

/* The unit in flight: frames taken from the front of the peeked bytes. */
struct unit {
	bool active;
	int stall;          /* the step it waits at (test hook), -1: none */
	char *out;          /* what QEMU gets */
	size_t out_len;
	size_t in_len;      /* what it was in the client's stream */
	int *fds;
	size_t nfds;
};

struct relay {
	struct qmp_relay_session *s;
	const struct qmp_relay_hooks *hooks;
	struct qmp_framer *framer;
	struct frameq pend;   /* peeked, framed, not in a unit yet */
	struct unit u;
	size_t peeked;        /* peeked and not consumed: SO_PEEK_OFF */
	size_t seg_max;       /* the largest unit one sendmsg queues whole */
	size_t pipe_bytes, pipe_cap;  /* in the pipe; what it holds (F_GETPIPE_SZ) */
	bool pipe_full;       /* a splice into it found no room: wait for the client */
	bool client_eof, qemu_eof;
	char *buf;
};

static void frameq_push(struct frameq *q, struct qmp_frame *fr)
{
	if (q->n == q->cap) {
		q->cap = q->cap ? 2 * q->cap : 16;
		q->v = xrealloc(q->v, q->cap * sizeof *q->v);
	}
	q->v[q->n++] = *fr;
	memset(fr, 0, sizeof *fr);
}

static void frameq_take(struct frameq *q, struct qmp_frame *out)
{
	*out = q->v[0];
	memmove(q->v, q->v + 1, (q->n - 1) * sizeof *q->v);
	q->n--;
}

static void close_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static void unit_clear(struct unit *u)
{
	int *fds = u->fds;
	size_t n = u->nfds;
	u->fds = NULL;
	u->nfds = 0;
	close_fds(fds, n);
	free(fds);
	free(u->out);
	memset(u, 0, sizeof *u);
}

static void stall(const struct relay *r, int step)
{
	if (step != r->u.stall)
		return;
	kl_info("relay: stall at %s", qmp_relay_step_name(step));
	struct timespec ts = { stall_ms / 1000, (long)(stall_ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* A whole message the hook may replace. */
static void maybe_rewrite(struct qmp_frame *fr, const struct qmp_relay_hooks *hooks)
{
	if (!hooks || !hooks->rewrite || !fr->whole)
		return;
	json_tokener *tok = json_tokener_new_ex(QMP_RELAY_MAX_NESTING);
	if (!tok)
		return;
	json_object *msg = json_tokener_parse_ex(tok, fr->bytes, (int)fr->len);
	bool complete = msg && json_tokener_get_error(tok) == json_tokener_success &&
			json_tokener_get_parse_end(tok) == fr->len;
	json_tokener_free(tok);
	if (!complete || !json_object_is_type(msg, json_type_object)) {
		json_object_put(msg);
		return;
	}
	json_object *repl = hooks->rewrite(hooks->ctx, msg);
	json_object_put(msg);
	if (!repl)
		return;
	const char *text = json_object_to_json_string_ext(repl, JSON_C_TO_STRING_PLAIN);
	free(fr->bytes);
	fr->len = strlen(text);
	fr->bytes = xstrndup(text, fr->len);
	json_object_put(repl);
}

static void append(struct unit *u, const char *b, size_t n)
{
	u->out = xrealloc(u->out, u->out_len + n + 1);
	memcpy(u->out + u->out_len, b, n);
	u->out_len += n;
}

/* The next unit from the peeked frames: the first frame (its fds the
 * unit's), then the fd-less bytes between messages after it. */
static void form_unit(struct relay *r)
{
	struct unit *u = &r->u;
	struct qmp_frame fr;
	frameq_take(&r->pend, &fr);
	u->active = true;
	u->in_len = fr.len;
	u->fds = fr.fds;
	u->nfds = fr.nfds;
	fr.fds = NULL;
	fr.nfds = 0;
	u->stall = stall_at(fr.bytes, fr.len);
	r->s->sent = 0;
	r->s->step = QMP_RELAY_PEEKED;
	stall(r, QMP_RELAY_PEEKED);
	maybe_rewrite(&fr, r->hooks);
	append(u, fr.bytes, fr.len);
	qmp_frame_clear(&fr);
	while (r->pend.n && !r->pend.v[0].whole && !r->pend.v[0].nfds && r->pend.v[0].len < UNIT_TAIL_MAX) {
		frameq_take(&r->pend, &fr);
		u->in_len += fr.len;
		append(u, fr.bytes, fr.len);
		qmp_frame_clear(&fr);
	}
	r->s->step = QMP_RELAY_REWRITTEN;
	stall(r, QMP_RELAY_REWRITTEN);
}

/* Read and drop n bytes the client sent (QEMU has them), closing the fds
 * that come with them (QEMU got the copies we peeked). */
static int consume(struct relay *r, size_t n, struct kl_error *err)
{
	while (n) {
		union {
			char buf[CMSG_SPACE(MAX_FDS_PER_MSG * sizeof(int))];
			struct cmsghdr align;
		} cm;
		struct iovec iov = { r->buf, n < PEEK_CHUNK ? n : PEEK_CHUNK };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof cm.buf };
		ssize_t got = recvmsg(r->s->cfd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return kl_error_errno(err, got < 0 ? errno : EPROTO, "relay: consuming %zu bytes", n);
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
				close_fds((int *)CMSG_DATA(c), (c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		n -= (size_t)got;
		r->peeked = r->peeked >= (size_t)got ? r->peeked - (size_t)got : 0;
	}
	return 0;
}

/* Send the unit (whole, or on from where it stopped).  1 when it is done,
 * 0 when QEMU's socket is full, -1 on error. */
static int send_unit(struct relay *r, struct kl_error *err)
{
	struct qmp_relay_session *s = r->s;
	struct unit *u = &r->u;
	while (s->sent < u->out_len) {
		struct iovec iov = { u->out + s->sent, u->out_len - s->sent };
		union {
			char buf[CMSG_SPACE(MAX_FDS_PER_MSG * sizeof(int))];
			struct cmsghdr align;
		} cm;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		size_t nfds = u->nfds < MAX_FDS_PER_MSG ? u->nfds : MAX_FDS_PER_MSG;
		if (s->sent == 0 && nfds) {
			memset(cm.buf, 0, sizeof cm.buf);
			mh.msg_control = cm.buf;
			mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
			memcpy(CMSG_DATA(c), u->fds, nfds * sizeof(int));
		}
		s->out_len = u->out_len;
		s->atomic = u->out_len <= r->seg_max;
		s->peek_after = (int)(r->peeked - u->in_len);
		s->step = QMP_RELAY_SENDING;
		ssize_t w = sendmsg(s->qfd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (s->sent == 0)
				s->step = QMP_RELAY_REWRITTEN; /* nothing went */
			return 0;
		}
		if (w < 0)
			return kl_error_errno(err, errno, "relay: write");
		s->sent += (size_t)w;
		if (u->nfds) {
			int *fds = u->fds; /* in flight now: our copies go */
			size_t n = u->nfds;
			u->fds = NULL;
			u->nfds = 0;
			close_fds(fds, n);
			free(fds);
		}
	}
	s->step = QMP_RELAY_SENT;
	stall(r, QMP_RELAY_SENT);
	if (consume(r, u->in_len, err) < 0)
		return -1;
	s->step = QMP_RELAY_CONSUMED;
	stall(r, QMP_RELAY_CONSUMED);
	s->step = QMP_RELAY_IDLE;
	s->units++;
	unit_clear(u);
	return 1;
}

static void pull_frames(struct relay *r)
{
	struct qmp_frame fr;
	while (qmp_framer_next(r->framer, &fr)) {
		if (fr.len == 0) {
			qmp_frame_clear(&fr); /* fds left at the end of the stream cannot travel alone */
			continue;
		}
		frameq_push(&r->pend, &fr);
	}
}

/* Peek at what the client sent beyond what was peeked.  1: progress,
 * 0: nothing there, -1: error. */
static int peek_more(struct relay *r, struct kl_error *err)
{
	union {
		char buf[CMSG_SPACE(MAX_FDS_PER_MSG * sizeof(int))];
		struct cmsghdr align;
	} cm;
	int fds[MAX_FDS_PER_MSG];
	size_t nfds = 0;
	struct iovec iov = { r->buf, PEEK_CHUNK };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof cm.buf };
	ssize_t n;
	do
		n = recvmsg(r->s->cfd, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n < 0)
		return kl_error_errno(err, errno, "relay: read");
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		memcpy(fds + nfds, CMSG_DATA(c), k * sizeof(int));
		nfds += k;
	}
	qmp_framer_feed(r->framer, r->buf, (size_t)n, fds, nfds);
	r->peeked += (size_t)n;
	if (n == 0) {
		r->client_eof = true;
		qmp_framer_finish(r->framer);
	}
	pull_frames(r);
	return 1;
}

/* ---- QEMU to client ---- */

static void pipe_level(struct relay *r)
{
	int n = 0;
	r->pipe_bytes = ioctl(r->s->pipe_r, FIONREAD, &n) == 0 && n > 0 ? (size_t)n : 0;
}

static int from_qemu(struct relay *r, struct kl_error *err)
{
	ssize_t n = splice(r->s->qfd, NULL, r->s->pipe_w, NULL, r->pipe_cap, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
	if (n < 0 && errno == EAGAIN) {
		/* QEMU's socket was readable: the pipe has no free slot (each
		 * splice takes whole slots, so bytes alone do not tell). */
		r->pipe_full = r->pipe_bytes > 0;
		return 0;
	}
	if (n < 0 && errno == EINTR)
		return 0;
	if (n < 0)
		return kl_error_errno(err, errno, "relay: read from QEMU");
	if (n == 0)
		r->qemu_eof = true;
	r->pipe_bytes += (size_t)n;
	return 0;
}

static int to_client(struct relay *r, struct kl_error *err)
{
	while (r->pipe_bytes) {
		ssize_t n = splice(r->s->pipe_r, NULL, r->s->cfd, NULL, r->pipe_bytes, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return kl_error_errno(err, n < 0 ? errno : EPIPE, "relay: write");
		r->pipe_bytes -= (size_t)n;
		r->pipe_full = false;
	}
	return 0;
}

/* QEMU closed: deliver what it sent before. */
static void drain_to_client(struct relay *r)
{
	long long end = kl_monotonic_ms() + QMP_RELAY_DRAIN_MS;
	struct kl_error e = KL_ERROR_INIT;
	pipe_level(r);
	while (r->pipe_bytes && kl_monotonic_ms() < end) {
		if (to_client(r, &e) < 0)
			break;
		struct pollfd p = { r->s->cfd, POLLOUT, 0 };
		if (r->pipe_bytes)
			poll(&p, 1, (int)(end - kl_monotonic_ms() > 0 ? end - kl_monotonic_ms() : 0));
	}
	kl_error_clear(&e);
}

/* ---- taking a session over ---- */

/* Finish the step recorded in s, then read the client's stream again from
 * what it has not consumed. */
static int recover(struct relay *r, struct kl_error *err)
{
	struct qmp_relay_session *s = r->s;
	int off = -1;
	socklen_t len = sizeof off;
	if (getsockopt(s->cfd, SOL_SOCKET, SO_PEEK_OFF, &off, &len) < 0)
		off = -1;
	if (s->step == QMP_RELAY_SENDING || s->step == QMP_RELAY_SENT) {
		if (s->step == QMP_RELAY_SENDING && !s->atomic)
			kl_warn("relay: a %zu-byte message was cut after %zu bytes: QEMU has part of it", s->out_len, s->sent);
		size_t left = off > s->peek_after ? (size_t)(off - s->peek_after) : 0;
		kl_info("relay: taking over: QEMU has the message in flight, consuming its %zu bytes", left);
		r->peeked = (size_t)(off > 0 ? off : 0);
		if (left && consume(r, left, err) < 0)
			return -1;
	} else if (s->step != QMP_RELAY_IDLE && s->step != QMP_RELAY_CONSUMED) {
		kl_info("relay: taking over: the message in flight (%s) had not reached QEMU: sending it now",
			qmp_relay_step_name(s->step));
	}
	s->step = QMP_RELAY_IDLE;
	r->peeked = 0;
	int zero = 0;
	if (setsockopt(s->cfd, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero) < 0)
		return kl_error_errno(err, errno, "relay: SO_PEEK_OFF");
	return 0;
}

/* ---- the loop ---- */

#define MAX_WATCH 8

static void relay_free(struct relay *r)
{
	qmp_framer_free(r->framer);
	for (size_t i = 0; i < r->pend.n; i++)
		qmp_frame_clear(&r->pend.v[i]);
	free(r->pend.v);
	unit_clear(&r->u);
	free(r->buf);
	free(r);
}

/* One round of client-to-QEMU work that needs no waiting. */
static int client_work(struct relay *r, bool cin, struct kl_error *err)
{
	if (cin && !r->u.active && !r->pend.n && !r->client_eof && peek_more(r, err) < 0)
		return -1;
	for (;;) {
		if (!r->u.active && r->pend.n)
			form_unit(r);
		if (!r->u.active)
			return 0;
		int d = send_unit(r, err); /* non-blocking: it tells whether QEMU has room */
		if (d <= 0)
			return d;
	}
}

static int loop(struct relay *r, struct kl_error *err)
{
	const struct qmp_relay_hooks *h = r->hooks;
	long long drain_end = 0;
	for (;;) {
		if (r->client_eof && !r->u.active && !r->pend.n)
			return QMP_RELAY_CLIENT_CLOSED;
		if (r->client_eof && !drain_end)
			drain_end = kl_monotonic_ms() + QMP_RELAY_DRAIN_MS;
		if (drain_end && kl_monotonic_ms() > drain_end)
			return QMP_RELAY_CLIENT_CLOSED;
		bool want_cin = !r->u.active && !r->pend.n && !r->client_eof;
		bool stale = false; /* all the client sent is peeked: POLLIN would not stop */
		if (want_cin && qmp_framer_pending(r->framer)) {
			int inq = 0;
			stale = ioctl(r->s->cfd, FIONREAD, &inq) == 0 && (size_t)inq <= r->peeked;
		}
		struct pollfd p[2 + MAX_WATCH] = {
			{ r->s->cfd, (short)((want_cin ? (stale ? POLLRDHUP : POLLIN) : 0) | (r->pipe_bytes ? POLLOUT : 0)), 0 },
			{ r->s->qfd, (short)((r->pipe_bytes < r->pipe_cap && !r->pipe_full ? POLLIN : 0) | (r->u.active ? POLLOUT : 0)), 0 },
		};
		int wfds[MAX_WATCH];
		size_t nw = h && h->watch_fds ? h->watch_fds(h->ctx, wfds, MAX_WATCH) : 0;
		for (size_t i = 0; i < nw; i++)
			p[2 + i] = (struct pollfd){ wfds[i], POLLIN, 0 };
		int timeout = stale ? 5 : h && h->watched && h->watch_ms ? h->watch_ms(h->ctx) : -1;
		if (drain_end)
			timeout = 50;
		int n = poll(p, 2 + nw, timeout);
		if (n < 0 && errno != EINTR)
			return kl_error_errno(err, errno, "relay: poll");
		bool woke = n == 0 || timeout == 0; /* watch_ms said now: even if an fd is ready too */
		for (size_t i = 0; n > 0 && i < nw; i++)
			woke |= p[2 + i].revents != 0;
		if (woke && h && h->watched)
			h->watched(h->ctx);
		if (n > 0 && (p[0].revents & (POLLHUP | POLLERR)) && !drain_end)
			drain_end = kl_monotonic_ms() + QMP_RELAY_DRAIN_MS; /* the client hung up */
		if (n <= 0 && !stale)
			continue;
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			if (from_qemu(r, err) < 0)
				return -1;
			if (r->qemu_eof) {
				drain_to_client(r);
				return QMP_RELAY_QEMU_CLOSED;
			}
		}
		if (r->pipe_bytes && to_client(r, err) < 0)
			return -1;
		bool cin = (p[0].revents & (POLLIN | POLLHUP | POLLERR | POLLRDHUP)) || stale;
		if (client_work(r, cin, err) < 0)
			return -1;
	}
}

int qmp_relay_session_run(struct qmp_relay_session *s, const struct qmp_relay_hooks *hooks, struct kl_error *err)
{
	stall_init();
	struct relay *r = xcalloc(1, sizeof *r);
	r->s = s;
	r->hooks = hooks;
	r->framer = qmp_framer_new(QMP_MAX_MESSAGE);
	r->buf = xmalloc(PEEK_CHUNK);
	set_nonblock(s->cfd);
	set_nonblock(s->qfd);
	int sndbuf = 0;
	socklen_t len = sizeof sndbuf;
	if (getsockopt(s->qfd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) < 0 || sndbuf < 4096)
		sndbuf = 4096;
	r->seg_max = (size_t)sndbuf / 2 - 64;
	int cap = fcntl(s->pipe_w, F_GETPIPE_SZ); /* F_SETPIPE_SZ may have been refused */
	r->pipe_cap = cap > 0 ? (size_t)cap : 65536;
	int ret = recover(r, err);
	if (ret == 0) {
		pipe_level(r);
		ret = loop(r, err);
	}
	relay_free(r);
	return ret;
}

int qmp_relay_run(int client_fd, int qemu_fd, const struct qmp_relay_hooks *hooks, struct kl_error *err)
{
	struct qmp_relay_session s;
	if (qmp_relay_session_open(&s, client_fd, qemu_fd, err) < 0)
		return -1;
	int ret = qmp_relay_session_run(&s, hooks, err);
	clear_close(&s.pipe_r);
	clear_close(&s.pipe_w);
	return ret;
}
