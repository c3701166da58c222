/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The -blockdev node graph: the name map, building nodes from each
 * argument, resolving references, and the facts of a top node.  See
 * blockdev.h. */
#include "launcher/argv/blockdev-int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/hash.h"
#include "common/strbuf.h"
#include "common/xalloc.h"

/* Inline key=value children nest at most this deep (JSON has its own cap). */
#define KV_MAX_DEPTH 32

/* ---- name map ---- */

void *kl_names_get(const struct kl_names *m, const char *key)
{
	if (!m->cap)
		return NULL;
	for (size_t i = kl_fnv1a(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->slots[i].key)
			return NULL;
		if (strcmp(m->slots[i].key, key) == 0)
			return m->slots[i].val;
	}
}

static void names_insert(struct kl_name_slot *slots, size_t cap, const char *key, void *val)
{
	size_t i = kl_fnv1a(key) & (cap - 1);
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
	XGROW(g->nodes, g->nnodes, g->capnodes, 64);
	g->nodes[g->nnodes++] = n;
	return n;
}

static void add_ref(struct kl_bdnode *n, const char *role, const char *name, struct kl_bdnode *child)
{
	XGROW(n->refs, n->nrefs, n->caprefs, 4);
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
	XGROW(g->args, g->nargs, g->capargs, 16);
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
bool kl_bd_effective_bool(const struct kl_bdnode *n, const char *path, bool def)
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
	f->direct = kl_bd_effective_bool(n, "cache.direct", false);
	f->no_flush = kl_bd_effective_bool(n, "cache.no-flush", false);
	bool ro;
	f->readonly = kl_optsrc_bool(&top->src, "read-only", &ro) == 1 && ro;
	return 0;
}

