/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The -blockdev node graph and QEMU block driver knowledge.  See blockdev.h. */
#include "launcher/argv/blockdev.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/strbuf.h"
#include "common/xalloc.h"

/* Inline key=value children nest at most this deep (JSON has its own cap). */
#define KV_MAX_DEPTH 32

static bool in_list(const char *s, const char *const *list)
{
	if (!s)
		return false;
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

static const char *const aio_drivers[] = { "file", "host_device", "host_cdrom", NULL };
static const char *const network_drivers[] = {
	"nbd", "rbd", "iscsi", "gluster", "ssh", "nfs", "http", "https", "ftp", "ftps", "curl",
	"vxhs", "sheepdog", NULL,
};
static const char *const other_protocols[] = {
	"nvme", "null-co", "null-aio", "vvfat", "io_uring", "nvme-io_uring", "virtio-blk-vfio-pci",
	"virtio-blk-vhost-user", "virtio-blk-vhost-vdpa", NULL,
};
static const char *const filter_drivers[] = {
	"throttle", "copy-on-read", "preallocate", "compress", "blklogwrites", "copy-before-write",
	"snapshot-access", "blkdebug", "blkverify", "replication", NULL,
};

bool kl_driver_takes_aio(const char *driver) { return in_list(driver, aio_drivers); }
bool kl_driver_is_network(const char *driver) { return in_list(driver, network_drivers); }
bool kl_driver_is_filter(const char *driver) { return in_list(driver, filter_drivers); }

bool kl_driver_is_protocol(const char *driver)
{
	return in_list(driver, aio_drivers) || in_list(driver, network_drivers) || in_list(driver, other_protocols);
}

const char *kl_driver_for_prefix(const char *prefix, size_t len)
{
	static const struct { const char *prefix, *driver; } map[] = {
		{ "file", "file" }, { "host_device", "host_device" }, { "host_cdrom", "host_cdrom" },
		{ "nbd", "nbd" }, { "nbd+tcp", "nbd" }, { "nbd+unix", "nbd" },
		{ "rbd", "rbd" }, { "iscsi", "iscsi" }, { "iser", "iscsi" },
		{ "gluster", "gluster" }, { "gluster+tcp", "gluster" }, { "gluster+unix", "gluster" },
		{ "gluster+rdma", "gluster" }, { "ssh", "ssh" }, { "nfs", "nfs" },
		{ "http", "http" }, { "https", "https" }, { "ftp", "ftp" }, { "ftps", "ftps" },
		{ "fat", "vvfat" }, { "nvme", "nvme" }, { "null-co", "null-co" }, { "null-aio", "null-aio" },
		{ "vxhs", "vxhs" }, { "sheepdog", "sheepdog" }, { "blkdebug", "blkdebug" },
		{ "blkverify", "blkverify" },
	};
	for (size_t i = 0; i < sizeof map / sizeof *map; i++)
		if (strlen(map[i].prefix) == len && memcmp(map[i].prefix, prefix, len) == 0)
			return map[i].driver;
	return NULL;
}

int kl_qemu_aio_parse(const char *s, enum kl_aio *out)
{
	if (!s)
		return -1;
	if (strcmp(s, "threads") == 0)
		*out = KL_AIO_THREADS;
	else if (strcmp(s, "native") == 0)
		*out = KL_AIO_NATIVE;
	else if (strcmp(s, "io_uring") == 0)
		*out = KL_AIO_IO_URING;
	else
		return -1;
	return 0;
}

int kl_qemu_cache_parse(const char *s, enum kl_cache *out)
{
	if (!s)
		return -1;
	if (strcmp(s, "none") == 0 || strcmp(s, "off") == 0)
		*out = KL_CACHE_NONE;
	else if (strcmp(s, "writeback") == 0)
		*out = KL_CACHE_WRITEBACK;
	else if (strcmp(s, "writethrough") == 0)
		*out = KL_CACHE_WRITETHROUGH;
	else if (strcmp(s, "directsync") == 0)
		*out = KL_CACHE_DIRECTSYNC;
	else if (strcmp(s, "unsafe") == 0)
		*out = KL_CACHE_UNSAFE;
	else
		return -1;
	return 0;
}

/* ---- option sources ---- */

static const struct kl_jvalue *json_walk(const struct kl_jvalue *v, const char *path)
{
	char frag[128];
	while (v && *path) {
		size_t n = strcspn(path, ".");
		if (n >= sizeof frag)
			return NULL;
		memcpy(frag, path, n);
		frag[n] = '\0';
		if (v->type == KL_J_OBJECT) {
			v = kl_jdoc_get(v, frag);
		} else if (v->type == KL_J_ARRAY) {
			char *end;
			unsigned long i = strtoul(frag, &end, 10);
			v = (n && *end == '\0' && i < v->n) ? v->items[i] : NULL;
		} else {
			return NULL;
		}
		path += n;
		if (*path == '.')
			path++;
	}
	return v;
}

static char *kv_key(const struct kl_optsrc *s, const char *path)
{
	struct strbuf b = STRBUF_INIT;
	strbuf_append(&b, s->prefix ? s->prefix : "");
	strbuf_append(&b, path);
	return strbuf_steal(&b);
}

const char *kl_optsrc_str(const struct kl_optsrc *s, const char *path)
{
	if (s->obj) {
		const struct kl_jvalue *v = json_walk(s->obj, path);
		return v && (v->type == KL_J_STRING || v->type == KL_J_NUMBER) ? v->str : NULL;
	}
	if (!s->kv)
		return NULL;
	char *k = kv_key(s, path);
	const char *r = kl_kv_get(s->kv, k);
	free(k);
	return r;
}

int kl_optsrc_bool(const struct kl_optsrc *s, const char *path, bool *out)
{
	if (s->obj) {
		const struct kl_jvalue *v = json_walk(s->obj, path);
		if (!v)
			return 0;
		if (v->type == KL_J_TRUE || v->type == KL_J_FALSE) {
			*out = v->type == KL_J_TRUE;
			return 1;
		}
		return v->type == KL_J_STRING && kl_kv_parse_bool(v->str, out) == 0 ? 1 : -1;
	}
	const char *v = kl_optsrc_str(s, path);
	if (!v)
		return 0;
	return kl_kv_parse_bool(v, out) == 0 ? 1 : -1;
}

bool kl_optsrc_has(const struct kl_optsrc *s, const char *path)
{
	if (s->obj)
		return json_walk(s->obj, path) != NULL;
	if (!s->kv)
		return false;
	char *k = kv_key(s, path);
	size_t n = strlen(k);
	bool found = false;
	for (size_t i = 0; i < s->kv->n && !found; i++) {
		const struct kl_kv_entry *e = &s->kv->v[i];
		found = !e->removed && strncmp(e->key, k, n) == 0 && (e->key[n] == '\0' || e->key[n] == '.');
	}
	free(k);
	return found;
}

static void append_host(struct strbuf *b, const char *host, const char *port)
{
	if (strchr(host, ':'))
		strbuf_appendf(b, "[%s]", host);
	else
		strbuf_append(b, host);
	if (port)
		strbuf_appendf(b, ":%s", port);
}

static void append_path(struct strbuf *b, const char *path)
{
	if (path[0] != '/')
		strbuf_appendc(b, '/');
	strbuf_append(b, path);
}

char *kl_bd_target(const char *driver, const struct kl_optsrc *s)
{
#define S(p) kl_optsrc_str(s, p)
	struct strbuf b = STRBUF_INIT;
	if (!driver)
		goto generic;
	if (strcmp(driver, "nbd") == 0) {
		const char *exp = S("export");
		if (S("server.path")) {
			strbuf_append(&b, "nbd+unix://");
			if (exp)
				append_path(&b, exp);
			else
				strbuf_appendc(&b, '/');
			strbuf_appendf(&b, "?socket=%s", S("server.path"));
		} else if (S("server.host")) {
			strbuf_append(&b, "nbd://");
			append_host(&b, S("server.host"), S("server.port"));
			if (exp)
				append_path(&b, exp);
		} else {
			goto generic;
		}
	} else if (strcmp(driver, "rbd") == 0 && S("pool") && S("image")) {
		strbuf_appendf(&b, "rbd:%s/", S("pool"));
		if (S("namespace"))
			strbuf_appendf(&b, "%s/", S("namespace"));
		strbuf_append(&b, S("image"));
		if (S("snapshot"))
			strbuf_appendf(&b, "@%s", S("snapshot"));
	} else if (strcmp(driver, "iscsi") == 0 && S("portal") && S("target")) {
		strbuf_appendf(&b, "iscsi://%s/%s/%s", S("portal"), S("target"), S("lun") ? S("lun") : "0");
	} else if (strcmp(driver, "gluster") == 0 && S("volume")) {
		strbuf_append(&b, "gluster://");
		if (S("server.0.host"))
			append_host(&b, S("server.0.host"), S("server.0.port"));
		strbuf_appendf(&b, "/%s", S("volume"));
		if (S("path"))
			append_path(&b, S("path"));
	} else if (strcmp(driver, "ssh") == 0 && S("server.host")) {
		strbuf_append(&b, "ssh://");
		if (S("user"))
			strbuf_appendf(&b, "%s@", S("user"));
		append_host(&b, S("server.host"), S("server.port"));
		if (S("path"))
			append_path(&b, S("path"));
	} else if (strcmp(driver, "nfs") == 0 && S("server.host")) {
		strbuf_append(&b, "nfs://");
		append_host(&b, S("server.host"), NULL);
		if (S("path"))
			append_path(&b, S("path"));
	} else if (strcmp(driver, "nvme") == 0 && S("device")) {
		strbuf_appendf(&b, "nvme://%s/%s", S("device"), S("namespace") ? S("namespace") : "1");
	} else {
		goto generic;
	}
	return strbuf_steal(&b);
generic:
	strbuf_free(&b);
	if (S("filename"))
		return xstrdup(S("filename"));
	if (S("url"))
		return xstrdup(S("url"));
	if (S("path"))
		return xstrdup(S("path"));
	return NULL;
#undef S
}

/* ---- name map ---- */

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

void *kl_names_get(const struct kl_names *m, const char *key)
{
	if (!m->cap)
		return NULL;
	for (size_t i = hash_str(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->slots[i].key)
			return NULL;
		if (strcmp(m->slots[i].key, key) == 0)
			return m->slots[i].val;
	}
}

static void names_insert(struct kl_name_slot *slots, size_t cap, const char *key, void *val)
{
	size_t i = hash_str(key) & (cap - 1);
	while (slots[i].key)
		i = (i + 1) & (cap - 1);
	slots[i].key = key;
	slots[i].val = val;
}

void *kl_names_put(struct kl_names *m, const char *key, void *val)
{
	void *old = kl_names_get(m, key);
	if (old)
		return old;
	if ((m->n + 1) * 2 > m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		struct kl_name_slot *slots = xcalloc(cap, sizeof *slots);
		for (size_t i = 0; i < m->cap; i++)
			if (m->slots[i].key)
				names_insert(slots, cap, m->slots[i].key, m->slots[i].val);
		free(m->slots);
		m->slots = slots;
		m->cap = cap;
	}
	names_insert(m->slots, m->cap, key, val);
	m->n++;
	return NULL;
}

void kl_names_free(struct kl_names *m)
{
	free(m->slots);
	m->slots = NULL;
	m->cap = m->n = 0;
}

/* ---- building the graph ---- */

/* The child roles a driver has.  Returns the role's static name, or NULL
 * when key is an ordinary option.  *array: the role holds a list. */
static const char *child_role(const char *driver, const char *key, size_t len, bool *array)
{
	static const struct { const char *role, *driver; bool array; } roles[] = {
		{ "file", NULL, false }, { "backing", NULL, false },
		{ "data-file", "qcow2", false }, { "image", "blkdebug", false },
		{ "log", "blklogwrites", false }, { "test", "blkverify", false },
		{ "raw", "blkverify", false }, { "target", "copy-before-write", false },
		{ "header", "luks", false }, { "children", "quorum", true },
		{ "extents", "vmdk", true },
	};
	for (size_t i = 0; i < sizeof roles / sizeof *roles; i++) {
		if (strlen(roles[i].role) != len || memcmp(roles[i].role, key, len) != 0)
			continue;
		if (roles[i].driver && (!driver || strcmp(driver, roles[i].driver) != 0))
			continue;
		*array = roles[i].array;
		return roles[i].role;
	}
	return NULL;
}

static const char *primary_role(const char *driver)
{
	if (driver && strcmp(driver, "blkdebug") == 0)
		return "image";
	if (driver && strcmp(driver, "blkverify") == 0)
		return "raw";
	if (driver && strcmp(driver, "quorum") == 0)
		return NULL;
	return "file";
}

size_t kl_bd_argno(const struct kl_bdgraph *g, const struct kl_bdnode *n)
{
	return g->args[n->arg]->argi + 1;
}

static struct kl_bdnode *new_node(struct kl_bdgraph *g, size_t arg, struct kl_bdnode *parent)
{
	struct kl_bdnode *n = xcalloc(1, sizeof *n);
	n->index = g->nnodes;
	n->arg = arg;
	n->parent = parent;
	if (g->nnodes == g->capnodes) {
		g->capnodes = g->capnodes ? g->capnodes * 2 : 64;
		g->nodes = xrealloc(g->nodes, g->capnodes * sizeof *g->nodes);
	}
	g->nodes[g->nnodes++] = n;
	return n;
}

static void add_ref(struct kl_bdnode *n, const char *role, const char *name, struct kl_bdnode *child)
{
	if (n->nrefs == n->caprefs) {
		n->caprefs = n->caprefs ? n->caprefs * 2 : 4;
		n->refs = xrealloc(n->refs, n->caprefs * sizeof *n->refs);
	}
	n->refs[n->nrefs++] = (struct kl_bdref){ role, name, child };
	if (child)
		child->nparents++;
}

/* QEMU's driver names: letters, digits and "_+-.". */
static bool valid_driver(const char *d)
{
	if (!*d)
		return false;
	for (; *d; d++)
		if (!((*d >= 'a' && *d <= 'z') || (*d >= 'A' && *d <= 'Z') || (*d >= '0' && *d <= '9') ||
		      *d == '_' || *d == '+' || *d == '-' || *d == '.'))
			return false;
	return true;
}

static int register_name(struct kl_bdgraph *g, struct kl_bdnode *n, struct kl_error *err)
{
	if (!n->driver)
		return kl_error_fail(err, "-blockdev argument %zu: node without a driver", kl_bd_argno(g, n));
	if (!valid_driver(n->driver))
		return kl_error_fail(err, "-blockdev argument %zu: invalid driver '%.64s'", kl_bd_argno(g, n), n->driver);
	if (!n->name)
		return 0;
	if (n->name[0] == '\0')
		return kl_error_fail(err, "-blockdev argument %zu: empty node name", kl_bd_argno(g, n));
	struct kl_bdnode *old = kl_names_put(&g->names, n->name, n);
	if (old)
		return kl_error_fail(err, "-blockdev argument %zu: duplicate node name '%s' (first in argument %zu)",
				     kl_bd_argno(g, n), n->name, kl_bd_argno(g, old));
	return 0;
}

static int build_json(struct kl_bdgraph *g, size_t a, const struct kl_jvalue *obj, struct kl_bdnode *parent,
		      struct kl_bdnode **out, struct kl_error *err);

static int json_child(struct kl_bdgraph *g, size_t a, struct kl_bdnode *n, const char *role,
		      const struct kl_jvalue *v, struct kl_error *err)
{
	switch (v->type) {
	case KL_J_STRING:
		add_ref(n, role, v->str, NULL);
		return 0;
	case KL_J_OBJECT: {
		struct kl_bdnode *child;
		if (build_json(g, a, v, n, &child, err) < 0)
			return -1;
		add_ref(n, role, NULL, child);
		return 0;
	}
	case KL_J_NULL:
		return 0;
	default:
		return kl_error_fail(err, "-blockdev argument %zu: '%s' must be a node name or an object",
				     kl_bd_argno(g, n), role);
	}
}

static int build_json(struct kl_bdgraph *g, size_t a, const struct kl_jvalue *obj, struct kl_bdnode *parent,
		      struct kl_bdnode **out, struct kl_error *err)
{
	struct kl_bdnode *n = new_node(g, a, parent);
	n->src.obj = obj;
	*out = n;
	const struct kl_jvalue *v = kl_jdoc_get(obj, "driver");
	if (v && v->type != KL_J_STRING)
		return kl_error_fail(err, "-blockdev argument %zu: 'driver' must be a string", kl_bd_argno(g, n));
	n->driver = v ? v->str : NULL;
	v = kl_jdoc_get(obj, "node-name");
	if (v && v->type != KL_J_STRING)
		return kl_error_fail(err, "-blockdev argument %zu: 'node-name' must be a string", kl_bd_argno(g, n));
	n->name = v ? v->str : NULL;
	if (register_name(g, n, err) < 0)
		return -1;
	for (size_t i = 0; i < obj->n; i++) {
		const struct kl_jmember *m = &obj->members[i];
		bool array = false;
		const char *role = child_role(n->driver, m->key, strlen(m->key), &array);
		if (!role)
			continue;
		if (!array) {
			if (json_child(g, a, n, role, m->value, err) < 0)
				return -1;
			continue;
		}
		if (m->value->type != KL_J_ARRAY)
			return kl_error_fail(err, "-blockdev argument %zu: '%s' must be a list", kl_bd_argno(g, n), role);
		for (size_t k = 0; k < m->value->n; k++)
			if (json_child(g, a, n, role, m->value->items[k], err) < 0)
				return -1;
	}
	return 0;
}

/* key=value nodes: the argument's keys, sorted, so that a node's keys (and
 * each child's) form one contiguous range. */
struct kv_sorted {
	const char *key;
	size_t i;
};

static int cmp_sorted(const void *a, const void *b)
{
	const struct kv_sorted *x = a, *y = b;
	int c = strcmp(x->key, y->key);
	if (c)
		return c;
	return x->i < y->i ? -1 : x->i > y->i;
}

static bool starts_with(const char *s, const char *prefix, size_t n)
{
	return strncmp(s, prefix, n) == 0;
}

static size_t range_end(const struct kv_sorted *v, size_t j, size_t hi, const char *prefix, size_t plen)
{
	while (j < hi && starts_with(v[j].key, prefix, plen))
		j++;
	return j;
}

static int build_kv(struct kl_bdgraph *g, size_t a, const struct kv_sorted *v, size_t lo, size_t hi,
		    const char *prefix, struct kl_bdnode *parent, int depth, struct kl_bdnode **out,
		    struct kl_error *err)
{
	const struct kl_kv *kv = &g->args[a]->kv;
	struct kl_bdnode *n = new_node(g, a, parent);
	*out = n;
	n->prefix = xstrdup(prefix);
	n->src.kv = kv;
	n->src.prefix = n->prefix;
	n->driver = kl_optsrc_str(&n->src, "driver");
	n->name = kl_optsrc_str(&n->src, "node-name");
	if (register_name(g, n, err) < 0)
		return -1;
	size_t plen = strlen(prefix);
	size_t j = lo;
	while (j < hi) {
		const char *rest = v[j].key + plen;
		size_t flen = strcspn(rest, ".");
		bool array = false;
		const char *role = child_role(n->driver, rest, flen, &array);
		if (!role) {
			j++;
			continue;
		}
		size_t clen = plen + flen;           /* the child's key: PREFIX + role [+ ".N"] */
		if (array) {
			if (rest[flen] == '\0')
				return kl_error_fail(err, "-blockdev argument %zu: '%s%s' must be a list",
						     kl_bd_argno(g, n), prefix, role);
			clen += 1 + strcspn(rest + flen + 1, ".");
		}
		const char *ckey = v[j].key;
		if (ckey[clen] == '\0') {
			/* PREFIX.role=name: a reference; PREFIX.role.x= may not follow. */
			if (j + 1 < hi && starts_with(v[j + 1].key, ckey, clen) && v[j + 1].key[clen] == '.')
				return kl_error_fail(err, "-blockdev argument %zu: parameters '%.*s' and '%.*s.*' used inconsistently",
						     kl_bd_argno(g, n), (int)clen, ckey, (int)clen, ckey);
			add_ref(n, role, kl_kv_get(kv, ckey), NULL);
			j++;
			continue;
		}
		if (depth + 1 > KV_MAX_DEPTH)
			return kl_error_fail(err, "-blockdev argument %zu: nodes nested too deep", kl_bd_argno(g, n));
		char *cprefix = xstrndup(ckey, clen + 1);  /* with the '.' */
		size_t k = range_end(v, j, hi, cprefix, clen + 1);
		struct kl_bdnode *child;
		int r = build_kv(g, a, v, j, k, cprefix, n, depth + 1, &child, err);
		free(cprefix);
		if (r < 0)
			return -1;
		add_ref(n, role, NULL, child);
		j = k;
	}
	return 0;
}

/* QEMU refuses a cache flag or read-only that is not a boolean; a rewrite
 * must not replace it with a valid one (as -drive, the argument is refused). */
static int check_bools(const struct kl_bdgraph *g, size_t first, size_t argi, struct kl_error *err)
{
	static const char *const keys[] = { "cache.direct", "cache.no-flush", "read-only" };
	for (size_t i = first; i < g->nnodes; i++)
		for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
			bool v;
			if (kl_optsrc_bool(&g->nodes[i]->src, keys[k], &v) < 0)
				return kl_error_fail(err, "-blockdev argument %zu: %s%s is not a boolean", argi + 1,
						     g->nodes[i]->src.prefix ? g->nodes[i]->src.prefix : "", keys[k]);
		}
	return 0;
}

static int bd_add(struct kl_bdgraph *g, const char *text, size_t argi, struct kl_error *err);

int kl_bd_add(struct kl_bdgraph *g, const char *text, size_t argi, struct kl_error *err)
{
	size_t first = g->nnodes;
	if (bd_add(g, text, argi, err) < 0)
		return -1;
	return check_bools(g, first, argi, err);
}

static int bd_add(struct kl_bdgraph *g, const char *text, size_t argi, struct kl_error *err)
{
	struct kl_bdarg *arg = xcalloc(1, sizeof *arg);
	arg->argi = argi;
	arg->text = text;
	if (g->nargs == g->capargs) {
		g->capargs = g->capargs ? g->capargs * 2 : 16;
		g->args = xrealloc(g->args, g->capargs * sizeof *g->args);
	}
	size_t a = g->nargs;
	g->args[g->nargs++] = arg;

	if (text[0] == '{') {
		arg->json = true;
		if (kl_jdoc_parse(text, &arg->doc, err) < 0) {
			kl_error_prefix(err, "-blockdev argument %zu", argi + 1);
			return -1;
		}
		return build_json(g, a, arg->doc.root, NULL, &arg->top, err);
	}
	if (kl_kv_parse(text, KL_KV_KEYVAL, "driver", &arg->kv, err) < 0) {
		kl_error_prefix(err, "-blockdev argument %zu", argi + 1);
		return -1;
	}
	size_t n = 0;
	struct kv_sorted *v = xmalloc((arg->kv.n ? arg->kv.n : 1) * sizeof *v);
	for (size_t i = 0; i < arg->kv.n; i++)
		v[n++] = (struct kv_sorted){ arg->kv.v[i].key, i };
	qsort(v, n, sizeof *v, cmp_sorted);
	/* A repeated key: the last one counts (as in QEMU). */
	size_t w = 0;
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && strcmp(v[i].key, v[i + 1].key) == 0)
			continue;
		v[w++] = v[i];
	}
	int r = build_kv(g, a, v, 0, w, "", NULL, 0, &arg->top, err);
	free(v);
	return r;
}

struct kl_bdnode *kl_bd_lookup(const struct kl_bdgraph *g, const char *name)
{
	return kl_names_get(&g->names, name);
}

int kl_bd_resolve(struct kl_bdgraph *g, struct kl_error *err)
{
	for (size_t i = 0; i < g->nnodes; i++) {
		struct kl_bdnode *n = g->nodes[i];
		for (size_t k = 0; k < n->nrefs; k++) {
			struct kl_bdref *r = &n->refs[k];
			if (!r->name)
				continue;
			struct kl_bdnode *t = kl_bd_lookup(g, r->name);
			if (!t)
				return kl_error_fail(err, "-blockdev argument %zu: unknown node '%s' referenced as %s",
						     kl_bd_argno(g, n), r->name, r->role);
			r->node = t;
			t->nparents++;
		}
	}
	/* Cycles: iterative depth-first search (chains can be long). */
	unsigned char *color = xcalloc(g->nnodes ? g->nnodes : 1, 1);
	struct frame { struct kl_bdnode *n; size_t next; } *stack = xmalloc((g->nnodes + 1) * sizeof *stack);
	int rc = 0;
	for (size_t i = 0; i < g->nnodes && rc == 0; i++) {
		if (color[i])
			continue;
		size_t sp = 0;
		stack[sp++] = (struct frame){ g->nodes[i], 0 };
		color[i] = 1;
		while (sp && rc == 0) {
			struct frame *f = &stack[sp - 1];
			if (f->next == f->n->nrefs) {
				color[f->n->index] = 2;
				sp--;
				continue;
			}
			struct kl_bdref *r = &f->n->refs[f->next++];
			struct kl_bdnode *c = r->node;
			if (color[c->index] == 1) {
				rc = kl_error_fail(err, "-blockdev argument %zu: node '%s' is part of a reference cycle (via %s '%s')",
						   kl_bd_argno(g, f->n), f->n->name ? f->n->name : "(unnamed)", r->role,
						   c->name ? c->name : "(unnamed)");
			} else if (color[c->index] == 0) {
				color[c->index] = 1;
				stack[sp++] = (struct frame){ c, 0 };
			}
		}
	}
	free(stack);
	free(color);
	return rc;
}

void kl_bd_free(struct kl_bdgraph *g)
{
	for (size_t i = 0; i < g->nnodes; i++) {
		free(g->nodes[i]->refs);
		free(g->nodes[i]->prefix);
		free(g->nodes[i]);
	}
	for (size_t i = 0; i < g->nargs; i++) {
		if (g->args[i]->json)
			kl_jdoc_free(&g->args[i]->doc);
		else
			kl_kv_free(&g->args[i]->kv);
		free(g->args[i]);
	}
	free(g->nodes);
	free(g->args);
	kl_names_free(&g->names);
	memset(g, 0, sizeof *g);
}

/* ---- facts ---- */

static const struct kl_bdnode *primary_child(const struct kl_bdnode *n)
{
	const char *role = primary_role(n->driver);
	if (!role)
		return NULL;
	for (size_t i = 0; i < n->nrefs; i++)
		if (strcmp(n->refs[i].role, role) == 0 && n->refs[i].node)
			return n->refs[i].node;
	return NULL;
}

/* A cache flag as the node gets it: its own, else inherited from the node
 * it is inline in (QEMU's bdrv_inherited_options), else the default. */
static bool effective_bool(const struct kl_bdnode *n, const char *path, bool def)
{
	for (; n; n = n->parent) {
		bool v;
		int r = kl_optsrc_bool(&n->src, path, &v);
		if (r == 1)
			return v;
		if (r < 0)
			return def;
	}
	return def;
}

static bool has_cache_option(const struct kl_bdnode *n)
{
	return kl_optsrc_has(&n->src, "cache.direct") || kl_optsrc_has(&n->src, "cache.no-flush");
}

int kl_bd_facts(const struct kl_bdgraph *g, const struct kl_bdnode *top, struct kl_bdfacts *f,
		struct kl_error *err)
{
	memset(f, 0, sizeof *f);
	const struct kl_bdnode *n = top, *c;
	for (size_t steps = 0; (c = primary_child(n)) && steps <= g->nnodes; steps++) {
		if (!f->format && !kl_driver_is_filter(n->driver))
			f->format = n->driver;
		if (has_cache_option(n))
			f->cache_explicit = true;
		n = c;
	}
	if (has_cache_option(n))
		f->cache_explicit = true;
	f->protocol = n;
	f->driver = n->driver;
	f->path = kl_bd_target(n->driver, &n->src);
	const char *aio = kl_optsrc_str(&n->src, "aio");
	if ((aio && kl_qemu_aio_parse(aio, &f->aio) < 0) || (!aio && kl_optsrc_has(&n->src, "aio"))) {
		free(f->path);
		f->path = NULL;
		/* Not a string (null, an object): QEMU refuses it; a rewrite must not replace it. */
		return kl_error_fail(err, "-blockdev argument %zu: unknown aio '%s'", kl_bd_argno(g, n),
				     aio ? aio : "(not a string)");
	}
	f->direct = effective_bool(n, "cache.direct", false);
	f->no_flush = effective_bool(n, "cache.no-flush", false);
	bool ro;
	f->readonly = kl_optsrc_bool(&top->src, "read-only", &ro) == 1 && ro;
	return 0;
}

/* ---- edits ---- */

void kl_bd_edits_init(struct kl_bdedits *e, const struct kl_bdgraph *g)
{
	memset(e, 0, sizeof *e);
	e->g = g;
	size_t na = g->nargs ? g->nargs : 1, nn = g->nnodes ? g->nnodes : 1;
	e->je = xcalloc(na, sizeof *e->je);
	e->kv = xcalloc(na, sizeof *e->kv);
	e->open = xcalloc(na, sizeof *e->open);
	e->claims = xcalloc(nn, sizeof *e->claims);
	e->stack = xmalloc(nn * sizeof *e->stack);
	e->seen = xcalloc(nn, sizeof *e->seen);
}

void kl_bd_edits_free(struct kl_bdedits *e)
{
	if (!e->g)
		return;
	for (size_t a = 0; a < e->g->nargs; a++) {
		if (!e->open[a])
			continue;
		if (e->g->args[a]->json)
			kl_jedit_free(&e->je[a]);
		else
			kl_kv_free(&e->kv[a]);
	}
	free(e->je);
	free(e->kv);
	free(e->open);
	free(e->claims);
	free(e->stack);
	free(e->seen);
	memset(e, 0, sizeof *e);
}

static void open_arg(struct kl_bdedits *e, size_t a)
{
	if (e->open[a])
		return;
	const struct kl_bdarg *arg = e->g->args[a];
	if (arg->json)
		kl_jedit_init(&e->je[a], &arg->doc);
	else
		kl_kv_copy(&e->kv[a], &arg->kv);
	e->open[a] = true;
}

/* key=value: the index of PREFIX+key, -1 if absent. */
static ssize_t kv_index(const struct kl_kv *kv, const char *prefix, const char *key)
{
	struct strbuf b = STRBUF_INIT;
	strbuf_append(&b, prefix);
	strbuf_append(&b, key);
	ssize_t i = kl_kv_find(kv, strbuf_str(&b));
	strbuf_free(&b);
	return i;
}

static ssize_t kv_last_with_prefix(const struct kl_kv *kv, const char *prefix)
{
	size_t n = strlen(prefix);
	for (size_t i = kv->n; i-- > 0;)
		if (!kv->v[i].removed && strncmp(kv->v[i].key, prefix, n) == 0)
			return (ssize_t)i;
	return -1;
}

static bool follows_node_name(const char *key)
{
	return strcmp(key, "read-only") == 0 || strcmp(key, "discard") == 0 || strcmp(key, "detect-zeroes") == 0;
}

/* Where a new cache key goes: after the node's other cache keys, else after
 * node-name (and the read-only, discard, detect-zeroes right behind it),
 * aio, driver; else after the node's last key. */
static ssize_t kv_cache_anchor(const struct kl_kv *kv, const char *prefix)
{
	char *cp = xasprintf("%scache.", prefix);
	ssize_t i = kv_last_with_prefix(kv, cp);
	free(cp);
	if (i >= 0)
		return i;
	if ((i = kv_index(kv, prefix, "node-name")) >= 0) {
		size_t plen = strlen(prefix);
		while ((size_t)i + 1 < kv->n && !kv->v[i + 1].removed &&
		       strncmp(kv->v[i + 1].key, prefix, plen) == 0 && follows_node_name(kv->v[i + 1].key + plen))
			i++;
		return i;
	}
	if ((i = kv_index(kv, prefix, "aio")) >= 0)
		return i;
	if ((i = kv_index(kv, prefix, "driver")) >= 0)
		return i;
	return kv_last_with_prefix(kv, prefix);
}

static ssize_t kv_aio_anchor(const struct kl_kv *kv, const char *prefix)
{
	ssize_t i;
	if ((i = kv_index(kv, prefix, "filename")) >= 0)
		return i;
	if ((i = kv_index(kv, prefix, "driver")) >= 0)
		return i;
	return kv_last_with_prefix(kv, prefix);
}

static void kv_set_bool(struct kl_kv *kv, const char *prefix, const char *key, bool value, ssize_t anchor)
{
	char *k = xasprintf("%s%s", prefix, key);
	const char *old = kl_kv_get(kv, k);
	bool cur;
	if (!old || kl_kv_parse_bool(old, &cur) < 0 || cur != value)
		kl_kv_set(kv, k, value ? "on" : "off", anchor);
	free(k);
}

/* libvirt's order puts "cache" after "node-name" and the "read-only",
 * "discard", "detect-zeroes" that directly follow it (format nodes:
 * node-name, read-only, discard, detect-zeroes, cache, driver, file;
 * storage nodes: driver, filename, aio, node-name, cache, auto-read-only). */
static const char *json_cache_anchor(const struct kl_jvalue *obj)
{
	for (size_t i = 0; i < obj->n; i++) {
		if (strcmp(obj->members[i].key, "node-name") != 0)
			continue;
		while (i + 1 < obj->n && follows_node_name(obj->members[i + 1].key))
			i++;
		return obj->members[i].key;
	}
	if (kl_jdoc_get(obj, "aio"))
		return "aio";
	if (kl_jdoc_get(obj, "filename"))
		return "filename";
	return "driver";
}

static int set_cache(struct kl_bdedits *e, const struct kl_bdnode *n, struct kl_cache_flags fl, struct kl_error *err)
{
	const char *d = fl.direct ? "true" : "false", *nf = fl.no_flush ? "true" : "false";
	if (n->src.obj) {
		struct kl_jedit *je = &e->je[n->arg];
		const struct kl_jvalue *c = kl_jdoc_get(n->src.obj, "cache");
		if (c) {
			if (c->type != KL_J_OBJECT)
				return kl_error_fail(err, "-blockdev argument %zu: 'cache' is not an object",
						     kl_bd_argno(e->g, n));
			static const char *const after_direct[] = { "direct", NULL };
			kl_jedit_set(je, c, "direct", d, NULL, true);
			kl_jedit_set(je, c, "no-flush", nf, after_direct, false);
			return 0;
		}
		char *text = xasprintf("{\"direct\":%s,\"no-flush\":%s}", d, nf);
		const char *after[] = { json_cache_anchor(n->src.obj), NULL };
		kl_jedit_set(je, n->src.obj, "cache", text, after, false);
		free(text);
		return 0;
	}
	struct kl_kv *kv = &e->kv[n->arg];
	kv_set_bool(kv, n->prefix, "cache.direct", fl.direct, kv_cache_anchor(kv, n->prefix));
	kv_set_bool(kv, n->prefix, "cache.no-flush", fl.no_flush, kv_cache_anchor(kv, n->prefix));
	return 0;
}

static void set_aio(struct kl_bdedits *e, const struct kl_bdnode *n, enum kl_aio aio)
{
	if (n->src.obj) {
		static const char *const after[] = { "filename", "driver", NULL };
		char *text = xasprintf("\"%s\"", kl_aio_name(aio));
		kl_jedit_set(&e->je[n->arg], n->src.obj, "aio", text, after, false);
		free(text);
		return;
	}
	struct kl_kv *kv = &e->kv[n->arg];
	char *k = xasprintf("%saio", n->prefix);
	kl_kv_set(kv, k, kl_aio_name(aio), kv_aio_anchor(kv, n->prefix));
	free(k);
}

int kl_bd_edit(struct kl_bdedits *e, const struct kl_bdnode *top, const char *owner, enum kl_aio aio,
	       enum kl_cache cache, struct kl_error *err)
{
	const struct kl_bdgraph *g = e->g;
	if (aio == KL_AIO_UNSET && cache == KL_CACHE_UNSET)
		return 0;
	struct kl_cache_flags fl = kl_cache_flags(cache);
	/* Every node under top: the file chain, backing chains, other children. */
	e->epoch++;
	size_t sp = 0;
	e->stack[sp++] = top->index;
	e->seen[top->index] = e->epoch;
	while (sp) {
		const struct kl_bdnode *n = g->nodes[e->stack[--sp]];
		for (size_t k = 0; k < n->nrefs; k++) {
			const struct kl_bdnode *c = n->refs[k].node;
			if (c && e->seen[c->index] != e->epoch) {
				e->seen[c->index] = e->epoch;
				e->stack[sp++] = c->index;
			}
		}
		struct kl_bdclaim *cl = &e->claims[n->index];
		if (cl->owner) {
			if (cl->aio != aio || cl->cache != cache)
				return kl_error_fail(err, "-blockdev argument %zu: node '%s' is shared by disks '%s' and '%s', which need different settings",
						     kl_bd_argno(g, n), n->name ? n->name : "(unnamed)", cl->owner, owner);
			continue;  /* already edited for another disk, the same way */
		}
		cl->owner = owner;
		cl->aio = aio;
		cl->cache = cache;

		bool aio_here = aio != KL_AIO_UNSET && kl_driver_takes_aio(n->driver);
		if (kl_driver_takes_aio(n->driver)) {
			enum kl_aio final = aio_here ? aio : KL_AIO_UNSET;
			if (!aio_here) {
				const char *old = kl_optsrc_str(&n->src, "aio");
				if (old)
					kl_qemu_aio_parse(old, &final);
			}
			bool direct = cache != KL_CACHE_UNSET ? fl.direct : effective_bool(n, "cache.direct", false);
			if (final == KL_AIO_NATIVE && !direct)
				return kl_error_fail(err, "-blockdev argument %zu: refusing to write aio=native without cache.direct=on on node '%s' (disk '%s')",
						     kl_bd_argno(g, n), n->name ? n->name : "(unnamed)", owner);
		}
		open_arg(e, n->arg);
		/* aio first: both may land after "filename", and libvirt writes
		 * aio before cache. */
		if (aio_here)
			set_aio(e, n, aio);
		if (cache != KL_CACHE_UNSET && set_cache(e, n, fl, err) < 0)
			return -1;
	}
	return 0;
}

int kl_bd_edited_text(const struct kl_bdedits *e, size_t a, char **out, struct kl_error *err)
{
	*out = NULL;
	if (!e->open[a])
		return 0;
	if (e->g->args[a]->json) {
		if (e->je[a].n == 0)
			return 0;
		return kl_jedit_apply(&e->je[a], out, err);
	}
	if (e->kv[a].edited)
		*out = kl_kv_format(&e->kv[a]);
	return 0;
}
