/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The management monitors on QEMU's command line: the QMP monitors a manager
 * (libvirt, Proxmox, a script) reaches through a listening socket QEMU
 * serves.  The monitor relay keeps that listening endpoint and gives QEMU a
 * private one instead.  Pure: no I/O.
 *
 * Shapes found (every other shape is left alone):
 *   -chardev socket,id=X,fd=N,server=on,wait=off  -mon chardev=X,mode=control   (libvirt 9-11)
 *   -chardev socket,id=X,path=P,server=on[,wait=off]  -mon chardev=X,mode=control  (Proxmox, scripts)
 *   -qmp unix:P,server=on,wait=off  and  -qmp-pretty unix:P,...
 * Never: client-mode sockets (no server=on, reconnect=), TCP, abstract names,
 * TLS or websocket chardevs, mux=on, HMP (-mon without mode=control,
 * -monitor), a chardev two -mon share, and kvm-launch's own monitors. */
#ifndef KL_LAUNCHER_MONITORS_H
#define KL_LAUNCHER_MONITORS_H

#include <stdbool.h>
#include <stddef.h>
#include "common/error.h"
#include "common/strbuf.h"

/* The id given to the chardev that replaces a -qmp option (N = its rank). */
#define KL_RELAY_QMP_ID_PREFIX "kvmlaunch-qmp"

struct kl_monitor {
	size_t chardev_at;   /* index of the -chardev value, or of the -qmp value */
	size_t mon_at;       /* index of the -mon value (unused for -qmp) */
	bool qmp_option;     /* -qmp / -qmp-pretty */
	bool pretty;         /* -qmp-pretty, or -mon pretty=on */
	char *id;            /* the chardev id (for -qmp, the id the rewrite gives it) */
	int fd;              /* the listening fd=N given, else -1 */
	char *path;          /* the socket path=P given, else NULL */
	bool wait;           /* server waits for a client before the VM starts */
};

struct kl_monitors {
	struct kl_monitor *v;
	size_t n;
};

/* Scan QEMU's arguments (argv[0] = first argument, not the QEMU path).
 * Finds nothing in a command line it cannot walk (unknown option, missing
 * value). */
void kl_monitors_find(int argc, char *const argv[], struct kl_monitors *out);
void kl_monitors_free(struct kl_monitors *ms);

/* The arguments with monitor i's listening endpoint replaced by fd=new_fds[i]
 * (monitors with new_fds[i] < 0 stay as they are), appended to out.  Every
 * other byte is unchanged; a -qmp X becomes the equivalent
 * -chardev socket,id=ID,fd=M,... -mon chardev=ID,mode=control[,pretty=on]. */
int kl_monitors_rewrite(int argc, char *const argv[], const struct kl_monitors *ms, const int *new_fds,
			struct strvec *out, struct kl_error *err);

#endif
