/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The QMP client against tests/helpers/fake-qmp, one server per case.
 *   test-qmp [PATH-TO-fake-qmp]     (default $KL_TOP/tests/helpers/fake-qmp)
 * Timeouts are checked by the clock: a call must give up no earlier than its
 * timeout and not much later. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "qmp/qmp.h"
#include "unit.h"

/* How late a timed-out call may return (sanitizer builds are slow). */
#define SLACK_MS 700

static char fake_path[4096];

struct fake {
	pid_t pid;
	char dir[64];
	char sock[1024];
};

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void msleep(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool contains(const char *s, const char *sub)
{
	return s && strstr(s, sub);
}

static bool make_dir(struct fake *f)
{
	snprintf(f->dir, sizeof f->dir, "/tmp/kl-test-qmp.XXXXXX");
	if (!mkdtemp(f->dir)) {
		printf("# mkdtemp: %s\n", strerror(errno));
		return false;
	}
	snprintf(f->sock, sizeof f->sock, "%s/qmp.sock", f->dir);
	return true;
}

/* Starts fake-qmp MODE [ARG] on f->sock (made in a fresh directory unless
 * already set) and waits for it to listen. */
static bool fake_start(struct fake *f, const char *mode, const char *arg)
{
	f->pid = -1;
	if (!f->sock[0] && !make_dir(f))
		return false;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return false;
	fflush(stdout);
	f->pid = fork();
	if (f->pid < 0)
		return false;
	if (f->pid == 0) {
		dup2(p[1], 1);
		execl(fake_path, "fake-qmp", f->sock, mode, arg, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", fake_path, strerror(errno));
		_exit(127);
	}
	close(p[1]);
	char line[16] = "";
	size_t got = 0;
	long long until = now_ms() + 10000;
	while (got < 6 && now_ms() < until) {
		struct pollfd pfd = { .fd = p[0], .events = POLLIN };
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		ssize_t n = read(p[0], line + got, sizeof line - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(p[0]);
	if (strncmp(line, "READY\n", 6) != 0) {
		printf("# fake-qmp %s did not start\n", mode);
		return false;
	}
	return true;
}

static void fake_stop(struct fake *f)
{
	if (f->pid > 0) {
		kill(f->pid, SIGKILL);
		while (waitpid(f->pid, NULL, 0) < 0 && errno == EINTR)
			;
		f->pid = -1;
	}
	if (f->sock[0])
		unlink(f->sock);
	if (f->dir[0])
		rmdir(f->dir);
}

/* fake_start + qmp_connect: NULL (and a failed check) if either fails. */
static struct qmp_client *start_and_connect(struct fake *f, const char *mode, const char *arg)
{
	memset(f, 0, sizeof *f);
	if (!fake_start(f, mode, arg)) {
		CHECK(!"fake-qmp started");
		return NULL;
	}
	struct qmp_client *c = NULL;
	struct kl_error err = KL_ERROR_INIT;
	if (qmp_connect(f->sock, 5000, &c, &err) < 0) {
		printf("# connect: %s\n", err.msg);
		CHECK(!"connected");
		return NULL;
	}
	return c;
}

static json_object *parse(const char *text)
{
	return json_tokener_parse(text);
}

static const char *str_member(json_object *o, const char *key)
{
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int data_n(json_object *ev)
{
	json_object *data, *n;
	if (!json_object_object_get_ex(ev, "data", &data) || !json_object_object_get_ex(data, "n", &n))
		return -1;
	return json_object_get_int(n);
}

/* A command whose reply must be an error; returns the elapsed ms. */
static long long expect_fail(struct qmp_client *c, const char *cmd, int timeout_ms, struct kl_error *err)
{
	json_object *ret = (json_object *)1;
	long long t0 = now_ms();
	int r = qmp_execute(c, cmd, NULL, timeout_ms, &ret, err);
	long long dt = now_ms() - t0;
	CHECK_INTEQ(r, -1);
	CHECK(ret == NULL);
	CHECK(err->set);
	printf("# %s -> %s (%lld ms)\n", cmd, err->msg, dt);
	return dt;
}

static void check_timed(long long elapsed, int timeout_ms)
{
	CHECK(elapsed >= timeout_ms);
	CHECK(elapsed < timeout_ms + SLACK_MS);
}

/* After a fatal error, calls fail at once with the first message. */
static void check_fails_fast(struct qmp_client *c, const char *first_msg)
{
	struct kl_error err = KL_ERROR_INIT;
	CHECK(!qmp_usable(c));
	long long dt = expect_fail(c, "query-status", 5000, &err);
	CHECK(dt < 100);
	CHECK(contains(err.msg, "unusable"));
	CHECK(contains(err.msg, first_msg));
	json_object *ev = NULL;
	CHECK_INTEQ(qmp_next_event(c, 5000, &ev, &err), -1);
	CHECK(ev == NULL);
}

/* ---- normal operation ---- */

static void test_normal(void)
{
	struct fake f;
	struct qmp_client *c = start_and_connect(&f, "normal", NULL);
	if (!c) {
		fake_stop(&f);
		return;
	}
	struct kl_error err = KL_ERROR_INIT;
	json_object *ret = NULL;

	int major = -1, minor = -1, micro = -1;
	CHECK_INTEQ(qmp_qemu_version(c, &major, &minor, &micro), 0);
	CHECK_INTEQ(major, 7);
	CHECK_INTEQ(minor, 2);
	CHECK_INTEQ(micro, 0);
	CHECK_STREQ(str_member(qmp_greeting(c), "package"), "fake-qmp");
	CHECK(qmp_usable(c));

	int fdflags = fcntl(qmp_fd(c), F_GETFD);
	CHECK(fdflags >= 0 && (fdflags & FD_CLOEXEC));

	CHECK_INTEQ(qmp_execute(c, "query-status", NULL, 2000, &ret, &err), 0);
	CHECK_STREQ(str_member(ret, "status"), "prelaunch");
	json_object_put(ret);
	ret = NULL;

	/* ret_out may be NULL */
	CHECK_INTEQ(qmp_execute(c, "query-version", NULL, 2000, NULL, &err), 0);

	/* arguments round-trip: escapes, UTF-8, slashes, nesting */
	_cleanup_json_ json_object *args =
		parse("{\"path\":\"/dev/disk/by-id/x\",\"q\":\"a\\\"b\\\\c\\n\",\"u\":\"\xc3\xa9\xe2\x82\xac\","
		      "\"n\":[1,2.5,null,true,{\"k\":{}}]}");
	CHECK(args != NULL);
	CHECK_INTEQ(qmp_execute(c, "echo", args, 2000, &ret, &err), 0);
	CHECK(json_object_equal(ret, args));
	json_object_put(ret);
	ret = NULL;
	CHECK_INTEQ(json_object_object_length(args), 4); /* borrowed, untouched */

	/* a QMP error reply: "CLASS: desc", errnum 0, still usable */
	expect_fail(c, "no-such-command", 2000, &err);
	CHECK_STREQ(err.msg, "CommandNotFound: The command no-such-command has not been found");
	CHECK_INTEQ(err.errnum, 0);
	CHECK(qmp_usable(c));

	/* arguments that are not an object are refused before sending */
	_cleanup_json_ json_object *arr = parse("[1]");
	kl_error_clear(&err);
	CHECK_INTEQ(qmp_execute(c, "echo", arr, 2000, &ret, &err), -1);
	CHECK_INTEQ(err.errnum, EINVAL);
	CHECK(qmp_usable(c));

	/* still in step after all that */
	CHECK_INTEQ(qmp_execute(c, "query-status", NULL, 2000, &ret, &err), 0);
	CHECK_STREQ(str_member(ret, "status"), "prelaunch");
	json_object_put(ret);
	qmp_close(c);
	fake_stop(&f);
}

/* The wire trace: exact lines, unique ids, no escaped slashes. */
static void test_trace(void)
{
	struct fake f;
	struct qmp_client *c = start_and_connect(&f, "normal", NULL);
	if (!c) {
		fake_stop(&f);
		return;
	}
	char *buf = NULL;
	size_t size = 0;
	FILE *tr = open_memstream(&buf, &size);
	qmp_set_trace(c, tr);
	struct kl_error err = KL_ERROR_INIT;
	_cleanup_json_ json_object *args = parse("{\"path\":\"/dev/vda\"}");
	CHECK_INTEQ(qmp_execute(c, "echo", args, 2000, NULL, &err), 0);
	CHECK_INTEQ(qmp_execute(c, "echo", args, 2000, NULL, &err), 0);
	qmp_set_trace(c, NULL);
	CHECK_INTEQ(qmp_execute(c, "query-status", NULL, 2000, NULL, &err), 0);
	fclose(tr);
	printf("# trace:\n%s", buf);
	CHECK_STREQ(buf, "-> {\"execute\":\"echo\",\"arguments\":{\"path\":\"/dev/vda\"},\"id\":\"kl-2\"}\n"
			 "<- {\"return\":{\"path\":\"/dev/vda\"},\"id\":\"kl-2\"}\n"
			 "-> {\"execute\":\"echo\",\"arguments\":{\"path\":\"/dev/vda\"},\"id\":\"kl-3\"}\n"
			 "<- {\"return\":{\"path\":\"/dev/vda\"},\"id\":\"kl-3\"}\n");
	free(buf);
	qmp_close(c);
	fake_stop(&f);

	/* the default trace covers the greeting and qmp_capabilities */
	buf = NULL;
	tr = open_memstream(&buf, &size);
	qmp_set_default_trace(tr);
	c = start_and_connect(&f, "normal", NULL);
	qmp_set_default_trace(NULL);
	qmp_close(c);
	fake_stop(&f);
	fclose(tr);
	printf("# trace:\n%s", buf);
	CHECK_STREQ(buf, "<- {\"QMP\":{\"version\":{\"qemu\":{\"micro\":0,\"minor\":2,\"major\":7},"
			 "\"package\":\"fake-qmp\"},\"capabilities\":[\"oob\"]}}\n"
			 "-> {\"execute\":\"qmp_capabilities\",\"id\":\"kl-1\"}\n"
			 "<- {\"return\":{},\"id\":\"kl-1\"}\n");
	free(buf);
}

static void test_events(void)
{
	struct fake f;
	struct qmp_client *c = start_and_connect(&f, "normal", NULL);
	if (!c) {
		fake_stop(&f);
		return;
	}
	struct kl_error err = KL_ERROR_INIT;
	json_object *ev = NULL, *ret = NULL;

	/* nothing there: 0 at once, or after the timeout */
	long long t0 = now_ms();
	CHECK_INTEQ(qmp_next_event(c, 0, &ev, &err), 0);
	CHECK(now_ms() - t0 < 100);
	t0 = now_ms();
	CHECK_INTEQ(qmp_next_event(c, 300, &ev, &err), 0);
	check_timed(now_ms() - t0, 300);
	CHECK(ev == NULL);

	/* events sent before a reply are queued, in order */
	_cleanup_json_ json_object *args = parse("{\"count\":3}");
	CHECK_INTEQ(qmp_execute(c, "emit-events", args, 2000, NULL, &err), 0);
	for (int i = 0; i < 3; i++) {
		CHECK_INTEQ(qmp_next_event(c, 0, &ev, &err), 1);
		CHECK_STREQ(str_member(ev, "event"), "FAKE");
		CHECK_INTEQ(data_n(ev), i);
		json_object_put(ev);
		ev = NULL;
	}
	CHECK_INTEQ(qmp_next_event(c, 0, &ev, &err), 0);

	/* quit: the reply, an event read with a timeout, then end of file */
	CHECK_INTEQ(qmp_execute(c, "quit", NULL, 2000, &ret, &err), 0);
	CHECK(json_object_is_type(ret, json_type_object) && json_object_object_length(ret) == 0);
	json_object_put(ret);
	CHECK_INTEQ(qmp_next_event(c, 2000, &ev, &err), 1);
	CHECK_STREQ(str_member(ev, "event"), "SHUTDOWN");
	json_object_put(ev);
	ev = NULL;
	t0 = now_ms();
	CHECK_INTEQ(qmp_next_event(c, 2000, &ev, &err), -1);
	CHECK(now_ms() - t0 < 1000);
	CHECK_INTEQ(err.errnum, EPIPE);
	CHECK(contains(err.msg, "closed by the peer while waiting for an event"));
	printf("# %s\n", err.msg);
	check_fails_fast(c, "closed by the peer");
	qmp_close(c);
	fake_stop(&f);
}

/* ---- framing ---- */

static void test_split(void)
{
	struct fake f;
	struct qmp_client *c = start_and_connect(&f, "split", NULL);
	if (!c) {
		fake_stop(&f);
		return;
	}
	struct kl_error err = KL_ERROR_INIT;
	json_object *ret = NULL, *ev = NULL;
	CHECK_INTEQ(qmp_execute(c, "query-status", NULL, 10000, &ret, &err), 0);
	CHECK_STREQ(json_object_get_string(ret), "split/ok");
	json_object_put(ret);
	CHECK_INTEQ(qmp_next_event(c, 0, &ev, &err), 1);
	CHECK_STREQ(str_member(ev, "event"), "SPLIT");
	json_object_put(ev);
	qmp_close(c);
	fake_stop(&f);
}

static void test_multi(void)
{
	struct fake f;
	struct qmp_client *c = start_and_connect(&f, "multi", NULL);
	if (!c) {
		fake_stop(&f);
		return;
	}
	struct kl_error err = KL_ERROR_INIT;
	json_object *ret = NULL, *ev = NULL;
	CHECK_INTEQ(qmp_execute(c, "query-status", NULL, 2000, &ret, &err), 0);
	CHECK_STREQ(json_object_get_string(ret), "multi/ok");
	json_object_put(ret);
	/* A and B came before the reply, C after it in the same write */
	static const char *const names[] = { "A", "B", "C" };
	for (int i = 0; i < 3; i++) {
		CHECK_INTEQ(qmp_next_event(c, 0, &ev, &err), 1);
		CHECK_STREQ(str_member(ev, "event"), names[i]);
		json_object_put(ev);
		ev = NULL;
	}
	CHECK_INTEQ(qmp_next_event(c, 0, &ev, &err), 0);
	qmp_close(c);
	fake_stop(&f);
}

static void test_wrong_id(void)
{
	struct fake f;
	struct qmp_client *c = start_and_connect(&f, "wrong-id", NULL);
	if (!c) {
		fake_stop(&f);
		return;
	}
	struct kl_error err = KL_ERROR_INIT;
	json_object *ret = NULL;
	CHECK_INTEQ(qmp_execute(c, "query-status", NULL, 2000, &ret, &err), 0);
	CHECK_STREQ(json_object_get_string(ret), "right");
	json_object_put(ret);
	CHECK(qmp_usable(c));
	qmp_close(c);
	fake_stop(&f);
}

static void test_flood(void)
{
	struct fake f;
	struct qmp_client *c = start_and_connect(&f, "flood", "5000");
	if (!c) {
		fake_stop(&f);
		return;
	}
	struct kl_error err = KL_ERROR_INIT;
	json_object *ret = NULL, *ev = NULL;
	CHECK_INTEQ(qmp_execute(c, "query-status", NULL, 10000, &ret, &err), 0);
	CHECK_STREQ(str_member(ret, "status"), "prelaunch");
	json_object_put(ret);
	CHECK_INTEQ(qmp_dropped_events(c), 5000 - QMP_MAX_QUEUED_EVENTS);
	int count = 0, first = -1, last = -1;
	while (qmp_next_event(c, 0, &ev, &err) == 1) {
		if (count == 0)
			first = data_n(ev);
		last = data_n(ev);
		count++;
		json_object_put(ev);
	}
	CHECK_INTEQ(count, QMP_MAX_QUEUED_EVENTS);
	CHECK_INTEQ(first, 5000 - QMP_MAX_QUEUED_EVENTS); /* the oldest were dropped */
	CHECK_INTEQ(last, 4999);
	qmp_close(c);
	fake_stop(&f);
}

static void test_huge(void)
{
	struct fake f;
	struct qmp_client *c = start_and_connect(&f, "huge", "20971520");
	if (!c) {
		fake_stop(&f);
		return;
	}
	struct kl_error err = KL_ERROR_INIT;
	json_object *ret = NULL;
	long long t0 = now_ms();
	CHECK_INTEQ(qmp_execute(c, "query-status", NULL, 30000, &ret, &err), 0);
	printf("# 20 MiB reply in %lld ms\n", now_ms() - t0);
	CHECK(json_object_is_type(ret, json_type_string));
	CHECK_INTEQ(json_object_get_string_len(ret), 20971520);
	const char *s = json_object_get_string(ret);
	CHECK(s && s[0] == 'x' && s[20971519] == 'x');
	json_object_put(ret);
	CHECK(qmp_usable(c));
	qmp_close(c);
	fake_stop(&f);
}

/* ---- error replies ---- */

static void test_error_reply(void)
{
	struct fake f;
	struct qmp_client *c = start_and_connect(&f, "error", NULL);
	if (!c) {
		fake_stop(&f);
		return;
	}
	struct kl_error err = KL_ERROR_INIT;
	expect_fail(c, "device_del", 2000, &err);
	CHECK_STREQ(err.msg, "GenericError: Device 'x' not found");
	CHECK_INTEQ(err.errnum, 0);
	CHECK(qmp_usable(c));
	qmp_close(c);
	fake_stop(&f);
}

static void test_idless_error(void)
{
	struct fake f;
	struct qmp_client *c = start_and_connect(&f, "idless-error", NULL);
	if (!c) {
		fake_stop(&f);
		return;
	}
	struct kl_error err = KL_ERROR_INIT;
	expect_fail(c, "query-status", 2000, &err);
	CHECK_STREQ(err.msg, "GenericError: JSON parse error, expecting value");
	qmp_close(c);
	fake_stop(&f);
}

static void test_bad_replies(void)
{
	static const struct {
		const char *mode, *msg;
	} cases[] = {
		{ "bad-error", "malformed error reply to 'query-status'" },
		{ "no-return", "has neither \"return\" nor \"error\"" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fake f;
		struct qmp_client *c = start_and_connect(&f, cases[i].mode, NULL);
		if (c) {
			struct kl_error err = KL_ERROR_INIT;
			expect_fail(c, "query-status", 2000, &err);
			CHECK(contains(err.msg, cases[i].msg));
			CHECK_INTEQ(err.errnum, EPROTO);
			CHECK(qmp_usable(c)); /* a bad reply, but the stream is intact */
			qmp_close(c);
		}
		fake_stop(&f);
	}
}

static void test_malformed_event(void)
{
	struct fake f;
	struct qmp_client *c = start_and_connect(&f, "malformed-event", NULL);
	if (!c) {
		fake_stop(&f);
		return;
	}
	struct kl_error err = KL_ERROR_INIT;
	json_object *ret = NULL, *ev = NULL;
	CHECK_INTEQ(qmp_execute(c, "query-status", NULL, 2000, &ret, &err), 0);
	CHECK_STREQ(str_member(ret, "status"), "prelaunch");
	json_object_put(ret);
	CHECK_INTEQ(qmp_next_event(c, 0, &ev, &err), 0); /* nothing malformed was queued */
	qmp_close(c);
	fake_stop(&f);
}

/* ---- protocol violations: the connection is then unusable ---- */

static void test_protocol_errors(void)
{
	static const struct {
		const char *mode, *arg, *msg;
		int errnum;
	} cases[] = {
		{ "garbage", NULL, "invalid JSON", EPROTO },
		{ "nul", NULL, "invalid JSON", EPROTO },
		{ "deep", NULL, "invalid JSON", EPROTO },
		{ "nonobject", "array", "sent a JSON array, not an object", EPROTO },
		{ "nonobject", "string", "sent a JSON string, not an object", EPROTO },
		{ "nonobject", "number", "sent a JSON number, not an object", EPROTO },
		{ "nonobject", "null", "sent a JSON null, not an object", EPROTO },
		{ "nonobject", "true", "sent a JSON boolean, not an object", EPROTO },
		{ "disconnect", NULL, "closed by the peer in the middle of a message", EPIPE },
		{ "oversize", NULL, "message larger than 67108864 bytes", EMSGSIZE },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fake f;
		printf("# mode %s %s\n", cases[i].mode, cases[i].arg ? cases[i].arg : "");
		struct qmp_client *c = start_and_connect(&f, cases[i].mode, cases[i].arg);
		if (c) {
			struct kl_error err = KL_ERROR_INIT;
			long long dt = expect_fail(c, "query-status", 20000, &err);
			CHECK(dt < 10000);
			CHECK(contains(err.msg, cases[i].msg));
			CHECK(contains(err.msg, "the reply to 'query-status'"));
			CHECK_INTEQ(err.errnum, cases[i].errnum);
			check_fails_fast(c, cases[i].msg);
			qmp_close(c);
		}
		fake_stop(&f);
	}
}

/* The peer is gone when we send: EPIPE, not SIGPIPE (which would kill us). */
static void test_sigpipe(void)
{
	struct sigaction old, dfl = { .sa_handler = SIG_DFL };
	sigaction(SIGPIPE, &dfl, &old);
	struct fake f;
	struct qmp_client *c = start_and_connect(&f, "close-after-caps", NULL);
	if (c) {
		msleep(200);
		struct kl_error err = KL_ERROR_INIT;
		expect_fail(c, "query-status", 2000, &err);
		CHECK_INTEQ(err.errnum, EPIPE);
		CHECK(!qmp_usable(c));
		qmp_close(c);
	}
	fake_stop(&f);
	sigaction(SIGPIPE, &old, NULL);
}

/* ---- timeouts ---- */

static void test_slow_reply(void)
{
	struct fake f;
	struct qmp_client *c = start_and_connect(&f, "slow", "300");
	if (!c) {
		fake_stop(&f);
		return;
	}
	struct kl_error err = KL_ERROR_INIT;
	json_object *ret = NULL;
	long long t0 = now_ms();
	CHECK_INTEQ(qmp_execute(c, "query-status", NULL, 3000, &ret, &err), 0);
	long long dt = now_ms() - t0;
	CHECK(dt >= 300 && dt < 300 + SLACK_MS);
	CHECK_STREQ(str_member(ret, "status"), "prelaunch");
	json_object_put(ret);

	/* a reply that comes after its timeout is dropped, not taken for the next one */
	_cleanup_json_ json_object *a1 = parse("{\"n\":1}"), *a2 = parse("{\"n\":2}");
	t0 = now_ms();
	CHECK_INTEQ(qmp_execute(c, "echo", a1, 100, &ret, &err), -1);
	check_timed(now_ms() - t0, 100);
	CHECK_INTEQ(err.errnum, ETIMEDOUT);
	CHECK(contains(err.msg, "no reply to 'echo' within 100 ms"));
	CHECK(qmp_usable(c));
	CHECK_INTEQ(qmp_execute(c, "echo", a2, 5000, &ret, &err), 0);
	CHECK(json_object_equal(ret, a2));
	json_object_put(ret);
	qmp_close(c);
	fake_stop(&f);
}

static void test_never_answers(void)
{
	struct fake f;
	struct qmp_client *c = start_and_connect(&f, "slow", "-1");
	if (!c) {
		fake_stop(&f);
		return;
	}
	struct kl_error err = KL_ERROR_INIT;
	long long dt = expect_fail(c, "query-status", 300, &err);
	check_timed(dt, 300);
	CHECK_INTEQ(err.errnum, ETIMEDOUT);
	CHECK(qmp_usable(c));
	dt = expect_fail(c, "query-status", 0, &err);
	CHECK(dt < 100);
	CHECK_INTEQ(err.errnum, ETIMEDOUT);
	qmp_close(c);
	fake_stop(&f);
}

/* Bytes keep coming, never a whole message: the deadline covers all reads. */
static void test_drip(void)
{
	struct fake f;
	struct qmp_client *c = start_and_connect(&f, "drip", NULL);
	if (!c) {
		fake_stop(&f);
		return;
	}
	struct kl_error err = KL_ERROR_INIT;
	long long dt = expect_fail(c, "query-status", 400, &err);
	check_timed(dt, 400);
	CHECK_INTEQ(err.errnum, ETIMEDOUT);
	qmp_close(c);
	fake_stop(&f);
}

/* Events keep coming, never the reply: they are queued, the deadline holds. */
static void test_event_drip(void)
{
	struct fake f;
	struct qmp_client *c = start_and_connect(&f, "event-drip", NULL);
	if (!c) {
		fake_stop(&f);
		return;
	}
	struct kl_error err = KL_ERROR_INIT;
	long long dt = expect_fail(c, "query-status", 400, &err);
	check_timed(dt, 400);
	CHECK_INTEQ(err.errnum, ETIMEDOUT);
	json_object *ev = NULL;
	int n = 0;
	while (n < 1000 && qmp_next_event(c, 0, &ev, &err) == 1) {
		CHECK_STREQ(str_member(ev, "event"), "DRIP");
		CHECK_INTEQ(data_n(ev), n);
		json_object_put(ev);
		n++;
	}
	printf("# %d events queued meanwhile\n", n);
	CHECK(n >= 5);
	/* and they keep coming: a wait for the next one succeeds */
	long long t0 = now_ms();
	CHECK_INTEQ(qmp_next_event(c, 2000, &ev, &err), 1);
	CHECK(now_ms() - t0 < 1000);
	json_object_put(ev);
	qmp_close(c);
	fake_stop(&f);
}

/* The peer stops reading: a large command cannot be sent in time.  Half of
 * it went out, so the stream is lost. */
static void test_send_timeout(void)
{
	struct fake f;
	struct qmp_client *c = start_and_connect(&f, "deaf", NULL);
	if (!c) {
		fake_stop(&f);
		return;
	}
	size_t n = 8 << 20;
	char *blob = malloc(n);
	memset(blob, 'b', n);
	_cleanup_json_ json_object *args = json_object_new_object();
	json_object_object_add(args, "blob", json_object_new_string_len(blob, (int)n));
	free(blob);
	struct kl_error err = KL_ERROR_INIT;
	long long t0 = now_ms();
	CHECK_INTEQ(qmp_execute(c, "echo", args, 300, NULL, &err), -1);
	check_timed(now_ms() - t0, 300);
	printf("# %s\n", err.msg);
	CHECK_INTEQ(err.errnum, ETIMEDOUT);
	CHECK(contains(err.msg, "sending 'echo' timed out after 300 ms"));
	check_fails_fast(c, "sending 'echo' timed out");
	qmp_close(c);
	fake_stop(&f);
}

/* Events without pause, never the reply: the deadline holds although the
 * socket is always readable. */
static void test_event_storm(void)
{
	struct fake f;
	struct qmp_client *c = start_and_connect(&f, "event-storm", NULL);
	if (!c) {
		fake_stop(&f);
		return;
	}
	struct kl_error err = KL_ERROR_INIT;
	long long dt = expect_fail(c, "query-status", 400, &err);
	check_timed(dt, 400);
	CHECK_INTEQ(err.errnum, ETIMEDOUT);
	CHECK(qmp_usable(c));
	printf("# %lu events dropped\n", qmp_dropped_events(c));
	CHECK(qmp_dropped_events(c) > 0);
	/* the queue holds the newest QMP_MAX_QUEUED_EVENTS, in order */
	json_object *ev = NULL;
	int count = 0, prev = -1;
	while (count < QMP_MAX_QUEUED_EVENTS && qmp_next_event(c, 0, &ev, &err) == 1) {
		int n = data_n(ev);
		CHECK(prev < 0 || n == (prev + 1) % 1000);
		prev = n;
		count++;
		json_object_put(ev);
	}
	CHECK_INTEQ(count, QMP_MAX_QUEUED_EVENTS);
	/* qmp_next_event with a timeout returns at once: there is always one */
	long long t0 = now_ms();
	CHECK_INTEQ(qmp_next_event(c, 5000, &ev, &err), 1);
	CHECK(now_ms() - t0 < 1000);
	json_object_put(ev);
	qmp_close(c);
	fake_stop(&f);
}

static volatile sig_atomic_t alarms;
static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

/* Signals every 5 ms (no SA_RESTART): calls neither fail with EINTR nor
 * restart their full timeout. */
static void test_eintr(void)
{
	struct fake f;
	struct qmp_client *c = start_and_connect(&f, "slow", "-1");
	if (!c) {
		fake_stop(&f);
		return;
	}
	struct sigaction sa = { .sa_handler = on_alarm }, old;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, &old);
	struct itimerval it = { { 0, 5000 }, { 0, 5000 } }, off = { { 0, 0 }, { 0, 0 } };
	alarms = 0;
	setitimer(ITIMER_REAL, &it, NULL);

	struct kl_error err = KL_ERROR_INIT;
	long long dt = expect_fail(c, "query-status", 300, &err);
	check_timed(dt, 300);
	CHECK_INTEQ(err.errnum, ETIMEDOUT);
	json_object *ev = NULL;
	long long t0 = now_ms();
	CHECK_INTEQ(qmp_next_event(c, 300, &ev, &err), 0);
	check_timed(now_ms() - t0, 300);

	setitimer(ITIMER_REAL, &off, NULL);
	sigaction(SIGALRM, &old, NULL);
	printf("# %d signals\n", (int)alarms);
	CHECK(alarms > 20);
	qmp_close(c);
	fake_stop(&f);
}

/* ---- connecting ---- */

static long long expect_connect_fail(const char *path, const char *mode, const char *arg, int timeout_ms,
				     struct kl_error *err)
{
	struct fake f;
	memset(&f, 0, sizeof f);
	long long dt = -1;
	if (mode && !fake_start(&f, mode, arg)) {
		CHECK(!"fake-qmp started");
		goto out;
	}
	struct qmp_client *c = (struct qmp_client *)1;
	long long t0 = now_ms();
	CHECK_INTEQ(qmp_connect(mode ? f.sock : path, timeout_ms, &c, err), -1);
	dt = now_ms() - t0;
	CHECK(c == NULL);
	printf("# connect %s -> %s (%lld ms)\n", mode ? mode : path, err->msg, dt);
out:
	fake_stop(&f);
	return dt;
}

static void test_greeting_faults(void)
{
	struct kl_error err = KL_ERROR_INIT;
	long long dt = expect_connect_fail(NULL, "no-greeting", NULL, 300, &err);
	check_timed(dt, 300);
	CHECK_INTEQ(err.errnum, ETIMEDOUT);
	CHECK(contains(err.msg, "no greeting within 300 ms"));

	dt = expect_connect_fail(NULL, "slow-greeting", "2000", 300, &err);
	check_timed(dt, 300);
	CHECK_INTEQ(err.errnum, ETIMEDOUT);

	expect_connect_fail(NULL, "bad-greeting", NULL, 2000, &err);
	CHECK_INTEQ(err.errnum, EPROTO);
	CHECK(contains(err.msg, "unexpected greeting: {\"hello\":1}"));

	expect_connect_fail(NULL, "garbage-greeting", NULL, 2000, &err);
	CHECK_INTEQ(err.errnum, EPROTO);
	CHECK(contains(err.msg, "invalid JSON"));
	CHECK(contains(err.msg, "the greeting"));

	expect_connect_fail(NULL, "close-greeting", NULL, 2000, &err);
	CHECK_INTEQ(err.errnum, EPIPE);
	CHECK(contains(err.msg, "closed by the peer while waiting for the greeting"));

	expect_connect_fail(NULL, "caps-error", NULL, 2000, &err);
	CHECK(contains(err.msg, "qmp_capabilities: CommandNotFound: Capabilities negotiation is already complete"));

	/* a slow greeting within the timeout is fine */
	struct fake f;
	memset(&f, 0, sizeof f);
	if (fake_start(&f, "slow-greeting", "200")) {
		struct qmp_client *c = NULL;
		long long t0 = now_ms();
		CHECK_INTEQ(qmp_connect(f.sock, 3000, &c, &err), 0);
		CHECK(now_ms() - t0 >= 200);
		CHECK_INTEQ(qmp_execute(c, "query-status", NULL, 2000, NULL, &err), 0);
		qmp_close(c);
	} else {
		CHECK(!"fake-qmp started");
	}
	fake_stop(&f);
}

static void test_connect_errors(void)
{
	struct kl_error err = KL_ERROR_INIT;
	long long dt = expect_connect_fail("/nonexistent/kl-qmp.sock", NULL, NULL, 2000, &err);
	CHECK(dt < 100);
	CHECK_INTEQ(err.errnum, ENOENT);
	CHECK(contains(err.msg, "/nonexistent/kl-qmp.sock"));

	/* a path that exists but is not a listening socket */
	char path[] = "/tmp/kl-test-qmp-file.XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	close(fd);
	dt = expect_connect_fail(path, NULL, NULL, 2000, &err);
	CHECK(dt < 100);
	CHECK_INTEQ(err.errnum, ECONNREFUSED);
	unlink(path);

	/* qmp_connect_wait keeps trying until its timeout */
	struct qmp_client *c = (struct qmp_client *)1;
	long long t0 = now_ms();
	CHECK_INTEQ(qmp_connect_wait("/nonexistent/kl-qmp.sock", 300, &c, &err), -1);
	check_timed(now_ms() - t0, 300);
	CHECK(c == NULL);
	CHECK_INTEQ(err.errnum, ETIMEDOUT);
	CHECK(contains(err.msg, "No such file or directory"));
	printf("# %s\n", err.msg);
}

/* QEMU starts after we begin waiting for it. */
static void test_connect_wait(void)
{
	struct fake f;
	memset(&f, 0, sizeof f);
	if (!make_dir(&f)) {
		CHECK(!"mkdtemp");
		return;
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		msleep(300);
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		execl(fake_path, "fake-qmp", f.sock, "normal", (char *)NULL);
		_exit(127);
	}
	f.pid = pid;
	struct qmp_client *c = NULL;
	struct kl_error err = KL_ERROR_INIT;
	long long t0 = now_ms();
	CHECK_INTEQ(qmp_connect_wait(f.sock, 5000, &c, &err), 0);
	long long dt = now_ms() - t0;
	printf("# connected after %lld ms %s\n", dt, err.msg);
	CHECK(dt >= 300 && dt < 3000);
	if (c) {
		CHECK_INTEQ(qmp_execute(c, "query-status", NULL, 2000, NULL, &err), 0);
		qmp_close(c);
	}
	fake_stop(&f);
}

/* A socket path longer than sun_path (108 bytes). */
static void test_long_path(void)
{
	struct fake f;
	memset(&f, 0, sizeof f);
	if (!make_dir(&f)) {
		CHECK(!"mkdtemp");
		return;
	}
	char sub[512];
	snprintf(sub, sizeof sub, "%s/%0150d", f.dir, 0);
	CHECK(mkdir(sub, 0700) == 0);
	snprintf(f.sock, sizeof f.sock, "%s/qmp.sock", sub);
	CHECK(strlen(f.sock) > 108);
	struct qmp_client *c = NULL;
	struct kl_error err = KL_ERROR_INIT;
	if (fake_start(&f, "normal", NULL)) {
		CHECK_INTEQ(qmp_connect(f.sock, 3000, &c, &err), 0);
		if (c) {
			CHECK_INTEQ(qmp_execute(c, "query-status", NULL, 2000, NULL, &err), 0);
			qmp_close(c);
		} else {
			printf("# %s\n", err.msg);
		}
	} else {
		CHECK(!"fake-qmp started");
	}
	if (f.pid > 0) {
		kill(f.pid, SIGKILL);
		waitpid(f.pid, NULL, 0);
		f.pid = -1;
	}
	unlink(f.sock);
	rmdir(sub);
	f.sock[0] = '\0';
	fake_stop(&f);
}

/* An already-connected socket: a socketpair, as with QEMU's -qmp stdio. */
static void test_connect_fd(void)
{
	int sv[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0); /* no CLOEXEC on purpose */
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(sv[1], 3);
		execl(fake_path, "fake-qmp", "fd:3", "normal", (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	struct qmp_client *c = NULL;
	struct kl_error err = KL_ERROR_INIT;
	CHECK_INTEQ(qmp_connect_fd(sv[0], 3000, &c, &err), 0);
	if (c) {
		CHECK_INTEQ(qmp_fd(c), sv[0]);
		CHECK(fcntl(sv[0], F_GETFD) & FD_CLOEXEC);
		json_object *ret = NULL;
		CHECK_INTEQ(qmp_execute(c, "query-status", NULL, 2000, &ret, &err), 0);
		CHECK_STREQ(str_member(ret, "status"), "prelaunch");
		json_object_put(ret);
		qmp_close(c);
		CHECK(fcntl(sv[0], F_GETFD) < 0); /* closed by qmp_close */
	} else {
		printf("# %s\n", err.msg);
		close(sv[0]);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);

	/* not a socket: refused, and the fd stays the caller's */
	int p[2];
	CHECK(pipe(p) == 0);
	c = (struct qmp_client *)1;
	CHECK_INTEQ(qmp_connect_fd(p[0], 1000, &c, &err), -1);
	CHECK(c == NULL);
	CHECK(contains(err.msg, "not a socket"));
	CHECK(fcntl(p[0], F_GETFD) >= 0);
	close(p[0]);
	close(p[1]);

	/* a peer that never greets: timeout, and the fd stays the caller's */
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	long long t0 = now_ms();
	CHECK_INTEQ(qmp_connect_fd(sv[0], 300, &c, &err), -1);
	check_timed(now_ms() - t0, 300);
	CHECK_INTEQ(err.errnum, ETIMEDOUT);
	CHECK(fcntl(sv[0], F_GETFD) >= 0);
	close(sv[0]);
	close(sv[1]);
}

int main(int argc, char **argv)
{
	const char *top = getenv("KL_TOP");
	if (argc > 1)
		snprintf(fake_path, sizeof fake_path, "%s", argv[1]);
	else
		snprintf(fake_path, sizeof fake_path, "%s/tests/helpers/fake-qmp", top && *top ? top : ".");
	if (access(fake_path, X_OK) != 0) {
		printf("# %s: %s (build it with `make test-programs`)\n", fake_path, strerror(errno));
		printf("not ok 1 - fake-qmp present\n1..1\n");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN); /* test_sigpipe turns it back on for itself */

	RUN(test_normal);
	RUN(test_trace);
	RUN(test_events);
	RUN(test_split);
	RUN(test_multi);
	RUN(test_wrong_id);
	RUN(test_flood);
	RUN(test_huge);
	RUN(test_error_reply);
	RUN(test_idless_error);
	RUN(test_bad_replies);
	RUN(test_malformed_event);
	RUN(test_protocol_errors);
	RUN(test_sigpipe);
	RUN(test_slow_reply);
	RUN(test_never_answers);
	RUN(test_drip);
	RUN(test_send_timeout);
	RUN(test_event_drip);
	RUN(test_event_storm);
	RUN(test_eintr);
	RUN(test_greeting_faults);
	RUN(test_connect_errors);
	RUN(test_connect_wait);
	RUN(test_long_path);
	RUN(test_connect_fd);
	return unit_done();
}
