/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/calibrate-mode.h"

#include <stdio.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "policy/calibrate/calibrate.h"

/* A progress bar, only on a terminal. */
static void progress_bar(void *opaque, int done, int total, const char *what)
{
	static const char bar[] = "##############################";
	int width = (int)sizeof bar - 1, filled = total > 0 ? done * width / total : 0;
	(void)opaque;
	fprintf(stderr, "\r[%.*s%*s] %2d/%d %-40.40s", filled, bar, width - filled, "", done, total, what);
	if (done == total)
		fputc('\n', stderr);
}

int kl_calibrate_main(const struct kl_options *o, const char *cache_dir)
{
	struct kl_calibrate_options co = {
		.seconds = o->seconds > 0 ? o->seconds : KL_CALIBRATE_SECONDS_DEFAULT,
		.allow_write = o->write,
		.progress = isatty(STDERR_FILENO) ? progress_bar : NULL,
	};
	struct kl_calibration *c = NULL;
	struct kl_error err = KL_ERROR_INIT;
	int rc = 0;

	if (!o->mode_arg || !*o->mode_arg) {
		kl_err("--calibrate needs a PATH (a block device, or a directory or file on a filesystem)");
		return 2;
	}
	/* Where it will be stored, before minutes of measuring: a refused
	 * directory (a symlink, another uid's) is said at once. */
	_cleanup_free_ char *dir = NULL;
	int dirfd = kl_calibration_dir_open(cache_dir, true, &dir, &err);
	if (dirfd < 0) {
		kl_err("cannot store a calibration: %s", err.msg);
		return 1;
	}
	close(dirfd);
	if (kl_calibrate(o->mode_arg, &co, &c, &err) < 0) {
		kl_err("%s", err.msg);
		return 1;
	}
	if (o->json) {
		_cleanup_json_ json_object *j = kl_calibration_json(c);
		puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	} else {
		kl_calibration_print(c, stdout);
	}
	_cleanup_free_ char *stored = NULL;
	if (kl_calibration_store(cache_dir, c, &stored, &err) < 0) {
		kl_err("%s", err.msg);
		rc = 1;
	} else if (!o->json) {
		printf("Stored as %s: aio=auto on this storage follows it from now on.\n", stored);
	}
	kl_calibration_free(c);
	return rc;
}
