/* SPDX-License-Identifier: GPL-2.0-or-later */
/* common/safefile: trusted directories, capped no-follow reads, atomic writes. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "unit.h"
#include "common/fileutil.h"
#include "common/safefile.h"
#include "common/xalloc.h"

static char tmpdir[PATH_MAX];

static char *sub(const char *name)
{
	return xasprintf("%s/%s", tmpdir, name);
}

/* A fresh private directory and its fd. */
static int fresh_dir(const char *name)
{
	char *p = sub(name);
	mkdir(p, 0700);
	chmod(p, 0700);
	int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(p);
	return fd;
}

static void put(int dirfd, const char *name, const char *text)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		if (write(fd, text, strlen(text)) < 0)
			perror("write");
		close(fd);
	}
}

static int count_entries(int dirfd)
{
	int n = 0, fd = dup(dirfd);
	DIR *d = fdopendir(fd);
	if (!d)
		return -1;
	rewinddir(d);
	for (struct dirent *e; (e = readdir(d));)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_dir_trusted(void)
{
	struct kl_error err = KL_ERROR_INIT;
	close(fresh_dir("trusted"));
	char *p = sub("trusted");
	int fd = kl_dir_open_trusted(p, geteuid(), &err);
	CHECK(fd >= 0);
	if (fd >= 0)
		close(fd);
	CHECK((fd = kl_dir_open_trusted(p, KL_ANY_OWNER, &err)) >= 0);
	if (fd >= 0)
		close(fd);
	/* another owner than the one asked for */
	CHECK(kl_dir_open_trusted(p, geteuid() + 1, &err) < 0);
	CHECK(strstr(err.msg, "owned by uid") != NULL);
	/* group- or other-writable, even sticky */
	chmod(p, 01770);
	CHECK(kl_dir_open_trusted(p, geteuid(), &err) < 0);
	CHECK(strstr(err.msg, "writable") != NULL);
	chmod(p, 0702);
	CHECK(kl_dir_open_trusted(p, geteuid(), &err) < 0);
	chmod(p, 0755);
	CHECK((fd = kl_dir_open_trusted(p, geteuid(), &err)) >= 0);
	if (fd >= 0) {
		CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
		close(fd);
	}
	/* a symlink to a good directory is refused */
	char *l = sub("trusted-link");
	CHECK(symlink(p, l) == 0);
	CHECK(kl_dir_open_trusted(l, geteuid(), &err) < 0);
	/* a regular file is not a directory */
	char *f = sub("plain");
	close(open(f, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
	CHECK(kl_dir_open_trusted(f, geteuid(), &err) < 0);
	free(p);
	free(l);
	free(f);
}

static void test_read_plain(void)
{
	struct kl_error err = KL_ERROR_INIT;
	int dfd = fresh_dir("read");
	put(dfd, "a.json", "{\"x\":1}");
	char *out = NULL;
	size_t len = 0;
	CHECK_INTEQ(kl_read_at(dfd, "a.json", geteuid(), 1024, &out, &len, &err), 0);
	CHECK_STREQ(out, "{\"x\":1}");
	CHECK_INTEQ(len, 7);
	free(out);
	CHECK_INTEQ(kl_read_at(dfd, "a.json", KL_ANY_OWNER, 1024, &out, NULL, &err), 0);
	free(out);
	/* absent: ENOENT so callers can tell "no cache yet" from a refusal */
	CHECK(kl_read_at(dfd, "none", geteuid(), 1024, &out, &len, &err) < 0);
	CHECK_INTEQ(err.errnum, ENOENT);
	CHECK(out == NULL);
	/* names with a slash would walk other directories (and their symlinks) */
	CHECK(kl_read_at(dfd, "../read/a.json", geteuid(), 1024, &out, &len, &err) < 0);
	CHECK(kl_read_at(dfd, "..", geteuid(), 1024, &out, &len, &err) < 0);
	CHECK(kl_read_at(dfd, "", geteuid(), 1024, &out, &len, &err) < 0);
	close(dfd);
}

static void test_read_symlink_refused(void)
{
	struct kl_error err = KL_ERROR_INIT;
	int dfd = fresh_dir("symlink");
	put(dfd, "target", "secret");
	CHECK(symlinkat("target", dfd, "link") == 0);
	char *out = NULL;
	CHECK(kl_read_at(dfd, "link", geteuid(), 1024, &out, NULL, &err) < 0);
	CHECK(out == NULL);
	CHECK(strstr(err.msg, "symlink") != NULL);
	close(dfd);
}

static void test_read_fifo_refused_without_blocking(void)
{
	struct kl_error err = KL_ERROR_INIT;
	int dfd = fresh_dir("fifo");
	CHECK(mkfifoat(dfd, "cache.json", 0600) == 0);
	/* a blocking open would wait for a writer forever: the alarm ends the test as failed */
	alarm(10);
	time_t t0 = time(NULL);
	char *out = NULL;
	CHECK(kl_read_at(dfd, "cache.json", geteuid(), 1024, &out, NULL, &err) < 0);
	alarm(0);
	CHECK(time(NULL) - t0 <= 2);
	CHECK(strstr(err.msg, "not a regular file") != NULL);
	/* a directory is not read either */
	CHECK(mkdirat(dfd, "dir.json", 0700) == 0);
	CHECK(kl_read_at(dfd, "dir.json", geteuid(), 1024, &out, NULL, &err) < 0);
	close(dfd);
}

static void test_read_wrong_owner(void)
{
	struct kl_error err = KL_ERROR_INIT;
	int dfd = fresh_dir("owner");
	put(dfd, "mine", "x");
	char *out = NULL;
	CHECK(kl_read_at(dfd, "mine", geteuid() + 1, 1024, &out, NULL, &err) < 0);
	CHECK_INTEQ(err.errnum, EPERM);
	CHECK(strstr(err.msg, "owned by uid") != NULL);
	if (geteuid() == 0) {
		/* as root: a file another uid made is refused when root's is asked for */
		put(dfd, "theirs", "x");
		CHECK(fchownat(dfd, "theirs", 65534, 65534, 0) == 0);
		CHECK(kl_read_at(dfd, "theirs", 0, 1024, &out, NULL, &err) < 0);
		CHECK(out == NULL);
	}
	close(dfd);
}

static void test_read_oversize(void)
{
	struct kl_error err = KL_ERROR_INIT;
	int dfd = fresh_dir("size");
	char big[9000];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	put(dfd, "big", big);
	char *out = NULL;
	size_t len = 0;
	CHECK(kl_read_at(dfd, "big", geteuid(), sizeof big - 2, &out, &len, &err) < 0);
	CHECK_INTEQ(err.errnum, EFBIG);
	CHECK(out == NULL);
	/* exactly the cap is fine, read across several buffer sizes */
	CHECK_INTEQ(kl_read_at(dfd, "big", geteuid(), sizeof big - 1, &out, &len, &err), 0);
	CHECK_INTEQ(len, sizeof big - 1);
	CHECK(out && strlen(out) == sizeof big - 1);
	free(out);
	close(dfd);
	/* a file whose stat size says 0 but that reads longer (as one growing
	 * while read would): the cap holds on what is read, not on st_size */
	dfd = open("/proc/self", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(kl_read_at(dfd, "status", KL_ANY_OWNER, 16, &out, &len, &err) < 0);
	CHECK_INTEQ(err.errnum, EFBIG);
	CHECK_INTEQ(kl_read_at(dfd, "status", KL_ANY_OWNER, 1 << 20, &out, &len, &err), 0);
	CHECK(out && strstr(out, "Uid:") != NULL);
	free(out);
	close(dfd);
}

static void test_write_atomic(void)
{
	struct kl_error err = KL_ERROR_INIT;
	int dfd = fresh_dir("write");
	mode_t old = umask(077);
	CHECK_INTEQ(kl_write_at(dfd, "c.json", "one", 3, 0644, &err), 0);
	umask(old);
	struct stat st;
	CHECK(fstatat(dfd, "c.json", &st, 0) == 0 && (st.st_mode & 07777) == 0644);
	ino_t first = st.st_ino;
	CHECK_INTEQ(kl_write_at(dfd, "c.json", "two!", 4, 0600, &err), 0);
	CHECK(fstatat(dfd, "c.json", &st, 0) == 0 && st.st_ino != first && (st.st_mode & 07777) == 0600);
	char *out = NULL;
	CHECK_INTEQ(kl_read_at(dfd, "c.json", geteuid(), 100, &out, NULL, &err), 0);
	CHECK_STREQ(out, "two!");
	free(out);
	CHECK_INTEQ(count_entries(dfd), 1);
	close(dfd);
}

static void test_write_symlink_not_followed(void)
{
	struct kl_error err = KL_ERROR_INIT;
	int dfd = fresh_dir("wlink");
	put(dfd, "victim", "keep");
	CHECK(symlinkat("victim", dfd, "calibration") == 0);
	CHECK_INTEQ(kl_write_at(dfd, "calibration", "new", 3, 0644, &err), 0);
	/* the symlink itself was replaced; its target is untouched */
	char *out = NULL;
	CHECK_INTEQ(kl_read_at(dfd, "victim", geteuid(), 100, &out, NULL, &err), 0);
	CHECK_STREQ(out, "keep");
	free(out);
	struct stat st;
	CHECK(fstatat(dfd, "calibration", &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode));
	/* a name with a slash could go through a symlinked directory */
	CHECK(kl_write_at(dfd, "a/b", "x", 1, 0644, &err) < 0);
	close(dfd);
}

static void test_write_failure_leaves_no_temp(void)
{
	struct kl_error err = KL_ERROR_INIT;
	int dfd = fresh_dir("wfail");
	/* rename fails (a non-empty directory by that name): the written temp goes */
	CHECK(mkdirat(dfd, "busy", 0700) == 0);
	put(dfd, "busy-keep", "");
	int sub_fd = openat(dfd, "busy", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	put(sub_fd, "inside", "x");
	close(sub_fd);
	CHECK(kl_write_at(dfd, "busy", "data", 4, 0644, &err) < 0);
	CHECK(strstr(err.msg, "cannot write busy") != NULL);
	CHECK_INTEQ(count_entries(dfd), 2);
	/* the write itself fails (file size limit, as a full disk would): no temp, old file kept */
	put(dfd, "f", "old");
	struct rlimit rl, small = { .rlim_cur = 8 };
	getrlimit(RLIMIT_FSIZE, &rl);
	small.rlim_max = rl.rlim_max;
	signal(SIGXFSZ, SIG_IGN);
	CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
	CHECK(kl_write_at(dfd, "f", "0123456789abcdef", 16, 0644, &err) < 0);
	setrlimit(RLIMIT_FSIZE, &rl);
	signal(SIGXFSZ, SIG_DFL);
	CHECK_INTEQ(count_entries(dfd), 3);
	char *out = NULL;
	CHECK_INTEQ(kl_read_at(dfd, "f", geteuid(), 100, &out, NULL, &err), 0);
	CHECK_STREQ(out, "old");
	free(out);
	close(dfd);
}

static void test_fileutil_uses_write_at(void)
{
	struct kl_error err = KL_ERROR_INIT;
	close(fresh_dir("fu"));
	char *p = sub("fu/x.json");
	CHECK_INTEQ(kl_write_file_atomic(p, "hello", 0640, &err), 0);
	struct stat st;
	CHECK(lstat(p, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0640);
	char *back = kl_read_small_file(p, 100, &err);
	CHECK_STREQ(back, "hello");
	free(back);
	CHECK(kl_read_small_file(p, 4, &err) == NULL);  /* over the cap */
	/* the path reader shares the capped read, and a FIFO neither blocks nor is read */
	char *fifo = sub("fu/fifo");
	CHECK(mkfifo(fifo, 0600) == 0);
	alarm(10);
	CHECK(kl_read_small_file(fifo, 100, &err) == NULL);
	alarm(0);
	CHECK(strstr(err.msg, "not a regular file") != NULL);
	free(fifo);
	free(p);
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s/kl-safefile.XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_dir_trusted);
	RUN(test_read_plain);
	RUN(test_read_symlink_refused);
	RUN(test_read_fifo_refused_without_blocking);
	RUN(test_read_wrong_owner);
	RUN(test_read_oversize);
	RUN(test_write_atomic);
	RUN(test_write_symlink_not_followed);
	RUN(test_write_failure_leaves_no_temp);
	RUN(test_fileutil_uses_write_at);
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	free(cmd);
	return unit_done();
}
