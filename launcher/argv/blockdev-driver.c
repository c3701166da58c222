/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What kvm-launch knows about QEMU block drivers, reading a node's options
 * (JSON or key=value) by dotted path, and the target a node names.  See
 * blockdev.h. */
#include "launcher/argv/blockdev.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/strbuf.h"
#include "common/xalloc.h"

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

