/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The real QEMU chosen for the name kvm-launch runs under (launcher/qemu_target.c). */
#include "launcher/qemu_target.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tests/unit/unit.h"

static void check_for(const char *configured, const char *invoked_as, const char *want)
{
	char *got = kl_qemu_for_target(configured, invoked_as);
	CHECK_STREQ(got, want);
	free(got);
}

static void test_target_of_name(void)
{
	CHECK_STREQ(kl_qemu_target_of_name("/usr/bin/qemu-system-aarch64"), "aarch64");
	CHECK_STREQ(kl_qemu_target_of_name("qemu-system-x86_64"), "x86_64");
	CHECK_STREQ(kl_qemu_target_of_name("./qemu-system-s390x"), "s390x");
	CHECK_STREQ(kl_qemu_target_of_name("/usr/bin/qemu-system-x86_64-microvm"), "x86_64-microvm");
	CHECK(kl_qemu_target_of_name("/usr/bin/qemu-system-x86_64.distrib") == NULL);
	CHECK(kl_qemu_target_of_name("/usr/local/bin/kvm-launch") == NULL);
	CHECK(kl_qemu_target_of_name("qemu-system-") == NULL);
	CHECK(kl_qemu_target_of_name("/usr/bin/qemu-system-aarch64/") == NULL);
	CHECK(kl_qemu_target_of_name(NULL) == NULL);
}

static void test_diverted_targets(void)
{
	/* kvm-launch-divert's policy line names x86_64's real binary; each diverted target runs its own. */
	check_for("/usr/bin/qemu-system-x86_64.distrib", "/usr/bin/qemu-system-aarch64",
		  "/usr/bin/qemu-system-aarch64.distrib");
	check_for("/usr/bin/qemu-system-x86_64.distrib", "/usr/bin/qemu-system-x86_64",
		  "/usr/bin/qemu-system-x86_64.distrib");
	check_for("/usr/bin/qemu-system-aarch64.distrib", "qemu-system-riscv64", "/usr/bin/qemu-system-riscv64.distrib");
	check_for("/usr/bin/qemu-system-x86_64", "/opt/x/qemu-system-aarch64", "/usr/bin/qemu-system-aarch64");
	/* Debian's qemu-system-x86 also ships qemu-system-x86_64-microvm. */
	check_for("/usr/bin/qemu-system-x86_64.distrib", "/usr/bin/qemu-system-x86_64-microvm",
		  "/usr/bin/qemu-system-x86_64-microvm.distrib");
	check_for("/usr/bin/qemu-system-x86_64-microvm.distrib", "/usr/bin/qemu-system-x86_64",
		  "/usr/bin/qemu-system-x86_64.distrib");
}

static void test_unchanged(void)
{
	/* Run as kvm-launch (libvirt's <emulator>, by hand): the configured binary. */
	check_for("/usr/bin/qemu-system-x86_64.distrib", "/usr/local/bin/kvm-launch", "/usr/bin/qemu-system-x86_64.distrib");
	check_for("/usr/bin/qemu-system-x86_64", NULL, "/usr/bin/qemu-system-x86_64");
	/* A configured binary that names no target (RHEL's qemu-kvm, a wrapper) is left alone. */
	check_for("/usr/libexec/qemu-kvm", "/usr/bin/qemu-system-aarch64", "/usr/libexec/qemu-kvm");
	check_for("/opt/qemu-system-x86_64+wrapper", "/usr/bin/qemu-system-aarch64", "/opt/qemu-system-x86_64+wrapper");
	/* Only the last component is looked at. */
	check_for("/opt/qemu-system-x86_64/bin/qemu", "/usr/bin/qemu-system-aarch64", "/opt/qemu-system-x86_64/bin/qemu");
}

/* Debian 13's alias links: qemu-system-amd64 -> qemu-system-x86_64, which the diversion made a link to kvm-launch. */
static void test_alias_links(void)
{
	char dir[] = "/tmp/kl-unit-target.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char kl[300], x86[300], amd64[300], arm64[300], aarch64[300];
	snprintf(kl, sizeof(kl), "%s/kvm-launch", dir);
	snprintf(x86, sizeof(x86), "%s/qemu-system-x86_64", dir);
	snprintf(amd64, sizeof(amd64), "%s/qemu-system-amd64", dir);
	snprintf(aarch64, sizeof(aarch64), "%s/qemu-system-aarch64", dir);
	snprintf(arm64, sizeof(arm64), "%s/qemu-system-arm64", dir);
	FILE *f = fopen(kl, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);
	CHECK(symlink(kl, x86) == 0);
	CHECK(symlink("qemu-system-x86_64", amd64) == 0);
	CHECK(symlink(aarch64, arm64) == 0); /* absolute, to a file that does not exist */

	char *s = kl_qemu_invoked_as(amd64);
	CHECK_STREQ(s, x86);
	free(s);
	s = kl_qemu_invoked_as(x86);
	CHECK_STREQ(s, x86);
	free(s);
	s = kl_qemu_invoked_as(arm64);
	CHECK_STREQ(s, aarch64);
	free(s);
	s = kl_qemu_invoked_as("qemu-system-nosuch-here");
	CHECK_STREQ(s, "qemu-system-nosuch-here");
	free(s);

	unlink(arm64);
	unlink(amd64);
	unlink(x86);
	unlink(kl);
	rmdir(dir);
}

/* Proxmox's "kvm": DIR/kvm runs DIR/kvm.distrib once diverted, nothing else. */
static void test_kvm_name(void)
{
	char dir[] = "/tmp/kl-unit-kvm.XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char kvm[300], distrib[300];
	snprintf(kvm, sizeof(kvm), "%s/kvm", dir);
	snprintf(distrib, sizeof(distrib), "%s/kvm.distrib", dir);
	CHECK(kl_qemu_for_kvm_name(kvm) == NULL); /* not diverted */
	FILE *f = fopen(distrib, "w");
	CHECK(f != NULL);
	if (f)
		fclose(f);
	char *s = kl_qemu_for_kvm_name(kvm);
	CHECK_STREQ(s, distrib);
	free(s);
	snprintf(kvm, sizeof(kvm), "%s/kvmx", dir);
	CHECK(kl_qemu_for_kvm_name(kvm) == NULL);
	CHECK(kl_qemu_for_kvm_name(NULL) == NULL);
	s = kl_qemu_for_target("/usr/bin/qemu-system-x86_64.distrib", "/usr/bin/kvm");
	CHECK_STREQ(s, "/usr/bin/qemu-system-x86_64.distrib"); /* "kvm" names no qemu-system target */
	free(s);
	unlink(distrib);
	rmdir(dir);
}

int main(void)
{
	RUN(test_kvm_name);
	RUN(test_target_of_name);
	RUN(test_diverted_targets);
	RUN(test_unchanged);
	RUN(test_alias_links);
	return unit_done();
}
