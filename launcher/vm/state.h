/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The state store: one JSON file per VM launched through kvm-launch, written
 * atomically into a private directory (statedir.h), plus the VM's two QMP
 * sockets (one held by its agent, one for --status and --set), the agent's
 * read-only view socket and the agent's log.
 *
 * Launch order (main.c):
 *   kl_state_prepare(l, dir, err)   directory, names, stale cleanup, claim
 *   kl_state_add_monitors(l)        bind the sockets; -chardev fd=N/-mon pairs on exec_argv
 *   kl_state_write(l, err)          STEM.json (after add_monitors: it records argv)
 *   kl_agent_spawn(l, err)          (agent.h) the agent gets the view socket only
 *   kl_state_pass_fds(l)            right before execve
 *
 * Every reader (status, set, agent) believes an entry only while its PID is
 * alive with the recorded /proc/PID/stat start time and runs as the entry's
 * owner. */
#ifndef KL_LAUNCHER_STATE_H
#define KL_LAUNCHER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <json-c/json.h>
#include "common/error.h"
#include "common/strbuf.h"
#include "launcher/launch.h"
#include "launcher/vm/procinfo.h"
#include "launcher/vm/statedir.h"

#define KL_STATE_VERSION 1
/* Longest sanitised name kept as is (a hash suffix follows when cut). */
#define KL_STATE_NAME_MAX 64
/* Events the agent keeps in the state file, newest last. */
#define KL_STATE_MAX_EVENTS 32
/* Live changes (--set, agent) kept in the state file. */
#define KL_STATE_MAX_CHANGES 32

/* ---- Launch side ---- */

/* What the launch keeps open between kl_state_prepare and the exec: the
 * private directory and the listening sockets kvm-launch bound there. */
struct kl_state_fds {
	int dirfd;
	uid_t owner;
	char *stem;
	int agent_fd;      /* STEM.agent.sock 0600, QEMU's monitor for the agent */
	int query_fd;      /* STEM.qmp.sock 0600, QEMU's monitor for --status/--set */
	int view_fd;       /* STEM.view.sock 0660, the agent's read-only view */
};
void kl_state_fds_free(struct kl_state_fds *f);

/* Choose and open the private directory (statedir.h: --state-dir or
 * state-dir = as given, else the layout for our uid), remove stale entries
 * in it, and fill l->state_dir, state_file, agent_socket, query_socket,
 * agent_log (paths for humans), l->state_fds, pid, start_ticks and
 * started_unix.  It claims the name under the directory's .lock by writing
 * a first entry naming our PID (kl_state_write replaces it), so that
 * launches of one -name at the same moment get distinct entries. */
int kl_state_prepare(struct kl_launch *l, const char *state_dir, struct kl_error *err);
/* Bind STEM.agent.sock and STEM.qmp.sock (umask 077) and STEM.view.sock
 * (0660) ourselves, so nobody can bind those names first, and append
 * -chardev socket,id=...,fd=N,server=on,wait=off -mon chardev=...,mode=control
 * for kvmlaunch-agent and kvmlaunch-query to l->exec_argv.  On failure the
 * VM starts without monitors (one warning). */
void kl_state_add_monitors(struct kl_launch *l);
/* The same for a QEMU that daemonizes (launcher/follow.h): the view socket
 * is bound as above, but the agent's and the query monitor are given to QEMU
 * as path=DIR/STEM.agent.sock and path=DIR/STEM.qmp.sock (server=on,
 * wait=off), so that QEMU's daemon binds them itself and a connection's
 * SO_PEERCRED names it.  -1 (exec_argv unchanged) when a path does not fit. */
int kl_state_add_path_monitors(struct kl_launch *l, struct kl_error *err);
/* Right before execve of QEMU (after kl_agent_spawn): the two monitor
 * listeners lose FD_CLOEXEC (QEMU takes them over), everything else of ours
 * is closed.  Nothing else ever inherits them. */
void kl_state_pass_fds(struct kl_launch *l);
/* Write the entry (json-c; temp file + rename, mode 0640). */
int kl_state_write(const struct kl_launch *l, struct kl_error *err);
/* The object kl_state_write writes (caller puts it). */
json_object *kl_state_to_json(const struct kl_launch *l);

/* ---- Names ---- */

/* The file-name stem for a VM: [A-Za-z0-9._-] kept, others '_', no leading
 * '.', at most KL_STATE_NAME_MAX characters; a "-xxxxxxxx" hash of the
 * original is appended when anything was changed or cut, so different names
 * stay different.  NULL or "" gives "pid-PID".  Caller frees. */
char *kl_state_name(const char *vm_name, pid_t pid);
/* The explicit-directory check of kl_statedir_for_launch (create 0750, owned
 * by us, not group/other-writable, world access removed), for tests. */
int kl_state_dir_ensure(const char *dir, struct kl_error *err);
/* Escape ',' as ',,' for a QEMU option value.  Caller frees. */
char *kl_state_qemu_escape(const char *s);

/* ---- Reading, updating, removing (entries.c) ----
 *
 * Every reader works from a trusted directory fd (statedir.h): entries are
 * opened O_NOFOLLOW|O_NONBLOCK, must be regular files owned by the
 * directory's owner and at most KL_STATE_MAX_BYTES, and are handled one at a
 * time.  File names are derived from the entry's own file name (STEM.json ->
 * STEM.qmp.sock...); paths written inside the JSON are never used. */

/* Parse an entry by path (its directory opened without following a
 * symlink; any owner).  For tests and helpers. */
int kl_state_read(const char *path, json_object **out, struct kl_error *err);
/* Parse DIR/NAME, owned by owner. */
int kl_state_read_at(int dirfd, const char *name, uid_t owner, json_object **out, struct kl_error *err);
/* Write obj to path atomically (mode 0640). */
int kl_state_write_json(const char *path, json_object *obj, struct kl_error *err);
/* The same into DIR/NAME, the file owned by owner. */
int kl_state_write_at(int dirfd, const char *name, uid_t owner, json_object *obj, struct kl_error *err);

/* Locked read-modify-write of one entry (DIR/.lock, shared with the
 * launcher, the agent and --set).  fn gets the parsed state and returns 1 to
 * write it back, 0 to leave it, -1 to fail (err set).  If the file belongs to
 * another process than pid/start_ticks (a newer launch of the same name) or
 * no longer exists, fn is not called and 0 is returned with *gone set (when
 * gone is not NULL). */
int kl_state_update(const char *path, pid_t pid, unsigned long long start_ticks,
		    int (*fn)(json_object *state, void *ctx, struct kl_error *err), void *ctx,
		    bool *gone, struct kl_error *err);

/* One entry of a state directory. */
struct kl_state_entry {
	char *file;                  /* DIR/STEM.json (for messages) */
	char *dir;                   /* DIR */
	char *stem;                  /* STEM, from the file name */
	int dirfd;                   /* DIR, trusted (its own fd) */
	uid_t owner;                 /* the entry's and the directory's owner */
	json_object *json;           /* the parsed state */
	const char *name;            /* VM name, else the stem (points into json or stem) */
	pid_t pid;
	unsigned long long start_ticks;
	enum kl_proc_state proc;     /* QEMU's process: ALIVE only when believed */
	const char *distrust;        /* why a live PID is not believed (NULL: it is, or the PID is gone) */
	pid_t agent_pid;             /* 0 if none recorded */
	enum kl_proc_state agent;    /* the agent's process */
	bool stopped;                /* marked stopped by its agent */
};

/* Call fn for every entry of the directories kvm-launch reads
 * (kl_statedir_for_read), one at a time, sorted by file name within a
 * directory; fn may keep nothing that points into e after it returns, or
 * steal it (then clear what it took).  fn returning < 0 stops.  Problems
 * with directories go to errors (may be NULL); unreadable entries are
 * skipped with a warning. */
int kl_state_foreach(const char *state_dir, int (*fn)(struct kl_state_entry *e, void *ctx), void *ctx,
		     struct strvec *errors);
/* Every *.json in dir (dot files skipped), sorted by name.  A missing
 * directory is no entries.  For tests (kl_state_foreach holds one at a time). */
int kl_state_list(const char *dir, struct kl_state_entry **out, size_t *n, struct kl_error *err);
void kl_state_entries_free(struct kl_state_entry *e, size_t n);
/* Not believed: QEMU's PID is gone or reused, the start time was not
 * recorded, or the process runs as another uid than the entry's owner. */
bool kl_state_entry_stale(const struct kl_state_entry *e);
/* Find a running VM by name (the -name given or the file stem).  Two
 * believed entries of that name are refused as ambiguous.  Returns 0 and
 * fills *out (free with kl_state_entries_free(out, 1)), -1 with err. */
int kl_state_find(const char *state_dir, const char *name, struct kl_state_entry *out, struct kl_error *err);
/* May this process drive the VM's QEMU monitor (root, or the owner)?  If
 * not, err says why. */
int kl_state_may_drive(const struct kl_state_entry *e, struct kl_error *err);

/* Remove an entry by its stem: STEM.json, .agent.sock, .qmp.sock,
 * .view.sock, .pid and (unless keep_log) .agent.log, by unlinkat on dirfd, each
 * only if owned by owner and of the expected type. */
void kl_state_remove_at(int dirfd, const char *stem, uid_t owner, bool keep_log);
/* Remove stale entries of dir (a path); returns how many. */
int kl_state_clean_stale(const char *dir);
/* The same on an open trusted directory, under its lock. */
int kl_state_clean_stale_at(int dirfd, const char *path, uid_t owner);

#endif
