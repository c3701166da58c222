/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Errors and warnings found in a policy file, each tied to a line. */
#include "policy/policy-int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "common/xalloc.h"

void klp_diag_add(struct klp_diags *d, int line, bool warning, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	XGROW(d->v, d->n, d->cap, 16);
	d->v[d->n] = (struct klp_diag){ line, warning, msg ? msg : xstrdup("(out of memory)"), d->n };
	d->n++;
	if (!warning)
		d->errors++;
}

static int by_line(const void *a, const void *b)
{
	const struct klp_diag *x = a, *y = b;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	/* Same line: in the order they were found. */
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void klp_diags_sort(struct klp_diags *d)
{
	if (d->n > 1)
		qsort(d->v, d->n, sizeof *d->v, by_line);
}

void klp_diags_free(struct klp_diags *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].msg);
	free(d->v);
	d->v = NULL;
	d->n = d->cap = d->errors = 0;
}

char *klp_diag_format(const struct klp_diags *d, const struct klp_diag *x, bool with_tag)
{
	const char *tag = with_tag && x->warning ? "warning: " : "";
	if (x->line > 0)
		return xasprintf("%s:%d: %s%s", d->name, x->line, tag, x->msg);
	return xasprintf("%s: %s%s", d->name, tag, x->msg);
}
