/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "launcher/argv/name.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

/* The part of s up to the first single comma, with ",," made ",". */
static char *part(const char *s, const char **next)
{
	char *out = xmalloc(strlen(s) + 1), *o = out;
	while (*s) {
		if (s[0] == ',' && s[1] == ',') {
			*o++ = ',';
			s += 2;
		} else if (*s == ',') {
			s++;
			break;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
	*next = s;
	return out;
}

static char *name_of(const char *value)
{
	char *name = NULL;
	bool first = true;
	for (const char *s = value; *s; first = false) {
		char *p = part(s, &s);
		if (strncmp(p, "guest=", 6) == 0) {
			free(name);
			name = xstrdup(p + 6);
		} else if (first && !strchr(p, '=')) {
			name = xstrdup(p);
		}
		free(p);
	}
	if (name && !*name) {
		free(name);
		name = NULL;
	}
	return name;
}

char *kl_argv_guess_name(int argc, char *const *argv)
{
	char *name = NULL;
	for (int i = 0; i + 1 < argc; i++) {
		if (!argv[i] || (strcmp(argv[i], "-name") != 0 && strcmp(argv[i], "--name") != 0) || !argv[i + 1])
			continue;
		char *n = name_of(argv[++i]);
		if (n) {
			free(name);
			name = n;
		}
	}
	return name;
}
