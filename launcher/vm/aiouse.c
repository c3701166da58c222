/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Kernel AIO in use by a running QEMU: /proc's view read with the disks'
 * I/O counters, so that a context QEMU has not set up yet reads "not yet". */
#include "launcher/vm/aiouse.h"

#include <string.h>

#include "common/json.h"
#include "common/strbuf.h"
#include "launcher/vm/state.h"

const char *kl_aio_use_name(enum kl_aio_use u)
{
	switch (u) {
	case KL_AIO_USE_YES: return "yes";
	case KL_AIO_USE_NOT_YET: return "not yet";
	case KL_AIO_USE_NOT_SEEN: return "not seen";
	case KL_AIO_USE_UNKNOWN: return "unknown";
	default: return "no";
	}
}

enum kl_aio_use kl_aio_use_of(json_object *disks, const char *engine, enum kl_tri seen)
{
	size_t n = disks && json_object_is_type(disks, json_type_array) ? json_object_array_length(disks) : 0;
	bool configured = false, counted = true;

	if (seen == KL_TRI_YES)
		return KL_AIO_USE_YES;
	for (size_t i = 0; i < n; i++) {
		json_object *d = json_object_array_get_idx(disks, i);
		const char *aio = kl_json_str(d, "aio");
		if (!aio || strcmp(aio, engine) != 0)
			continue;
		configured = true;
		json_object *st = kl_json_get(d, "stats", json_type_object);
		if (!st) {
			counted = false;
			continue;
		}
		/* Reads and writes reach the engine; a flush may not (libaio
		 * sends it to the thread pool). */
		if (kl_json_int(st, "rd_operations", 0) + kl_json_int(st, "wr_operations", 0) > 0)
			return seen == KL_TRI_NO ? KL_AIO_USE_NOT_SEEN : KL_AIO_USE_UNKNOWN;
	}
	if (!configured)
		return seen == KL_TRI_NO ? KL_AIO_USE_NO : KL_AIO_USE_UNKNOWN;
	return counted ? KL_AIO_USE_NOT_YET : KL_AIO_USE_UNKNOWN;
}

json_object *kl_aio_use_json(json_object *disks, enum kl_tri io_uring_seen, enum kl_tri libaio_seen)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "io_uring",
			       json_object_new_string(kl_aio_use_name(kl_aio_use_of(disks, "io_uring", io_uring_seen))));
	json_object_object_add(o, "libaio",
			       json_object_new_string(kl_aio_use_name(kl_aio_use_of(disks, "native", libaio_seen))));
	return o;
}

char *kl_aio_use_text(json_object *use)
{
	static const char *const engines[] = { "io_uring", "libaio" };
	struct strbuf yes = STRBUF_INIT, later = STRBUF_INIT, unseen = STRBUF_INIT, unknown = STRBUF_INIT;

	for (size_t i = 0; i < 2; i++) {
		const char *u = kl_json_str(use, engines[i]);
		struct strbuf *b = !u ? &unknown : !strcmp(u, "yes") ? &yes : !strcmp(u, "not yet") ? &later
				 : !strcmp(u, "not seen") ? &unseen : !strcmp(u, "unknown") ? &unknown : NULL;
		if (b)
			strbuf_appendf(b, "%s%s", b->len ? ", " : "", engines[i]);
	}
	if (later.len)
		strbuf_appendf(&yes, "%snot yet (%s %s set up at the first I/O)", yes.len ? "; " : "", strbuf_str(&later),
			       strchr(strbuf_str(&later), ',') ? "are" : "is");
	if (unknown.len && !yes.len && !unseen.len)
		strbuf_appendf(&yes, "unknown (%s)", strbuf_str(&unknown));
	if (!yes.len)
		strbuf_append(&yes, "none");
	if (unseen.len)
		strbuf_appendf(&yes, " (%s configured but not set up after I/O: only unaligned requests so far, or "
			       "QEMU fell back to its thread pool)", strbuf_str(&unseen));
	strbuf_free(&later);
	strbuf_free(&unseen);
	strbuf_free(&unknown);
	return strbuf_steal(&yes);
}
