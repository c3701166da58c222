/* SPDX-License-Identifier: GPL-2.0-or-later */
/* One blockdev-add through the launch pipeline (parse, probe, decide,
 * rewrite: launcher/launch.c, the very code the command line goes through),
 * in a child process with a deadline, so that a crash or a hang in a probe
 * costs one rewrite, never the relay. */
#include "launcher/vm/relay-int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/strbuf.h"
#include "common/xalloc.h"
#include "common/json.h"
#include "launcher/prepare.h"
#include "launcher/vm/state.h"
#include "policy/calibrate/calibrate.h"
#include "policy/policy.h"
#include "policy/probe/probe.h"

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#define CHILD_OUT_FD 3
#define MAX_RESULT (1024 * 1024)

static struct kl_policy *child_policy(const char *path, struct kl_error *err)
{
	struct kl_policy *p = NULL;
	struct strvec warnings = STRVEC_INIT;
	if (!*path || (access(path, F_OK) < 0 && errno == ENOENT))
		return kl_policy_builtin();
	if (kl_policy_check_file_safety(path, err) < 0 || kl_policy_load_file(path, &p, &warnings, err) < 0)
		p = NULL;
	strvec_free(&warnings);
	return p;
}

static _Noreturn void child_fail(const char *msg)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	json_object_object_add(o, "error", json_object_new_string(msg));
	const char *s = json_object_to_json_string(o);
	if (write(CHILD_OUT_FD, s, strlen(s)) < 0) {
		/* the parent reads an empty answer as a failure */
	}
	_exit(1);
}

static void write_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(1);
		s += w;
		n -= (size_t)w;
	}
}

/* In the child: never returns.  opt is "-blockdev" (args_text JSON) or
 * "-drive" (args_text QemuOpts; the answer's "drive" is the rewritten text). */
static _Noreturn void child_decide(const struct kl_relay_ctx *c, const char *opt, const char *args_text)
{
	const char *inject = getenv("KL_TEST_RELAY_HOOK");
	if (inject && strcmp(inject, "crash") == 0)
		abort();
	if (inject && strcmp(inject, "hang") == 0)
		for (;;)
			pause();

	struct kl_error err = KL_ERROR_INIT;
	struct kl_policy *policy = child_policy(c->policy_path, &err);
	if (!policy)
		child_fail(err.msg);
	struct strbuf name = STRBUF_INIT;
	char *argv[4];
	int argc = 0;
	if (c->vm_name) {
		strbuf_append(&name, "guest=");
		for (const char *s = c->vm_name; *s; s++) {
			strbuf_appendc(&name, *s);
			if (*s == ',')
				strbuf_appendc(&name, ','); /* QemuOpts escaping */
		}
		argv[argc++] = (char *)"-name";
		argv[argc++] = (char *)strbuf_str(&name);
	}
	argv[argc++] = (char *)opt;
	argv[argc++] = (char *)args_text;
	struct kl_launch l = { 0 };
	l.qemu = xstrdup(c->qemu);
	l.argc = argc;
	l.argv = argv;
	struct kl_prepare_config cfg = {
		.probe_env = &kl_probe_env_real,
		.cache_dir = *c->cache_dir ? c->cache_dir : NULL,
		.lookup_calibration = kl_calibration_lookup,
	};
	if (kl_launch_prepare(&l, policy, &cfg, &err) < 0)
		child_fail(err.msg);
	if (l.untouched_why)
		child_fail(l.untouched_why);
	if (l.ndisks != 1)
		child_fail("not one disk");
	_cleanup_json_ json_object *st = kl_state_to_json(&l);
	json_object *disks = json_object_object_get(st, "disks");
	const char *last = l.exec_argv.n ? l.exec_argv.v[l.exec_argv.n - 1] : NULL;
	bool drive = strcmp(opt, "-drive") == 0;
	json_object *args = !last ? NULL : drive ? json_object_new_string(last) : json_tokener_parse(last);
	if (!args || !disks || json_object_array_length(disks) != 1)
		child_fail("the rewritten node does not parse");
	_cleanup_json_ json_object *out = json_object_new_object();
	json_object_object_add(out, drive ? "drive" : "arguments", args);
	json_object_object_add(out, "disk", json_object_get(json_object_array_get_idx(disks, 0)));
	json_object_object_add(out, "changed", json_object_new_boolean(l.disks[0].decision.changed));
	const char *s = json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN);
	write_all(CHILD_OUT_FD, s, strlen(s));
	_exit(0);
}

/* Read the child's answer until EOF or the deadline.  0 at EOF, -1 late or too big. */
static int read_answer(int fd, struct strbuf *b, long long deadline)
{
	char buf[4096];
	for (;;) {
		long long left = deadline - kl_monotonic_ms();
		if (left <= 0)
			return -1;
		struct pollfd p = { fd, POLLIN, 0 };
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 ? 0 : -1;
		strbuf_append_len(b, buf, (size_t)n);
		if (b->len > MAX_RESULT)
			return -1;
	}
}

static int decide_text(const struct kl_relay_ctx *c, const char *opt, const char *text, json_object **out, char *why,
		       size_t whylen)
{
	*out = NULL;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(why, whylen, "pipe: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		/* Nothing of the relay's (client, QEMU, listener) stays open here. */
		kl_log_set_fd(-1);
		if (dup2(p[1], CHILD_OUT_FD) < 0)
			_exit(1);
		if (syscall(SYS_close_range, CHILD_OUT_FD + 1U, ~0U, 0) < 0) {
			/* Old kernel: the fds stay open in a child that lives 2 s at most. */
		}
		child_decide(c, opt, text);
	}
	close(p[1]);
	struct strbuf b = STRBUF_INIT;
	int r = read_answer(p[0], &b, kl_monotonic_ms() + KL_RELAY_HOOK_DEADLINE_MS);
	close(p[0]);
	if (r < 0)
		kill(pid, SIGKILL);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	json_object *res = b.len ? json_tokener_parse(strbuf_str(&b)) : NULL;
	strbuf_free(&b);
	if (r < 0) {
		snprintf(why, whylen, "no decision within %d ms (probe killed)", KL_RELAY_HOOK_DEADLINE_MS);
	} else if (WIFSIGNALED(status)) {
		snprintf(why, whylen, "the probe crashed (signal %d)", WTERMSIG(status));
	} else if (!res || !json_object_is_type(res, json_type_object)) {
		snprintf(why, whylen, "the probe gave no answer (exit %d)", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	} else if (kl_json_str(res, "error")) {
		snprintf(why, whylen, "%s", kl_json_str(res, "error"));
	} else if (!(strcmp(opt, "-drive") == 0 ? kl_json_str(res, "drive") != NULL
						  : kl_json_get(res, "arguments", json_type_object) != NULL) ||
		   !kl_json_get(res, "disk", json_type_object)) {
		snprintf(why, whylen, "the probe's answer is incomplete");
	} else {
		*out = res;
		return 0;
	}
	json_object_put(res);
	return -1;
}

int kl_relay_decide(const struct kl_relay_ctx *c, json_object *args, json_object **out, char *why, size_t whylen)
{
	const char *text = json_object_to_json_string_ext(args, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	return decide_text(c, "-blockdev", text, out, why, whylen);
}

int kl_relay_decide_drive(const struct kl_relay_ctx *c, const char *drive, json_object **out, char *why, size_t whylen)
{
	return decide_text(c, "-drive", drive, out, why, whylen);
}
