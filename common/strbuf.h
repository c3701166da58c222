/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Growable strings and NULL-terminated string vectors (argv). */
#ifndef KL_STRBUF_H
#define KL_STRBUF_H

#include <stddef.h>
#include <stdbool.h>
#include <string.h>

struct strbuf {
	char *s;      /* always NUL-terminated once anything was appended */
	size_t len;
	size_t cap;
};

#define STRBUF_INIT { NULL, 0, 0 }

void strbuf_append(struct strbuf *b, const char *s);
void strbuf_append_len(struct strbuf *b, const char *s, size_t n);
void strbuf_appendc(struct strbuf *b, char c);
void strbuf_appendf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Returns the string (never NULL, "" when empty) and resets the buffer. */
char *strbuf_steal(struct strbuf *b);
void strbuf_reset(struct strbuf *b);
void strbuf_free(struct strbuf *b);
/* The contents, "" when nothing was appended yet. */
const char *strbuf_str(const struct strbuf *b);

struct strvec {
	char **v;     /* NULL-terminated when n > 0 or after strvec_terminate */
	size_t n;
	size_t cap;
};

#define STRVEC_INIT { NULL, 0, 0 }

void strvec_push(struct strvec *sv, char *s);          /* takes ownership */
void strvec_push_dup(struct strvec *sv, const char *s);
void strvec_pushf(struct strvec *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strvec_free(struct strvec *sv);
/* Returns a NULL-terminated array even when empty. */
char **strvec_terminate(struct strvec *sv);

static inline void strbuf_freep(struct strbuf *b) { strbuf_free(b); }
static inline void strvec_freep(struct strvec *sv) { strvec_free(sv); }
#define _cleanup_strbuf_ __attribute__((cleanup(strbuf_freep)))
#define _cleanup_strvec_ __attribute__((cleanup(strvec_freep)))

/* Two strings, either of which may be NULL, are the same text. */
static inline bool kl_streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

#endif
