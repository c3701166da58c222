/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Shared by the fuzz targets (tests/fuzz/fuzz-*.c).  Each target defines
 * LLVMFuzzerTestOneInput; it is linked either with libFuzzer (clang
 * -fsanitize=fuzzer: `make fuzz`) or with tests/fuzz/replay.c (any compiler,
 * no fuzzer runtime: `make fuzz-replay-programs`, tests/bad/t-fuzz-corpus.sh),
 * so a crash file replays without the fuzzer.
 *
 * FUZZ_CHECK(cond) aborts on a broken invariant: the fuzzer then keeps the
 * input as a crash, like any sanitizer report. */
#ifndef KL_FUZZ_H
#define KL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} } while (0)

/* The input as a C string (bytes after an embedded NUL are dropped, as
 * they would be in an argv string). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Once per process: the library's warnings would only slow the fuzzer.
 * (Errors only: the code under test logs none; a silenced stream would send
 * them to syslog.) */
static inline void fuzz_quiet(void)
{
	static int done;
	if (!done) {
		kl_log_set_level(KL_LOG_ERROR);
		done = 1;
	}
}

#endif
