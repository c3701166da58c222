/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void vset(struct kl_error *err, int errnum, const char *fmt, va_list ap)
{
	if (!err)
		return;
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	if (errnum) {
		size_t len = strlen(err->msg);
		snprintf(err->msg + len, sizeof err->msg - len, ": %s", strerror(errnum));
	}
	err->errnum = errnum;
	err->set = true;
}

void kl_error_set(struct kl_error *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(err, 0, fmt, ap);
	va_end(ap);
}

int kl_error_fail(struct kl_error *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(err, 0, fmt, ap);
	va_end(ap);
	return -1;
}

int kl_error_errno(struct kl_error *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vset(err, errnum, fmt, ap);
	va_end(ap);
	return -1;
}

void kl_error_prefix(struct kl_error *err, const char *fmt, ...)
{
	char prefix[512], old[sizeof err->msg];
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof old);
	/* Truncation is acceptable: the start of a message says the most. */
	int n = snprintf(err->msg, sizeof err->msg, "%s: ", prefix);
	if (n >= 0 && (size_t)n < sizeof err->msg) {
		size_t len = strnlen(old, sizeof err->msg - (size_t)n - 1);
		memcpy(err->msg + n, old, len);
		err->msg[(size_t)n + len] = '\0';
	}
	err->set = true;
}

void kl_error_clear(struct kl_error *err)
{
	if (!err)
		return;
	err->errnum = 0;
	err->set = false;
	err->msg[0] = '\0';
}
