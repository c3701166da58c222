/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Building a launch: parse, probe, decide, rewrite. */
#ifndef KL_LAUNCHER_PREPARE_H
#define KL_LAUNCHER_PREPARE_H

#include "launcher/launch.h"

struct kl_prepare_config {
	const struct kl_probe_env *probe_env;
	const char *cache_dir;   /* probe and calibration cache; may be NULL */
	/* Fills facts->aio_ranking/calibration from a stored calibration; may be NULL. */
	void (*lookup_calibration)(const char *cache_dir, struct kl_disk_facts *facts);
};

/* l->qemu, l->argc and l->argv must be set.  On success l->exec_argv holds
 * the rewritten command line.  On failure (-1, err set) l->failed_open is
 * set and l->exec_argv holds the original command line, so the caller can
 * fail open.  A capability probe sets l->not_a_vm and keeps the
 * original command line. */
int kl_launch_prepare(struct kl_launch *l, const struct kl_policy *policy, const struct kl_prepare_config *cfg,
		      struct kl_error *err);

#endif
