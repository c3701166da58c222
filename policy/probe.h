/* Backend probes: what a disk really is, and what the host can do.  Every
 * probe reads through a kl_probe_env so tests can point it at a fake /sys and
 * /proc and fake system-call answers.  A permission error is a fact (a note),
 * not a failure. */
#ifndef KL_POLICY_PROBE_H
#define KL_POLICY_PROBE_H

#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/types.h>
#include "../common/error.h"
#include "types.h"

struct kl_probe_env {
	const char *sys_root;    /* prefix for /sys paths ("" = real) */
	const char *proc_root;   /* prefix for /proc paths ("" = real) */
	/* Test hooks; NULL = the real call. */
	int (*statfs_fn)(const char *path, struct statfs *out);
	int (*stat_fn)(const char *path, struct stat *out);
	int (*open_fn)(const char *path, int flags);       /* used for the O_DIRECT probe */
	int (*io_uring_fn)(struct kl_error *err);          /* 0 usable, -1 not (err says why) */
	int (*libaio_fn)(struct kl_error *err);            /* 0 usable, -1 not */
	unsigned long aio_reserve;                         /* headroom kept free in fs.aio-nr; 0 = default */
};

/* The real machine. */
extern const struct kl_probe_env kl_probe_env_real;

/* Fill facts for one disk from what the command line gives (driver, path,
 * format, readonly).  Returns 0; -1 only on a bug-level failure (err set).
 * An unreachable or unknown backend is KL_BACKEND_UNKNOWN with a note. */
int kl_probe_disk(const struct kl_probe_env *env, const struct kl_disk_given *given,
		  struct kl_disk_facts *out, struct kl_error *err);

/* Fill host facts (io_uring in the kernel, libaio and its headroom).  The
 * QEMU build's io_uring support (io_uring_qemu) is left UNKNOWN here: the
 * launcher asks QEMU and fills it in. */
int kl_probe_host(const struct kl_probe_env *env, struct kl_host_facts *out, struct kl_error *err);

/* Names for statfs magics ("ext4", "nfs"...); NULL if unknown.  shared is set
 * for cluster/network filesystems. */
const char *kl_fs_name(unsigned long magic, bool *shared);

#endif
