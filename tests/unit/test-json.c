/* SPDX-License-Identifier: GPL-2.0-or-later */
/* common/json, common/tri and common/clock. */
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/json.h"
#include "common/tri.h"
#include "tests/unit/unit.h"

static json_object *parse(const char *text)
{
	json_object *o = NULL;
	const char *why = NULL;
	if (kl_json_parse_object(text, strlen(text), &o, &why) < 0)
		return NULL;
	return o;
}

static void test_getters(void)
{
	json_object *o = parse("{\"s\": \"x\", \"empty\": \"\", \"i\": 42, \"b\": true, \"n\": null, \"a\": [1], \"o\": {\"k\": -7},"
			       " \"big\": 9007199254740993, \"d\": 1.5}");
	CHECK(o != NULL);
	CHECK_STREQ(kl_json_str(o, "s"), "x");
	CHECK(kl_json_str(o, "i") == NULL);          /* another type */
	CHECK(kl_json_str(o, "missing") == NULL);
	CHECK(kl_json_str(o, "n") == NULL);          /* null */
	CHECK(kl_json_str(NULL, "s") == NULL);       /* no object */
	CHECK_STREQ(kl_json_str_or(o, "s", "-"), "x");
	CHECK_STREQ(kl_json_str_or(o, "i", "-"), "-");
	CHECK_STREQ(kl_json_str_or(o, "empty", "-"), "-");
	CHECK_STREQ(kl_json_str_or(NULL, "s", "-"), "-");
	CHECK_INTEQ(kl_json_int(o, "i", -1), 42);
	CHECK_INTEQ(kl_json_int(o, "big", -1), 9007199254740993LL);
	CHECK_INTEQ(kl_json_int(o, "s", -1), -1);
	CHECK_INTEQ(kl_json_int(o, "d", -1), -1);    /* a double is not an int */
	CHECK_INTEQ(kl_json_int(NULL, "i", 5), 5);
	CHECK(kl_json_bool(o, "b", false) == true);
	CHECK(kl_json_bool(o, "i", false) == false); /* 42 is not a boolean */
	CHECK(kl_json_bool(o, "missing", true) == true);
	CHECK(kl_json_get(o, "a", json_type_array) != NULL);
	CHECK(kl_json_get(o, "a", json_type_object) == NULL);
	CHECK_INTEQ(kl_json_int(kl_json_get(o, "o", json_type_object), "k", 0), -7);
	CHECK(kl_json_get(NULL, "o", json_type_object) == NULL);
	json_object_put(o);
}

static const char *text_of(json_object *o)
{
	return o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : "null";
}

static void test_constructors(void)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "a", kl_json_string("x"));
	json_object_object_add(o, "b", kl_json_string(""));
	json_object_object_add(o, "c", kl_json_string(NULL));
	json_object_object_add(o, "d", kl_json_nonempty("y"));
	json_object_object_add(o, "e", kl_json_nonempty(""));
	json_object_object_add(o, "f", kl_json_nonempty(NULL));
	json_object_object_add(o, "g", kl_json_tri(KL_TRI_YES));
	json_object_object_add(o, "h", kl_json_tri(KL_TRI_NO));
	json_object_object_add(o, "i", kl_json_tri(KL_TRI_UNKNOWN));
	char *v[] = { "one", NULL, "three" };
	json_object_object_add(o, "j", kl_json_strings(v, 3));
	json_object_object_add(o, "k", kl_json_strings(v, 0));
	CHECK_STREQ(text_of(o), "{\"a\":\"x\",\"b\":\"\",\"c\":null,\"d\":\"y\",\"e\":null,\"f\":null,"
				"\"g\":true,\"h\":false,\"i\":null,\"j\":[\"one\",\"\",\"three\"],\"k\":[]}");
	json_object_put(o);
}

static void test_tri_word(void)
{
	CHECK_STREQ(kl_tri_word(KL_TRI_YES), "yes");
	CHECK_STREQ(kl_tri_word(KL_TRI_NO), "no");
	CHECK_STREQ(kl_tri_word(KL_TRI_UNKNOWN), "unknown");
}

static void expect_refused(const char *text, const char *want_why)
{
	json_object *o = (json_object *)1;
	const char *why = NULL;
	CHECK_INTEQ(kl_json_parse_object(text, strlen(text), &o, &why), -1);
	CHECK(o == NULL);
	CHECK(why != NULL);
	if (want_why && why && !strstr(why, want_why)) {
		printf("#   '%s': why = '%s', expected '%s'\n", text, why, want_why);
		CHECK(0);
	}
}

static void test_parse_object(void)
{
	json_object *o = NULL;
	const char *why = NULL;
	const char *t = "  {\"a\": {\"b\": [1, 2]}} \n";
	CHECK_INTEQ(kl_json_parse_object(t, strlen(t), &o, &why), 0);
	CHECK_STREQ(text_of(o), "{\"a\":{\"b\":[1,2]}}");
	json_object_put(o);
	/* Only the first len bytes count. */
	t = "{\"a\": 1}garbage";
	CHECK_INTEQ(kl_json_parse_object(t, 8, &o, &why), 0);
	json_object_put(o);

	expect_refused("", "incomplete");
	expect_refused("{\"a\": ", "incomplete");
	expect_refused("{\"a\": 1} x", "data after");
	expect_refused("{\"a\": 1}{}", "data after");
	expect_refused("[1, 2]", "not a JSON object");
	expect_refused("\"text\"", "not a JSON object");
	expect_refused("{a: 1}", NULL);
	expect_refused("{\"a\": tru}", NULL);
}

static void test_clock(void)
{
	int64_t ns0 = kl_monotonic_ns();
	long long ms0 = kl_monotonic_ms();
	double s0 = kl_monotonic_s();
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	nanosleep(&ts, NULL);
	int64_t ns1 = kl_monotonic_ns();
	long long ms1 = kl_monotonic_ms();
	double s1 = kl_monotonic_s();
	CHECK(ns0 > 0);
	CHECK(ns1 - ns0 >= 20 * 1000 * 1000);
	CHECK(ms1 - ms0 >= 19 && ms1 - ms0 < 60 * 1000);
	CHECK(s1 - s0 >= 0.019 && s1 - s0 < 60);
	/* The three read the same clock. */
	CHECK(ms0 >= ns0 / 1000000 && ms0 <= ns1 / 1000000);
	CHECK(s0 * 1e9 >= (double)ns0 - 1e3 && s0 * 1e9 <= (double)ns1 + 1e3);
}

int main(void)
{
	RUN(test_getters);
	RUN(test_constructors);
	RUN(test_tri_word);
	RUN(test_parse_object);
	RUN(test_clock);
	return unit_done();
}
