#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Issue 17 ("the policy file is checked with stat and then opened again"): root's --config names a path in a
# sticky directory group kvm may write (as the old state directory was), and kl-attacker keeps flipping its own
# symlink there between root's safe policy and its own policy file (which sets qemu = a binary of its own and
# cache = unsafe).  The checks now run on the very fd that is read, so each of root's runs either uses root's
# policy or refuses the attacker's file (and starts QEMU with the original arguments): never the attacker's.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
JSONGET=$KL_TOP/tests/helpers/json-get
requires "$JSONGET" fallocate
sec_setup

img=$SEC_TMP/p.raw
fallocate -l 16M "$img" || fail "fallocate"
VM=(-name swap -drive "file=$img,format=raw,if=virtio")
install -d -m 0755 "$SEC_TMP/rootcache"
good=$SEC_TMP/good.conf
printf 'cache-dir = %s\n[rule all]\nbackend = file\ncache = writethrough\n' "$SEC_TMP/rootcache" > "$good"
chmod 0644 "$good"
att=$(sec_attacker_dir) || fail "no directory for kl-attacker"
chmod 0755 "$att"
as_attacker sh -c 'printf "qemu = %s/qemu\n[rule all]\nbackend = file\ncache = unsafe\n" "$1" > "$1/evil.conf" &&
	chmod 0644 "$1/evil.conf"' sh "$att" || fail "kl-attacker cannot write its policy"
shared=$SEC_TMP/shared
install -d -m 1770 -o root -g kvm "$shared"
as_attacker ln -s "$good" "$shared/k.conf" || fail "kl-attacker cannot make its symlink in $shared"

# Root's policy through the attacker's symlink, without a flip: used.
"$SEC_KL" --config "$shared/k.conf" --dry-run -- "${VM[@]}" 2>&1 | grep -q "cache=writethrough" ||
	fail "root's policy through the symlink is not used"
# Pointing at the attacker's file, without a race: refused.
as_attacker ln -sfn "$att/evil.conf" "$shared/k.conf"
"$SEC_KL" --config "$shared/k.conf" --dry-run -- "${VM[@]}" > "$SEC_TMP/out" 2>&1
grep -q "refused: the file is owned by uid $ATTACKER_UID" "$SEC_TMP/out" || { cat "$SEC_TMP/out"; fail "the attacker's file is not refused"; }

# The race: rename(2) swaps the symlink atomically, so the path always names one of the two files.
stop=$SEC_TMP/stop
SEC_DEADLINE=300 as_attacker sh -c 'cd "$1" && while [ ! -e "$4" ]; do
	ln -sfn "$2" t1 && mv -fT t1 k.conf; ln -sfn "$3" t2 && mv -fT t2 k.conf; done' sh \
	"$shared" "$good" "$att/evil.conf" "$stop" 2>/dev/null &
flipper=$!
# Before $SEC_TMP (and the stop file in it) goes.
cleanup_fn "touch '$stop'; wait_for 10 gone $flipper"
used=0 refused=0 runs=0
while [ "$runs" -lt 300 ]; do
	runs=$((runs + 1))
	timeout -k 2 20 "$SEC_KL" --config "$shared/k.conf" --dry-run --json -- "${VM[@]}" > "$SEC_TMP/run.json" \
		2> "$SEC_TMP/run.err"
	rc=$?
	[ "$rc" != 124 ] || fail "run $runs: root's dry run hung"
	qemu=$("$JSONGET" "$SEC_TMP/run.json" qemu)
	argv=$("$JSONGET" "$SEC_TMP/run.json" argv)
	case "$qemu $argv" in
	*"$att"*|*unsafe*) cat "$SEC_TMP/run.err" "$SEC_TMP/run.json"; fail "run $runs: root believed kl-attacker's policy" ;;
	*cache=writethrough*) used=$((used + 1)) ;;
	*)
		grep -q "refused: .*owned by uid $ATTACKER_UID\|refused: the file was replaced" "$SEC_TMP/run.err" ||
			{ cat "$SEC_TMP/run.err"; fail "run $runs: neither root's policy nor a refusal"; }
		refused=$((refused + 1)) ;;
	esac
done
touch "$stop"
wait "$flipper"
echo "$runs runs while kl-attacker flipped the symlink: root's policy $used times, refused $refused times, the attacker's never"
[ "$used" -gt 0 ] && [ "$refused" -gt 0 ] || fail "the race was not exercised (used $used, refused $refused)"
