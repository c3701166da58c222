/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The id QEMU gives a -drive that has none ("virtio0", "ide0-hd0",
 * "ide0-cd1", "none1"), so --explain and --status can name it as
 * query-block does.  Mirrors drive_new() in QEMU's blockdev.c: units are
 * counted per interface type and bus; IDE has 2 units a bus and SCSI 7,
 * the others one bus with unlimited units. */
#include "launcher/argv/drive-id.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/xalloc.h"

struct unit_set {
	uint64_t *keys;   /* open addressing; 0 = empty (keys are stored +1) */
	size_t cap, n;
};

static size_t slot(const struct unit_set *s, uint64_t key)
{
	size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 7) & (s->cap - 1);
	while (s->keys[i] && s->keys[i] != key + 1)
		i = (i + 1) & (s->cap - 1);
	return i;
}

static bool set_has(const struct unit_set *s, uint64_t key)
{
	return s->cap && s->keys[slot(s, key)] != 0;
}

static void set_add(struct unit_set *s, uint64_t key)
{
	if ((s->n + 1) * 2 > s->cap) {
		struct unit_set bigger = { xcalloc(s->cap ? s->cap * 2 : 64, sizeof(uint64_t)), s->cap ? s->cap * 2 : 64, 0 };
		for (size_t i = 0; i < s->cap; i++)
			if (s->keys[i]) {
				bigger.keys[slot(&bigger, s->keys[i] - 1)] = s->keys[i];
				bigger.n++;
			}
		free(s->keys);
		*s = bigger;
	}
	size_t i = slot(s, key);
	if (!s->keys[i]) {
		s->keys[i] = key + 1;
		s->n++;
	}
}

static const char *const if_names[] = { "none", "ide", "scsi", "floppy", "pflash", "mtd", "sd", "virtio", "xen" };
enum { IF_COUNT = sizeof if_names / sizeof *if_names };

static int if_index(const char *name)
{
	for (int i = 0; i < IF_COUNT; i++)
		if (strcmp(name, if_names[i]) == 0)
			return i;
	return -1;
}

static long number(const struct kl_drive *d, const char *key, long dflt)
{
	const char *v = kl_kv_get(&d->kv, key);
	char *end;
	if (!v || !*v)
		return dflt;
	long n = strtol(v, &end, 10);
	return *end || n < 0 || n > 1000000 ? -2 : n;
}

static uint64_t unit_key(int type, long bus, long unit)
{
	return ((uint64_t)type << 56) | ((uint64_t)bus << 28) | (uint64_t)unit;
}

void kl_drive_assign_auto_ids(struct kl_drive **drives, size_t n, const char *default_if)
{
	struct unit_set used = { 0 };
	long cursor[IF_COUNT] = { 0 };   /* below this position on bus 0 every unit is taken */

	for (size_t i = 0; i < n; i++) {
		struct kl_drive *d = drives[i];
		int type = if_index(d->ifname ? d->ifname : default_if ? default_if : "");
		if (type < 0)
			continue;
		long max_devs = type == 1 ? 2 : type == 2 ? 7 : 0;
		long bus = number(d, "bus", 0), unit = number(d, "unit", -1), index = number(d, "index", -1);
		if (bus < 0 || unit < -1 || index < -1)
			continue; /* QEMU rejects these; no id to guess */
		if (index >= 0) {
			bus = max_devs ? index / max_devs : 0;
			unit = max_devs ? index % max_devs : index;
		}
		if (unit < 0) {
			/* The first free unit, counting buses of max_devs units in
			 * turn; on bus 0 a cursor skips the units known taken. */
			bool from_cursor = bus == 0;
			long p = from_cursor ? cursor[type] : max_devs ? bus * max_devs : 0;
			for (;; p++) {
				long b = max_devs ? p / max_devs : bus, u = max_devs ? p % max_devs : p;
				if (!set_has(&used, unit_key(type, b, u))) {
					bus = b;
					unit = u;
					break;
				}
			}
			if (from_cursor)
				cursor[type] = p;
		}
		set_add(&used, unit_key(type, bus, unit));
		if (d->id)
			continue;
		const char *media = "";
		if (type == 1 || type == 2)
			media = d->cdrom ? "-cd" : "-hd";
		free(d->auto_id);
		d->auto_id = max_devs ? xasprintf("%s%ld%s%ld", if_names[type], bus, media, unit)
				      : xasprintf("%s%s%ld", if_names[type], media, unit);
	}
	free(used.keys);
}
