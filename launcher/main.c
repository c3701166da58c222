/* SPDX-License-Identifier: GPL-2.0-or-later */
/* kvm-launch: stands where QEMU is expected, rewrites each disk's aio= and
 * cache= from the policy, and execs the real QEMU in place. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "policy/calibrate/calibrate.h"
#include "policy/policy.h"
#include "policy/probe/probe.h"
#include "launcher/argv/name.h"
#include "launcher/vm/agent.h"
#include "launcher/vm/detach.h"
#include "launcher/vm/relay.h"
#include "launcher/calibrate-mode.h"
#include "launcher/exec.h"
#include "launcher/follow.h"
#include "launcher/launch.h"
#include "launcher/options.h"
#include "launcher/prepare.h"
#include "launcher/qemu_target.h"
#include "launcher/report.h"
#include "launcher/start-timing.h"
#include "launcher/top.h"
#include "launcher/vm/set.h"
#include "launcher/vm/state.h"
#include "launcher/vm/status.h"

#define GUARD_TIMEOUT_S 20

/* The policy to use: --config, else the default file; a missing default file
 * means the built-in rules.  Returns NULL (err set) when the file exists but
 * cannot be used. */
static struct kl_policy *load_policy(const struct kl_options *o, struct kl_error *err)
{
	const char *path = o->config ? o->config : KL_DEFAULT_CONFIG;
	struct kl_policy *p = NULL;
	_cleanup_strvec_ struct strvec warnings = STRVEC_INIT;

	if (access(path, F_OK) < 0 && errno == ENOENT) {
		if (o->config_given)
			kl_warn("policy file %s does not exist: using the built-in rules", path);
		else
			kl_debug("no policy file at %s: using the built-in rules", path);
		return kl_policy_builtin();
	}
	/* Its safety checks are made on the fd it reads. */
	if (kl_policy_load_file(path, &p, &warnings, err) < 0)
		return NULL;
	for (size_t i = 0; i < warnings.n; i++)
		kl_info("%s", warnings.v[i]);
	return p;
}

/* --qemu as given; else "qemu =" or configure's path, for the target kvm-launch
 * runs as (installed or diverted as qemu-system-TARGET: that target's binary). */
static char *choose_qemu(const struct kl_options *o, const struct kl_policy *p, const char *argv0)
{
	if (o->qemu)
		return xstrdup(o->qemu);
	const char *configured = p && kl_policy_globals(p)->qemu ? kl_policy_globals(p)->qemu : KL_DEFAULT_QEMU;
	_cleanup_free_ char *invoked = kl_qemu_invoked_as(argv0);
	char *kvm = kl_qemu_for_kvm_name(invoked);
	if (kvm) {
		kl_debug("running as %s: the real QEMU is %s (configured: %s)", invoked, kvm, configured);
		return kvm;
	}
	char *qemu = kl_qemu_for_target(configured, invoked);
	if (strcmp(qemu, configured) != 0)
		kl_debug("running as %s: the real QEMU is %s (configured: %s)", invoked, qemu, configured);
	return qemu;
}

static const char *choose_state_dir(const struct kl_options *o, const struct kl_policy *p)
{
	if (o->state_dir)
		return o->state_dir;
	if (p && kl_policy_globals(p)->state_dir)
		return kl_policy_globals(p)->state_dir;
	return NULL; /* kl_state_prepare picks the default */
}

static const char *choose_cache_dir(const struct kl_policy *p)
{
	if (p && kl_policy_globals(p)->cache_dir)
		return kl_policy_globals(p)->cache_dir;
	return KL_DEFAULT_CACHE_DIR;
}

static void log_decisions(const struct kl_launch *l)
{
	for (size_t i = 0; i < l->ndisks; i++) {
		const struct kl_disk_result *d = &l->disks[i];
		if (!d->decision.changed)
			continue;
		kl_info("%s: disk %s: aio=%s cache=%s (rule %s)", l->vm.name ? l->vm.name : "vm",
			d->given->id ? d->given->id : d->given->node ? d->given->node : "?",
			kl_report_aio(d), kl_report_cache(d), d->decision.rule);
	}
}

/* State, monitors and agent are extras: a VM starts without them. */
static void set_up_state(struct kl_launch *l, const char *state_dir, const struct kl_relay_config *relay)
{
	struct kl_error err = KL_ERROR_INIT;
	kl_detach_exec_follows(); /* QEMU's exec comes next, whatever happens here */

	if (kl_state_prepare(l, state_dir, &err) < 0) {
		kl_warn("no state for this VM (--status will not list it): %s", err.msg);
		return;
	}
	/* Before any helper is started: they share this process's memory,
	 * and with it its oom_score_adj, until their exec; then each goes one
	 * below (an unprivileged process may go back down to where it was). */
	kl_detach_oom_rank_qemu();
	kl_start_mark("state");
	size_t plain_argc = l->exec_argv.n;
	kl_state_add_monitors(l);
	kl_start_mark("monitors");
	/* Started now, it execs only after QEMU's exec (so it finds the
	 * state file written below); its first child is done by then. */
	if (kl_agent_spawn(l, &err) < 0)
		kl_warn("no agent for this VM (live settings not applied): %s", err.msg);
	kl_start_mark("agent");
	if (relay) {
		kl_relay_setup(l, relay);
		kl_start_mark("relays");
	}
	if (kl_state_write(l, &err) < 0) {
		kl_warn("no state for this VM (--status will not list it): %s", err.msg);
		while (l->exec_argv.n > plain_argc)
			free(l->exec_argv.v[--l->exec_argv.n]);
		l->exec_argv.v[l->exec_argv.n] = NULL;
		kl_state_fds_free(steal_pointer(&l->state_fds));
		return;
	}
	kl_start_mark("state-file");
}

/* A fail-open VM still gets a state file (no monitors, no agent: the
 * command line stays the original), so that --status and the
 * kvm_launch_vm_failed_open metric show that its policy was not applied.
 * Best effort and quiet: the VM starts either way. */
static void record_failed_open(struct kl_launch *l, const char *state_dir, const char *why)
{
	struct kl_error err = KL_ERROR_INIT;
	/* The model may not have got as far as -name: read just that. */
	_cleanup_free_ char *name = l->vm.name ? NULL : kl_argv_guess_name(l->argc, l->argv);

	if (name)
		l->vm.name = name;
	l->failed_open_why = xstrdup(why);
	if (kl_state_prepare(l, state_dir, &err) < 0) {
		kl_debug("fail-open not recorded: %s", err.msg);
		goto out;
	}
	/* No monitors were added: name none. */
	free(steal_pointer(&l->agent_socket));
	free(steal_pointer(&l->query_socket));
	free(steal_pointer(&l->agent_log));
	if (kl_state_write(l, &err) < 0)
		kl_debug("fail-open not recorded: %s", err.msg);
out:
	if (name)
		l->vm.name = NULL;
}

/* The launch is decided: state, agent and relays (or following a
 * -daemonize), then exec QEMU.  Returns only on failure, or with the
 * launching process's status when -daemonize is followed.  why: the
 * reason the policy was not applied (fail-open), else unused. */
static int start_qemu(struct kl_launch *l, const struct kl_options *o, struct kl_policy *policy, const char *why)
{
	struct kl_error err = KL_ERROR_INIT;

	kl_start_mark("decision");
	if (!l->untouched_why && !l->failed_open) {
		log_decisions(l);
		kl_start_mark("log");
		struct kl_relay_config relay = { o->config ? o->config : KL_DEFAULT_CONFIG, choose_cache_dir(policy) };
		if (kl_follow_wanted(l)) {
			kl_exec_guard_disarm();
			return kl_follow_run(l, choose_state_dir(o, policy),
					   policy && kl_policy_globals(policy)->monitor_relay ? &relay : NULL);
		}
		set_up_state(l, choose_state_dir(o, policy),
			     policy && kl_policy_globals(policy)->monitor_relay ? &relay : NULL);
	} else if (l->failed_open && !l->untouched_why) {
		record_failed_open(l, choose_state_dir(o, policy), why);
	}
	kl_exec_guard_disarm();
	fflush(NULL);
	/* Only now may QEMU's monitor listeners survive an exec. */
	kl_state_pass_fds(l);
	kl_relay_pass_fds(l);
	kl_detach_reap();
	kl_start_mark("exec");
	kl_start_report();
	kl_exec_qemu(strvec_terminate(&l->exec_argv), &err);
	kl_err("%s", err.msg);
	return 127;
}

static int launch_main(const struct kl_options *o, const char *argv0)
{
	struct kl_error err = KL_ERROR_INIT;
	struct kl_launch l = { 0 };
	bool exec_mode = o->mode == KL_MODE_LAUNCH;
	/* Reading the policy is guarded too: a crash or hang there starts the
	 * QEMU known without it, unless that is kvm-launch itself (a diversion
	 * whose policy names the real binary), which would only run into the
	 * same failure again: then the start is refused. */
	_cleanup_strvec_ struct strvec early = STRVEC_INIT;
	if (exec_mode) {
		_cleanup_free_ char *early_qemu = choose_qemu(o, NULL, argv0);
		strvec_push_dup(&early, early_qemu);
		for (int i = 0; i < o->rest_argc; i++)
			strvec_push_dup(&early, o->rest_argv[i]);
		kl_exec_guard_arm(strvec_terminate(&early), kl_exec_is_self(early.v[0]), GUARD_TIMEOUT_S);
	}
	kl_start_mark("main");
	struct kl_policy *policy = load_policy(o, &err);
	kl_start_mark("policy");
	/* A policy that fails to load still says what to do on errors, unless
	 * the file is refused as unsafe: then nothing in it is believed (others
	 * could write "on-error = refuse" and stop every VM from starting). */
	const char *path = o->config ? o->config : KL_DEFAULT_CONFIG;
	bool refuse = policy ? kl_policy_globals(policy)->on_error == KL_ON_ERROR_REFUSE
			     : kl_policy_check_file_safety(path, NULL) == 0 &&
				       kl_policy_file_on_error(path) == KL_ON_ERROR_REFUSE;
	int rc = 0;

	l.qemu = choose_qemu(o, policy, argv0);
	l.argc = o->rest_argc;
	l.argv = o->rest_argv;
	if (kl_exec_is_self(l.qemu)) {
		kl_exec_guard_disarm();
		kl_err("the real QEMU (%s) is kvm-launch itself: set 'qemu =' in the policy file or use --qemu", l.qemu);
		kl_launch_free(&l);
		kl_policy_free(policy);
		return 1;
	}

	struct strvec original = STRVEC_INIT;
	strvec_push_dup(&original, l.qemu);
	for (int i = 0; i < l.argc; i++)
		strvec_push_dup(&original, l.argv[i]);
	if (exec_mode)
		kl_exec_guard_update(strvec_terminate(&original), refuse);

	if (!policy && refuse) {
		kl_err("%s; refusing to start (on-error = refuse)", err.msg);
		rc = 1;
		goto out;
	} else if (!policy) {
		kl_err("%s; starting QEMU with the original arguments", err.msg);
		l.failed_open = true;
		strvec_free(&l.exec_argv);
		for (size_t i = 0; i < original.n; i++)
			strvec_push_dup(&l.exec_argv, original.v[i]);
	} else {
		struct kl_prepare_config cfg = {
			.probe_env = &kl_probe_env_real,
			.cache_dir = choose_cache_dir(policy),
			.lookup_calibration = kl_calibration_lookup,
		};
		if (kl_launch_prepare(&l, policy, &cfg, &err) < 0) {
			if (refuse) {
				kl_err("%s; refusing to start (on-error = refuse)", err.msg);
				rc = 1;
				goto out;
			}
			kl_err("%s; starting QEMU with the original arguments", err.msg);
		}
	}

	switch (o->mode) {
	case KL_MODE_DRY_RUN:
	case KL_MODE_EXPLAIN:
		if (o->json) {
			_cleanup_json_ json_object *j = kl_report_json(&l);
			puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
		} else if (o->mode == KL_MODE_DRY_RUN) {
			kl_report_argv(&l, stdout);
		} else {
			kl_report_explain(&l, stdout);
		}
		goto out;
	default:
		break;
	}

	rc = start_qemu(&l, o, policy, err.msg);
out:
	kl_exec_guard_disarm();
	strvec_free(&original);
	kl_launch_free(&l);
	kl_policy_free(policy);
	return rc;
}

static int check_policy_main(const struct kl_options *o)
{
	const char *path = o->mode_arg ? o->mode_arg : o->config ? o->config : KL_DEFAULT_CONFIG;
	_cleanup_strvec_ struct strvec diags = STRVEC_INIT;
	int errors = kl_policy_check(path, &diags);

	for (size_t i = 0; i < diags.n; i++)
		fprintf(errors ? stderr : stdout, "%s\n", diags.v[i]);
	if (errors) {
		fprintf(stderr, "%s: %d error%s\n", path, errors, errors == 1 ? "" : "s");
		return 1;
	}
	printf("%s: valid\n", path);
	return 0;
}

/* Modes that read the policy only for its global settings. */
static struct kl_policy *policy_for_globals(const struct kl_options *o)
{
	struct kl_error err = KL_ERROR_INIT;
	struct kl_policy *p = load_policy(o, &err);
	if (!p) {
		kl_warn("%s: using default settings", err.msg);
		p = kl_policy_builtin();
	}
	return p;
}

/* Run under a QEMU's name (qemu-system-TARGET, or Proxmox's kvm)? */
static bool invoked_as_qemu(const char *argv0)
{
	_cleanup_free_ char *invoked = kl_qemu_invoked_as(argv0);
	const char *base = strrchr(invoked, '/') ? strrchr(invoked, '/') + 1 : invoked;
	return kl_qemu_target_of_name(invoked) || strcmp(base, "kvm") == 0;
}

int main(int argc, char **argv)
{
	struct kl_options o;
	struct kl_error err = KL_ERROR_INIT;

	/* Proxmox VE reads QEMU's version with "kvm --version" (and refuses to
	 * start VMs when it finds none); kvm-launch-divert looks for our line.
	 * Under a QEMU's name both get theirs: ours first, then QEMU's. */
	char *version_argv[] = { argv[0], (char *)"-version", NULL };
	if (argc == 2 && strcmp(argv[1], "--version") == 0 && invoked_as_qemu(argv[0])) {
		printf("kvm-launch %s\n", KL_VERSION);
		fflush(stdout);
		argv = version_argv;
	}

	if (argc > 1 && strcmp(argv[1], "--relay") == 0) /* hidden: started by kl_relay_setup */
		return kl_relay_main(argc - 2, argv + 2);
	if (kl_options_parse(argc, argv, &o, &err) < 0) {
		kl_err("%s", err.msg);
		kl_usage(stderr);
		return 2;
	}
	if (o.verbose >= 2)
		kl_log_set_level(KL_LOG_DEBUG);
	else if (o.verbose == 1 || o.mode == KL_MODE_LAUNCH)
		kl_log_set_level(KL_LOG_INFO);

	switch (o.mode) {
	case KL_MODE_HELP:
		kl_usage(stdout);
		return 0;
	case KL_MODE_VERSION:
		printf("kvm-launch %s\n", KL_VERSION);
		return 0;
	case KL_MODE_CHECK_POLICY:
		return check_policy_main(&o);
	case KL_MODE_STATUS: {
		struct kl_policy *p = policy_for_globals(&o);
		const char *name = o.rest_argc > 0 ? o.rest_argv[0] : NULL;
		int rc = kl_status_main(choose_state_dir(&o, p), name, o.json, o.prometheus);
		kl_policy_free(p);
		return rc;
	}
	case KL_MODE_TOP: {
		if (o.rest_argc > 0) {
			kl_err("--top takes no operand ('%s')", o.rest_argv[0]);
			return 2;
		}
		struct kl_policy *p = policy_for_globals(&o);
		const char *dir = choose_state_dir(&o, p);
		_cleanup_free_ char *d = dir ? xstrdup(dir) : NULL;
		kl_policy_free(p);
		return kl_top_main(d, o.interval);
	}
	case KL_MODE_SET: {
		struct kl_policy *p = policy_for_globals(&o);
		int rc = kl_set_main(choose_state_dir(&o, p), o.rest_argc, o.rest_argv, o.force);
		kl_policy_free(p);
		return rc;
	}
	case KL_MODE_AGENT:
		return kl_agent_main(o.mode_arg);
	case KL_MODE_CALIBRATE: {
		struct kl_policy *p = policy_for_globals(&o);
		int rc = kl_calibrate_main(&o, choose_cache_dir(p));
		kl_policy_free(p);
		return rc;
	}
	default:
		return launch_main(&o, argv[0]);
	}
}
