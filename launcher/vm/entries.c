/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Reading the state store with the trust rules of SECURITY: directory fds,
 * names derived from the entry's own file name, owner checks, size caps, one
 * entry at a time. */
#include "launcher/vm/state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "common/log.h"
#include "common/xalloc.h"

/* Entries listed per directory at most (a directory is one uid's VMs). */
#define MAX_ENTRIES_PER_DIR 4096

static const char *const stem_suffixes[] = { ".agent.sock", ".qmp.sock", ".view.sock" };

/* ---- one file ---- */

static int parse_object(const char *text, size_t len, const char *name, json_object **out, struct kl_error *err)
{
	json_tokener *tok = json_tokener_new();
	json_object *o = json_tokener_parse_ex(tok, text, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (!o || jerr != json_tokener_success) {
		if (o)
			json_object_put(o);
		return kl_error_fail(err, "%s: not valid JSON (%s)", name,
				     jerr == json_tokener_success ? "incomplete" : json_tokener_error_desc(jerr));
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return kl_error_fail(err, "%s: not a JSON object", name);
	}
	*out = o;
	return 0;
}

int kl_state_read_at(int dirfd, const char *name, uid_t owner, json_object **out, struct kl_error *err)
{
	_cleanup_free_ char *text = NULL;
	size_t len;
	if (kl_statedir_read(dirfd, name, owner, KL_STATE_MAX_BYTES, &text, &len, err) < 0)
		return -1;
	return parse_object(text, len, name, out, err);
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

int kl_state_read(const char *path, json_object **out, struct kl_error *err)
{
	_cleanup_free_ char *dir = dir_of(path);
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return kl_error_errno(err, errno, "cannot open %s", path);
	if (kl_state_read_at(fd, base_of(path), (uid_t)-1, out, err) < 0) {
		kl_error_prefix(err, "%s", dir);
		return -1;
	}
	return 0;
}

int kl_state_write_at(int dirfd, const char *name, uid_t owner, json_object *obj, struct kl_error *err)
{
	_cleanup_free_ char *text = xasprintf("%s\n", json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PRETTY |
										   JSON_C_TO_STRING_NOSLASHESCAPE));
	return kl_statedir_write(dirfd, name, text, strlen(text), 0640, owner, err);
}

int kl_state_write_json(const char *path, json_object *obj, struct kl_error *err)
{
	_cleanup_free_ char *dir = dir_of(path);
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return kl_error_errno(err, errno, "cannot write %s", path);
	return kl_state_write_at(fd, base_of(path), geteuid(), obj, err);
}

/* ---- updating ---- */

/* The stem of NAME if it is "STEM.json" with a usable stem, else NULL. */
static char *stem_of(const char *name)
{
	size_t len = strlen(name);
	if (name[0] == '.' || len <= 5 || strcmp(name + len - 5, ".json") != 0 || strchr(name, '/'))
		return NULL;
	return xstrndup(name, len - 5);
}

int kl_state_update(const char *path, pid_t pid, unsigned long long start_ticks,
		    int (*fn)(json_object *state, void *ctx, struct kl_error *err), void *ctx,
		    bool *gone, struct kl_error *err)
{
	_cleanup_free_ char *dir = dir_of(path);
	_cleanup_statedir_ struct kl_statedir d = KL_STATEDIR_INIT;
	_cleanup_json_ json_object *st = NULL;
	const char *name = base_of(path);

	if (gone)
		*gone = false;
	if (kl_statedir_open(dir, geteuid() == 0 ? (uid_t)-1 : geteuid(), &d, err) < 0)
		return -1;
	_cleanup_close_ int lock = kl_statedir_lock(&d, 5000);
	if (lock < 0)
		return kl_error_errno(err, errno, "cannot lock %s", dir);
	if (kl_state_read_at(d.fd, name, d.owner, &st, err) < 0) {
		if (err && err->errnum == ENOENT) {
			kl_error_clear(err);
			if (gone)
				*gone = true;
			return 0;
		}
		kl_error_prefix(err, "%s", dir);
		return -1;
	}
	if (kl_json_int(st, "pid", -1) != (long long)pid ||
	    (start_ticks && (unsigned long long)kl_json_int(st, "start_ticks", 0) != start_ticks)) {
		if (gone)
			*gone = true;
		return 0;
	}
	int r = fn(st, ctx, err);
	if (r <= 0)
		return r;
	return kl_state_write_at(d.fd, name, d.owner, st, err);
}

/* ---- trust ---- */

/* The effective uid of PID (/proc/PID/status), -1 if unknown. */
static long long proc_euid(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char line[256];
	unsigned long r, e;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "Uid: %lu %lu", &r, &e) == 2)
			return (long long)e;
	return -1;
}

static enum kl_proc_state believe(pid_t pid, unsigned long long ticks, uid_t owner, const char **why)
{
	enum kl_proc_state s = kl_proc_check(pid, ticks);
	*why = NULL;
	if (s != KL_PROC_ALIVE)
		return s;
	if (!ticks) {
		*why = "no start time recorded";
		return KL_PROC_REUSED;
	}
	long long uid = proc_euid(pid);
	if (uid != (long long)owner) {
		*why = "its process runs as another user than the entry's owner";
		return KL_PROC_REUSED;
	}
	return KL_PROC_ALIVE;
}

static void entry_fill(struct kl_state_entry *e)
{
	json_object *j = e->json;
	const char *name = kl_json_str(j, "name");
	const char *why;
	e->name = name ? name : e->stem;
	e->pid = (pid_t)kl_json_int(j, "pid", 0);
	e->start_ticks = (unsigned long long)kl_json_int(j, "start_ticks", 0);
	e->proc = believe(e->pid, e->start_ticks, e->owner, &e->distrust);
	json_object *agent = kl_json_get(j, "agent", json_type_object);
	e->agent_pid = (pid_t)kl_json_int(agent, "pid", 0);
	e->agent = e->agent_pid > 0 ? believe(e->agent_pid, (unsigned long long)kl_json_int(agent, "start_ticks", 0),
					      e->owner, &why)
				    : KL_PROC_GONE;
	e->stopped = !kl_json_bool(j, "running", true);
}

bool kl_state_entry_stale(const struct kl_state_entry *e)
{
	return e->proc != KL_PROC_ALIVE;
}

int kl_state_may_drive(const struct kl_state_entry *e, struct kl_error *err)
{
	if (geteuid() == 0 || geteuid() == e->owner)
		return 0;
	return kl_error_fail(err, "--set on VM %s needs root or uid %u, the user its QEMU runs as", e->name,
			     (unsigned)e->owner);
}

/* ---- listing ---- */

static int load_entry(const struct kl_statedir *d, const char *fname, struct kl_state_entry *e,
		      struct kl_error *err)
{
	memset(e, 0, sizeof *e);
	e->dirfd = -1;
	e->stem = stem_of(fname);
	if (!e->stem)
		return kl_error_fail(err, "%s/%s: not an entry name", d->path, fname);
	if (kl_state_read_at(d->fd, fname, d->owner, &e->json, err) < 0) {
		kl_error_prefix(err, "%s", d->path);
		kl_state_entries_free(e, 1);
		return -1;
	}
	e->dirfd = fcntl(d->fd, F_DUPFD_CLOEXEC, 3);
	e->owner = d->owner;
	e->dir = xstrdup(d->path);
	e->file = xasprintf("%s/%s", d->path, fname);
	entry_fill(e);
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The entry file names of a directory, sorted. */
static void entry_names(const struct kl_statedir *d, struct strvec *out)
{
	int fd = openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	if (!dir) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(dir))) {
		_cleanup_free_ char *stem = stem_of(de->d_name);
		if (!stem || (de->d_type != DT_REG && de->d_type != DT_UNKNOWN))
			continue;
		if (out->n >= MAX_ENTRIES_PER_DIR) {
			kl_warn("%s: more than %d entries: the rest are ignored", d->path, MAX_ENTRIES_PER_DIR);
			break;
		}
		strvec_push_dup(out, de->d_name);
	}
	closedir(dir);
	if (out->n > 1)
		qsort(out->v, out->n, sizeof *out->v, name_cmp);
}

static int foreach_in(const struct kl_statedir *d, int (*fn)(struct kl_state_entry *e, void *ctx), void *ctx)
{
	_cleanup_strvec_ struct strvec names = STRVEC_INIT;
	entry_names(d, &names);
	for (size_t i = 0; i < names.n; i++) {
		struct kl_state_entry e;
		struct kl_error err = KL_ERROR_INIT;
		if (load_entry(d, names.v[i], &e, &err) < 0) {
			/* Another uid's junk is said with -v only. */
			if (err.errnum != ENOENT && (d->owner == geteuid() || d->owner == 0))
				kl_warn("skipping %s", err.msg);
			else if (err.errnum != ENOENT)
				kl_info("skipping %s", err.msg);
			continue;
		}
		int r = fn(&e, ctx);
		kl_state_entries_free(&e, 1);
		if (r < 0)
			return r;
	}
	return 0;
}

int kl_state_foreach(const char *state_dir, int (*fn)(struct kl_state_entry *e, void *ctx), void *ctx,
		     struct strvec *errors)
{
	struct kl_statedir *dirs;
	size_t n = kl_statedir_for_read(state_dir, &dirs, errors);
	int r = 0;
	for (size_t i = 0; i < n && r >= 0; i++)
		r = foreach_in(&dirs[i], fn, ctx);
	kl_statedirs_free(dirs, n);
	return r;
}

struct list_ctx {
	struct kl_state_entry *v;
	size_t n, cap;
};

static int list_one(struct kl_state_entry *e, void *vctx)
{
	struct list_ctx *c = vctx;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 8;
		c->v = xrealloc(c->v, c->cap * sizeof *c->v);
	}
	c->v[c->n++] = *e;
	memset(e, 0, sizeof *e);
	e->dirfd = -1;
	return 0;
}

int kl_state_list(const char *dir, struct kl_state_entry **out, size_t *n, struct kl_error *err)
{
	_cleanup_strvec_ struct strvec errors = STRVEC_INIT;
	struct list_ctx c = { NULL, 0, 0 };
	kl_state_foreach(dir, list_one, &c, &errors);
	*out = c.v;
	*n = c.n;
	if (errors.n && !c.n)
		return kl_error_fail(err, "%s", errors.v[0]);
	return 0;
}

void kl_state_entries_free(struct kl_state_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(e[i].file);
		free(e[i].dir);
		free(e[i].stem);
		if (e[i].dirfd >= 0)
			close(e[i].dirfd);
		if (e[i].json)
			json_object_put(e[i].json);
		e[i].file = e[i].dir = e[i].stem = NULL;
		e[i].json = NULL;
		e[i].dirfd = -1;
	}
}

/* ---- finding ---- */

struct find_ctx {
	const char *name;
	struct kl_state_entry found;
	bool have;
	char *ambiguous;         /* the second live entry's file */
};

static int find_one(struct kl_state_entry *e, void *vctx)
{
	struct find_ctx *c = vctx;
	if (strcmp(e->name, c->name) != 0 && strcmp(e->stem, c->name) != 0)
		return 0;
	if (c->have && !kl_state_entry_stale(e) && !kl_state_entry_stale(&c->found)) {
		if (!c->ambiguous)
			c->ambiguous = xstrdup(e->file);
		return 0;
	}
	/* Prefer a live entry over a stale one of the same name. */
	if (c->have && (kl_state_entry_stale(e) || !kl_state_entry_stale(&c->found)))
		return 0;
	if (c->have)
		kl_state_entries_free(&c->found, 1);
	c->found = *e;
	memset(e, 0, sizeof *e);
	e->dirfd = -1;
	c->have = true;
	return 0;
}

int kl_state_find(const char *state_dir, const char *name, struct kl_state_entry *out, struct kl_error *err)
{
	struct find_ctx c = { .name = name };
	memset(out, 0, sizeof *out);
	out->dirfd = -1;
	kl_state_foreach(state_dir, find_one, &c, NULL);
	if (!c.have)
		return kl_error_fail(err, "no VM named '%s' was launched through kvm-launch", name);
	if (c.ambiguous) {
		kl_error_set(err, "ambiguous: two running VMs are named '%s' (%s and %s): use --state-dir to pick one",
			     name, c.found.file, c.ambiguous);
		free(c.ambiguous);
		kl_state_entries_free(&c.found, 1);
		return -1;
	}
	*out = c.found;
	kl_error_clear(err);
	return 0;
}

/* ---- removing ---- */

void kl_state_remove_at(int dirfd, const char *stem, uid_t owner, bool keep_log)
{
	char name[512];
	for (size_t i = 0; i < sizeof stem_suffixes / sizeof *stem_suffixes; i++) {
		snprintf(name, sizeof name, "%s%s", stem, stem_suffixes[i]);
		kl_statedir_remove(dirfd, name, S_IFSOCK, owner);
	}
	if (!keep_log) {
		snprintf(name, sizeof name, "%s.agent.log", stem);
		kl_statedir_remove(dirfd, name, S_IFREG, owner);
	}
	/* The pidfile kvm-launch gives a -daemonize QEMU that has none (follow.c). */
	snprintf(name, sizeof name, "%s.pid", stem);
	kl_statedir_remove(dirfd, name, S_IFREG, owner);
	snprintf(name, sizeof name, "%s.json", stem);
	kl_statedir_remove(dirfd, name, S_IFREG, owner);
}

int kl_state_clean_stale_at(int dirfd, const char *path, uid_t owner)
{
	struct kl_statedir d = { dirfd, (char *)path, owner };
	_cleanup_close_ int lock = kl_statedir_lock(&d, 200);
	_cleanup_strvec_ struct strvec names = STRVEC_INIT;
	int removed = 0;

	if (lock < 0)
		return 0;
	entry_names(&d, &names);
	for (size_t i = 0; i < names.n; i++) {
		struct kl_state_entry e;
		if (load_entry(&d, names.v[i], &e, NULL) < 0)
			continue;
		if (!kl_state_entry_stale(&e)) {
			kl_state_entries_free(&e, 1);
			continue;
		}
		kl_debug("removing stale state %s (pid %d %s)", e.file, (int)e.pid, kl_proc_state_name(e.proc));
		kl_state_remove_at(dirfd, e.stem, owner, false);
		kl_state_entries_free(&e, 1);
		removed++;
	}
	return removed;
}

int kl_state_clean_stale(const char *dir)
{
	_cleanup_statedir_ struct kl_statedir d = KL_STATEDIR_INIT;
	if (kl_statedir_open(dir, geteuid(), &d, NULL) < 0)
		return 0;
	return kl_state_clean_stale_at(d.fd, d.path, d.owner);
}
