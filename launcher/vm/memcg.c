/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/vm/memcg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fileutil.h"
#include "common/xalloc.h"

#define CG_FILE_MAX (64 * 1024)
/* v1 says "no limit" with PAGE_COUNTER_MAX pages in bytes (about 2^63). */
#define V1_UNLIMITED (1LL << 62)

static const char *cgroot_of(const struct kl_memcg_env *env)
{
	return env && env->cgroot ? env->cgroot : "/sys/fs/cgroup";
}

static const char *proc_of(const struct kl_memcg_env *env)
{
	return env && env->proc ? env->proc : "/proc";
}

static bool exists(const char *dir, const char *file)
{
	_cleanup_free_ char *p = file ? xasprintf("%s/%s", dir, file) : xstrdup(dir);
	return access(p, F_OK) == 0;
}

static bool is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

void kl_memcg_free(struct kl_memcg *cg)
{
	if (!cg)
		return;
	free(cg->dir);
	cg->dir = NULL;
	cg->version = KL_MEMCG_ANY;
}

/* A whole number, alone on its line (the files end in "\n"). */
static int parse_num(const char *s, const char *what, long long *out, struct kl_error *err)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	while (end != s && (*end == '\n' || *end == ' '))
		end++;
	if (end == s || *end || errno || v < 0)
		return kl_error_fail(err, "%s: not a byte count: \"%.40s\"", what, s);
	*out = v;
	return 0;
}

/* FILE of DIR as a number; "max" (v2: no limit) is -1.  A missing file is
 * -1 when optional, an error otherwise. */
static int read_num(const char *dir, const char *file, bool optional, long long *out, struct kl_error *err)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", dir, file);
	struct kl_error e = KL_ERROR_INIT;
	_cleanup_free_ char *t = kl_read_small_file(p, CG_FILE_MAX, &e);
	if (!t) {
		*out = -1;
		if (e.errnum == ENOENT && optional)
			return 0;
		if (e.errnum == ENOENT && !is_dir(dir))
			return kl_error_fail(err, "memory cgroup %s is gone (removed while being read)", dir);
		if (err)
			*err = e;
		return -1;
	}
	if (!strcmp(t, "max\n") || !strcmp(t, "max")) {
		*out = -1;
		return 0;
	}
	return parse_num(t, p, out, err);
}

/* The value of "KEY N" in a flat keyed file (memory.stat, memory.events); 1 if
 * found, 0 if absent, -1 if the value is not a number. */
static int keyed(const char *text, const char *key, const char *what, long long *out, struct kl_error *err)
{
	size_t kl = strlen(key);
	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		if (strncmp(l, key, kl) || l[kl] != ' ')
			continue;
		const char *nl = strchr(l, '\n');
		_cleanup_free_ char *v = xstrndup(l + kl + 1, nl ? (size_t)(nl - l - kl - 1) : strlen(l + kl + 1));
		_cleanup_free_ char *w = xasprintf("%s (%s)", what, key);
		return parse_num(v, w, out, err) < 0 ? -1 : 1;
	}
	return 0;
}

/* The first of KEYS (space-separated) present in TEXT; -1 when none is. */
static int keyed_first(const char *text, const char *keys, const char *what, long long *out, struct kl_error *err)
{
	_cleanup_free_ char *copy = xstrdup(keys);
	char *save = NULL;
	for (char *k = strtok_r(copy, " ", &save); k; k = strtok_r(NULL, " ", &save)) {
		int r = keyed(text, k, what, out, err);
		if (r)
			return r < 0 ? -1 : 0;
	}
	return kl_error_fail(err, "%s: no \"%s\" line", what, keys);
}

static char *read_file(const char *dir, const char *file, bool optional, struct kl_error *err)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", dir, file);
	struct kl_error e = KL_ERROR_INIT;
	char *t = kl_read_small_file(p, CG_FILE_MAX, &e);
	if (!t && !(optional && e.errnum == ENOENT)) {
		if (e.errnum == ENOENT && !is_dir(dir))
			kl_error_set(err, "memory cgroup %s is gone (removed while being read)", dir);
		else if (err)
			*err = e;
	}
	return t;
}

static int read_v1(const char *d, struct kl_memcg_usage *u, struct kl_error *err)
{
	if (read_num(d, "memory.usage_in_bytes", false, &u->current, err) < 0 ||
	    read_num(d, "memory.max_usage_in_bytes", true, &u->peak, err) < 0 ||
	    read_num(d, "memory.limit_in_bytes", true, &u->limit, err) < 0 ||
	    read_num(d, "memory.failcnt", true, &u->limit_hits, err) < 0)
		return -1;
	if (u->limit >= V1_UNLIMITED)
		u->limit = -1;
	_cleanup_free_ char *stat = read_file(d, "memory.stat", false, err);
	if (!stat)
		return -1;
	_cleanup_free_ char *what = xasprintf("%s/memory.stat", d);
	/* total_*: this cgroup and its children, like usage_in_bytes. */
	if (keyed_first(stat, "total_cache cache", what, &u->file, err) < 0 ||
	    keyed_first(stat, "total_rss rss", what, &u->anon, err) < 0)
		return -1;
	_cleanup_free_ char *oom = read_file(d, "memory.oom_control", true, err);
	if (oom && keyed(oom, "oom_kill", what, &u->oom_kills, err) < 0)
		return -1;
	return 0;
}

static int read_v2(const char *d, struct kl_memcg_usage *u, struct kl_error *err)
{
	if (read_num(d, "memory.current", false, &u->current, err) < 0 ||
	    read_num(d, "memory.peak", true, &u->peak, err) < 0 ||   /* Linux 5.19 and later */
	    read_num(d, "memory.max", true, &u->limit, err) < 0)
		return -1;
	_cleanup_free_ char *stat = read_file(d, "memory.stat", false, err);
	if (!stat)
		return -1;
	_cleanup_free_ char *what = xasprintf("%s/memory.stat", d);
	if (keyed_first(stat, "file", what, &u->file, err) < 0 || keyed_first(stat, "anon", what, &u->anon, err) < 0)
		return -1;
	_cleanup_free_ char *ev = read_file(d, "memory.events", true, err);
	_cleanup_free_ char *evw = xasprintf("%s/memory.events", d);
	if (ev && (keyed(ev, "max", evw, &u->limit_hits, err) < 0 || keyed(ev, "oom_kill", evw, &u->oom_kills, err) < 0))
		return -1;
	return 0;
}

int kl_memcg_read(const struct kl_memcg *cg, struct kl_memcg_usage *u, struct kl_error *err)
{
	*u = (struct kl_memcg_usage){ -1, -1, -1, -1, -1, -1, -1 };
	if (!cg || !cg->dir || cg->version == KL_MEMCG_ANY)
		return kl_error_fail(err, "no memory cgroup to read");
	if (!is_dir(cg->dir))
		return kl_error_fail(err, "memory cgroup %s is gone", cg->dir);
	return cg->version == KL_MEMCG_V1 ? read_v1(cg->dir, u, err) : read_v2(cg->dir, u, err);
}

/* Is WORD one of the space- or comma-separated words of LIST? */
static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || strchr(" ,\n", p[-1])) && (!p[n] || strchr(" ,\n", p[n])))
			return true;
	return false;
}

int kl_memcg_at(const char *dir, struct kl_memcg *out, struct kl_error *err)
{
	*out = (struct kl_memcg){ KL_MEMCG_ANY, NULL };
	if (!is_dir(dir))
		return kl_error_fail(err, "memory cgroup %s: no such directory (not mounted, or the cgroup is gone)", dir);
	if (exists(dir, "memory.usage_in_bytes"))
		out->version = KL_MEMCG_V1;
	else if (exists(dir, "memory.current"))
		out->version = KL_MEMCG_V2;
	else if (exists(dir, "cgroup.controllers")) {
		_cleanup_free_ char *c = read_file(dir, "cgroup.controllers", true, NULL);
		char *nl = c ? strchr(c, '\n') : NULL;
		if (nl)
			*nl = 0;
		return kl_error_fail(err, "%s: cgroup v2 without the memory controller (cgroup.controllers: \"%s\"%s): "
				     "no memory accounting possible", dir, c ? c : "?",
				     c && has_word(c, "memory") ? "; the root cgroup has no memory.current" : "");
	} else
		return kl_error_fail(err, "%s: not a memory cgroup (no memory.usage_in_bytes, no memory.current)", dir);
	out->dir = xstrdup(dir);
	return 0;
}

/* The v1 memory hierarchy's mount: CGROOT/memory, or CGROOT/CONTROLLERS for a
 * combined mount ("memory,hugetlb"). */
static char *v1_root(const char *cgroot, const char *controllers)
{
	_cleanup_free_ char *m = xasprintf("%s/memory", cgroot);
	if (is_dir(m))
		return steal_pointer(&m);
	_cleanup_free_ char *c = xasprintf("%s/%s", cgroot, controllers);
	return is_dir(c) ? steal_pointer(&c) : NULL;
}

/* The cgroup2 mount: CGROOT itself (unified mode) or CGROOT/unified (hybrid). */
static char *v2_root(const char *cgroot)
{
	if (exists(cgroot, "cgroup.controllers"))
		return xstrdup(cgroot);
	_cleanup_free_ char *u = xasprintf("%s/unified", cgroot);
	return exists(u, "cgroup.controllers") ? steal_pointer(&u) : NULL;
}

int kl_memcg_v2_root(const struct kl_memcg_env *env, struct kl_memcg *out, struct kl_error *err)
{
	*out = (struct kl_memcg){ KL_MEMCG_ANY, NULL };
	_cleanup_free_ char *root = v2_root(cgroot_of(env));
	if (!root)
		return kl_error_fail(err, "no cgroup2 mounted at %s or %s/unified", cgroot_of(env), cgroot_of(env));
	_cleanup_free_ char *c = read_file(root, "cgroup.controllers", true, NULL);
	if (!c || !has_word(c, "memory"))
		return kl_error_fail(err, "%s: cgroup v2 without the memory controller: no memory accounting possible", root);
	out->version = KL_MEMCG_V2;
	out->dir = steal_pointer(&root);
	return 0;
}

static int of_v1(const char *cgroot, pid_t pid, const char *ctl, const char *path, struct kl_memcg *out,
		 struct kl_error *err)
{
	_cleanup_free_ char *root = v1_root(cgroot, ctl);
	if (!root)
		return kl_error_fail(err, "process %d is in the cgroup v1 memory cgroup %s, but no memory hierarchy is "
				     "mounted at %s/memory: no memory accounting possible", (int)pid, path, cgroot);
	_cleanup_free_ char *dir = xasprintf("%s%s", root, strcmp(path, "/") ? path : "");
	if (!is_dir(dir))
		return kl_error_fail(err, "process %d: its memory cgroup %s is gone (or the hierarchy at %s is another "
				     "namespace's)", (int)pid, dir, root);
	return kl_memcg_at(dir, out, err);
}

static int of_v2(const char *cgroot, pid_t pid, const char *path, struct kl_memcg *out, struct kl_error *err)
{
	_cleanup_free_ char *root = v2_root(cgroot);
	if (!root)
		return kl_error_fail(err, "process %d is in the cgroup v2 cgroup %s, but no cgroup2 is mounted at %s or "
				     "%s/unified: no memory accounting possible", (int)pid, path, cgroot, cgroot);
	_cleanup_free_ char *dir = xasprintf("%s%s", root, strcmp(path, "/") ? path : "");
	if (!is_dir(dir))
		return kl_error_fail(err, "process %d: its cgroup %s is gone", (int)pid, dir);
	_cleanup_free_ char *c = read_file(dir, "cgroup.controllers", true, NULL);
	char *nl = c ? strchr(c, '\n') : NULL;
	if (nl)
		*nl = 0;
	if (!c || !has_word(c, "memory"))
		return kl_error_fail(err, "process %d: no memory controller in its cgroup v2 %s (cgroup.controllers: "
				     "\"%s\"; the controller is bound to a v1 hierarchy or not enabled in the parent's "
				     "cgroup.subtree_control): no memory accounting possible", (int)pid, dir, c ? c : "?");
	if (!strcmp(path, "/"))
		return kl_error_fail(err, "process %d is in the root cgroup of %s: that is the whole host, no "
				     "accounting of its own", (int)pid, root);
	return kl_memcg_at(dir, out, err);
}

int kl_memcg_of_pid(const struct kl_memcg_env *env, pid_t pid, enum kl_memcg_version want,
		    struct kl_memcg *out, struct kl_error *err)
{
	*out = (struct kl_memcg){ KL_MEMCG_ANY, NULL };
	_cleanup_free_ char *p = xasprintf("%s/%d/cgroup", proc_of(env), (int)pid);
	struct kl_error e = KL_ERROR_INIT;
	_cleanup_free_ char *text = kl_read_small_file(p, CG_FILE_MAX, &e);
	if (!text)
		return kl_error_fail(err, "cannot tell the memory cgroup of process %d: %s", (int)pid, e.msg);
	_cleanup_free_ char *v1ctl = NULL, *v1path = NULL, *v2path = NULL;
	char *save = NULL;
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		char *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2 || c2[1] != '/')
			continue; /* not "ID:CONTROLLERS:/PATH" */
		*c1 = *c2 = 0;
		if (!strcmp(l, "0") && !c1[1] && !v2path)
			v2path = xstrdup(c2 + 1);
		else if (strcmp(l, "0") && has_word(c1 + 1, "memory") && !v1path) {
			v1ctl = xstrdup(c1 + 1);
			v1path = xstrdup(c2 + 1);
		}
	}
	if (want != KL_MEMCG_V2 && v1path)
		return of_v1(cgroot_of(env), pid, v1ctl, v1path, out, err);
	if (want == KL_MEMCG_V1)
		return kl_error_fail(err, "process %d has no cgroup v1 memory controller (no \"memory\" line in %s): "
				     "no memory accounting there", (int)pid, p);
	if (v2path)
		return of_v2(cgroot_of(env), pid, v2path, out, err);
	return kl_error_fail(err, "process %d has no memory cgroup: %s has neither a v1 \"memory\" line nor a v2 "
			     "\"0::\" line (no memory controller mounted): no memory accounting possible", (int)pid, p);
}

static int write_str(const char *dir, const char *file, const char *s, struct kl_error *err)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", dir, file);
	_cleanup_close_ int fd = open(p, O_WRONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return kl_error_errno(err, errno, "open %s", p);
	size_t n = strlen(s);
	if (write(fd, s, n) != (ssize_t)n)
		return kl_error_errno(err, errno, "write \"%s\" to %s", s, p);
	return 0;
}

int kl_memcg_set_limit(const struct kl_memcg *cg, long long limit, struct kl_error *err)
{
	char v[32];
	if (limit > 0)
		snprintf(v, sizeof v, "%lld", limit);
	else
		snprintf(v, sizeof v, "%s", cg->version == KL_MEMCG_V1 ? "-1" : "max");
	return write_str(cg->dir, cg->version == KL_MEMCG_V1 ? "memory.limit_in_bytes" : "memory.max", v, err);
}

int kl_memcg_create(const struct kl_memcg *parent, const char *name, long long limit,
		    struct kl_memcg *out, struct kl_error *err)
{
	*out = (struct kl_memcg){ KL_MEMCG_ANY, NULL };
	if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		return kl_error_fail(err, "bad cgroup name \"%s\"", name);
	_cleanup_free_ char *dir = xasprintf("%s/%s", parent->dir, name);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return kl_error_errno(err, errno, "mkdir %s", dir);
	if (parent->version == KL_MEMCG_V2 && !exists(dir, "memory.current")) {
		struct kl_error e = KL_ERROR_INIT;
		if (write_str(parent->dir, "cgroup.subtree_control", "+memory", &e) < 0 || !exists(dir, "memory.current")) {
			rmdir(dir);
			return kl_error_fail(err, "%s: the parent does not hand the memory controller down (+memory in "
					     "its cgroup.subtree_control: %s)", dir, e.set ? e.msg : "not taken");
		}
	}
	if (kl_memcg_at(dir, out, err) < 0) {
		rmdir(dir);
		return -1;
	}
	if (limit > 0 && kl_memcg_set_limit(out, limit, err) < 0) {
		rmdir(dir);
		kl_memcg_free(out);
		return -1;
	}
	return 0;
}

int kl_memcg_attach(const struct kl_memcg *cg, pid_t pid, struct kl_error *err)
{
	char v[32];
	snprintf(v, sizeof v, "%d\n", pid ? (int)pid : (int)getpid());
	return write_str(cg->dir, "cgroup.procs", v, err);
}

int kl_memcg_remove(const struct kl_memcg *cg, int wait_ms, struct kl_error *err)
{
	for (int waited = 0;; waited += 20) {
		if (rmdir(cg->dir) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY || waited >= wait_ms)
			return kl_error_errno(err, errno, "rmdir %s", cg->dir);
		nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
	}
}
