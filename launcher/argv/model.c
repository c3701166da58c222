/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The argv model: walk QEMU's arguments, collect what kvm-launch needs
 * (-drive, -blockdev, -device, -name, -incoming, -machine, -daemonize,
 * -pidfile, -readconfig, -snapshot, -add-fd, -set, -global), find the disks,
 * and write the command line back with only the changed arguments
 * re-serialised.  See model.h. */
#include "launcher/argv/model.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/cleanup.h"
#include "common/xalloc.h"
#include "launcher/argv/blockdev.h"
#include "launcher/argv/device.h"
#include "launcher/argv/drive.h"
#include "launcher/argv/drive-id.h"
#include "launcher/argv/keyval.h"
#include "launcher/argv/qemu-options.h"

#define VEC_PUSH(arr, n, cap, val) do { \
	XGROW(arr, n, cap, 8); \
	(arr)[(n)++] = (val); \
} while (0)

struct mdisk {
	enum kl_disk_source source;
	struct kl_disk_given g;
	struct kl_drive *drive;         /* KL_DISK_DRIVE */
	struct kl_bdnode *top;          /* KL_DISK_BLOCKDEV */
	char *path;                     /* owned (blockdev targets) */
	char *owner;                    /* a name for messages */
	size_t *devs;                   /* indices into m->devices */
	size_t ndevs, capdevs;
	bool takes_aio;
	enum kl_aio req_aio;
	enum kl_cache req_cache;
};

struct fdset_fd {
	long set;
	int fd;
};

struct global_wc {
	char *driver;
	int value;                      /* 1 on, 0 off, -1 auto */
};

struct set_opt {
	size_t argi;
	char *group, *id, *arg;
};

struct kl_model {
	int argc;
	char *const *argv;
	const char *name, *pidfile, *machine_type;
	bool incoming, daemonize, readconfig, snapshot;
	bool informational;             /* -help, -version, -device help...: QEMU runs no VM */
	bool prepared;                  /* another kvm-launch already added its monitors */
	size_t legacy_disks;

	struct kl_kv **kvs;             /* -name, -machine, -add-fd: borrowed strings point here */
	size_t nkvs, capkvs;
	struct kl_drive **drives;
	size_t ndrives, capdrives;
	struct kl_device **devices;
	size_t ndevices, capdevices;
	struct kl_bdgraph bd;
	struct kl_names drive_ids;      /* id -> drive index + 1 */
	struct kl_names pflash;         /* node names given to -machine pflash0/pflash1 */
	struct fdset_fd *fds;
	size_t nfds, capfds;
	struct global_wc *globals;
	size_t nglobals, capglobals;
	struct set_opt *sets;
	size_t nsets, capsets;

	struct mdisk *disks;
	size_t ndisks;
};

static struct kl_kv *keep_kv(struct kl_model *m)
{
	struct kl_kv *kv = xcalloc(1, sizeof *kv);
	VEC_PUSH(m->kvs, m->nkvs, m->capkvs, kv);
	return kv;
}

static int parse_kv(struct kl_model *m, const char *opt, const char *val, size_t vi, enum kl_kv_mode mode,
		    const char *implied, struct kl_kv **out, struct kl_error *err)
{
	struct kl_kv *kv = keep_kv(m);
	if (kl_kv_parse(val, mode, implied, kv, err) < 0) {
		kl_error_prefix(err, "-%s argument %zu", opt, vi + 1);
		return -1;
	}
	*out = kv;
	return 0;
}

static void parse_global(struct kl_model *m, const char *val)
{
	/* "DRIVER.PROP=VALUE" or "driver=D,property=P,value=V" (qemu_global_option).
	 * Only write-cache matters: it is the default of devices that give none. */
	const char *dot = val + strcspn(val, ".=");
	char *driver = NULL;
	int v = -1;
	if (*dot == '.' && dot > val) {
		const char *eq = strchr(dot + 1, '=');
		if (!eq || (size_t)(eq - dot - 1) != strlen("write-cache") || strncmp(dot + 1, "write-cache", 11) != 0)
			return;
		driver = xstrndup(val, (size_t)(dot - val));
		v = strcmp(eq + 1, "on") == 0 ? 1 : strcmp(eq + 1, "off") == 0 ? 0 : -1;
	} else {
		struct kl_kv kv;
		if (kl_kv_parse(val, KL_KV_QEMUOPTS, NULL, &kv, NULL) < 0)
			return;
		const char *d = kl_kv_get(&kv, "driver"), *p = kl_kv_get(&kv, "property");
		const char *value = kl_kv_get(&kv, "value");
		if (d && p && value && strcmp(p, "write-cache") == 0) {
			driver = xstrdup(d);
			v = strcmp(value, "on") == 0 ? 1 : strcmp(value, "off") == 0 ? 0 : -1;
		}
		kl_kv_free(&kv);
		if (!driver)
			return;
	}
	struct global_wc gw = { driver, v };
	VEC_PUSH(m->globals, m->nglobals, m->capglobals, gw);
}

static void parse_set(struct kl_model *m, const char *val, size_t vi)
{
	/* "GROUP.ID.ARG=VALUE" (ARG may hold dots). */
	const char *d1 = val + strcspn(val, ".=");
	if (*d1 != '.')
		return;
	const char *d2 = d1 + 1 + strcspn(d1 + 1, ".=");
	if (*d2 != '.')
		return;
	const char *eq = strchr(d2 + 1, '=');
	if (!eq)
		return;
	struct set_opt s = {
		vi, xstrndup(val, (size_t)(d1 - val)), xstrndup(d1 + 1, (size_t)(d2 - d1 - 1)),
		xstrndup(d2 + 1, (size_t)(eq - d2 - 1)),
	};
	VEC_PUSH(m->sets, m->nsets, m->capsets, s);
}

static bool is_legacy_disk_option(const char *name)
{
	static const char *const names[] = {
		"hda", "hdb", "hdc", "hdd", "fda", "fdb", "cdrom", "mtdblock", "sd", "pflash", NULL,
	};
	for (size_t i = 0; names[i]; i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

/* "help" or "?" as a value, alone or as the last parameter (-device
 * virtio-blk-pci,help): QEMU prints something and exits. */
static bool asks_for_help(const char *val)
{
	size_t n = strlen(val);
	if (strcmp(val, "help") == 0 || strcmp(val, "?") == 0)
		return true;
	return (n > 5 && strcmp(val + n - 5, ",help") == 0 && val[n - 6] != ',') ||
	       (n > 2 && strcmp(val + n - 2, ",?") == 0 && val[n - 3] != ',');
}

static int handle_option(struct kl_model *m, const char *opt, const char *val, size_t vi, struct kl_error *err)
{
	struct kl_kv *kv;
	if (strcmp(opt, "h") == 0 || strcmp(opt, "help") == 0 || strcmp(opt, "version") == 0 ||
	    (val && asks_for_help(val))) {
		m->informational = true;
		return 0;
	}
	if (strcmp(opt, "chardev") == 0) {
		/* Our own monitors: a kvm-launch in front of this one (a libvirt
		 * <emulator> pointing at kvm-launch while the system QEMU is
		 * diverted to another copy) already did the work. */
		struct kl_kv ckv;
		if (kl_kv_parse(val, KL_KV_QEMUOPTS, "backend", &ckv, NULL) == 0) {
			const char *id = kl_kv_get(&ckv, "id");
			if (id && strncmp(id, KL_MONITOR_ID_PREFIX, strlen(KL_MONITOR_ID_PREFIX)) == 0)
				m->prepared = true;
			kl_kv_free(&ckv);
		}
		return 0;
	}
	if (strcmp(opt, "drive") == 0) {
		struct kl_drive *d = xmalloc(sizeof *d);
		if (kl_drive_parse(val, vi, d, err) < 0) {
			kl_drive_free(d);
			free(d);
			return -1;
		}
		VEC_PUSH(m->drives, m->ndrives, m->capdrives, d);
	} else if (strcmp(opt, "blockdev") == 0) {
		return kl_bd_add(&m->bd, val, vi, err);
	} else if (strcmp(opt, "device") == 0) {
		struct kl_device *d = xmalloc(sizeof *d);
		if (kl_device_parse(val, vi, d, err) < 0) {
			kl_device_free(d);
			free(d);
			return -1;
		}
		VEC_PUSH(m->devices, m->ndevices, m->capdevices, d);
	} else if (strcmp(opt, "name") == 0) {
		if (parse_kv(m, opt, val, vi, KL_KV_QEMUOPTS, "guest", &kv, err) < 0)
			return -1;
		const char *g = kl_kv_get(kv, "guest");
		if (g)
			m->name = g;
	} else if (strcmp(opt, "machine") == 0 || strcmp(opt, "M") == 0) {
		if (parse_kv(m, opt, val, vi, KL_KV_KEYVAL, "type", &kv, err) < 0)
			return -1;
		const char *t = kl_kv_get(kv, "type");
		if (t)
			m->machine_type = t;
		static const char *const pf[] = { "pflash0", "pflash1" };
		for (size_t i = 0; i < 2; i++) {
			const char *n = kl_kv_get(kv, pf[i]);
			if (n)
				kl_names_put(&m->pflash, n, (void *)n);
		}
	} else if (strcmp(opt, "incoming") == 0) {
		m->incoming = true;
	} else if (strcmp(opt, "daemonize") == 0) {
		m->daemonize = true;
	} else if (strcmp(opt, "pidfile") == 0) {
		m->pidfile = val;
	} else if (strcmp(opt, "readconfig") == 0) {
		m->readconfig = true;
	} else if (strcmp(opt, "snapshot") == 0) {
		m->snapshot = true;
	} else if (strcmp(opt, "add-fd") == 0) {
		if (parse_kv(m, opt, val, vi, KL_KV_QEMUOPTS, NULL, &kv, err) < 0)
			return -1;
		const char *fd = kl_kv_get(kv, "fd"), *set = kl_kv_get(kv, "set");
		char *e1, *e2;
		if (fd && set) {
			long f = strtol(fd, &e1, 10), s = strtol(set, &e2, 10);
			if (*fd && *set && !*e1 && !*e2 && f >= 0 && f <= INT32_MAX && s >= 0) {
				struct fdset_fd x = { s, (int)f };
				VEC_PUSH(m->fds, m->nfds, m->capfds, x);
			}
		}
	} else if (strcmp(opt, "set") == 0) {
		parse_set(m, val, vi);
	} else if (strcmp(opt, "global") == 0) {
		parse_global(m, val);
	} else if (is_legacy_disk_option(opt)) {
		m->legacy_disks++;
	}
	return 0;
}

static int global_write_cache(const struct kl_model *m, const struct kl_device *d)
{
	int v = -1;
	for (size_t i = 0; i < m->nglobals; i++)
		if (strcmp(m->globals[i].driver, d->driver) == 0)
			v = m->globals[i].value;
	return v;
}

/* The device's write-cache as QEMU will see it: its own, else a -global. */
static int device_write_cache(const struct kl_model *m, const struct kl_device *d)
{
	return d->write_cache >= 0 ? d->write_cache : global_write_cache(m, d);
}

static bool is_cache_key(const char *arg)
{
	return strcmp(arg, "cache") == 0 || strcmp(arg, "aio") == 0 || strncmp(arg, "cache.", 6) == 0 ||
	       strncmp(arg, "file.", 5) == 0;
}

static int check_sets(const struct kl_model *m, struct kl_error *err)
{
	for (size_t i = 0; i < m->nsets; i++) {
		const struct set_opt *s = &m->sets[i];
		if (strcmp(s->group, "drive") == 0 && kl_names_get(&m->drive_ids, s->id) && is_cache_key(s->arg))
			return kl_error_fail(err, "-set argument %zu: -set drive.%s.%s would change a disk behind the rewrite",
					     s->argi + 1, s->id, s->arg);
		if (strcmp(s->group, "device") == 0 &&
		    (strcmp(s->arg, "write-cache") == 0 || strcmp(s->arg, "drive") == 0)) {
			for (size_t k = 0; k < m->ndevices; k++) {
				const struct kl_device *d = m->devices[k];
				if (!d->json && d->drive && d->id && strcmp(d->id, s->id) == 0)
					return kl_error_fail(err, "-set argument %zu: -set device.%s.%s would change a disk behind the rewrite",
							     s->argi + 1, s->id, s->arg);
			}
		}
	}
	return 0;
}

/* What the disk's -device(s) add to the given facts: the device id, the
 * guest-visible write cache (write-cache=, or a -global), cdrom, share-rw;
 * then the cache mode from the node's flags plus that write cache. */
static void apply_devices(const struct kl_model *m, struct mdisk *k, struct kl_cache_flags fl, bool explicit)
{
	struct kl_disk_given *g = &k->g;
	for (size_t i = 0; i < k->ndevs; i++) {
		const struct kl_device *dev = m->devices[k->devs[i]];
		if (i == 0 && dev->id)
			g->id = dev->id;
		int wc = device_write_cache(m, dev);
		if (wc >= 0) {
			fl.writeback = wc == 1;
			explicit = true;
		}
		g->cdrom = g->cdrom || dev->cdrom;
		g->shareable = g->shareable || dev->share_rw;
	}
	g->cache = explicit ? kl_cache_from_flags(fl) : KL_CACHE_UNSET;
}

static void fill_drive_disk(struct kl_model *m, struct mdisk *k)
{
	const struct kl_drive *d = k->drive;
	struct kl_disk_given *g = &k->g;
	struct kl_cache_flags fl = d->flags;
	bool explicit = d->cache_explicit;
	g->node = d->id ? d->id : d->node_name;
	g->id = d->id ? d->id : d->auto_id;
	g->path = d->path;
	g->driver = d->driver;
	g->format = d->format;
	g->aio = d->aio;
	g->readonly = d->readonly;
	g->cdrom = d->cdrom;
	g->snapshot = d->snapshot || m->snapshot;
	apply_devices(m, k, fl, explicit);
	k->takes_aio = d->takes_aio;
}

static int fill_blockdev_disk(struct kl_model *m, struct mdisk *k, struct kl_error *err)
{
	struct kl_bdfacts f;
	if (kl_bd_facts(&m->bd, k->top, &f, err) < 0)
		return -1;
	struct kl_disk_given *g = &k->g;
	k->path = f.path;
	g->node = k->top->name;
	g->path = f.path;
	g->driver = f.driver;
	g->format = f.format;
	g->aio = f.aio;
	g->readonly = f.readonly;
	g->cdrom = f.driver && strcmp(f.driver, "host_cdrom") == 0;
	struct kl_cache_flags fl = { true, f.direct, f.no_flush };
	bool explicit = f.cache_explicit;
	apply_devices(m, k, fl, explicit);
	k->takes_aio = kl_driver_takes_aio(f.driver);
	return 0;
}

/* Drive ids are unique, and QEMU has one namespace for node names: a drive
 * id may not be a node name either. */
static int check_drive_names(struct kl_model *m, struct kl_error *err)
{
	struct kl_names node_names = { 0 };
	int rc = 0;
	for (size_t i = 0; i < m->ndrives && rc == 0; i++) {
		const struct kl_drive *d = m->drives[i];
		if (d->id && kl_names_put(&m->drive_ids, d->id, (void *)(uintptr_t)(i + 1))) {
			rc = kl_error_fail(err, "-drive argument %zu: duplicate id '%s'", d->argi + 1, d->id);
			break;
		}
		const char *names[] = { d->id, d->node_name, kl_kv_get(&d->kv, "file.node-name") };
		for (size_t k = 0; k < 3 && rc == 0; k++) {
			if (!names[k])
				continue;
			if (kl_bd_lookup(&m->bd, names[k]) || (k > 0 && kl_names_put(&node_names, names[k], (void *)names[k])))
				rc = kl_error_fail(err, "-drive argument %zu: duplicate node name '%s'", d->argi + 1,
						   names[k]);
		}
	}
	kl_names_free(&node_names);
	return rc;
}

/* The disks, in command-line order: -drive (but firmware flash) and top
 * -blockdev nodes (but those -machine pflash0/1 names).  drive_disk and
 * node_disk map each -drive and node to its disk, SIZE_MAX for none. */
static void find_disks(struct kl_model *m, size_t *drive_disk, size_t *node_disk)
{
	size_t di = 0, ai = 0;
	m->disks = xcalloc(m->ndrives + m->bd.nargs + 1, sizeof *m->disks);
	for (size_t i = 0; i < m->bd.nnodes; i++)
		node_disk[i] = SIZE_MAX;
	while (di < m->ndrives || ai < m->bd.nargs) {
		bool take_drive = ai >= m->bd.nargs ||
				  (di < m->ndrives && m->drives[di]->argi < m->bd.args[ai]->argi);
		struct mdisk *k = &m->disks[m->ndisks];
		if (take_drive) {
			struct kl_drive *d = m->drives[di];
			drive_disk[di++] = SIZE_MAX;
			if (d->ifname && strcmp(d->ifname, "pflash") == 0)
				continue;
			k->source = KL_DISK_DRIVE;
			k->drive = d;
			drive_disk[di - 1] = m->ndisks++;
		} else {
			struct kl_bdnode *top = m->bd.args[ai++]->top;
			if (top->nparents || (top->name && kl_names_get(&m->pflash, top->name)))
				continue;
			k->source = KL_DISK_BLOCKDEV;
			k->top = top;
			node_disk[top->index] = m->ndisks++;
		}
	}
}

/* Each -device drive= to its disk. */
static int attach_devices(struct kl_model *m, const size_t *drive_disk, const size_t *node_disk,
			  struct kl_error *err)
{
	for (size_t i = 0; i < m->ndevices; i++) {
		const struct kl_device *dev = m->devices[i];
		if (!dev->drive)
			continue;
		size_t disk = SIZE_MAX;
		uintptr_t d = (uintptr_t)kl_names_get(&m->drive_ids, dev->drive);
		if (d) {
			disk = drive_disk[d - 1];
		} else {
			struct kl_bdnode *n = kl_bd_lookup(&m->bd, dev->drive);
			if (!n)
				return kl_error_fail(err, "-device argument %zu: drive '%s' is neither a -drive id nor a node name",
						     dev->argi + 1, dev->drive);
			disk = node_disk[n->index];
		}
		if (disk == SIZE_MAX)
			continue;
		struct mdisk *k = &m->disks[disk];
		VEC_PUSH(k->devs, k->ndevs, k->capdevs, i);
	}
	return 0;
}

static int finish(struct kl_model *m, struct kl_error *err)
{
	if (kl_bd_resolve(&m->bd, err) < 0 || check_drive_names(m, err) < 0 || check_sets(m, err) < 0)
		return -1;
	/* pc and q35 (and the default machine) put -drive without if= on IDE. */
	const char *mt = m->machine_type;
	bool ide_default = !mt || strncmp(mt, "pc", 2) == 0 || strncmp(mt, "q35", 3) == 0;
	kl_drive_assign_auto_ids(m->drives, m->ndrives, ide_default ? "ide" : NULL);

	_cleanup_free_ size_t *drive_disk = xmalloc((m->ndrives + 1) * sizeof *drive_disk);
	_cleanup_free_ size_t *node_disk = xmalloc((m->bd.nnodes + 1) * sizeof *node_disk);
	find_disks(m, drive_disk, node_disk);
	if (attach_devices(m, drive_disk, node_disk, err) < 0)
		return -1;
	for (size_t i = 0; i < m->ndisks; i++) {
		struct mdisk *k = &m->disks[i];
		if (k->source == KL_DISK_DRIVE)
			fill_drive_disk(m, k);
		else if (fill_blockdev_disk(m, k, err) < 0)
			return -1;
		if (k->g.id)
			k->owner = xstrdup(k->g.id);
		else if (k->g.node)
			k->owner = xstrdup(k->g.node);
		else
			k->owner = xasprintf("disk %zu", i);
	}
	return 0;
}

int kl_model_parse(int argc, char *const argv[], struct kl_model **out, struct kl_error *err)
{
	*out = NULL;
	if (argc < 0 || (argc > 0 && !argv))
		return kl_error_fail(err, "no arguments");
	_cleanup_model_ struct kl_model *m = xcalloc(1, sizeof *m);
	m->argc = argc;
	m->argv = argv;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!a) {
			return kl_error_fail(err, "argument %d is missing", i + 1);
		}
		if (a[0] != '-') {
			/* A bare image name: QEMU's -hda. */
			m->legacy_disks++;
			continue;
		}
		const char *name = a + 1;
		if (*name == '-')
			name++;
		bool has_arg;
		const char *oname = kl_qemu_option(name, &has_arg);
		if (!oname) {
			return kl_error_fail(err, "argument %d: unknown QEMU option '%.64s'", i + 1, a);
		}
		if (!has_arg) {
			if (handle_option(m, oname, NULL, 0, err) < 0)
				return -1;
			continue;
		}
		if (i + 1 >= argc || !argv[i + 1]) {
			return kl_error_fail(err, "argument %d: option '%.64s' requires an argument", i + 1, a);
		}
		i++;
		if (handle_option(m, oname, argv[i], (size_t)i, err) < 0)
			return -1;
	}
	if (finish(m, err) < 0)
		return -1;
	*out = steal_pointer(&m);
	return 0;
}

void kl_model_free(struct kl_model *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->ndisks; i++) {
		free(m->disks[i].path);
		free(m->disks[i].owner);
		free(m->disks[i].devs);
	}
	free(m->disks);
	for (size_t i = 0; i < m->ndrives; i++) {
		kl_drive_free(m->drives[i]);
		free(m->drives[i]);
	}
	free(m->drives);
	for (size_t i = 0; i < m->ndevices; i++) {
		kl_device_free(m->devices[i]);
		free(m->devices[i]);
	}
	free(m->devices);
	for (size_t i = 0; i < m->nkvs; i++) {
		kl_kv_free(m->kvs[i]);
		free(m->kvs[i]);
	}
	free(m->kvs);
	for (size_t i = 0; i < m->nsets; i++) {
		free(m->sets[i].group);
		free(m->sets[i].id);
		free(m->sets[i].arg);
	}
	free(m->sets);
	free(m->fds);
	for (size_t i = 0; i < m->nglobals; i++)
		free(m->globals[i].driver);
	free(m->globals);
	kl_bd_free(&m->bd);
	kl_names_free(&m->drive_ids);
	kl_names_free(&m->pflash);
	free(m);
}

const char *kl_model_name(const struct kl_model *m) { return m->name; }
bool kl_model_incoming(const struct kl_model *m) { return m->incoming; }
bool kl_model_daemonize(const struct kl_model *m) { return m->daemonize; }
const char *kl_model_pidfile(const struct kl_model *m) { return m->pidfile; }
bool kl_model_readconfig(const struct kl_model *m) { return m->readconfig; }
const char *kl_model_machine_type(const struct kl_model *m) { return m->machine_type; }
bool kl_model_informational(const struct kl_model *m) { return m->informational; }
bool kl_model_prepared(const struct kl_model *m) { return m->prepared; }
size_t kl_model_legacy_disk_count(const struct kl_model *m) { return m->legacy_disks; }

bool kl_model_machine_none(const struct kl_model *m)
{
	return m->machine_type && strcmp(m->machine_type, "none") == 0;
}

int kl_model_fdset_fd(const struct kl_model *m, const char *path)
{
	const char *p = path && strncmp(path, "/dev/fdset/", 11) == 0 ? path + 11 : NULL;
	char *end;
	if (!p || !*p)
		return -1;
	long set = strtol(p, &end, 10);
	if (*end || set < 0)
		return -1;
	for (size_t i = 0; i < m->nfds; i++)
		if (m->fds[i].set == set)
			return m->fds[i].fd;
	return -1;
}

size_t kl_model_disk_count(const struct kl_model *m) { return m->ndisks; }

const struct kl_disk_given *kl_model_disk(const struct kl_model *m, size_t i)
{
	return i < m->ndisks ? &m->disks[i].g : NULL;
}

enum kl_disk_source kl_model_disk_source(const struct kl_model *m, size_t i)
{
	return i < m->ndisks ? m->disks[i].source : KL_DISK_DRIVE;
}

bool kl_model_disk_takes_aio(const struct kl_model *m, size_t i)
{
	return i < m->ndisks && m->disks[i].takes_aio;
}

void kl_model_set_disk(struct kl_model *m, size_t i, enum kl_aio aio, enum kl_cache cache)
{
	if (i >= m->ndisks)
		return;
	/* Only concrete values: the policy's auto/keep mean "as given" here. */
	m->disks[i].req_aio = aio <= KL_AIO_IO_URING ? aio : KL_AIO_UNSET;
	m->disks[i].req_cache = cache <= KL_CACHE_UNSAFE ? cache : KL_CACHE_UNSET;
}

static void replace_arg(char **rep, size_t i, char *text)
{
	if (!text)
		return;
	free(rep[i]);
	rep[i] = text;
}

int kl_model_rewrite(const struct kl_model *m, struct strvec *out, struct kl_error *err)
{
	size_t argc = (size_t)m->argc;
	char **rep = xcalloc(argc + 1, sizeof *rep);
	struct kl_bdedits be;
	kl_bd_edits_init(&be, &m->bd);
	int rc = -1;

	for (size_t i = 0; i < m->ndisks; i++) {
		const struct mdisk *k = &m->disks[i];
		enum kl_aio aio = k->req_aio;
		enum kl_cache cache = k->req_cache;
		if (!k->takes_aio || aio == k->g.aio)
			aio = KL_AIO_UNSET;
		if (cache == k->g.cache)
			cache = KL_CACHE_UNSET;
		if (aio == KL_AIO_UNSET && cache == KL_CACHE_UNSET)
			continue;
		char *text = NULL;
		if (k->source == KL_DISK_DRIVE) {
			if (kl_drive_edit(k->drive, aio, cache, &text, err) < 0)
				goto out;
			replace_arg(rep, k->drive->argi, text);
		} else if (kl_bd_edit(&be, k->top, k->owner, aio, cache, err) < 0) {
			goto out;
		}
		if (cache == KL_CACHE_UNSET)
			continue;
		bool wb = kl_cache_flags(cache).writeback;
		for (size_t d = 0; d < k->ndevs; d++) {
			const struct kl_device *dev = m->devices[k->devs[d]];
			/* A -drive's cache= sets the guest write cache unless the
			 * device says otherwise; a -blockdev disk has only the device. */
			bool needed = device_write_cache(m, dev) >= 0 ||
				      (k->source == KL_DISK_BLOCKDEV && dev->has_write_cache);
			if (!needed)
				continue;
			if (kl_device_set_write_cache(dev, wb, &text, err) < 0)
				goto out;
			replace_arg(rep, dev->argi, text);
		}
	}
	for (size_t a = 0; a < m->bd.nargs; a++) {
		char *text;
		if (kl_bd_edited_text(&be, a, &text, err) < 0)
			goto out;
		replace_arg(rep, m->bd.args[a]->argi, text);
	}
	for (size_t i = 0; i < argc; i++) {
		if (rep[i]) {
			strvec_push(out, rep[i]);
			rep[i] = NULL;
		} else {
			strvec_push_dup(out, m->argv[i]);
		}
	}
	rc = 0;
out:
	for (size_t i = 0; i < argc; i++)
		free(rep[i]);
	free(rep);
	kl_bd_edits_free(&be);
	return rc;
}
