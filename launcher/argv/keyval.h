/* SPDX-License-Identifier: GPL-2.0-or-later */
/* QEMU's key=value option syntax, parsed so that it serialises back byte for
 * byte and can be edited in place.
 *
 * Two dialects share the grammar "param[,param]..." where a value runs to
 * the next single ',' and ",," stands for a literal comma:
 *   KL_KV_QEMUOPTS  QemuOpts (-drive, -device, -name, -add-fd, -global):
 *                   a parameter without '=' is a flag ("ro" = on,
 *                   "noro" = off), or the implied first key's value.
 *   KL_KV_KEYVAL    util/keyval.c (-blockdev, -machine): every parameter
 *                   needs '=' except an implied first one; keys are dotted
 *                   paths with non-empty fragments.
 * In both, a later repetition of a key wins, and one trailing ',' is allowed.
 * Untouched parameters keep their exact original text (key spelling,
 * escaping, flag form). */
#ifndef KL_LAUNCHER_KEYVAL_H
#define KL_LAUNCHER_KEYVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "common/error.h"
#include "common/strbuf.h"

enum kl_kv_mode {
	KL_KV_QEMUOPTS,
	KL_KV_KEYVAL,
};

struct kl_kv_entry {
	char *key;          /* the key (the implied key's name when implied; flag name without "no") */
	char *value;        /* decoded value (",," -> ","); "on"/"off" for a flag */
	size_t off, len;    /* the parameter's original text in src */
	char *text;         /* replacement text, NULL = the original */
	bool implied;       /* first parameter given without "key=" */
	bool flag;          /* QemuOpts "name" / "noname" */
	bool removed;
};

struct kl_kv {
	const char *src;    /* the parsed string (borrowed) */
	struct kl_kv_entry *v;
	size_t n, cap;
	bool trailing_comma;
	bool edited;        /* some entry was changed, added or removed */
};

#define KL_KV_INIT { NULL, NULL, 0, 0, false, false }

/* Parse s (borrowed: it must outlive kv).  implied_key may be NULL.  On
 * error kv is left empty and err says what and where. */
int kl_kv_parse(const char *s, enum kl_kv_mode mode, const char *implied_key, struct kl_kv *kv,
		struct kl_error *err);
void kl_kv_free(struct kl_kv *kv);
/* A deep copy (for editing a const model's argument). */
void kl_kv_copy(struct kl_kv *dst, const struct kl_kv *src);

/* Index of the last live entry with this key, -1 if none. */
ssize_t kl_kv_find(const struct kl_kv *kv, const char *key);
/* Its value, NULL if absent. */
const char *kl_kv_get(const struct kl_kv *kv, const char *key);

/* Give key the value: the last entry with that key is changed in place
 * (keeping the key's spelling; nothing happens when the decoded value is
 * already equal); a missing key is inserted after entry index `after`
 * (-1: appended).  Returns the entry's index. */
size_t kl_kv_set(struct kl_kv *kv, const char *key, const char *value, ssize_t after);
/* Remove every entry with this key.  Returns how many were removed. */
size_t kl_kv_remove(struct kl_kv *kv, const char *key);

/* The text: the original string when nothing was edited. */
char *kl_kv_format(const struct kl_kv *kv);

/* Append value with ',' doubled. */
void kl_kv_escape(struct strbuf *b, const char *value);

/* QEMU's boolean spellings (qapi_bool_parse): on/yes/true/y, off/no/false/n.
 * Returns -1 for anything else. */
int kl_kv_parse_bool(const char *s, bool *out);

#endif
