#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A stored calibration reaches the decision and --status: calibrate the
# filesystem of a preallocated image (whose built-in rule uses aio = auto),
# launch a VM on it, and find the calibration named in --explain, the state
# and --status (table and JSON).
. "$(dirname "$0")/../functions.sh"
requires "$KL" "$QEMU"
JSONGET=$KL_TOP/tests/helpers/json-get
QMPCLI=$KL_TOP/tests/helpers/qmp-cli
requires "$JSONGET" "$QMPCLI"
kl_tmpdir
printf 'state-dir = %s/state\ncache-dir = %s/cache\n' "$TMP" "$TMP" > "$TMP/k.conf"
chmod 0644 "$TMP/k.conf"
fallocate -l 64M "$TMP/p.raw" || fail "fallocate"
"$KL" --config "$TMP/k.conf" --calibrate "$TMP" --seconds 2 > "$TMP/cal.out" 2>&1 || fail "calibrate: $(cat "$TMP/cal.out")"
stored=$(ls "$TMP"/cache/calibration/*.json) || fail "no calibration stored"
name=$(basename "$stored" .json)
args=(-name calst -machine pc -accel tcg -nodefaults -display none -S
	-drive "file=$TMP/p.raw,format=raw,if=none,id=d0" -device virtio-blk-pci,drive=d0,id=vd0)
"$KL" --config "$TMP/k.conf" --explain -- "${args[@]}" > "$TMP/explain" || fail "explain"
grep -q "calibration \"$name" "$TMP/explain" || { cat "$TMP/explain"; fail "--explain does not name calibration $name"; }
"$KL" --config "$TMP/k.conf" --qemu "$QEMU" -- "${args[@]}" > "$TMP/q.log" 2>&1 &
cleanup_fn "kill -9 $! 2>/dev/null"
for _ in $(seq 100); do [ -S "$TMP/state/calst.qmp.sock" ] && break; sleep 0.1; done
"$KL" --config "$TMP/k.conf" --status calst > "$TMP/status" || fail "status"
grep -q "aio chosen from calibration $name" "$TMP/status" || { cat "$TMP/status"; fail "--status does not name the calibration"; }
"$KL" --config "$TMP/k.conf" --status calst --json > "$TMP/status.json" || fail "status --json"
"$JSONGET" "$TMP/status.json" vms.0.disks.0.calibration | grep -q "^$name" || fail "--status --json: no calibration"
"$QMPCLI" "$TMP/state/calst.qmp.sock" quit > /dev/null
wait
echo "calibration $name used and shown: ok"
