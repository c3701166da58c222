/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A tiny unit-test harness: TAP-style lines the suite runner counts.
 *   static void test_x(void) { CHECK(a == b); CHECK_STREQ(s, "x"); }
 *   int main(void) { RUN(test_x); return unit_done(); }
 */
#ifndef KL_UNIT_H
#define KL_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_case_failed, unit_failed_cases, unit_cases;

#define CHECK(cond) do { \
	if (!(cond)) { \
		printf("#   %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
		unit_case_failed = 1; \
	} } while (0)

#define CHECK_STREQ(a, b) do { \
	const char *_ua = (a), *_ub = (b); \
	if (!_ua || !_ub || strcmp(_ua, _ub) != 0) { \
		printf("#   %s:%d: CHECK_STREQ failed: %s = \"%s\", expected \"%s\"\n", \
		       __FILE__, __LINE__, #a, _ua ? _ua : "(null)", _ub ? _ub : "(null)"); \
		unit_case_failed = 1; \
	} } while (0)

#define CHECK_INTEQ(a, b) do { \
	long long _ua = (long long)(a), _ub = (long long)(b); \
	if (_ua != _ub) { \
		printf("#   %s:%d: CHECK_INTEQ failed: %s = %lld, expected %lld\n", \
		       __FILE__, __LINE__, #a, _ua, _ub); \
		unit_case_failed = 1; \
	} } while (0)

#define RUN(fn) do { \
	unit_case_failed = 0; \
	fflush(stdout); \
	fn(); \
	unit_cases++; \
	if (unit_case_failed) unit_failed_cases++; \
	printf("%s %d - %s\n", unit_case_failed ? "not ok" : "ok", unit_cases, #fn); \
	fflush(stdout); \
} while (0)

static inline int unit_done(void)
{
	printf("1..%d\n", unit_cases);
	return unit_failed_cases ? 1 : 0;
}

#endif
