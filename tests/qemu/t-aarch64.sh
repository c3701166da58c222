#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# kvm-launch standing in for another target's QEMU: installed (here: linked) as qemu-system-aarch64, it must run
# the real qemu-system-aarch64 (TCG, -machine virt, a virtio disk), not the x86_64 binary its policy names, probe
# that binary's capabilities, rewrite the disk, and show the VM in --status.
#   - --dry-run: the first line is the real qemu-system-aarch64 next to the policy's qemu, the -drive rewritten;
#   - a start: QEMU's /proc/PID/exe is qemu-system-aarch64, query-block and the fd's O_DIRECT bit show the
#     policy's cache, a read through the disk works, and the io_uring capability cache has an entry for that
#     binary (asked of it, not assumed from x86_64);
#   - --status (table and JSON): the VM with QEMU's PID and the disk's cache and aio.
. "$(dirname "$0")/../functions.sh"
QA=$(dirname "$QEMU")/qemu-system-aarch64
requires "$KL" "$QEMU" "$QA"
QMPCLI=$KL_TOP/tests/helpers/qmp-cli
JSONGET=$KL_TOP/tests/helpers/json-get
requires "$QMPCLI" "$JSONGET"
kl_tmpdir

mkdir -p "$TMP/bin"
ln -s "$KL" "$TMP/bin/qemu-system-aarch64"
KLA=$TMP/bin/qemu-system-aarch64
truncate -s 64M "$TMP/a.raw"
# The policy names the x86_64 binary, as kvm-launch-divert writes it: the aarch64 one is derived from it.
printf 'qemu = %s\nstate-dir = %s/state\ncache-dir = %s/cache\n[rule all]\nbackend = file\ncache = none\naio = threads\n' \
	"$QEMU" "$TMP" "$TMP" > "$TMP/p.conf"
chmod 0644 "$TMP/p.conf"
args=(-name a64 -machine virt -accel tcg -cpu cortex-a57 -m 128 -nodefaults -display none
	-drive "file=$TMP/a.raw,format=raw,if=none,id=d0" -device virtio-blk-pci,drive=d0,id=vd0)

# ---- the argv rewrite ----
"$KLA" --config "$TMP/p.conf" --dry-run -- "${args[@]}" > "$TMP/dry" 2> "$TMP/dry.err" || fail "--dry-run: $(cat "$TMP/dry.err")"
[ "$(head -n 1 "$TMP/dry")" = "$QA" ] || fail "run as qemu-system-aarch64, kvm-launch would run '$(head -n 1 "$TMP/dry")', not $QA"
grep -x -- "file=$TMP/a.raw,format=raw,if=none,id=d0,.*" "$TMP/dry" | grep -q 'cache=none' ||
	fail "the -drive was not rewritten to cache=none: $(grep -- "$TMP/a.raw" "$TMP/dry")"
grep -qx -- '-machine' "$TMP/dry" && grep -qx virt "$TMP/dry" || fail "-machine virt lost"
echo "dry-run: runs $QA with $(grep -- "$TMP/a.raw" "$TMP/dry")"

# ---- a start ----
"$KLA" --config "$TMP/p.conf" -- "${args[@]}" -S > "$TMP/vm.log" 2>&1 &
vmpid=$!
cleanup_fn "kill -9 $vmpid 2>/dev/null"
sock=$TMP/state/a64.qmp.sock
wait_for 20 test -S "$sock" || fail "QEMU did not start: $(cat "$TMP/vm.log")"
[ "$(readlink "/proc/$vmpid/exe")" = "$QA" ] || fail "pid $vmpid runs $(readlink "/proc/$vmpid/exe"), not $QA"
"$QMPCLI" "$sock" query-block > "$TMP/qb" || fail "query-block failed"
sel="[qdev=/machine/peripheral/vd0/virtio-backend].inserted.cache.direct"
[ "$("$JSONGET" "$TMP/qb" "$sel")" = true ] || fail "QEMU says vd0 has no O_DIRECT: $(cat "$TMP/qb")"
for fd in "/proc/$vmpid/fd"/*; do
	[ "$(readlink "$fd")" = "$TMP/a.raw" ] || continue
	flags=$(awk '/^flags:/ {print $2}' "/proc/$vmpid/fdinfo/${fd##*/}")
	[ $(( 8#$flags & 8#40000 )) -ne 0 ] || fail "the image's fd has no O_DIRECT (flags $flags)"
	direct_seen=1
done
[ "${direct_seen:-0}" = 1 ] || fail "QEMU has no fd on $TMP/a.raw"
"$QMPCLI" "$sock" human-monitor-command '{"command-line":"qemu-io d0 \"read 0 4096\""}' > "$TMP/io" ||
	fail "qemu-io on d0 failed"
grep -Eqx '""|"read 4096/4096 bytes.*' "$TMP/io" || fail "qemu-io read: $(cat "$TMP/io")"
grep -qF "\"$QA\"" "$TMP/cache/qemu-caps.json" ||
	fail "no capability entry for $QA in $TMP/cache/qemu-caps.json: $(cat "$TMP/cache/qemu-caps.json" 2>&1)"
! grep -qF "\"$QEMU\"" "$TMP/cache/qemu-caps.json" || fail "kvm-launch asked $QEMU, not $QA, for its capabilities"
echo "started: pid $vmpid runs $QA; vd0 has O_DIRECT; capabilities asked of $QA"

# ---- --status ----
"$KL" --config "$TMP/p.conf" --status a64 > "$TMP/status" || fail "--status failed"
cat "$TMP/status"
grep -q "^VM a64: pid $vmpid" "$TMP/status" || fail "--status: no line for a64 with pid $vmpid"
grep -Eq '^ +vd0 .* threads +none ' "$TMP/status" || fail "--status: no vd0 row with threads/none"
"$KL" --config "$TMP/p.conf" --status a64 --json > "$TMP/status.json" || fail "--status --json failed"
[ "$("$JSONGET" "$TMP/status.json" vms.0.pid)" = "$vmpid" ] || fail "--status --json pid"
[ "$("$JSONGET" "$TMP/status.json" vms.0.disks.0.cache)" = none ] || fail "--status --json cache"
[ "$("$JSONGET" "$TMP/status.json" vms.0.disks.0.cache_source)" = qemu ] || fail "--status --json: cache not from QEMU"

"$QMPCLI" "$sock" quit > /dev/null || true
wait "$vmpid" 2>/dev/null
echo "PASS: qemu-system-aarch64 through kvm-launch (TCG, -machine virt, virtio disk)"
