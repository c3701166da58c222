/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "common/json.h"

#include <string.h>

json_object *kl_json_get(json_object *o, const char *key, json_type type)
{
	json_object *v;
	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, type))
		return NULL;
	return v;
}

const char *kl_json_str(json_object *o, const char *key)
{
	json_object *v = kl_json_get(o, key, json_type_string);
	return v ? json_object_get_string(v) : NULL;
}

const char *kl_json_str_or(json_object *o, const char *key, const char *dflt)
{
	const char *s = kl_json_str(o, key);
	return s && *s ? s : dflt;
}

long long kl_json_int(json_object *o, const char *key, long long dflt)
{
	json_object *v = kl_json_get(o, key, json_type_int);
	return v ? (long long)json_object_get_int64(v) : dflt;
}

bool kl_json_bool(json_object *o, const char *key, bool dflt)
{
	json_object *v = kl_json_get(o, key, json_type_boolean);
	return v ? json_object_get_boolean(v) : dflt;
}

json_object *kl_json_string(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

json_object *kl_json_nonempty(const char *s)
{
	return s && *s ? json_object_new_string(s) : NULL;
}

json_object *kl_json_tri(enum kl_tri t)
{
	return t == KL_TRI_UNKNOWN ? NULL : json_object_new_boolean(t == KL_TRI_YES);
}

json_object *kl_json_strings(char *const *v, size_t n)
{
	json_object *a = json_object_new_array();
	for (size_t i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_string(v[i] ? v[i] : ""));
	return a;
}

int kl_json_parse_object(const char *text, size_t len, json_object **out, const char **why)
{
	json_tokener *tok = json_tokener_new();
	json_object *o = json_tokener_parse_ex(tok, text, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t used = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);

	*out = NULL;
	if (!o || jerr != json_tokener_success) {
		*why = jerr == json_tokener_continue || jerr == json_tokener_success ? "incomplete JSON"
										       : json_tokener_error_desc(jerr);
		if (o)
			json_object_put(o);
		return -1;
	}
	while (used < len && text[used] && strchr(" \t\r\n", text[used]))
		used++;
	if (used < len) {
		json_object_put(o);
		*why = "data after the JSON value";
		return -1;
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		*why = "not a JSON object";
		return -1;
	}
	*out = o;
	return 0;
}
