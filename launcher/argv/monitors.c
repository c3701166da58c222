/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/argv/monitors.h"

#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "launcher/argv/keyval.h"
#include "launcher/argv/model.h"
#include "launcher/argv/qemu-options.h"

/* Keys a relayed socket chardev may carry: anything else (tls-creds,
 * websocket, telnet, reconnect, mux, abstract, host/port...) means a shape
 * we do not know, left alone. */
static const char *const chardev_keys[] = { "backend", "id", "fd", "path", "server", "wait", "nodelay",
					    "logfile", "logappend", NULL };
static const char *const mon_keys[] = { "chardev", "id", "mode", "pretty", NULL };

static bool only_keys(const struct kl_kv *kv, const char *const *allowed)
{
	for (size_t i = 0; i < kv->n; i++) {
		if (kv->v[i].removed)
			continue;
		bool ok = false;
		for (size_t k = 0; allowed[k]; k++)
			if (strcmp(kv->v[i].key, allowed[k]) == 0)
				ok = true;
		if (!ok)
			return false;
	}
	return true;
}

static bool kv_bool(const struct kl_kv *kv, const char *key, bool dflt, bool *bad)
{
	const char *v = kl_kv_get(kv, key);
	bool b = dflt;
	if (v && kl_kv_parse_bool(v, &b) < 0)
		*bad = true;
	return b;
}

/* The listening endpoint of a server socket: fd=N or path=P (exactly one),
 * from a -chardev's or a -qmp unix: string's options. */
static bool server_endpoint(const struct kl_kv *kv, struct kl_monitor *m)
{
	bool bad = false;
	bool server = kv_bool(kv, "server", false, &bad);
	m->wait = kv_bool(kv, "wait", true, &bad);
	kv_bool(kv, "nodelay", false, &bad);
	if (bad || !server)
		return false;
	const char *fd = kl_kv_get(kv, "fd");
	const char *path = kl_kv_get(kv, "path");
	if ((fd != NULL) == (path != NULL))
		return false;
	if (fd) {
		char *end;
		long n = strtol(fd, &end, 10);
		if (!*fd || *end || n < 0 || n > 1 << 20)
			return false;
		m->fd = (int)n;
	} else {
		if (!*path)
			return false;
		m->path = xstrdup(path);
	}
	return true;
}

struct scan {
	struct kl_kv *chardevs;   /* parsed -chardev values (empty kv when unparsable) */
	size_t *chardev_at;
	size_t nchardevs;
	struct kl_kv *mons;
	size_t *mon_at;
	size_t nmons;
};

static void push_kv(struct kl_kv **v, size_t **at, size_t *n, const char *val, const char *implied, size_t i)
{
	*v = xrealloc(*v, (*n + 1) * sizeof **v);
	*at = xrealloc(*at, (*n + 1) * sizeof **at);
	struct kl_kv kv = KL_KV_INIT;
	if (kl_kv_parse(val, KL_KV_QEMUOPTS, implied, &kv, NULL) < 0)
		kv = (struct kl_kv)KL_KV_INIT;
	(*v)[*n] = kv;
	(*at)[*n] = i;
	(*n)++;
}

static void add(struct kl_monitors *out, struct kl_monitor *m)
{
	out->v = xrealloc(out->v, (out->n + 1) * sizeof *out->v);
	out->v[out->n++] = *m;
}

/* -qmp unix:P,server=on,...: the part after "unix:" as chardev options. */
static void find_qmp(const char *val, size_t at, bool pretty, struct kl_monitors *out, size_t rank)
{
	if (strncmp(val, "unix:", 5) != 0)
		return;
	struct kl_kv kv = KL_KV_INIT;
	if (kl_kv_parse(val + 5, KL_KV_QEMUOPTS, "path", &kv, NULL) < 0)
		return;
	struct kl_monitor m = { .chardev_at = at, .qmp_option = true, .pretty = pretty, .fd = -1 };
	if (only_keys(&kv, chardev_keys) && !kl_kv_get(&kv, "id") && !kl_kv_get(&kv, "backend") &&
	    !kl_kv_get(&kv, "fd") && server_endpoint(&kv, &m)) {
		m.id = xasprintf(KL_RELAY_QMP_ID_PREFIX "%zu", rank);
		add(out, &m);
	} else {
		free(m.path);
	}
	kl_kv_free(&kv);
}

/* Pair each -mon mode=control with its socket -chardev. */
static void pair(const struct scan *s, struct kl_monitors *out)
{
	for (size_t i = 0; i < s->nmons; i++) {
		const struct kl_kv *mon = &s->mons[i];
		const char *id = kl_kv_get(mon, "chardev");
		const char *mode = kl_kv_get(mon, "mode");
		bool bad = false;
		bool pretty = kv_bool(mon, "pretty", false, &bad);
		if (!id || !mode || strcmp(mode, "control") != 0 || bad || !only_keys(mon, mon_keys))
			continue;
		if (strncmp(id, KL_MONITOR_ID_PREFIX, strlen(KL_MONITOR_ID_PREFIX)) == 0)
			continue;
		size_t users = 0, found = 0, ci = 0;
		for (size_t j = 0; j < s->nmons; j++)
			if (kl_kv_get(&s->mons[j], "chardev") && strcmp(kl_kv_get(&s->mons[j], "chardev"), id) == 0)
				users++;
		for (size_t j = 0; j < s->nchardevs; j++)
			if (kl_kv_get(&s->chardevs[j], "id") && strcmp(kl_kv_get(&s->chardevs[j], "id"), id) == 0) {
				found++;
				ci = j;
			}
		if (users != 1 || found != 1)
			continue;
		const struct kl_kv *cd = &s->chardevs[ci];
		const char *backend = kl_kv_get(cd, "backend");
		if (!backend || strcmp(backend, "socket") != 0 || !only_keys(cd, chardev_keys))
			continue;
		struct kl_monitor m = { .chardev_at = s->chardev_at[ci], .mon_at = s->mon_at[i], .pretty = pretty,
					.fd = -1 };
		if (!server_endpoint(cd, &m)) {
			free(m.path);
			continue;
		}
		m.id = xstrdup(id);
		add(out, &m);
	}
}

static void scan_free(struct scan *s)
{
	for (size_t i = 0; i < s->nchardevs; i++)
		kl_kv_free(&s->chardevs[i]);
	for (size_t i = 0; i < s->nmons; i++)
		kl_kv_free(&s->mons[i]);
	free(s->chardevs);
	free(s->chardev_at);
	free(s->mons);
	free(s->mon_at);
}

void kl_monitors_find(int argc, char *const argv[], struct kl_monitors *out)
{
	struct scan s = { 0 };
	struct kl_monitors qmps = { 0 };
	out->v = NULL;
	out->n = 0;
	for (int i = 0; i < argc; i++) {
		if (argv[i] && argv[i][0] != '-')
			continue; /* a bare image name */
		bool has_arg = false;
		const char *name = argv[i] ? kl_qemu_option(argv[i] + (argv[i][1] == '-' ? 2 : 1), &has_arg) : NULL;
		if (!name || (has_arg && (i + 1 >= argc || !argv[i + 1])))
			goto out; /* cannot walk it: touch nothing */
		if (!has_arg)
			continue;
		const char *val = argv[++i];
		if (strcmp(name, "chardev") == 0)
			push_kv(&s.chardevs, &s.chardev_at, &s.nchardevs, val, "backend", (size_t)i);
		else if (strcmp(name, "mon") == 0)
			push_kv(&s.mons, &s.mon_at, &s.nmons, val, "chardev", (size_t)i);
		else if (strcmp(name, "qmp") == 0 || strcmp(name, "qmp-pretty") == 0)
			find_qmp(val, (size_t)i, strcmp(name, "qmp-pretty") == 0, &qmps, qmps.n);
	}
	pair(&s, out);
	for (size_t i = 0; i < qmps.n; i++)
		add(out, &qmps.v[i]);
	qmps.n = 0;
out:
	kl_monitors_free(&qmps);
	scan_free(&s);
}

void kl_monitors_free(struct kl_monitors *ms)
{
	for (size_t i = 0; i < ms->n; i++) {
		free(ms->v[i].id);
		free(ms->v[i].path);
	}
	free(ms->v);
	ms->v = NULL;
	ms->n = 0;
}

/* The chardev options with the endpoint (fd= or path=, every occurrence)
 * replaced in place by fd=M. */
static char *swap_endpoint(const char *opts, const char *implied, int fd, struct kl_error *err)
{
	struct kl_kv kv = KL_KV_INIT;
	if (kl_kv_parse(opts, KL_KV_QEMUOPTS, implied, &kv, err) < 0)
		return NULL;
	ssize_t last = -1;
	for (size_t i = 0; i < kv.n; i++)
		if (strcmp(kv.v[i].key, "fd") == 0 || strcmp(kv.v[i].key, "path") == 0) {
			if (last >= 0)
				kv.v[last].removed = true;
			last = (ssize_t)i;
		}
	if (last < 0) {
		kl_kv_free(&kv);
		kl_error_set(err, "no listening endpoint in '%s'", opts);
		return NULL;
	}
	free(kv.v[last].text);
	kv.v[last].text = xasprintf("fd=%d", fd);
	kv.edited = true;
	char *s = kl_kv_format(&kv);
	kl_kv_free(&kv);
	return s;
}

int kl_monitors_rewrite(int argc, char *const argv[], const struct kl_monitors *ms, const int *new_fds,
			struct strvec *out, struct kl_error *err)
{
	struct strvec res = STRVEC_INIT;
	for (int i = 0; i < argc; i++) {
		const struct kl_monitor *m = NULL;
		int fd = -1;
		for (size_t k = 0; k < ms->n; k++)
			if (new_fds[k] >= 0 && ms->v[k].chardev_at == (size_t)i) {
				m = &ms->v[k];
				fd = new_fds[k];
			}
		if (!m) {
			strvec_push_dup(&res, argv[i]);
			continue;
		}
		char *opts = swap_endpoint(m->qmp_option ? argv[i] + 5 : argv[i], m->qmp_option ? "path" : "backend",
					   fd, err);
		if (!opts) {
			strvec_free(&res);
			return -1;
		}
		if (!m->qmp_option) {
			strvec_push(&res, opts);
			continue;
		}
		/* -qmp X -> -chardev socket,id=ID,X' -mon chardev=ID,mode=control */
		free(res.v[--res.n]); /* the "-qmp" just copied */
		strvec_push_dup(&res, "-chardev");
		strvec_pushf(&res, "socket,id=%s,%s", m->id, opts);
		strvec_push_dup(&res, "-mon");
		strvec_pushf(&res, "chardev=%s,mode=control%s", m->id, m->pretty ? ",pretty=on" : "");
		free(opts);
	}
	for (size_t i = 0; i < res.n; i++)
		strvec_push(out, res.v[i]);
	res.n = 0;
	strvec_free(&res);
	return 0;
}
