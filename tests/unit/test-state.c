/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The state directory: names, atomic writes, stale entries, socket paths. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <grp.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"
#include "common/json.h"
#include "common/xalloc.h"
#include "common/log.h"
#include "launcher/launch.h"
#include "launcher/vm/procinfo.h"
#include "launcher/vm/state.h"
#include "launcher/vm/statedir.h"
#include "launcher/vm/view.h"

static char tmpdir[PATH_MAX];

static bool stem_is_safe(const char *s)
{
	if (!s || !*s || s[0] == '.' || strlen(s) > KL_STATE_NAME_MAX + 9)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '.' || *p == '_' || *p == '-'))
			return false;
	return true;
}

static void test_name_plain(void)
{
	char *s = kl_state_name("web-01.example_com", 42);
	CHECK_STREQ(s, "web-01.example_com");
	free(s);
	s = kl_state_name(NULL, 42);
	CHECK_STREQ(s, "pid-42");
	free(s);
	s = kl_state_name("", 7);
	CHECK_STREQ(s, "pid-7");
	free(s);
}

static void test_name_hostile(void)
{
	static const char *const bad[] = {
		"a/b", "../../etc/passwd", "..", ".", ".hidden", "a\nb", "tab\there", "ctl\x01\x7f",
		"caf\xc3\xa9", "\xff\xfe", "/", "a b", "x:y", "semi;colon", "$(reboot)", "-leading-dash",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char *s = kl_state_name(bad[i], 1);
		if (!stem_is_safe(s))
			printf("#   unsafe stem for name %zu: \"%s\"\n", i, s);
		CHECK(stem_is_safe(s));
		CHECK(strchr(s, '/') == NULL);
		CHECK(strcmp(s, "..") != 0 && strcmp(s, ".") != 0);
		free(s);
	}
	/* "-leading-dash" is kept: every character is allowed. */
	char *s = kl_state_name("-leading-dash", 1);
	CHECK_STREQ(s, "-leading-dash");
	free(s);
	/* Names that differ only in replaced characters stay different. */
	char *a = kl_state_name("a/b", 1), *b = kl_state_name("a\nb", 1), *c = kl_state_name("a_b", 1);
	CHECK(strcmp(a, b) != 0);
	CHECK(strcmp(a, c) != 0);
	CHECK(strcmp(b, c) != 0);
	CHECK_STREQ(c, "a_b");
	CHECK(strncmp(a, "a_b-", 4) == 0);
	free(a);
	free(b);
	free(c);
	/* Deterministic. */
	a = kl_state_name("x/y", 1);
	b = kl_state_name("x/y", 2);
	CHECK_STREQ(a, b);
	free(a);
	free(b);
}

static void test_name_long(void)
{
	char *big = xmalloc(5001);
	memset(big, 'v', 5000);
	big[5000] = '\0';
	char *s = kl_state_name(big, 1);
	CHECK(stem_is_safe(s));
	CHECK(strlen(s) <= KL_STATE_NAME_MAX + 9);
	big[4999] = 'w'; /* differs only past the cut */
	char *t = kl_state_name(big, 1);
	CHECK(strcmp(s, t) != 0);
	free(s);
	free(t);
	/* Exactly the limit: kept as is. */
	big[KL_STATE_NAME_MAX] = '\0';
	s = kl_state_name(big, 1);
	CHECK_INTEQ(strlen(s), KL_STATE_NAME_MAX);
	free(s);
	free(big);
}

static void test_name_stays_in_dir(void)
{
	/* Whatever the name, DIR/STEM.json resolves inside DIR. */
	static const char *const names[] = { "../x", "a/../../b", "..", "/etc/cron.d/x", "a\0b" };
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		char *s = kl_state_name(names[i], 1);
		char *path = xasprintf("%s/%s.json", tmpdir, s);
		int fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0600);
		CHECK(fd >= 0);
		if (fd >= 0)
			close(fd);
		char real[PATH_MAX];
		CHECK(realpath(path, real) != NULL);
		CHECK(strncmp(real, tmpdir, strlen(tmpdir)) == 0 && strchr(real + strlen(tmpdir) + 1, '/') == NULL);
		unlink(path);
		free(path);
		free(s);
	}
}

static int count_files(const char *dir)
{
	char *cmd = xasprintf("ls -A '%s' | wc -l", dir);
	FILE *p = popen(cmd, "r");
	int n = -1;
	if (p) {
		if (fscanf(p, "%d", &n) != 1)
			n = -1;
		pclose(p);
	}
	free(cmd);
	return n;
}

#define UNPRIV_UID 65534 /* nobody */

/* In a directory that forbids writing, kl_state_write_json fails and the
 * previous file (pid 2) still reads back.  Returns true when it does. */
static bool refused_write_attempt(const char *path, json_object *o)
{
	struct kl_error err = KL_ERROR_INIT;
	json_object *back = NULL;
	if (kl_state_write_json(path, o, &err) == 0) {
		printf("#   the write into a read-only directory succeeded (euid %d)\n", (int)geteuid());
		return false;
	}
	if (kl_state_read(path, &back, &err) < 0) {
		printf("#   the old file cannot be read back: %s\n", err.msg);
		return false;
	}
	bool ok = kl_json_int(back, "pid", -1) == 2;
	json_object_put(back);
	return ok;
}

static bool refused_write_keeps_old(const char *dir, const char *path, json_object *o)
{
	if (geteuid() != 0)
		return refused_write_attempt(path, o);
	/* The unprivileged child must reach and read what root created. */
	if (chmod(tmpdir, 0711) < 0 || chown(dir, UNPRIV_UID, UNPRIV_UID) < 0 ||
	    chown(path, UNPRIV_UID, UNPRIV_UID) < 0) {
		printf("#   cannot hand the directory to uid %d: %s\n", UNPRIV_UID, strerror(errno));
		return false;
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setresgid(UNPRIV_UID, UNPRIV_UID, UNPRIV_UID) < 0 ||
		    setresuid(UNPRIV_UID, UNPRIV_UID, UNPRIV_UID) < 0 || geteuid() != UNPRIV_UID) {
			printf("#   cannot drop to uid %d: %s\n", UNPRIV_UID, strerror(errno));
			_exit(1);
		}
		bool ok = refused_write_attempt(path, o);
		fflush(stdout);
		_exit(ok ? 0 : 1);
	}
	int status = -1;
	bool ok = pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
	if (chmod(tmpdir, 0700) < 0 || chown(dir, 0, 0) < 0 || chown(path, 0, 0) < 0)
		ok = false;
	return ok;
}

static void test_atomic_write(void)
{
	char *dir = xasprintf("%s/atomic", tmpdir);
	char *path = xasprintf("%s/vm.json", dir);
	struct kl_error err = KL_ERROR_INIT;
	CHECK(kl_state_dir_ensure(dir, &err) == 0);

	json_object *o = json_object_new_object();
	json_object_object_add(o, "pid", json_object_new_int(1));
	CHECK(kl_state_write_json(path, o, &err) == 0);
	struct stat st;
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0640);
	ino_t first = st.st_ino;

	/* A second write replaces the file (new inode: rename, not rewrite in place). */
	json_object_object_add(o, "pid", json_object_new_int(2));
	CHECK(kl_state_write_json(path, o, &err) == 0);
	CHECK(stat(path, &st) == 0 && st.st_ino != first);
	json_object *back = NULL;
	CHECK(kl_state_read(path, &back, &err) == 0);
	CHECK_INTEQ(kl_json_int(back, "pid", -1), 2);
	json_object_put(back);
	CHECK_INTEQ(count_files(dir), 1); /* no temporary file left */

	/* A failed write leaves the old file and no debris.  Root writes into a
	 * read-only directory anyway, so as root a child that has dropped to an
	 * unprivileged uid makes the attempt. */
	chmod(dir, 0500);
	CHECK(refused_write_keeps_old(dir, path, o));
	chmod(dir, 0750);
	CHECK_INTEQ(count_files(dir), 1);
	char *nodir = xasprintf("%s/missing/vm.json", tmpdir);
	CHECK(kl_state_write_json(nodir, o, &err) < 0);
	CHECK(err.set && err.errnum == ENOENT);
	free(nodir);

	/* Not JSON / not an object: refused by the reader. */
	char *junk = xasprintf("%s/junk.json", dir);
	FILE *f = fopen(junk, "w");
	fputs("{\"a\":", f);
	fclose(f);
	CHECK(kl_state_read(junk, &back, &err) < 0);
	f = fopen(junk, "w");
	fputs("[1,2]", f);
	fclose(f);
	CHECK(kl_state_read(junk, &back, &err) < 0);
	unlink(junk);
	free(junk);
	json_object_put(o);
	free(path);
	free(dir);
}

static void test_dir_checks(void)
{
	struct kl_error err = KL_ERROR_INIT;
	char *real = xasprintf("%s/realdir", tmpdir);
	char *link = xasprintf("%s/linkdir", tmpdir);
	char *open_dir = xasprintf("%s/worldopen", tmpdir);
	char *ww = xasprintf("%s/worldwritable", tmpdir);
	char *nested = xasprintf("%s/a/b/c", tmpdir);
	struct stat st;

	CHECK(kl_state_dir_ensure(real, &err) == 0);
	CHECK(stat(real, &st) == 0 && (st.st_mode & 07777) == 0750);
	CHECK(symlink(real, link) == 0);
	CHECK(kl_state_dir_ensure(link, &err) < 0);
	CHECK(strstr(err.msg, "symbolic link") != NULL);

	mkdir(open_dir, 0755);
	chmod(open_dir, 0755);
	CHECK(kl_state_dir_ensure(open_dir, &err) == 0); /* ours: world bits removed */
	CHECK(stat(open_dir, &st) == 0 && (st.st_mode & 0007) == 0);

	mkdir(ww, 0777);
	chmod(ww, 01777);
	CHECK(kl_state_dir_ensure(ww, &err) < 0);
	CHECK(strstr(err.msg, "writable by everyone") != NULL);

	/* Group-writable: refused too (a group member could plant entries);
	 * the special bits of a private directory survive the world-bit fix. */
	char *gw = xasprintf("%s/groupwritable", tmpdir);
	mkdir(gw, 0770);
	chmod(gw, 0770);
	CHECK(kl_state_dir_ensure(gw, &err) < 0);
	CHECK(strstr(err.msg, "writable by its group") != NULL);
	chmod(gw, 02755);
	CHECK(kl_state_dir_ensure(gw, &err) == 0);
	CHECK(stat(gw, &st) == 0 && (st.st_mode & 07777) == 02750);
	free(gw);

	CHECK(kl_state_dir_ensure(nested, &err) == 0);
	CHECK(stat(nested, &st) == 0 && S_ISDIR(st.st_mode));

	char *file = xasprintf("%s/plainfile", tmpdir);
	close(open(file, O_CREAT | O_WRONLY, 0600));
	CHECK(kl_state_dir_ensure(file, &err) < 0);
	free(file);
	free(real);
	free(link);
	free(open_dir);
	free(ww);
	free(nested);
}

static void test_sockaddr(void)
{
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
	struct sockaddr_un sa;
	socklen_t len;
	char dir[300];
	memset(dir, 'd', sizeof dir);
	dir[0] = '/';
	dir[250] = '\0';

	/* Through the directory fd: short whatever the directory's path. */
	struct kl_statedir d = { 7, dir, 0 };
	if (access("/proc/self/fd", X_OK) == 0) {
		CHECK(kl_statedir_sockaddr(&d, "web.qmp.sock", &sa, &len) == 0);
		CHECK_STREQ(sa.sun_path, "/proc/self/fd/7/web.qmp.sock");
		CHECK(strlen(sa.sun_path) <= max);
	}
	/* Without an fd, the path if it fits, else nothing. */
	d.fd = -1;
	CHECK(kl_statedir_sockaddr(&d, "web.qmp.sock", &sa, &len) < 0);
	d.path = "/run/kvm-launch/root";
	CHECK(kl_statedir_sockaddr(&d, "web.qmp.sock", &sa, &len) == 0);
	CHECK_STREQ(sa.sun_path, "/run/kvm-launch/root/web.qmp.sock");
}

static void test_escape(void)
{
	char *s = kl_state_qemu_escape("/run/a,b,,c");
	CHECK_STREQ(s, "/run/a,,b,,,,c");
	free(s);
}

/* A child that exits at once: a PID that is surely gone afterwards. */
static pid_t dead_pid(void)
{
	pid_t p = fork();
	if (p == 0)
		_exit(0);
	waitpid(p, NULL, 0);
	return p;
}

static void write_entry(const char *dir, const char *stem, const char *name, pid_t pid, unsigned long long ticks,
			const char *sock, const char *log)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "name", name ? json_object_new_string(name) : NULL);
	json_object_object_add(o, "stem", json_object_new_string(stem));
	json_object_object_add(o, "pid", json_object_new_int64(pid));
	json_object_object_add(o, "start_ticks", json_object_new_int64((int64_t)ticks));
	if (sock)
		json_object_object_add(o, "query_socket", json_object_new_string(sock));
	if (log)
		json_object_object_add(o, "agent_log", json_object_new_string(log));
	char *path = xasprintf("%s/%s.json", dir, stem);
	struct kl_error err = KL_ERROR_INIT;
	CHECK(kl_state_write_json(path, o, &err) == 0);
	free(path);
	json_object_put(o);
}

static void make_socket(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	CHECK(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
	close(fd);
}

static void test_stale(void)
{
	char *dir = xasprintf("%s/stale", tmpdir);
	struct kl_error err = KL_ERROR_INIT;
	unsigned long long ticks;
	CHECK(kl_state_dir_ensure(dir, &err) == 0);
	CHECK(kl_proc_start_ticks(getpid(), &ticks) == 0);

	CHECK(kl_proc_check(getpid(), ticks) == KL_PROC_ALIVE);
	CHECK(kl_proc_check(getpid(), ticks + 1) == KL_PROC_REUSED);
	pid_t dead = dead_pid();
	CHECK(kl_proc_check(dead, 0) == KL_PROC_GONE);
	CHECK(kl_proc_check(0, 0) == KL_PROC_GONE);
	CHECK(kl_proc_check(-5, 0) == KL_PROC_GONE);

	char *dsock = xasprintf("%s/dead.qmp.sock", dir);
	char *dlog = xasprintf("%s/dead.agent.log", dir);
	char *outside = xasprintf("%s/outside-file", tmpdir);
	make_socket(dsock);
	close(open(dlog, O_CREAT | O_WRONLY, 0600));
	close(open(outside, O_CREAT | O_WRONLY, 0600));

	write_entry(dir, "live", "live", getpid(), ticks, NULL, NULL);
	write_entry(dir, "dead", "dead", dead, 12345, dsock, dlog);
	write_entry(dir, "reused", "reused", getpid(), ticks + 99, NULL, NULL);
	/* A forged entry naming a file outside the directory as its socket and
	 * log: cleaning must not remove it. */
	write_entry(dir, "forged", NULL, dead, 1, outside, outside);

	struct kl_state_entry *es;
	size_t n;
	CHECK(kl_state_list(dir, &es, &n, &err) == 0);
	CHECK_INTEQ(n, 4);
	int stale = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(es[i].name, "live") == 0)
			CHECK(!kl_state_entry_stale(&es[i]));
		else
			stale += kl_state_entry_stale(&es[i]);
		if (strcmp(es[i].name, "reused") == 0)
			CHECK(es[i].proc == KL_PROC_REUSED);
	}
	CHECK_INTEQ(stale, 3);
	/* Sorted by name; the unnamed entry is listed by its stem. */
	CHECK(n == 4 && strcmp(es[0].name, "dead") == 0 && strcmp(es[1].name, "forged") == 0);
	kl_state_entries_free(es, n);
	free(es);

	struct kl_state_entry e;
	CHECK(kl_state_find(dir, "live", &e, &err) == 0);
	CHECK_INTEQ(e.pid, getpid());
	kl_state_entries_free(&e, 1);
	CHECK(kl_state_find(dir, "nosuch", &e, &err) < 0);

	CHECK_INTEQ(kl_state_clean_stale(dir), 3);
	CHECK(access(dsock, F_OK) < 0 && errno == ENOENT);
	CHECK(access(dlog, F_OK) < 0 && errno == ENOENT);
	CHECK(access(outside, F_OK) == 0);
	char *livef = xasprintf("%s/live.json", dir);
	CHECK(access(livef, F_OK) == 0);
	CHECK_INTEQ(count_files(dir), 2); /* live.json and .lock */
	free(livef);
	free(dsock);
	free(dlog);
	free(outside);
	free(dir);
}

static int bump(json_object *st, void *ctx, struct kl_error *err)
{
	(void)err;
	++*(int *)ctx;
	json_object_object_add(st, "bumped", json_object_new_boolean(true));
	return 1;
}

static void test_update(void)
{
	char *dir = xasprintf("%s/update", tmpdir);
	struct kl_error err = KL_ERROR_INIT;
	unsigned long long ticks;
	CHECK(kl_state_dir_ensure(dir, &err) == 0);
	CHECK(kl_proc_start_ticks(getpid(), &ticks) == 0);
	write_entry(dir, "vm", "vm", getpid(), ticks, NULL, NULL);
	char *path = xasprintf("%s/vm.json", dir);
	int calls = 0;
	bool gone = true;

	CHECK(kl_state_update(path, getpid(), ticks, bump, &calls, &gone, &err) == 0);
	CHECK(calls == 1 && !gone);
	json_object *o = NULL;
	CHECK(kl_state_read(path, &o, &err) == 0);
	CHECK(kl_json_bool(o, "bumped", false));
	json_object_put(o);

	/* Another process's entry (a newer launch of the same name): untouched. */
	CHECK(kl_state_update(path, getpid() + 1, ticks, bump, &calls, &gone, &err) == 0);
	CHECK(calls == 1 && gone);
	CHECK(kl_state_update(path, getpid(), ticks + 1, bump, &calls, &gone, &err) == 0);
	CHECK(calls == 1 && gone);
	/* A removed file is "gone", not an error. */
	unlink(path);
	CHECK(kl_state_update(path, getpid(), ticks, bump, &calls, &gone, &err) == 0);
	CHECK(calls == 1 && gone);
	free(path);
	free(dir);
}

static void test_prepare_and_write(void)
{
	char *dir = xasprintf("%s/pre,pare", tmpdir);
	struct kl_launch l;
	struct kl_error err = KL_ERROR_INIT;
	static char *qargs[] = { "-name", "guest=../evil/vm,debug-threads=on", "-incoming", "defer", NULL };
	struct kl_disk_given g = { .id = "virtio-disk0", .node = "libvirt-1-format", .path = "/var/lib/x.img",
				   .driver = "file", .cache = KL_CACHE_WRITEBACK };

	memset(&l, 0, sizeof l);
	l.qemu = xstrdup("/usr/bin/qemu-system-x86_64");
	l.argc = 4;
	l.argv = qargs;
	l.vm.name = "../evil/vm";
	l.vm.incoming = true;
	l.host.aio_nr = 5;
	l.host.aio_max_nr = 65536;
	l.ndisks = 1;
	l.disks = xcalloc(1, sizeof *l.disks);
	l.disks[0].given = &g;
	l.disks[0].takes_aio = true;
	l.disks[0].aio = KL_AIO_IO_URING;
	l.disks[0].cache = KL_CACHE_NONE;
	l.disks[0].facts.shared = KL_TRI_NO;
	l.disks[0].decision.has_throttle = true;
	l.disks[0].decision.throttle.iops = 500;
	snprintf(l.disks[0].decision.rule, sizeof l.disks[0].decision.rule, "default:file");
	strvec_push_dup(&l.disks[0].decision.reasons, "file on ext4");
	strvec_push_dup(&l.exec_argv, l.qemu);
	for (int i = 0; i < l.argc; i++)
		strvec_push_dup(&l.exec_argv, qargs[i]);

	CHECK(kl_state_prepare(&l, dir, &err) == 0);
	if (err.set)
		printf("#   %s\n", err.msg);
	CHECK(l.state_file && strncmp(l.state_file, tmpdir, strlen(tmpdir)) == 0);
	CHECK(l.state_file && strstr(l.state_file, "/pre,pare/") && !strstr(l.state_file, "/evil"));
	CHECK(l.pid == getpid() && l.start_ticks > 0 && l.started_unix > 0);
	CHECK(l.agent_log && l.state_fds);
	size_t before = l.exec_argv.n;
	kl_state_add_monitors(&l);
	CHECK(l.agent_socket && l.query_socket);
	CHECK_INTEQ(l.exec_argv.n, before + 8);
	CHECK_STREQ(l.exec_argv.v[before], "-chardev");
	CHECK(strstr(l.exec_argv.v[before + 1], "id=kvmlaunch-agent,fd=") != NULL);
	CHECK(strstr(l.exec_argv.v[before + 1], ",server=on,wait=off") != NULL);
	CHECK_STREQ(l.exec_argv.v[before + 3], "chardev=kvmlaunch-agent,mode=control");
	CHECK(strstr(l.exec_argv.v[before + 5], "id=kvmlaunch-query,") != NULL);

	CHECK(kl_state_write(&l, &err) == 0);
	json_object *o = NULL;
	CHECK(kl_state_read(l.state_file, &o, &err) == 0);
	CHECK_STREQ(kl_json_str(o, "name"), "../evil/vm");
	const char *stem = kl_json_str(o, "stem");
	CHECK(stem && stem_is_safe(stem) && !strstr(stem, ".json") && strstr(l.state_file, stem));
	CHECK_INTEQ(kl_json_int(o, "pid", 0), getpid());
	CHECK(kl_json_bool(o, "incoming", false));
	CHECK(kl_json_bool(o, "running", false));
	json_object *disks = kl_json_get(o, "disks", json_type_array);
	json_object *d0 = disks ? json_object_array_get_idx(disks, 0) : NULL;
	CHECK_STREQ(kl_json_str(d0, "cache"), "none");
	CHECK_STREQ(kl_json_str(d0, "aio"), "io_uring");
	CHECK_STREQ(kl_json_str(d0, "given_cache"), "writeback");
	CHECK(kl_json_str(d0, "given_aio") == NULL);
	CHECK_INTEQ(kl_json_int(kl_json_get(d0, "throttle", json_type_object), "iops", 0), 500);
	CHECK_INTEQ(json_object_array_length(kl_json_get(o, "argv", json_type_array)), l.exec_argv.n);
	CHECK_INTEQ(json_object_array_length(kl_json_get(o, "argv_original", json_type_array)), 4);
	CHECK_INTEQ(kl_json_int(kl_json_get(o, "host", json_type_object), "aio_max_nr", 0), 65536);
	json_object_put(o);

	/* We bound the sockets ourselves: 0600 for QEMU's monitors, 0660 for
	 * the view, listening, and our PID is the peer. */
	struct stat st;
	CHECK(stat(l.agent_socket, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600);
	CHECK(stat(l.query_socket, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600);
	char *view = xasprintf("%s/%s.view.sock", l.state_dir, l.state_fds->stem);
	CHECK(stat(view, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0660);
	free(view);
	struct kl_statedir sd = { l.state_fds->dirfd, l.state_dir, geteuid() };
	char *qname = xasprintf("%s.qmp.sock", l.state_fds->stem);
	int c = kl_vm_connect_at(&sd, qname, getpid(), geteuid(), 1000, &err);
	CHECK(c >= 0);
	if (c >= 0)
		close(c);
	CHECK(kl_vm_connect_at(&sd, qname, getpid() + 1, geteuid(), 1000, &err) < 0);
	CHECK(strstr(err.msg, "not by the VM's QEMU") != NULL);
	free(qname);
	/* Before the exec only QEMU's two listeners lose close-on-exec. */
	int afd = l.state_fds->agent_fd, vfd = l.state_fds->view_fd;
	CHECK((fcntl(afd, F_GETFD) & FD_CLOEXEC) != 0);
	kl_state_pass_fds(&l);
	CHECK((fcntl(afd, F_GETFD) & FD_CLOEXEC) == 0);
	CHECK((fcntl(l.state_fds->query_fd, F_GETFD) & FD_CLOEXEC) == 0);
	CHECK(fcntl(vfd, F_GETFD) < 0 || vfd == afd || vfd == l.state_fds->query_fd);

	/* -daemonize: no state (QEMU would leave our PID). */
	static char *dargs[] = { "-daemonize", NULL };
	struct kl_launch d;
	memset(&d, 0, sizeof d);
	d.argc = 1;
	d.argv = dargs;
	CHECK(kl_state_prepare(&d, dir, &err) < 0);
	kl_launch_free(&d);
	/* The same when the model read it (a VM that got its policy). */
	static char *margs[] = { "-machine", "pc", "--daemonize", "-name", "dz", NULL };
	memset(&d, 0, sizeof d);
	d.argc = 5;
	d.argv = margs;
	CHECK(kl_model_parse(d.argc, d.argv, &d.model, &err) == 0);
	kl_error_clear(&err);
	CHECK(kl_state_prepare(&d, dir, &err) < 0);
	CHECK(strstr(err.msg, "-daemonize") != NULL);
	kl_launch_free(&d);
	kl_launch_free(&l);
	free(dir);
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "%s/kl-test-state.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	kl_log_set_level(KL_LOG_ERROR);
	RUN(test_name_plain);
	RUN(test_name_hostile);
	RUN(test_name_long);
	RUN(test_name_stays_in_dir);
	RUN(test_escape);
	RUN(test_atomic_write);
	RUN(test_dir_checks);
	RUN(test_sockaddr);
	RUN(test_stale);
	RUN(test_update);
	RUN(test_prepare_and_write);
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	free(cmd);
	return unit_done();
}
