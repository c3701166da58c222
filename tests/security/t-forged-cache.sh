#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Issue 17, attack 6: a forged qemu-caps.json (an io_uring claim keyed by the binary's public identity) and a
# planted calibration (another aio ranking), put by kl-attacker in every directory of the cache tree it can write,
# and left over in root's own cache directory from an older layout that let group kvm write there, do not change
# root's decision: `--dry-run --json` before and after are the same, and --debug says why they were ignored.
# The same two files written by root into a cache of root's do change the decision, so they are ignored for
# whose they are, not for being malformed.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
JSONGET=$KL_TOP/tests/helpers/json-get
requires "$JSONGET" "$QEMU" fallocate stat
sec_setup

img=$SEC_TMP/p.raw
fallocate -l 64M "$img" || fail "fallocate"
VM=(-name forged -drive "file=$img,format=raw,if=virtio")

# decision OUT [kvm-launch options]: root's dry run, reduced to what decides: argv, aio, calibration, io_uring.
decision() {
	local out=$1
	shift
	timeout -k 2 30 "$SEC_KL" "$@" --debug --dry-run --json -- "${VM[@]}" > "$out.json" 2> "$out.err" ||
		{ cat "$out.err"; fail "root's dry run failed"; }
	{
		"$JSONGET" "$out.json" argv
		"$JSONGET" "$out.json" disks.0.aio
		"$JSONGET" "$out.json" disks.0.calibration
		"$JSONGET" "$out.json" host.io_uring_qemu
	} > "$out"
}

decision "$SEC_TMP/base"
decision "$SEC_TMP/base2"   # the second run reads whatever the first one cached
cmp -s "$SEC_TMP/base" "$SEC_TMP/base2" || { diff "$SEC_TMP/base" "$SEC_TMP/base2"; fail "root's own decision is not stable"; }
echo "root's decision:"; sed 's/^/  /' "$SEC_TMP/base"
base_aio=$("$JSONGET" "$SEC_TMP/base.json" disks.0.aio)
uring=$("$JSONGET" "$SEC_TMP/base.json" host.io_uring_qemu)

# ---- the forged files ----
# The capability cache entry: the binary's identity as kvm-launch keys it (anyone can stat the binary); we take
# it from a cache root writes for itself, and claim the opposite of what QEMU says.
ctl=$SEC_TMP/ctl
install -d -m 0755 "$ctl"
printf 'cache-dir = %s\n' "$ctl" > "$SEC_TMP/ctl.conf"
decision "$SEC_TMP/ctl0" --config "$SEC_TMP/ctl.conf"
id=$("$JSONGET" "$ctl/qemu-caps.json" '*.id') || fail "root wrote no capability cache into its own $ctl"
claim=$([ "$uring" = true ] && echo false || echo true)
printf '{"%s":{"id":"%s","io_uring":%s}}\n' "$QEMU" "$id" "$claim" > "$SEC_TMP/forged-caps.json"
# A calibration of the image's storage that ranks another engine first.
storage=dev-$(stat -c '%Hd-%Ld' "$img")
engine=$([ "$base_aio" = threads ] && echo io_uring || echo threads)
rank='[{"engine":"'$engine'","score":9}]'
printf '{"version":1,"storage_id":"%s","kind":"file","time":"2026-01-01T00:00Z","ranking":{"direct":%s,"buffered":%s}}\n' \
	"${storage//-/:}" "$rank" "$rank" > "$SEC_TMP/forged-cal.json"
chmod 0644 "$SEC_TMP"/forged-*.json

# Positive control: in root's own cache they take effect.
cp "$SEC_TMP/forged-caps.json" "$ctl/qemu-caps.json"
decision "$SEC_TMP/ctl-caps" --config "$SEC_TMP/ctl.conf"
[ "$("$JSONGET" "$SEC_TMP/ctl-caps.json" host.io_uring_qemu)" = "$claim" ] ||
	fail "control: root's own capability cache claiming io_uring=$claim was not used"
rm -f "$ctl/qemu-caps.json"
install -d -m 0755 "$ctl/calibration"
cp "$SEC_TMP/forged-cal.json" "$ctl/calibration/$storage.json"
decision "$SEC_TMP/ctl-cal" --config "$SEC_TMP/ctl.conf"
[ "$("$JSONGET" "$SEC_TMP/ctl-cal.json" disks.0.aio)" = "$engine" ] ||
	{ cat "$SEC_TMP/ctl-cal.json"; fail "control: root's own calibration ranking $engine first was not used"; }
echo "control: the forged files change root's decision when root wrote them: ok"

# ---- the attack: every directory of the cache tree that kl-attacker can write ----
# (and users/0, users/UID if it may make them: root must not look there either)
as_attacker mkdir -p "$SEC_CACHE/users/0" "$SEC_CACHE/users/$ATTACKER_UID" 2>/dev/null
planted=0
mapfile -t dirs < <(find "$SEC_CACHE" -type d)
for d in "${dirs[@]}"; do
	as_attacker sh -c 'cp "$1" "$3/qemu-caps.json" && mkdir -p "$3/calibration" && cp "$2" "$3/calibration/$4.json"' \
		sh "$SEC_TMP/forged-caps.json" "$SEC_TMP/forged-cal.json" "$d" "$storage" ||
		continue
	echo "planted in $d ($(stat -c '%A %U:%G' "$d"))"
	planted=$((planted + 1))
done
# The attacker may replace root's own files where the directory lets it.
for f in qemu-caps.json:forged-caps.json "calibration/$storage.json:forged-cal.json"; do
	[ -e "$SEC_CACHE/${f%%:*}" ] && as_attacker sh -c 'cp "$1" "$2.new" && mv -f "$2.new" "$2"' sh \
		"$SEC_TMP/${f#*:}" "$SEC_CACHE/${f%%:*}" 2>/dev/null && echo "replaced root's $SEC_CACHE/${f%%:*}"
done
echo "the attacker could plant in $planted directories of $SEC_CACHE"
decision "$SEC_TMP/after"
cmp -s "$SEC_TMP/base" "$SEC_TMP/after" ||
	{ diff "$SEC_TMP/base" "$SEC_TMP/after"; fail "files kl-attacker planted changed root's decision"; }
echo "as the shipped layout stands: root's decision unchanged: ok"

# ---- left over from a group-writable layout: root's directory is private now, the files are still there ----
rm -rf "$SEC_CACHE/calibration" "$SEC_CACHE/qemu-caps.json"
chown root:root "$SEC_CACHE"
chmod 0755 "$SEC_CACHE"
install -d -m 0755 -o "$ATTACKER" "$SEC_CACHE/calibration"
install -m 0644 -o "$ATTACKER" "$SEC_TMP/forged-caps.json" "$SEC_CACHE/qemu-caps.json"
install -m 0644 -o "$ATTACKER" "$SEC_TMP/forged-cal.json" "$SEC_CACHE/calibration/$storage.json"
decision "$SEC_TMP/left"
cmp -s "$SEC_TMP/base" "$SEC_TMP/left" ||
	{ diff "$SEC_TMP/base" "$SEC_TMP/left"; cat "$SEC_TMP/left.err"; fail "kl-attacker's leftover files changed root's decision"; }
grep -q "qemu-caps.json ignored: .*owned by uid $ATTACKER_UID" "$SEC_TMP/left.err" ||
	{ cat "$SEC_TMP/left.err"; fail "--debug does not say why the forged capability cache was ignored"; }
grep -q "calibration.*not used: .*owned by uid $ATTACKER_UID" "$SEC_TMP/left.err" ||
	{ cat "$SEC_TMP/left.err"; fail "--debug does not say why the calibrations were ignored"; }
# A file of the attacker's in a calibration directory of root's.
chown root:root "$SEC_CACHE/calibration"
decision "$SEC_TMP/left2"
cmp -s "$SEC_TMP/base" "$SEC_TMP/left2" ||
	{ diff "$SEC_TMP/base" "$SEC_TMP/left2"; fail "kl-attacker's calibration file in root's calibration directory was believed"; }
grep -q "calibration .*$storage.json ignored: .*owned by uid $ATTACKER_UID" "$SEC_TMP/left2.err" ||
	{ cat "$SEC_TMP/left2.err"; fail "--debug does not say why the calibration was ignored"; }
# Root's capability cache was rewritten by root (the forged one replaced, not followed).
[ "$(stat -c %U "$SEC_CACHE/qemu-caps.json")" = root ] || fail "root did not replace the forged capability cache with its own"
echo "leftovers in root's private directory: ignored, and --debug says so: ok"

# ---- kl-attacker's own kvm-launch keeps a cache of its own (users/UID), which root never reads ----
[ -d "$SEC_CACHE/users" ] || install -d -m 3770 -o root -g kvm "$SEC_CACHE/users"   # the per-uid layout's
rm -rf "$SEC_CACHE/users/$ATTACKER_UID"
as_attacker "$SEC_KL" --dry-run -- "${VM[@]}" > /dev/null || fail "kl-attacker's own dry run failed"
mine=$SEC_CACHE/users/$ATTACKER_UID
# (users/ is setgid: the directory may carry the bit; its permissions are 0700 all the same)
[ "$(stat -c %U "$mine")" = "$ATTACKER" ] && [ $((8#$(stat -c %a "$mine") & 8#777)) = $((8#700)) ] ||
	fail "kl-attacker's cache directory: $(stat -c '%U %a' "$mine")"
[ "$(stat -c '%U %a' "$mine/qemu-caps.json")" = "$ATTACKER 600" ] ||
	fail "kl-attacker's capability cache: $(stat -c '%U %a' "$mine/qemu-caps.json" 2>&1)"
# forged in its own cache: that only concerns kl-attacker
cp "$SEC_TMP/forged-caps.json" "$mine/qemu-caps.json" && chown "$ATTACKER" "$mine/qemu-caps.json"
decision "$SEC_TMP/user"
cmp -s "$SEC_TMP/base" "$SEC_TMP/user" || { diff "$SEC_TMP/base" "$SEC_TMP/user"; fail "root read kl-attacker's own cache"; }
echo "kl-attacker's own cache in $mine (0700), not read by root: ok"
