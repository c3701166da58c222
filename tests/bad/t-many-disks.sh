#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Big but valid command lines: 3000 disks in libvirt's -blockdev shape (and
# 3000 -drive), a 2000-node backing chain, and a command line of about 1 MB
# (Linux caps one argument at 128 KiB, MAX_ARG_STRLEN, so the megabyte is
# spread over several).  Each must complete quickly (the launch stays well
# inside the 20 s crash guard), rewrite every disk, and record the state.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
bad_setup
N=3000
LIMIT=${KL_MANY_DISKS_SECONDS:-10}
mkdir "$TMP/img"
(cd "$TMP/img" && seq -f 'd%g.img' 1 $N | xargs truncate -s 1M) || fail "truncate"

elapsed() { echo $(( ($(date +%s%N) - t0) / 1000000 )); }

# ---- 3000 disks, libvirt's shape ----
args=(-name many -machine pc -accel tcg)
for i in $(seq 1 $N); do
	args+=(-blockdev "{\"driver\":\"file\",\"filename\":\"$TMP/img/d$i.img\",\"node-name\":\"libvirt-$i-storage\",\"auto-read-only\":true,\"discard\":\"unmap\"}"
	       -blockdev "{\"node-name\":\"libvirt-$i-format\",\"read-only\":false,\"driver\":\"raw\",\"file\":\"libvirt-$i-storage\"}"
	       -device "{\"driver\":\"virtio-blk-pci\",\"drive\":\"libvirt-$i-format\",\"id\":\"virtio-disk$i\"}")
done
echo "command line: ${#args[@]} arguments, $(printf '%s' "${args[@]}" | wc -c) bytes"
t0=$(date +%s%N)
expect_started "${args[@]}"
ms=$(elapsed)
echo "3000 -blockdev disks: ${ms} ms"
[ "$ms" -lt $((LIMIT * 1000)) ] || fail "3000 disks took ${ms} ms (limit ${LIMIT} s)"
n=$(sed -z -n '/"aio":"io_uring"/p' "$KL_RECORD" | tr -cd '\0' | wc -c)
[ "$n" = $N ] || fail "$n storage nodes rewritten, expected $N"
n=$(sed -z -n '/"cache":{"direct":true,"no-flush":false}/p' "$KL_RECORD" | tr -cd '\0' | wc -c)
[ "$n" = $((2 * N)) ] || fail "$n nodes with cache, expected $((2 * N))"
n=$(grep -c '^kvm-launch: many: disk virtio-disk[0-9]*: aio=io_uring cache=none' "$ERR")
[ "$n" = $N ] || fail "$n decisions logged, expected $N"
# The state was recorded (the stand-in QEMU has exited: its agent cleans up).
grep -q 'no state' "$ERR" && fail "no state for 3000 disks: $(grep 'no state' "$ERR")"

# ---- 3000 -drive ----
args=(-name many2)
for i in $(seq 1 $N); do
	args+=(-drive "file=$TMP/img/d$i.img,format=raw,if=none,id=drive$i" -device "virtio-blk-pci,drive=drive$i,id=vd$i")
done
t0=$(date +%s%N)
expect_started "${args[@]}"
ms=$(elapsed)
echo "3000 -drive disks: ${ms} ms"
[ "$ms" -lt $((LIMIT * 1000)) ] || fail "3000 -drive took ${ms} ms (limit ${LIMIT} s)"
n=$(sed -z -n '/,cache=none,aio=io_uring$/p' "$KL_RECORD" | tr -cd '\0' | wc -c)
[ "$n" = $N ] || fail "$n -drive rewritten, expected $N"

# ---- a 2000-node backing chain (no recursion depth trouble) ----
args=(-name chain -blockdev "{\"driver\":\"file\",\"filename\":\"$TMP/img/d1.img\",\"node-name\":\"s1\"}"
      -blockdev '{"driver":"raw","node-name":"n1","file":"s1"}')
for i in $(seq 2 2000); do
	args+=(-blockdev "{\"driver\":\"file\",\"filename\":\"$TMP/img/d$i.img\",\"node-name\":\"s$i\"}"
	       -blockdev "{\"driver\":\"qcow2\",\"node-name\":\"n$i\",\"file\":\"s$i\",\"backing\":\"n$((i - 1))\"}")
done
args+=(-device '{"driver":"virtio-blk-pci","drive":"n2000"}')
t0=$(date +%s%N)
expect_started "${args[@]}"
echo "2000-node backing chain: $(elapsed) ms"
n=$(sed -z -n '/"cache":{"direct":true,"no-flush":false}/p' "$KL_RECORD" | tr -cd '\0' | wc -c)
[ "$n" = 4000 ] || fail "$n chain nodes with cache, expected 4000"

# ---- about 1 MB of command line in 128 KiB arguments ----
big=$(head -c 131000 /dev/zero | tr '\0' 'y')
args=(-name big -drive "file=$TMP/img/d1.img,format=raw,if=virtio,serial=${big:0:100}")
for i in 1 2 3 4; do
	args+=(-append "$big" -fw_cfg "name=opt/x$i,string=$big")
done
echo "command line: $(printf '%s' "${args[@]}" | wc -c) bytes"
t0=$(date +%s%N)
expect_started "${args[@]}"
echo "1 MB command line: $(elapsed) ms"
expect_same_except "4" "${args[@]}"
[ "$(got_arg 4)" = "file=$TMP/img/d1.img,format=raw,if=virtio,serial=${big:0:100},cache=none,aio=io_uring" ] ||
	fail "1 MB command line: disk not rewritten"
# Fail-open keeps a megabyte byte for byte too.
args[3]=','
expect_passthrough "${args[@]}"
echo "many disks and big command lines: ok"
