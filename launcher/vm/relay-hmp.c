/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Proxmox VE 8 hot-plugs a disk with HMP over QMP:
 *     {"execute":"human-monitor-command",
 *      "arguments":{"command-line":"drive_add auto \"file=...,if=none,id=drive-scsi1,...\""}}
 * then device_add.  The relay reads the drive_add options the way QEMU's HMP
 * does (one word, or a double-quoted string with \\ \" \' \n \r escapes),
 * decides them as a -drive through the launch pipeline (relay-decide.c),
 * and sends the rewritten options (only aio= and cache= change) quoted
 * again.  Anything it cannot read with certainty goes to QEMU as sent. */
#include "launcher/vm/relay-int.h"

#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/json.h"
#include "common/log.h"
#include "common/strbuf.h"

static void skip_space(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

/* One HMP string argument at *p: 0 and the text in out, -1 on any doubt. */
static int hmp_string(const char **p, struct strbuf *out)
{
	skip_space(p);
	const char *s = *p;
	if (*s != '"') {
		while (*s && *s != ' ' && *s != '\t' && *s != '"' && *s != '\\')
			strbuf_appendc(out, *s++);
		*p = s;
		return out->len ? 0 : -1;
	}
	for (s++; *s != '"'; s++) {
		if (!*s)
			return -1;
		if (*s != '\\') {
			strbuf_appendc(out, *s);
			continue;
		}
		switch (*++s) {
		case '\\': case '"': case '\'': strbuf_appendc(out, *s); break;
		case 'n': strbuf_appendc(out, '\n'); break;
		case 'r': strbuf_appendc(out, '\r'); break;
		default: return -1;
		}
	}
	*p = s + 1;
	return 0;
}

static void hmp_quote(struct strbuf *b, const char *s)
{
	strbuf_appendc(b, '"');
	for (; *s; s++) {
		if (*s == '\n' || *s == '\r')
			strbuf_append(b, *s == '\n' ? "\\n" : "\\r");
		else {
			if (*s == '\\' || *s == '"')
				strbuf_appendc(b, '\\');
			strbuf_appendc(b, *s);
		}
	}
	strbuf_appendc(b, '"');
}

/* The new command line, or NULL to forward as sent. */
static char *drive_add(struct kl_relay_ctx *c, const char *line)
{
	const char *p = line;
	skip_space(&p);
	if (strncmp(p, "drive_add", 9) != 0 || (p[9] != ' ' && p[9] != '\t'))
		return NULL;
	p += 9;
	_cleanup_strbuf_ struct strbuf addr = STRBUF_INIT;
	_cleanup_strbuf_ struct strbuf opts = STRBUF_INIT;
	_cleanup_strbuf_ struct strbuf out = STRBUF_INIT;
	_cleanup_json_ json_object *r = NULL;
	if (hmp_string(&p, &addr) < 0 || hmp_string(&p, &opts) < 0 || (skip_space(&p), *p)) {
		kl_warn("relay: drive_add: not one address and one option string: forwarded as sent");
		return NULL;
	}
	char why[512] = "";
	if (c->no_decide || kl_relay_decide_drive(c, strbuf_str(&opts), &r, why, sizeof why) < 0) {
		kl_warn("relay: drive_add: %s: forwarded as sent", why[0] ? why : "not decided here");
		return NULL;
	}
	json_object *disk = kl_json_get(r, "disk", json_type_object);
	const char *node = kl_json_str(disk, "node") ? kl_json_str(disk, "node") : kl_json_str(disk, "id");
	if (node) {
		_cleanup_json_ json_object *rec = json_object_new_object();
		json_object_object_add(rec, "node-name", json_object_new_string(node));
		kl_relay_remember(c, rec, disk);
	}
	const char *drive = kl_json_str(r, "drive");
	if (!kl_json_bool(r, "changed", false) || strcmp(drive, strbuf_str(&opts)) == 0)
		return NULL;
	strbuf_append(&out, "drive_add ");
	strbuf_append(&out, strbuf_str(&addr));
	strbuf_appendc(&out, ' ');
	hmp_quote(&out, drive);
	kl_info("relay: drive_add %s: aio=%s cache=%s (rule %s)", node ? node : "?",
		kl_json_str(disk, "aio") ? kl_json_str(disk, "aio") : "-",
		kl_json_str(disk, "cache") ? kl_json_str(disk, "cache") : "-",
		kl_json_str(disk, "rule") ? kl_json_str(disk, "rule") : "?");
	return strbuf_steal(&out);
}

json_object *kl_relay_hmp(struct kl_relay_ctx *c, json_object *msg, json_object *args)
{
	const char *line = kl_json_str(args, "command-line");
	if (!line)
		return NULL;
	char *n = drive_add(c, line);
	if (!n)
		return NULL;
	json_object *m = NULL;
	if (json_object_deep_copy(msg, &m, NULL) < 0) {
		free(n);
		return NULL;
	}
	json_object *a = kl_json_get(m, "arguments", json_type_object);
	json_object_object_add(a, "command-line", json_object_new_string(n));
	free(n);
	return m;
}
