/* SPDX-License-Identifier: GPL-2.0-or-later */
/* json-get: print values out of one JSON document, for shell tests (CI
 * machines have json-c but not necessarily python).
 *
 *   json-get FILE|- [PATH]
 *
 * PATH is a dot-separated list of steps:
 *   KEY          an object member
 *   N            an array element (0-based; -1 is the last)
 *   *            every element of an array (or every member value of an object)
 *   [KEY=VALUE]  every element of an array that is an object whose KEY (a
 *                dotted sub-path) holds VALUE (strings compare raw, other
 *                values as their JSON text); dots inside the brackets are
 *                part of KEY or VALUE, e.g. disks.[path=/var/tmp/a.img].cache
 *   length       the length of an array, object or string
 *   keys         the member names of an object, one per line
 * Strings print raw, null prints "null", other values as compact JSON, one
 * per line (several lines when a step selected several values).
 * Without PATH: only check that the input is one valid JSON document.
 * Exit 0 when at least one value was printed, 1 when the input is not JSON or
 * nothing matched, 2 on usage errors. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#define PRINT_FLAGS (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static char *read_all(FILE *f, size_t *len)
{
	size_t cap = 65536, n = 0, r;
	char *buf = malloc(cap + 1);
	if (!buf)
		abort();
	while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
			if (!buf)
				abort();
		}
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Split PATH into steps at dots outside brackets.  Returns the count. */
static size_t split_path(char *path, char **steps, size_t max)
{
	size_t n = 0;
	int depth = 0;
	char *start = path;
	for (char *p = path;; p++) {
		if (*p == '[')
			depth++;
		else if (*p == ']' && depth > 0)
			depth--;
		else if ((*p == '.' && depth == 0) || *p == '\0') {
			bool end = *p == '\0';
			*p = '\0';
			if (n < max)
				steps[n++] = start;
			if (end)
				break;
			start = p + 1;
		}
	}
	return n;
}

static void print_value(json_object *o)
{
	if (!o)
		puts("null");
	else if (json_object_is_type(o, json_type_string))
		puts(json_object_get_string(o));
	else
		puts(json_object_to_json_string_ext(o, PRINT_FLAGS));
}

static int walk(json_object *o, char **steps, size_t n);

/* The value at a dotted sub-path (plain keys and indexes only), or NULL. */
static json_object *lookup(json_object *o, const char *subpath, bool *found)
{
	char *copy = strdup(subpath), *save = NULL;
	*found = true;
	for (char *k = strtok_r(copy, ".", &save); k; k = strtok_r(NULL, ".", &save)) {
		json_object *next = NULL;
		if (json_object_is_type(o, json_type_object)) {
			if (!json_object_object_get_ex(o, k, &next)) {
				*found = false;
				break;
			}
		} else if (json_object_is_type(o, json_type_array)) {
			char *end;
			long i = strtol(k, &end, 10);
			if (*k == '\0' || *end || i < 0 || (size_t)i >= json_object_array_length(o)) {
				*found = false;
				break;
			}
			next = json_object_array_get_idx(o, (size_t)i);
		} else {
			*found = false;
			break;
		}
		o = next;
	}
	free(copy);
	return *found ? o : NULL;
}

static bool value_equals(json_object *v, const char *want)
{
	if (!v)
		return strcmp(want, "null") == 0;
	if (json_object_is_type(v, json_type_string))
		return strcmp(json_object_get_string(v), want) == 0;
	return strcmp(json_object_to_json_string_ext(v, PRINT_FLAGS), want) == 0;
}

static int walk(json_object *o, char **steps, size_t n)
{
	if (n == 0) {
		print_value(o);
		return 1;
	}
	const char *s = steps[0];
	int printed = 0;

	if (strcmp(s, "*") == 0) {
		if (json_object_is_type(o, json_type_array)) {
			for (size_t i = 0; i < json_object_array_length(o); i++)
				printed += walk(json_object_array_get_idx(o, i), steps + 1, n - 1);
		} else if (json_object_is_type(o, json_type_object)) {
			json_object_object_foreach(o, k, v) {
				(void)k;
				printed += walk(v, steps + 1, n - 1);
			}
		}
		return printed;
	}
	if (s[0] == '[') {
		size_t len = strlen(s);
		if (len < 4 || s[len - 1] != ']' || !strchr(s, '=')) {
			fprintf(stderr, "json-get: bad selector '%s' (want [KEY=VALUE])\n", s);
			exit(2);
		}
		char *sel = strndup(s + 1, len - 2);
		char *eq = strchr(sel, '=');
		*eq = '\0';
		if (json_object_is_type(o, json_type_array)) {
			for (size_t i = 0; i < json_object_array_length(o); i++) {
				json_object *e = json_object_array_get_idx(o, i);
				bool found;
				json_object *v = lookup(e, sel, &found);
				if (found && value_equals(v, eq + 1))
					printed += walk(e, steps + 1, n - 1);
			}
		}
		free(sel);
		return printed;
	}
	if (json_object_is_type(o, json_type_object)) {
		json_object *v;
		if (json_object_object_get_ex(o, s, &v))
			return walk(v, steps + 1, n - 1);
		if (n == 1 && strcmp(s, "length") == 0) {
			printf("%d\n", json_object_object_length(o));
			return 1;
		}
		if (n == 1 && strcmp(s, "keys") == 0) {
			json_object_object_foreach(o, k, val) {
				(void)val;
				puts(k);
				printed++;
			}
			return printed ? printed : 1;
		}
		return 0;
	}
	if (json_object_is_type(o, json_type_array)) {
		if (n == 1 && strcmp(s, "length") == 0) {
			printf("%zu\n", json_object_array_length(o));
			return 1;
		}
		char *end;
		errno = 0;
		long i = strtol(s, &end, 10);
		if (*s == '\0' || *end || errno)
			return 0;
		long len = (long)json_object_array_length(o);
		if (i < 0)
			i += len;
		if (i < 0 || i >= len)
			return 0;
		return walk(json_object_array_get_idx(o, (size_t)i), steps + 1, n - 1);
	}
	if (json_object_is_type(o, json_type_string) && n == 1 && strcmp(s, "length") == 0) {
		printf("%d\n", json_object_get_string_len(o));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: json-get FILE|- [PATH]\n");
		return 2;
	}
	FILE *f = strcmp(argv[1], "-") == 0 ? stdin : fopen(argv[1], "r");
	if (!f) {
		fprintf(stderr, "json-get: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	size_t len;
	char *text = read_all(f, &len);
	if (f != stdin)
		fclose(f);

	/* A trailing blank ends a top-level number ("42" alone would wait for more). */
	text[len] = ' ';
	json_tokener *tok = json_tokener_new();
	json_object *doc = json_tokener_parse_ex(tok, text, (int)len + 1);
	enum json_tokener_error e = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (e != json_tokener_success || len == 0) {
		fprintf(stderr, "json-get: %s: not valid JSON: %s\n", argv[1],
			len == 0 ? "empty input" : json_tokener_error_desc(e));
		return 1;
	}
	for (; end < len + 1; end++) {
		if (!strchr(" \t\r\n", text[end])) {
			fprintf(stderr, "json-get: %s: trailing data after the JSON document\n", argv[1]);
			return 1;
		}
	}
	free(text);
	if (argc == 2) {
		json_object_put(doc);
		return 0;
	}

	char *path = strdup(argv[2]);
	char *steps[128];
	size_t n = path[0] ? split_path(path, steps, 128) : 0;
	int printed = walk(doc, steps, n);
	free(path);
	json_object_put(doc);
	fflush(stdout);
	return printed > 0 ? 0 : 1;
}
