#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# boot-test.sh — smoke test of the tiny test guest: boot, report, random I/O, pattern + flush, kill, verify.
#
#   tests/guest/boot-test.sh
# Environment:
#   KL_GUEST_CACHE   where build-guest.sh keeps the guest (default /var/cache/kvm-launch-tests/guest)
#   KL_QEMU          the emulator to run (default qemu-system-x86_64; point it at kvm-launch to test the wrapper)
#   KL_ACCEL         QEMU accelerator (default tcg, as every test of this project assumes)
#   KL_KEEP=1        keep the temporary directory (serial log, disk images)
# Exit 0 pass, 1 fail, 77 skip (a line saying why goes to stderr).
#
# The disks: vda = a.raw with cache=none,aio=threads (guest sees "write back"), vdb = b.raw with cache=writethrough
# (guest sees "write through").  The guest reads vda at random, then writes the pattern over vda's first 16 MiB,
# fsyncs (a flush request) and prints `KL flushed`; we SIGKILL QEMU right then and check the pattern in a.raw.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${KL_GUEST_CACHE:-/var/cache/kvm-launch-tests/guest}
qemu=${KL_QEMU:-qemu-system-x86_64}
accel=${KL_ACCEL:-tcg}
seed=$((RANDOM * 32768 + RANDOM))
mib=16
timeout_s=120

skip() { echo "boot-test: SKIP: $*" >&2; exit 77; }
fail() {
    echo "boot-test: FAIL: $*" >&2
    [[ -f ${log:-} ]] && sed 's/^/  serial: /' "$log" >&2
    exit 1
}

command -v "$qemu" >/dev/null || skip "$qemu not found"
command -v truncate >/dev/null || skip "truncate not found"

rc=0
paths=$("$here/build-guest.sh" "$cache") || rc=$?
[[ $rc = 77 ]] && skip "cannot build the guest (see above)"
[[ $rc = 0 ]] || fail "build-guest.sh failed ($rc)"
eval "$paths"

tmp=$(mktemp -d /tmp/kl-boot-test.XXXXXX)
qpid=
cleanup() {
    local rc=$? # keep the script's exit code: the trap's own commands must not replace it
    if [[ -n $qpid ]]; then
        kill -KILL "$qpid" 2>/dev/null || true
        wait "$qpid" 2>/dev/null || true
    fi
    if [[ ${KL_KEEP:-0} = 1 ]]; then echo "boot-test: kept $tmp" >&2; else rm -rf "$tmp"; fi
    exit "$rc"
}
trap cleanup EXIT
log=$tmp/serial.log
truncate -s 64M "$tmp/a.raw" "$tmp/b.raw"
: >"$log"

cmd="report,randio:vda:8:2:r,pattern:vda:$seed:$mib"
t0=$(date +%s.%N)
# Serial to a file rather than stdio: no tty games, and the log survives for the failure report.
"$qemu" -accel "$accel" -m 512 -display none -nodefaults -no-reboot -serial "file:$log" \
    -kernel "$KL_GUEST_KERNEL" -initrd "$KL_GUEST_INITRD" \
    -append "console=ttyS0 quiet panic=-1 kl.cmd=$cmd" \
    -drive "file=$tmp/a.raw,format=raw,if=none,id=d0,cache=none,aio=threads" -device virtio-blk-pci,drive=d0 \
    -drive "file=$tmp/b.raw,format=raw,if=none,id=d1,cache=writethrough" -device virtio-blk-pci,drive=d1 \
    2>"$tmp/qemu.err" &
qpid=$!

# Poll the serial log: note when userspace is up, stop at the flush (or an error, or QEMU exiting).
boot_s=
deadline=$(($(date +%s) + timeout_s))
while :; do
    if [[ -z $boot_s ]] && grep -q '^KL ready' "$log"; then
        boot_s=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN { printf "%.2f", a - b }')
    fi
    grep -q '^KL flushed' "$log" && break
    grep -q '^KL error' "$log" && fail "guest reported an error"
    grep -q '^KL done' "$log" && fail "guest finished without flushing"
    kill -0 "$qpid" 2>/dev/null || fail "QEMU exited early: $(cat "$tmp/qemu.err")"
    (($(date +%s) < deadline)) || fail "no 'KL flushed' within ${timeout_s}s"
    sleep 0.05
done
# The flush was acknowledged: kill QEMU the hard way, nothing else may be written after this point.
kill -KILL "$qpid"
wait "$qpid" 2>/dev/null || true
qpid=

grep -qx 'KL disk vda write_cache=write back size=67108864' "$log" || fail "vda should be 'write back' (cache=none)"
grep -qx 'KL disk vdb write_cache=write through size=67108864' "$log" ||
    fail "vdb should be 'write through' (cache=writethrough)"
iops=$(sed -n 's/^KL randio dev=vda qd=8 mode=r iops=\([0-9]*\)$/\1/p' "$log")
[[ -n $iops && $iops -gt 0 ]] || fail "no randio result"
grep -qx "KL flushed dev=vda seed=$seed mib=$mib" "$log" || fail "bad flushed line"
verdict=$("$KL_GUEST_HELPER" verify "$tmp/a.raw" "$seed" "$mib") || fail "pattern check on the host: $verdict"

guest_up=$(sed -n 's/^KL ready uptime=\([0-9.]*\).*/\1/p' "$log")
printf 'boot-test: boot time %s s to userspace (guest uptime %s s, accel %s)\n' "$boot_s" "$guest_up" "$accel"
echo "boot-test: randio vda qd=8 read: $iops IOPS (cache=none,aio=threads)"
echo "boot-test: pattern seed=$seed ${mib} MiB verified after SIGKILL: $verdict"
echo "boot-test: PASS"
