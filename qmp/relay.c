/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "qmp/relay.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/xalloc.h"
#include "qmp/frame.h"
#include "qmp/qmp.h"

/* SCM_MAX_FD in the kernel: the most fds one message can carry. */
#define MAX_FDS_PER_MSG 253
#define READ_CHUNK 65536
/* QEMU refuses deeper JSON (json-streamer MAX_NESTING); so does our parse. */
#define QMP_RELAY_MAX_NESTING 1024

/* What waits to be written toward one side: frames, the first of which may
 * be partly written (its fds went with its first byte). */
struct outq {
	struct qmp_frame *v;
	size_t n, cap;
	size_t off;     /* bytes of v[0] already written */
	size_t bytes;   /* bytes not yet written, in all frames */
};

static void outq_push(struct outq *q, struct qmp_frame *fr)
{
	if (q->n == q->cap) {
		q->cap = q->cap ? 2 * q->cap : 16;
		q->v = xrealloc(q->v, q->cap * sizeof *q->v);
	}
	q->v[q->n++] = *fr;
	q->bytes += fr->len;
	memset(fr, 0, sizeof *fr);
}

static void outq_pop(struct outq *q)
{
	qmp_frame_clear(&q->v[0]);
	memmove(q->v, q->v + 1, (q->n - 1) * sizeof *q->v);
	q->n--;
	q->off = 0;
}

static void outq_free(struct outq *q)
{
	while (q->n)
		outq_pop(q);
	free(q->v);
}

/* Write what can be written now.  0: progress or would block; -1: error. */
static int outq_write(struct outq *q, int fd, struct kl_error *err)
{
	while (q->n) {
		struct qmp_frame *fr = &q->v[0];
		/* Fds without bytes (left at the end of a stream) cannot travel
		 * alone: they are closed with their frame. */
		if (fr->len == 0) {
			outq_pop(q);
			continue;
		}
		struct iovec iov = { fr->bytes + q->off, fr->len - q->off };
		union {
			char buf[CMSG_SPACE(MAX_FDS_PER_MSG * sizeof(int))];
			struct cmsghdr align;
		} cm;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		/* More than one message can carry never came from one client message. */
		size_t nfds = fr->nfds < MAX_FDS_PER_MSG ? fr->nfds : MAX_FDS_PER_MSG;
		if (q->off == 0 && nfds) {
			memset(cm.buf, 0, sizeof cm.buf); /* the header's padding goes out too */
			mh.msg_control = cm.buf;
			mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
			memcpy(CMSG_DATA(c), fr->fds, nfds * sizeof(int));
		}
		ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (w < 0)
			return kl_error_errno(err, errno, "relay: write");
		q->bytes -= (size_t)w;
		q->off += (size_t)w;
		if (fr->nfds) {
			/* They are in flight now: our copies go. */
			for (size_t i = 0; i < fr->nfds; i++)
				close(fr->fds[i]);
			fr->nfds = 0;
		}
		if (q->off == fr->len)
			outq_pop(q);
	}
	return 0;
}

/* Read once.  Returns bytes read (0 at EOF), -2 when nothing was there, -1 on error. */
static ssize_t read_with_fds(int fd, char *buf, size_t cap, int *fds, size_t *nfds, struct kl_error *err)
{
	union {
		char buf[CMSG_SPACE(MAX_FDS_PER_MSG * sizeof(int))];
		struct cmsghdr align;
	} cm;
	struct iovec iov = { buf, cap };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof cm.buf };
	*nfds = 0;
	ssize_t r;
	do
		r = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return -2;
	if (r < 0)
		return kl_error_errno(err, errno, "relay: read");
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		memcpy(fds + *nfds, CMSG_DATA(c), n * sizeof(int));
		*nfds += n;
	}
	return r;
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

struct relay {
	int cfd, qfd;
	const struct qmp_relay_hooks *hooks;
	struct qmp_framer *framer;
	struct outq to_qemu, to_client;
	char buf[READ_CHUNK];
};

/* From the client: frame, maybe rewrite, queue toward QEMU.  1 at EOF. */
static int from_client(struct relay *r, struct kl_error *err)
{
	int fds[MAX_FDS_PER_MSG];
	size_t nfds;
	ssize_t n = read_with_fds(r->cfd, r->buf, sizeof r->buf, fds, &nfds, err);
	if (n == -1)
		return -1;
	if (n == -2)
		return 0;
	qmp_framer_feed(r->framer, r->buf, (size_t)(n > 0 ? n : 0), fds, nfds);
	if (n == 0)
		qmp_framer_finish(r->framer);
	struct qmp_frame fr;
	while (qmp_framer_next(r->framer, &fr)) {
		maybe_rewrite(&fr, r->hooks);
		outq_push(&r->to_qemu, &fr);
	}
	return n == 0;
}

/* From QEMU: byte for byte toward the client.  1 at EOF. */
static int from_qemu(struct relay *r, struct kl_error *err)
{
	int fds[MAX_FDS_PER_MSG];
	size_t nfds;
	ssize_t n = read_with_fds(r->qfd, r->buf, sizeof r->buf, fds, &nfds, err);
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]); /* QEMU never sends fds; none are passed on */
	if (n == -1)
		return -1;
	if (n <= 0)
		return n == 0;
	struct qmp_frame fr = { .bytes = xmalloc((size_t)n), .len = (size_t)n };
	memcpy(fr.bytes, r->buf, (size_t)n);
	outq_push(&r->to_client, &fr);
	return 0;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* After one side closed: deliver what is queued toward the other. */
static void drain(struct outq *q, int fd)
{
	long long end = now_ms() + QMP_RELAY_DRAIN_MS;
	struct kl_error e = KL_ERROR_INIT;
	while (q->n && now_ms() < end) {
		if (outq_write(q, fd, &e) < 0)
			break;
		if (!q->n)
			break;
		struct pollfd p = { fd, POLLOUT, 0 };
		poll(&p, 1, (int)(end - now_ms() > 0 ? end - now_ms() : 0));
	}
	kl_error_clear(&e);
}

static int relay_loop(struct relay *r, struct kl_error *err)
{
	for (;;) {
		struct pollfd p[2] = {
			{ r->cfd, r->to_qemu.bytes < QMP_RELAY_HIGH_WATER ? POLLIN : 0, 0 },
			{ r->qfd, r->to_client.bytes < QMP_RELAY_HIGH_WATER ? POLLIN : 0, 0 },
		};
		if (r->to_client.n)
			p[0].events |= POLLOUT;
		if (r->to_qemu.n)
			p[1].events |= POLLOUT;
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return kl_error_errno(err, errno, "relay: poll");
		}
		if ((p[0].revents & POLLOUT) && outq_write(&r->to_client, r->cfd, err) < 0)
			return -1;
		if ((p[1].revents & POLLOUT) && outq_write(&r->to_qemu, r->qfd, err) < 0)
			return -1;
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			int end = from_qemu(r, err);
			if (end < 0)
				return -1;
			if (end) {
				drain(&r->to_client, r->cfd);
				return QMP_RELAY_QEMU_CLOSED;
			}
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			int end = from_client(r, err);
			if (end < 0)
				return -1;
			if (end) {
				drain(&r->to_qemu, r->qfd);
				return QMP_RELAY_CLIENT_CLOSED;
			}
		}
	}
}

int qmp_relay_run(int client_fd, int qemu_fd, const struct qmp_relay_hooks *hooks, struct kl_error *err)
{
	struct relay *r = xcalloc(1, sizeof *r);
	r->cfd = client_fd;
	r->qfd = qemu_fd;
	r->hooks = hooks;
	r->framer = qmp_framer_new(QMP_MAX_MESSAGE);
	int ret = relay_loop(r, err);
	qmp_framer_free(r->framer);
	outq_free(&r->to_qemu);
	outq_free(&r->to_client);
	free(r);
	return ret;
}
