/* SPDX-License-Identifier: GPL-2.0-or-later */
/* --status without QEMU: collecting from state files (stale, unresponsive),
 * the table and Prometheus renderings, and the query-block helpers shared
 * with --set and the agent. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "unit.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "launcher/vm/block.h"
#include "launcher/vm/procinfo.h"
#include "launcher/vm/state.h"
#include "launcher/vm/status.h"
#include "launcher/vm/status-policy.h"

static char tmpdir[PATH_MAX];

static char *render(void (*fn)(json_object *, FILE *), json_object *doc)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	fn(doc, f);
	fclose(f);
	return buf;
}

static json_object *parse(const char *s)
{
	json_object *o = json_tokener_parse(s);
	CHECK(o != NULL);
	return o;
}

static const char *doc_text =
	"{\"vms\":[{\"name\":\"we\\\"ird\\\\vm\\nx\",\"pid\":42,\"state\":\"running\",\"running\":true,"
	"\"responsive\":true,\"guest_status\":\"running\",\"started\":1700000000,"
	"\"agent\":{\"pid\":43,\"alive\":true,\"state\":\"watching\"},\"aio_seen\":{\"io_uring\":true,\"libaio\":false},"
	"\"disks\":[{\"id\":\"virtio-disk0\",\"node\":\"libvirt-1-format\",\"path\":\"/var/lib/a.img\",\"backend\":\"file\","
	"\"fs\":\"ext4\",\"format\":\"raw\",\"aio\":\"io_uring\",\"cache\":\"none\",\"cache_source\":\"qemu\","
	"\"guest_write_cache\":false,\"cache_planned\":\"none\",\"rule\":\"default:file\",\"reasons\":[\"file on ext4: O_DIRECT works\"],"
	"\"throttle\":{\"iops\":100},\"stats\":{\"rd_operations\":10,\"wr_operations\":30,\"flush_operations\":2,"
	"\"rd_bytes\":40960,\"wr_bytes\":2097152,\"rd_total_time_ns\":1000000,\"wr_total_time_ns\":3000000,"
	"\"flush_total_time_ns\":5,\"failed_rd_operations\":1,\"failed_wr_operations\":0,\"failed_flush_operations\":0,"
	"\"avg_latency_ms\":0.1}}]}],"
	"\"host\":{\"io_uring\":true,\"libaio\":true,\"aio_nr\":12,\"aio_max_nr\":65536}}";

static void test_prometheus(void)
{
	json_object *doc = parse(doc_text);
	char *p = render(kl_status_print_prometheus, doc);
	/* Label values escaped per the exposition format: \\ \" \n. */
	CHECK(strstr(p, "kvm_launch_vm_up{vm=\"we\\\"ird\\\\vm\\nx\"} 1\n") != NULL);
	CHECK(strstr(p, "# HELP kvm_launch_disk_read_ops_total ") != NULL);
	CHECK(strstr(p, "# TYPE kvm_launch_disk_read_ops_total counter\n") != NULL);
	/* Counters carry only labels that never change while the VM runs. */
	CHECK(strstr(p, "kvm_launch_disk_read_ops_total{vm=\"we\\\"ird\\\\vm\\nx\",disk=\"virtio-disk0\",backend=\"file\"} 10\n") != NULL);
	CHECK(strstr(p, "kvm_launch_disk_write_bytes_total{") != NULL);
	CHECK(strstr(p, "} 2097152\n") != NULL);
	CHECK(strstr(p, "kvm_launch_disk_write_time_seconds_total{") != NULL);
	CHECK(strstr(p, "} 0.003000000\n") != NULL);
	CHECK(strstr(p, "kvm_launch_disk_failed_ops_total{") != NULL);
	CHECK(strstr(p, "kvm_launch_disk_throttle{vm=\"we\\\"ird\\\\vm\\nx\",disk=\"virtio-disk0\",limit=\"iops\"} 100\n"));
	CHECK(strstr(p, "kvm_launch_host_aio_nr 12\n") != NULL);
	CHECK(strstr(p, "kvm_launch_host_aio_max_nr 65536\n") != NULL);
	CHECK(strstr(p, "kvm_launch_host_io_uring 1\n") != NULL);
	/* The guest's write cache apart from the configured mode. */
	CHECK(strstr(p, "# TYPE kvm_launch_disk_guest_write_cache gauge\n") != NULL);
	CHECK(strstr(p, "kvm_launch_disk_guest_write_cache{vm=\"we\\\"ird\\\\vm\\nx\",disk=\"virtio-disk0\"} 0\n"));
	CHECK(strstr(p, ",cache=\"none\",rule=\"default:file\"} 1\n") != NULL);
	/* No raw newline inside a sample line: every line is a comment or
	 * "name{...} value". */
	for (char *line = strtok(p, "\n"); line; line = strtok(NULL, "\n"))
		CHECK(line[0] == '#' || strncmp(line, "kvm_launch_", 11) == 0);
	free(p);
	json_object_put(doc);
}

/* The metrics the alert rules (contrib/prometheus) need. */
static const char *health_text =
	"{\"vms\":[{\"name\":\"a\",\"pid\":42,\"running\":true,\"guest_status\":\"io-error\",\"failed_open\":false,"
	"\"agent\":{\"alive\":true,\"io_errors\":{\"fmt0\":3,\"other\":1}},"
	"\"disks\":[{\"id\":\"vd0\",\"node\":\"fmt0\",\"cache\":\"writeback\",\"cache_policy\":\"none\","
	"\"settings_match_policy\":false},{\"id\":\"vd1\",\"cache\":\"none\",\"cache_policy\":\"none\","
	"\"settings_match_policy\":true},{\"id\":\"vd2\",\"settings_match_policy\":null}],"
	"\"unmanaged_disks\":[{\"disk\":\"hot1\",\"node\":\"n1\",\"path\":\"/x.img\"}]},"
	"{\"name\":\"b\",\"pid\":43,\"running\":true,\"failed_open\":true,\"agent\":{\"alive\":false},\"disks\":[]}],"
	"\"host\":{\"io_uring\":true,\"libaio\":true,\"aio_nr\":65000,\"aio_max_nr\":65536,\"libaio_headroom\":false}}";

static void test_prometheus_health(void)
{
	json_object *doc = parse(health_text);
	char *p = render(kl_status_print_prometheus, doc);
	CHECK(strstr(p, "kvm_launch_disk_policy_match{vm=\"a\",disk=\"vd0\",policy_cache=\"none\"} 0\n") != NULL);
	CHECK(strstr(p, "kvm_launch_disk_policy_match{vm=\"a\",disk=\"vd1\",policy_cache=\"none\"} 1\n") != NULL);
	CHECK(strstr(p, "disk=\"vd2\",policy") == NULL); /* not asked: no sample */
	CHECK(strstr(p, "kvm_launch_disk_unmanaged{vm=\"a\",disk=\"hot1\",node=\"n1\",path=\"/x.img\"} 1\n") != NULL);
	CHECK(strstr(p, "kvm_launch_vm_failed_open{vm=\"a\"} 0\n") != NULL);
	CHECK(strstr(p, "kvm_launch_vm_failed_open{vm=\"b\"} 1\n") != NULL);
	CHECK(strstr(p, "kvm_launch_vm_io_error_paused{vm=\"a\"} 1\n") != NULL);
	CHECK(strstr(p, "kvm_launch_vm_io_error_paused{vm=\"b\"} 0\n") != NULL);
	/* A node name maps back to its disk; an unknown key stays as it is. */
	CHECK(strstr(p, "kvm_launch_disk_io_error_events_total{vm=\"a\",disk=\"vd0\"} 3\n") != NULL);
	CHECK(strstr(p, "kvm_launch_disk_io_error_events_total{vm=\"a\",disk=\"other\"} 1\n") != NULL);
	CHECK(strstr(p, "# TYPE kvm_launch_disk_io_error_events_total counter\n") != NULL);
	CHECK(strstr(p, "kvm_launch_host_libaio_headroom 0\n") != NULL);
	free(p);
	/* The table says the same in words. */
	char *t = render(kl_status_print_table, doc);
	CHECK(strstr(t, "      note: the policy chose cache=none at launch\n") != NULL);
	CHECK(strstr(t, "  disk hot1 (/x.img): added while the VM runs, no policy decided it\n") != NULL);
	CHECK(strstr(t, "  failed open: ? (QEMU runs the original command line, no policy applied)\n") != NULL);
	free(t);
	json_object_put(doc);
}

static void test_unmanaged(void)
{
	json_object *blocks = parse(
		"[{\"device\":\"\",\"qdev\":\"/machine/peripheral/vd0/virtio-backend\",\"inserted\":{\"node-name\":\"f0\",\"file\":\"/a.img\"}},"
		"{\"device\":\"\",\"qdev\":\"/machine/peripheral/hot1/virtio-backend\",\"inserted\":{\"node-name\":\"h1\",\"file\":\"/h.img\"}},"
		"{\"device\":\"\",\"qdev\":\"/machine/system.flash0\",\"inserted\":{\"node-name\":\"libvirt-pflash0-format\",\"file\":\"/OVMF_CODE.fd\"}},"
		"{\"device\":\"pflash1\",\"qdev\":\"/machine/system.flash1\",\"inserted\":{\"node-name\":\"#block1\",\"file\":\"/vars.fd\"}},"
		"{\"device\":\"ide1-cd0\",\"qdev\":\"/machine/unattached/device[23]\"},"
		"{\"device\":\"spare\",\"inserted\":{\"node-name\":\"#block9\",\"file\":\"/spare.img\"}}]");
	json_object *disks = parse("[{\"id\":\"vd0\",\"node\":\"f0\"}]");
	json_object *u = kl_status_unmanaged(blocks, disks);
	/* Only the hot-added guest disk: not the launched one, not firmware,
	 * not an empty drive, not a drive no device uses. */
	CHECK_INTEQ(json_object_array_length(u), 1);
	json_object *h = json_object_array_get_idx(u, 0);
	CHECK_STREQ(kl_json_str(h, "disk"), "hot1");
	CHECK_STREQ(kl_json_str(h, "node"), "h1");
	CHECK_STREQ(kl_json_str(h, "path"), "/h.img");
	json_object_put(u);
	json_object_put(disks);
	json_object_put(blocks);
}

static void test_table(void)
{
	json_object *doc = parse(doc_text);
	char *t = render(kl_status_print_table, doc);
	CHECK(strstr(t, "pid 42, running (guest running)") != NULL);
	CHECK(strstr(t, "agent alive (pid 43, watching)") != NULL);
	CHECK(strstr(t, "kernel aio in use: io_uring") != NULL);
	CHECK(strstr(t, "DISK") && strstr(t, "CACHE") && strstr(t, "AVG LAT"));
	/* The configured mode and, in its own column, the guest's write cache. */
	CHECK(strstr(t, " CACHE GUEST WC ") != NULL);
	CHECK(strstr(t, " none  off      ") != NULL);
	CHECK(strstr(t, "virtio-disk0") && strstr(t, "libvirt-1-format") && strstr(t, "/var/lib/a.img"));
	CHECK(strstr(t, "iops=100") != NULL);
	CHECK(strstr(t, "2.0 MiB") != NULL);
	CHECK(strstr(t, "0.10 ms") != NULL);
	CHECK(strstr(t, "      file on ext4: O_DIRECT works\n") != NULL);
	CHECK(strstr(t, "host: io_uring yes, libaio yes, aio-nr 12 of 65536") != NULL);
	free(t);
	json_object_put(doc);
}

static const char *blocks_text =
	"[{\"device\":\"drive1\",\"qdev\":\"/machine/peripheral/vd1/virtio-backend\","
	"\"inserted\":{\"node-name\":\"#block197\",\"bps\":0,\"bps_rd\":0,\"bps_wr\":0,\"iops\":0,\"iops_rd\":0,\"iops_wr\":0,"
	"\"cache\":{\"writeback\":true,\"direct\":true,\"no-flush\":false}}},"
	"{\"device\":\"\",\"qdev\":\"/machine/peripheral/vd0/virtio-backend\","
	"\"inserted\":{\"node-name\":\"f0\",\"bps\":1000,\"bps_rd\":0,\"bps_wr\":0,\"iops\":100,\"iops_rd\":0,\"iops_wr\":0,"
	"\"iops_max\":400,\"iops_max_length\":5,\"bps_max\":2000,\"group\":\"/machine/peripheral/vd0/virtio-backend\","
	"\"cache\":{\"writeback\":true,\"direct\":false,\"no-flush\":false}}},"
	"{\"device\":\"\",\"qdev\":\"/machine/peripheral-anon/device[3]/virtio-backend\","
	"\"inserted\":{\"node-name\":\"anon-fmt\",\"iops\":0}}]";

static void test_block_find(void)
{
	json_object *blocks = parse(blocks_text);
	json_object *d;

	d = parse("{\"id\":\"vd0\",\"node\":\"nomatch\"}");
	CHECK(kl_block_find(blocks, d) == json_object_array_get_idx(blocks, 1));
	json_object_put(d);
	d = parse("{\"id\":\"x\",\"node\":\"anon-fmt\"}");
	CHECK(kl_block_find(blocks, d) == json_object_array_get_idx(blocks, 2));
	json_object_put(d);
	d = parse("{\"id\":null,\"node\":\"drive1\"}");
	CHECK(kl_block_find(blocks, d) == json_object_array_get_idx(blocks, 0));
	json_object_put(d);
	d = parse("{\"id\":\"vd9\",\"node\":\"f9\"}");
	CHECK(kl_block_find(blocks, d) == NULL);
	json_object_put(d);

	char *id = kl_qdev_id("/machine/peripheral/virtio-disk0/virtio-backend");
	CHECK_STREQ(id, "virtio-disk0");
	free(id);
	id = kl_qdev_id("/machine/peripheral-anon/device[0]/virtio-backend");
	CHECK_STREQ(id, "/machine/peripheral-anon/device[0]/virtio-backend");
	free(id);
	json_object_put(blocks);
}

static void test_throttle_args(void)
{
	json_object *blocks = parse(blocks_text);
	json_object *vd0 = json_object_array_get_idx(blocks, 1);
	json_object *drive = json_object_array_get_idx(blocks, 0);

	/* Unspecified values are kept; addressed by the qdev path. */
	json_object *set = parse("{\"iops_rd\":50}");
	json_object *a = kl_throttle_args(vd0, set);
	CHECK_STREQ(kl_json_str(a, "id"), "/machine/peripheral/vd0/virtio-backend");
	CHECK_INTEQ(kl_json_int(a, "iops", -1), 100);
	CHECK_INTEQ(kl_json_int(a, "iops_rd", -1), 50);
	CHECK_INTEQ(kl_json_int(a, "bps", -1), 1000);
	CHECK_INTEQ(kl_json_int(a, "iops_wr", -1), 0); /* all six base values present */
	CHECK_INTEQ(kl_json_int(a, "iops_max", -1), 400);
	CHECK_INTEQ(kl_json_int(a, "iops_max_length", -1), 5);
	json_object_put(a);
	json_object_put(set);

	/* Setting a base value to 0 drops its bursts (QEMU refuses them alone). */
	set = parse("{\"iops\":0}");
	a = kl_throttle_args(vd0, set);
	CHECK_INTEQ(kl_json_int(a, "iops", -1), 0);
	CHECK_INTEQ(kl_json_int(a, "iops_max", -1), -1);
	CHECK_INTEQ(kl_json_int(a, "iops_max_length", -1), -1);
	CHECK_INTEQ(kl_json_int(a, "bps_max", -1), 2000);
	json_object_put(a);
	json_object_put(set);

	/* A -drive without a device id... addressed by its qdev path too; a
	 * BlockBackend without qdev by its drive name. */
	set = parse("{\"bps\":1048576}");
	a = kl_throttle_args(drive, set);
	CHECK_STREQ(kl_json_str(a, "id"), "/machine/peripheral/vd1/virtio-backend");
	CHECK_INTEQ(kl_json_int(a, "bps", -1), 1048576);
	json_object_put(a);
	json_object *nodev = parse("{\"device\":\"ide0-hd0\",\"qdev\":\"\",\"inserted\":{}}");
	a = kl_throttle_args(nodev, set);
	CHECK_STREQ(kl_json_str(a, "device"), "ide0-hd0");
	CHECK(kl_json_str(a, "id") == NULL);
	json_object_put(a);
	json_object_put(nodev);
	json_object_put(set);

	/* What --status shows: non-zero values, QEMU's default group hidden. */
	json_object *cur = kl_throttle_current(vd0);
	char *text = kl_throttle_text(cur);
	CHECK_STREQ(text, "bps=1000 iops=100 bps_max=2000 iops_max=400 iops_max_length=5");
	free(text);
	json_object_put(cur);
	cur = kl_throttle_current(drive);
	text = kl_throttle_text(cur);
	CHECK_STREQ(text, "-");
	free(text);
	json_object_put(cur);
	json_object_put(blocks);
}

static void write_state(const char *dir, const char *stem, pid_t pid, unsigned long long ticks, const char *sock)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "name", json_object_new_string(stem));
	json_object_object_add(o, "stem", json_object_new_string(stem));
	json_object_object_add(o, "pid", json_object_new_int64(pid));
	json_object_object_add(o, "start_ticks", json_object_new_int64((int64_t)ticks));
	json_object_object_add(o, "started", json_object_new_int64(1700000000));
	json_object_object_add(o, "query_socket", json_object_new_string(sock));
	json_object *disks = json_object_new_array();
	json_object *d = json_object_new_object();
	json_object_object_add(d, "id", json_object_new_string("vd0"));
	json_object_object_add(d, "cache", json_object_new_string("none"));
	json_object_array_add(disks, d);
	json_object_object_add(o, "disks", disks);
	char *path = xasprintf("%s/%s.json", dir, stem);
	struct kl_error err = KL_ERROR_INIT;
	CHECK(kl_state_write_json(path, o, &err) == 0);
	free(path);
	json_object_put(o);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_collect(void)
{
	struct kl_error err = KL_ERROR_INIT;
	char *dir = xasprintf("%s/state", tmpdir);
	char *mute = xasprintf("%s/hung.qmp.sock", dir); /* the name the stem "hung" gives */
	unsigned long long ticks;
	CHECK(kl_state_dir_ensure(dir, &err) == 0);
	CHECK(kl_proc_start_ticks(getpid(), &ticks) == 0);

	/* Empty directory, and a directory that does not exist. */
	json_object *doc = kl_status_collect(dir, NULL, 1000);
	CHECK_INTEQ(json_object_array_length(kl_json_get(doc, "vms", json_type_array)), 0);
	CHECK(kl_json_get(doc, "host", json_type_object) != NULL);
	json_object_put(doc);
	char *none = xasprintf("%s/none", tmpdir);
	doc = kl_status_collect(none, NULL, 1000);
	CHECK_INTEQ(json_object_array_length(kl_json_get(doc, "vms", json_type_array)), 0);
	CHECK(kl_json_get(doc, "errors", json_type_array) == NULL);
	json_object_put(doc);
	free(none);

	/* A QEMU that accepts connections but never greets (hung): a
	 * listening socket nobody accepts on. */
	int ls = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", mute);
	CHECK(bind(ls, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(ls, 4) == 0);

	pid_t dead = fork();
	if (dead == 0)
		_exit(0);
	waitpid(dead, NULL, 0);
	write_state(dir, "hung", getpid(), ticks, mute);
	write_state(dir, "gone", dead, 1, "/nonexistent.sock");
	write_state(dir, "nosock", getpid(), ticks, "/nonexistent/x.sock");

	long long t0 = now_ms();
	doc = kl_status_collect(dir, NULL, 1000);
	long long took = now_ms() - t0;
	json_object *vms = kl_json_get(doc, "vms", json_type_array);
	CHECK_INTEQ(vms ? json_object_array_length(vms) : 0, 3);
	for (size_t i = 0; vms && i < json_object_array_length(vms); i++) {
		json_object *vm = json_object_array_get_idx(vms, i);
		const char *name = kl_json_str(vm, "name");
		if (strcmp(name, "gone") == 0) {
			CHECK_STREQ(kl_json_str(vm, "state"), "stopped");
			CHECK(!kl_json_bool(vm, "running", true));
		} else {
			CHECK_STREQ(kl_json_str(vm, "state"), "unresponsive");
			CHECK(kl_json_bool(vm, "running", false));
			CHECK(!kl_json_bool(vm, "responsive", true));
		}
		json_object *d0 = json_object_array_get_idx(kl_json_get(vm, "disks", json_type_array), 0);
		CHECK_STREQ(kl_json_str(d0, "cache"), "none");
		CHECK_STREQ(kl_json_str(d0, "cache_source"), "state");
	}
	/* One hung VM costs about the timeout, not more. */
	printf("# collect with a hung monitor took %lld ms\n", took);
	CHECK(took >= 900 && took < 2500);
	json_object_put(doc);

	/* The filter: names and shell patterns. */
	doc = kl_status_collect(dir, "go*", 100);
	CHECK_INTEQ(json_object_array_length(kl_json_get(doc, "vms", json_type_array)), 1);
	json_object_put(doc);
	doc = kl_status_collect(dir, "nothing-like-it", 100);
	CHECK_INTEQ(json_object_array_length(kl_json_get(doc, "vms", json_type_array)), 0);
	json_object_put(doc);
	close(ls);
	free(mute);
	free(dir);
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "%s/kl-test-status.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	kl_log_set_level(KL_LOG_ERROR);
	RUN(test_prometheus);
	RUN(test_prometheus_health);
	RUN(test_unmanaged);
	RUN(test_table);
	RUN(test_block_find);
	RUN(test_throttle_args);
	RUN(test_collect);
	char *cmd = xasprintf("rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", tmpdir);
	free(cmd);
	return unit_done();
}
