/* SPDX-License-Identifier: GPL-2.0-or-later */
/* calibrate-cli: the calibration API from the command line, for shell tests
 * (until kvm-launch --calibrate is wired) and for a look at a real host.
 *
 *   calibrate-cli [--seconds N] [--write] [--size MIB] [--cache-dir DIR]
 *                 [--json | --kv] [--kv-out FILE] [--progress]
 *                 [--deny io_uring,libaio] PATH
 *       measure PATH; print the table (default), the JSON, or key=value
 *       lines (--kv-out: those lines to FILE as well as the table); with
 *       --cache-dir also store it there.  --deny installs a
 *       seccomp filter first that fails io_uring_setup with EPERM and
 *       io_setup with EAGAIN, as a container runtime or an exhausted
 *       fs.aio-nr would.
 *   calibrate-cli --lookup --cache-dir DIR STORAGE_ID
 *   calibrate-cli --lookup-path --cache-dir DIR PATH
 *       what the launcher would get: facts->aio_ranking and
 *       facts->calibration for a storage id, or for PATH as the probes see
 *       it, as "storage_id=", "ranking=" and "calibration=" lines. */
#include "policy/calibrate/calibrate.h"
#include "policy/probe/probe.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int usage(void)
{
	fprintf(stderr,
		"usage: calibrate-cli [--seconds N] [--write] [--size MIB] [--cache-dir DIR] [--json|--kv] [--kv-out FILE]\n"
		"                     [--progress]"
		" [--deny io_uring,libaio] PATH\n"
		"       calibrate-cli --lookup --cache-dir DIR STORAGE_ID\n"
		"       calibrate-cli --lookup-path --cache-dir DIR PATH\n");
	return 2;
}

static int deny(bool io_uring, bool libaio)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, io_uring ? __NR_io_uring_setup : 0xffffffffu, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, libaio ? __NR_io_setup : 0xffffffffu, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EAGAIN),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof f / sizeof *f, .filter = f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
		perror("calibrate-cli: seccomp");
		return -1;
	}
	return 0;
}

static void show_progress(void *opaque, int done, int total, const char *what)
{
	(void)opaque;
	fprintf(stderr, "[%2d/%2d] %s\n", done, total, what);
}

static void print_rank(FILE *out, const char *key, const struct kl_cal_ranking *r)
{
	fprintf(out, "%s=", key);
	for (size_t i = 0; i < 3 && r->order[i] != KL_AIO_UNSET; i++)
		fprintf(out, "%s%s", i ? "," : "", kl_aio_name(r->order[i]));
	fprintf(out, "\n");
}

static void print_kv(const struct kl_calibration *c, FILE *out)
{
	fprintf(out, "storage_id=%s\nlabel=%s\nkind=%s\nodirect=%d\nwrite=%d\ntemp_file=%d\nsize=%llu\n", c->storage_id,
	       c->label, c->backend == KL_BACKEND_BLOCK ? "block" : "file", c->odirect, c->wrote, c->temp_file,
	       (unsigned long long)c->size);
	for (size_t i = 0; i < KL_CAL_NENGINES; i++)
		fprintf(out, "engine %s available=%d reason=%s\n", kl_aio_name(c->engines[i].engine), c->engines[i].available,
		       c->engines[i].reason);
	for (size_t i = 0; i < c->nruns; i++) {
		const struct kl_cal_run *r = &c->runs[i];
		fprintf(out, "run engine=%s cache=%s qd=%d pattern=%s ok=%d iops=%.0f mbps=%.1f lat_us=%.1f sync=%d "
		       "error=%s\n",
		       kl_aio_name(r->engine), r->direct ? "direct" : "buffered", r->qd, kl_cal_pattern_name(r->pattern),
		       r->ok, r->iops, r->mbps, r->lat_us, r->synchronous, r->error);
	}
	print_rank(out, "rank_direct", &c->rank_direct);
	print_rank(out, "rank_buffered", &c->rank_buffered);
}

static void print_lookup(const struct kl_disk_facts *f)
{
	printf("storage_id=%s\nranking=", f->storage_id);
	for (size_t i = 0; i < 4 && f->aio_ranking[i] != KL_AIO_UNSET; i++)
		printf("%s%s", i ? "," : "", kl_aio_name(f->aio_ranking[i]));
	printf("\ncalibration=%s\n", f->calibration);
}

int main(int argc, char **argv)
{
	struct kl_calibrate_options o = { 0 };
	const char *cache_dir = NULL, *kv_out = NULL;
	bool json = false, kv = false, lookup = false, lookup_path = false;
	int i;

	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			o.seconds = atoi(argv[++i]);
		} else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc) {
			o.file_size = strtoull(argv[++i], NULL, 10) << 20;
		} else if (strcmp(argv[i], "--write") == 0) {
			o.allow_write = true;
		} else if (strcmp(argv[i], "--cache-dir") == 0 && i + 1 < argc) {
			cache_dir = argv[++i];
		} else if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--kv") == 0) {
			kv = true;
		} else if (strcmp(argv[i], "--kv-out") == 0 && i + 1 < argc) {
			kv_out = argv[++i];
		} else if (strcmp(argv[i], "--progress") == 0) {
			o.progress = show_progress;
		} else if (strcmp(argv[i], "--deny") == 0 && i + 1 < argc) {
			const char *what = argv[++i];
			if (deny(strstr(what, "io_uring") != NULL, strstr(what, "libaio") != NULL) < 0)
				return 1;
		} else if (strcmp(argv[i], "--lookup") == 0) {
			lookup = true;
		} else if (strcmp(argv[i], "--lookup-path") == 0) {
			lookup_path = true;
		} else {
			return usage();
		}
	}
	if (i + 1 != argc)
		return usage();

	if (lookup || lookup_path) {
		struct kl_disk_facts f = { 0 };
		struct kl_error err = KL_ERROR_INIT;
		if (!cache_dir)
			return usage();
		if (lookup_path) {
			struct kl_disk_given given = { .path = argv[i], .readonly = true };
			if (kl_probe_disk(&kl_probe_env_real, &given, &f, &err) < 0) {
				fprintf(stderr, "calibrate-cli: %s\n", err.msg);
				return 1;
			}
		} else {
			snprintf(f.storage_id, sizeof f.storage_id, "%s", argv[i]);
		}
		kl_calibration_lookup(cache_dir, &f);
		print_lookup(&f);
		kl_disk_facts_free(&f);
		return 0;
	}

	struct kl_calibration *c;
	struct kl_error err = KL_ERROR_INIT;
	if (kl_calibrate(argv[i], &o, &c, &err) < 0) {
		fprintf(stderr, "calibrate-cli: %s\n", err.msg);
		return 1;
	}
	if (json) {
		json_object *j = kl_calibration_json(c);
		puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(j);
	} else if (kv) {
		print_kv(c, stdout);
	} else {
		kl_calibration_print(c, stdout);
	}
	fflush(stdout);
	int rc = 0;
	if (kv_out) {
		FILE *f = fopen(kv_out, "we");
		if (!f) {
			perror(kv_out);
			rc = 1;
		} else {
			print_kv(c, f);
			fclose(f);
		}
	}
	if (cache_dir) {
		char *p = NULL;
		if (kl_calibration_store(cache_dir, c, &p, &err) < 0) {
			fprintf(stderr, "calibrate-cli: %s\n", err.msg);
			rc = 1;
		} else {
			fprintf(stderr, "stored %s\n", p);
		}
		free(p);
	}
	kl_calibration_free(c);
	return rc;
}
