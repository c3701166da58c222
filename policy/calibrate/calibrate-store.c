/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Calibrations on disk: stored in and looked up from the caller's own cache
 * directory only (common/cachedir.h), by directory fd, never through a
 * symlink (issue 17: a planted or redirected calibration must not steer
 * root's aio choice nor its writes). */
#include "policy/calibrate/calibrate-int.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/cachedir.h"
#include "common/cleanup.h"
#include "common/json.h"
#include "common/log.h"
#include "common/safefile.h"
#include "common/xalloc.h"

#define STORE_MAX KL_CACHE_FILE_MAX
#define CALIBRATION_DIR "calibration"

/* The file name of a storage's calibration: dev-MAJ-MIN.json. */
static char *calibration_name(const char *storage_id)
{
	size_t len = storage_id ? strlen(storage_id) : 0;
	if (len == 0 || len >= 64 || storage_id[0] == '.')
		return NULL;
	char stem[64];
	for (size_t i = 0; i < len; i++) {
		char ch = storage_id[i];
		if (ch == ':')
			ch = '-';
		else if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
			   ch == '.' || ch == '_' || ch == '-'))
			return NULL;
		stem[i] = ch;
	}
	stem[len] = '\0';
	return xasprintf("%s.json", stem);
}

char *kl_calibration_path(const char *cache_dir, const char *storage_id)
{
	if (!cache_dir || !cache_dir[0])
		return NULL;
	_cleanup_free_ char *name = calibration_name(storage_id);
	return name ? xasprintf("%s/" CALIBRATION_DIR "/%s", cache_dir, name) : NULL;
}

int kl_calibration_dir_open(const char *cache_dir, bool create, char **dir, struct kl_error *err)
{
	*dir = NULL;
	_cleanup_free_ char *top_path = NULL;
	_cleanup_close_ int top = kl_cache_dir_open(cache_dir, create, &top_path, err);
	if (top < 0)
		return -1;
	_cleanup_free_ char *path = xasprintf("%s/" CALIBRATION_DIR, top_path);
	int fd = kl_cache_subdir_open(top, CALIBRATION_DIR, path, create, err);
	if (fd >= 0)
		*dir = steal_pointer(&path);
	return fd;
}

int kl_calibration_store(const char *cache_dir, const struct kl_calibration *c, char **stored,
			 struct kl_error *err)
{
	if (stored)
		*stored = NULL;
	_cleanup_free_ char *name = calibration_name(c->storage_id);
	if (!name)
		return kl_error_fail(err, "storing the calibration: storage id \"%s\" cannot name a file",
				     c->storage_id);
	_cleanup_free_ char *dir = NULL;
	_cleanup_close_ int cal = kl_calibration_dir_open(cache_dir, true, &dir, err);
	if (cal < 0) {
		kl_error_prefix(err, "storing the calibration");
		return -1;
	}
	_cleanup_json_ json_object *j = kl_calibration_json(c);
	_cleanup_free_ char *text = xasprintf(
		"%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	if (kl_write_at(cal, name, text, strlen(text), kl_cache_file_mode(), err) < 0) {
		kl_error_prefix(err, "storing the calibration in %s", dir);
		return -1;
	}
	if (stored)
		*stored = xasprintf("%s/%s", dir, name);
	return 0;
}

/* Engines of a stored ranking array, best first; -1 if malformed. */
static int parse_ranking(json_object *a, bool buffered, enum kl_aio out[4])
{
	size_t n = 0;
	if (!json_object_is_type(a, json_type_array) || json_object_array_length(a) > 3)
		return -1;
	for (size_t i = 0; i < json_object_array_length(a); i++) {
		json_object *e = json_object_array_get_idx(a, i), *name;
		enum kl_aio aio;
		if (!json_object_is_type(e, json_type_object) || !json_object_object_get_ex(e, "engine", &name) ||
		    !json_object_is_type(name, json_type_string) ||
		    kl_aio_parse(json_object_get_string(name), &aio) < 0 ||
		    (aio != KL_AIO_THREADS && aio != KL_AIO_NATIVE && aio != KL_AIO_IO_URING))
			return -1;
		for (size_t k = 0; k < n; k++)
			if (out[k] == aio)
				return -1;
		if (buffered && aio == KL_AIO_NATIVE)
			continue;  /* never for buffered use */
		out[n++] = aio;
	}
	out[n] = KL_AIO_UNSET;
	return 0;
}

static const char *lookup_parse(json_object *o, const struct kl_disk_facts *facts, enum kl_aio ranking[4],
				const char **when)
{
	json_object *v, *rk, *direct, *buffered;
	enum kl_aio rd[4], rb[4];

	if (!json_object_is_type(o, json_type_object))
		return "not a JSON object";
	if (!json_object_object_get_ex(o, "version", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int(v) != 1)
		return "unknown version";
	if (!json_object_object_get_ex(o, "storage_id", &v) || !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), facts->storage_id) != 0)
		return "another storage id";
	if (!json_object_object_get_ex(o, "kind", &v) || !json_object_is_type(v, json_type_string))
		return "no kind";
	const char *kind = json_object_get_string(v);
	if (strcmp(kind, "block") != 0 && strcmp(kind, "file") != 0)
		return "unknown kind";
	if ((facts->backend == KL_BACKEND_BLOCK && strcmp(kind, "block") != 0) ||
	    (facts->backend == KL_BACKEND_FILE && strcmp(kind, "file") != 0))
		return "measured through another kind of storage (block device vs filesystem)";
	if (facts->backend == KL_BACKEND_FILE && facts->fs_magic && json_object_object_get_ex(o, "fs_magic", &v) &&
	    json_object_is_type(v, json_type_int) && json_object_get_int64(v) != 0 &&
	    (unsigned long)json_object_get_int64(v) != facts->fs_magic)
		return "measured on another filesystem type";
	if (!json_object_object_get_ex(o, "time", &v) || !json_object_is_type(v, json_type_string) ||
	    strlen(json_object_get_string(v)) > 31)
		return "no time";
	*when = json_object_get_string(v);
	if (!json_object_object_get_ex(o, "ranking", &rk) || !json_object_is_type(rk, json_type_object) ||
	    !json_object_object_get_ex(rk, "direct", &direct) || !json_object_object_get_ex(rk, "buffered", &buffered) ||
	    parse_ranking(direct, false, rd) < 0 || parse_ranking(buffered, true, rb) < 0)
		return "malformed ranking";
	memcpy(ranking, rd[0] != KL_AIO_UNSET ? rd : rb, sizeof rd);
	if (ranking[0] == KL_AIO_UNSET)
		return "no engine ranked";
	return NULL;
}

/* The stored text for a storage, from the caller's own cache only (common/cachedir.h);
 * NULL when there is none or it is not to be believed (said at debug level). */
static char *lookup_read(const char *cache_dir, const char *name, char **path)
{
	struct kl_error err = KL_ERROR_INIT;
	_cleanup_free_ char *dir = NULL;
	_cleanup_close_ int cal = kl_calibration_dir_open(cache_dir, false, &dir, &err);
	if (cal < 0) {
		if (err.errnum != ENOENT)
			kl_debug("calibrations in %s not used: %s", cache_dir, err.msg);
		return NULL;
	}
	*path = xasprintf("%s/%s", dir, name);
	char *text = NULL;
	if (kl_read_at(cal, name, geteuid(), STORE_MAX, &text, NULL, &err) < 0 && err.errnum != ENOENT)
		kl_debug("calibration %s ignored: %s", *path, err.msg);
	return text;
}

void kl_calibration_lookup(const char *cache_dir, struct kl_disk_facts *facts)
{
	if (!cache_dir || !facts || !facts->storage_id[0])
		return;
	_cleanup_free_ char *name = calibration_name(facts->storage_id);
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ char *text = name ? lookup_read(cache_dir, name, &path) : NULL;
	if (!text)
		return;
	_cleanup_json_ json_object *o = NULL;
	const char *bad;
	if (kl_json_parse_object(text, strlen(text), &o, &bad) < 0) {
		kl_debug("calibration %s ignored: %s", path, bad);
		return;
	}
	enum kl_aio ranking[4];
	const char *when = NULL;
	const char *why = lookup_parse(o, facts, ranking, &when);
	if (why) {
		kl_debug("calibration %s ignored: %s", path, why);
		return;
	}
	memcpy(facts->aio_ranking, ranking, sizeof facts->aio_ranking);
	snprintf(facts->calibration, sizeof facts->calibration, "%.*s %s", (int)(strlen(name) - 5), name, when);
}
