/* SPDX-License-Identifier: GPL-2.0-or-later */
/* QEMU's key=value option syntax: parse, look up, edit, serialise.  See
 * keyval.h.  The grammar follows QEMU 7.2's util/qemu-option.c
 * (get_opt_name_value) and util/keyval.c (keyval_parse_one). */
#include "launcher/argv/keyval.h"

#include <stdlib.h>
#include <string.h>
#include "common/xalloc.h"

static void push(struct kl_kv *kv, const struct kl_kv_entry *e)
{
	XGROW(kv->v, kv->n, kv->cap, 8);
	kv->v[kv->n++] = *e;
}

/* Decode a value starting at s[pos]: up to a single ',' or the end, ",," is
 * a comma.  Returns the position of the terminating ',' or NUL. */
static size_t decode_value(const char *s, size_t pos, char **out)
{
	struct strbuf b = STRBUF_INIT;
	size_t start = pos;
	for (;;) {
		size_t run = strcspn(s + pos, ",");
		if (s[pos + run] == ',' && s[pos + run + 1] == ',') {
			strbuf_append_len(&b, s + start, pos + run - start + 1);
			pos += run + 2;
			start = pos;
			continue;
		}
		pos += run;
		break;
	}
	strbuf_append_len(&b, s + start, pos - start);
	*out = strbuf_steal(&b);
	return pos;
}

static bool valid_keyval_key(const char *k)
{
	/* Dotted path: no empty fragment. */
	if (*k == '\0' || *k == '.')
		return false;
	for (const char *p = k; *p; p++)
		if (*p == '.' && (p[1] == '.' || p[1] == '\0'))
			return false;
	return true;
}

static void entry_free(struct kl_kv_entry *e)
{
	free(e->key);
	free(e->value);
	free(e->text);
}

void kl_kv_free(struct kl_kv *kv)
{
	if (!kv)
		return;
	for (size_t i = 0; i < kv->n; i++)
		entry_free(&kv->v[i]);
	free(kv->v);
	*kv = (struct kl_kv)KL_KV_INIT;
}

int kl_kv_parse(const char *s, enum kl_kv_mode mode, const char *implied_key, struct kl_kv *kv,
		struct kl_error *err)
{
	*kv = (struct kl_kv)KL_KV_INIT;
	if (!s)
		return kl_error_fail(err, "missing option value");
	kv->src = s;
	size_t len = strlen(s), pos = 0;
	bool first = true;

	while (pos < len) {
		struct kl_kv_entry e = { 0 };
		size_t start = pos;
		size_t klen = strcspn(s + pos, "=,");

		e.off = start;
		if (s[pos + klen] != '=') {
			if (first && implied_key && (mode == KL_KV_QEMUOPTS || klen > 0)) {
				e.key = xstrdup(implied_key);
				e.implied = true;
				pos = decode_value(s, pos, &e.value);
			} else if (mode == KL_KV_QEMUOPTS && klen > 0) {
				bool no = klen > 2 && strncmp(s + pos, "no", 2) == 0;
				e.key = no ? xstrndup(s + pos + 2, klen - 2) : xstrndup(s + pos, klen);
				e.value = xstrdup(no ? "off" : "on");
				e.flag = true;
				pos += klen;
			} else {
				if (klen == 0)
					kl_error_set(err, "empty parameter at offset %zu", start);
				else
					kl_error_set(err, "expected '=' after parameter '%.*s'", (int)(klen > 64 ? 64 : klen),
						     s + pos);
				kl_kv_free(kv);
				return -1;
			}
		} else {
			if (klen == 0) {
				kl_kv_free(kv);
				return kl_error_fail(err, "parameter without a name at offset %zu", start);
			}
			e.key = xstrndup(s + pos, klen);
			if (mode == KL_KV_KEYVAL && !valid_keyval_key(e.key)) {
				kl_error_set(err, "invalid parameter name '%.64s'", e.key);
				free(e.key);
				kl_kv_free(kv);
				return -1;
			}
			pos = decode_value(s, pos + klen + 1, &e.value);
		}
		e.len = pos - start;
		push(kv, &e);
		first = false;
		if (s[pos] == ',') {
			pos++;
			if (pos == len)
				kv->trailing_comma = true;
		}
	}
	return 0;
}

void kl_kv_copy(struct kl_kv *dst, const struct kl_kv *src)
{
	*dst = *src;
	dst->v = src->cap ? xcalloc(src->cap, sizeof *dst->v) : NULL;
	for (size_t i = 0; i < src->n; i++) {
		const struct kl_kv_entry *e = &src->v[i];
		dst->v[i] = *e;
		dst->v[i].key = xstrdup(e->key);
		dst->v[i].value = xstrdup(e->value);
		dst->v[i].text = e->text ? xstrdup(e->text) : NULL;
	}
}

ssize_t kl_kv_find(const struct kl_kv *kv, const char *key)
{
	for (size_t i = kv->n; i-- > 0;)
		if (!kv->v[i].removed && strcmp(kv->v[i].key, key) == 0)
			return (ssize_t)i;
	return -1;
}

const char *kl_kv_get(const struct kl_kv *kv, const char *key)
{
	ssize_t i = kl_kv_find(kv, key);
	return i < 0 ? NULL : kv->v[i].value;
}

void kl_kv_escape(struct strbuf *b, const char *value)
{
	for (const char *p = value; *p; p++) {
		size_t run = strcspn(p, ",");
		strbuf_append_len(b, p, run);
		p += run;
		if (!*p)
			break;
		strbuf_append(b, ",,");
	}
}

static char *entry_text(const char *key, const char *value, bool implied)
{
	struct strbuf b = STRBUF_INIT;
	if (!implied) {
		strbuf_append(&b, key);
		strbuf_appendc(&b, '=');
	}
	kl_kv_escape(&b, value);
	return strbuf_steal(&b);
}

size_t kl_kv_set(struct kl_kv *kv, const char *key, const char *value, ssize_t after)
{
	ssize_t i = kl_kv_find(kv, key);
	if (i >= 0) {
		struct kl_kv_entry *e = &kv->v[i];
		if (strcmp(e->value, value) != 0) {
			free(e->text);
			e->text = entry_text(e->key, value, e->implied);
			free(e->value);
			e->value = xstrdup(value);
			e->flag = false;
			kv->edited = true;
		}
		return (size_t)i;
	}
	struct kl_kv_entry ne = { 0 };
	ne.key = xstrdup(key);
	ne.value = xstrdup(value);
	ne.text = entry_text(key, value, false);
	push(kv, &ne);  /* grows the array; then move into place */
	size_t at = (after < 0 || (size_t)after >= kv->n - 1) ? kv->n - 1 : (size_t)after + 1;
	if (at != kv->n - 1) {
		memmove(&kv->v[at + 1], &kv->v[at], (kv->n - 1 - at) * sizeof *kv->v);
		kv->v[at] = ne;
	}
	kv->edited = true;
	return at;
}

size_t kl_kv_remove(struct kl_kv *kv, const char *key)
{
	size_t n = 0;
	for (size_t i = 0; i < kv->n; i++)
		if (!kv->v[i].removed && strcmp(kv->v[i].key, key) == 0) {
			kv->v[i].removed = true;
			n++;
		}
	if (n)
		kv->edited = true;
	return n;
}

char *kl_kv_format(const struct kl_kv *kv)
{
	if (!kv->edited)
		return xstrdup(kv->src ? kv->src : "");
	struct strbuf b = STRBUF_INIT;
	bool any = false;
	for (size_t i = 0; i < kv->n; i++) {
		const struct kl_kv_entry *e = &kv->v[i];
		if (e->removed)
			continue;
		if (any)
			strbuf_appendc(&b, ',');
		if (e->text)
			strbuf_append(&b, e->text);
		else
			strbuf_append_len(&b, kv->src + e->off, e->len);
		any = true;
	}
	if (any && kv->trailing_comma)
		strbuf_appendc(&b, ',');
	return strbuf_steal(&b);
}

int kl_kv_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "on", "yes", "true", "y" };
	static const char *const no[] = { "off", "no", "false", "n" };
	if (!s)
		return -1;
	for (size_t i = 0; i < 4; i++) {
		if (strcmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}
