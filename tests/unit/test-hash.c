/* SPDX-License-Identifier: GPL-2.0-or-later */
/* common/hash: FNV-1a against the published test vectors. */
#include "common/hash.h"
#include "tests/unit/unit.h"

static void test_fnv1a_vectors(void)
{
	CHECK(kl_fnv1a("") == 0xcbf29ce484222325ULL);
	CHECK(kl_fnv1a("a") == 0xaf63dc4c8601ec8cULL);
	CHECK(kl_fnv1a("foobar") == 0x85944171f73967e8ULL);
	/* Bytes, not chars: a high byte is not sign-extended. */
	CHECK(kl_fnv1a("\xff") == ((0xcbf29ce484222325ULL ^ 0xffULL) * 0x100000001b3ULL));
}

int main(void)
{
	RUN(test_fnv1a_vectors);
	return unit_done();
}
