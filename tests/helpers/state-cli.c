/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Test helper: the --status and --set modes without the rest of kvm-launch.
 *
 *   state-cli status STATEDIR [--json|--prometheus] [NAME]
 *   state-cli set STATEDIR [--force] NAME DISK SETTING...
 *   state-cli rss PID          (VmRSS in KiB, as the agent test reports it)
 *   state-cli memory PID       (VmRSS, Pss, private and anonymous KiB) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "launcher/vm/procinfo.h"
#include "launcher/vm/set.h"
#include "launcher/vm/status.h"

int main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[1], "status") == 0) {
		bool json = false, prom = false;
		int i = 3;
		for (; i < argc && argv[i][0] == '-'; i++) {
			if (strcmp(argv[i], "--json") == 0)
				json = true;
			else if (strcmp(argv[i], "--prometheus") == 0)
				prom = true;
		}
		return kl_status_main(argv[2], i < argc ? argv[i] : NULL, json, prom);
	}
	if (argc >= 3 && strcmp(argv[1], "set") == 0) {
		bool force = argc > 3 && strcmp(argv[3], "--force") == 0;
		int i = force ? 4 : 3;
		return kl_set_main(argv[2], argc - i, argv + i, force);
	}
	if (argc == 3 && strcmp(argv[1], "rss") == 0) {
		printf("%ld\n", kl_proc_vmrss_kib((pid_t)atoi(argv[2])));
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "memory") == 0) {
		/* VmRSS counts every mapped page of the shared libraries; Pss and
		 * the private pages are what the process really costs. */
		char path[64], line[256];
		snprintf(path, sizeof path, "/proc/%s/smaps_rollup", argv[2]);
		FILE *f = fopen(path, "r");
		long pss = -1, priv = 0, anon = -1;
		while (f && fgets(line, sizeof line, f)) {
			if (strncmp(line, "Pss:", 4) == 0)
				pss = strtol(line + 4, NULL, 10);
			else if (strncmp(line, "Private_Clean:", 14) == 0 || strncmp(line, "Private_Dirty:", 14) == 0)
				priv += strtol(line + 14, NULL, 10);
			else if (strncmp(line, "Anonymous:", 10) == 0)
				anon = strtol(line + 10, NULL, 10);
		}
		if (f)
			fclose(f);
		printf("VmRSS %ld KiB, Pss %ld KiB, private %ld KiB, anonymous %ld KiB\n",
		       kl_proc_vmrss_kib((pid_t)atoi(argv[2])), pss, priv, anon);
		return 0;
	}
	fprintf(stderr, "usage: state-cli status|set|rss ...\n");
	return 2;
}
