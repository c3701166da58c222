/* Test helper: launch QEMU the way kvm-launch does after its policy step,
 * without the argv model or the policy: the disks are described on the
 * command line, then kl_state_prepare, kl_state_add_monitors,
 * kl_state_write, kl_agent_spawn and execv of QEMU, same PID.
 *
 *   state-launch STATEDIR NAME QEMU [--disk KEY=VAL,...]... -- QEMU-ARGS...
 *   state-launch --agent STATEFILE        (the agent re-executes us)
 *
 * --disk keys: id, node, path, driver, format, aio, cache, given_aio,
 * given_cache, shared=yes|no, backend, fs, rule, reason, takes_aio=yes|no,
 * and any throttle key (iops, bps, iops_max...).  NAME "" means no -name. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "launcher/vm/agent.h"
#include "launcher/launch.h"
#include "launcher/vm/state.h"

static bool yes(const char *v)
{
	return strcmp(v, "yes") == 0 || strcmp(v, "on") == 0 || strcmp(v, "true") == 0;
}

static int parse_disk(char *spec, struct kl_disk_given *g, struct kl_disk_result *d)
{
	d->given = g;
	d->takes_aio = true;
	d->facts.backend = KL_BACKEND_FILE;
	strcpy(d->facts.fs, "ext4");
	strcpy(d->facts.format, "raw");
	d->facts.shared = KL_TRI_NO;
	d->facts.odirect = KL_TRI_YES;
	snprintf(d->decision.rule, sizeof d->decision.rule, "test:helper");
	for (char *tok = strtok(spec, ","); tok; tok = strtok(NULL, ",")) {
		char *eq = strchr(tok, '=');
		if (!eq) {
			fprintf(stderr, "state-launch: bad --disk item %s\n", tok);
			return -1;
		}
		*eq = '\0';
		const char *k = tok, *v = eq + 1;
		int64_t n = strtoll(v, NULL, 10);
		if (!strcmp(k, "id")) g->id = v;
		else if (!strcmp(k, "node")) g->node = v;
		else if (!strcmp(k, "path")) g->path = v;
		else if (!strcmp(k, "driver")) g->driver = v;
		else if (!strcmp(k, "format")) { g->format = v; snprintf(d->facts.format, sizeof d->facts.format, "%s", v); }
		else if (!strcmp(k, "aio")) kl_aio_parse(v, &d->aio);
		else if (!strcmp(k, "cache")) kl_cache_parse(v, &d->cache);
		else if (!strcmp(k, "given_aio")) kl_aio_parse(v, &g->aio);
		else if (!strcmp(k, "given_cache")) kl_cache_parse(v, &g->cache);
		else if (!strcmp(k, "shared")) d->facts.shared = yes(v) ? KL_TRI_YES : KL_TRI_NO;
		else if (!strcmp(k, "takes_aio")) d->takes_aio = yes(v);
		else if (!strcmp(k, "backend")) d->facts.backend = !strcmp(v, "block") ? KL_BACKEND_BLOCK : KL_BACKEND_FILE;
		else if (!strcmp(k, "fs")) snprintf(d->facts.fs, sizeof d->facts.fs, "%s", v);
		else if (!strcmp(k, "rule")) snprintf(d->decision.rule, sizeof d->decision.rule, "%s", v);
		else if (!strcmp(k, "reason")) strvec_push_dup(&d->decision.reasons, v);
#define T(f) else if (!strcmp(k, #f)) { d->decision.throttle.f = n; d->decision.has_throttle = true; }
		T(bps) T(bps_rd) T(bps_wr) T(iops) T(iops_rd) T(iops_wr)
		T(bps_max) T(bps_rd_max) T(bps_wr_max) T(iops_max) T(iops_rd_max) T(iops_wr_max) T(iops_size)
#undef T
		else {
			fprintf(stderr, "state-launch: unknown --disk key %s\n", k);
			return -1;
		}
	}
	d->decision.changed = d->aio != g->aio || d->cache != g->cache;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--agent") == 0)
		return kl_agent_main(argv[2]);
	if (argc < 5) {
		fprintf(stderr, "usage: state-launch STATEDIR NAME QEMU [--disk SPEC]... -- QEMU-ARGS...\n");
		return 2;
	}
	struct kl_launch l;
	struct kl_error err = KL_ERROR_INIT;
	memset(&l, 0, sizeof l);
	const char *dir = argv[1];
	l.qemu = xstrdup(argv[3]);
	l.vm.name = argv[2][0] ? argv[2] : NULL;
	l.host.aio_nr = l.host.aio_max_nr = -1;

	int i = 4;
	size_t cap = 8;
	struct kl_disk_given *given = xcalloc(cap, sizeof *given);
	l.disks = xcalloc(cap, sizeof *l.disks);
	for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--disk") != 0 || i + 1 >= argc || l.ndisks == cap) {
			fprintf(stderr, "state-launch: bad argument %s\n", argv[i]);
			return 2;
		}
		if (parse_disk(argv[++i], &given[l.ndisks], &l.disks[l.ndisks]) < 0)
			return 2;
		l.ndisks++;
	}
	if (i >= argc) {
		fprintf(stderr, "state-launch: missing --\n");
		return 2;
	}
	i++;
	l.argc = argc - i;
	l.argv = argv + i;
	strvec_push_dup(&l.exec_argv, l.qemu);
	for (int k = 0; k < l.argc; k++) {
		strvec_push_dup(&l.exec_argv, l.argv[k]);
		if (strcmp(l.argv[k], "-incoming") == 0)
			l.vm.incoming = true;
	}

	kl_log_set_level(KL_LOG_INFO);
	if (kl_state_prepare(&l, dir, &err) < 0) {
		kl_warn("no state: %s", err.msg);
	} else {
		kl_state_add_monitors(&l);
		if (kl_state_write(&l, &err) < 0)
			kl_warn("no state: %s", err.msg);
		else if (kl_agent_spawn(&l, &err) < 0)
			kl_warn("no agent: %s", err.msg);
	}
	fflush(NULL);
	char **xargv = strvec_terminate(&l.exec_argv);
	execv(xargv[0], xargv);
	fprintf(stderr, "state-launch: exec %s: %s\n", xargv[0], strerror(errno));
	return 127;
}
