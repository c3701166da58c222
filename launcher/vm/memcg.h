/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The memory cgroup of a process, and what it is charged: all its memory, its
 * peak, and the page cache (the host memory that cache=writeback costs a VM is
 * charged there).  cgroup v2 (memory.current, memory.peak, memory.stat file
 * and anon) or the cgroup v1 memory controller (memory.usage_in_bytes,
 * memory.max_usage_in_bytes, memory.stat cache and rss).  Also making a child
 * cgroup with a limit, moving a process into it and removing it (the
 * benchmark runs every VM in its own).
 *
 * Where things are is injectable for tests: env->cgroot (default
 * /sys/fs/cgroup: the v2 tree there or at unified/, the v1 memory tree at
 * memory/) and env->proc (default /proc).  A NULL env means the defaults.
 * When no accounting is possible the error says why: no memory controller in
 * either hierarchy, a v2 cgroup without the memory controller, the root
 * cgroup, a vanished directory, unreadable or garbled files. */
#ifndef KL_LAUNCHER_MEMCG_H
#define KL_LAUNCHER_MEMCG_H

#include <sys/types.h>
#include "common/error.h"

enum kl_memcg_version {
	KL_MEMCG_ANY = 0, /* as a wish: v1's memory controller when bound there, else v2 */
	KL_MEMCG_V1,
	KL_MEMCG_V2,
};

struct kl_memcg_env {
	const char *cgroot;   /* NULL: /sys/fs/cgroup */
	const char *proc;     /* NULL: /proc */
};

struct kl_memcg {
	enum kl_memcg_version version;
	char *dir;            /* the cgroup's directory */
};

/* Bytes; -1 where the kernel does not say (memory.peak before Linux 5.19). */
struct kl_memcg_usage {
	long long current;    /* v2 memory.current, v1 memory.usage_in_bytes */
	long long peak;       /* v2 memory.peak, v1 memory.max_usage_in_bytes */
	long long file;       /* page cache: v2 memory.stat file, v1 total_cache (or cache) */
	long long anon;       /* v2 memory.stat anon, v1 total_rss (or rss) */
	long long limit;      /* v2 memory.max, v1 memory.limit_in_bytes; -1: none */
	long long limit_hits; /* v2 memory.events max, v1 memory.failcnt */
	long long oom_kills;  /* v2 memory.events oom_kill, v1 memory.oom_control oom_kill */
};

void kl_memcg_free(struct kl_memcg *cg);
static inline void kl_memcg_freep(struct kl_memcg *cg) { kl_memcg_free(cg); }
#define _cleanup_memcg_ __attribute__((cleanup(kl_memcg_freep)))

/* The memory cgroup PID is in (/proc/PID/cgroup), in the hierarchy asked for
 * (KL_MEMCG_ANY: v1's memory line if there is one, else the v2 line). */
int kl_memcg_of_pid(const struct kl_memcg_env *env, pid_t pid, enum kl_memcg_version want,
		    struct kl_memcg *out, struct kl_error *err);
/* A cgroup by its directory: the version from the files it has. */
int kl_memcg_at(const char *dir, struct kl_memcg *out, struct kl_error *err);
int kl_memcg_read(const struct kl_memcg *cg, struct kl_memcg_usage *u, struct kl_error *err);

/* The root of the cgroup v2 tree, as a parent for kl_memcg_create: on v2 a
 * cgroup with processes cannot hand controllers down (no internal
 * processes), the root can.  Fails unless the memory controller is there. */
int kl_memcg_v2_root(const struct kl_memcg_env *env, struct kl_memcg *out, struct kl_error *err);
/* mkdir PARENT/NAME (an existing one is reused) and, when limit > 0, set its
 * limit in bytes.  On v2 the parent must hand the memory controller down
 * (+memory in its cgroup.subtree_control); this is tried, and said if not. */
int kl_memcg_create(const struct kl_memcg *parent, const char *name, long long limit,
		    struct kl_memcg *out, struct kl_error *err);
int kl_memcg_set_limit(const struct kl_memcg *cg, long long limit, struct kl_error *err);
/* Move PID (0: this process) into the cgroup. */
int kl_memcg_attach(const struct kl_memcg *cg, pid_t pid, struct kl_error *err);
/* rmdir, waiting up to wait_ms for exiting tasks to leave. */
int kl_memcg_remove(const struct kl_memcg *cg, int wait_ms, struct kl_error *err);

#endif
