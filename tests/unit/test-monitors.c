/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Finding the management monitors on QEMU's command line and giving QEMU a
 * private listener instead (launcher/argv/monitors.c), on libvirt's real
 * command lines (tests/golden) and the Proxmox and -qmp shapes. */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include "common/strbuf.h"
#include "launcher/argv/monitors.h"

#define N(a) ((int)(sizeof a / sizeof *a))

/* Rewrite with fd 100 + i for every monitor found; returns the argv. */
static void rewrite_all(int argc, char *const argv[], const struct kl_monitors *ms, struct strvec *out)
{
	int fds[16];
	for (size_t i = 0; i < ms->n && i < 16; i++)
		fds[i] = 100 + (int)i;
	struct kl_error err = KL_ERROR_INIT;
	CHECK(kl_monitors_rewrite(argc, argv, ms, fds, out, &err) == 0);
}

/* Only argument k differs, and it is want. */
static void check_one_changed(int argc, char *const argv[], const struct strvec *out, int k, const char *want)
{
	CHECK_INTEQ(out->n, argc);
	for (int i = 0; i < argc && (size_t)i < out->n; i++) {
		if (i == k)
			CHECK_STREQ(out->v[i], want);
		else
			CHECK_STREQ(out->v[i], argv[i]);
	}
}

static void test_libvirt_fd(void)
{
	char *argv[] = { "-name", "guest=a", "-chardev", "socket,id=charmonitor,fd=28,server=on,wait=off", "-mon",
			 "chardev=charmonitor,id=monitor,mode=control", "-append", "-chardev socket,id=x,fd=3,server=on" };
	struct kl_monitors ms;
	kl_monitors_find(N(argv), argv, &ms);
	CHECK_INTEQ(ms.n, 1);
	if (ms.n != 1)
		return;
	CHECK_INTEQ(ms.v[0].fd, 28);
	CHECK(ms.v[0].path == NULL);
	CHECK_STREQ(ms.v[0].id, "charmonitor");
	CHECK_INTEQ(ms.v[0].chardev_at, 3);
	CHECK_INTEQ(ms.v[0].mon_at, 5);
	CHECK(!ms.v[0].wait);
	struct strvec out = STRVEC_INIT;
	rewrite_all(N(argv), argv, &ms, &out);
	check_one_changed(N(argv), argv, &out, 3, "socket,id=charmonitor,fd=100,server=on,wait=off");
	strvec_free(&out);
	kl_monitors_free(&ms);
}

static void test_path_shapes(void)
{
	/* Proxmox: path=, server=on,wait=off; also the old "server,nowait" flags. */
	char *argv[] = { "-chardev", "socket,id=qmp,path=/var/run/qemu-server/100.qmp,server=on,wait=off", "-mon",
			 "chardev=qmp,mode=control", "-chardev", "socket,id=qmp-event,path=/run/x,,y.qmp,server,nowait",
			 "-mon", "chardev=qmp-event,mode=control" };
	struct kl_monitors ms;
	kl_monitors_find(N(argv), argv, &ms);
	CHECK_INTEQ(ms.n, 2);
	if (ms.n != 2)
		return;
	CHECK_STREQ(ms.v[0].path, "/var/run/qemu-server/100.qmp");
	CHECK_INTEQ(ms.v[0].fd, -1);
	CHECK_STREQ(ms.v[1].path, "/run/x,y.qmp");
	CHECK(!ms.v[1].wait);
	struct strvec out = STRVEC_INIT;
	rewrite_all(N(argv), argv, &ms, &out);
	CHECK_INTEQ(out.n, N(argv));
	CHECK_STREQ(out.v[1], "socket,id=qmp,fd=100,server=on,wait=off");
	CHECK_STREQ(out.v[5], "socket,id=qmp-event,fd=101,server,nowait");
	CHECK_STREQ(out.v[3], argv[3]);
	strvec_free(&out);
	kl_monitors_free(&ms);
}

static void test_qmp_option(void)
{
	char *argv[] = { "-m", "256", "-qmp", "unix:/tmp/a.sock,server=on,wait=off", "-qmp-pretty",
			 "unix:/tmp/b.sock,server,wait=off", "-qmp", "unix:/tmp/client.sock", "-qmp", "tcp:localhost:4444,server" };
	struct kl_monitors ms;
	kl_monitors_find(N(argv), argv, &ms);
	CHECK_INTEQ(ms.n, 2);
	if (ms.n != 2)
		return;
	CHECK(ms.v[0].qmp_option);
	CHECK_STREQ(ms.v[0].path, "/tmp/a.sock");
	CHECK(ms.v[1].pretty);
	struct strvec out = STRVEC_INIT;
	rewrite_all(N(argv), argv, &ms, &out);
	const char *want[] = { "-m", "256", "-chardev", "socket,id=kvmlaunch-qmp0,fd=100,server=on,wait=off", "-mon",
			       "chardev=kvmlaunch-qmp0,mode=control", "-chardev",
			       "socket,id=kvmlaunch-qmp1,fd=101,server,wait=off", "-mon",
			       "chardev=kvmlaunch-qmp1,mode=control,pretty=on", "-qmp", "unix:/tmp/client.sock", "-qmp",
			       "tcp:localhost:4444,server" };
	CHECK_INTEQ(out.n, N(want));
	for (size_t i = 0; i < out.n && i < (size_t)N(want); i++)
		CHECK_STREQ(out.v[i], want[i]);
	strvec_free(&out);
	kl_monitors_free(&ms);
}

/* Shapes that are never touched. */
static void test_left_alone(void)
{
	char *cases[][4] = {
		/* client mode */
		{ "-chardev", "socket,id=m,path=/tmp/m", "-mon", "chardev=m,mode=control" },
		{ "-chardev", "socket,id=m,path=/tmp/m,server=off", "-mon", "chardev=m,mode=control" },
		{ "-chardev", "socket,id=m,path=/tmp/m,reconnect=1", "-mon", "chardev=m,mode=control" },
		/* HMP */
		{ "-chardev", "socket,id=m,path=/tmp/m,server=on,wait=off", "-mon", "chardev=m" },
		{ "-chardev", "socket,id=m,path=/tmp/m,server=on,wait=off", "-mon", "chardev=m,mode=readline" },
		/* TCP, TLS, mux, abstract, both endpoints */
		{ "-chardev", "socket,id=m,host=::,port=4444,server=on", "-mon", "chardev=m,mode=control" },
		{ "-chardev", "socket,id=m,path=/tmp/m,server=on,tls-creds=t", "-mon", "chardev=m,mode=control" },
		{ "-chardev", "socket,id=m,path=/tmp/m,server=on,mux=on", "-mon", "chardev=m,mode=control" },
		{ "-chardev", "socket,id=m,path=m,abstract=on,server=on", "-mon", "chardev=m,mode=control" },
		{ "-chardev", "socket,id=m,path=/tmp/m,fd=3,server=on", "-mon", "chardev=m,mode=control" },
		/* not a socket; our own monitors */
		{ "-chardev", "pty,id=m", "-mon", "chardev=m,mode=control" },
		{ "-chardev", "socket,id=kvmlaunch-agent,path=/tmp/m,server=on,wait=off", "-mon",
		  "chardev=kvmlaunch-agent,mode=control" },
		/* a -mon without its chardev */
		{ "-chardev", "socket,id=n,path=/tmp/m,server=on,wait=off", "-mon", "chardev=m,mode=control" },
		/* a bad boolean */
		{ "-chardev", "socket,id=m,path=/tmp/m,server=maybe", "-mon", "chardev=m,mode=control" },
	};
	for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
		struct kl_monitors ms;
		kl_monitors_find(4, cases[c], &ms);
		if (ms.n != 0)
			printf("#   case %zu: %s found\n", c, cases[c][1]);
		CHECK_INTEQ(ms.n, 0);
		kl_monitors_free(&ms);
	}
	/* Two -mon on one chardev; an unknown option (cannot walk the line). */
	char *two[] = { "-chardev", "socket,id=m,path=/tmp/m,server=on", "-mon", "chardev=m,mode=control", "-mon",
			"chardev=m,mode=control" };
	char *unknown[] = { "-frobnicate", "-chardev", "socket,id=m,path=/tmp/m,server=on", "-mon",
			    "chardev=m,mode=control" };
	struct kl_monitors ms;
	kl_monitors_find(N(two), two, &ms);
	CHECK_INTEQ(ms.n, 0);
	kl_monitors_free(&ms);
	kl_monitors_find(N(unknown), unknown, &ms);
	CHECK_INTEQ(ms.n, 0);
	kl_monitors_free(&ms);
}

/* Every libvirt command line we have: exactly one monitor, found, and the
 * rewrite changes its -chardev value only. */
static void test_golden(void)
{
	const char *top = getenv("KL_TOP");
	const char *names[] = { "start-file-raw.args", "start-multi.args", "block-raw.args", "block-none-native.args" };
	for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/tests/golden/%s", top ? top : ".", names[k]);
		FILE *f = fopen(path, "r");
		if (!f) {
			printf("# %s: absent: skipped\n", path);
			continue;
		}
		struct strvec args = STRVEC_INIT;
		char line[65536];
		bool first = true;
		while (fgets(line, sizeof line, f)) {
			line[strcspn(line, "\n")] = 0;
			if (!first)
				strvec_push_dup(&args, line);
			first = false;
		}
		fclose(f);
		struct kl_monitors ms;
		kl_monitors_find((int)args.n, args.v, &ms);
		CHECK_INTEQ(ms.n, 1);
		if (ms.n == 1) {
			CHECK_STREQ(ms.v[0].id, "charmonitor");
			CHECK(ms.v[0].fd >= 0 || ms.v[0].path);
			struct strvec out = STRVEC_INIT;
			rewrite_all((int)args.n, args.v, &ms, &out);
			check_one_changed((int)args.n, args.v, &out, (int)ms.v[0].chardev_at,
					  "socket,id=charmonitor,fd=100,server=on,wait=off");
			strvec_free(&out);
		}
		kl_monitors_free(&ms);
		strvec_free(&args);
	}
}

int main(void)
{
	RUN(test_libvirt_fd);
	RUN(test_path_shapes);
	RUN(test_qmp_option);
	RUN(test_left_alone);
	RUN(test_golden);
	return unit_done();
}
