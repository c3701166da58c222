#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The man pages cover every option of `kvm-launch --help` (kvm-launch(8)), every
# key the policy parser accepts (policy/keys.c: kvm-launch.conf(5)) and every
# subcommand and option of kvm-launch-divert (kvm-launch-divert(8)); all three
# render without a warning.
. "$(dirname "$0")/../functions.sh"
requires "$KL" groff

man8=$KL_TOP/doc/kvm-launch.8
man5=$KL_TOP/doc/kvm-launch.conf.5
mandivert=$KL_TOP/doc/kvm-launch-divert.8
bad=0
miss() { echo "missing: $*" >&2; bad=1; }

# Man source with "\-" as "-" and font escapes removed.
plain() { sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\(em/-/g' "$1"; }

# ---- kvm-launch(8): every option of --help, in the OPTIONS section ----
opts=$("$KL" --help | grep -o -- '--[a-z][a-z-]*' | sort -u)
[ -n "$opts" ] || fail "no option found in kvm-launch --help"
options_section=$(plain "$man8" | sed -n '/^\.SH OPTIONS/,/^\.SH /p')
for o in $opts; do
	printf '%s\n' "$options_section" | grep -qE -- "^\.(B|BI|BR|TP)( |.* )\"?$o([ \",=]|$)" ||
		miss "kvm-launch.8 OPTIONS: $o"
done
echo "kvm-launch(8): $(echo $opts | wc -w) options checked"

# ---- kvm-launch.conf(5): every key of policy/keys.c ----
# (a rule's throttle keys are those of kl_throttle_keys in policy/types.c
# that have a field: the bursts' lengths are --set's alone)
keys=$( (awk '/klp_mkeys\[KLP_M_COUNT\] = \{/,/^\};/' "$KL_TOP/policy/keys.c" | grep -o '{ "[a-z_-]*"' | tr -d '{ "'
	awk '/akey_names\[KLP_A_COUNT\] = \{/,/^\};/' "$KL_TOP/policy/keys.c" | grep -o '"[a-z_-]*"' | tr -d '"'
	awk '/kl_throttle_keys\[KL_THROTTLE_NKEYS\] = \{/,/^\};/' "$KL_TOP/policy/types.c" |
		grep -oE '\{ "[a-z_]*", (true|false), FIELD' | grep -oE '"[a-z_]*"' | tr -d '"'
	grep 'global_names\[\] = ' "$KL_TOP/policy/keys.c" | grep -o '"[a-z_-]*"' | tr -d '"') | sort -u)
[ "$(echo $keys | wc -w)" -ge 30 ] || fail "could not read the keys from policy/keys.c and types.c (found: $keys)"
conf=$(plain "$man5")
for k in $keys; do
	printf '%s\n' "$conf" | grep -qE -- "^\.(B|BI|BR|RB|IR|RI)( |.* )\"?$k\"?([ ,]|$)" ||
		miss "kvm-launch.conf.5: key $k"
done
for s in '\[rule' '\[libvirt\]'; do
	printf '%s\n' "$conf" | grep -q -- "$s" || miss "kvm-launch.conf.5: section $s"
done
echo "kvm-launch.conf(5): $(echo $keys | wc -w) keys checked"

# ---- kvm-launch-divert(8): its subcommands and options ----
div=$(plain "$mandivert")
sub=$(sed -n 's/^case \$cmd in \(.*\) ;; -h.*/\1/p' "$KL_TOP/contrib/kvm-launch-divert" | tr -d '|)')
dopts=$(grep -o -- '^	--[a-z-]*)' "$KL_TOP/contrib/kvm-launch-divert" | tr -d '\t)' | sort -u)
[ -n "$sub" ] && [ -n "$dopts" ] || fail "could not read kvm-launch-divert's commands and options"
for w in $sub $dopts; do
	printf '%s\n' "$div" | grep -qE -- "^\.(B|BI|BR|RB|TP)( |.* )\"?$w([ \",]|$)" || miss "kvm-launch-divert.8: $w"
done
echo "kvm-launch-divert(8): $(echo $sub $dopts | wc -w) words checked"

# ---- rendering ----
for page in "$man8" "$man5" "$mandivert"; do
	w=$(LC_ALL=C.UTF-8 groff -ww -z -man -Tutf8 "$page" 2>&1)
	[ -z "$w" ] || { echo "groff warnings in $page:" >&2; echo "$w" >&2; bad=1; }
	if command -v man >/dev/null; then
		w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null)
		[ -z "$w" ] || { echo "man --warnings on $page:" >&2; echo "$w" >&2; bad=1; }
	fi
done
[ "$bad" = 0 ] || fail "man pages incomplete or warn (see above)"
echo "PASS: man pages cover the options and keys, and render cleanly"
