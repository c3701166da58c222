#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Every shell test starts the same way (HACKING.md): it sources
# tests/functions.sh as `. "$(dirname "$0")/../functions.sh"`, which works
# from any working directory, and a lib.sh the same way, relative to the
# test: `. "$(dirname "$0")/lib.sh"` (its folder's) or
# `. "$(dirname "$0")/../guest/lib.sh"` (another's).  No other spelling.
. "$(dirname "$0")/../functions.sh"
requires grep
cd "$KL_TOP" || fail "cd $KL_TOP"

WANT='. "$(dirname "$0")/../functions.sh"'
bad=
n=0
for t in tests/*/t-*.sh; do
	n=$((n + 1))
	grep -qxF "$WANT" "$t" || bad="$bad $t(no '$WANT')"
	other=$(grep -nE '^[[:space:]]*(\.|source)[[:space:]].*(functions|lib)\.sh' "$t" | grep -vF "$WANT" |
		grep -vE '^[0-9]+:\. "\$\(dirname "\$0"\)/(\.\./[a-z]+/)?lib\.sh"$' || true)
	[ -z "$other" ] || bad="$bad $t($other)"
done
[ "$n" -gt 30 ] || fail "only $n tests found"
[ -z "$bad" ] || fail "tests that source the helpers another way:$bad"
echo "$n tests source tests/functions.sh one way"
