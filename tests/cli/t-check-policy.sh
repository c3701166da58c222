#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# kvm-launch --check-policy on the policies in tests/policies: every error and
# warning as FILE:LINE: message, in line order (NAME.expected), exit 1 when
# there are errors; and a file others can write is refused.
. "$(dirname "$0")/../functions.sh"
requires "$KL"
kl_tmpdir

n=0
for conf in "$KL_TOP"/tests/policies/*.conf; do
	name=$(basename "$conf" .conf)
	cp "$conf" "$TMP/$name.conf"
	chmod 0644 "$TMP/$name.conf"
	"$KL" --check-policy "$TMP/$name.conf" > "$TMP/out" 2>&1
	rc=$?
	case $name in
	bad-*) [ $rc = 1 ] || fail "$name: exit $rc, expected 1" ;;
	*) [ $rc = 0 ] || fail "$name: exit $rc, expected 0: $(cat "$TMP/out")" ;;
	esac
	# The diagnostics, without the directory and the summary line.
	sed -e "s|^$TMP/||" "$TMP/out" | grep -v "^$name.conf: \(valid\|[0-9]* errors\?\)\$" > "$TMP/got" || true
	diff -u "$KL_TOP/tests/policies/$name.expected" "$TMP/got" || fail "$name: diagnostics differ"
	tail -n 1 "$TMP/out" | grep -q "^$TMP/$name.conf: \(valid\|[0-9]* errors\?\)\$" || fail "$name: no summary line"
	n=$((n + 1))
done
[ $n -ge 6 ] || fail "only $n policies found under tests/policies"

# Writable by everyone: refused, and said so.
chmod 0666 "$TMP/good-full.conf"
if "$KL" --check-policy "$TMP/good-full.conf" > "$TMP/out" 2>&1; then
	fail "a world-writable policy passed the check"
fi
grep -q "refused: the file is writable by every user (mode 0666)" "$TMP/out" || fail "no refusal: $(cat "$TMP/out")"

# The example policy is valid and silent.
"$KL" --check-policy "$KL_TOP/contrib/kvm-launch.conf.example" > "$TMP/out" 2>&1 || fail "example: $(cat "$TMP/out")"
[ "$(wc -l < "$TMP/out")" = 1 ] || fail "example: warnings: $(cat "$TMP/out")"
exit 0
