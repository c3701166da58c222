/* SPDX-License-Identifier: GPL-2.0-or-later */
/* fake-qmp: a QMP server that misbehaves on purpose, for tests/unit/test-qmp.
 *
 *   fake-qmp SOCKET MODE [ARG]     listen on SOCKET, print "READY" on stdout,
 *                                  serve one client, exit when it leaves
 *   fake-qmp fd:N MODE [ARG]       serve the already-connected socket fd N
 *
 * Greeting-stage modes (commands are then answered as in normal):
 *   no-greeting        accept, never send anything
 *   slow-greeting MS   send the greeting after MS ms
 *   bad-greeting       an object without "QMP"
 *   garbage-greeting   bytes that are not JSON
 *   close-greeting     close right after accept
 *   caps-error         answer qmp_capabilities with an error
 *   close-after-caps   close right after the qmp_capabilities reply
 *   deaf               stop reading after the qmp_capabilities reply
 * Command-stage modes (qmp_capabilities is always answered normally; the
 * mode applies to every later command):
 *   normal             canned replies: query-status, query-version, echo
 *                      (returns its arguments), emit-events {"count":N}
 *                      (N events, then the reply), quit (reply, SHUTDOWN
 *                      event, close); anything else is CommandNotFound
 *   garbage            non-JSON instead of the reply
 *   slow MS            the normal reply after MS ms (-1: never)
 *   drip               a reply string that grows by a byte every 20 ms, forever
 *   event-drip         an event every 20 ms, never a reply
 *   event-storm        events (data.n counts 0..999, again and again) as fast as
 *                      the client takes them, never a reply
 *   disconnect         half of the reply, then close
 *   flood N            N events (default 5000), then the reply
 *   huge BYTES         a reply whose "return" is a string of BYTES 'x' (default 20 MiB)
 *   split              an event and the reply, one byte per write
 *   multi              events, a wrong-id reply and the reply in one write, with whitespace
 *   error              {"error":{"class":"GenericError","desc":"Device 'x' not found"}}
 *   wrong-id           replies with other ids (string, number, none) first, then the right one
 *   nonobject KIND     a JSON array|string|number|null|true instead of an object
 *   oversize           a string that never ends, past QMP_MAX_MESSAGE
 *   nul                a NUL byte inside the reply
 *   deep               2000 nested arrays
 *   bad-error          an "error" member that is not {"class":str,"desc":str}
 *   no-return          a reply with the id but neither "return" nor "error"
 *   idless-error       an error reply without id (as QEMU does for unparsable input)
 *   malformed-event    an event whose name is a number, an unknown object, a
 *                      second greeting, then the reply
 *
 * Whatever the mode, every command the client sends is checked: it must be
 * an object with a string "execute" and a string "id" never used before, and
 * the first must be qmp_capabilities; a violation is answered with
 * {"error":{"class":"FakeProtocolError",...}}. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qmp/qmp.h"

static int cfd = -1;
static const char *mode = "normal";
static const char *arg;
static json_tokener *tok;
static char rbuf[65536];
static size_t rpos, rlen;
static json_object *seen_ids;

static void die(const char *msg)
{
	fprintf(stderr, "fake-qmp: %s: %s\n", msg, strerror(errno));
	exit(2);
}

static void msleep(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The client went away: that ends every mode. */
static void write_all(const void *p, size_t len)
{
	const char *s = p;
	while (len > 0) {
		ssize_t n = send(cfd, s, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			exit(0);
		s += n;
		len -= (size_t)n;
	}
}

static void write_str(const char *s)
{
	write_all(s, strlen(s));
}

static const char *to_text(json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* Sends o followed by CRLF, as QEMU does, and puts it. */
static void send_json(json_object *o)
{
	write_str(to_text(o));
	write_str("\r\n");
	json_object_put(o);
}

static json_object *with_id(json_object *o, json_object *id)
{
	if (id)
		json_object_object_add(o, "id", json_object_get(id));
	return o;
}

static json_object *ok_reply(json_object *ret, json_object *id)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "return", ret ? ret : json_object_new_object());
	return with_id(o, id);
}

static json_object *err_reply(const char *cls, const char *desc, json_object *id)
{
	json_object *e = json_object_new_object();
	json_object_object_add(e, "class", json_object_new_string(cls));
	json_object_object_add(e, "desc", json_object_new_string(desc));
	json_object *o = json_object_new_object();
	json_object_object_add(o, "error", e);
	return with_id(o, id);
}

static json_object *event(const char *name, int n)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	json_object *ts = json_object_new_object();
	json_object_object_add(ts, "seconds", json_object_new_int64(now.tv_sec));
	json_object_object_add(ts, "microseconds", json_object_new_int64(now.tv_nsec / 1000));
	json_object *data = json_object_new_object();
	json_object_object_add(data, "n", json_object_new_int(n));
	json_object *o = json_object_new_object();
	json_object_object_add(o, "event", json_object_new_string(name));
	json_object_object_add(o, "data", data);
	json_object_object_add(o, "timestamp", ts);
	return o;
}

static json_object *greeting(void)
{
	json_object *qemu = json_object_new_object();
	json_object_object_add(qemu, "micro", json_object_new_int(0));
	json_object_object_add(qemu, "minor", json_object_new_int(2));
	json_object_object_add(qemu, "major", json_object_new_int(7));
	json_object *version = json_object_new_object();
	json_object_object_add(version, "qemu", qemu);
	json_object_object_add(version, "package", json_object_new_string("fake-qmp"));
	json_object *caps = json_object_new_array();
	json_object_array_add(caps, json_object_new_string("oob"));
	json_object *qmp = json_object_new_object();
	json_object_object_add(qmp, "version", version);
	json_object_object_add(qmp, "capabilities", caps);
	json_object *o = json_object_new_object();
	json_object_object_add(o, "QMP", qmp);
	return o;
}

/* The next command from the client, NULL at end of file. */
static json_object *read_command(void)
{
	for (;;) {
		if (rpos < rlen) {
			json_object *o = json_tokener_parse_ex(tok, rbuf + rpos, (int)(rlen - rpos));
			enum json_tokener_error e = json_tokener_get_error(tok);
			if (e == json_tokener_continue) {
				rpos = rlen;
				continue;
			}
			if (e != json_tokener_success) {
				fprintf(stderr, "fake-qmp: bad JSON from the client: %s\n", json_tokener_error_desc(e));
				exit(3);
			}
			rpos += json_tokener_get_parse_end(tok);
			return o ? o : json_object_new_string("null");
		}
		ssize_t n = read(cfd, rbuf, sizeof rbuf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		rpos = 0;
		rlen = (size_t)n;
	}
}

/* Waits for the client to leave, then exits. */
static void wait_eof(void)
{
	for (;;) {
		json_object *o = read_command();
		if (!o)
			exit(0);
		json_object_put(o);
	}
}

/* The normal answer to a command. */
static void answer(const char *cmd, json_object *args, json_object *id)
{
	if (strcmp(cmd, "query-status") == 0) {
		json_object *r = json_object_new_object();
		json_object_object_add(r, "status", json_object_new_string("prelaunch"));
		json_object_object_add(r, "singlestep", json_object_new_boolean(0));
		json_object_object_add(r, "running", json_object_new_boolean(0));
		send_json(ok_reply(r, id));
	} else if (strcmp(cmd, "query-version") == 0) {
		json_object *g = greeting(), *qmp, *version;
		json_object_object_get_ex(g, "QMP", &qmp);
		json_object_object_get_ex(qmp, "version", &version);
		send_json(ok_reply(json_object_get(version), id));
		json_object_put(g);
	} else if (strcmp(cmd, "echo") == 0) {
		send_json(ok_reply(args ? json_object_get(args) : NULL, id));
	} else if (strcmp(cmd, "emit-events") == 0) {
		json_object *v;
		int count = args && json_object_object_get_ex(args, "count", &v) ? json_object_get_int(v) : 1;
		for (int i = 0; i < count; i++)
			send_json(event("FAKE", i));
		send_json(ok_reply(NULL, id));
	} else if (strcmp(cmd, "quit") == 0) {
		send_json(ok_reply(NULL, id));
		send_json(event("SHUTDOWN", 0));
		exit(0);
	} else {
		char desc[300];
		snprintf(desc, sizeof desc, "The command %s has not been found", cmd);
		send_json(err_reply("CommandNotFound", desc, id));
	}
}

/* Writes text one byte per write, slowly enough that the reader sees pieces. */
static void write_bytewise(const char *s)
{
	for (; *s; s++) {
		write_all(s, 1);
		msleep(1);
	}
}

static char *text_of(json_object *o)
{
	char *s = strdup(to_text(o));
	json_object_put(o);
	if (!s)
		die("strdup");
	return s;
}

/* The faulty answer of the current mode. */
static void misbehave(const char *cmd, json_object *args, json_object *id)
{
	if (strcmp(mode, "normal") == 0 || strstr(mode, "greeting") || strcmp(mode, "caps-error") == 0) {
		answer(cmd, args, id);
	} else if (strcmp(mode, "garbage") == 0) {
		write_str("}} this is not JSON {{\r\n");
	} else if (strcmp(mode, "slow") == 0) {
		long ms = arg ? atol(arg) : -1;
		if (ms < 0)
			return; /* never answer; keep reading */
		msleep(ms);
		answer(cmd, args, id);
	} else if (strcmp(mode, "drip") == 0) {
		write_str("{\"return\": \"");
		for (;;) {
			write_str("x");
			msleep(20);
		}
	} else if (strcmp(mode, "event-drip") == 0) {
		for (int i = 0;; i++) {
			send_json(event("DRIP", i));
			msleep(20);
		}
	} else if (strcmp(mode, "event-storm") == 0) {
		/* one prepared batch, written again and again into a large socket
		 * buffer: the reader should never find the socket empty */
		int sndbuf = 16 << 20;
		if (setsockopt(cfd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) < 0)
			setsockopt(cfd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
		size_t cap = 1 << 20, len = 0;
		char *batch = malloc(cap);
		if (!batch)
			die("malloc");
		for (int i = 0; i < 1000; i++) {
			json_object *e = event("STORM", i);
			len += (size_t)snprintf(batch + len, cap - len, "%s\r\n", to_text(e));
			json_object_put(e);
		}
		for (;;)
			write_all(batch, len);
	} else if (strcmp(mode, "disconnect") == 0) {
		json_object *r = json_object_new_object();
		json_object_object_add(r, "status", json_object_new_string("prelaunch"));
		char *s = text_of(ok_reply(r, id));
		write_all(s, strlen(s) / 2);
		free(s);
		shutdown(cfd, SHUT_RDWR);
		exit(0);
	} else if (strcmp(mode, "flood") == 0) {
		int n = arg ? atoi(arg) : 5000;
		for (int i = 0; i < n; i++)
			send_json(event("FLOOD", i));
		answer(cmd, args, id);
	} else if (strcmp(mode, "huge") == 0) {
		size_t n = arg ? strtoul(arg, NULL, 10) : 20u << 20;
		char *s = malloc(n);
		if (!s)
			die("malloc");
		memset(s, 'x', n);
		send_json(ok_reply(json_object_new_string_len(s, (int)n), id));
		free(s);
	} else if (strcmp(mode, "split") == 0) {
		char *e = text_of(event("SPLIT", 1));
		char *r = text_of(ok_reply(json_object_new_string("split/ok"), id));
		write_bytewise(e);
		write_bytewise("\r\n");
		write_bytewise(r);
		write_bytewise("\r\n");
		free(e);
		free(r);
	} else if (strcmp(mode, "multi") == 0) {
		json_object *bogus = json_object_new_string("not-yours");
		char *a = text_of(event("A", 1));
		char *w = text_of(ok_reply(json_object_new_string("wrong"), bogus));
		char *b = text_of(event("B", 2));
		char *r = text_of(ok_reply(json_object_new_string("multi/ok"), id));
		char *c = text_of(event("C", 3));
		char *all;
		if (asprintf(&all, " \r\n%s\n%s\t%s\r\n\r\n%s %s  \n", a, w, b, r, c) < 0)
			die("asprintf");
		write_all(all, strlen(all));
		free(all);
		free(a);
		free(w);
		free(b);
		free(r);
		free(c);
		json_object_put(bogus);
	} else if (strcmp(mode, "error") == 0) {
		send_json(err_reply("GenericError", "Device 'x' not found", id));
	} else if (strcmp(mode, "wrong-id") == 0) {
		json_object *s = json_object_new_string("kl-999999"), *n = json_object_new_int(2);
		send_json(ok_reply(json_object_new_string("wrong-string-id"), s));
		send_json(ok_reply(json_object_new_string("wrong-number-id"), n));
		send_json(ok_reply(json_object_new_string("no-id"), NULL));
		send_json(ok_reply(json_object_new_string("right"), id));
		json_object_put(s);
		json_object_put(n);
	} else if (strcmp(mode, "nonobject") == 0) {
		const char *kind = arg ? arg : "array";
		write_str(strcmp(kind, "string") == 0 ? "\"hello\"\r\n" :
			  strcmp(kind, "number") == 0 ? "42\r\n" :
			  strcmp(kind, "null") == 0 ? "null\r\n" :
			  strcmp(kind, "true") == 0 ? "true\r\n" : "[1,2,3]\r\n");
	} else if (strcmp(mode, "oversize") == 0) {
		static char chunk[1 << 20];
		memset(chunk, 'x', sizeof chunk);
		write_str("{\"return\": \"");
		for (size_t sent = 0; sent <= (size_t)QMP_MAX_MESSAGE + sizeof chunk; sent += sizeof chunk)
			write_all(chunk, sizeof chunk);
		wait_eof();
	} else if (strcmp(mode, "nul") == 0) {
		write_all("{\"return\"\0: {}}\r\n", 17);
	} else if (strcmp(mode, "deep") == 0) {
		for (int i = 0; i < 2000; i++)
			write_str("[");
	} else if (strcmp(mode, "bad-error") == 0) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "error", json_object_new_string("oops"));
		send_json(with_id(o, id));
	} else if (strcmp(mode, "no-return") == 0) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "answer", json_object_new_int(42));
		send_json(with_id(o, id));
	} else if (strcmp(mode, "idless-error") == 0) {
		send_json(err_reply("GenericError", "JSON parse error, expecting value", NULL));
	} else if (strcmp(mode, "malformed-event") == 0) {
		json_object *e = json_object_new_object();
		json_object_object_add(e, "event", json_object_new_int(5));
		send_json(e);
		json_object *u = json_object_new_object();
		json_object_object_add(u, "foo", json_object_new_string("bar"));
		send_json(u);
		send_json(greeting());
		answer(cmd, args, id);
	} else {
		fprintf(stderr, "fake-qmp: unknown mode %s\n", mode);
		exit(2);
	}
}

/* Checks a command as QEMU would (and more).  Returns false after replying
 * with an error. */
static bool valid_command(json_object *o, bool first, const char **cmd, json_object **args, json_object **id)
{
	json_object *v;
	*cmd = NULL;
	*args = NULL;
	*id = NULL;
	const char *problem = NULL;
	if (!json_object_is_type(o, json_type_object))
		problem = "command is not an object";
	else if (!json_object_object_get_ex(o, "execute", &v) || !json_object_is_type(v, json_type_string))
		problem = "no string \"execute\"";
	else if (*cmd = json_object_get_string(v), !json_object_object_get_ex(o, "id", id) ||
		 !json_object_is_type(*id, json_type_string))
		problem = "no string \"id\"";
	else if (json_object_object_get_ex(seen_ids, json_object_get_string(*id), NULL))
		problem = "id used twice";
	else if (first != (strcmp(*cmd, "qmp_capabilities") == 0))
		problem = first ? "first command is not qmp_capabilities" : "qmp_capabilities twice";
	else if (json_object_object_get_ex(o, "arguments", args) && !json_object_is_type(*args, json_type_object))
		problem = "\"arguments\" is not an object";
	if (problem) {
		fprintf(stderr, "fake-qmp: %s\n", problem);
		send_json(err_reply("FakeProtocolError", problem, *id));
		return false;
	}
	json_object_object_add(seen_ids, json_object_get_string(*id), NULL);
	return true;
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *name = path;
	if (strlen(path) >= sizeof sa.sun_path) {
		/* Too long for sun_path: bind the base name from its directory. */
		char *dir = strdup(path), *slash = strrchr(dir, '/');
		if (!slash)
			die("socket path too long");
		*slash = '\0';
		if (chdir(*dir ? dir : "/") < 0)
			die("chdir");
		name = path + (slash - dir) + 1;
		free(dir);
	}
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", name);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	unlink(name);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		die("bind");
	if (listen(fd, 4) < 0)
		die("listen");
	return fd;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: fake-qmp SOCKET|fd:N MODE [ARG]\n");
		return 2;
	}
	mode = argv[2];
	arg = argc > 3 ? argv[3] : NULL;
	signal(SIGPIPE, SIG_IGN);
	alarm(60); /* never outlive a broken test */
	tok = json_tokener_new();
	seen_ids = json_object_new_object();

	if (strncmp(argv[1], "fd:", 3) == 0) {
		cfd = atoi(argv[1] + 3);
	} else {
		int lfd = listen_on(argv[1]);
		printf("READY\n");
		fflush(stdout);
		do
			cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		while (cfd < 0 && errno == EINTR);
		if (cfd < 0)
			die("accept");
		close(lfd);
	}

	if (strcmp(mode, "close-greeting") == 0)
		return 0;
	if (strcmp(mode, "no-greeting") == 0)
		wait_eof();
	if (strcmp(mode, "slow-greeting") == 0)
		msleep(arg ? atol(arg) : 1000);
	if (strcmp(mode, "bad-greeting") == 0) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "hello", json_object_new_int(1));
		send_json(o);
		wait_eof();
	}
	if (strcmp(mode, "garbage-greeting") == 0) {
		write_str("Welcome to the machine\r\n");
		wait_eof();
	}
	send_json(greeting());

	for (bool first = true;; first = false) {
		json_object *o = read_command();
		if (!o)
			return 0;
		const char *cmd;
		json_object *args, *id;
		if (valid_command(o, first, &cmd, &args, &id)) {
			if (first && strcmp(mode, "caps-error") == 0) {
				send_json(err_reply("CommandNotFound", "Capabilities negotiation is already complete", id));
			} else if (first) {
				send_json(ok_reply(NULL, id));
				if (strcmp(mode, "deaf") == 0)
					for (;;)
						pause();
				if (strcmp(mode, "close-after-caps") == 0) {
					close(cfd);
					msleep(5000);
					return 0;
				}
			} else {
				misbehave(cmd, args, id);
			}
		}
		json_object_put(o);
	}
}
