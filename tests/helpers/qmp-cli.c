/* SPDX-License-Identifier: GPL-2.0-or-later */
/* qmp-cli: run one QMP command with the qmp/ client, for shell tests.
 *
 *   qmp-cli [OPTIONS] SOCKET COMMAND [ARGS-JSON]
 *   qmp-cli [OPTIONS] --stdio COMMAND [ARGS-JSON] -- PROGRAM [ARG]...
 *
 * Prints the "return" value as one line of JSON.  --stdio runs PROGRAM (e.g.
 * QEMU with `-qmp stdio`) with one end of a socketpair as its stdin and
 * stdout and talks to it through qmp_connect_fd; PROGRAM is stopped
 * afterwards (unless the command was quit, after which it exits by itself).
 *
 *   -t MS   timeout of the connection and of the command (default 10000)
 *   -w      wait for SOCKET to appear (qmp_connect_wait)
 *   -T      wire trace on stderr
 *   -E MS   after the command, print the events that arrive within MS ms,
 *           one line each: "event {json}"
 *   -n N    with -E, stop after N events
 *
 * Exit: 0 success, 1 QMP error reply (its "CLASS: desc" on stderr), 2 any
 * other failure (usage, connection, timeout, protocol). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/error.h"
#include "qmp/qmp.h"

#define PRINT_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static _Noreturn void usage(void)
{
	fprintf(stderr, "usage: qmp-cli [-t MS] [-w] [-T] [-E MS [-n N]] SOCKET COMMAND [ARGS-JSON]\n"
			"       qmp-cli [OPTIONS] --stdio COMMAND [ARGS-JSON] -- PROGRAM [ARG]...\n");
	exit(2);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static int fail(const struct kl_error *err)
{
	fprintf(stderr, "qmp-cli: %s\n", err->msg);
	return 2;
}

static pid_t spawn(char **argv, int *fd_out)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("qmp-cli: socketpair");
		return -1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		perror("qmp-cli: fork");
		return -1;
	}
	if (pid == 0) {
		if (dup2(sv[1], 0) < 0 || dup2(sv[1], 1) < 0)
			_exit(127);
		execvp(argv[0], argv);
		fprintf(stderr, "qmp-cli: %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(sv[1]);
	*fd_out = sv[0];
	return pid;
}

static void reap(pid_t pid, bool wait_exit)
{
	if (wait_exit) {
		for (int i = 0; i < 1000 && waitpid(pid, NULL, WNOHANG) == 0; i++)
			nanosleep(&(struct timespec){ 0, 10000000 }, NULL);
	}
	if (kill(pid, SIGTERM) == 0)
		waitpid(pid, NULL, 0);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "stdio", no_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	int timeout = 10000, event_ms = -1, max_events = -1, opt;
	bool wait = false, stdio = false;
	while ((opt = getopt_long(argc, argv, "+t:wTE:n:", longopts, NULL)) != -1) {
		switch (opt) {
		case 't': timeout = atoi(optarg); break;
		case 'w': wait = true; break;
		case 'T': qmp_set_default_trace(stderr); break;
		case 'E': event_ms = atoi(optarg); break;
		case 'n': max_events = atoi(optarg); break;
		case 'S': stdio = true; break;
		default: usage();
		}
	}
	const char *socket_path = NULL;
	char **program = NULL;
	if (!stdio) {
		if (argc - optind < 2 || argc - optind > 3)
			usage();
		socket_path = argv[optind++];
	}
	if (optind >= argc)
		usage();
	const char *command = argv[optind++];
	const char *args_text = NULL;
	if (optind < argc && strcmp(argv[optind], "--") != 0)
		args_text = argv[optind++];
	if (stdio) {
		if (optind >= argc || strcmp(argv[optind], "--") != 0 || optind + 1 >= argc)
			usage();
		program = argv + optind + 1;
	} else if (optind != argc) {
		usage();
	}

	_cleanup_json_ json_object *args = NULL;
	if (args_text) {
		enum json_tokener_error jerr;
		args = json_tokener_parse_verbose(args_text, &jerr);
		if (!json_object_is_type(args, json_type_object)) {
			fprintf(stderr, "qmp-cli: ARGS-JSON must be a JSON object: %s\n",
				args ? "not an object" : json_tokener_error_desc(jerr));
			return 2;
		}
	}

	struct kl_error err = KL_ERROR_INIT;
	struct qmp_client *c = NULL;
	pid_t child = -1;
	if (stdio) {
		int fd;
		child = spawn(program, &fd);
		if (child < 0)
			return 2;
		if (qmp_connect_fd(fd, timeout, &c, &err) < 0) {
			close(fd);
			reap(child, false);
			return fail(&err);
		}
	} else if ((wait ? qmp_connect_wait : qmp_connect)(socket_path, timeout, &c, &err) < 0) {
		return fail(&err);
	}

	int rc = 0;
	json_object *ret = NULL;
	if (qmp_execute(c, command, args, timeout, &ret, &err) < 0) {
		fprintf(stderr, "%s%s\n", err.errnum == 0 ? "" : "qmp-cli: ", err.msg);
		rc = err.errnum == 0 ? 1 : 2;
	} else {
		printf("%s\n", ret ? json_object_to_json_string_ext(ret, PRINT_FLAGS) : "null");
		fflush(stdout);
		json_object_put(ret);
	}

	if (rc == 0 && event_ms >= 0) {
		long long until = now_ms() + event_ms;
		for (int n = 0; max_events < 0 || n < max_events; n++) {
			long long left = until - now_ms();
			json_object *ev = NULL;
			int r = qmp_next_event(c, left > 0 ? (int)left : 0, &ev, &err);
			if (r < 0) {
				rc = fail(&err);
				break;
			}
			if (r == 0)
				break;
			printf("event %s\n", json_object_to_json_string_ext(ev, PRINT_FLAGS));
			fflush(stdout);
			json_object_put(ev);
		}
	}
	qmp_close(c);
	if (child > 0)
		reap(child, strcmp(command, "quit") == 0);
	return rc;
}
