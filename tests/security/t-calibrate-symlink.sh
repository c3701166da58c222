#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Issue 17, attack 6: with cache/calibration a symlink, root's --calibrate wrote into a root-only directory.
# Now root's --calibrate writes only into its own cache directory, opened component by component without
# following a symlink: a symlinked calibration directory (planted by kl-attacker where the shipped layout lets
# it, or left over in root's private directory), a symlinked calibration file and a symlinked cache directory
# all leave the root-only victim directory untouched.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
requires stat
sec_setup

victim=$SEC_TMP/victim
install -d -m 0700 -o root -g root "$victim"
echo "root's own" > "$victim/keep.json"
chmod 0600 "$victim/keep.json"
target=$SEC_TMP/target
install -d -m 0755 "$target"

# calibrate NAME: root's --calibrate, which must fail to store (exit 1) or store where it should.
calibrate() {
	local rc=0
	timeout -k 2 60 "$SEC_KL" --calibrate "$target" --seconds 1 > "$SEC_TMP/$1.out" 2> "$SEC_TMP/$1.err" || rc=$?
	[ "$rc" != 124 ] || fail "$1: --calibrate hung"
	echo "$1: --calibrate exit $rc: $(grep -v '^\[' "$SEC_TMP/$1.err" | tail -n 1)"
	return "$rc"
}
victim_untouched() {
	[ "$(ls -A "$victim")" = keep.json ] || fail "$1: written into the victim directory: $(ls -A "$victim")"
	[ "$(cat "$victim/keep.json")" = "root's own" ] || fail "$1: the victim file was changed"
}

# ---- the shipped layout: kl-attacker points calibration at the victim wherever it can ----
if as_attacker ln -sfn "$victim" "$SEC_CACHE/calibration"; then
	calibrate shipped && fail "shipped: --calibrate stored through kl-attacker's symlink"
	victim_untouched shipped
	grep -q "cannot store a calibration: $SEC_CACHE: writable by its group" "$SEC_TMP/shipped.err" || fail "shipped: no reason given"
	echo "shipped layout, kl-attacker's symlink: refused, victim untouched: ok"
else
	echo "shipped layout: kl-attacker cannot write $SEC_CACHE"
fi

# ---- root's private cache directory with kl-attacker's symlink left over ----
rm -rf "$SEC_CACHE"
install -d -m 0755 -o root -g root "$SEC_CACHE"
ln -s "$victim" "$SEC_CACHE/calibration"
chown -h "$ATTACKER" "$SEC_CACHE/calibration"
calibrate leftover && fail "leftover: --calibrate stored through a symlinked calibration directory"
victim_untouched leftover
grep -q "calibration: not a directory (a symlink is never followed)" "$SEC_TMP/leftover.err" ||
	{ cat "$SEC_TMP/leftover.err"; fail "leftover: the refusal does not say why"; }
# Even root's own symlink is not followed.
chown -h root "$SEC_CACHE/calibration"
calibrate rootlink && fail "rootlink: --calibrate stored through a symlinked calibration directory"
victim_untouched rootlink
echo "symlinked calibration directory: refused, victim untouched: ok"

# ---- the file itself a symlink: replaced, not written through ----
rm -f "$SEC_CACHE/calibration"
install -d -m 0755 -o root -g root "$SEC_CACHE/calibration"
storage=dev-$(stat -c '%Hd-%Ld' "$target")
ln -s "$victim/keep.json" "$SEC_CACHE/calibration/$storage.json"
calibrate filelink || fail "filelink: --calibrate failed: $(cat "$SEC_TMP/filelink.err")"
victim_untouched filelink
[ -f "$SEC_CACHE/calibration/$storage.json" ] && [ ! -L "$SEC_CACHE/calibration/$storage.json" ] ||
	fail "filelink: the calibration is not a regular file of its own"
grep -q "Stored as $SEC_CACHE/calibration/$storage.json" "$SEC_TMP/filelink.out" || fail "filelink: not stored where it says"
[ -z "$(find "$SEC_CACHE" -name '.*' -print)" ] || fail "temporary files left: $(find "$SEC_CACHE" -name '.*')"
echo "symlinked calibration file: replaced by the new file, victim untouched: ok"

# ---- the cache directory itself a symlink ----
rm -rf "$SEC_CACHE"
ln -s "$victim" "$SEC_CACHE"
calibrate toplink && fail "toplink: --calibrate stored through a symlinked cache directory"
victim_untouched toplink
echo "symlinked cache directory: refused, victim untouched: ok"
