#!/bin/sh
# The whole path through kvm-launch itself: `kvm-launch --state-dir DIR
# --qemu QEMU -- ARGS` launches (state, monitors, agent, exec in place), then
# --status, --status --json, --status --prometheus, --set cache and iops, and
# cleanup after QEMU is killed.  The policy's choice is whatever the built-in
# rules say; the test compares with what QEMU itself reports.
. "$(dirname "$0")/../functions.sh"
requires "$QEMU" "$KL" truncate
H=$KL_TOP/tests/helpers
for h in state-json state-qmp; do
	[ -x "$H/$h" ] || fail "$H/$h is missing: run make test-programs"
done
kl_tmpdir
ST=$TMP/state
truncate -s 64M "$TMP/a.img" "$TMP/b.img"
# An empty policy file: the built-in rules, whatever the machine's own file says.
: > "$TMP/policy.conf"
chmod 0644 "$TMP/policy.conf"
K() { "$KL" --config "$TMP/policy.conf" --state-dir "$ST" "$@"; }

watching() { [ "$("$H/state-json" "$ST/k1.json" agent.state 2>/dev/null)" = watching ]; }
odirect() {
	for fd in /proc/$QPID/fd/*; do
		[ "$(readlink "$fd")" = "$1" ] || continue
		fl=$(sed -n 's/^flags:[[:space:]]*//p' "/proc/$QPID/fdinfo/${fd##*/}")
		if [ $(( 0$fl & 040000 )) -ne 0 ]; then echo on; else echo off; fi
		return
	done
	echo none
}

# Not through K(): a backgrounded shell function would be a subshell, and $!
# must be the process that execs QEMU.
"$KL" --config "$TMP/policy.conf" --state-dir "$ST" --qemu "$QEMU" -- -machine pc -accel tcg -nodefaults -display none -S -name guest=k1 \
	-qmp "unix:$TMP/test.sock,server=on,wait=off" \
	-blockdev "{\"driver\":\"file\",\"filename\":\"$TMP/a.img\",\"node-name\":\"s0\"}" \
	-blockdev '{"node-name":"f0","driver":"raw","file":"s0"}' \
	-device '{"driver":"virtio-blk-pci","drive":"f0","id":"vd0"}' \
	-drive "file=$TMP/b.img,format=raw,if=none,id=drive1,node-name=f1,file.node-name=s1" \
	-device virtio-blk-pci,drive=drive1,id=vd1 > "$TMP/qemu.log" 2>&1 &
QPID=$!
cleanup_fn "kill -9 $QPID 2>/dev/null"
wait_for 30 watching || { cat "$TMP/qemu.log"; fail "no agent watching k1"; }
APID=$("$H/state-json" "$ST/k1.json" agent.pid)
cleanup_fn "kill -9 $APID 2>/dev/null"
cat "$TMP/qemu.log"
[ "$(readlink /proc/$QPID/exe)" = "$(readlink -f "$QEMU")" ] || fail "PID $QPID is not QEMU (exec in place)"

K --status > "$TMP/table" || fail "--status failed"
cat "$TMP/table"
grep -q "^VM k1: pid $QPID, running" "$TMP/table" || fail "--status does not show k1 with QEMU's PID"
K --status --json > "$TMP/s.json" || fail "--status --json failed"
"$H/state-json" "$TMP/s.json" || fail "--status --json does not parse"
"$H/state-qmp" "$TMP/test.sock" query-block > "$TMP/qb.json" || fail "query-block"
# Each disk's cache as QEMU reports it.
for i in 0 1; do
	id=$("$H/state-json" "$TMP/s.json" vms.0.disks.$i.id)
	cache=$("$H/state-json" "$TMP/s.json" vms.0.disks.$i.cache)
	for k in 0 1; do
		"$H/state-json" "$TMP/qb.json" $k.qdev | grep -q "/$id/" || continue
		direct=$("$H/state-json" "$TMP/qb.json" $k.inserted.cache.direct)
		case $cache:$direct in
		none:true|directsync:true|writeback:false|writethrough:false|unsafe:false) ;;
		*) fail "disk $id: --status says cache=$cache, QEMU says direct=$direct" ;;
		esac
	done
done
K --status --prometheus | grep -qx 'kvm_launch_vm_up{vm="k1"} 1' || fail "--prometheus"

# --set: O_DIRECT off and on again, on both kinds of disk.
for d in vd0:$TMP/a.img vd1:$TMP/b.img; do
	id=${d%%:*} img=${d#*:}
	K --set k1 "$id" cache=none || fail "--set $id cache=none"
	[ "$(odirect "$img")" = on ] || fail "$id: O_DIRECT not on"
	K --set k1 "$id" cache=writeback || fail "--set $id cache=writeback"
	[ "$(odirect "$img")" = off ] || fail "$id: O_DIRECT not off"
	K --set k1 "$id" cache=none || fail "--set $id cache=none again"
	[ "$(odirect "$img")" = on ] || fail "$id: O_DIRECT not back on"
done
K --set k1 vd0 cache=writethrough 2>/dev/null && fail "writethrough accepted"
K --set k1 vd0 iops=250 || fail "--set iops"
K --status k1 | grep -E "^ +vd0 .*iops=250" >/dev/null || fail "iops not in --status"

kill -9 "$QPID"
wait_for 3 sh -c "! kill -0 $APID" || fail "agent outlived QEMU"
[ ! -e "$ST/k1.json" ] || fail "state entry left"
[ "$(K --status)" = "No VMs launched through kvm-launch are running." ] || fail "--status after exit"
echo PASS
