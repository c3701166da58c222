/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The -blockdev node graph, and what kvm-launch knows about QEMU block
 * drivers.
 *
 * Each -blockdev (JSON `{...}` or dotted key=value) gives a node, and inline
 * children (a nested object, or dotted keys "file.driver=...") give more.
 * Children are referenced by role: "file" and "backing" for every driver,
 * and the driver-specific ones ("data-file" of qcow2, "image" of blkdebug,
 * "children" of quorum...), either by node name or inline.  Resolution
 * fails on unknown references, duplicate node names and cycles.
 *
 * A top node is one no other node references; following the primary child
 * ("file") down from it reaches the protocol node.  Edits put "cache" on
 * every node reachable from a top (its file chain and backing chain, as
 * libvirt writes them) and "aio" only on protocol nodes whose driver takes
 * it (file, host_device, host_cdrom). */
#ifndef KL_LAUNCHER_BLOCKDEV_H
#define KL_LAUNCHER_BLOCKDEV_H

#include <stdbool.h>
#include <stddef.h>
#include "common/error.h"
#include "policy/types.h"
#include "launcher/argv/keyval.h"
#include "launcher/argv/rewrite.h"

/* ---- Block driver knowledge (shared with -drive) ---- */

/* file, host_device, host_cdrom: the drivers with an "aio" option. */
bool kl_driver_takes_aio(const char *driver);
/* nbd, rbd, iscsi, gluster, ssh, nfs, http(s), ftp(s)... */
bool kl_driver_is_network(const char *driver);
/* Drivers that open no child: the bottom of a chain. */
bool kl_driver_is_protocol(const char *driver);
/* Filters between a format and its protocol (throttle, copy-on-read...). */
bool kl_driver_is_filter(const char *driver);
/* The driver a "PREFIX:" filename selects (nbd: -> nbd, gluster+tcp: ->
 * gluster, file: -> file); NULL if the prefix is unknown. */
const char *kl_driver_for_prefix(const char *prefix, size_t len);

/* QEMU's spellings: aio threads/native/io_uring; cache none/off/writeback/
 * writethrough/directsync/unsafe.  Return -1 for anything else. */
int kl_qemu_aio_parse(const char *s, enum kl_aio *out);
int kl_qemu_cache_parse(const char *s, enum kl_cache *out);

/* Where a node's options live: a JSON object, or the keys under prefix in a
 * key=value argument. */
struct kl_optsrc {
	const struct kl_jvalue *obj;   /* JSON; NULL for key=value */
	const struct kl_kv *kv;
	const char *prefix;            /* key=value: "" or "file." ... */
};

/* A scalar at a dotted path ("server.host", "server.0.port"): a string, or
 * a number's text; NULL otherwise. */
const char *kl_optsrc_str(const struct kl_optsrc *s, const char *path);
/* 1 and *out set; 0 absent; -1 present but not a boolean. */
int kl_optsrc_bool(const struct kl_optsrc *s, const char *path, bool *out);
bool kl_optsrc_has(const struct kl_optsrc *s, const char *path);
/* A readable target for a protocol node: the file name, or for network
 * drivers "nbd://host:port/export", "rbd:pool/image", "iscsi://portal/iqn/lun",
 * "gluster://host/volume/path", "ssh://user@host/path", "nfs://host/path",
 * the URL for curl.  NULL if nothing fits.  Caller frees. */
char *kl_bd_target(const char *driver, const struct kl_optsrc *s);

/* ---- A string -> pointer hash map (node names, drive ids) ---- */

struct kl_names {
	struct kl_name_slot { const char *key; void *val; } *slots;
	size_t cap, n;
};

void *kl_names_get(const struct kl_names *m, const char *key);
/* Inserts and returns NULL, or returns the value already there.  key is
 * borrowed. */
void *kl_names_put(struct kl_names *m, const char *key, void *val);
void kl_names_free(struct kl_names *m);

/* ---- The graph ---- */

struct kl_bdnode;

struct kl_bdref {
	const char *role;              /* "file", "backing", "data-file", ... */
	const char *name;              /* a reference by node name; NULL when inline */
	struct kl_bdnode *node;        /* resolved */
};

struct kl_bdnode {
	size_t index;                  /* in graph.nodes */
	size_t arg;                    /* in graph.args */
	const char *name;              /* node-name; NULL if none */
	const char *driver;            /* NULL if missing */
	struct kl_optsrc src;
	char *prefix;                  /* owned storage for src.prefix */
	struct kl_bdnode *parent;      /* the node this one is inline in */
	struct kl_bdref *refs;
	size_t nrefs, caprefs;
	size_t nparents;               /* references to this node, by name or inline */
};

struct kl_bdarg {
	size_t argi;                   /* position of the value in the QEMU arguments */
	const char *text;
	bool json;
	struct kl_jdoc doc;
	struct kl_kv kv;
	struct kl_bdnode *top;
};

struct kl_bdgraph {
	struct kl_bdarg **args;
	size_t nargs, capargs;
	struct kl_bdnode **nodes;
	size_t nnodes, capnodes;
	struct kl_names names;
};

/* Add one -blockdev.  argi is its value's index in the QEMU arguments (for
 * messages: "-blockdev argument N"). */
int kl_bd_add(struct kl_bdgraph *g, const char *arg, size_t argi, struct kl_error *err);
/* Resolve references by name; refuse unknown ones and cycles.  Call once,
 * after every kl_bd_add. */
int kl_bd_resolve(struct kl_bdgraph *g, struct kl_error *err);
void kl_bd_free(struct kl_bdgraph *g);
struct kl_bdnode *kl_bd_lookup(const struct kl_bdgraph *g, const char *name);
/* The argument number used in messages (1-based, QEMU path = 0). */
size_t kl_bd_argno(const struct kl_bdgraph *g, const struct kl_bdnode *n);

/* What the chain under a top node gives. */
struct kl_bdfacts {
	const struct kl_bdnode *protocol;
	const char *driver;            /* protocol driver */
	const char *format;            /* first non-filter node above the protocol node; NULL if none */
	char *path;                    /* owned (kl_bd_target) */
	enum kl_aio aio;               /* on the protocol node */
	bool cache_explicit;           /* a node of the file chain has cache options */
	bool direct, no_flush;         /* effective on the protocol node */
	bool readonly;                 /* read-only on the top node */
};

int kl_bd_facts(const struct kl_bdgraph *g, const struct kl_bdnode *top, struct kl_bdfacts *f,
		struct kl_error *err);

/* Edits of the -blockdev arguments for a rewrite (the graph stays const). */
struct kl_bdedits {
	const struct kl_bdgraph *g;
	struct kl_jedit *je;           /* per argument, JSON */
	struct kl_kv *kv;              /* per argument, key=value (a copy) */
	bool *open;                    /* per argument: je/kv initialised */
	struct kl_bdclaim { const char *owner; enum kl_aio aio; enum kl_cache cache; } *claims;  /* per node; owner NULL = free */
	size_t *stack;                 /* DFS scratch */
	unsigned *seen;
	unsigned epoch;
};

void kl_bd_edits_init(struct kl_bdedits *e, const struct kl_bdgraph *g);
void kl_bd_edits_free(struct kl_bdedits *e);
/* Set aio/cache (UNSET = leave) on every node under top.  owner names the
 * disk in conflict messages.  Fails when a node shared with another disk
 * would get different settings, or when a protocol node would end up with
 * aio=native without cache.direct. */
int kl_bd_edit(struct kl_bdedits *e, const struct kl_bdnode *top, const char *owner, enum kl_aio aio,
	       enum kl_cache cache, struct kl_error *err);
/* The new text of argument a (index in g->args), or *out = NULL when it is
 * unchanged. */
int kl_bd_edited_text(const struct kl_bdedits *e, size_t a, char **out, struct kl_error *err);

#endif
