/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The monitor relay's transport: framing (qmp/frame.c) and the relay loop
 * (qmp/relay.c) over socketpairs, with fds passed by SCM_RIGHTS. */
#include "unit.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "qmp/frame.h"
#include "qmp/relay.h"

/* All frames of one feed sequence, for checking. */
struct got {
	struct qmp_frame v[64];
	size_t n;
};

static void drain_frames(struct qmp_framer *f, struct got *g)
{
	struct qmp_frame fr;
	while (qmp_framer_next(f, &fr))
		if (g->n < 64)
			g->v[g->n++] = fr;
		else
			qmp_frame_clear(&fr);
}

static void got_free(struct got *g)
{
	for (size_t i = 0; i < g->n; i++)
		qmp_frame_clear(&g->v[i]);
	g->n = 0;
}

static size_t count_whole(const struct got *g)
{
	size_t n = 0;
	for (size_t i = 0; i < g->n; i++)
		n += g->v[i].whole;
	return n;
}

/* The frames' bytes put together. */
static char *joined(const struct got *g)
{
	struct strbuf b = STRBUF_INIT;
	for (size_t i = 0; i < g->n; i++)
		strbuf_append_len(&b, g->v[i].bytes ? g->v[i].bytes : "", g->v[i].len);
	return strbuf_steal(&b);
}

static const struct qmp_frame *nth_whole(const struct got *g, size_t k)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->v[i].whole && k-- == 0)
			return &g->v[i];
	return NULL;
}

static bool frame_is(const struct qmp_frame *fr, const char *text)
{
	return fr && fr->len == strlen(text) && memcmp(fr->bytes, text, fr->len) == 0;
}

static void test_whole_and_gaps(void)
{
	struct qmp_framer *f = qmp_framer_new(1 << 20);
	struct got g = { 0 };
	const char *in = "{\"execute\":\"qmp_capabilities\"}\r\n{\"execute\":\"query-status\",\"id\":1}\r\n";
	qmp_framer_feed(f, in, strlen(in), NULL, 0);
	drain_frames(f, &g);
	CHECK_INTEQ(count_whole(&g), 2);
	CHECK(frame_is(nth_whole(&g, 0), "{\"execute\":\"qmp_capabilities\"}"));
	CHECK(frame_is(nth_whole(&g, 1), "{\"execute\":\"query-status\",\"id\":1}"));
	char *all = joined(&g);
	CHECK_STREQ(all, in);
	free(all);
	got_free(&g);
	qmp_framer_free(f);
}

/* Byte by byte, and in every split of two chunks: the same frames. */
static void test_splits(void)
{
	const char *in = "{\"a\":\"}{\\\"\",'b':'}\\'',\"c\":[1,{\"d\":[]}]}\n[1,2]{}";
	size_t len = strlen(in);
	for (size_t cut = 0; cut <= len; cut++) {
		struct qmp_framer *f = qmp_framer_new(1 << 20);
		struct got g = { 0 };
		qmp_framer_feed(f, in, cut, NULL, 0);
		drain_frames(f, &g);
		qmp_framer_feed(f, in + cut, len - cut, NULL, 0);
		drain_frames(f, &g);
		CHECK_INTEQ(count_whole(&g), 3);
		CHECK(frame_is(nth_whole(&g, 0), "{\"a\":\"}{\\\"\",'b':'}\\'',\"c\":[1,{\"d\":[]}]}"));
		CHECK(frame_is(nth_whole(&g, 1), "[1,2]"));
		CHECK(frame_is(nth_whole(&g, 2), "{}"));
		char *all = joined(&g);
		CHECK_STREQ(all, in);
		free(all);
		got_free(&g);
		qmp_framer_free(f);
	}
	struct qmp_framer *f = qmp_framer_new(1 << 20);
	struct got g = { 0 };
	for (size_t i = 0; i < len; i++) {
		qmp_framer_feed(f, in + i, 1, NULL, 0);
		drain_frames(f, &g);
	}
	CHECK_INTEQ(count_whole(&g), 3);
	got_free(&g);
	qmp_framer_free(f);
}

static int a_fd(void)
{
	return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/* Fds read with bytes in which no message starts belong to the message
 * being read, or between messages to the next one; when messages start in
 * those bytes, to the last of them (a recvmsg returns the fds of its last
 * segment, and a client sends fds with a command's first byte). */
static void test_fd_attachment(void)
{
	struct qmp_framer *f = qmp_framer_new(1 << 20);
	struct got g = { 0 };
	int fd1 = a_fd(), fd2 = a_fd(), fd3 = a_fd(), fd4 = a_fd();
	qmp_framer_feed(f, "{\"execute\":\"getfd\",", 19, &fd1, 1);
	qmp_framer_feed(f, "\"id\":1", 6, &fd2, 1);                 /* mid-message, none starts: still the first */
	qmp_framer_feed(f, "}\r\n{\"execute\":", 15, &fd3, 1);       /* the second starts here: its fds */
	qmp_framer_feed(f, "\"x\"}\r\n", 6, NULL, 0);
	qmp_framer_feed(f, "\r\n", 2, &fd4, 1);                      /* between: for the next */
	qmp_framer_feed(f, "{\"execute\":\"add-fd\"}", 20, NULL, 0);
	drain_frames(f, &g);
	CHECK_INTEQ(count_whole(&g), 3);
	const struct qmp_frame *m0 = nth_whole(&g, 0), *m1 = nth_whole(&g, 1), *m2 = nth_whole(&g, 2);
	CHECK(m0 && m0->nfds == 2 && m0->fds[0] == fd1 && m0->fds[1] == fd2);
	CHECK(m1 && m1->nfds == 1 && m1->fds[0] == fd3);
	CHECK(m2 && m2->nfds == 1 && m2->fds[0] == fd4);
	for (size_t i = 0; i < g.n; i++)
		if (!g.v[i].whole)
			CHECK_INTEQ(g.v[i].nfds, 0);
	got_free(&g); /* closes the fds */
	CHECK(fcntl(fd1, F_GETFD) < 0 && fcntl(fd3, F_GETFD) < 0);
	qmp_framer_free(f);
}

/* A client that sends a command and, without waiting for the reply, one
 * with an fd: one recvmsg can return both (the kernel joins segments of one
 * writer until one carrying fds); the fd goes with the second, not with the
 * first. */
static void test_fd_pipelined(void)
{
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	const char *a = "{\"execute\":\"query-status\"}\r\n", *b = "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"x\"}}\r\n";
	CHECK(write(sv[0], a, strlen(a)) == (ssize_t)strlen(a));
	int fd = a_fd();
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cm;
	struct iovec iov = { (void *)b, strlen(b) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof cm.buf };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof fd);
	CHECK(sendmsg(sv[0], &mh, 0) == (ssize_t)strlen(b));
	close(fd);
	char buf[4096];
	int got_fds[4];
	size_t ngot = 0;
	struct iovec riov = { buf, sizeof buf };
	struct msghdr rmh = { .msg_iov = &riov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof cm.buf };
	ssize_t n = recvmsg(sv[1], &rmh, MSG_CMSG_CLOEXEC);
	for (struct cmsghdr *k = CMSG_FIRSTHDR(&rmh); k; k = CMSG_NXTHDR(&rmh, k))
		if (k->cmsg_type == SCM_RIGHTS && ngot < 4)
			memcpy(&got_fds[ngot++], CMSG_DATA(k), sizeof(int));
	CHECK_INTEQ(n, (ssize_t)(strlen(a) + strlen(b))); /* one read: both commands */
	CHECK_INTEQ(ngot, 1);
	struct qmp_framer *f = qmp_framer_new(1 << 20);
	struct got g = { 0 };
	qmp_framer_feed(f, buf, n > 0 ? (size_t)n : 0, got_fds, ngot);
	drain_frames(f, &g);
	const struct qmp_frame *m0 = nth_whole(&g, 0), *m1 = nth_whole(&g, 1);
	CHECK(m0 && m0->nfds == 0);
	CHECK(m1 && m1->nfds == 1);
	got_free(&g);
	qmp_framer_free(f);
	close(sv[0]);
	close(sv[1]);
}

/* Over the limit: passed on as it comes, never whole; the next one is whole. */
static void test_oversize_and_garbage(void)
{
	struct qmp_framer *f = qmp_framer_new(16);
	struct got g = { 0 };
	const char *in = "}garbage 12 \"{\" {\"execute\":\"a-long-command-name\",\"arguments\":{}}{\"x\":1}";
	qmp_framer_feed(f, in, strlen(in), NULL, 0);
	drain_frames(f, &g);
	CHECK_INTEQ(count_whole(&g), 1);
	CHECK(frame_is(nth_whole(&g, 0), "{\"x\":1}"));
	size_t biggest = 0;
	for (size_t i = 0; i < g.n; i++)
		if (g.v[i].len > biggest)
			biggest = g.v[i].len;
	CHECK(biggest <= 16);
	char *all = joined(&g);
	CHECK_STREQ(all, in);
	free(all);
	CHECK_INTEQ(qmp_framer_pending(f), 0);
	got_free(&g);
	qmp_framer_free(f);
}

static void test_finish(void)
{
	struct qmp_framer *f = qmp_framer_new(1 << 20);
	struct got g = { 0 };
	int fd = a_fd();
	qmp_framer_feed(f, "{\"execute\":", 11, &fd, 1);
	drain_frames(f, &g);
	CHECK_INTEQ(g.n, 0);
	CHECK_INTEQ(qmp_framer_pending(f), 11);
	qmp_framer_finish(f);
	drain_frames(f, &g);
	CHECK_INTEQ(g.n, 1);
	CHECK(g.n == 1 && !g.v[0].whole && g.v[0].len == 11 && g.v[0].nfds == 1);
	got_free(&g);
	qmp_framer_free(f);
}

/* ---- the relay loop ---- */

struct relay_thread {
	int client_side, qemu_side, ret;
	struct qmp_relay_hooks hooks;
};

static void *run_relay(void *arg)
{
	struct relay_thread *t = arg;
	struct kl_error err = KL_ERROR_INIT;
	t->ret = qmp_relay_run(t->client_side, t->qemu_side, &t->hooks, &err);
	kl_error_clear(&err);
	return NULL;
}

static json_object *rewrite_blockdev_add(void *ctx, json_object *msg)
{
	(void)ctx;
	json_object *ex;
	if (!json_object_object_get_ex(msg, "execute", &ex) || strcmp(json_object_get_string(ex), "blockdev-add") != 0)
		return NULL;
	json_object *r = json_object_new_object();
	json_object_object_add(r, "execute", json_object_new_string("blockdev-add"));
	json_object_object_add(r, "rewritten", json_object_new_boolean(1));
	return r;
}

static void send_with_fd(int sock, const char *text, int fd)
{
	struct iovec iov = { (void *)text, strlen(text) };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cm;
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (fd >= 0) {
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof cm.buf;
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof fd);
	}
	CHECK(sendmsg(sock, &mh, 0) == (ssize_t)strlen(text));
}

/* One recvmsg: the bytes (NUL-terminated) and the fd that came with them. */
static ssize_t recv_one(int sock, char *buf, size_t cap, int *fd)
{
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} cm;
	struct iovec iov = { buf, cap - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof cm.buf };
	*fd = -1;
	ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	buf[n > 0 ? n : 0] = '\0';
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_type == SCM_RIGHTS)
			memcpy(fd, CMSG_DATA(c), sizeof *fd);
	return n;
}

static void test_relay_end_to_end(void)
{
	int client[2], qemu[2], pipefd[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, client) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qemu) == 0);
	CHECK(pipe2(pipefd, O_CLOEXEC) == 0);
	struct relay_thread t = { client[1], qemu[1], -9, { rewrite_blockdev_add, NULL } };
	pthread_t th;
	pthread_create(&th, NULL, run_relay, &t);

	/* QEMU -> client: greeting and an event, byte for byte. */
	const char *greet = "{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n{\"event\": \"X\"}\r\n";
	CHECK(write(qemu[0], greet, strlen(greet)) == (ssize_t)strlen(greet));
	char buf[4096];
	size_t got = 0;
	while (got < strlen(greet)) {
		ssize_t n = read(client[0], buf + got, sizeof buf - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	CHECK_STREQ(buf, greet);

	/* Client -> QEMU: a getfd with its fd arrives as one message with the fd. */
	const char *getfd = "{\"execute\":\"getfd\",\"arguments\":{\"fdname\":\"f\"},\"id\":7}";
	send_with_fd(client[0], getfd, pipefd[1]);
	close(pipefd[1]);
	int fd = -1;
	ssize_t n = recv_one(qemu[0], buf, sizeof buf, &fd);
	CHECK(n == (ssize_t)strlen(getfd));
	CHECK_STREQ(buf, getfd);
	CHECK(fd >= 0);
	if (fd >= 0) {
		CHECK(write(fd, "z", 1) == 1); /* the very pipe the client sent */
		char c = 0;
		CHECK(read(pipefd[0], &c, 1) == 1 && c == 'z');
		close(fd);
	}
	close(pipefd[0]);

	/* A blockdev-add is replaced by the hook; the CRLF after it follows as it came. */
	send_with_fd(client[0], "{\"execute\": \"blockdev-add\", \"arguments\": {}}\r\n", -1);
	got = 0;
	const char *want = "{\"execute\":\"blockdev-add\",\"rewritten\":true}\r\n";
	while (got < strlen(want)) {
		ssize_t r = recv_one(qemu[0], buf + got, sizeof buf - got, &fd);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	CHECK_STREQ(buf, want);

	/* The client goes away: the relay says so. */
	close(client[0]);
	pthread_join(th, NULL);
	CHECK_INTEQ(t.ret, QMP_RELAY_CLIENT_CLOSED);
	close(client[1]);
	close(qemu[0]);
	close(qemu[1]);
}

/* Taking a session over: what QEMU receives after a relay died with the
 * unit A in flight at the given step (A peeked: SO_PEEK_OFF past it). */
static void takeover_case(int step, const char *want)
{
	int client[2], qemu[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, client) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qemu) == 0);
	const char *a = "{\"execute\":\"a\"}", *b = "{\"execute\":\"b\"}";
	CHECK(write(client[0], a, strlen(a)) == (ssize_t)strlen(a));
	CHECK(write(client[0], b, strlen(b)) == (ssize_t)strlen(b));
	shutdown(client[0], SHUT_WR);
	int off = (int)(strlen(a) + strlen(b)); /* the dead relay had peeked both */
	CHECK(setsockopt(client[1], SOL_SOCKET, SO_PEEK_OFF, &off, sizeof off) == 0);
	struct kl_error err = KL_ERROR_INIT;
	struct qmp_relay_session s;
	CHECK(qmp_relay_session_open(&s, client[1], qemu[1], &err) == 0);
	s.step = step;
	s.peek_after = (int)strlen(b);
	s.atomic = 1;
	CHECK_INTEQ(qmp_relay_session_run(&s, NULL, &err), QMP_RELAY_CLIENT_CLOSED);
	kl_error_clear(&err);
	char buf[256];
	ssize_t n = recv(qemu[0], buf, sizeof buf - 1, MSG_DONTWAIT);
	buf[n > 0 ? n : 0] = '\0';
	CHECK_STREQ(buf, want);
	CHECK_INTEQ(s.step, QMP_RELAY_IDLE);
	close(s.pipe_r);
	close(s.pipe_w);
	close(client[0]);
	close(client[1]);
	close(qemu[0]);
	close(qemu[1]);
}

static void test_relay_takeover(void)
{
	/* Not sent yet: A goes (once), then B. */
	takeover_case(QMP_RELAY_PEEKED, "{\"execute\":\"a\"}{\"execute\":\"b\"}");
	takeover_case(QMP_RELAY_REWRITTEN, "{\"execute\":\"a\"}{\"execute\":\"b\"}");
	/* QEMU had A: it is consumed, never sent again. */
	takeover_case(QMP_RELAY_SENDING, "{\"execute\":\"b\"}");
	takeover_case(QMP_RELAY_SENT, "{\"execute\":\"b\"}");
}

static void test_relay_qemu_closes(void)
{
	int client[2], qemu[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, client) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qemu) == 0);
	struct relay_thread t = { client[1], qemu[1], -9, { NULL, NULL } };
	pthread_t th;
	pthread_create(&th, NULL, run_relay, &t);
	const char *last = "{\"event\": \"SHUTDOWN\"}\r\n";
	CHECK(write(qemu[0], last, strlen(last)) == (ssize_t)strlen(last));
	close(qemu[0]);
	pthread_join(th, NULL);
	CHECK_INTEQ(t.ret, QMP_RELAY_QEMU_CLOSED);
	char buf[256];
	ssize_t n = read(client[0], buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = '\0';
	CHECK_STREQ(buf, last); /* delivered before the relay ended */
	close(client[0]);
	close(client[1]);
	close(qemu[1]);
}

/* The watch hooks: an idle loop waits with no timeout (watch_ms -1) and
 * calls watched only when a watched fd is readable. */
struct watch {
	int fd, ms;
	int asked, called; /* watch_ms and watched calls */
};

static size_t watch_fds(void *ctx, int *fds, size_t max)
{
	struct watch *w = ctx;
	if (max)
		fds[0] = w->fd;
	return max ? 1 : 0;
}

static void watch_called(void *ctx)
{
	struct watch *w = ctx;
	char c;
	if (read(w->fd, &c, 1) == 1)
		__atomic_add_fetch(&w->called, 1, __ATOMIC_SEQ_CST);
}

static int watch_ms(void *ctx)
{
	struct watch *w = ctx;
	__atomic_add_fetch(&w->asked, 1, __ATOMIC_SEQ_CST);
	return w->ms;
}

static int atomic_get(int *v)
{
	return __atomic_load_n(v, __ATOMIC_SEQ_CST);
}

static void test_relay_idle_watch(void)
{
	int client[2], qemu[2], wp[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, client) == 0);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qemu) == 0);
	CHECK(pipe2(wp, O_CLOEXEC | O_NONBLOCK) == 0); /* watched() reads it also on a timeout */
	struct watch w = { wp[0], -1, 0, 0 };
	struct relay_thread t = { client[1], qemu[1], -9, { NULL, &w, watch_fds, watch_called, watch_ms } };
	pthread_t th;
	pthread_create(&th, NULL, run_relay, &t);
	/* Idle: one wait, however long (a loop with a timeout asks again). */
	usleep(300 * 1000);
	CHECK(atomic_get(&w.asked) <= 2);
	CHECK_INTEQ(atomic_get(&w.called), 0);
	/* A watched fd wakes it: watched once, then it sleeps again. */
	CHECK(write(wp[1], "x", 1) == 1);
	for (int i = 0; i < 500 && atomic_get(&w.called) < 1; i++)
		usleep(10 * 1000);
	CHECK_INTEQ(atomic_get(&w.called), 1);
	int asked = atomic_get(&w.asked);
	usleep(200 * 1000);
	CHECK(atomic_get(&w.asked) <= asked + 1);
	close(client[0]);
	pthread_join(th, NULL);
	CHECK_INTEQ(t.ret, QMP_RELAY_CLIENT_CLOSED);
	close(client[1]);
	close(qemu[0]);
	close(qemu[1]);
	close(wp[0]);
	close(wp[1]);
}

int main(void)
{
	RUN(test_whole_and_gaps);
	RUN(test_splits);
	RUN(test_fd_attachment);
	RUN(test_fd_pipelined);
	RUN(test_oversize_and_garbage);
	RUN(test_finish);
	RUN(test_relay_end_to_end);
	RUN(test_relay_qemu_closes);
	RUN(test_relay_takeover);
	RUN(test_relay_idle_watch);
	return unit_done();
}
