/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Small json-c helpers written once: NULL-safe getters for the state file,
 * QMP replies and calibration files, and constructors whose JSON null stands
 * for "absent" or "unknown".
 *
 * Getters: a NULL object, a missing key, or a value of another type gives
 * the default (NULL, dflt).  Returned objects and strings are borrowed from o.
 * Constructors: return a new reference the caller hands on or puts; NULL
 * (JSON null when added to an object or array) where they say so. */
#ifndef KL_JSON_H
#define KL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>
#include "common/tri.h"

const char *kl_json_str(json_object *o, const char *key);
long long kl_json_int(json_object *o, const char *key, long long dflt);
bool kl_json_bool(json_object *o, const char *key, bool dflt);
json_object *kl_json_get(json_object *o, const char *key, json_type type);
/* The string member key, or dflt when it is absent, not a string, or "". */
const char *kl_json_str_or(json_object *o, const char *key, const char *dflt);

/* A string, or null for NULL. */
json_object *kl_json_string(const char *s);
/* A string, or null for NULL and for "" (facts nobody filled in). */
json_object *kl_json_nonempty(const char *s);
/* true, false, or null for unknown. */
json_object *kl_json_tri(enum kl_tri t);
/* An array of the n strings of v (a NULL entry becomes ""). */
json_object *kl_json_strings(char *const *v, size_t n);

/* Parse text (len bytes) as exactly one JSON object, white space around it
 * allowed.  Returns 0 and *out (caller puts), or -1 with *why (static text)
 * when it is not valid JSON, incomplete, not an object, or followed by more. */
int kl_json_parse_object(const char *text, size_t len, json_object **out, const char **why);

#endif
