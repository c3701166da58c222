/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/argv/qemu-options.h"

#include <stdlib.h>
#include <string.h>

/* Every option of QEMU 7.2's qemu-system-x86_64 and whether it takes an
 * argument: read from the qemu_options[] table of the Debian 12 binary
 * (1:7.2+dfsg-7+deb12u18), which matches qemu-options.hx's DEF(..., HAS_ARG)
 * lines; plus "run-with" from QEMU 8.1.  Sorted for bsearch (C locale). */
struct qemu_opt {
	const char *name;
	bool has_arg;
};

static const struct qemu_opt qemu_opts[] = {
	{ "D", true },
	{ "L", true },
	{ "M", true },
	{ "S", false },
	{ "accel", true },
	{ "acpitable", true },
	{ "action", true },
	{ "add-fd", true },
	{ "append", true },
	{ "async-teardown", false },
	{ "audio", true },
	{ "audio-help", false },
	{ "audiodev", true },
	{ "bios", true },
	{ "blockdev", true },
	{ "boot", true },
	{ "cdrom", true },
	{ "chardev", true },
	{ "chroot", true },
	{ "compat", true },
	{ "cpu", true },
	{ "d", true },
	{ "daemonize", false },
	{ "debugcon", true },
	{ "device", true },
	{ "dfilter", true },
	{ "display", true },
	{ "drive", true },
	{ "dtb", true },
	{ "dump-vmstate", true },
	{ "echr", true },
	{ "enable-kvm", false },
	{ "enable-sync-profile", false },
	{ "fda", true },
	{ "fdb", true },
	{ "fsdev", true },
	{ "full-screen", false },
	{ "fw_cfg", true },
	{ "g", true },
	{ "gdb", true },
	{ "global", true },
	{ "h", false },
	{ "hda", true },
	{ "hdb", true },
	{ "hdc", true },
	{ "hdd", true },
	{ "help", false },
	{ "icount", true },
	{ "id", true },            /* Proxmox's QEMU: the VMID */
	{ "incoming", true },
	{ "initrd", true },
	{ "iscsi", true },
	{ "k", true },
	{ "kernel", true },
	{ "loadvm", true },
	{ "m", true },
	{ "machine", true },
	{ "mem-path", true },
	{ "mem-prealloc", false },
	{ "mon", true },
	{ "monitor", true },
	{ "msg", true },
	{ "mtdblock", true },
	{ "name", true },
	{ "net", true },
	{ "netdev", true },
	{ "nic", true },
	{ "no-acpi", false },
	{ "no-fd-bootchk", false },
	{ "no-hpet", false },
	{ "no-reboot", false },
	{ "no-shutdown", false },
	{ "no-user-config", false },
	{ "nodefaults", false },
	{ "nographic", false },
	{ "numa", true },
	{ "object", true },
	{ "old-param", false },
	{ "only-migratable", false },
	{ "option-rom", true },
	{ "overcommit", true },
	{ "parallel", true },
	{ "pflash", true },
	{ "pidfile", true },
	{ "plugin", true },
	{ "portrait", false },
	{ "preconfig", false },
	{ "prom-env", true },
	{ "qmp", true },
	{ "qmp-pretty", true },
	{ "qtest", true },
	{ "qtest-log", true },
	{ "readconfig", true },
	{ "rotate", true },
	{ "rtc", true },
	{ "run-with", true },
	{ "runas", true },
	{ "s", false },
	{ "sandbox", true },
	{ "sd", true },
	{ "seed", true },
	{ "semihosting", false },
	{ "semihosting-config", true },
	{ "serial", true },
	{ "set", true },
	{ "singlestep", false },
	{ "smbios", true },
	{ "smp", true },
	{ "snapshot", false },
	{ "spice", true },
	{ "tpmdev", true },
	{ "trace", true },
	{ "usb", false },
	{ "usbdevice", true },
	{ "uuid", true },
	{ "version", false },
	{ "vga", true },
	{ "virtfs", true },
	{ "vnc", true },
	{ "watchdog-action", true },
	{ "win2k-hack", false },
	{ "xen-attach", false },
	{ "xen-domid", true },
	{ "xen-domid-restrict", false },
};

static int cmp_opt(const void *key, const void *elem)
{
	return strcmp(key, ((const struct qemu_opt *)elem)->name);
}

const char *kl_qemu_option(const char *name, bool *has_arg)
{
	const struct qemu_opt *o = bsearch(name, qemu_opts, sizeof qemu_opts / sizeof *qemu_opts, sizeof *qemu_opts,
					   cmp_opt);
	if (!o)
		return NULL;
	*has_arg = o->has_arg;
	return o->name;
}
