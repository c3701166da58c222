/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Text-preserving JSON editing: a span-recording parser and a patch list.
 * See rewrite.h. */
#include "launcher/argv/rewrite.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "common/strbuf.h"
#include "common/xalloc.h"
#include "launcher/argv/keyval.h"

/* All of a document's values, members and strings live in one arena: a
 * command line can hold thousands of JSON arguments. */
struct kl_jarena {
	struct kl_jarena *next;
	size_t used, cap;
	max_align_t data[];
};

static void *arena_alloc(struct kl_jdoc *doc, size_t n)
{
	n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
	struct kl_jarena *a = doc->arena;
	if (!a || a->cap - a->used < n) {
		size_t cap = doc->len * 4 + 256;
		if (a && cap < a->cap * 2)
			cap = a->cap * 2;
		if (cap < n)
			cap = n;
		struct kl_jarena *na = xmalloc(sizeof *na + cap);
		na->next = a;
		na->used = 0;
		na->cap = cap;
		doc->arena = a = na;
	}
	void *p = (char *)a->data + a->used;
	a->used += n;
	return p;
}

/* Move the last (top - base) entries of a parse stack into the arena: the
 * members of an object or the items of an array, once it is closed. */
static void *arena_pop(struct kl_jdoc *doc, const void *stack, size_t base, size_t *top, size_t size, size_t *n)
{
	*n = *top - base;
	void *v = arena_alloc(doc, *n * size);
	memcpy(v, (const char *)stack + base * size, *n * size);
	*top = base;
	return v;
}

struct parser {
	const char *s;
	size_t len, pos;
	int depth;
	struct kl_error *err;
	struct kl_jdoc *doc;
	/* Members and items of the objects and arrays being parsed, as a
	 * stack; each is copied into the arena when its container closes. */
	struct kl_jmember *mstack;
	size_t mn, mcap;
	struct kl_jvalue **istack;
	size_t in, icap;
};

static int perr(struct parser *p, const char *what)
{
	return kl_error_fail(p->err, "JSON: %s at offset %zu", what, p->pos);
}

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len) {
		char c = p->s[p->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

static int hex4(struct parser *p, unsigned *out)
{
	unsigned v = 0;
	if (p->len - p->pos < 4)
		return perr(p, "short \\u escape");
	for (int i = 0; i < 4; i++) {
		char c = p->s[p->pos + i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return perr(p, "bad \\u escape");
	}
	p->pos += 4;
	*out = v;
	return 0;
}

static size_t put_utf8(char *u, unsigned cp)
{
	if (cp < 0x80) {
		u[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	u[0] = (char)(0xF0 | (cp >> 18));
	u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	u[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* At a quote ('"' or QEMU's '\''); decodes into *out (in the arena).  A
 * decoded string is never longer than its source, escapes included. */
static int parse_string(struct parser *p, char **out)
{
	char q = p->s[p->pos++];
	size_t end = p->pos;
	while (end < p->len && p->s[end] != q) {
		if (p->s[end] == '\\' && end + 1 < p->len)
			end++;
		end++;
	}
	if (end >= p->len) {
		p->pos = end;
		return perr(p, "unterminated string");
	}
	char *buf = arena_alloc(p->doc, end - p->pos + 1);
	size_t n = 0;
	while (p->pos < end) {
		unsigned char c = (unsigned char)p->s[p->pos];
		if (c < 0x20)
			return perr(p, "control character in string");
		if (c != '\\') {
			buf[n++] = (char)c;
			p->pos++;
			continue;
		}
		char e = p->s[++p->pos];
		p->pos++;
		switch (e) {
		case '"': case '\\': case '/': case '\'':
			buf[n++] = e;
			break;
		case 'b': buf[n++] = '\b'; break;
		case 'f': buf[n++] = '\f'; break;
		case 'n': buf[n++] = '\n'; break;
		case 'r': buf[n++] = '\r'; break;
		case 't': buf[n++] = '\t'; break;
		case 'u': {
			unsigned cp, lo;
			if (p->pos + 4 > end || hex4(p, &cp) < 0)
				return perr(p, "bad \\u escape");
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				if (p->pos + 6 > end || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u')
					return perr(p, "lone surrogate in \\u escape");
				p->pos += 2;
				if (hex4(p, &lo) < 0)
					return -1;
				if (lo < 0xDC00 || lo > 0xDFFF)
					return perr(p, "bad surrogate pair in \\u escape");
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			} else if (cp >= 0xDC00 && cp <= 0xDFFF) {
				return perr(p, "lone surrogate in \\u escape");
			}
			if (cp == 0)
				return perr(p, "\\u0000 is not supported");
			n += put_utf8(buf + n, cp);
			break;
		}
		default:
			p->pos -= 2;
			return perr(p, "bad escape in string");
		}
	}
	buf[n] = '\0';
	p->pos = end + 1;
	*out = buf;
	return 0;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static int parse_number(struct parser *p)
{
	const char *s = p->s;
	if (p->pos < p->len && s[p->pos] == '-')
		p->pos++;
	if (p->pos < p->len && s[p->pos] == '0')
		p->pos++;
	else if (p->pos < p->len && is_digit(s[p->pos]))
		while (p->pos < p->len && is_digit(s[p->pos]))
			p->pos++;
	else
		return perr(p, "bad number");
	if (p->pos < p->len && s[p->pos] == '.') {
		p->pos++;
		if (p->pos >= p->len || !is_digit(s[p->pos]))
			return perr(p, "bad number");
		while (p->pos < p->len && is_digit(s[p->pos]))
			p->pos++;
	}
	if (p->pos < p->len && (s[p->pos] == 'e' || s[p->pos] == 'E')) {
		p->pos++;
		if (p->pos < p->len && (s[p->pos] == '+' || s[p->pos] == '-'))
			p->pos++;
		if (p->pos >= p->len || !is_digit(s[p->pos]))
			return perr(p, "bad number");
		while (p->pos < p->len && is_digit(s[p->pos]))
			p->pos++;
	}
	return 0;
}

static int cmp_member_key(const void *a, const void *b)
{
	const struct kl_jmember *x = *(const struct kl_jmember *const *)a;
	const struct kl_jmember *y = *(const struct kl_jmember *const *)b;
	return strcmp(x->key, y->key);
}

static bool has_duplicate_key(const struct kl_jvalue *o)
{
	if (o->n < 2)
		return false;
	if (o->n <= 16) {
		for (size_t i = 0; i < o->n; i++)
			for (size_t j = i + 1; j < o->n; j++)
				if (o->members[i].key[0] == o->members[j].key[0] &&
				    strcmp(o->members[i].key, o->members[j].key) == 0)
					return true;
		return false;
	}
	const struct kl_jmember **v = xmalloc(o->n * sizeof *v);
	for (size_t i = 0; i < o->n; i++)
		v[i] = &o->members[i];
	qsort(v, o->n, sizeof *v, cmp_member_key);
	bool dup = false;
	for (size_t i = 1; i < o->n && !dup; i++)
		dup = strcmp(v[i - 1]->key, v[i]->key) == 0;
	free(v);
	return dup;
}

static int parse_value(struct parser *p, struct kl_jvalue **out);

/* After a member or an item: 1 if a ',' announces another, 0 at the closing
 * bracket, -1 on anything else. */
static int next_member(struct parser *p, char close)
{
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == ',') {
		p->pos++;
		return 1;
	}
	if (p->pos < p->len && p->s[p->pos] == close) {
		p->pos++;
		return 0;
	}
	return close == '}' ? perr(p, "expected ',' or '}'") : perr(p, "expected ',' or ']'");
}

static int parse_object(struct parser *p, struct kl_jvalue *v)
{
	size_t base = p->mn;
	p->pos++; /* '{' */
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == '}') {
		p->pos++;
		return 0;
	}
	for (;;) {
		skip_ws(p);
		if (p->pos >= p->len || (p->s[p->pos] != '"' && p->s[p->pos] != '\''))
			return perr(p, "expected a key");
		struct kl_jmember m = { NULL, p->pos, NULL };
		if (parse_string(p, &m.key) < 0)
			return -1;
		skip_ws(p);
		if (p->pos >= p->len || p->s[p->pos] != ':')
			return perr(p, "expected ':'");
		p->pos++;
		skip_ws(p);
		if (parse_value(p, &m.value) < 0)
			return -1;
		XGROW(p->mstack, p->mn, p->mcap, 64);
		p->mstack[p->mn++] = m;
		int more = next_member(p, '}');
		if (more < 0)
			return -1;
		if (!more)
			break;
	}
	v->members = arena_pop(p->doc, p->mstack, base, &p->mn, sizeof *v->members, &v->n);
	if (has_duplicate_key(v))
		return kl_error_fail(p->err, "JSON: duplicate key in the object at offset %zu", v->start);
	return 0;
}

static int parse_array(struct parser *p, struct kl_jvalue *v)
{
	size_t base = p->in;
	p->pos++; /* '[' */
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == ']') {
		p->pos++;
		return 0;
	}
	for (;;) {
		skip_ws(p);
		struct kl_jvalue *item;
		if (parse_value(p, &item) < 0)
			return -1;
		XGROW(p->istack, p->in, p->icap, 64);
		p->istack[p->in++] = item;
		int more = next_member(p, ']');
		if (more < 0)
			return -1;
		if (!more)
			break;
	}
	v->items = arena_pop(p->doc, p->istack, base, &p->in, sizeof *v->items, &v->n);
	return 0;
}

static bool literal(struct parser *p, const char *word)
{
	size_t n = strlen(word);
	if (p->len - p->pos >= n && memcmp(p->s + p->pos, word, n) == 0) {
		p->pos += n;
		return true;
	}
	return false;
}

static int parse_value(struct parser *p, struct kl_jvalue **out)
{
	if (p->pos >= p->len)
		return perr(p, "unexpected end");
	struct kl_jvalue *v = arena_alloc(p->doc, sizeof *v);
	memset(v, 0, sizeof *v);
	*out = v;
	v->start = p->pos;
	char c = p->s[p->pos];
	int r = 0;
	if (c == '{' || c == '[') {
		if (++p->depth > KL_JSON_MAX_DEPTH)
			return perr(p, "nesting too deep");
		v->type = c == '{' ? KL_J_OBJECT : KL_J_ARRAY;
		r = c == '{' ? parse_object(p, v) : parse_array(p, v);
		p->depth--;
	} else if (c == '"' || c == '\'') {
		v->type = KL_J_STRING;
		r = parse_string(p, &v->str);
	} else if (c == '-' || is_digit(c)) {
		v->type = KL_J_NUMBER;
		r = parse_number(p);
		if (r == 0) {
			size_t n = p->pos - v->start;
			v->str = arena_alloc(p->doc, n + 1);
			memcpy(v->str, p->s + v->start, n);
			v->str[n] = '\0';
		}
	} else if (literal(p, "true")) {
		v->type = KL_J_TRUE;
	} else if (literal(p, "false")) {
		v->type = KL_J_FALSE;
	} else if (literal(p, "null")) {
		v->type = KL_J_NULL;
	} else {
		v->type = KL_J_NULL;
		return perr(p, "unexpected character");
	}
	v->end = p->pos;
	return r;
}

int kl_jdoc_parse(const char *text, struct kl_jdoc *doc, struct kl_error *err)
{
	memset(doc, 0, sizeof *doc);
	struct parser p = { 0 };
	p.s = text;
	p.len = text ? strlen(text) : 0;
	p.err = err;
	p.doc = doc;
	doc->text = text;
	doc->len = p.len;
	if (!text)
		return kl_error_fail(err, "JSON: missing text");
	skip_ws(&p);
	int r = -1;
	if (p.pos >= p.len || text[p.pos] != '{') {
		perr(&p, "expected an object");
	} else if (parse_value(&p, &doc->root) == 0) {
		skip_ws(&p);
		if (p.pos != p.len)
			perr(&p, "trailing characters");
		else
			r = 0;
	}
	free(p.mstack);
	free(p.istack);
	if (r < 0)
		kl_jdoc_free(doc);
	return r;
}

void kl_jdoc_free(struct kl_jdoc *doc)
{
	if (!doc)
		return;
	for (struct kl_jarena *a = doc->arena, *next; a; a = next) {
		next = a->next;
		free(a);
	}
	doc->arena = NULL;
	doc->root = NULL;
}

static ssize_t member_index(const struct kl_jvalue *obj, const char *key)
{
	if (!obj || obj->type != KL_J_OBJECT)
		return -1;
	for (size_t i = 0; i < obj->n; i++)
		if (obj->members[i].key[0] == key[0] && strcmp(obj->members[i].key, key) == 0)
			return (ssize_t)i;
	return -1;
}

const struct kl_jvalue *kl_jdoc_get(const struct kl_jvalue *obj, const char *key)
{
	ssize_t i = member_index(obj, key);
	return i < 0 ? NULL : obj->members[i].value;
}

const char *kl_jdoc_get_str(const struct kl_jvalue *obj, const char *key)
{
	const struct kl_jvalue *v = kl_jdoc_get(obj, key);
	return v && v->type == KL_J_STRING ? v->str : NULL;
}

int kl_jdoc_get_bool(const struct kl_jvalue *obj, const char *key, bool *out)
{
	const struct kl_jvalue *v = kl_jdoc_get(obj, key);
	if (!v)
		return 0;
	if (v->type == KL_J_TRUE || v->type == KL_J_FALSE) {
		*out = v->type == KL_J_TRUE;
		return 1;
	}
	if (v->type == KL_J_STRING && kl_kv_parse_bool(v->str, out) == 0)
		return 1;
	return -1;
}

void kl_jdoc_quote(struct strbuf *b, const char *s)
{
	strbuf_appendc(b, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			strbuf_appendc(b, '\\');
			strbuf_appendc(b, (char)*p);
		} else if (*p < 0x20) {
			strbuf_appendf(b, "\\u%04x", *p);
		} else {
			strbuf_appendc(b, (char)*p);
		}
	}
	strbuf_appendc(b, '"');
}

void kl_jedit_init(struct kl_jedit *e, const struct kl_jdoc *doc)
{
	e->doc = doc;
	e->p = NULL;
	e->n = e->cap = 0;
}

void kl_jedit_free(struct kl_jedit *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->p[i].text);
	free(e->p);
	e->p = NULL;
	e->n = e->cap = 0;
}

static void add_patch(struct kl_jedit *e, size_t start, size_t end, char *text)
{
	XGROW(e->p, e->n, e->cap, 8);
	e->p[e->n] = (struct kl_jpatch){ start, end, text, e->n };
	e->n++;
}

/* Does the existing value already equal json_value? */
static bool same_value(const struct kl_jdoc *doc, const struct kl_jvalue *v, const char *json_value)
{
	size_t n = strlen(json_value);
	if (v->type == KL_J_STRING && n >= 2 && json_value[0] == '"' && json_value[n - 1] == '"' &&
	    !memchr(json_value, '\\', n))
		return strlen(v->str) == n - 2 && memcmp(v->str, json_value + 1, n - 2) == 0;
	return v->end - v->start == n && memcmp(doc->text + v->start, json_value, n) == 0;
}

bool kl_jedit_set(struct kl_jedit *e, const struct kl_jvalue *obj, const char *key, const char *json_value,
		  const char *const *after, bool at_start)
{
	ssize_t i = member_index(obj, key);
	if (i >= 0) {
		const struct kl_jvalue *v = obj->members[i].value;
		if (same_value(e->doc, v, json_value))
			return false;
		add_patch(e, v->start, v->end, xstrdup(json_value));
		return true;
	}
	struct strbuf b = STRBUF_INIT;
	if (obj->n == 0) {
		size_t pos = obj->start + 1;
		bool first = true;
		for (size_t k = 0; k < e->n; k++)
			if (e->p[k].start == pos && e->p[k].end == pos)
				first = false;
		if (!first)
			strbuf_appendc(&b, ',');
		kl_jdoc_quote(&b, key);
		strbuf_appendc(&b, ':');
		strbuf_append(&b, json_value);
		add_patch(e, pos, pos, strbuf_steal(&b));
		return true;
	}
	ssize_t anchor = -1;
	for (size_t k = 0; after && after[k] && anchor < 0; k++)
		anchor = member_index(obj, after[k]);
	if (anchor < 0 && at_start) {
		size_t pos = obj->members[0].key_start;
		kl_jdoc_quote(&b, key);
		strbuf_appendc(&b, ':');
		strbuf_append(&b, json_value);
		strbuf_appendc(&b, ',');
		add_patch(e, pos, pos, strbuf_steal(&b));
		return true;
	}
	if (anchor < 0)
		anchor = (ssize_t)obj->n - 1;
	size_t pos = obj->members[anchor].value->end;
	strbuf_appendc(&b, ',');
	kl_jdoc_quote(&b, key);
	strbuf_appendc(&b, ':');
	strbuf_append(&b, json_value);
	add_patch(e, pos, pos, strbuf_steal(&b));
	return true;
}

static int cmp_patch(const void *a, const void *b)
{
	const struct kl_jpatch *x = a, *y = b;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	/* At one position: insertions first, in the order they were made. */
	bool xi = x->start == x->end, yi = y->start == y->end;
	if (xi != yi)
		return xi ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int kl_jedit_apply(const struct kl_jedit *e, char **out, struct kl_error *err)
{
	const char *t = e->doc->text;
	if (e->n == 0) {
		*out = xstrdup(t);
		return 0;
	}
	struct kl_jpatch *p = xmalloc(e->n * sizeof *p);
	memcpy(p, e->p, e->n * sizeof *p);
	qsort(p, e->n, sizeof *p, cmp_patch);
	struct strbuf b = STRBUF_INIT;
	size_t at = 0;
	for (size_t i = 0; i < e->n; i++) {
		if (p[i].start < at || p[i].end > e->doc->len) {
			size_t bad = p[i].start;
			free(p);
			strbuf_free(&b);
			return kl_error_fail(err, "internal error: overlapping JSON edits at offset %zu", bad);
		}
		strbuf_append_len(&b, t + at, p[i].start - at);
		strbuf_append(&b, p[i].text);
		at = p[i].end;
	}
	strbuf_append_len(&b, t + at, e->doc->len - at);
	free(p);
	*out = strbuf_steal(&b);
	return 0;
}
