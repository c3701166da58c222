/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/options.h"

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct option_def {
	const char *name;
	bool takes_value;
	int id;
};

enum {
	OPT_CONFIG, OPT_QEMU, OPT_STATE_DIR, OPT_DRY_RUN, OPT_EXPLAIN, OPT_JSON, OPT_PROMETHEUS,
	OPT_STATUS, OPT_SET, OPT_CHECK_POLICY, OPT_CALIBRATE, OPT_AGENT, OPT_HELP, OPT_VERSION,
	OPT_VERBOSE, OPT_DEBUG, OPT_TRACE_QMP, OPT_FORCE, OPT_WRITE, OPT_SECONDS,
	OPT_TOP, OPT_INTERVAL,
};

/* None of these is a QEMU option (QEMU takes both -opt and --opt spellings,
 * so any name we add here must not exist in qemu-options.hx). */
static const struct option_def defs[] = {
	{ "--config", true, OPT_CONFIG },
	{ "--qemu", true, OPT_QEMU },
	{ "--state-dir", true, OPT_STATE_DIR },
	{ "--dry-run", false, OPT_DRY_RUN },
	{ "--explain", false, OPT_EXPLAIN },
	{ "--json", false, OPT_JSON },
	{ "--prometheus", false, OPT_PROMETHEUS },
	{ "--status", false, OPT_STATUS },
	{ "--set", false, OPT_SET },
	{ "--check-policy", false, OPT_CHECK_POLICY },
	{ "--calibrate", true, OPT_CALIBRATE },
	{ "--seconds", true, OPT_SECONDS },
	{ "--write", false, OPT_WRITE },
	{ "--agent", true, OPT_AGENT },
	{ "--help", false, OPT_HELP },
	{ "--version", false, OPT_VERSION },
	{ "--verbose", false, OPT_VERBOSE },
	{ "--debug", false, OPT_DEBUG },
	{ "--trace-qmp", false, OPT_TRACE_QMP },
	{ "--force", false, OPT_FORCE },
	{ "--top", false, OPT_TOP },
	{ "--interval", true, OPT_INTERVAL },
};

static const struct option_def *find_option(const char *arg, const char **inline_value)
{
	*inline_value = NULL;
	for (size_t i = 0; i < sizeof defs / sizeof *defs; i++) {
		size_t n = strlen(defs[i].name);
		if (strncmp(arg, defs[i].name, n) != 0)
			continue;
		if (arg[n] == '\0')
			return &defs[i];
		if (arg[n] == '=' && defs[i].takes_value) {
			*inline_value = arg + n + 1;
			return &defs[i];
		}
	}
	return NULL;
}

static int set_mode(struct kl_options *o, enum kl_mode mode, const char *name, struct kl_error *err)
{
	if (o->mode != KL_MODE_LAUNCH && o->mode != mode)
		return kl_error_fail(err, "%s cannot be combined with another mode option", name);
	o->mode = mode;
	return 0;
}

/* Applies one of our options; *i advances past its value. */
static int apply_option(const struct option_def *d, const char *value, int argc, char **argv, int *i,
			struct kl_options *o, struct kl_error *err)
{
	if (d->takes_value && !value) {
		if (*i + 1 >= argc)
			return kl_error_fail(err, "option %s needs a value", d->name);
		value = argv[++*i];
	}
	switch (d->id) {
	case OPT_CONFIG: o->config = value; o->config_given = true; break;
	case OPT_QEMU: o->qemu = value; break;
	case OPT_STATE_DIR: o->state_dir = value; break;
	case OPT_DRY_RUN:
		if (o->mode == KL_MODE_EXPLAIN)
			break; /* --explain already execs nothing */
		return set_mode(o, KL_MODE_DRY_RUN, d->name, err);
	case OPT_EXPLAIN:
		if (o->mode == KL_MODE_DRY_RUN)
			o->mode = KL_MODE_LAUNCH;
		return set_mode(o, KL_MODE_EXPLAIN, d->name, err);
	case OPT_JSON: o->json = true; break;
	case OPT_PROMETHEUS: o->prometheus = true; break;
	case OPT_STATUS: return set_mode(o, KL_MODE_STATUS, d->name, err);
	case OPT_TOP: return set_mode(o, KL_MODE_TOP, d->name, err);
	case OPT_INTERVAL: {
		char *end;
		double s = strtod(value, &end);
		if (*value == '\0' || *end || !(s >= 0.5 && s <= 3600))
			return kl_error_fail(err, "--interval: expected 0.5 to 3600 seconds, got '%s'", value);
		o->interval = value;
		break;
	}
	case OPT_SET: return set_mode(o, KL_MODE_SET, d->name, err);
	case OPT_CHECK_POLICY: return set_mode(o, KL_MODE_CHECK_POLICY, d->name, err);
	case OPT_CALIBRATE:
		o->mode_arg = value;
		return set_mode(o, KL_MODE_CALIBRATE, d->name, err);
	case OPT_AGENT:
		o->mode_arg = value;
		return set_mode(o, KL_MODE_AGENT, d->name, err);
	case OPT_HELP: o->mode = KL_MODE_HELP; break;
	case OPT_VERSION: o->mode = KL_MODE_VERSION; break;
	case OPT_VERBOSE: o->verbose = o->verbose < 1 ? 1 : o->verbose; break;
	case OPT_DEBUG: o->verbose = 2; break;
	case OPT_TRACE_QMP: o->trace_qmp = true; break;
	case OPT_FORCE: o->force = true; break;
	case OPT_WRITE: o->write = true; break;
	case OPT_SECONDS: {
		char *end;
		long sec = strtol(value, &end, 10);
		if (*value == '\0' || *end || sec < 1 || sec > 3600)
			return kl_error_fail(err, "--seconds: expected 1 to 3600, got '%s'", value);
		o->seconds = (int)sec;
		break;
	}
	}
	return 0;
}

static bool mode_takes_operands(enum kl_mode mode)
{
	return mode == KL_MODE_STATUS || mode == KL_MODE_SET || mode == KL_MODE_TOP || mode == KL_MODE_CHECK_POLICY ||
	       mode == KL_MODE_CALIBRATE || mode == KL_MODE_HELP || mode == KL_MODE_VERSION;
}

int kl_options_parse(int argc, char **argv, struct kl_options *o, struct kl_error *err)
{
	const char *value;
	const struct option_def *d;
	int i = 1;

	memset(o, 0, sizeof *o);
	o->seconds = 15;
	/* Launch modes: our options end at "--" or at the first argument that
	 * is not ours; all that follows is QEMU's, byte for byte. */
	for (; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (!(d = find_option(argv[i], &value)))
			break;
		if (apply_option(d, value, argc, argv, &i, o, err) < 0)
			return -1;
	}
	o->rest_argc = argc - i;
	o->rest_argv = argv + i;
	if (!mode_takes_operands(o->mode))
		return 0;

	/* Other modes: options may follow their operands (--status vm1 --json).
	 * Operands are compacted in place at the front of the rest. */
	int n = 0;
	for (int j = i; j < argc; j++) {
		if ((d = find_option(argv[j], &value))) {
			if (apply_option(d, value, argc, argv, &j, o, err) < 0)
				return -1;
			continue;
		}
		if (strcmp(argv[j], "--") == 0)
			continue;
		argv[i + n++] = argv[j];
	}
	o->rest_argc = n;
	if (o->mode == KL_MODE_CHECK_POLICY && o->rest_argc > 0) {
		o->mode_arg = o->rest_argv[0];
		o->rest_argc--;
		o->rest_argv++;
	}
	return 0;
}

void kl_usage(FILE *f)
{
	fputs("Usage: kvm-launch QEMU-ARGS...                    (as libvirt's <emulator>)\n"
	      "       kvm-launch [OPTIONS] -- QEMU-ARGS...\n"
	      "       kvm-launch --explain [--json] -- QEMU-ARGS...\n"
	      "       kvm-launch --dry-run [--json] -- QEMU-ARGS...\n"
	      "       kvm-launch --status [NAME] [--json | --prometheus]\n"
	      "       kvm-launch --top [--interval S]\n"
	      "       kvm-launch --set NAME DISK SETTING... [--force]\n"
	      "       kvm-launch --check-policy [FILE]\n"
	      "       kvm-launch --calibrate PATH [--seconds N] [--write] [--json]\n"
	      "\n"
	      "Rewrites each disk's aio= and cache= on a QEMU command line from a policy,\n"
	      "then execs the real QEMU in place.  kvm-launch's options come before the\n"
	      "QEMU arguments; everything else (including -help and -version) is QEMU's.\n"
	      "\n"
	      "Options:\n"
	      "  --config FILE       policy file (default " KL_DEFAULT_CONFIG ")\n"
	      "  --qemu PATH         the real QEMU binary\n"
	      "  --state-dir DIR     this private directory (ours, not group-writable) for VM state\n"
	      "  --dry-run           print what would be exec'd, one argument per line; exec nothing\n"
	      "  --explain           print each disk's decision as a table; exec nothing\n"
	      "  --json              JSON output for --dry-run, --explain, --status and --calibrate\n"
	      "  --prometheus        Prometheus text format for --status\n"
	      "  --status [NAME]     every VM launched through kvm-launch: disks, modes, live I/O\n"
	      "  --top               live view of every VM's disks: IOPS, MB/s, latency, settings\n"
	      "  --interval S        seconds between --top refreshes (default 2)\n"
	      "  --set NAME DISK S.. change a running VM: cache=none|writeback|unsafe, iops=N, bps=N, ...\n"
	      "  --force             allow --set changes that are refused by default\n"
	      "  --check-policy [F]  validate a policy file; exit 1 on errors\n"
	      "  --calibrate PATH    measure the storage behind PATH with each aio engine (threads,\n"
	      "                      native, io_uring) and store the ranking that aio=auto follows\n"
	      "  --seconds N         how long --calibrate measures (default 15)\n"
	      "  --write             let --calibrate write to a block device (destroys its data)\n"
	      "  --verbose           log each decision; --debug for more; --trace-qmp for QMP traffic\n"
	      "  --help, --version\n", f);
}
