#include "launcher/vm/state.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "common/cleanup.h"
#include "common/fileutil.h"
#include "common/log.h"
#include "common/xalloc.h"

#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/* ---- small helpers ---- */

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static bool name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

const char *kl_js_str(json_object *o, const char *key)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

long long kl_js_int(json_object *o, const char *key, long long dflt)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return dflt;
	return (long long)json_object_get_int64(v);
}

bool kl_js_bool(json_object *o, const char *key, bool dflt)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_boolean))
		return dflt;
	return json_object_get_boolean(v);
}

json_object *kl_js_get(json_object *o, const char *key, json_type type)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, type))
		return NULL;
	return v;
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

static const char *base_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

char *kl_state_qemu_escape(const char *s)
{
	struct strbuf b = STRBUF_INIT;
	for (; *s; s++) {
		strbuf_appendc(&b, *s);
		if (*s == ',')
			strbuf_appendc(&b, ',');
	}
	return strbuf_steal(&b);
}

/* ---- names ---- */

char *kl_state_name(const char *vm_name, pid_t pid)
{
	if (!vm_name || !*vm_name)
		return xasprintf("pid-%d", (int)pid);

	struct strbuf b = STRBUF_INIT;
	bool changed = false;
	size_t i;
	for (i = 0; vm_name[i] && b.len < KL_STATE_NAME_MAX; i++) {
		char c = vm_name[i];
		if (!name_char_ok(c) || (b.len == 0 && c == '.')) {
			c = '_';
			changed = true;
		}
		strbuf_appendc(&b, c);
	}
	if (vm_name[i])
		changed = true; /* cut */
	if (changed) {
		uint64_t h = fnv1a(vm_name);
		strbuf_appendf(&b, "-%08x", (unsigned)(uint32_t)(h ^ (h >> 32)));
	}
	return strbuf_steal(&b);
}

/* ---- the directory ---- */

static int mkdir_parents(const char *dir, struct kl_error *err)
{
	_cleanup_free_ char *p = xstrdup(dir);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return kl_error_errno(err, errno, "cannot create %s", p);
		*s = '/';
	}
	return 0;
}

static int check_dir_fd(int fd, const char *dir, bool fix_mode, struct kl_error *err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return kl_error_errno(err, errno, "%s", dir);
	if (!S_ISDIR(st.st_mode))
		return kl_error_fail(err, "%s: not a directory", dir);
	if (st.st_uid != geteuid() && st.st_uid != 0)
		return kl_error_fail(err, "%s: owned by uid %u, neither us nor root: refusing it", dir,
				     (unsigned)st.st_uid);
	if (st.st_mode & S_IWOTH)
		return kl_error_fail(err, "%s: writable by everyone (mode %04o): refusing it", dir,
				     (unsigned)(st.st_mode & 07777));
	if (st.st_mode & (S_IROTH | S_IXOTH)) {
		if (!fix_mode || st.st_uid != geteuid())
			return kl_error_fail(err, "%s: accessible by everyone (mode %04o): refusing it", dir,
					     (unsigned)(st.st_mode & 07777));
		if (fchmod(fd, st.st_mode & 0770) < 0)
			return kl_error_errno(err, errno, "%s: cannot remove world access", dir);
	}
	return 0;
}

int kl_state_dir_ensure(const char *dir, struct kl_error *err)
{
	if (!dir || !*dir)
		return kl_error_fail(err, "empty state directory name");
	if (mkdir_parents(dir, err) < 0)
		return -1;
	if (mkdir(dir, 0750) < 0 && errno != EEXIST)
		return kl_error_errno(err, errno, "cannot create %s", dir);
	struct stat lst;
	if (lstat(dir, &lst) == 0 && S_ISLNK(lst.st_mode))
		return kl_error_fail(err, "%s: is a symbolic link: refusing it", dir);
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP || errno == ENOTDIR)
			return kl_error_fail(err, "%s: not a directory (or a symbolic link): refusing it", dir);
		return kl_error_errno(err, errno, "%s", dir);
	}
	if (check_dir_fd(fd, dir, true, err) < 0)
		return -1;
	if (access(dir, W_OK | X_OK) < 0)
		return kl_error_errno(err, errno, "%s: not writable", dir);
	return 0;
}

static char *short_socket_dir(void)
{
	if (geteuid() == 0)
		return xstrdup(KL_DEFAULT_STATE_DIR "/s");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (xdg && *xdg == '/')
		return xasprintf("%s/kvm-launch/s", xdg);
	return NULL;
}

static int ensure_short_dir(const char *sdir)
{
	_cleanup_free_ char *parent = dir_of(sdir);
	if (kl_state_dir_ensure(parent, NULL) < 0)
		return -1;
	if (mkdir(sdir, 0700) < 0 && errno != EEXIST)
		return -1;
	_cleanup_close_ int fd = open(sdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || check_dir_fd(fd, sdir, true, NULL) < 0)
		return -1;
	return 0;
}

int kl_state_socket_paths_in(const char *dir, const char *stem, pid_t pid, const char *sdir,
			     char **agent_out, char **query_out)
{
	char *a = xasprintf("%s/%s.agent.sock", dir, stem);
	char *q = xasprintf("%s/%s.qmp.sock", dir, stem);

	*agent_out = *query_out = NULL;
	if (strlen(a) <= SUN_PATH_MAX && strlen(q) <= SUN_PATH_MAX)
		goto done;
	free(a);
	free(q);
	a = xasprintf("%s/%d.a.sock", dir, (int)pid);
	q = xasprintf("%s/%d.q.sock", dir, (int)pid);
	if (strlen(a) <= SUN_PATH_MAX && strlen(q) <= SUN_PATH_MAX)
		goto done;
	free(a);
	free(q);
	a = q = NULL;
	if (sdir) {
		_cleanup_free_ char *key = xasprintf("%s/%s", dir, stem);
		unsigned long long h = (unsigned long long)fnv1a(key);
		a = xasprintf("%s/%016llx.a", sdir, h);
		q = xasprintf("%s/%016llx.q", sdir, h);
		if (strlen(a) <= SUN_PATH_MAX && strlen(q) <= SUN_PATH_MAX && ensure_short_dir(sdir) == 0)
			goto done;
		free(a);
		free(q);
	}
	return -1;
done:
	*agent_out = a;
	*query_out = q;
	return 0;
}

int kl_state_socket_paths(const char *dir, const char *stem, pid_t pid, char **agent_out, char **query_out)
{
	_cleanup_free_ char *sdir = short_socket_dir();
	return kl_state_socket_paths_in(dir, stem, pid, sdir, agent_out, query_out);
}

void kl_state_dirs(const char *state_dir, struct strvec *out)
{
	if (state_dir) {
		strvec_push_dup(out, state_dir);
		return;
	}
	strvec_push_dup(out, KL_DEFAULT_STATE_DIR);
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (geteuid() != 0 && xdg && *xdg == '/')
		strvec_pushf(out, "%s/kvm-launch", xdg);
}

/* ---- locking ---- */

/* flock() on the directory: every writer of a state file in it takes this
 * for its read-modify-write.  Returns the locked fd, or -1 (errno) after
 * timeout_ms. */
static int lock_dir(const char *dir, int timeout_ms)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	for (int waited = 0;; waited += 10) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		if (errno != EWOULDBLOCK && errno != EINTR)
			break;
		if (waited >= timeout_ms) {
			errno = ETIMEDOUT;
			break;
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	int e = errno;
	close(fd);
	errno = e;
	return -1;
}

/* ---- writing ---- */

int kl_state_write_json(const char *path, json_object *obj, struct kl_error *err)
{
	_cleanup_free_ char *text = xasprintf("%s\n", json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY |
										   JSON_C_TO_STRING_NOSLASHESCAPE));
	return kl_write_file_atomic(path, text, 0640, err);
}

int kl_state_read(const char *path, json_object **out, struct kl_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return kl_error_errno(err, errno, "cannot open %s", path);
	struct strbuf b = STRBUF_INIT;
	char buf[8192];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			strbuf_free(&b);
			return kl_error_errno(err, e, "cannot read %s", path);
		}
		if (n == 0)
			break;
		strbuf_append_len(&b, buf, (size_t)n);
		if (b.len > 64 * 1024 * 1024) {
			strbuf_free(&b);
			return kl_error_fail(err, "%s: too large", path);
		}
	}
	json_tokener *tok = json_tokener_new();
	json_object *o = json_tokener_parse_ex(tok, strbuf_str(&b), (int)b.len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	json_tokener_free(tok);
	strbuf_free(&b);
	if (!o || jerr != json_tokener_success) {
		if (o)
			json_object_put(o);
		return kl_error_fail(err, "%s: not valid JSON (%s)", path,
				     jerr == json_tokener_success ? "incomplete" : json_tokener_error_desc(jerr));
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return kl_error_fail(err, "%s: not a JSON object", path);
	}
	*out = o;
	return 0;
}

static json_object *tri_json(enum kl_tri t)
{
	return t == KL_TRI_UNKNOWN ? NULL : json_object_new_boolean(t == KL_TRI_YES);
}

static json_object *str_or_null(const char *s)
{
	return s && *s ? json_object_new_string(s) : NULL;
}

static json_object *strv_json(char *const *v, size_t n)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i] ? v[i] : ""));
	return a;
}

static json_object *throttle_json(const struct kl_throttle *t)
{
	json_object *o = json_object_new_object();
#define T(f) if (t->f) json_object_object_add(o, #f, json_object_new_int64(t->f))
	T(bps); T(bps_rd); T(bps_wr); T(iops); T(iops_rd); T(iops_wr);
	T(bps_max); T(bps_rd_max); T(bps_wr_max); T(iops_max); T(iops_rd_max); T(iops_wr_max);
	T(iops_size);
#undef T
	if (t->group[0])
		json_object_object_add(o, "group", json_object_new_string(t->group));
	return o;
}

/* The value QEMU runs with: UNSET means QEMU's default. */
static const char *effective_aio(const struct kl_disk_result *d)
{
	if (!d->takes_aio)
		return NULL;
	return d->aio == KL_AIO_UNSET ? "threads" : kl_aio_name(d->aio);
}

static json_object *disk_json(const struct kl_launch *l, size_t i)
{
	const struct kl_disk_result *d = &l->disks[i];
	const struct kl_disk_given *g = d->given;
	json_object *o = json_object_new_object();

	json_object_object_add(o, "id", str_or_null(g ? g->id : NULL));
	json_object_object_add(o, "node", str_or_null(g ? g->node : NULL));
	json_object_object_add(o, "path", str_or_null(g ? g->path : NULL));
	json_object_object_add(o, "driver", str_or_null(g ? g->driver : NULL));
	json_object_object_add(o, "backend", json_object_new_string(kl_backend_name(d->facts.backend)));
	json_object_object_add(o, "block_kind", str_or_null(kl_block_kind_name(d->facts.block_kind)));
	json_object_object_add(o, "fs", str_or_null(d->facts.fs));
	json_object_object_add(o, "format", str_or_null(d->facts.format[0] ? d->facts.format : g ? g->format : NULL));
	json_object_object_add(o, "preallocated", tri_json(d->facts.preallocated));
	json_object_object_add(o, "shared", tri_json(d->facts.shared));
	json_object_object_add(o, "odirect", tri_json(d->facts.odirect));
	json_object_object_add(o, "readonly", json_object_new_boolean(g && g->readonly));
	json_object_object_add(o, "given_aio", str_or_null(g ? kl_aio_name(g->aio) : NULL));
	json_object_object_add(o, "given_cache", str_or_null(g ? kl_cache_name(g->cache) : NULL));
	json_object_object_add(o, "aio", str_or_null(effective_aio(d)));
	json_object_object_add(o, "cache", json_object_new_string(
		d->cache == KL_CACHE_UNSET ? "writeback" : kl_cache_name(d->cache)));
	/* "cache" follows --set; this stays what the launch chose. */
	json_object_object_add(o, "policy_cache", json_object_new_string(
		d->cache == KL_CACHE_UNSET ? "writeback" : kl_cache_name(d->cache)));
	json_object_object_add(o, "takes_aio", json_object_new_boolean(d->takes_aio));
	json_object_object_add(o, "changed", json_object_new_boolean(d->decision.changed));
	json_object_object_add(o, "rule", str_or_null(d->decision.rule));
	json_object_object_add(o, "calibration", str_or_null(d->decision.calibration));
	json_object_object_add(o, "reasons", strv_json(d->decision.reasons.v, d->decision.reasons.n));
	if (d->decision.has_throttle)
		json_object_object_add(o, "throttle", throttle_json(&d->decision.throttle));
	return o;
}

json_object *kl_state_to_json(const struct kl_launch *l)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "version", json_object_new_int(KL_STATE_VERSION));
	json_object_object_add(o, "name", str_or_null(l->vm.name));
	if (l->state_file) {
		const char *b = base_of(l->state_file);
		size_t n = strlen(b);
		_cleanup_free_ char *stem = xstrndup(b, n > 5 && strcmp(b + n - 5, ".json") == 0 ? n - 5 : n);
		json_object_object_add(o, "stem", json_object_new_string(stem));
	}
	json_object_object_add(o, "pid", json_object_new_int64(l->pid));
	json_object_object_add(o, "start_ticks", json_object_new_int64((int64_t)l->start_ticks));
	json_object_object_add(o, "started", json_object_new_int64(l->started_unix));
	json_object_object_add(o, "running", json_object_new_boolean(true));
	json_object_object_add(o, "qemu", str_or_null(l->qemu));
	json_object_object_add(o, "argv_original", strv_json(l->argv, l->argc > 0 ? (size_t)l->argc : 0));
	json_object_object_add(o, "argv", strv_json(l->exec_argv.v, l->exec_argv.n));
	json_object_object_add(o, "state_dir", str_or_null(l->state_dir));
	json_object_object_add(o, "agent_socket", str_or_null(l->agent_socket));
	json_object_object_add(o, "query_socket", str_or_null(l->query_socket));
	json_object_object_add(o, "agent_log", str_or_null(l->agent_log));
	json_object_object_add(o, "incoming", json_object_new_boolean(l->vm.incoming));

	json_object *host = json_object_new_object();
	json_object_object_add(host, "io_uring", tri_json(l->host.io_uring_kernel));
	json_object_object_add(host, "io_uring_qemu", tri_json(l->host.io_uring_qemu));
	json_object_object_add(host, "libaio", tri_json(l->host.libaio));
	json_object_object_add(host, "libaio_headroom", tri_json(l->host.libaio_headroom));
	json_object_object_add(host, "aio_nr", l->host.aio_nr >= 0 ? json_object_new_int64(l->host.aio_nr) : NULL);
	json_object_object_add(host, "aio_max_nr",
			       l->host.aio_max_nr >= 0 ? json_object_new_int64(l->host.aio_max_nr) : NULL);
	json_object_object_add(o, "host", host);

	/* After a fail-open the disks were not all probed or decided: none are
	 * listed, QEMU runs them as given. */
	json_object *disks = json_object_new_array();
	for (size_t i = 0; !l->failed_open && i < l->ndisks; i++)
		json_object_array_add(disks, disk_json(l, i));
	json_object_object_add(o, "disks", disks);
	if (l->failed_open) {
		json_object_object_add(o, "failed_open", json_object_new_boolean(true));
		json_object_object_add(o, "failed_open_why", str_or_null(l->failed_open_why));
	}

	json_object *agent = json_object_new_object();
	json_object_object_add(agent, "pid", NULL);
	json_object_object_add(agent, "start_ticks", NULL);
	json_object_object_add(agent, "state", json_object_new_string(l->failed_open ? "none" : "starting"));
	json_object_object_add(agent, "applied", json_object_new_array());
	json_object_object_add(agent, "events", json_object_new_array());
	json_object_object_add(o, "agent", agent);
	json_object_object_add(o, "changes", json_object_new_array());
	return o;
}

int kl_state_write(const struct kl_launch *l, struct kl_error *err)
{
	if (!l->state_file || !l->state_dir)
		return kl_error_fail(err, "no state file chosen (kl_state_prepare was not called)");
	_cleanup_json_ json_object *o = kl_state_to_json(l);
	/* The lock keeps an agent of an earlier VM of the same name from
	 * removing this file while it cleans up after its own QEMU. */
	_cleanup_close_ int lock = lock_dir(l->state_dir, 2000);
	if (lock < 0)
		kl_debug("%s: cannot lock (%s): writing anyway", l->state_dir, strerror(errno));
	return kl_state_write_json(l->state_file, o, err);
}

/* ---- updating ---- */

int kl_state_update(const char *path, pid_t pid, unsigned long long start_ticks,
		    int (*fn)(json_object *state, void *ctx, struct kl_error *err), void *ctx,
		    bool *gone, struct kl_error *err)
{
	_cleanup_free_ char *dir = dir_of(path);
	_cleanup_json_ json_object *st = NULL;

	if (gone)
		*gone = false;
	_cleanup_close_ int lock = lock_dir(dir, 5000);
	if (lock < 0)
		return kl_error_errno(err, errno, "cannot lock %s", dir);
	if (kl_state_read(path, &st, err) < 0) {
		if (err && err->errnum == ENOENT) {
			kl_error_clear(err);
			if (gone)
				*gone = true;
			return 0;
		}
		return -1;
	}
	if (kl_js_int(st, "pid", -1) != (long long)pid ||
	    (start_ticks && (unsigned long long)kl_js_int(st, "start_ticks", 0) != start_ticks)) {
		if (gone)
			*gone = true;
		return 0;
	}
	int r = fn(st, ctx, err);
	if (r <= 0)
		return r;
	return kl_state_write_json(path, st, err);
}

/* ---- listing ---- */

static void entry_fill(struct kl_state_entry *e)
{
	json_object *j = e->json;
	const char *name = kl_js_str(j, "name");
	if (!name)
		name = kl_js_str(j, "stem");
	if (!name)
		name = base_of(e->file);
	e->name = name;
	e->pid = (pid_t)kl_js_int(j, "pid", 0);
	e->start_ticks = (unsigned long long)kl_js_int(j, "start_ticks", 0);
	e->proc = kl_proc_check(e->pid, e->start_ticks);
	json_object *agent = kl_js_get(j, "agent", json_type_object);
	e->agent_pid = (pid_t)kl_js_int(agent, "pid", 0);
	e->agent = e->agent_pid > 0 ? kl_proc_check(e->agent_pid, (unsigned long long)kl_js_int(agent, "start_ticks", 0))
				    : KL_PROC_GONE;
	e->stopped = !kl_js_bool(j, "running", true);
}

static int entry_cmp(const void *a, const void *b)
{
	const struct kl_state_entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->file, y->file);
}

int kl_state_list(const char *dir, struct kl_state_entry **out, size_t *n, struct kl_error *err)
{
	*out = NULL;
	*n = 0;
	_cleanup_closedir_ DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return kl_error_errno(err, errno, "cannot read %s", dir);
	}
	size_t cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len <= 5 || strcmp(de->d_name + len - 5, ".json") != 0)
			continue;
		_cleanup_free_ char *file = xasprintf("%s/%s", dir, de->d_name);
		json_object *j = NULL;
		struct kl_error rerr = KL_ERROR_INIT;
		if (kl_state_read(file, &j, &rerr) < 0) {
			if (rerr.errnum != ENOENT)
				kl_warn("skipping %s", rerr.msg);
			continue;
		}
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			*out = xrealloc(*out, cap * sizeof **out);
		}
		struct kl_state_entry *e = &(*out)[(*n)++];
		memset(e, 0, sizeof *e);
		e->file = steal_pointer(&file);
		e->json = j;
		entry_fill(e);
	}
	if (*n > 1)
		qsort(*out, *n, sizeof **out, entry_cmp);
	return 0;
}

void kl_state_entries_free(struct kl_state_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].file);
		if (e[i].json)
			json_object_put(e[i].json);
	}
}

bool kl_state_entry_stale(const struct kl_state_entry *e)
{
	return e->proc != KL_PROC_ALIVE;
}

int kl_state_find(const char *state_dir, const char *name, struct kl_state_entry *out, struct kl_error *err)
{
	_cleanup_strvec_ struct strvec dirs = STRVEC_INIT;
	bool found = false;

	memset(out, 0, sizeof *out);
	kl_state_dirs(state_dir, &dirs);
	for (size_t i = 0; i < dirs.n; i++) {
		struct kl_state_entry *es;
		size_t n;
		if (kl_state_list(dirs.v[i], &es, &n, err) < 0) {
			if (i + 1 < dirs.n)
				continue;
			if (!found)
				return -1;
			break;
		}
		for (size_t k = 0; k < n; k++) {
			const char *stem = kl_js_str(es[k].json, "stem");
			bool match = strcmp(es[k].name, name) == 0 || (stem && strcmp(stem, name) == 0);
			if (!match)
				continue;
			/* Prefer a live entry over a stale one of the same name. */
			if (found && (kl_state_entry_stale(&es[k]) || !kl_state_entry_stale(out)))
				continue;
			if (found)
				kl_state_entries_free(out, 1);
			*out = es[k];
			memset(&es[k], 0, sizeof es[k]);
			found = true;
		}
		kl_state_entries_free(es, n);
		free(es);
	}
	if (!found)
		return kl_error_fail(err, "no VM named '%s' was launched through kvm-launch", name);
	kl_error_clear(err);
	return 0;
}

/* ---- removing ---- */

static bool same_dir(const char *a, const char *b)
{
	struct stat sa, sb;
	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* Unlink path if it lives directly in dir (or the short socket directory)
 * and has the expected type. */
static void remove_owned(const char *path, const char *dir, mode_t type)
{
	if (!path || !*path)
		return;
	_cleanup_free_ char *pdir = dir_of(path);
	_cleanup_free_ char *sdir = short_socket_dir();
	if (!same_dir(pdir, dir) && !(type == S_IFSOCK && sdir && same_dir(pdir, sdir)))
		return;
	struct stat st;
	if (lstat(path, &st) < 0 || (st.st_mode & S_IFMT) != type)
		return;
	if (unlink(path) < 0 && errno != ENOENT)
		kl_debug("cannot remove %s: %s", path, strerror(errno));
}

void kl_state_remove(const char *state_file, json_object *state, bool keep_log)
{
	_cleanup_free_ char *dir = dir_of(state_file);
	remove_owned(kl_js_str(state, "agent_socket"), dir, S_IFSOCK);
	remove_owned(kl_js_str(state, "query_socket"), dir, S_IFSOCK);
	if (!keep_log)
		remove_owned(kl_js_str(state, "agent_log"), dir, S_IFREG);
	remove_owned(state_file, dir, S_IFREG);
}

int kl_state_clean_stale(const char *dir)
{
	struct kl_state_entry *es;
	size_t n;
	int removed = 0;

	_cleanup_close_ int lock = lock_dir(dir, 200);
	if (lock < 0)
		return 0;
	if (kl_state_list(dir, &es, &n, NULL) < 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (!kl_state_entry_stale(&es[i]))
			continue;
		kl_debug("removing stale state %s (pid %d %s)", es[i].file, (int)es[i].pid,
			 kl_proc_state_name(es[i].proc));
		kl_state_remove(es[i].file, es[i].json, false);
		removed++;
	}
	kl_state_entries_free(es, n);
	free(es);
	return removed;
}

/* ---- launch side ---- */

static char *absolute(const char *dir)
{
	char real[PATH_MAX];
	if (realpath(dir, real))
		return xstrdup(real);
	return xstrdup(dir);
}

static int choose_dir(const char *state_dir, char **out, struct kl_error *err)
{
	const char *dir = state_dir ? state_dir : KL_DEFAULT_STATE_DIR;
	if (kl_state_dir_ensure(dir, err) == 0) {
		*out = absolute(dir);
		return 0;
	}
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	if (state_dir || geteuid() == 0 || !xdg || *xdg != '/')
		return -1;
	struct kl_error err2 = KL_ERROR_INIT;
	_cleanup_free_ char *alt = xasprintf("%s/kvm-launch", xdg);
	if (kl_state_dir_ensure(alt, &err2) < 0) {
		kl_error_set(err, "%s; and %s", err->msg, err2.msg);
		return -1;
	}
	kl_debug("%s: using %s instead", err->msg, alt);
	kl_error_clear(err);
	*out = absolute(alt);
	return 0;
}

int kl_state_prepare(struct kl_launch *l, const char *state_dir, struct kl_error *err)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_free_ char *stem = NULL;
	pid_t pid = getpid();

	for (int i = 0; i < l->argc; i++)
		if (l->argv[i] && (strcmp(l->argv[i], "-daemonize") == 0 || strcmp(l->argv[i], "--daemonize") == 0))
			return kl_error_fail(err, "-daemonize: QEMU leaves the launched process, so it cannot be followed");
	if (choose_dir(state_dir, &dir, err) < 0)
		return -1;
	kl_state_clean_stale(dir);

	if (kl_proc_start_ticks(pid, &l->start_ticks) < 0)
		return kl_error_errno(err, errno, "cannot read /proc/%d/stat", (int)pid);
	stem = kl_state_name(l->vm.name, pid);
	/* The name is chosen and claimed under the directory lock: two launches
	 * of one -name at the same moment must not both take it (one entry
	 * would be lost, and both QEMUs given the same monitor sockets). */
	_cleanup_close_ int lock = lock_dir(dir, 2000);
	if (lock < 0)
		kl_debug("%s: cannot lock (%s): choosing the name anyway", dir, strerror(errno));
	/* A live VM of the same name (two QEMUs given one -name): keep both. */
	_cleanup_free_ char *probe = xasprintf("%s/%s.json", dir, stem);
	_cleanup_json_ json_object *old = NULL;
	if (kl_state_read(probe, &old, NULL) == 0 && kl_js_int(old, "pid", 0) != pid &&
	    kl_proc_check((pid_t)kl_js_int(old, "pid", 0), (unsigned long long)kl_js_int(old, "start_ticks", 0)) ==
		    KL_PROC_ALIVE) {
		char *s = xasprintf("%s@%d", stem, (int)pid);
		free(stem);
		stem = s;
	}

	free(l->state_dir);
	free(l->state_file);
	free(l->agent_log);
	free(l->agent_socket);
	free(l->query_socket);
	l->state_dir = xstrdup(dir);
	l->state_file = xasprintf("%s/%s.json", dir, stem);
	l->agent_log = xasprintf("%s/%s.agent.log", dir, stem);
	l->agent_socket = l->query_socket = NULL;
	if (kl_state_socket_paths(dir, stem, pid, &l->agent_socket, &l->query_socket) < 0)
		kl_warn("%s: no socket path fits in %zu bytes: the VM starts without kvm-launch's monitors",
			dir, SUN_PATH_MAX);
	l->pid = pid;
	if (!l->started_unix)
		l->started_unix = (long long)time(NULL);
	/* The claim: a first entry naming our PID, which kl_state_write
	 * replaces; another launch now sees the name taken by a live VM. */
	_cleanup_json_ json_object *claim = json_object_new_object();
	json_object_object_add(claim, "version", json_object_new_int(KL_STATE_VERSION));
	json_object_object_add(claim, "name", l->vm.name ? json_object_new_string(l->vm.name) : NULL);
	json_object_object_add(claim, "stem", json_object_new_string(stem));
	json_object_object_add(claim, "pid", json_object_new_int64(pid));
	json_object_object_add(claim, "start_ticks", json_object_new_int64((int64_t)l->start_ticks));
	json_object_object_add(claim, "started", json_object_new_int64(l->started_unix));
	json_object_object_add(claim, "running", json_object_new_boolean(true));
	return kl_state_write_json(l->state_file, claim, err);
}

static void unlink_stale_socket(const char *path)
{
	struct stat st;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
}

static void add_monitor(struct strvec *argv, const char *id, const char *path)
{
	_cleanup_free_ char *esc = kl_state_qemu_escape(path);
	unlink_stale_socket(path);
	strvec_push_dup(argv, "-chardev");
	strvec_pushf(argv, "socket,id=%s,path=%s,server=on,wait=off", id, esc);
	strvec_push_dup(argv, "-mon");
	strvec_pushf(argv, "chardev=%s,mode=control", id);
}

void kl_state_add_monitors(struct kl_launch *l)
{
	if (!l->agent_socket || !l->query_socket)
		return;
	if (l->exec_argv.n == 0)
		strvec_push_dup(&l->exec_argv, l->qemu ? l->qemu : KL_DEFAULT_QEMU);
	add_monitor(&l->exec_argv, KL_MONITOR_ID_PREFIX "agent", l->agent_socket);
	add_monitor(&l->exec_argv, KL_MONITOR_ID_PREFIX "query", l->query_socket);
}
