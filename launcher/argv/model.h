/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The argv model: QEMU's command line as data.  It finds every disk (-drive,
 * and -blockdev node chains with their -device), lets the caller set each
 * disk's aio and cache, and writes the command line back out touching only
 * the arguments that changed: every other argument stays byte-identical and
 * JSON keeps its key order. */
#ifndef KL_LAUNCHER_MODEL_H
#define KL_LAUNCHER_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include "common/error.h"
#include "common/strbuf.h"
#include "policy/types.h"

struct kl_model;

enum kl_disk_source {
	KL_DISK_DRIVE,      /* -drive */
	KL_DISK_BLOCKDEV,   /* a top -blockdev node (not referenced as file/backing by another node) */
};

/* Parse QEMU's arguments (argv[0] is the first QEMU argument, not the QEMU
 * path).  The strings are borrowed and must outlive the model.  Fails on
 * shapes it cannot understand safely (malformed -drive/-blockdev/-device,
 * unknown or cyclic node references, duplicate node names, an option QEMU
 * 7.2 does not have, an option missing its argument, a -set that would
 * change a disk's cache/aio behind the rewrite).  Messages name the
 * argument: "-blockdev argument 7: unknown node 'x' referenced as file"
 * (7 = position on the full command line, the QEMU path being 0). */
int kl_model_parse(int argc, char *const argv[], struct kl_model **out, struct kl_error *err);
void kl_model_free(struct kl_model *m);
static inline void kl_model_freep(struct kl_model **m) { if (*m) kl_model_free(*m); }
#define _cleanup_model_ __attribute__((cleanup(kl_model_freep)))

/* The VM as a whole. */
const char *kl_model_name(const struct kl_model *m);      /* -name guest=X / -name X; NULL if none */
bool kl_model_incoming(const struct kl_model *m);         /* -incoming present */
bool kl_model_machine_none(const struct kl_model *m);     /* -machine none / -M none (libvirt's capability probe) */
bool kl_model_daemonize(const struct kl_model *m);
/* -help, -version, or an option asking for help (-device help, -machine ?):
 * QEMU only prints something, so it passes through like the capability probe. */
bool kl_model_informational(const struct kl_model *m);
/* The command line already carries kvm-launch's monitors (chardev ids
 * starting KL_MONITOR_ID_PREFIX): another kvm-launch prepared it. */
#define KL_MONITOR_ID_PREFIX "kvmlaunch-"
bool kl_model_prepared(const struct kl_model *m);
const char *kl_model_pidfile(const struct kl_model *m);   /* NULL if none */
bool kl_model_readconfig(const struct kl_model *m);       /* -readconfig present: its disks are not inspected */
const char *kl_model_machine_type(const struct kl_model *m); /* the last -machine type=; NULL if none */
/* Disks the model does not manage: -hda..-hdd, -fda/-fdb, -cdrom, -sd,
 * -mtdblock, -pflash and bare image names.  They run with QEMU's defaults. */
size_t kl_model_legacy_disk_count(const struct kl_model *m);
/* For a path "/dev/fdset/N": the first fd an -add-fd put in set N (an fd
 * kvm-launch inherited and can fstat/probe), -1 if none. */
int kl_model_fdset_fd(const struct kl_model *m, const char *path);

/* The disks, in command-line order: every -drive but if=pflash, and every
 * top -blockdev node (not referenced as file/backing/... by another node,
 * and not a -machine pflash0=/pflash1= firmware node). */
size_t kl_model_disk_count(const struct kl_model *m);
/* What the command line gives for disk i (strings owned by the model). */
const struct kl_disk_given *kl_model_disk(const struct kl_model *m, size_t i);
enum kl_disk_source kl_model_disk_source(const struct kl_model *m, size_t i);
/* The protocol node's driver takes aio (file, host_device, host_cdrom). */
bool kl_model_disk_takes_aio(const struct kl_model *m, size_t i);

/* Ask for disk i to run with aio/cache (UNSET leaves that setting exactly as
 * given; AUTO/KEEP are taken as UNSET).  Asking for what is given changes
 * nothing; asking for WRITEBACK on a disk given without cache options
 * (UNSET) writes them explicitly.  The cache mode is written the way libvirt writes it: on -drive
 * cache=MODE (and any cache.* keys made consistent); on -blockdev
 * "cache":{"direct","no-flush"} on the storage and format nodes and
 * "write-cache" on the -device.  aio goes only on a protocol node that takes
 * it; an aio on other nodes is never added. */
void kl_model_set_disk(struct kl_model *m, size_t i, enum kl_aio aio, enum kl_cache cache);

/* The command line with the requested changes (without the QEMU path),
 * appended to out.  The strings are new copies; untouched arguments are
 * copied byte for byte, and touched ones keep every byte they do not change.
 * Fails (out untouched) when a node shared by two disks would need two
 * settings, or when a protocol node would get aio=native without O_DIRECT.
 * Can be called again after more kl_model_set_disk calls. */
int kl_model_rewrite(const struct kl_model *m, struct strvec *out, struct kl_error *err);

#endif
