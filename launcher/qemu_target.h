/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Which real QEMU to run when kvm-launch stands in for one target's binary.
 * Installed or diverted as qemu-system-TARGET (kvm-launch-divert does that for
 * every installed target), kvm-launch must run the real qemu-system-TARGET,
 * not the one binary named by "qemu =" or configure.  String work, but for
 * kl_qemu_invoked_as, which reads symbolic links. */
#ifndef KL_LAUNCHER_QEMU_TARGET_H
#define KL_LAUNCHER_QEMU_TARGET_H

/* The TARGET of a name whose last component is "qemu-system-TARGET" (exactly:
 * "qemu-system-aarch64" gives "aarch64", "qemu-system-x86_64.distrib" and
 * "kvm-launch" give NULL).  Returns a pointer into name. */
const char *kl_qemu_target_of_name(const char *name);

/* configured with its "qemu-system-X" (in its last component, followed by
 * nothing or a suffix like ".distrib") turned into "qemu-system-TARGET", where
 * TARGET comes from invoked_as (argv[0]).  A copy of configured when
 * invoked_as names no target, when the configured name has no
 * qemu-system-X, or when X is already TARGET.  Always a new string. */
char *kl_qemu_for_target(const char *configured, const char *invoked_as);

/* Proxmox VE's name for its x86 emulator is "kvm".  When kvm-launch runs as
 * DIR/kvm (argv[0]; a bare "kvm" means /usr/bin/kvm) and kvm-launch-divert
 * moved the real one to DIR/kvm.distrib, that path; NULL otherwise (the
 * name is not "kvm", or there is no kvm.distrib).  Always a new string. */
char *kl_qemu_for_kvm_name(const char *invoked_as);

/* argv[0] as kvm-launch should read it: a symbolic link whose target names
 * another qemu-system-* (Debian 13's qemu-system-amd64 -> qemu-system-x86_64,
 * qemu-system-arm64 -> qemu-system-aarch64) stands for that target; the walk
 * stops at a link to anything else (kvm-launch itself, once diverted) or at a
 * file.  Always a new string. */
char *kl_qemu_invoked_as(const char *argv0);

#endif
