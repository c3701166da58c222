/* SPDX-License-Identifier: GPL-2.0-or-later */
/* QEMU's key=value syntax (launcher/keyval.c): escaping, implied keys,
 * flags, round trips, edits. */
#include <stdlib.h>
#include <string.h>
#include "unit.h"
#include "launcher/argv/keyval.h"

static char *roundtrip(const char *s, enum kl_kv_mode mode, const char *implied)
{
	struct kl_kv kv;
	struct kl_error err = KL_ERROR_INIT;
	if (kl_kv_parse(s, mode, implied, &kv, &err) < 0)
		return NULL;
	char *out = kl_kv_format(&kv);
	/* Force the edited path too: join every entry's original text. */
	kv.edited = true;
	char *joined = kl_kv_format(&kv);
	if (strcmp(out, joined) != 0) {
		free(out);
		out = NULL;
	}
	free(joined);
	kl_kv_free(&kv);
	return out;
}

static void test_escaping(void)
{
	struct kl_kv kv;
	struct kl_error err = KL_ERROR_INIT;
	CHECK(kl_kv_parse("file=/a,,b,,,,c,format=raw", KL_KV_QEMUOPTS, NULL, &kv, &err) == 0);
	CHECK_INTEQ(kv.n, 2);
	CHECK_STREQ(kl_kv_get(&kv, "file"), "/a,b,,c");
	CHECK_STREQ(kl_kv_get(&kv, "format"), "raw");
	/* A value ending in an escaped comma, then a separator. */
	kl_kv_free(&kv);
	CHECK(kl_kv_parse("a=x,,,b=y", KL_KV_QEMUOPTS, NULL, &kv, &err) == 0);
	CHECK_STREQ(kl_kv_get(&kv, "a"), "x,");
	CHECK_STREQ(kl_kv_get(&kv, "b"), "y");
	kl_kv_free(&kv);
	/* ",," at the very end belongs to the value. */
	CHECK(kl_kv_parse("a=x,,", KL_KV_KEYVAL, NULL, &kv, &err) == 0);
	CHECK_STREQ(kl_kv_get(&kv, "a"), "x,");
	CHECK(!kv.trailing_comma);
	kl_kv_free(&kv);

	struct strbuf b = STRBUF_INIT;
	kl_kv_escape(&b, ",a,,b,");
	CHECK_STREQ(strbuf_str(&b), ",,a,,,,b,,");
	strbuf_free(&b);
}

static void test_implied(void)
{
	struct kl_kv kv;
	struct kl_error err = KL_ERROR_INIT;
	CHECK(kl_kv_parse("qcow2,node-name=x", KL_KV_KEYVAL, "driver", &kv, &err) == 0);
	CHECK_STREQ(kl_kv_get(&kv, "driver"), "qcow2");
	CHECK(kv.v[0].implied);
	kl_kv_free(&kv);
	/* The implied value is escaped like any other. */
	CHECK(kl_kv_parse("vir,,tio,id=a", KL_KV_QEMUOPTS, "driver", &kv, &err) == 0);
	CHECK_STREQ(kl_kv_get(&kv, "driver"), "vir,tio");
	kl_kv_free(&kv);
	/* Only the first parameter may be implied. */
	CHECK(kl_kv_parse("driver=file,qcow2", KL_KV_KEYVAL, "driver", &kv, &err) < 0);
	CHECK(strstr(err.msg, "expected '='") != NULL);
	/* -name t1 / -name guest=t1 */
	CHECK(kl_kv_parse("t1", KL_KV_QEMUOPTS, "guest", &kv, &err) == 0);
	CHECK_STREQ(kl_kv_get(&kv, "guest"), "t1");
	kl_kv_free(&kv);
	CHECK(kl_kv_parse("guest=t1,debug-threads=on", KL_KV_QEMUOPTS, "guest", &kv, &err) == 0);
	CHECK_STREQ(kl_kv_get(&kv, "guest"), "t1");
	CHECK(!kv.v[0].implied);
	kl_kv_free(&kv);
}

static void test_flags_and_empty(void)
{
	struct kl_kv kv;
	struct kl_error err = KL_ERROR_INIT;
	CHECK(kl_kv_parse("file=,readonly,nosnapshot,cache=", KL_KV_QEMUOPTS, NULL, &kv, &err) == 0);
	CHECK_STREQ(kl_kv_get(&kv, "file"), "");
	CHECK_STREQ(kl_kv_get(&kv, "readonly"), "on");
	CHECK_STREQ(kl_kv_get(&kv, "snapshot"), "off");
	CHECK_STREQ(kl_kv_get(&kv, "cache"), "");
	kl_kv_free(&kv);
	/* keyval has no flags */
	CHECK(kl_kv_parse("driver=file,read-only", KL_KV_KEYVAL, "driver", &kv, &err) < 0);
	/* The last repetition wins. */
	CHECK(kl_kv_parse("a=1,b=2,a=3", KL_KV_KEYVAL, NULL, &kv, &err) == 0);
	CHECK_STREQ(kl_kv_get(&kv, "a"), "3");
	kl_kv_free(&kv);
	CHECK(kl_kv_parse("", KL_KV_QEMUOPTS, NULL, &kv, &err) == 0);
	CHECK_INTEQ(kv.n, 0);
	kl_kv_free(&kv);
}

static void test_errors(void)
{
	static const char *const bad_qemuopts[] = { ",", "=", "=x", "a=1,,,=2", ",a=1", "a=1,,b,=", "a=1,=2", NULL };
	static const char *const bad_keyval[] = {
		",", "=", "a", "a=1,b", ".a=1", "a.=1", "a..b=1", "a=1,=2", ",a=1", NULL,
	};
	struct kl_kv kv;
	for (size_t i = 0; bad_qemuopts[i]; i++) {
		struct kl_error err = KL_ERROR_INIT;
		int r = kl_kv_parse(bad_qemuopts[i], KL_KV_QEMUOPTS, NULL, &kv, &err);
		if (r == 0) {
			printf("#   accepted QemuOpts '%s'\n", bad_qemuopts[i]);
			kl_kv_free(&kv);
		}
		CHECK(r < 0 && err.set);
	}
	for (size_t i = 0; bad_keyval[i]; i++) {
		struct kl_error err = KL_ERROR_INIT;
		int r = kl_kv_parse(bad_keyval[i], KL_KV_KEYVAL, NULL, &kv, &err);
		if (r == 0) {
			printf("#   accepted keyval '%s'\n", bad_keyval[i]);
			kl_kv_free(&kv);
		}
		CHECK(r < 0 && err.set);
	}
	CHECK(kl_kv_parse(NULL, KL_KV_KEYVAL, NULL, &kv, NULL) < 0);
}

static void test_roundtrip(void)
{
	static const char *const cases[] = {
		"file=/var/lib/libvirt/images/a,,b.qcow2,format=qcow2,if=none,id=drive-virtio-disk0,cache=none,aio=native",
		"a=1,",
		"a=,b=,,,c",
		"readonly,noreadonly,x=y",
		"file=\xff\xfe\x80,,\xc3\x28,format=raw",
		"guest=t1,debug-threads=on",
		"key with spaces=value with spaces,k2= v ",
		"file=json:{\"driver\":\"file\",,\"filename\":\"/x\"}",
		"",
		NULL,
	};
	for (size_t i = 0; cases[i]; i++) {
		char *out = roundtrip(cases[i], KL_KV_QEMUOPTS, NULL);
		CHECK_STREQ(out, cases[i]);
		free(out);
	}
	char *out = roundtrip("qcow2,node-name=n,file.driver=file,file.filename=/p,,q,", KL_KV_KEYVAL, "driver");
	CHECK_STREQ(out, "qcow2,node-name=n,file.driver=file,file.filename=/p,,q,");
	free(out);

	/* A 1 MiB value. */
	size_t big = 1 << 20;
	char *s = malloc(big + 16);
	memcpy(s, "file=", 5);
	for (size_t i = 0; i < big; i++)
		s[5 + i] = 'x';
	memcpy(s + 5 + big, ",,y,a=b", 8);
	out = roundtrip(s, KL_KV_QEMUOPTS, NULL);
	CHECK(out && strcmp(out, s) == 0);
	free(out);
	free(s);
}

static void test_edit(void)
{
	struct kl_kv kv;
	struct kl_error err = KL_ERROR_INIT;
	const char *src = "file=/a,,b,cache=writeback,cache.direct=on,id=d0,";
	CHECK(kl_kv_parse(src, KL_KV_QEMUOPTS, NULL, &kv, &err) == 0);
	/* Same value: no edit. */
	kl_kv_set(&kv, "cache", "writeback", -1);
	CHECK(!kv.edited);
	char *out = kl_kv_format(&kv);
	CHECK_STREQ(out, src);
	free(out);
	kl_kv_set(&kv, "cache", "none", -1);
	kl_kv_remove(&kv, "cache.direct");
	kl_kv_set(&kv, "aio", "native", -1);
	kl_kv_set(&kv, "x", "a,b", 0);
	out = kl_kv_format(&kv);
	CHECK_STREQ(out, "file=/a,,b,x=a,,b,cache=none,id=d0,aio=native,");
	free(out);
	kl_kv_free(&kv);

	/* The implied key keeps its implied form; flags become key=value. */
	CHECK(kl_kv_parse("virtio-blk-pci,drive=d,readonly", KL_KV_QEMUOPTS, "driver", &kv, &err) == 0);
	kl_kv_set(&kv, "driver", "scsi-hd", -1);
	kl_kv_set(&kv, "readonly", "off", -1);
	out = kl_kv_format(&kv);
	CHECK_STREQ(out, "scsi-hd,drive=d,readonly=off");
	free(out);
	/* A copy edits independently. */
	struct kl_kv copy;
	kl_kv_copy(&copy, &kv);
	kl_kv_set(&copy, "drive", "e", -1);
	out = kl_kv_format(&kv);
	CHECK_STREQ(out, "scsi-hd,drive=d,readonly=off");
	free(out);
	out = kl_kv_format(&copy);
	CHECK_STREQ(out, "scsi-hd,drive=e,readonly=off");
	free(out);
	kl_kv_free(&copy);
	kl_kv_free(&kv);

	/* Repeated keys: the last one is edited (it is the one QEMU uses). */
	CHECK(kl_kv_parse("a=1,a=2", KL_KV_KEYVAL, NULL, &kv, &err) == 0);
	kl_kv_set(&kv, "a", "3", -1);
	out = kl_kv_format(&kv);
	CHECK_STREQ(out, "a=1,a=3");
	free(out);
	CHECK_INTEQ(kl_kv_remove(&kv, "a"), 2);
	out = kl_kv_format(&kv);
	CHECK_STREQ(out, "");
	free(out);
	kl_kv_free(&kv);
}

static void test_bool(void)
{
	bool b = false;
	CHECK(kl_kv_parse_bool("on", &b) == 0 && b);
	CHECK(kl_kv_parse_bool("yes", &b) == 0 && b);
	CHECK(kl_kv_parse_bool("y", &b) == 0 && b);
	CHECK(kl_kv_parse_bool("true", &b) == 0 && b);
	CHECK(kl_kv_parse_bool("off", &b) == 0 && !b);
	CHECK(kl_kv_parse_bool("n", &b) == 0 && !b);
	CHECK(kl_kv_parse_bool("", &b) < 0);
	CHECK(kl_kv_parse_bool("On", &b) < 0);
	CHECK(kl_kv_parse_bool(NULL, &b) < 0);
}

int main(void)
{
	RUN(test_escaping);
	RUN(test_implied);
	RUN(test_flags_and_empty);
	RUN(test_errors);
	RUN(test_roundtrip);
	RUN(test_edit);
	RUN(test_bool);
	return unit_done();
}
