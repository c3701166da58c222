/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The policy file: lines, sections and keys.  One pass collects every error
 * and warning (--check-policy shows them all); loading fails on the first.
 *
 *   # comment                      ('#' or ';' first; '#' after a blank ends a line)
 *   key = value                    globals, before any section
 *   [rule NAME]                    a rule: match keys and actions
 *   [libvirt]                      nova compatibility: disk_cachemodes only
 */
#include "policy/policy-int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "common/cleanup.h"
#include "common/xalloc.h"

#define KLP_MAX_RULE_NAME 48
#define KLP_MAX_RULES 1000      /* duplicate and shadow checks are quadratic */

enum section { SEC_GLOBAL, SEC_RULE, SEC_LIBVIRT, SEC_BAD };

enum global_key { G_QEMU, G_STATE_DIR, G_CACHE_DIR, G_ON_ERROR, G_NOVA, G_MONITOR_RELAY, G_COUNT };
static const char *const global_names[G_COUNT] = { "qemu", "state-dir", "cache-dir", "on-error", "disk_cachemodes",
							 "monitor-relay" };

struct parser {
	struct kl_policy *p;
	struct klp_diags *d;
	enum section sec;
	size_t rule;                 /* index of the current rule (SEC_RULE) */
	bool rule_bad;               /* the current rule has an error */
	int global_line[G_COUNT];
	char *nova_value;
	int nova_line;
	int first_rule_line;
	int libvirt_line;
};

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* '#' at the start or after a blank starts a comment. */
static void strip_comment(char *s)
{
	for (char *p = s; *p; p++)
		if (*p == '#' && (p == s || isspace((unsigned char)p[-1]))) {
			*p = '\0';
			return;
		}
}

static bool valid_rule_name(const char *s)
{
	if (!*s || strlen(s) > KLP_MAX_RULE_NAME || !isalnum((unsigned char)*s))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
			return false;
	return true;
}

static struct klp_rule *cur(struct parser *ps)
{
	return &ps->p->rules[ps->rule];
}

static void rule_error(struct parser *ps, int line, const char *msg)
{
	klp_diag_add(ps->d, line, false, "%s", msg);
	ps->rule_bad = true;
}

static void finish_rule(struct parser *ps)
{
	if (ps->sec != SEC_RULE)
		return;
	struct klp_rule *r = cur(ps);
	char *msg = NULL;
	if (!ps->rule_bad && klp_check_actions(r, &msg) < 0) {
		klp_diag_add(ps->d, r->line, false, "%s", msg);
		ps->rule_bad = true;
	}
	free(msg);
	/* A rule with errors stays in the table (so later duplicates are still
	 * found) but is skipped by lint. */
	if (ps->rule_bad)
		r->line = -r->line;
}

static void section(struct parser *ps, char *s, int line)
{
	finish_rule(ps);
	ps->sec = SEC_BAD;
	ps->rule_bad = false;

	char *close = strchr(s, ']');
	if (!close) {
		klp_diag_add(ps->d, line, false, "missing ']' in the section header");
		return;
	}
	if (*trim(close + 1)) {
		klp_diag_add(ps->d, line, false, "unexpected text after ']'");
		return;
	}
	*close = '\0';
	char *in = trim(s + 1);
	if (!strcmp(in, "libvirt")) {
		ps->sec = SEC_LIBVIRT;
		if (!ps->libvirt_line)
			ps->libvirt_line = line;
		return;
	}
	if (strncmp(in, "rule", 4) != 0 || (in[4] && !isspace((unsigned char)in[4]))) {
		klp_diag_add(ps->d, line, false, "unknown section [%s]: rules are written [rule NAME]", in);
		return;
	}
	char *name = trim(in + 4);
	if (!*name) {
		klp_diag_add(ps->d, line, false, "[rule] needs a name: [rule NAME]");
		return;
	}
	if (!valid_rule_name(name)) {
		klp_diag_add(ps->d, line, false,
			     "rule name \"%s\": use up to %d letters, digits, '_', '.' and '-', starting with a letter or digit",
			     name, KLP_MAX_RULE_NAME);
		return;
	}
	for (size_t i = 0; i < ps->p->n; i++) {
		const struct klp_rule *o = &ps->p->rules[i];
		if (!strcmp(o->name + strlen("user:"), name)) {
			klp_diag_add(ps->d, line, false, "duplicate rule name \"%s\" (first at line %d)", name,
				     o->line < 0 ? -o->line : o->line);
			return;
		}
	}
	if (ps->p->n >= KLP_MAX_RULES) {
		klp_diag_add(ps->d, line, false, "more than %d rules", KLP_MAX_RULES);
		return;
	}
	struct klp_rule *r = klp_policy_add_rule(ps->p);
	snprintf(r->name, sizeof r->name, "user:%s", name);
	r->origin = KLP_USER;
	r->kind = KLP_K_USER;
	r->line = line;
	ps->rule = ps->p->n - 1;
	ps->sec = SEC_RULE;
	if (!ps->first_rule_line)
		ps->first_rule_line = line;
}

static int global_lookup(const char *key)
{
	for (int i = 0; i < G_COUNT; i++)
		if (!strcmp(key, global_names[i]))
			return i;
	return -1;
}

static void unknown_key(struct parser *ps, int line, const char *key, const char *where)
{
	const char *s = klp_suggest_key(key);
	if (s)
		klp_diag_add(ps->d, line, false, "unknown key \"%s\"%s (did you mean \"%s\"?)", key, where, s);
	else
		klp_diag_add(ps->d, line, false, "unknown key \"%s\"%s", key, where);
	if (ps->sec == SEC_RULE)
		ps->rule_bad = true;
}

static void set_path(char **slot, const char *key, const char *value, int line, struct parser *ps)
{
	if (value[0] != '/') {
		klp_diag_add(ps->d, line, false, "%s: \"%s\" is not an absolute path", key, value);
		return;
	}
	free(*slot);
	*slot = xstrdup(value);
}

static void global(struct parser *ps, int g, const char *key, const char *value, int line)
{
	if (ps->global_line[g])
		klp_diag_add(ps->d, line, true, "\"%s\" is set again (first at line %d): the last value wins", key,
			     ps->global_line[g]);
	ps->global_line[g] = line;
	switch (g) {
	case G_QEMU: set_path(&ps->p->g.qemu, key, value, line, ps); break;
	case G_STATE_DIR: set_path(&ps->p->g.state_dir, key, value, line, ps); break;
	case G_CACHE_DIR: set_path(&ps->p->g.cache_dir, key, value, line, ps); break;
	case G_ON_ERROR:
		if (!strcmp(value, "passthrough"))
			ps->p->g.on_error = KL_ON_ERROR_PASSTHROUGH;
		else if (!strcmp(value, "refuse"))
			ps->p->g.on_error = KL_ON_ERROR_REFUSE;
		else
			klp_diag_add(ps->d, line, false, "on-error: expected passthrough or refuse, not \"%s\"", value);
		break;
	case G_MONITOR_RELAY:
		if (!strcmp(value, "on"))
			ps->p->g.monitor_relay = true;
		else if (!strcmp(value, "off"))
			ps->p->g.monitor_relay = false;
		else
			klp_diag_add(ps->d, line, false, "monitor-relay: expected on or off, not \"%s\"", value);
		break;
	case G_NOVA:
		free(ps->nova_value);
		ps->nova_value = xstrdup(value);
		ps->nova_line = line;
		break;
	}
}

static void rule_key(struct parser *ps, const char *key, const char *value, int line)
{
	struct klp_rule *r = cur(ps);
	const char *rname = r->name + strlen("user:");
	char *msg = NULL;
	int k;

	if ((k = klp_mkey_lookup(key)) >= 0) {
		if (r->m.keys & (1u << k)) {
			klp_diag_add(ps->d, line, false, "\"%s\" given twice in rule \"%s\" (first at line %d)", key,
				     rname, r->m.line[k]);
			ps->rule_bad = true;
		} else if (klp_set_match(&r->m, k, value, line, &msg) < 0) {
			rule_error(ps, line, msg);
		}
	} else if ((k = klp_akey_lookup(key)) >= 0) {
		if (r->actions & (1u << k)) {
			klp_diag_add(ps->d, line, false, "\"%s\" given twice in rule \"%s\" (first at line %d)", key,
				     rname, r->action_line[k]);
			ps->rule_bad = true;
		} else if (klp_set_action(r, k, value, line, &msg) < 0) {
			rule_error(ps, line, msg);
		}
	} else if (global_lookup(key) >= 0) {
		klp_diag_add(ps->d, line, false,
			     "\"%s\" is a global setting: put it before the first section, not in rule \"%s\"", key,
			     rname);
		ps->rule_bad = true;
	} else {
		char where[96];
		snprintf(where, sizeof where, " in rule \"%s\"", rname);
		unknown_key(ps, line, key, where);
	}
	free(msg);
}

static void key_value(struct parser *ps, char *s, int line)
{
	char *eq = strchr(s, '=');
	if (!eq) {
		char *word = trim(s);
		if (global_lookup(word) >= 0 || klp_mkey_lookup(word) >= 0 || klp_akey_lookup(word) >= 0)
			klp_diag_add(ps->d, line, false, "\"%s\": missing '= value'", word);
		else
			klp_diag_add(ps->d, line, false, "expected \"key = value\", a [rule NAME] header or a comment");
		if (ps->sec == SEC_RULE)
			ps->rule_bad = true;
		return;
	}
	*eq = '\0';
	char *key = trim(s), *value = trim(eq + 1);
	if (!*key) {
		klp_diag_add(ps->d, line, false, "missing key before '='");
		if (ps->sec == SEC_RULE)
			ps->rule_bad = true;
		return;
	}
	if (ps->sec == SEC_BAD)
		return; /* the header's error said enough */
	if (!*value) {
		klp_diag_add(ps->d, line, false, "\"%s\": missing value after '='", key);
		if (ps->sec == SEC_RULE)
			ps->rule_bad = true;
		return;
	}

	int g;
	switch (ps->sec) {
	case SEC_GLOBAL:
		if ((g = global_lookup(key)) >= 0)
			global(ps, g, key, value, line);
		else if (klp_mkey_lookup(key) >= 0 || klp_akey_lookup(key) >= 0)
			klp_diag_add(ps->d, line, false, "\"%s\" belongs in a [rule NAME] section", key);
		else
			unknown_key(ps, line, key, " (global settings: qemu, state-dir, cache-dir, on-error, monitor-relay)");
		break;
	case SEC_LIBVIRT:
		if (!strcmp(key, "disk_cachemodes"))
			global(ps, G_NOVA, key, value, line);
		else
			klp_diag_add(ps->d, line, false,
				     "[libvirt] (nova compatibility) takes only disk_cachemodes, not \"%s\"", key);
		break;
	case SEC_RULE:
		rule_key(ps, key, value, line);
		break;
	case SEC_BAD:
		break;
	}
}

static void finish(struct parser *ps)
{
	finish_rule(ps);
	if (ps->nova_line) {
		if (ps->first_rule_line)
			klp_diag_add(ps->d, ps->nova_line, false,
				     "disk_cachemodes (nova compatibility) cannot be combined with [rule] sections "
				     "(first at line %d): write the rules instead", ps->first_rule_line);
		else if (klp_nova_rules(ps->p, ps->nova_value, ps->nova_line, ps->d) == 0)
			ps->p->nova = true;
	} else if (ps->libvirt_line) {
		klp_diag_add(ps->d, ps->libvirt_line, true,
			     "[libvirt] without disk_cachemodes: only the built-in rules apply");
	}
	klp_lint(ps->p, ps->d);
	/* Rules with errors were kept only for the checks above. */
	size_t w = 0;
	for (size_t i = 0; i < ps->p->n; i++) {
		if (ps->p->rules[i].line < 0)
			klp_rule_free(&ps->p->rules[i]);
		else
			ps->p->rules[w++] = ps->p->rules[i];
	}
	ps->p->n = w;
	ps->p->n_user = w;
	klp_add_defaults(ps->p);
}

struct kl_policy *klp_parse(const char *text, const char *name, struct klp_diags *d)
{
	struct parser ps = { .p = klp_policy_new(name), .d = d, .sec = SEC_GLOBAL };
	const char *s = text;
	int line = 0;

	d->name = ps.p->name;
	if (!strncmp(s, "\xef\xbb\xbf", 3))
		s += 3; /* a UTF-8 byte order mark */
	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t len = nl ? (size_t)(nl - s) : strlen(s);
		char *buf = xstrndup(s, len);
		line++;
		s += len + (nl ? 1 : 0);

		char *t = trim(buf);
		if (*t && *t != '#' && *t != ';') {
			strip_comment(t);
			t = trim(t);
			if (*t == '[')
				section(&ps, t, line);
			else
				key_value(&ps, t, line);
		}
		free(buf);
	}
	finish(&ps);
	free(ps.nova_value);
	return ps.p;
}

static void report(const struct klp_diags *d, struct strvec *warnings, struct kl_error *err)
{
	bool first = true;
	for (size_t i = 0; i < d->n; i++) {
		const struct klp_diag *x = &d->v[i];
		if (x->warning) {
			if (warnings)
				strvec_push(warnings, klp_diag_format(d, x, false));
		} else if (first) {
			_cleanup_free_ char *m = klp_diag_format(d, x, false);
			if (d->errors > 1)
				kl_error_set(err, "%s (and %zu more error%s: kvm-launch --check-policy %s)", m,
					     d->errors - 1, d->errors > 2 ? "s" : "", d->name);
			else
				kl_error_set(err, "%s", m);
			first = false;
		}
	}
}

int kl_policy_load_string(const char *text, const char *name, struct kl_policy **out, struct strvec *warnings,
			  struct kl_error *err)
{
	struct klp_diags d = { 0 };
	struct kl_policy *p = klp_parse(text, name, &d);
	klp_diags_sort(&d);
	report(&d, warnings, err);
	int ret = d.errors ? -1 : 0;
	klp_diags_free(&d);
	if (ret < 0) {
		kl_policy_free(p);
		*out = NULL;
		return -1;
	}
	*out = p;
	return 0;
}
