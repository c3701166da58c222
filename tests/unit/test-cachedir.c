/* SPDX-License-Identifier: GPL-2.0-or-later */
/* common/cachedir: whose cache a process may use.  The cases for another uid
 * than root run in a child that drops to uid/gid 65534 (needs root; skipped
 * with a note otherwise). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"
#include "common/cachedir.h"
#include "common/safefile.h"
#include "common/xalloc.h"

#define OTHER 65534

static char tmpdir[PATH_MAX];

static char *sub(const char *name)
{
	return xasprintf("%s/%s", tmpdir, name);
}

static void test_own_private_dir(void)
{
	struct kl_error err = KL_ERROR_INIT;
	char *top = sub("mine"), *path = NULL;
	/* absent: root makes it; with create false it stays absent (ENOENT) */
	CHECK(kl_cache_dir_open(top, false, &path, &err) < 0);
	CHECK_INTEQ(err.errnum, ENOENT);
	int fd = kl_cache_dir_open(top, true, &path, &err);
	CHECK(fd >= 0);
	CHECK_STREQ(path, top);
	free(path);
	/* a subdirectory, made with the owner's mode, written and read back */
	int cal = fd >= 0 ? kl_cache_subdir_open(fd, "calibration", NULL, true, &err) : -1;
	CHECK(cal >= 0);
	CHECK_INTEQ(kl_write_at(cal, "x.json", "{}", 2, kl_cache_file_mode(), &err), 0);
	char *text = NULL;
	CHECK_INTEQ(kl_read_at(cal, "x.json", geteuid(), KL_CACHE_FILE_MAX, &text, NULL, &err), 0);
	CHECK_STREQ(text, "{}");
	free(text);
	if (cal >= 0)
		close(cal);
	/* a symlinked subdirectory is refused, even pointing at a good one */
	if (fd >= 0) {
		CHECK(symlinkat("calibration", fd, "link") == 0);
		CHECK(kl_cache_subdir_open(fd, "link", NULL, false, &err) < 0);
		CHECK(strstr(err.msg, "symlink is never followed") != NULL);
		close(fd);
	}
	free(top);
}

static void test_refused_tops(void)
{
	struct kl_error err = KL_ERROR_INIT;
	char *top = sub("groupw"), *link = sub("toplink");
	mkdir(top, 0775);
	chmod(top, 02775);  /* the old shipped layout */
	CHECK(kl_cache_dir_open(top, true, NULL, &err) < 0);
	CHECK(strstr(err.msg, "writable by its group") != NULL);
	chmod(top, 0755);
	CHECK(symlink(top, link) == 0);
	CHECK(kl_cache_dir_open(link, true, NULL, &err) < 0);
	CHECK(strstr(err.msg, "symlink is never followed") != NULL);
	if (geteuid() == 0) {
		CHECK(chown(top, OTHER, OTHER) == 0);
		CHECK(kl_cache_dir_open(top, true, NULL, &err) < 0);
		CHECK(strstr(err.msg, "owned by uid 65534") != NULL);
	}
	free(top);
	free(link);
}

/* In a child as uid OTHER: kl_cache_dir_open(top, create); writes the path
 * (or "ERR: message") into the pipe. */
static char *as_other(const char *top, bool create)
{
	int p[2];
	if (pipe(p) < 0)
		return NULL;
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		if (setgroups(0, NULL) < 0 || setgid(OTHER) < 0 || setuid(OTHER) < 0)
			_exit(2);
		struct kl_error err = KL_ERROR_INIT;
		char *path = NULL;
		int fd = kl_cache_dir_open(top, create, &path, &err);
		dprintf(p[1], "%s%s", fd >= 0 ? "" : "ERR: ", fd >= 0 ? path : err.msg);
		_exit(0);
	}
	close(p[1]);
	char buf[2048];
	ssize_t n = read(p[0], buf, sizeof buf - 1);
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	if (n < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return NULL;
	buf[n] = '\0';
	return xstrdup(buf);
}

static void test_other_uid(void)
{
	if (geteuid() != 0) {
		printf("# not root: the other-uid cases need setuid; skipped\n");
		return;
	}
	char *top = sub("shared"), *users = sub("shared/users");
	mkdir(top, 0755);
	/* no users/ (the old layout): no cache */
	char *r = as_other(top, true);
	CHECK(r && strncmp(r, "ERR: ", 5) == 0);
	free(r);
	/* users/ as the layout makes it (3770 root:kvm; here others may write, as the uid is not in kvm) */
	mkdir(users, 0777);
	chmod(users, 01777);
	char *want = xasprintf("%s/%u", users, OTHER);
	r = as_other(top, false);
	CHECK(r && strstr(r, "ERR: ") == r);  /* not made without create */
	free(r);
	r = as_other(top, true);
	CHECK_STREQ(r, want);
	free(r);
	struct stat st;
	CHECK(stat(want, &st) == 0 && st.st_uid == OTHER && (st.st_mode & 07777) == 0700);
	/* a squat: users/UID made by somebody else */
	rmdir(want);
	mkdir(want, 0700);  /* root's now, and closed: not even opened */
	r = as_other(top, true);
	CHECK(r && strstr(r, "Permission denied") != NULL);
	free(r);
	chmod(want, 0755);  /* open to it, but not its own */
	r = as_other(top, true);
	CHECK(r && strstr(r, "owned by uid 0, not by uid 65534") != NULL);
	free(r);
	rmdir(want);
	/* a symlink in its place, to a directory of the uid's own elsewhere */
	char *elsewhere = sub("elsewhere");
	mkdir(elsewhere, 0700);
	CHECK(chown(elsewhere, OTHER, OTHER) == 0);
	CHECK(symlink(elsewhere, want) == 0);
	r = as_other(top, true);
	CHECK(r && strstr(r, "symlink is never followed") != NULL);
	free(r);
	unlink(want);
	/* the uid's own private directory as the top: used as it is */
	r = as_other(elsewhere, true);
	CHECK_STREQ(r, elsewhere);
	free(r);
	free(elsewhere);
	free(want);
	free(top);
	free(users);
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s/kl-cachedir.XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	chmod(tmpdir, 0755);  /* the other uid must reach it */
	RUN(test_own_private_dir);
	RUN(test_refused_tops);
	RUN(test_other_uid);
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	free(cmd);
	return unit_done();
}
