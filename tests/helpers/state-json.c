/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Test helper: read JSON (json-c) and print one value.
 *
 *   state-json FILE|- [PATH]
 *
 * PATH is dot-separated: object keys and array indexes ("vms.0.disks.1.cache");
 * "length" on an array prints its length.  Strings print raw, null prints
 * "null", anything else as JSON.  Without PATH: just check that the input
 * is one valid JSON document.  Exit 1 if it is not, or the path is absent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "common/strbuf.h"

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: state-json FILE|- [PATH]\n");
		return 2;
	}
	FILE *f = strcmp(argv[1], "-") == 0 ? stdin : fopen(argv[1], "r");
	if (!f) {
		perror(argv[1]);
		return 1;
	}
	struct strbuf b = STRBUF_INIT;
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof buf, f)) > 0)
		strbuf_append_len(&b, buf, n);
	json_tokener *tok = json_tokener_new();
	json_object *o = json_tokener_parse_ex(tok, strbuf_str(&b), (int)b.len);
	enum json_tokener_error e = json_tokener_get_error(tok);
	size_t used = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (e != json_tokener_success || (!o && b.len == 0)) {
		fprintf(stderr, "state-json: not valid JSON: %s\n", json_tokener_error_desc(e));
		return 1;
	}
	for (size_t k = used; k < b.len; k++)
		if (b.s[k] != ' ' && b.s[k] != '\n' && b.s[k] != '\t' && b.s[k] != '\r') {
			fprintf(stderr, "state-json: trailing garbage after the JSON document\n");
			return 1;
		}
	if (f != stdin)
		fclose(f);
	strbuf_free(&b);
	int rc = 0;
	if (argc == 2)
		goto out;
	json_object *cur = o;
	char *path = strdup(argv[2]);
	for (char *p = strtok(path, "."); p; p = strtok(NULL, ".")) {
		if (json_object_is_type(cur, json_type_array)) {
			if (strcmp(p, "length") == 0) {
				printf("%zu\n", json_object_array_length(cur));
				goto done;
			}
			char *end;
			long idx = strtol(p, &end, 10);
			if (*end || idx < 0 || (size_t)idx >= json_object_array_length(cur)) {
				fprintf(stderr, "state-json: no element %s\n", p);
				rc = 1;
				goto done;
			}
			cur = json_object_array_get_idx(cur, (size_t)idx);
		} else if (json_object_is_type(cur, json_type_object)) {
			if (!json_object_object_get_ex(cur, p, &cur)) {
				fprintf(stderr, "state-json: no member %s\n", p);
				rc = 1;
				goto done;
			}
		} else {
			fprintf(stderr, "state-json: cannot descend into a scalar at %s\n", p);
			rc = 1;
			goto done;
		}
	}
	if (!cur)
		printf("null\n");
	else if (json_object_is_type(cur, json_type_string))
		printf("%s\n", json_object_get_string(cur));
	else
		printf("%s\n", json_object_to_json_string_ext(cur, JSON_C_TO_STRING_PLAIN));
done:
	free(path);
out:
	json_object_put(o);
	return rc;
}
