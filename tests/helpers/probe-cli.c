/* SPDX-License-Identifier: GPL-2.0-or-later */
/* probe-cli: print what the probes find, as key=value lines, for shell tests
 * and for a look at a real host.
 *   probe-cli [--driver D] [--format F] [--cdrom] PATH...   facts per disk
 *   probe-cli --host                                        host facts
 *   probe-cli --bench N PATH...                             time N rounds
 * Disks are separated by an empty line. */
#include "policy/probe/probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *tri(enum kl_tri t)
{
	return t == KL_TRI_YES ? "yes" : t == KL_TRI_NO ? "no" : "unknown";
}

static void print_disk(const char *path, const struct kl_disk_facts *f)
{
	printf("path=%s\n", path);
	printf("backend=%s\n", kl_backend_name(f->backend));
	printf("block_kind=%s\n", kl_block_kind_name(f->block_kind));
	printf("rotational=%s\n", tri(f->rotational));
	printf("fs=%s\n", f->fs);
	printf("fs_magic=0x%lx\n", f->fs_magic);
	printf("format=%s\n", f->format);
	printf("preallocated=%s\n", tri(f->preallocated));
	printf("cow=%s\n", tri(f->cow));
	printf("shared=%s\n", tri(f->shared));
	printf("odirect=%s\n", tri(f->odirect));
	printf("network_driver=%s\n", f->network_driver);
	printf("storage_id=%s\n", f->storage_id);
	for (size_t i = 0; i < f->notes.n; i++)
		printf("note=%s\n", f->notes.v[i]);
}

static void print_host(const struct kl_host_facts *h)
{
	printf("io_uring_kernel=%s\n", tri(h->io_uring_kernel));
	printf("io_uring_qemu=%s\n", tri(h->io_uring_qemu));
	printf("libaio=%s\n", tri(h->libaio));
	printf("aio_nr=%ld\n", h->aio_nr);
	printf("aio_max_nr=%ld\n", h->aio_max_nr);
	printf("libaio_headroom=%s\n", tri(h->libaio_headroom));
	for (size_t i = 0; i < h->notes.n; i++)
		printf("note=%s\n", h->notes.v[i]);
}

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int usage(void)
{
	fprintf(stderr, "usage: probe-cli [--driver D] [--format F] [--cdrom] [--readonly] PATH...\n"
			"       probe-cli --host\n"
			"       probe-cli --bench N [--host] PATH...\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct kl_disk_given given = { 0 };
	bool host = false;
	long bench = 0;
	int i;

	for (i = 1; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else if (strcmp(argv[i], "--driver") == 0 && i + 1 < argc) {
			given.driver = argv[++i];
		} else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
			given.format = argv[++i];
		} else if (strcmp(argv[i], "--cdrom") == 0) {
			given.cdrom = true;
		} else if (strcmp(argv[i], "--readonly") == 0) {
			given.readonly = true;
		} else if (strcmp(argv[i], "--host") == 0) {
			host = true;
		} else if (strcmp(argv[i], "--bench") == 0 && i + 1 < argc) {
			bench = strtol(argv[++i], NULL, 10);
		} else {
			return usage();
		}
	}
	if (i == argc && !host)
		return usage();

	if (bench > 0) {
		int ndisks = argc - i;
		struct kl_error err = KL_ERROR_INIT;
		/* one warm-up round, then N timed rounds */
		double best = 1e18, total = 0, host_total = 0;
		for (long r = -1; r < bench; r++) {
			double t0 = now_us();
			for (int k = i; k < argc; k++) {
				struct kl_disk_facts f;
				given.path = argv[k];
				if (kl_probe_disk(&kl_probe_env_real, &given, &f, &err) < 0) {
					fprintf(stderr, "probe-cli: %s\n", err.msg);
					return 1;
				}
				kl_disk_facts_free(&f);
			}
			double t1 = now_us();
			if (host) {
				struct kl_host_facts h;
				kl_probe_host(&kl_probe_env_real, &h, &err);
				kl_host_facts_free(&h);
			}
			double t2 = now_us();
			if (r >= 0) {
				total += t1 - t0;
				host_total += t2 - t1;
				if (t1 - t0 < best)
					best = t1 - t0;
			}
		}
		printf("disks=%d\nrounds=%ld\n", ndisks, bench);
		printf("disks_us_mean=%.1f\ndisks_us_best=%.1f\n", total / bench, best);
		printf("per_disk_us_mean=%.1f\n", ndisks ? total / bench / ndisks : 0.0);
		if (host)
			printf("host_us_mean=%.1f\n", host_total / bench);
		return 0;
	}

	if (host) {
		struct kl_host_facts h;
		struct kl_error err = KL_ERROR_INIT;
		if (kl_probe_host(&kl_probe_env_real, &h, &err) < 0) {
			fprintf(stderr, "probe-cli: %s\n", err.msg);
			return 1;
		}
		print_host(&h);
		kl_host_facts_free(&h);
		if (i < argc)
			printf("\n");
	}
	for (int k = i; k < argc; k++) {
		struct kl_disk_facts f;
		struct kl_error err = KL_ERROR_INIT;
		given.path = argv[k];
		if (kl_probe_disk(&kl_probe_env_real, &given, &f, &err) < 0) {
			fprintf(stderr, "probe-cli: %s\n", err.msg);
			return 1;
		}
		if (k > i)
			printf("\n");
		print_disk(argv[k], &f);
		kl_disk_facts_free(&f);
	}
	return 0;
}
