#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The arrows between the folders point one way (HACKING.md):
#   launcher/argv/  (the argv model)   includes only common/, policy/types.h and launcher/argv/
#   policy/*.[ch]   (the engine)       nothing from launcher/, qmp/, policy/probe/,
#                                      policy/calibrate/ or policy/load/
#   qmp/                               nothing from policy/ or launcher/
#   common/                            only common/ (and config.h)
# Every project include is rooted at the top ("common/log.h"): a relative
# one ("../x.h") would hide where it points, so it is refused everywhere.
# The check first proves on a copy that it catches each kind of breach.
. "$(dirname "$0")/../functions.sh"
requires grep sed cp
cd "$KL_TOP" || fail "cd $KL_TOP"

# includes FILE: the quoted or bracketed project includes of FILE, one a line
# (system headers such as <stdio.h> and <json-c/json.h> are not ours).
includes() {
	sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]\([^>"]*\)[>"].*/\1/p' "$1" |
		grep -E '^(\.\.?/|common/|policy/|qmp/|launcher/|config\.h$)|/\.\./' || true
}

# breaches DIR: one line "FILE: includes HEADER (RULE)" per breach below DIR.
breaches() {
	local f h
	for f in "$1"/launcher/*.[ch] "$1"/launcher/*/*.[ch] "$1"/policy/*.[ch] "$1"/policy/*/*.[ch] \
		"$1"/qmp/*.[ch] "$1"/common/*.[ch]; do
		[ -f "$f" ] || continue
		local rel=${f#"$1"/}
		for h in $(includes "$f"); do
			case $h in
			.* | */../* | */./*) echo "$rel: includes $h (relative: root it at the top)"; continue ;;
			esac
			case $rel in
			launcher/argv/*)
				case $h in
				common/* | policy/types.h | launcher/argv/*) ;;
				*) echo "$rel: includes $h (the argv model sees only common/, policy/types.h and itself)" ;;
				esac ;;
			policy/*/*) ;;
			policy/*)
				case $h in
				launcher/* | qmp/* | policy/probe/* | policy/calibrate/* | policy/load/*)
					echo "$rel: includes $h (the policy engine is pure: no probes, calibration, file I/O, QMP or launcher)" ;;
				esac ;;
			qmp/*)
				case $h in
				policy/* | launcher/*) echo "$rel: includes $h (qmp/ knows nothing of policy or the launcher)" ;;
				esac ;;
			common/*)
				case $h in
				common/* | config.h) ;;
				*) echo "$rel: includes $h (common/ stands on nothing)" ;;
				esac ;;
			esac
		done
	done
}

# The check catches each breach, in a copy of the sources.
kl_tmpdir
mkdir -p "$TMP/t"
cp -r launcher policy qmp common "$TMP/t/"
rm -f "$TMP/t"/*/*.o "$TMP/t"/*/*/*.o
[ -z "$(breaches "$TMP/t")" ] || fail "self-check: the copy already breaches: $(breaches "$TMP/t")"
try_bad() { # FILE LINE: add LINE to FILE in the copy, expect exactly one breach naming FILE
	local f=$TMP/t/$1 saved
	saved=$(cat "$f")
	printf '%s\n' "$2" >> "$f"
	local got
	got=$(breaches "$TMP/t")
	printf '%s\n' "$saved" > "$f"
	[ "$(printf '%s\n' "$got" | grep -c .)" = 1 ] && printf '%s' "$got" | grep -q "^$1: " ||
		fail "self-check: '$2' in $1 gave '${got:-no breach}'"
}
try_bad launcher/argv/model.c '#include "launcher/vm/state.h"'
try_bad launcher/argv/drive.h '#include "launcher/launch.h"'
try_bad launcher/argv/keyval.c '#include "policy/policy.h"'
try_bad launcher/argv/rewrite.c '#include <qmp/qmp.h>'
try_bad launcher/argv/blockdev.c '#include "../vm/set.h"'
try_bad policy/decide.c '#include "policy/probe/probe.h"'
try_bad policy/rules.c '#include "policy/calibrate/calibrate.h"'
try_bad policy/types.h '#include "policy/load/load.h"'
try_bad policy/keys.c '#  include "launcher/argv/model.h"'
try_bad policy/parse.c '#include "qmp/qmp.h"'
try_bad qmp/qmp.c '#include "policy/types.h"'
try_bad qmp/qmp.h '#include "launcher/vm/status.h"'
try_bad common/strbuf.c '#include "policy/types.h"'
# ...and lets through what is allowed.
printf '#include "common/log.h"\n#include "policy/types.h"\n#include "launcher/argv/keyval.h"\n#include <stdio.h>\n' \
	>> "$TMP/t/launcher/argv/model.c"
printf '#include "policy/policy-int.h"\n' >> "$TMP/t/policy/decide.c"
[ -z "$(breaches "$TMP/t")" ] || fail "self-check: allowed includes refused: $(breaches "$TMP/t")"

got=$(breaches .)
[ -z "$got" ] || fail "includes against the arrows:
$got"
n=$(cat launcher/*.[ch] launcher/*/*.[ch] policy/*.[ch] policy/*/*.[ch] qmp/*.[ch] common/*.[ch] | grep -c '#[[:space:]]*include')
echo "the arrows hold ($n includes read)"
