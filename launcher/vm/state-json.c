/* SPDX-License-Identifier: GPL-2.0-or-later */
/* A launch as its state file says it (kl_state_to_json): the keys, their
 * order and their values are the file's format, read by the agent, --status,
 * --set and kvm-launch-top. */
#include "launcher/vm/state.h"

#include <stdint.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "common/xalloc.h"
#include "policy/types.h"

static const char *base_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

/* DIR/STEM.view.sock, for humans. */
static json_object *view_path_json(const char *dir, const char *stem)
{
	_cleanup_free_ char *p = xasprintf("%s/%s.view.sock", dir, stem);
	return json_object_new_string(p);
}

/* The limits the policy set, by their QMP names in kl_throttle_keys' order
 * (the lengths have no field and are never written), then the group. */
static json_object *throttle_json(const struct kl_throttle *t)
{
	struct kl_throttle c = *t; /* kl_throttle_field takes no const */
	json_object *o = json_object_new_object();
	for (size_t i = 0; i < KL_THROTTLE_NKEYS; i++) {
		const int64_t *v = kl_throttle_field(&c, i);
		if (v && *v)
			json_object_object_add(o, kl_throttle_keys[i].name, json_object_new_int64(*v));
	}
	if (t->group[0])
		json_object_object_add(o, "group", json_object_new_string(t->group));
	return o;
}

static json_object *disk_json(const struct kl_launch *l, size_t i)
{
	const struct kl_disk_result *d = &l->disks[i];
	const struct kl_disk_given *g = d->given;
	json_object *o = json_object_new_object();

	json_object_object_add(o, "id", kl_json_nonempty(g ? g->id : NULL));
	json_object_object_add(o, "node", kl_json_nonempty(g ? g->node : NULL));
	json_object_object_add(o, "path", kl_json_nonempty(g ? g->path : NULL));
	json_object_object_add(o, "driver", kl_json_nonempty(g ? g->driver : NULL));
	json_object_object_add(o, "backend", json_object_new_string(kl_backend_name(d->facts.backend)));
	json_object_object_add(o, "block_kind", kl_json_nonempty(kl_block_kind_name(d->facts.block_kind)));
	json_object_object_add(o, "fs", kl_json_nonempty(d->facts.fs));
	json_object_object_add(o, "format", kl_json_nonempty(d->facts.format[0] ? d->facts.format : g ? g->format : NULL));
	json_object_object_add(o, "preallocated", kl_json_tri(d->facts.preallocated));
	json_object_object_add(o, "shared", kl_json_tri(d->facts.shared));
	json_object_object_add(o, "odirect", kl_json_tri(d->facts.odirect));
	json_object_object_add(o, "readonly", json_object_new_boolean(g && g->readonly));
	json_object_object_add(o, "given_aio", kl_json_nonempty(g ? kl_aio_name(g->aio) : NULL));
	json_object_object_add(o, "given_cache", kl_json_nonempty(g ? kl_cache_name(g->cache) : NULL));
	json_object_object_add(o, "aio", kl_json_nonempty(kl_disk_aio(d)));
	json_object_object_add(o, "cache", json_object_new_string(kl_disk_cache(d)));
	/* "cache" follows --set; this stays what the launch chose. */
	json_object_object_add(o, "policy_cache", json_object_new_string(kl_disk_cache(d)));
	json_object_object_add(o, "takes_aio", json_object_new_boolean(d->takes_aio));
	json_object_object_add(o, "changed", json_object_new_boolean(d->decision.changed));
	json_object_object_add(o, "rule", kl_json_nonempty(d->decision.rule));
	json_object_object_add(o, "calibration", kl_json_nonempty(d->decision.calibration));
	json_object_object_add(o, "reasons", kl_json_strings(d->decision.reasons.v, d->decision.reasons.n));
	if (d->decision.has_throttle)
		json_object_object_add(o, "throttle", throttle_json(&d->decision.throttle));
	return o;
}

json_object *kl_state_to_json(const struct kl_launch *l)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "version", json_object_new_int(KL_STATE_VERSION));
	json_object_object_add(o, "name", kl_json_nonempty(l->vm.name));
	if (l->state_file) {
		const char *b = base_of(l->state_file);
		size_t n = strlen(b);
		_cleanup_free_ char *stem = xstrndup(b, n > 5 && strcmp(b + n - 5, ".json") == 0 ? n - 5 : n);
		json_object_object_add(o, "stem", json_object_new_string(stem));
	}
	json_object_object_add(o, "pid", json_object_new_int64(l->pid));
	json_object_object_add(o, "start_ticks", json_object_new_int64((int64_t)l->start_ticks));
	json_object_object_add(o, "started", json_object_new_int64(l->started_unix));
	json_object_object_add(o, "running", json_object_new_boolean(true));
	json_object_object_add(o, "qemu", kl_json_nonempty(l->qemu));
	json_object_object_add(o, "argv_original", kl_json_strings(l->argv, l->argc > 0 ? (size_t)l->argc : 0));
	json_object_object_add(o, "argv", kl_json_strings(l->exec_argv.v, l->exec_argv.n));
	json_object_object_add(o, "state_dir", kl_json_nonempty(l->state_dir));
	json_object_object_add(o, "agent_socket", kl_json_nonempty(l->agent_socket));
	json_object_object_add(o, "query_socket", kl_json_nonempty(l->query_socket));
	if (l->state_fds && l->state_fds->view_fd >= 0)
		json_object_object_add(o, "view_socket",
				       view_path_json(l->state_dir, l->state_fds->stem));
	json_object_object_add(o, "agent_log", kl_json_nonempty(l->agent_log));
	json_object_object_add(o, "incoming", json_object_new_boolean(l->vm.incoming));

	json_object_object_add(o, "host", kl_host_facts_json(&l->host));

	/* After a fail-open the disks were not all probed or decided: none are
	 * listed, QEMU runs them as given. */
	json_object *disks = json_object_new_array();
	for (size_t i = 0; !l->failed_open && i < l->ndisks; i++)
		json_object_array_add(disks, disk_json(l, i));
	json_object_object_add(o, "disks", disks);
	if (l->failed_open) {
		json_object_object_add(o, "failed_open", json_object_new_boolean(true));
		json_object_object_add(o, "failed_open_why", kl_json_nonempty(l->failed_open_why));
	}

	json_object *agent = json_object_new_object();
	json_object_object_add(agent, "pid", NULL);
	json_object_object_add(agent, "start_ticks", NULL);
	json_object_object_add(agent, "state", json_object_new_string(l->failed_open ? "none" : "starting"));
	json_object_object_add(agent, "applied", json_object_new_array());
	json_object_object_add(agent, "events", json_object_new_array());
	json_object_object_add(o, "agent", agent);
	json_object_object_add(o, "changes", json_object_new_array());
	return o;
}
