/* SPDX-License-Identifier: GPL-2.0-or-later */
/* common/xalloc: the allocation helpers and XGROW. */
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "tests/unit/unit.h"

static void test_xgrow(void)
{
	int *v = NULL;
	size_t n = 0, cap = 0;
	for (int i = 0; i < 1000; i++) {
		XGROW(v, n, cap, 4);
		CHECK(cap > n);
		v[n++] = i;
	}
	CHECK_INTEQ(n, 1000);
	CHECK_INTEQ(cap, 1024); /* 4, 8, ... doubling */
	long sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += v[i];
	CHECK_INTEQ(sum, 999 * 1000 / 2);
	/* Not full: nothing moves. */
	int *before = v;
	n = 10;
	XGROW(v, n, cap, 4);
	CHECK(v == before && cap == 1024);
	free(v);
}

static void test_strings(void)
{
	char *s = xasprintf("%s-%d", "a", 42);
	CHECK_STREQ(s, "a-42");
	free(s);
	s = xstrndup("abcdef", 3);
	CHECK_STREQ(s, "abc");
	free(s);
	s = xstrndup("ab", 10);
	CHECK_STREQ(s, "ab");
	free(s);
	s = xstrdup("");
	CHECK_STREQ(s, "");
	free(s);
	int *z = xcalloc(16, sizeof *z);
	for (int i = 0; i < 16; i++)
		CHECK(z[i] == 0);
	free(z);
}

int main(void)
{
	RUN(test_xgrow);
	RUN(test_strings);
	return unit_done();
}
