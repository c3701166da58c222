/* SPDX-License-Identifier: GPL-2.0-or-later */
/* One error style: fallible functions return -1 (or negative) and fill the
 * struct kl_error passed last (which may be NULL).  Messages read
 * "context: what: strerror".  Only main() turns an error into an exit code. */
#ifndef KL_ERROR_H
#define KL_ERROR_H

#include <stdbool.h>

struct kl_error {
	int errnum;      /* errno value when the cause was a system call, else 0 */
	bool set;
	char msg[1024];
};

#define KL_ERROR_INIT { 0, false, "" }

void kl_error_set(struct kl_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Appends ": strerror(errnum)". Returns -1 so callers can `return kl_error_errno(...)`. */
int kl_error_errno(struct kl_error *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Same as kl_error_set but returns -1. */
int kl_error_fail(struct kl_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Prepends "context: " to an existing message. */
void kl_error_prefix(struct kl_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void kl_error_clear(struct kl_error *err);

#endif
