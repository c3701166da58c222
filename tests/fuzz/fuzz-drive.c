/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Fuzz target: QEMU's key=value syntax (launcher/keyval.c) and -drive
 * (launcher/drive.c), with their rewrite, and the same argument through the
 * whole argv model (launcher/model.c).  The input is one -drive value.
 *
 * Invariants (a broken one aborts, like a sanitizer report):
 *  - whatever parses formats back byte for byte when nothing was edited;
 *  - an edited QemuOpts string parses again and holds the values set;
 *  - a -drive rewritten for (aio, cache) parses again, runs with exactly
 *    that cache mode (and aio, where the protocol takes it), and rewriting
 *    it again for the same settings changes nothing;
 *  - a model that parses rewrites into a command line that parses. */
#include "fuzz.h"

#include "launcher/argv/drive.h"
#include "launcher/argv/keyval.h"
#include "launcher/argv/model.h"
#include "policy/types.h"

#define FUZZ_MAX_INPUT 16384

static void kv_roundtrip(const char *s, enum kl_kv_mode mode, const char *implied)
{
	struct kl_kv kv = KL_KV_INIT;
	struct kl_error err = KL_ERROR_INIT;
	if (kl_kv_parse(s, mode, implied, &kv, &err) < 0) {
		FUZZ_CHECK(kv.n == 0);
		return;
	}
	char *f = kl_kv_format(&kv);
	FUZZ_CHECK(strcmp(f, s) == 0);
	free(f);
	for (size_t i = 0; i < kv.n; i++)
		FUZZ_CHECK(kv.v[i].off + kv.v[i].len <= strlen(s));
	if (mode == KL_KV_QEMUOPTS) {
		/* Edit as kl_drive_edit does, plus a value that needs escaping. */
		kl_kv_set(&kv, "cache", "none", -1);
		kl_kv_set(&kv, "aio", "io_uring", -1);
		kl_kv_set(&kv, "kl-fuzz", "a,,b,", 0);
		kl_kv_remove(&kv, "cache.direct");
		char *e = kl_kv_format(&kv);
		struct kl_kv kv2 = KL_KV_INIT;
		FUZZ_CHECK(kl_kv_parse(e, mode, implied, &kv2, &err) == 0);
		const char *c = kl_kv_get(&kv2, "cache"), *a = kl_kv_get(&kv2, "aio");
		const char *x = kl_kv_get(&kv2, "kl-fuzz");
		FUZZ_CHECK(c && strcmp(c, "none") == 0);
		FUZZ_CHECK(a && strcmp(a, "io_uring") == 0);
		FUZZ_CHECK(x && strcmp(x, "a,,b,") == 0);
		FUZZ_CHECK(kl_kv_get(&kv2, "cache.direct") == NULL);
		kl_kv_free(&kv2);
		free(e);
	}
	kl_kv_free(&kv);
}

static void drive_edits(const char *s)
{
	struct kl_drive d;
	struct kl_error err = KL_ERROR_INIT;
	if (kl_drive_parse(s, 1, &d, &err) < 0) {
		kl_drive_free(&d);
		return;
	}
	for (int aio = KL_AIO_UNSET; aio <= KL_AIO_IO_URING; aio++) {
		for (int cache = KL_CACHE_UNSET; cache <= KL_CACHE_UNSAFE; cache++) {
			char *out = NULL;
			struct kl_error e2 = KL_ERROR_INIT;
			if (kl_drive_edit(&d, (enum kl_aio)aio, (enum kl_cache)cache, &out, &e2) < 0) {
				FUZZ_CHECK(out == NULL);
				continue;
			}
			if (!out)
				continue;
			struct kl_drive d2;
			FUZZ_CHECK(kl_drive_parse(out, 1, &d2, &e2) == 0);
			if (cache != KL_CACHE_UNSET) {
				struct kl_cache_flags want = kl_cache_flags((enum kl_cache)cache);
				FUZZ_CHECK(d2.cache_explicit);
				FUZZ_CHECK(d2.flags.writeback == want.writeback && d2.flags.direct == want.direct &&
					   d2.flags.no_flush == want.no_flush);
			}
			if (aio != KL_AIO_UNSET && d.takes_aio)
				FUZZ_CHECK(d2.aio == (enum kl_aio)aio);
			char *again = NULL;
			FUZZ_CHECK(kl_drive_edit(&d2, (enum kl_aio)aio, (enum kl_cache)cache, &again, &e2) == 0);
			FUZZ_CHECK(again == NULL);
			kl_drive_free(&d2);
			free(out);
		}
	}
	kl_drive_free(&d);
}

static int count(char *const *v)
{
	int n = 0;
	while (v[n])
		n++;
	return n;
}

static void model(char *const *argv, enum kl_aio aio, enum kl_cache cache)
{
	struct kl_model *m = NULL;
	struct kl_error err = KL_ERROR_INIT;
	if (kl_model_parse(count(argv), argv, &m, &err) < 0) {
		FUZZ_CHECK(m == NULL);
		return;
	}
	for (size_t i = 0; i < kl_model_disk_count(m); i++) {
		const struct kl_disk_given *g = kl_model_disk(m, i);
		FUZZ_CHECK(g != NULL);
		kl_model_set_disk(m, i, aio, cache);
	}
	struct strvec out = STRVEC_INIT;
	if (kl_model_rewrite(m, &out, &err) == 0) {
		FUZZ_CHECK(out.n == (size_t)count(argv));
		struct kl_model *m2 = NULL;
		FUZZ_CHECK(kl_model_parse((int)out.n, strvec_terminate(&out), &m2, &err) == 0);
		FUZZ_CHECK(kl_model_disk_count(m2) == kl_model_disk_count(m));
		kl_model_free(m2);
	}
	strvec_free(&out);
	kl_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_quiet();
	if (size > FUZZ_MAX_INPUT)
		return 0;
	char *s = fuzz_cstr(data, size);

	kv_roundtrip(s, KL_KV_QEMUOPTS, NULL);
	kv_roundtrip(s, KL_KV_QEMUOPTS, "driver");
	kv_roundtrip(s, KL_KV_KEYVAL, NULL);
	kv_roundtrip(s, KL_KV_KEYVAL, "driver");
	drive_edits(s);

	char *alone[] = { (char *)"-drive", s, NULL };
	model(alone, KL_AIO_NATIVE, KL_CACHE_NONE);
	model(alone, KL_AIO_IO_URING, KL_CACHE_WRITEBACK);
	char *with_dev[] = { (char *)"-machine", (char *)"q35", (char *)"-drive", s, (char *)"-device",
			     (char *)"virtio-blk-pci,drive=d0,write-cache=off", (char *)"-set",
			     (char *)"device.x.serial=1", NULL };
	model(with_dev, KL_AIO_THREADS, KL_CACHE_DIRECTSYNC);
	free(s);
	return 0;
}
