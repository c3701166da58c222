/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/qemu_caps.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cachedir.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "common/safefile.h"
#include "qmp/qmp.h"

#define CAPS_FILE "qemu-caps.json"
#define PROBE_TIMEOUT_MS 10000

static char *binary_identity(const char *qemu, struct kl_error *err)
{
	struct stat st;
	if (stat(qemu, &st) < 0) {
		kl_error_errno(err, errno, "stat %s", qemu);
		return NULL;
	}
	return xasprintf("%llu:%llu:%lld:%lld.%09ld", (unsigned long long)st.st_dev,
			 (unsigned long long)st.st_ino, (long long)st.st_size,
			 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

/* The schema lists enum BlockdevAioOptions with "io_uring" only when QEMU
 * was built with CONFIG_LINUX_IO_URING. */
static bool schema_has_io_uring(json_object *schema)
{
	size_t n = json_object_is_type(schema, json_type_array) ? json_object_array_length(schema) : 0;
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(schema, i), *mt, *values;
		if (!json_object_object_get_ex(e, "meta-type", &mt) || !json_object_is_type(mt, json_type_string) ||
		    strcmp(json_object_get_string(mt), "enum") != 0 ||
		    !json_object_object_get_ex(e, "values", &values) ||
		    !json_object_is_type(values, json_type_array))
			continue;
		bool has_threads = false, has_uring = false;
		for (size_t j = 0; j < json_object_array_length(values); j++) {
			const char *v = json_object_get_string(json_object_array_get_idx(values, j));
			if (!v)
				continue;
			has_threads |= strcmp(v, "threads") == 0;
			has_uring |= strcmp(v, "io_uring") == 0;
		}
		if (has_threads && has_uring)
			return true;
	}
	return false;
}

static void reap(pid_t pid)
{
	for (int i = 0; i < 200; i++) {
		if (waitpid(pid, NULL, WNOHANG) != 0)
			return;
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static int ask_qemu(const char *qemu, enum kl_tri *out, struct kl_error *err)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return kl_error_errno(err, errno, "socketpair");
	pid_t pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return kl_error_errno(err, errno, "fork");
	}
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (dup2(sv[1], 0) < 0 || dup2(sv[1], 1) < 0 || (null >= 0 && dup2(null, 2) < 0))
			_exit(127);
		char *const args[] = { (char *)qemu, "-machine", "none", "-nodefaults", "-no-user-config",
				       "-display", "none", "-S", "-qmp", "stdio", NULL };
		execv(qemu, args);
		_exit(127);
	}
	close(sv[1]);

	struct qmp_client *c = NULL;
	_cleanup_json_ json_object *schema = NULL;
	int r = qmp_connect_fd(sv[0], PROBE_TIMEOUT_MS, &c, err);
	if (r == 0)
		r = qmp_execute(c, "query-qmp-schema", NULL, PROBE_TIMEOUT_MS, &schema, err);
	if (r == 0) {
		*out = schema_has_io_uring(schema) ? KL_TRI_YES : KL_TRI_NO;
		qmp_execute(c, "quit", NULL, 1000, NULL, NULL);
	}
	if (c)
		qmp_close(c);
	else
		close(sv[0]);
	reap(pid);
	if (r < 0)
		kl_error_prefix(err, "asking %s for its capabilities", qemu);
	return r;
}

/* The cache, read in one open from the caller's own cache directory (common/cachedir.h):
 * a file another uid wrote, a symlink, a FIFO or a huge file is ignored (debug), never followed. */
static json_object *read_cache(int dirfd, const char *dir)
{
	struct kl_error err = KL_ERROR_INIT;
	_cleanup_free_ char *text = NULL;
	if (kl_read_at(dirfd, CAPS_FILE, geteuid(), KL_CACHE_FILE_MAX, &text, NULL, &err) < 0) {
		if (err.errnum != ENOENT)
			kl_debug("QEMU capability cache %s/%s ignored: %s", dir, CAPS_FILE, err.msg);
		return NULL;
	}
	json_object *o = json_tokener_parse(text);
	if (o && !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		o = NULL;
	}
	if (!o)
		kl_debug("QEMU capability cache %s/%s ignored: not a JSON object", dir, CAPS_FILE);
	return o;
}

/* The cached answer for this binary, when its identity still matches. */
static bool cached_answer(json_object *cache, const char *qemu, const char *id, enum kl_tri *out)
{
	json_object *entry, *v;
	if (!cache || !json_object_object_get_ex(cache, qemu, &entry) ||
	    !json_object_object_get_ex(entry, "id", &v) || !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), id) != 0 ||
	    !json_object_object_get_ex(entry, "io_uring", &v) || !json_object_is_type(v, json_type_boolean))
		return false;
	*out = json_object_get_boolean(v) ? KL_TRI_YES : KL_TRI_NO;
	return true;
}

int kl_qemu_io_uring(const char *qemu, const char *cache_dir, enum kl_tri *out, struct kl_error *err)
{
	_cleanup_free_ char *id = binary_identity(qemu, err);
	*out = KL_TRI_UNKNOWN;
	if (!id)
		return -1;

	struct kl_error derr = KL_ERROR_INIT;
	_cleanup_free_ char *dir = NULL;
	_cleanup_close_ int dirfd = cache_dir ? kl_cache_dir_open(cache_dir, true, &dir, &derr) : -1;
	if (cache_dir && dirfd < 0)
		kl_debug("QEMU capability cache not used: %s", derr.msg);
	_cleanup_json_ json_object *cache = dirfd >= 0 ? read_cache(dirfd, dir) : NULL;
	if (cached_answer(cache, qemu, id, out))
		return 0;
	kl_debug("asking %s for its capabilities (no cached answer for this binary)", qemu);
	if (ask_qemu(qemu, out, err) < 0)
		return -1;
	if (dirfd < 0)
		return 0;

	/* Best effort: a cache we cannot write costs one QEMU start per launch. */
	if (!cache)
		cache = json_object_new_object();
	json_object *entry = json_object_new_object();
	json_object_object_add(entry, "id", json_object_new_string(id));
	json_object_object_add(entry, "io_uring", json_object_new_boolean(*out == KL_TRI_YES));
	json_object_object_add(cache, qemu, entry);
	const char *text =
		json_object_to_json_string_ext(cache, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
	struct kl_error werr = KL_ERROR_INIT;
	if (kl_write_at(dirfd, CAPS_FILE, text, strlen(text), kl_cache_file_mode(), &werr) < 0)
		kl_debug("cannot cache QEMU capabilities in %s: %s", dir, werr.msg);
	return 0;
}
