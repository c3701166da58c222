/* SPDX-License-Identifier: GPL-2.0-or-later */
/* kvm-launch's own command-line options.  They are long options QEMU does
 * not have, and only count before the QEMU arguments: `kvm-launch ARGS...`
 * (libvirt) gives everything to QEMU; `kvm-launch [OPTIONS] -- ARGS...` is
 * for hand use. */
#ifndef KL_LAUNCHER_OPTIONS_H
#define KL_LAUNCHER_OPTIONS_H

#include <stdbool.h>
#include <stdio.h>
#include "common/error.h"

enum kl_mode {
	KL_MODE_LAUNCH = 0,
	KL_MODE_DRY_RUN,
	KL_MODE_EXPLAIN,
	KL_MODE_STATUS,
	KL_MODE_SET,
	KL_MODE_CHECK_POLICY,
	KL_MODE_CALIBRATE,
	KL_MODE_AGENT,
	KL_MODE_TOP,
	KL_MODE_HELP,
	KL_MODE_VERSION,
};

struct kl_options {
	enum kl_mode mode;
	const char *config;      /* --config FILE */
	bool config_given;
	const char *qemu;        /* --qemu PATH */
	const char *state_dir;   /* --state-dir DIR */
	bool json;
	bool prometheus;
	bool force;
	bool write;              /* --calibrate --write */
	int seconds;             /* --calibrate --seconds N */
	const char *interval;    /* --top --interval S (checked by kvm-launch-top) */
	int verbose;             /* -v/--verbose count; --debug = 2 */
	bool trace_qmp;
	const char *mode_arg;    /* --check-policy [FILE], --agent STATEFILE, --calibrate PATH */
	/* What follows: QEMU's arguments (launch, dry-run, explain) or the
	 * mode's operands (status NAME, set NAME DISK SETTING...). */
	int rest_argc;
	char **rest_argv;
};

/* Returns 0, or -1 with err for a usage error. */
int kl_options_parse(int argc, char **argv, struct kl_options *o, struct kl_error *err);
void kl_usage(FILE *f);

#endif
