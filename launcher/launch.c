/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/launch.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "common/log.h"
#include "common/xalloc.h"
#include "launcher/prepare.h"
#include "launcher/qemu_caps.h"
#include "launcher/start-timing.h"
#include "launcher/vm/state.h"
#include "launcher/vm/relay.h"

void kl_launch_free(struct kl_launch *l)
{
	for (size_t i = 0; i < l->ndisks; i++) {
		kl_disk_facts_free(&l->disks[i].facts);
		kl_decision_free(&l->disks[i].decision);
	}
	free(l->disks);
	kl_host_facts_free(&l->host);
	if (l->model)
		kl_model_free(l->model);
	strvec_free(&l->exec_argv);
	kl_relay_setup_free(l->relay);
	free(l->qemu);
	free(l->state_dir);
	free(l->state_file);
	free(l->agent_socket);
	free(l->query_socket);
	free(l->agent_log);
	free(l->failed_open_why);
	kl_state_fds_free(l->state_fds);
	memset(l, 0, sizeof *l);
}

static void use_original_argv(struct kl_launch *l)
{
	strvec_free(&l->exec_argv);
	strvec_push_dup(&l->exec_argv, l->qemu);
	for (int i = 0; i < l->argc; i++)
		strvec_push_dup(&l->exec_argv, l->argv[i]);
}

const char *kl_disk_aio(const struct kl_disk_result *d)
{
	return d->takes_aio ? kl_aio_name(kl_aio_effective(d->aio)) : NULL;
}

const char *kl_disk_cache(const struct kl_disk_result *d)
{
	return kl_cache_name(kl_cache_effective(d->cache));
}

json_object *kl_host_facts_json(const struct kl_host_facts *h)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "io_uring", kl_json_tri(h->io_uring_kernel));
	json_object_object_add(o, "io_uring_qemu", kl_json_tri(h->io_uring_qemu));
	json_object_object_add(o, "libaio", kl_json_tri(h->libaio));
	json_object_object_add(o, "libaio_headroom", kl_json_tri(h->libaio_headroom));
	json_object_object_add(o, "aio_nr", h->aio_nr >= 0 ? json_object_new_int64(h->aio_nr) : NULL);
	json_object_object_add(o, "aio_max_nr", h->aio_max_nr >= 0 ? json_object_new_int64(h->aio_max_nr) : NULL);
	return o;
}

static int decide_disks(struct kl_launch *l, const struct kl_policy *policy,
			const struct kl_prepare_config *cfg, struct kl_error *err)
{
	l->ndisks = kl_model_disk_count(l->model);
	l->disks = xcalloc(l->ndisks ? l->ndisks : 1, sizeof *l->disks);
	for (size_t i = 0; i < l->ndisks; i++) {
		struct kl_disk_result *d = &l->disks[i];
		d->given = kl_model_disk(l->model, i);
		d->takes_aio = kl_model_disk_takes_aio(l->model, i);
		if (kl_probe_disk(cfg->probe_env, d->given, &d->facts, err) < 0) {
			kl_error_prefix(err, "probing disk %s", d->given->id ? d->given->id : d->given->node ? d->given->node : "?");
			return -1;
		}
		if (cfg->lookup_calibration)
			cfg->lookup_calibration(cfg->cache_dir, &d->facts);
		kl_decide(policy, &l->vm, d->given, &d->facts, &l->host, &d->decision);
		if (!d->takes_aio && d->decision.aio != KL_AIO_UNSET)
			d->decision.aio = KL_AIO_UNSET; /* belt and braces: the policy already knows */
		kl_model_set_disk(l->model, i, d->decision.aio, d->decision.cache);
		d->aio = d->takes_aio ? kl_decision_aio(d->given, &d->decision) : KL_AIO_UNSET;
		d->cache = kl_decision_cache(d->given, &d->decision);
	}
	return 0;
}

static int prepare_rewrite(struct kl_launch *l, const struct kl_policy *policy,
			   const struct kl_prepare_config *cfg, struct kl_error *err)
{
	if (kl_model_parse(l->argc, l->argv, &l->model, err) < 0)
		return -1;
	l->vm.name = kl_model_name(l->model);
	l->vm.incoming = kl_model_incoming(l->model);
	if (kl_model_machine_none(l->model) || kl_model_informational(l->model)) {
		/* libvirt's capability probe, or QEMU asked only to print
		 * something: it must see QEMU exactly. */
		l->untouched_why = kl_model_machine_none(l->model) ? "no VM here (-machine none: libvirt's capability probe)"
								   : "no VM here (QEMU asked for help or its version)";
		use_original_argv(l);
		return 0;
	}
	if (kl_model_prepared(l->model)) {
		/* A kvm-launch in front of us decided already; a second set of
		 * monitors would make QEMU refuse the duplicate chardev ids. */
		l->untouched_why = "another kvm-launch prepared this command line already";
		kl_info("%s: passed to QEMU unchanged", l->untouched_why);
		use_original_argv(l);
		return 0;
	}
	if (kl_model_readconfig(l->model))
		kl_info("-readconfig files are not inspected: their disks are left as they are");

	kl_start_mark("parse");
	if (kl_probe_host(cfg->probe_env, &l->host, err) < 0)
		return -1;
	kl_start_mark("host");
	struct kl_error qerr = KL_ERROR_INIT;
	if (kl_model_disk_count(l->model) > 0 &&
	    kl_qemu_io_uring(l->qemu, cfg->cache_dir, &l->host.io_uring_qemu, &qerr) < 0) {
		kl_info("cannot tell whether QEMU has io_uring: %s", qerr.msg);
		strvec_pushf(&l->host.notes, "could not ask QEMU whether it has io_uring (%s)", qerr.msg);
	}

	kl_start_mark("qemu-caps");
	if (decide_disks(l, policy, cfg, err) < 0)
		return -1;
	kl_start_mark("disks");

	struct strvec rewritten = STRVEC_INIT;
	if (kl_model_rewrite(l->model, &rewritten, err) < 0) {
		strvec_free(&rewritten);
		return -1;
	}
	strvec_free(&l->exec_argv);
	strvec_push_dup(&l->exec_argv, l->qemu);
	for (size_t i = 0; i < rewritten.n; i++)
		strvec_push(&l->exec_argv, steal_pointer(&rewritten.v[i]));
	rewritten.n = 0;
	strvec_free(&rewritten);
	return 0;
}

int kl_launch_prepare(struct kl_launch *l, const struct kl_policy *policy, const struct kl_prepare_config *cfg,
		      struct kl_error *err)
{
	l->pid = getpid();
	l->started_unix = (long long)time(NULL);
	use_original_argv(l);
	if (prepare_rewrite(l, policy, cfg, err) < 0) {
		l->failed_open = true;
		use_original_argv(l);
		return -1;
	}
	return 0;
}
