/* SPDX-License-Identifier: GPL-2.0-or-later */
/* -name on a command line the model cannot parse (fail-open state). */
#include <stdlib.h>

#include "unit.h"
#include "launcher/argv/name.h"

static void check(const char *want, int argc, char *const *argv)
{
	char *got = kl_argv_guess_name(argc, argv);
	if (!want)
		CHECK(got == NULL);
	else
		CHECK_STREQ(got ? got : "(null)", want);
	free(got);
}

static void test_names(void)
{
	check("vm1", 4, (char *const[]){ "-m", "64", "-name", "vm1", NULL });
	check(NULL, 3, (char *const[]){ "-drive", "=", "-name", NULL });
	check("t1", 2, (char *const[]){ "-name", "guest=t1,debug-threads=on", NULL });
	check("t1", 2, (char *const[]){ "--name", "process=q,guest=t1", NULL });
	check("a,b", 2, (char *const[]){ "-name", "a,,b,debug-threads=on", NULL });
	check(NULL, 2, (char *const[]){ "-name", "process=q", NULL });
	check(NULL, 2, (char *const[]){ "-name", "", NULL });
	check("second", 4, (char *const[]){ "-name", "first", "-name", "second", NULL });
	check(NULL, 2, (char *const[]){ "-drive", "file=x", NULL });
}

int main(void)
{
	RUN(test_names);
	return unit_done();
}
