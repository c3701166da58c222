/* SPDX-License-Identifier: GPL-2.0-or-later */
/* What --status and --set read from a running VM, without QEMU: the cache
 * mode judged from the configured write cache and the node options (never
 * from the guest's write-cache flag), and kernel aio "in use" / "not yet"
 * from /proc's view and the disks' I/O counters. */
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "common/xalloc.h"
#include "launcher/vm/aiouse.h"
#include "launcher/vm/cachemode.h"

static json_object *parse(const char *s)
{
	json_object *o = json_tokener_parse(s);
	CHECK(o != NULL);
	return o;
}

/* A query-block entry whose guest turned its write cache off (SeaBIOS,
 * "write through" in sysfs) on a cache=none disk. */
static const char *block_wc_off =
	"{\"device\":\"\",\"qdev\":\"/machine/peripheral/vd0/virtio-backend\",\"inserted\":{\"node-name\":\"f0\","
	"\"cache\":{\"writeback\":false,\"direct\":true,\"no-flush\":false}}}";

static void test_view_configured(void)
{
	json_object *sd = parse("{\"id\":\"vd0\",\"node\":\"f0\",\"cache\":\"none\"}");
	json_object *block = parse(block_wc_off);
	struct kl_cache_view v;

	kl_cache_view_of(sd, block, NULL, &v);
	CHECK(v.configured && v.from_qemu);
	CHECK(v.flags.writeback && v.flags.direct && !v.flags.no_flush);
	CHECK_STREQ(kl_cache_view_mode(&v), "none");
	CHECK(v.guest_wc == KL_TRI_NO);

	/* The node options win over the state's mode: a reopen done elsewhere
	 * (another monitor) shows. */
	json_object *named = parse("[{\"node-name\":\"s0\",\"cache\":{\"writeback\":true,\"direct\":true,\"no-flush\":false}},"
				   "{\"node-name\":\"f0\",\"cache\":{\"writeback\":true,\"direct\":false,\"no-flush\":false}}]");
	kl_cache_view_of(sd, block, named, &v);
	CHECK_STREQ(kl_cache_view_mode(&v), "writeback");
	CHECK(v.guest_wc == KL_TRI_NO);

	/* writethrough configured: the mode keeps the write cache off even if
	 * QEMU's flag said on. */
	json_object_object_add(sd, "cache", json_object_new_string("directsync"));
	json_object *on = parse("{\"inserted\":{\"node-name\":\"f0\",\"cache\":{\"writeback\":true,\"direct\":true,"
				"\"no-flush\":false}}}");
	kl_cache_view_of(sd, on, NULL, &v);
	CHECK_STREQ(kl_cache_view_mode(&v), "directsync");
	CHECK(v.guest_wc == KL_TRI_YES);

	/* No mode in the state: QEMU's flag is all there is. */
	json_object_object_del(sd, "cache");
	kl_cache_view_of(sd, block, NULL, &v);
	CHECK(!v.configured);
	CHECK_STREQ(kl_cache_view_mode(&v), "directsync");

	/* No QEMU answer: the state's mode alone. */
	json_object_object_add(sd, "cache", json_object_new_string("unsafe"));
	kl_cache_view_of(sd, NULL, NULL, &v);
	CHECK(!v.from_qemu && v.guest_wc == KL_TRI_UNKNOWN);
	CHECK_STREQ(kl_cache_view_mode(&v), "unsafe");

	json_object_put(on);
	json_object_put(named);
	json_object_put(block);
	json_object_put(sd);
}

static void test_check_nodes(void)
{
	json_object *named = parse("[{\"node-name\":\"s0\",\"cache\":{\"writeback\":true,\"direct\":false,\"no-flush\":false}},"
				   "{\"node-name\":\"f0\",\"cache\":{\"writeback\":true,\"direct\":true,\"no-flush\":false}}]");
	json_object *opts = parse("[{\"node-name\":\"s0\",\"driver\":\"file\"},{\"driver\":\"raw\",\"file\":\"s0\"}]");
	struct kl_cache_flags wb = kl_cache_flags(KL_CACHE_WRITEBACK), none = kl_cache_flags(KL_CACHE_NONE);
	struct strbuf what = STRBUF_INIT;
	struct kl_error err = KL_ERROR_INIT;

	CHECK(kl_cache_check_nodes(named, opts, wb, &what, &err) == 0);
	CHECK_STREQ(strbuf_str(&what), "s0 direct=off no-flush=off");
	strbuf_reset(&what);
	CHECK(kl_cache_check_nodes(named, opts, none, &what, &err) < 0);
	CHECK(strstr(err.msg, "node s0 has direct=off") != NULL);
	kl_error_clear(&err);
	json_object_put(opts);
	opts = parse("[{\"node-name\":\"s0\"},{\"node-name\":\"f0\"}]");
	CHECK(kl_cache_check_nodes(named, opts, wb, &what, &err) < 0);
	CHECK(strstr(err.msg, "node f0 has direct=on") != NULL);
	kl_error_clear(&err);
	json_object_put(opts);
	opts = parse("[{\"node-name\":\"gone\"}]");
	CHECK(kl_cache_check_nodes(named, opts, wb, &what, &err) < 0);
	CHECK(strstr(err.msg, "does not show node gone") != NULL);
	kl_error_clear(&err);
	json_object_put(opts);
	/* A storage node given inline in its parent (the -drive form) is checked too. */
	opts = parse("[{\"node-name\":\"f0\",\"driver\":\"raw\",\"file\":{\"node-name\":\"s0\",\"driver\":\"file\"}}]");
	strbuf_reset(&what);
	CHECK(kl_cache_check_nodes(named, opts, none, &what, &err) < 0);
	CHECK(strstr(err.msg, "node s0 has direct=off") != NULL);
	CHECK_STREQ(strbuf_str(&what), "f0 direct=on no-flush=off, s0 direct=off no-flush=off");
	kl_error_clear(&err);
	strbuf_free(&what);
	json_object_put(opts);
	json_object_put(named);
}

/* vd0 with io_uring (its counters, or none), vd1 on the thread pool with I/O done. */
static json_object *disks(long long rd, long long wr, bool stats)
{
	char *st = stats ? xasprintf("{\"rd_operations\":%lld,\"wr_operations\":%lld,\"flush_operations\":0}", rd, wr)
			 : xstrdup("null");
	char *s = xasprintf("[{\"id\":\"vd0\",\"aio\":\"io_uring\",\"stats\":%s},{\"id\":\"vd1\",\"aio\":\"threads\","
			    "\"stats\":{\"rd_operations\":7,\"wr_operations\":3}}]", st);
	json_object *o = parse(s);
	free(st);
	free(s);
	return o;
}

static void test_aio_use(void)
{
	json_object *d = disks(0, 0, true);
	/* Seen: in use, whatever the counters. */
	CHECK(kl_aio_use_of(d, "io_uring", KL_TRI_YES) == KL_AIO_USE_YES);
	/* Not seen, no I/O on its disk yet: QEMU 9+ sets it up at the first request. */
	CHECK_STREQ(kl_aio_use_name(KL_AIO_USE_NOT_SEEN), "not seen");
	CHECK(kl_aio_use_of(d, "io_uring", KL_TRI_NO) == KL_AIO_USE_NOT_YET);
	/* No disk with the engine: no (the thread-pool disk's I/O does not count). */
	CHECK(kl_aio_use_of(d, "native", KL_TRI_NO) == KL_AIO_USE_NO);
	CHECK(kl_aio_use_of(d, "native", KL_TRI_UNKNOWN) == KL_AIO_USE_UNKNOWN);
	json_object *j = kl_aio_use_json(d, KL_TRI_NO, KL_TRI_NO);
	char *t = kl_aio_use_text(j);
	CHECK_STREQ(t, "not yet (io_uring is set up at the first I/O)");
	free(t);
	json_object_put(j);
	json_object_put(d);

	/* I/O done and still no ring: only unaligned requests (the thread pool
	 * serves them), or QEMU fell back to its thread pool: said, not guessed. */
	d = disks(5, 0, true);
	CHECK(kl_aio_use_of(d, "io_uring", KL_TRI_NO) == KL_AIO_USE_NOT_SEEN);
	j = kl_aio_use_json(d, KL_TRI_NO, KL_TRI_NO);
	t = kl_aio_use_text(j);
	CHECK_STREQ(t, "none (io_uring configured but not set up after I/O: only unaligned requests so far, or QEMU "
		       "fell back to its thread pool)");
	free(t);
	json_object_put(j);
	j = kl_aio_use_json(d, KL_TRI_YES, KL_TRI_YES);
	t = kl_aio_use_text(j);
	CHECK_STREQ(t, "io_uring, libaio");
	free(t);
	json_object_put(j);
	json_object_put(d);

	/* No counters (QEMU did not answer): unknown, not a guess. */
	d = disks(0, 0, false);
	CHECK(kl_aio_use_of(d, "io_uring", KL_TRI_NO) == KL_AIO_USE_UNKNOWN);
	j = kl_aio_use_json(d, KL_TRI_NO, KL_TRI_NO);
	t = kl_aio_use_text(j);
	CHECK_STREQ(t, "unknown (io_uring)");
	free(t);
	json_object_put(j);
	/* libaio in use, io_uring not yet. */
	json_object_put(d);
	d = disks(0, 0, true);
	j = kl_aio_use_json(d, KL_TRI_NO, KL_TRI_YES);
	t = kl_aio_use_text(j);
	CHECK_STREQ(t, "libaio; not yet (io_uring is set up at the first I/O)");
	free(t);
	json_object_put(j);
	json_object_put(d);
}

int main(void)
{
	RUN(test_view_configured);
	RUN(test_check_nodes);
	RUN(test_aio_use);
	return unit_done();
}
