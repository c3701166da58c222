/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Edits of the -blockdev arguments: cache on every node of a disk, aio on
 * its protocol node, each argument re-serialised only when touched.  See
 * blockdev.h. */
#include "launcher/argv/blockdev-int.h"

#include <stdlib.h>
#include <string.h>
#include "common/strbuf.h"
#include "common/xalloc.h"

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
			bool direct = cache != KL_CACHE_UNSET ? fl.direct : kl_bd_effective_bool(n, "cache.direct", false);
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

