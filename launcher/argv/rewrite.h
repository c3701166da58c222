/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Text-preserving editing of JSON option arguments (-blockdev, -device).
 *
 * A JSON argument is parsed into a tree that remembers where every value
 * sits in the original text.  Edits are recorded as patches against that
 * text (replace a value, insert a member) and applied at the end, so every
 * byte we did not mean to change stays as it was: key order, number
 * spelling, string escapes, whitespace.  (Re-serialising with json-c would
 * rewrite "-0", clamp big integers, unescape "\u00e9" and "\/", and silently
 * merge duplicate keys: see the report in tests/unit/test-model.c.)
 *
 * The parser follows QEMU's JSON dialect closely enough to refuse what QEMU
 * refuses: duplicate keys, "\u0000", control characters in strings,
 * trailing garbage; it accepts QEMU's 'single-quoted' strings.  Nesting is
 * capped at KL_JSON_MAX_DEPTH. */
#ifndef KL_LAUNCHER_REWRITE_H
#define KL_LAUNCHER_REWRITE_H

#include <stdbool.h>
#include <stddef.h>
#include "common/error.h"

#define KL_JSON_MAX_DEPTH 64

enum kl_jtype { KL_J_OBJECT, KL_J_ARRAY, KL_J_STRING, KL_J_NUMBER, KL_J_TRUE, KL_J_FALSE, KL_J_NULL };

struct kl_jmember;

struct kl_jvalue {
	enum kl_jtype type;
	size_t start, end;            /* [start, end) in the document text */
	char *str;                    /* KL_J_STRING: decoded, NUL-free; KL_J_NUMBER: its text */
	size_t n;                     /* members or items */
	struct kl_jmember *members;   /* KL_J_OBJECT */
	struct kl_jvalue **items;     /* KL_J_ARRAY */
};

struct kl_jmember {
	char *key;                    /* decoded */
	size_t key_start;             /* where the key's quote is */
	struct kl_jvalue *value;
};

struct kl_jarena;

struct kl_jdoc {
	const char *text;             /* borrowed */
	size_t len;
	struct kl_jvalue *root;       /* always an object */
	struct kl_jarena *arena;      /* where the tree lives */
};

/* Parse text, whose top level must be an object. */
int kl_jdoc_parse(const char *text, struct kl_jdoc *doc, struct kl_error *err);
void kl_jdoc_free(struct kl_jdoc *doc);

const struct kl_jvalue *kl_jdoc_get(const struct kl_jvalue *obj, const char *key);
/* The string value of key, NULL if absent or not a string. */
const char *kl_jdoc_get_str(const struct kl_jvalue *obj, const char *key);
/* A boolean: JSON true/false, or a string QEMU's bool parser accepts.
 * Returns 1 (*out set), 0 absent, -1 present but not a boolean. */
int kl_jdoc_get_bool(const struct kl_jvalue *obj, const char *key, bool *out);

/* Recorded edits of one document. */
struct kl_jpatch {
	size_t start, end;            /* replaced range; start == end inserts */
	char *text;
	size_t seq;                   /* insertion order, for equal positions */
};

struct kl_jedit {
	const struct kl_jdoc *doc;
	struct kl_jpatch *p;
	size_t n, cap;
};

void kl_jedit_init(struct kl_jedit *e, const struct kl_jdoc *doc);
void kl_jedit_free(struct kl_jedit *e);

/* Give member key of obj the JSON text json_value (a literal, a quoted
 * string or an object).  An existing member is replaced unless it already
 * has that value.  A missing member goes after the first member named in
 * after (NULL-terminated, may be NULL) that exists; otherwise first in the
 * object when at_start, else last.  Keys must be plain ASCII.  Returns
 * true when a patch was recorded. */
bool kl_jedit_set(struct kl_jedit *e, const struct kl_jvalue *obj, const char *key, const char *json_value,
		  const char *const *after, bool at_start);

/* The edited text (a copy of the original when nothing was recorded).
 * Fails only on overlapping patches (a bug in the caller). */
int kl_jedit_apply(const struct kl_jedit *e, char **out, struct kl_error *err);

/* Append s as a JSON string literal (for values we write). */
struct strbuf;
void kl_jdoc_quote(struct strbuf *b, const char *s);

#endif
