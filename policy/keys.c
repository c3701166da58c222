/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The policy file's vocabulary: match keys, actions and their values. */
#include "policy/policy-int.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/xalloc.h"

const struct klp_mkey_info klp_mkeys[KLP_M_COUNT] = {
	[KLP_M_BACKEND] = { "backend", KLP_T_BACKEND },
	[KLP_M_BLOCK_KIND] = { "block-kind", KLP_T_BLOCK_KIND },
	[KLP_M_FS] = { "fs", KLP_T_GLOB },
	[KLP_M_FORMAT] = { "format", KLP_T_GLOB },
	[KLP_M_PREALLOCATED] = { "preallocated", KLP_T_BOOL },
	[KLP_M_SHARED] = { "shared", KLP_T_BOOL },
	[KLP_M_READONLY] = { "readonly", KLP_T_BOOL },
	[KLP_M_CDROM] = { "cdrom", KLP_T_BOOL },
	[KLP_M_SHAREABLE] = { "shareable", KLP_T_BOOL },
	[KLP_M_DRIVER] = { "driver", KLP_T_GLOB },
	[KLP_M_ROTATIONAL] = { "rotational", KLP_T_BOOL },
	[KLP_M_PATH] = { "path", KLP_T_GLOB },
	[KLP_M_VM] = { "vm", KLP_T_GLOB },
	[KLP_M_INCOMING] = { "incoming", KLP_T_BOOL },
	[KLP_M_ODIRECT] = { "odirect", KLP_T_BOOL },
	[KLP_M_COW] = { "cow", KLP_T_BOOL },
};

/* The throttle keys of a rule are kl_throttle_keys[] without the bursts'
 * lengths, in its order: KLP_A_BPS to KLP_A_IOPS_SIZE (policy/types.c). */
static const char *const akey_names[KLP_A_COUNT] = {
	[KLP_A_AIO] = "aio",
	[KLP_A_CACHE] = "cache",
	[KLP_A_ALLOW_HOST_CACHE] = "allow-host-cache",
	[KLP_A_GROUP] = "group",
};
_Static_assert(KLP_A_IOPS_SIZE - KLP_A_BPS + 1 == KL_THROTTLE_NKEYS - 6, "one action per throttle field");

/* The index in kl_throttle_keys of a rule's throttle action, -1 if key is none. */
static int throttle_index(int key)
{
	if (key < KLP_A_BPS || key > KLP_A_IOPS_SIZE)
		return -1;
	int n = key - KLP_A_BPS;
	for (int i = 0; i < KL_THROTTLE_NKEYS; i++)
		if (kl_throttle_keys[i].field >= 0 && n-- == 0)
			return i;
	return -1;
}

static int64_t *throttle_field(struct kl_throttle *t, int key)
{
	int i = throttle_index(key);
	return i >= 0 ? kl_throttle_field(t, (size_t)i) : NULL;
}

static const char *akey_name(int key)
{
	int t = throttle_index(key);
	if (t >= 0)
		return kl_throttle_keys[t].name;
	return key >= 0 && key < KLP_A_COUNT && akey_names[key] ? akey_names[key] : "?";
}

/* Keys outside rules (parse.c handles them); listed here for suggestions. */
static const char *const global_names[] = { "qemu", "state-dir", "cache-dir", "on-error", "disk_cachemodes",
					    "monitor-relay" };

/* QEMU's THROTTLE_VALUE_MAX. */
#define THROTTLE_VALUE_MAX INT64_C(1000000000000000)

int klp_mkey_lookup(const char *key)
{
	for (int i = 0; i < KLP_M_COUNT; i++)
		if (strcmp(key, klp_mkeys[i].name) == 0)
			return i;
	return -1;
}

int klp_akey_lookup(const char *key)
{
	for (int i = 0; i < KLP_A_COUNT; i++)
		if (strcmp(key, akey_name(i)) == 0)
			return i;
	return -1;
}

const char *klp_akey_name(int key)
{
	return akey_name(key);
}

/* Lower case, '_' as '-': "Block_Kind" and "block-kind" compare equal. */
static bool loose_eq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++) {
		char x = (char)tolower((unsigned char)*a), y = (char)tolower((unsigned char)*b);
		if (x == '_')
			x = '-';
		if (y == '_')
			y = '-';
		if (x != y)
			return false;
	}
	return *a == *b;
}

const char *klp_suggest_key(const char *key)
{
	for (int i = 0; i < KLP_M_COUNT; i++)
		if (loose_eq(key, klp_mkeys[i].name))
			return klp_mkeys[i].name;
	for (int i = 0; i < KLP_A_COUNT; i++)
		if (loose_eq(key, akey_name(i)))
			return akey_name(i);
	for (size_t i = 0; i < sizeof global_names / sizeof *global_names; i++)
		if (loose_eq(key, global_names[i]))
			return global_names[i];
	return NULL;
}

int klp_parse_bool(const char *s, bool *out)
{
	if (!strcmp(s, "yes") || !strcmp(s, "true") || !strcmp(s, "on")) {
		*out = true;
		return 0;
	}
	if (!strcmp(s, "no") || !strcmp(s, "false") || !strcmp(s, "off")) {
		*out = false;
		return 0;
	}
	return -1;
}

int klp_split_list(const char *value, struct strvec *out, char **msg)
{
	const char *p = value;
	for (;;) {
		const char *comma = strchr(p, ',');
		const char *end = comma ? comma : p + strlen(p);
		const char *a = p, *b = end;
		while (a < b && isspace((unsigned char)*a))
			a++;
		while (b > a && isspace((unsigned char)b[-1]))
			b--;
		if (a == b) {
			*msg = xasprintf("empty item in the list \"%s\"", value);
			return -1;
		}
		strvec_push(out, xstrndup(a, (size_t)(b - a)));
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

static int parse_backend(const char *s, unsigned *bit)
{
	static const struct { const char *n; enum kl_backend b; } t[] = {
		{ "block", KL_BACKEND_BLOCK }, { "file", KL_BACKEND_FILE },
		{ "network", KL_BACKEND_NETWORK }, { "unknown", KL_BACKEND_UNKNOWN },
	};
	for (size_t i = 0; i < sizeof t / sizeof *t; i++)
		if (!strcmp(s, t[i].n)) {
			*bit = 1u << t[i].b;
			return 0;
		}
	return -1;
}

static int parse_block_kind(const char *s, unsigned *bit)
{
	for (int k = KL_BLOCK_OTHER; k <= KL_BLOCK_VIRTIO; k++)
		if (!strcmp(s, kl_block_kind_name((enum kl_block_kind)k))) {
			*bit = 1u << k;
			return 0;
		}
	return -1;
}

int klp_set_match(struct klp_match *m, int key, const char *value, int line, char **msg)
{
	const struct klp_mkey_info *ki = &klp_mkeys[key];
	_cleanup_strvec_ struct strvec items = STRVEC_INIT;
	unsigned mask = 0;

	if (klp_split_list(value, &items, msg) < 0)
		return -1;
	switch (ki->type) {
	case KLP_T_BACKEND:
	case KLP_T_BLOCK_KIND:
		for (size_t i = 0; i < items.n; i++) {
			unsigned bit;
			int r = ki->type == KLP_T_BACKEND ? parse_backend(items.v[i], &bit)
							  : parse_block_kind(items.v[i], &bit);
			if (r < 0) {
				*msg = xasprintf("%s: unknown value \"%s\" (%s)", ki->name, items.v[i],
						 ki->type == KLP_T_BACKEND ? "block, file, network, unknown"
						 : "lvm, dm, loop, nvme, md, rbd, nbd, scsi, virtio, other");
				return -1;
			}
			mask |= bit;
		}
		break;
	case KLP_T_BOOL: {
		bool b;
		if (items.n != 1 || klp_parse_bool(items.v[0], &b) < 0) {
			*msg = xasprintf("%s: expected yes or no, not \"%s\"", ki->name, value);
			return -1;
		}
		mask = 1u << (b ? KLP_YES : KLP_NO);
		break;
	}
	case KLP_T_GLOB:
		for (size_t i = 0; i < items.n; i++)
			strvec_push_dup(&m->globs[key], items.v[i]);
		break;
	}
	m->mask[key] = mask;
	m->keys |= 1u << key;
	m->line[key] = line;
	return 0;
}

static int parse_aio_action(struct klp_rule *r, const char *value, char **msg)
{
	_cleanup_strvec_ struct strvec items = STRVEC_INIT;
	if (klp_split_list(value, &items, msg) < 0)
		return -1;
	if (items.n == 1) {
		enum kl_aio a;
		if (kl_aio_parse(items.v[0], &a) < 0) {
			*msg = xasprintf("aio: unknown value \"%s\" (threads, native, io_uring, auto, keep, "
					 "or a list such as \"io_uring, threads\")", value);
			return -1;
		}
		r->aio = a;
		r->aio_list_n = 0;
		return 0;
	}
	if (items.n > KLP_MAX_ENGINES) {
		*msg = xasprintf("aio: a list names each of threads, native, io_uring at most once");
		return -1;
	}
	r->aio_list_n = 0;
	for (size_t i = 0; i < items.n; i++) {
		enum kl_aio a;
		if (kl_aio_parse(items.v[i], &a) < 0 || a == KL_AIO_AUTO || a == KL_AIO_KEEP) {
			*msg = xasprintf("aio: \"%s\" cannot be in a list of engines (threads, native, io_uring)",
					 items.v[i]);
			return -1;
		}
		for (size_t j = 0; j < r->aio_list_n; j++)
			if (r->aio_list[j] == a) {
				*msg = xasprintf("aio: %s is listed twice", items.v[i]);
				return -1;
			}
		r->aio_list[r->aio_list_n++] = a;
	}
	r->aio = KL_AIO_AUTO;
	return 0;
}

static int parse_cache_action(struct klp_rule *r, const char *value, char **msg)
{
	enum kl_cache c;
	r->twin = KLP_TWIN_NONE;
	if (!strcmp(value, "direct")) {
		r->cache = KL_CACHE_AUTO;
		r->twin = KLP_TWIN_DIRECT;
		return 0;
	}
	if (!strcmp(value, "host")) {
		r->cache = KL_CACHE_AUTO;
		r->twin = KLP_TWIN_HOST;
		return 0;
	}
	if (kl_cache_parse(value, &c) < 0) {
		*msg = xasprintf("cache: unknown value \"%s\" (none, writeback, writethrough, directsync, unsafe, "
				 "auto, direct, host, keep)", value);
		return -1;
	}
	r->cache = c;
	if (c == KL_CACHE_AUTO)
		r->twin = KLP_TWIN_AUTO;
	return 0;
}

/* A non-negative count; byte keys take K, M, G, T (powers of 1024). */
static int parse_amount(const char *name, const char *s, bool size, int64_t *out, char **msg)
{
	const char *p = s;
	uint64_t v = 0, mult = 1;

	if (!isdigit((unsigned char)*p))
		goto bad;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (UINT64_MAX - 9) / 10)
			goto big;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (*p) {
		if (!size || p[1])
			goto bad;
		switch (toupper((unsigned char)*p)) {
		case 'K': mult = 1ull << 10; break;
		case 'M': mult = 1ull << 20; break;
		case 'G': mult = 1ull << 30; break;
		case 'T': mult = 1ull << 40; break;
		default: goto bad;
		}
	}
	if (v > (uint64_t)THROTTLE_VALUE_MAX / mult)
		goto big;
	*out = (int64_t)(v * mult);
	return 0;
bad:
	*msg = size ? xasprintf("%s: expected a number of bytes, optionally with K, M, G or T, not \"%s\"", name, s)
		    : xasprintf("%s: expected a whole number, not \"%s\"", name, s);
	return -1;
big:
	*msg = xasprintf("%s: %s is more than QEMU accepts (10^15)", name, s);
	return -1;
}

int klp_set_action(struct klp_rule *r, int key, const char *value, int line, char **msg)
{
	switch (key) {
	case KLP_A_AIO:
		if (parse_aio_action(r, value, msg) < 0)
			return -1;
		break;
	case KLP_A_CACHE:
		if (parse_cache_action(r, value, msg) < 0)
			return -1;
		break;
	case KLP_A_ALLOW_HOST_CACHE:
		if (klp_parse_bool(value, &r->allow_host_cache) < 0) {
			*msg = xasprintf("allow-host-cache: expected yes or no, not \"%s\"", value);
			return -1;
		}
		break;
	case KLP_A_GROUP: {
		size_t n = strlen(value);
		if (n >= sizeof r->throttle.group) {
			*msg = xasprintf("group: name longer than %zu characters", sizeof r->throttle.group - 1);
			return -1;
		}
		for (const char *p = value; *p; p++)
			if (!isalnum((unsigned char)*p) && !strchr("_.:-", *p)) {
				*msg = xasprintf("group: \"%s\": use letters, digits, '_', '.', ':' and '-'", value);
				return -1;
			}
		memcpy(r->throttle.group, value, n + 1);
		r->has_throttle = true;
		break;
	}
	default: {
		int64_t *f = throttle_field(&r->throttle, key);
		if (!f) {
			*msg = xasprintf("internal: unknown action %d", key);
			return -1;
		}
		if (parse_amount(akey_name(key), value, kl_throttle_keys[throttle_index(key)].bytes, f, msg) < 0)
			return -1;
		r->has_throttle = true;
		break;
	}
	}
	r->actions |= 1u << key;
	r->action_line[key] = line;
	return 0;
}

int klp_check_actions(const struct klp_rule *r, char **msg)
{
	static const struct { int avg, rd, wr; const char *name; } totals[] = {
		{ KLP_A_BPS, KLP_A_BPS_RD, KLP_A_BPS_WR, "bps" },
		{ KLP_A_IOPS, KLP_A_IOPS_RD, KLP_A_IOPS_WR, "iops" },
	};
	static const struct { int avg, max; } bursts[] = {
		{ KLP_A_BPS, KLP_A_BPS_MAX }, { KLP_A_BPS_RD, KLP_A_BPS_RD_MAX }, { KLP_A_BPS_WR, KLP_A_BPS_WR_MAX },
		{ KLP_A_IOPS, KLP_A_IOPS_MAX }, { KLP_A_IOPS_RD, KLP_A_IOPS_RD_MAX },
		{ KLP_A_IOPS_WR, KLP_A_IOPS_WR_MAX },
	};
	struct kl_throttle t = r->throttle;

	if (!(r->actions & ((1u << KLP_A_AIO) | (1u << KLP_A_CACHE))) && !r->has_throttle) {
		*msg = xasprintf("rule \"%s\" has no actions: give aio, cache or a throttle setting",
				 r->name + strlen("user:"));
		return -1;
	}
	for (size_t i = 0; i < sizeof totals / sizeof *totals; i++)
		if (*throttle_field(&t, totals[i].avg) &&
		    (*throttle_field(&t, totals[i].rd) || *throttle_field(&t, totals[i].wr))) {
			*msg = xasprintf("%s cannot be combined with %s_rd or %s_wr (QEMU refuses it)",
					 totals[i].name, totals[i].name, totals[i].name);
			return -1;
		}
	for (size_t i = 0; i < sizeof bursts / sizeof *bursts; i++) {
		int64_t avg = *throttle_field(&t, bursts[i].avg), max = *throttle_field(&t, bursts[i].max);
		if (max && !avg) {
			*msg = xasprintf("%s needs %s: a burst is relative to its average",
					 akey_name(bursts[i].max), akey_name(bursts[i].avg));
			return -1;
		}
		if (max && max < avg) {
			*msg = xasprintf("%s (%lld) is lower than %s (%lld)", akey_name(bursts[i].max), (long long)max,
					 akey_name(bursts[i].avg), (long long)avg);
			return -1;
		}
	}
	if (t.group[0] && !(t.bps || t.bps_rd || t.bps_wr || t.iops || t.iops_rd || t.iops_wr)) {
		*msg = xasprintf("group \"%s\" needs at least one limit (bps, bps_rd, bps_wr, iops, iops_rd, iops_wr)",
				 t.group);
		return -1;
	}
	return 0;
}
