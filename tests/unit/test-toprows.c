/* SPDX-License-Identifier: GPL-2.0-or-later */
/* --top's rows: rates between two --status documents, and the sort keys. */
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "launcher/vm/toprows.h"

static json_object *doc(long long rd, long long wr, long long rbytes, long long wbytes, long long rns, long long wns,
			long long pid2_wr)
{
	char buf[2048];
	snprintf(buf, sizeof buf,
		 "{\"vms\":[{\"name\":\"a\",\"pid\":10,\"state\":\"running\",\"disks\":["
		 "{\"id\":\"vd0\",\"aio\":\"io_uring\",\"cache\":\"none\",\"rule\":\"r1\",\"stats\":{\"rd_operations\":%lld,"
		 "\"wr_operations\":%lld,\"rd_bytes\":%lld,\"wr_bytes\":%lld,\"rd_total_time_ns\":%lld,\"wr_total_time_ns\":%lld}},"
		 "{\"node\":\"n1\",\"cache\":\"writeback\"}]},"
		 "{\"name\":\"b\",\"pid\":11,\"disks\":[{\"id\":\"vd0\",\"stats\":{\"wr_operations\":%lld,\"wr_bytes\":0,"
		 "\"wr_total_time_ns\":0}}]}]}",
		 rd, wr, rbytes, wbytes, rns, wns, pid2_wr);
	json_object *o = json_tokener_parse(buf);
	CHECK(o != NULL);
	return o;
}

static void test_rates(void)
{
	json_object *a = doc(100, 200, 1000000, 2000000, 1000000, 2000000, 5);
	json_object *b = doc(300, 400, 3000000, 5000000, 3000000, 6000000, 2);
	struct kl_top_row *r;
	size_t n;

	kl_top_rows(NULL, a, 2, &r, &n);
	CHECK_INTEQ(n, 3);
	CHECK(!r[0].have_rate); /* first sample: nothing to compare with */
	kl_top_rows_free(r, n);

	kl_top_rows(a, b, 2, &r, &n);
	CHECK_INTEQ(n, 3);
	CHECK_STREQ(r[0].vm, "a");
	CHECK_STREQ(r[0].disk, "vd0");
	CHECK_STREQ(r[0].aio, "io_uring");
	CHECK_STREQ(r[0].rule, "r1");
	CHECK(r[0].have_rate);
	CHECK(r[0].rd_iops == 100 && r[0].wr_iops == 100 && r[0].iops == 200);
	CHECK(r[0].mbps == 2.5);                  /* 5 MB in 2 s */
	CHECK(r[0].lat_ms > 0.0149 && r[0].lat_ms < 0.0151); /* 6 ms over 400 requests */
	CHECK_STREQ(r[1].disk, "n1");             /* a node-only disk, no stats */
	CHECK_STREQ(r[1].aio, "-");
	CHECK(!r[1].have_rate);
	CHECK(!r[2].have_rate);                   /* counter went back: no rate */
	kl_top_rows_free(r, n);
	json_object_put(a);
	json_object_put(b);
}

static void test_sort(void)
{
	json_object *a = doc(0, 0, 0, 0, 0, 0, 0);
	json_object *b = doc(10, 0, 0, 0, 10000000, 0, 100);
	struct kl_top_row *r;
	size_t n;
	kl_top_rows(a, b, 1, &r, &n);
	/* IOPS: b/vd0 (100) before a/vd0 (10); a/n1 has no figure: last. */
	kl_top_sort(r, n, KL_TOP_SORT_IOPS, false);
	CHECK_STREQ(r[0].vm, "b");
	CHECK_STREQ(r[1].vm, "a");
	CHECK_STREQ(r[2].disk, "n1");
	kl_top_sort(r, n, KL_TOP_SORT_IOPS, true);
	CHECK_STREQ(r[0].vm, "a");
	CHECK_STREQ(r[0].disk, "vd0");
	CHECK_STREQ(r[2].disk, "n1");             /* still last */
	/* Latency: a/vd0 1 ms, b/vd0 0 ms. */
	kl_top_sort(r, n, KL_TOP_SORT_LAT, false);
	CHECK_STREQ(r[0].vm, "a");
	kl_top_sort(r, n, KL_TOP_SORT_NAME, false);
	CHECK(strcmp(r[0].vm, "a") == 0 && strcmp(r[0].disk, "n1") == 0);
	CHECK_STREQ(r[2].vm, "b");
	kl_top_sort(r, n, KL_TOP_SORT_NAME, true);
	CHECK_STREQ(r[0].vm, "b");
	CHECK_STREQ(kl_top_sort_name(KL_TOP_SORT_MBPS), "MB/s");
	kl_top_rows_free(r, n);
	json_object_put(a);
	json_object_put(b);
}

int main(void)
{
	RUN(test_rates);
	RUN(test_sort);
	return unit_done();
}
