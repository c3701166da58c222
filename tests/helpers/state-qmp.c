/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Test helper: one QMP command through the project's QMP client.
 *
 *   state-qmp SOCKET COMMAND [ARGS-JSON]
 *
 * Prints the "return" value as JSON; exit 1 with the error otherwise. */
#include <stdio.h>
#include <string.h>
#include <json-c/json.h>

#include "qmp/qmp.h"

int main(int argc, char **argv)
{
	struct kl_error err = KL_ERROR_INIT;
	struct qmp_client *c;
	json_object *args = NULL, *ret = NULL;

	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: state-qmp SOCKET COMMAND [ARGS-JSON]\n");
		return 2;
	}
	if (argc == 4 && !(args = json_tokener_parse(argv[3]))) {
		fprintf(stderr, "state-qmp: bad JSON arguments\n");
		return 2;
	}
	if (qmp_connect(argv[1], 5000, &c, &err) < 0) {
		fprintf(stderr, "state-qmp: %s\n", err.msg);
		return 1;
	}
	int rc = qmp_execute(c, argv[2], args, 10000, &ret, &err);
	qmp_close(c);
	if (args)
		json_object_put(args);
	if (rc < 0) {
		fprintf(stderr, "state-qmp: %s: %s\n", argv[2], err.msg);
		return 1;
	}
	printf("%s\n", ret ? json_object_to_json_string_ext(ret, JSON_C_TO_STRING_PLAIN) : "null");
	if (ret)
		json_object_put(ret);
	return 0;
}
