/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/vm/view.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/clock.h"
#include "common/json.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "common/xalloc.h"

/* Connections answered per wake-up of the agent. */
#define VIEW_PER_WAKE 4

static const char *const view_queries[] = { "query-status", "query-block", "query-blockstats" };

static int left_ms(long long deadline)
{
	long long left = deadline - kl_monotonic_ms();
	return left < 1 ? 0 : left > 1000000 ? 1000000 : (int)left;
}

/* ---- connecting ---- */

static int check_peer(int fd, const char *name, pid_t pid, uid_t uid, struct kl_error *err)
{
	struct ucred cred;
	socklen_t len = sizeof cred;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return kl_error_errno(err, errno, "%s: SO_PEERCRED", name);
	if (cred.uid != uid)
		return kl_error_fail(err, "%s: served by uid %u, not uid %u (the VM's owner): refusing it", name,
				     (unsigned)cred.uid, (unsigned)uid);
	if (pid > 0 && cred.pid != pid)
		return kl_error_fail(err, "%s: served by pid %d, not by the VM's QEMU (pid %d): refusing it", name,
				     (int)cred.pid, (int)pid);
	return 0;
}

int kl_vm_connect_at(const struct kl_statedir *d, const char *name, pid_t pid, uid_t uid, int timeout_ms,
		     struct kl_error *err)
{
	long long deadline = kl_monotonic_ms() + timeout_ms;
	struct sockaddr_un sa;
	socklen_t len;
	if (kl_statedir_sockaddr(d, name, &sa, &len) < 0)
		return kl_error_fail(err, "%s/%s: no socket address fits", d->path, name);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return kl_error_errno(err, errno, "socket");
	/* A full backlog says EAGAIN: wait for room, up to the deadline. */
	while (connect(fd, (struct sockaddr *)&sa, len) < 0) {
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || left_ms(deadline) == 0)
			return kl_error_errno(err, errno == EAGAIN ? ETIMEDOUT : errno, "cannot connect to %s/%s",
					      d->path, name);
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (check_peer(fd, name, pid, uid, err) < 0)
		return -1;
	return steal_fd(&fd);
}

static int entry_connect(const struct kl_state_entry *e, const char *suffix, int timeout_ms, struct kl_error *err)
{
	struct kl_statedir d = { e->dirfd, e->dir, e->owner };
	_cleanup_free_ char *name = xasprintf("%s%s", e->stem, suffix);
	return kl_vm_connect_at(&d, name, e->pid, e->owner, timeout_ms, err);
}

int kl_vm_qmp(const struct kl_state_entry *e, int timeout_ms, struct qmp_client **out, struct kl_error *err)
{
	long long deadline = kl_monotonic_ms() + timeout_ms;
	*out = NULL;
	if (kl_state_may_drive(e, err) < 0)
		return -1;
	int fd = entry_connect(e, ".qmp.sock", timeout_ms, err);
	if (fd < 0)
		return -1;
	if (qmp_connect_fd(fd, left_ms(deadline), out, err) < 0) {
		close(fd);
		return -1;
	}
	return 0;
}

/* ---- the client of the view ---- */

static int read_view(int fd, long long deadline, json_object **out, struct kl_error *err)
{
	struct strbuf b = STRBUF_INIT;
	char buf[16384];
	int rc = -1;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, left_ms(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			kl_error_errno(err, r == 0 ? ETIMEDOUT : errno, "view");
			goto out;
		}
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			kl_error_errno(err, errno, "view");
			goto out;
		}
		if (n == 0)
			break;
		strbuf_append_len(&b, buf, (size_t)n);
		if (b.len > KL_VIEW_MAX_BYTES) {
			kl_error_fail(err, "view: answer larger than %d bytes", KL_VIEW_MAX_BYTES);
			goto out;
		}
	}
	*out = json_tokener_parse(strbuf_str(&b));
	if (!*out || !json_object_is_type(*out, json_type_object)) {
		if (*out)
			json_object_put(*out);
		*out = NULL;
		kl_error_fail(err, "view: not a JSON object");
		goto out;
	}
	rc = 0;
out:
	strbuf_free(&b);
	return rc;
}

static json_object *take(json_object *o, const char *key)
{
	json_object *v;
	return json_object_object_get_ex(o, key, &v) && v ? json_object_get(v) : NULL;
}

static int live_from_view(const struct kl_state_entry *e, int timeout_ms, json_object **outs[3], struct kl_error *err)
{
	long long deadline = kl_monotonic_ms() + timeout_ms;
	_cleanup_close_ int fd = entry_connect(e, ".view.sock", timeout_ms, err);
	if (fd < 0)
		return -1;
	_cleanup_json_ json_object *doc = NULL;
	if (read_view(fd, deadline, &doc, err) < 0)
		return -1;
	const char *why = kl_json_str(doc, "error");
	if (why)
		return kl_error_fail(err, "view: %s", why);
	for (size_t i = 0; i < 3; i++)
		*outs[i] = take(doc, view_queries[i]);
	return 0;
}

static int live_from_qmp(const struct kl_state_entry *e, int timeout_ms, json_object **outs[3], struct kl_error *err)
{
	long long deadline = kl_monotonic_ms() + timeout_ms;
	struct qmp_client *c = NULL;
	if (kl_vm_qmp(e, timeout_ms, &c, err) < 0) {
		kl_error_prefix(err, "monitor");
		return -1;
	}
	for (size_t i = 0; i < 3; i++) {
		int left = left_ms(deadline);
		if (qmp_execute(c, view_queries[i], NULL, left ? left : 1, outs[i], err) < 0) {
			kl_error_prefix(err, "%s", view_queries[i]);
			qmp_close(c);
			return -1;
		}
	}
	qmp_close(c);
	return 0;
}

int kl_vm_live(const struct kl_state_entry *e, int timeout_ms, json_object **status, json_object **blocks,
	       json_object **stats, struct kl_error *err)
{
	json_object **outs[3] = { status, blocks, stats };
	int r = kl_state_may_drive(e, NULL) == 0 ? live_from_qmp(e, timeout_ms, outs, err)
						   : live_from_view(e, timeout_ms, outs, err);
	if (r < 0)
		for (size_t i = 0; i < 3; i++)
			if (*outs[i]) {
				json_object_put(*outs[i]);
				*outs[i] = NULL;
			}
	return r;
}

/* ---- the agent's side ---- */

static json_object *view_answer(struct qmp_client *qmp, long long deadline)
{
	json_object *o = json_object_new_object();
	struct kl_error err = KL_ERROR_INIT;
	if (!qmp) {
		json_object_object_add(o, "error", json_object_new_string("the agent has no monitor connection"));
		return o;
	}
	for (size_t i = 0; i < 3; i++) {
		json_object *ret = NULL;
		int left = left_ms(deadline);
		if (qmp_execute(qmp, view_queries[i], NULL, left ? left : 1, &ret, &err) < 0) {
			json_object_put(o);
			o = json_object_new_object();
			_cleanup_free_ char *msg = xasprintf("%s: %s", view_queries[i], err.msg);
			json_object_object_add(o, "error", json_object_new_string(msg));
			return o;
		}
		json_object_object_add(o, view_queries[i], ret);
	}
	return o;
}

static void write_all(int fd, const char *s, size_t len, long long deadline)
{
	size_t off = 0;
	while (off < len) {
		ssize_t n = send(fd, s + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return;
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		if (poll(&p, 1, left_ms(deadline)) <= 0)
			return; /* a client that does not read is dropped */
	}
}

void kl_view_serve(int listen_fd, struct qmp_client *qmp)
{
	for (int i = 0; i < VIEW_PER_WAKE; i++) {
		_cleanup_close_ int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		long long deadline = kl_monotonic_ms() + KL_VIEW_SERVE_MS;
		_cleanup_json_ json_object *o = view_answer(qmp, deadline);
		const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
		write_all(fd, text, strlen(text), deadline);
	}
}
