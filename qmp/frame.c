/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "qmp/frame.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/strbuf.h"
#include "common/xalloc.h"

struct fdlist {
	int *v;
	size_t n;
};

/* Nesting outside strings, the string being read, and whether a message is open. */
struct lexer {
	size_t depth;
	char quote;          /* '"' or '\'' inside a string, else 0 */
	bool escape;
	bool cur_is_msg;
};

struct qmp_framer {
	size_t max;
	struct lexer lx;
	bool oversize;       /* the current message crossed max: passing it through */
	struct strbuf cur;   /* the segment being built: a message, or bytes between */
	struct fdlist chunk_fds;    /* came with the bytes being fed: for the message starting at chunk_start */
	struct fdlist cur_fds;
	struct fdlist waiting_fds;  /* arrived between messages: for the next one */
	struct qmp_frame *ready;
	size_t nready, capready, headready;
};

static void fds_append(struct fdlist *l, const int *fds, size_t n)
{
	if (!n)
		return;
	l->v = xrealloc(l->v, (l->n + n) * sizeof *l->v);
	memcpy(l->v + l->n, fds, n * sizeof *fds);
	l->n += n;
}

static void fds_close(struct fdlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i] >= 0)
			close(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

struct qmp_framer *qmp_framer_new(size_t max_message)
{
	struct qmp_framer *f = xcalloc(1, sizeof *f);
	f->max = max_message ? max_message : 1;
	return f;
}

void qmp_frame_clear(struct qmp_frame *fr)
{
	struct fdlist l = { fr->fds, fr->nfds };
	fds_close(&l);
	free(fr->bytes);
	memset(fr, 0, sizeof *fr);
}

void qmp_framer_free(struct qmp_framer *f)
{
	if (!f)
		return;
	for (size_t i = f->headready; i < f->nready; i++)
		qmp_frame_clear(&f->ready[i]);
	free(f->ready);
	strbuf_free(&f->cur);
	fds_close(&f->cur_fds);
	fds_close(&f->waiting_fds);
	fds_close(&f->chunk_fds);
	free(f);
}

/* Hand the segment built so far (and its fds) to the ready queue. */
static void emit(struct qmp_framer *f, bool whole)
{
	if (f->cur.len == 0 && f->cur_fds.n == 0)
		return;
	if (f->nready == f->capready) {
		if (f->headready > 0) {
			memmove(f->ready, f->ready + f->headready, (f->nready - f->headready) * sizeof *f->ready);
			f->nready -= f->headready;
			f->headready = 0;
		} else {
			f->capready = f->capready ? 2 * f->capready : 8;
			f->ready = xrealloc(f->ready, f->capready * sizeof *f->ready);
		}
	}
	struct qmp_frame *fr = &f->ready[f->nready++];
	fr->len = f->cur.len;
	fr->bytes = f->cur.len ? strbuf_steal(&f->cur) : NULL;
	fr->fds = f->cur_fds.v;
	fr->nfds = f->cur_fds.n;
	fr->whole = whole;
	f->cur_fds.v = NULL;
	f->cur_fds.n = 0;
}

static void start_message(struct qmp_framer *f)
{
	emit(f, false); /* the bytes between messages go first */
	f->lx.cur_is_msg = true;
	f->oversize = false;
	fds_append(&f->cur_fds, f->waiting_fds.v, f->waiting_fds.n);
	free(f->waiting_fds.v);
	f->waiting_fds.v = NULL;
	f->waiting_fds.n = 0;
}

/* One byte of string or structure; returns true when a message just ended. */
static bool lex(struct lexer *l, char c)
{
	if (l->quote) {
		if (l->escape)
			l->escape = false;
		else if (c == '\\')
			l->escape = true;
		else if (c == l->quote)
			l->quote = 0;
		return false;
	}
	switch (c) {
	case '"':
	case '\'':
		l->quote = c;
		return false;
	case '{':
	case '[':
		l->depth++;
		return false;
	case '}':
	case ']':
		/* An unmatched closer at the top is garbage to QEMU too: it resets. */
		if (l->depth == 0)
			return false;
		return --l->depth == 0;
	default:
		return false;
	}
}

static bool starts_message(const struct lexer *l, char c)
{
	return !l->cur_is_msg && l->depth == 0 && !l->quote && (c == '{' || c == '[');
}

/* Where the last message that starts in buf starts, -1 if none.  A recvmsg
 * returns the fds of the last segment it read, whose bytes end the chunk;
 * a client sends a command's fds with the sendmsg of its first byte
 * (libvirt: qemuMonitorIOWriteWithFD), so the fds are that message's. */
static ssize_t last_start(const struct lexer *now, const char *buf, size_t len)
{
	struct lexer l = *now;
	ssize_t at = -1;
	for (size_t i = 0; i < len; i++) {
		if (starts_message(&l, buf[i])) {
			at = (ssize_t)i;
			l.cur_is_msg = true;
		}
		if (lex(&l, buf[i]) && l.cur_is_msg)
			l.cur_is_msg = false;
	}
	return at;
}

static void feed_byte(struct qmp_framer *f, char c, bool take_chunk_fds)
{
	if (starts_message(&f->lx, c)) {
		start_message(f);
		if (take_chunk_fds) {
			fds_append(&f->cur_fds, f->chunk_fds.v, f->chunk_fds.n);
			free(f->chunk_fds.v);
			f->chunk_fds.v = NULL;
			f->chunk_fds.n = 0;
		}
	}
	strbuf_appendc(&f->cur, c);
	bool ended = lex(&f->lx, c);
	if (f->lx.cur_is_msg && ended) {
		emit(f, !f->oversize);
		f->lx.cur_is_msg = false;
		return;
	}
	if (f->lx.cur_is_msg && f->cur.len >= f->max) {
		/* Too long to hold: pass on what we have, and the rest as it comes. */
		f->oversize = true;
		emit(f, false);
	}
}

void qmp_framer_feed(struct qmp_framer *f, const char *buf, size_t len, const int *fds, size_t nfds)
{
	/* Fds belong to the last message that starts in these bytes; if none
	 * starts, to the message being read, else to the next one. */
	ssize_t at = nfds ? last_start(&f->lx, buf, len) : -1;
	if (at >= 0)
		fds_append(&f->chunk_fds, fds, nfds);
	else
		fds_append(f->lx.cur_is_msg ? &f->cur_fds : &f->waiting_fds, fds, nfds);
	for (size_t i = 0; i < len; i++)
		feed_byte(f, buf[i], (ssize_t)i == at);
	/* Bytes between messages need not wait for the next message. */
	if (!f->lx.cur_is_msg && f->cur.len)
		emit(f, false);
	if (f->oversize && f->cur.len)
		emit(f, false);
}

int qmp_framer_next(struct qmp_framer *f, struct qmp_frame *out)
{
	if (f->headready == f->nready)
		return 0;
	*out = f->ready[f->headready++];
	if (f->headready == f->nready)
		f->headready = f->nready = 0;
	return 1;
}

void qmp_framer_finish(struct qmp_framer *f)
{
	fds_append(&f->cur_fds, f->waiting_fds.v, f->waiting_fds.n);
	free(f->waiting_fds.v);
	f->waiting_fds.v = NULL;
	f->waiting_fds.n = 0;
	emit(f, false);
	memset(&f->lx, 0, sizeof f->lx);
}

size_t qmp_framer_pending(const struct qmp_framer *f)
{
	size_t n = f->cur.len;
	for (size_t i = f->headready; i < f->nready; i++)
		n += f->ready[i].len;
	return n;
}
