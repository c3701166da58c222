/* The state directory: one JSON file per VM launched through kvm-launch,
 * written atomically, plus the VM's two QMP sockets (one held by its agent,
 * one for --status and --set) and the agent's log.
 *
 * Launch order (main.c):
 *   kl_state_prepare(l, dir, err)   directory, file and socket names
 *   kl_state_add_monitors(l)        the two -chardev/-mon pairs on exec_argv
 *   kl_state_write(l, err)          NAME.json (after add_monitors: it records argv)
 *   kl_agent_spawn(l, err)          (agent.h) right before execve
 *
 * Every reader (status, set, agent) treats an entry as belonging to a process
 * only while that PID is alive with the recorded /proc/PID/stat start time. */
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

#define KL_STATE_VERSION 1
/* Longest sanitised name kept as is (a hash suffix follows when cut). */
#define KL_STATE_NAME_MAX 64
/* Events the agent keeps in the state file, newest last. */
#define KL_STATE_MAX_EVENTS 32
/* Live changes (--set, agent) kept in the state file. */
#define KL_STATE_MAX_CHANGES 32

/* ---- Launch side ---- */

/* Choose and create the directory (state_dir, else KL_DEFAULT_STATE_DIR, else
 * for a non-root user $XDG_RUNTIME_DIR/kvm-launch), and fill l->state_dir,
 * state_file, agent_socket, query_socket (NULL when no path fits sun_path:
 * the VM then starts without monitors), agent_log, pid, start_ticks and
 * started_unix.  Also removes stale entries it finds in the directory, and
 * claims the name under the directory lock by writing a first state file
 * that names our PID (kl_state_write replaces it), so that launches of one
 * -name at the same moment get distinct entries and sockets. */
int kl_state_prepare(struct kl_launch *l, const char *state_dir, struct kl_error *err);
/* Append -chardev socket,...,server=on,wait=off -mon chardev=...,mode=control
 * for kvmlaunch-agent and kvmlaunch-query to l->exec_argv, after removing
 * stale sockets at those paths.  Does nothing when the sockets are NULL. */
void kl_state_add_monitors(struct kl_launch *l);
/* Write l->state_file (json-c; temp file + fsync + rename, mode 0640). */
int kl_state_write(const struct kl_launch *l, struct kl_error *err);
/* The object kl_state_write writes (caller puts it). */
json_object *kl_state_to_json(const struct kl_launch *l);

/* ---- Names and paths ---- */

/* The file-name stem for a VM: [A-Za-z0-9._-] kept, others '_', no leading
 * '.', at most KL_STATE_NAME_MAX characters; a "-xxxxxxxx" hash of the
 * original is appended when anything was changed or cut, so different names
 * stay different.  NULL or "" gives "pid-PID".  Caller frees. */
char *kl_state_name(const char *vm_name, pid_t pid);
/* Create (mode 0750) or check a state directory: not a symlink, a directory,
 * owned by us or root, not writable by others; world access bits are
 * removed if we own it, else refused.  Parents are created 0755. */
int kl_state_dir_ensure(const char *dir, struct kl_error *err);
/* Where the monitors of a VM go: DIR/STEM.agent.sock and DIR/STEM.qmp.sock,
 * else DIR/PID.a.sock and DIR/PID.q.sock, else SHORT/HASH.a and SHORT/HASH.q
 * (SHORT = KL_DEFAULT_STATE_DIR/s for root, $XDG_RUNTIME_DIR/kvm-launch/s
 * otherwise; created 0700), else both NULL.  Returns 0 when paths were set. */
int kl_state_socket_paths(const char *dir, const char *stem, pid_t pid, char **agent_out, char **query_out);
/* Same with the short directory given (NULL: no third choice); for tests. */
int kl_state_socket_paths_in(const char *dir, const char *stem, pid_t pid, const char *short_dir,
			     char **agent_out, char **query_out);
/* The directories --status/--set read when state_dir is NULL: the default,
 * and $XDG_RUNTIME_DIR/kvm-launch for a non-root user. */
void kl_state_dirs(const char *state_dir, struct strvec *out);
/* Escape ',' as ',,' for a QEMU option value.  Caller frees. */
char *kl_state_qemu_escape(const char *s);

/* ---- Reading, updating, removing ---- */

/* Parse a state file (must be a JSON object). */
int kl_state_read(const char *path, json_object **out, struct kl_error *err);
/* Write obj to path atomically (mode 0640). */
int kl_state_write_json(const char *path, json_object *obj, struct kl_error *err);

/* Locked read-modify-write of one state file (flock on its directory, shared
 * with the launcher, the agent and --set).  fn gets the parsed state and
 * returns 1 to write it back, 0 to leave it, -1 to fail (err set).  If the
 * file belongs to another process than pid/start_ticks (a newer launch of the
 * same name) or no longer exists, fn is not called and 0 is returned with
 * *gone set (when gone is not NULL). */
int kl_state_update(const char *path, pid_t pid, unsigned long long start_ticks,
		    int (*fn)(json_object *state, void *ctx, struct kl_error *err), void *ctx,
		    bool *gone, struct kl_error *err);

/* One entry of a state directory. */
struct kl_state_entry {
	char *file;                  /* DIR/STEM.json */
	json_object *json;           /* the parsed state */
	const char *name;            /* VM name, else the stem (points into json or file) */
	pid_t pid;
	unsigned long long start_ticks;
	enum kl_proc_state proc;     /* QEMU's process */
	pid_t agent_pid;             /* 0 if none recorded */
	enum kl_proc_state agent;    /* the agent's process */
	bool stopped;                /* marked stopped by its agent */
};

/* Every *.json in dir (dot files skipped), sorted by name.  A missing
 * directory is no entries.  Unparsable files are skipped with a warning. */
int kl_state_list(const char *dir, struct kl_state_entry **out, size_t *n, struct kl_error *err);
void kl_state_entries_free(struct kl_state_entry *e, size_t n);
/* Stale: QEMU's PID is gone or reused. */
bool kl_state_entry_stale(const struct kl_state_entry *e);
/* Find a VM by name (the -name given or the file stem) in the directories of
 * kl_state_dirs(state_dir).  Returns 0 and fills *out (free with
 * kl_state_entries_free(out, 1)), -1 with err when not found. */
int kl_state_find(const char *state_dir, const char *name, struct kl_state_entry *out, struct kl_error *err);

/* Remove an entry: the JSON, and the sockets and log it names, but only
 * files in the entry's own directory (or the short socket directory) and of
 * the right type (sockets must be sockets).  keep_log keeps the agent log. */
void kl_state_remove(const char *state_file, json_object *state, bool keep_log);
/* Remove stale entries of dir; returns how many. */
int kl_state_clean_stale(const char *dir);

/* Small json-c helpers shared by status/set/agent (NULL/0/false when absent
 * or of another type). */
const char *kl_js_str(json_object *o, const char *key);
long long kl_js_int(json_object *o, const char *key, long long dflt);
bool kl_js_bool(json_object *o, const char *key, bool dflt);
json_object *kl_js_get(json_object *o, const char *key, json_type type);

#endif
