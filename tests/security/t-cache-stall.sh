#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Issue 17, attack 5: a FIFO or a 32 MiB file as the capability cache or as a calibration does not stall root's
# launch nor blow its memory.  Planted by kl-attacker wherever the shipped layout lets it write in the cache tree,
# then (the owner check aside) made by root itself in root's private cache directory: the type and the size
# alone are refused, without blocking on the FIFO.  Root's dry run must finish within a few seconds, with about
# the memory of a plain run, and decide as before; a real launch becomes QEMU at once.
# Memory: GNU time's maximum RSS includes the QEMU that kvm-launch asks for its capabilities when it has no
# usable cache, so a run is compared with a plain run that did the same (probe or cached answer).
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
JSONGET=$KL_TOP/tests/helpers/json-get
requires "$JSONGET" "$QEMU" fallocate stat mkfifo /usr/bin/time
sec_setup

img=$SEC_TMP/p.raw
fallocate -l 64M "$img" || fail "fallocate"
storage=dev-$(stat -c '%Hd-%Ld' "$img")
VM=(-name stall -drive "file=$img,format=raw,if=virtio")

# run NAME: root's dry run under a deadline; NAME gets the JSON, NAME.err stderr, NAME.time "SECONDS MAXRSS_KIB".
run() {
	local out=$SEC_TMP/$1 rc=0
	/usr/bin/time -f '%e %M' -o "$out.time" timeout -k 2 30 "$SEC_KL" --debug --dry-run --json -- "${VM[@]}" \
		> "$out" 2> "$out.err" || rc=$?
	[ "$rc" = 0 ] || { cat "$out.err"; fail "$1: root's dry run: exit $rc$([ "$rc" = 124 ] && echo ' (it hung)')"; }
	"$JSONGET" "$out" argv > "$out.argv"
	read -r secs rss < "$out.time"
	echo "  $1: $secs s, max RSS $rss KiB"
}
# check NAME BASE: the run was quick, about as small as the plain run BASE, and decided as the first plain run.
# A run that asked QEMU after all (another test on this machine may divert or replace the QEMU binary for a
# moment, which changes its identity) is compared with the plain run that asked QEMU.
check() {
	local secs rss base_rss base=$2
	read -r secs rss < "$SEC_TMP/$1.time"
	grep -q "asking .* for its capabilities" "$SEC_TMP/$1.err" && base=probe
	read -r _ base_rss < "$SEC_TMP/$base.time"
	# A plain run takes well under a second; the old code waited 20 s for a FIFO.
	awk -v s="$secs" 'BEGIN { exit !(s < 8) }' || fail "$1: root's dry run took $secs s"
	[ "$rss" -lt $((base_rss + 16384)) ] || fail "$1: max RSS $rss KiB (plain run $base: $base_rss KiB)"
	cmp -s "$SEC_TMP/base.argv" "$SEC_TMP/$1.argv" ||
		{ diff "$SEC_TMP/base.argv" "$SEC_TMP/$1.argv"; fail "$1: decision changed"; }
}
said() { # NAME PATTERN: --debug said why
	grep -q "$2" "$SEC_TMP/$1.err" || { cat "$SEC_TMP/$1.err"; fail "$1: --debug does not say: $2"; }
}

run base
run base-again
cp "$SEC_TMP/base.time" "$SEC_TMP/probe.time"   # until the private-directory part measures its own
head -c $((32 << 20)) /dev/zero | tr '\0' ' ' > "$SEC_TMP/big"
chmod 0644 "$SEC_TMP/big"

# ---- kl-attacker, wherever it can write in the cache tree ----
as_attacker mkdir -p "$SEC_CACHE/users/0" 2>/dev/null
mapfile -t dirs < <(find "$SEC_CACHE" -type d)
planted=0
for d in "${dirs[@]}"; do
	as_attacker sh -c 'rm -rf "$1/qemu-caps.json" "$1/calibration" && mkfifo "$1/qemu-caps.json" &&
		mkdir "$1/calibration" && cp "$2" "$1/calibration/$3.json"' sh "$d" "$SEC_TMP/big" "$storage" 2>/dev/null ||
		continue
	planted=$((planted + 1))
	echo "planted in $d ($(stat -c '%A %U:%G' "$d"))"
done
echo "the attacker could plant in $planted directories"
run att
check att base-again
echo "kl-attacker's FIFO and 32 MiB files: no stall, no memory, no change: ok"

# ---- in root's private cache directory, made by root (only the type and the size can refuse them) ----
rm -rf "$SEC_CACHE"
install -d -m 0755 -o root -g root "$SEC_CACHE" "$SEC_CACHE/calibration"
run probe    # asks QEMU, caches the answer
said probe "asking .* for its capabilities"
run cached   # the cached answer
# The calibration: read with a valid capability cache beside it, so no QEMU probe hides its memory.
cp "$SEC_TMP/big" "$SEC_CACHE/calibration/$storage.json"
run big-cal
check big-cal cached
said big-cal "$storage.json ignored: .*larger than"
rm -f "$SEC_CACHE/calibration/$storage.json"
mkfifo -m 0644 "$SEC_CACHE/calibration/$storage.json"
run fifo-cal
check fifo-cal cached
said fifo-cal "$storage.json ignored: .*not a regular file"
# The capability cache itself: refused, so QEMU is asked again (and the answer replaces the file).
mkfifo -m 0644 "$SEC_CACHE/qemu-caps.json.fifo"
mv -f "$SEC_CACHE/qemu-caps.json.fifo" "$SEC_CACHE/qemu-caps.json"
run fifo-caps
check fifo-caps probe
said fifo-caps "qemu-caps.json ignored: .*not a regular file"
[ -f "$SEC_CACHE/qemu-caps.json" ] || fail "fifo-caps: root did not replace the FIFO with its answer"
cp "$SEC_TMP/big" "$SEC_CACHE/qemu-caps.json"
run big-caps
check big-caps probe
said big-caps "qemu-caps.json ignored: .*larger than"
echo "root's own FIFO and 32 MiB files: no stall, no memory, no change: ok"

# ---- a real launch with both in place: QEMU runs (exec'd in place) within a few seconds ----
rm -f "$SEC_CACHE/qemu-caps.json" "$SEC_CACHE/calibration/$storage.json"
mkfifo -m 0644 "$SEC_CACHE/qemu-caps.json"
cp "$SEC_TMP/big" "$SEC_CACHE/calibration/$storage.json"
"$SEC_KL" --qemu "$QEMU" -- -name stall-launch -machine none -accel tcg -nodefaults -display none -S \
	-drive "file=$img,format=raw,if=none,id=d0" > "$SEC_TMP/launch.log" 2>&1 &
qpid=$!
cleanup_fn "kill -9 $qpid 2>/dev/null"
qemu_real=$(readlink -f "$QEMU")
is_qemu() { [ "$(readlink "/proc/$qpid/exe")" = "$qemu_real" ]; }
start=$(date +%s)
wait_for 8 is_qemu || { cat "$SEC_TMP/launch.log"; fail "the launch did not become QEMU within 8 s"; }
echo "launch: QEMU running as pid $qpid after $(( $(date +%s) - start )) s"
grep -q "fail\|timed out\|original arguments" "$SEC_TMP/launch.log" && { cat "$SEC_TMP/launch.log"; fail "the launch failed open"; }
kill "$qpid"
wait "$qpid" 2>/dev/null
echo "a real launch with a FIFO and a 32 MiB file in the cache: no stall: ok"
