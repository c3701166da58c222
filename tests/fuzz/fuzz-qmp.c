/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Fuzz target: the QMP client's reader (qmp/qmp.c) and what kvm-launch does
 * with QMP replies (launcher/set.c: kl_block_find, kl_throttle_*;
 * launcher/qemu_caps.c: the io_uring schema check).  The input is
 * everything "QEMU" sends, written into one end of a socketpair by a thread
 * and then closed; the client connects over the other end
 * (qmp_connect_fd: greeting + qmp_capabilities, id "kl-1"), runs
 * query-block ("kl-2") and query-qmp-schema ("kl-3"), and drains events.
 * The peer's EOF ends every wait, so no timeout is ever reached.
 *
 * Invariants (a broken one aborts): a failed call leaves an error message
 * and, once the stream is lost, every later call fails at once; a reply
 * is always handed out as the caller asked; events are objects with a
 * string "event". */
#include "fuzz.h"

#include <errno.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/json.h"
#include "qmp/qmp.h"
#include "launcher/vm/block.h"
#include "launcher/vm/state.h"

/* schema_has_io_uring() is static: take the file as it is. */
#include "launcher/qemu_caps.c"

#define FUZZ_MAX_INPUT (1024 * 1024)
#define TIMEOUT_MS 5000

struct writer {
	int fd;
	const uint8_t *data;
	size_t size;
};

static void *write_all(void *arg)
{
	struct writer *w = arg;
	size_t off = 0;
	while (off < w->size) {
		ssize_t n = send(w->fd, w->data + off, w->size - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* the client closed its end */
		off += (size_t)n;
	}
	shutdown(w->fd, SHUT_WR);
	return NULL;
}

static void use_blocks(json_object *blocks)
{
	static const char *const disks[] = {
		"{\"id\":\"virtio-disk0\",\"node\":\"libvirt-1-format\"}",
		"{\"id\":\"vd0\"}",
		"{\"node\":\"drive0\"}",
		"{}",
	};
	json_object *set = json_tokener_parse("{\"iops\":100,\"bps_max\":0,\"bps\":0,\"group\":\"g\"}");
	for (size_t i = 0; i < sizeof disks / sizeof *disks; i++) {
		json_object *disk = json_tokener_parse(disks[i]);
		json_object *b = kl_block_find(blocks, disk);
		if (b) {
			json_object *args = kl_throttle_args(b, set);
			FUZZ_CHECK(json_object_is_type(args, json_type_object));
			json_object_put(args);
			json_object *cur = kl_throttle_current(b);
			char *text = kl_throttle_text(cur);
			FUZZ_CHECK(text != NULL);
			free(text);
			json_object_put(cur);
		}
		json_object_put(disk);
	}
	/* Every entry, as --status and --set walk them. */
	size_t n = json_object_is_type(blocks, json_type_array) ? json_object_array_length(blocks) : 0;
	for (size_t i = 0; i < n && i < 64; i++) {
		json_object *e = json_object_array_get_idx(blocks, i);
		char *id = kl_qdev_id(kl_json_str(e, "qdev"));
		free(id);
		json_object *cur = kl_throttle_current(e);
		free(kl_throttle_text(cur));
		json_object_put(cur);
	}
	json_object_put(set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_quiet();
	if (size > FUZZ_MAX_INPUT)
		return 0;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	struct writer w = { sv[1], data, size };
	pthread_t t;
	if (pthread_create(&t, NULL, write_all, &w) != 0)
		abort();

	struct qmp_client *c = NULL;
	struct kl_error err = KL_ERROR_INIT;
	if (qmp_connect_fd(sv[0], TIMEOUT_MS, &c, &err) < 0) {
		FUZZ_CHECK(c == NULL && err.set && err.msg[0]);
		close(sv[0]);
	} else {
		int major, minor, micro;
		if (qmp_qemu_version(c, &major, &minor, &micro) == 0)
			FUZZ_CHECK(major >= 0 && minor >= 0 && micro >= 0);
		(void)qmp_greeting(c);

		json_object *ret = NULL;
		kl_error_clear(&err);
		int r = qmp_execute(c, "query-block", NULL, TIMEOUT_MS, &ret, &err);
		if (r == 0) {
			use_blocks(ret);
			json_object_put(ret);
		} else {
			FUZZ_CHECK(ret == NULL && err.set);
			FUZZ_CHECK(err.errnum != ETIMEDOUT); /* EOF ends every wait */
		}
		bool usable = qmp_usable(c);

		ret = NULL;
		kl_error_clear(&err);
		r = qmp_execute(c, "query-qmp-schema", NULL, TIMEOUT_MS, &ret, &err);
		if (!usable)
			FUZZ_CHECK(r < 0 && strstr(err.msg, "unusable"));
		if (r == 0) {
			(void)schema_has_io_uring(ret);
			json_object_put(ret);
		}

		json_object *ev;
		int k = 0;
		while (k++ < 2000 && (r = qmp_next_event(c, 0, &ev, &err)) == 1) {
			FUZZ_CHECK(json_object_is_type(ev, json_type_object));
			json_object *name;
			FUZZ_CHECK(json_object_object_get_ex(ev, "event", &name) &&
				   json_object_is_type(name, json_type_string));
			json_object_put(ev);
		}
		(void)qmp_dropped_events(c);
		qmp_close(c);
	}
	pthread_join(t, NULL);
	close(sv[1]);
	return 0;
}
