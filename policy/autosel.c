/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Turning a rule's actions into concrete values: keep, the cache twins
 * (auto, direct, host) and the aio engine choice (auto, a calibration, or
 * the operator's list). */
#include "policy/policy-int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/xalloc.h"

/* The built-in order of aio=auto, best first.  io_uring leads: measured at
 * or above native on this project's reference host, with less CPU per I/O
 * (numbers in defaults.c). */
static const enum kl_aio builtin_order[KLP_MAX_ENGINES] = { KL_AIO_IO_URING, KL_AIO_NATIVE, KL_AIO_THREADS };

bool klp_io_uring_usable(const struct kl_host_facts *h)
{
	return h->io_uring_kernel == KL_TRI_YES && h->io_uring_qemu != KL_TRI_NO;
}

bool klp_io_uring_refused(const struct kl_host_facts *h)
{
	return h->io_uring_kernel == KL_TRI_NO || h->io_uring_qemu == KL_TRI_NO;
}

bool klp_libaio_ok(const struct kl_host_facts *h)
{
	return h->libaio != KL_TRI_NO && h->libaio_headroom != KL_TRI_NO;
}

bool klp_cache_direct(enum kl_cache c)
{
	return kl_cache_flags(c).direct;
}

/* Same guest-visible write cache, with O_DIRECT (unsafe drops no-flush). */
enum kl_cache klp_cache_direct_twin(enum kl_cache given)
{
	return kl_cache_flags(given).writeback ? KL_CACHE_NONE : KL_CACHE_DIRECTSYNC;
}

/* Same guest-visible write cache, through the host page cache. */
enum kl_cache klp_cache_host_twin(enum kl_cache given)
{
	return kl_cache_flags(given).writeback ? KL_CACHE_WRITEBACK : KL_CACHE_WRITETHROUGH;
}

const char *klp_cache_words(enum kl_cache c)
{
	return c == KL_CACHE_UNSET ? "writeback (QEMU's default)" : kl_cache_name(c);
}

const char *klp_aio_words(enum kl_aio a)
{
	return a == KL_AIO_UNSET ? "threads (QEMU's default)" : kl_aio_name(a);
}

/* Can this engine run this disk?  If not, *why says so. */
static bool engine_fits(const struct klp_ctx *c, enum kl_aio e, char *why, size_t n)
{
	const struct kl_host_facts *h = c->host;
	switch (e) {
	case KL_AIO_IO_URING:
		if (klp_io_uring_usable(h))
			return true;
		snprintf(why, n, "io_uring is not usable here (%s)",
			 h->io_uring_kernel == KL_TRI_NO ? "the kernel refuses it"
			 : h->io_uring_qemu == KL_TRI_NO ? "QEMU is built without it"
			 : "the kernel's support is unknown");
		return false;
	case KL_AIO_NATIVE:
		if (!klp_cache_direct(c->cache))
			snprintf(why, n, "native needs O_DIRECT, which cache=%s does not use", klp_cache_words(c->cache));
		else if (c->facts->odirect == KL_TRI_NO)
			snprintf(why, n, "native needs O_DIRECT, which the storage refuses");
		else if (c->given->readonly || c->given->cdrom)
			snprintf(why, n, "read-only media do not get native");
		else if (h->libaio == KL_TRI_NO)
			snprintf(why, n, "libaio is not usable on this host");
		else if (h->libaio_headroom == KL_TRI_NO)
			snprintf(why, n, "fs.aio-nr (%ld) is too close to fs.aio-max-nr (%ld) for another libaio context",
				 h->aio_nr, h->aio_max_nr);
		else
			return true;
		return false;
	case KL_AIO_THREADS:
		return true;
	default:
		snprintf(why, n, "%s is not an engine", kl_aio_name(e));
		return false;
	}
}

static bool in_list(const enum kl_aio *v, size_t n, enum kl_aio e)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == e)
			return true;
	return false;
}

static void list_words(const enum kl_aio *v, size_t n, char *buf, size_t size)
{
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(buf);
		snprintf(buf + len, size - len, "%s%s", i ? ", " : "", kl_aio_name(v[i]));
	}
}

/* aio=auto or a list: the first engine that fits; a calibration of this
 * storage reorders plain auto.  *note explains the choice (malloc'd). */
static enum kl_aio choose_engine(struct klp_ctx *c, char **note)
{
	const struct klp_rule *r = c->rule;
	const enum kl_aio *order = r->aio_list_n ? r->aio_list : builtin_order;
	size_t n = r->aio_list_n ? r->aio_list_n : KLP_MAX_ENGINES;
	char skipped[512] = "", why[256], what[64];

	if (r->aio_list_n)
		list_words(order, n, what, sizeof what);
	else
		snprintf(what, sizeof what, "auto");

	/* A calibration measured this storage: trust it over the built-in order. */
	const struct kl_disk_facts *f = c->facts;
	if (!r->aio_list_n && f->aio_ranking[0] != KL_AIO_UNSET) {
		for (size_t i = 0; i < sizeof f->aio_ranking / sizeof *f->aio_ranking; i++) {
			enum kl_aio e = f->aio_ranking[i];
			if (e == KL_AIO_UNSET)
				break;
			if (!in_list(order, n, e))
				continue;
			if (engine_fits(c, e, why, sizeof why)) {
				const char *cal = f->calibration[0] ? f->calibration : "(unnamed)";
				snprintf(c->out->calibration, sizeof c->out->calibration, "%s", cal);
				if (skipped[0])
					*note = xasprintf("aio=%s: the next engine that fits in calibration \"%s\" of "
							  "this storage: %s", kl_aio_name(e), cal, skipped);
				else
					*note = xasprintf("aio=%s: calibration \"%s\" measured it fastest on this storage",
							  kl_aio_name(e), cal);
				return e;
			}
			size_t len = strlen(skipped);
			snprintf(skipped + len, sizeof skipped - len, "%s%s", len ? "; " : "", why);
		}
		skipped[0] = '\0';
	}

	for (size_t i = 0; i < n; i++) {
		if (engine_fits(c, order[i], why, sizeof why)) {
			const char *e = kl_aio_name(order[i]);
			if (r->aio_list_n)
				*note = skipped[0] ? xasprintf("aio=%s: next in the rule's list %s: %s", e, what, skipped)
						   : xasprintf("aio=%s: first in the rule's list %s", e, what);
			else
				*note = skipped[0] ? xasprintf("aio=%s: next in the built-in order io_uring, native, threads: %s",
							       e, skipped)
						   : xasprintf("aio=%s: first in the built-in order io_uring, native, threads", e);
			return order[i];
		}
		size_t len = strlen(skipped);
		snprintf(skipped + len, sizeof skipped - len, "%s%s", len ? "; " : "", why);
	}
	/* A list without threads, none of which fits: the hard rules fall back. */
	*note = xasprintf("aio=%s: no engine in the list %s fits: %s", kl_aio_name(order[0]), what, skipped);
	return order[0];
}

static char *user_reason(const struct klp_ctx *c)
{
	const struct klp_rule *r = c->rule;
	struct strbuf b = STRBUF_INIT;
	strbuf_appendf(&b, "rule \"%s\" matched:", r->name + strlen("user:"));
	if (r->cache == KL_CACHE_UNSET || r->cache == KL_CACHE_KEEP)
		strbuf_append(&b, " cache left as given");
	else if (r->cache == KL_CACHE_AUTO)
		strbuf_appendf(&b, " cache=%s (%s)",
			       r->twin == KLP_TWIN_DIRECT ? "direct" : r->twin == KLP_TWIN_HOST ? "host" : "auto",
			       klp_cache_words(c->cache));
	else
		strbuf_appendf(&b, " cache=%s", kl_cache_name(r->cache));
	if (r->aio == KL_AIO_UNSET || r->aio == KL_AIO_KEEP)
		strbuf_append(&b, ", aio left as given");
	else if (r->aio != KL_AIO_AUTO)
		strbuf_appendf(&b, ", aio=%s", kl_aio_name(r->aio));
	if (r->has_throttle)
		strbuf_append(&b, ", I/O limits applied by the agent once QEMU runs");
	return strbuf_steal(&b);
}

static char *nova_reason(const struct klp_ctx *c)
{
	const struct klp_rule *r = c->rule;
	const char *what = !strcmp(r->name, "nova:file") ? "image files"
			   : !strcmp(r->name, "nova:block") ? "host block devices" : "network disks";
	if (r->cache == KL_CACHE_KEEP)
		return xasprintf("nova disk_cachemodes %s: cache left as given for %s", r->nova_setting, what);
	return xasprintf("nova disk_cachemodes %s: cache=%s for %s", r->nova_setting, kl_cache_name(r->cache), what);
}

void klp_resolve_actions(struct klp_ctx *c)
{
	const struct klp_rule *r = c->rule;
	char *note = NULL;

	switch (r->cache) {
	case KL_CACHE_UNSET:
	case KL_CACHE_KEEP:
		c->cache = c->given_cache;
		break;
	case KL_CACHE_AUTO:
		if (r->twin == KLP_TWIN_HOST || (r->twin != KLP_TWIN_DIRECT && c->facts->odirect == KL_TRI_NO))
			c->cache = klp_cache_host_twin(c->given_cache);
		else
			c->cache = klp_cache_direct_twin(c->given_cache);
		break;
	default:
		c->cache = r->cache;
		break;
	}

	switch (r->aio) {
	case KL_AIO_UNSET:
	case KL_AIO_KEEP:
		c->aio = c->given_aio;
		break;
	case KL_AIO_AUTO:
		c->aio = c->network ? KL_AIO_UNSET : choose_engine(c, &note);
		break;
	default:
		c->aio = r->aio;
		break;
	}

	char *why = r->origin == KLP_BUILTIN ? klp_default_reason(r, c)
		    : r->origin == KLP_NOVA ? nova_reason(c) : user_reason(c);
	strvec_push(&c->out->reasons, why);
	if (note)
		strvec_push(&c->out->reasons, note);
}
