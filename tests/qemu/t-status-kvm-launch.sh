#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The whole path through kvm-launch itself: `kvm-launch --state-dir DIR
# --qemu QEMU -- ARGS` launches (state, monitors, agent, exec in place), then
# --status, --status --json, --status --prometheus, --set cache and iops, and
# cleanup after QEMU is killed.  The policy's choice is whatever the built-in
# rules say (--dry-run --json); first the test checks that it differs from
# what the command line gave (no cache: writeback) and that QEMU runs it
# (query-block on our own monitor, /proc/PID/fdinfo), so a launcher that
# rewrote nothing fails; then --status must list both disks with what QEMU
# reports.  The agent and the PIDs are found through --status only.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/../guest/lib.sh"
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

watching() { [ "$(K --status --json k1 | "$JSON_GET" - vms.0.agent.state)" = watching ]; }
odirect() {
	for fd in /proc/$QPID/fd/*; do
		[ "$(readlink "$fd")" = "$1" ] || continue
		fl=$(sed -n 's/^flags:[[:space:]]*//p' "/proc/$QPID/fdinfo/${fd##*/}")
		if [ $(( 0$fl & 040000 )) -ne 0 ]; then echo on; else echo off; fi
		return
	done
	echo none
}

args=(-machine pc -accel tcg -nodefaults -display none -S -name guest=k1
	-qmp "unix:$TMP/test.sock,server=on,wait=off"
	-blockdev "{\"driver\":\"file\",\"filename\":\"$TMP/a.img\",\"node-name\":\"s0\"}"
	-blockdev '{"node-name":"f0","driver":"raw","file":"s0"}'
	-device '{"driver":"virtio-blk-pci","drive":"f0","id":"vd0"}'
	-drive "file=$TMP/b.img,format=raw,if=none,id=drive1,node-name=f1,file.node-name=s1"
	-device virtio-blk-pci,drive=drive1,id=vd1)
K --qemu "$QEMU" --dry-run --json -- "${args[@]}" > "$TMP/dry.json" || fail "--dry-run --json failed"
declare -A chosen
for id in vd0 vd1; do
	c=$("$JSON_GET" "$TMP/dry.json" "disks.[id=$id].cache") || fail "--dry-run lists no disk $id: $(cat "$TMP/dry.json")"
	[ "$c" != writeback ] || fail "disk $id: the built-in rules keep the given writeback: nothing to prove a rewrite with"
	chosen[$id]=$c
done
echo "the built-in rules choose vd0 cache=${chosen[vd0]}, vd1 cache=${chosen[vd1]} (given: writeback)"

# Not through K(): a backgrounded shell function would be a subshell, and $!
# must be the process that execs QEMU.
QPID= APID=
cleanup_fn 'kl_kill_if "$QPID" "$QEMU"; kl_kill_if "$QPID" "$KL"; kl_kill_if "$APID" "$KL"'
"$KL" --config "$TMP/policy.conf" --state-dir "$ST" --qemu "$QEMU" -- "${args[@]}" > "$TMP/qemu.log" 2>&1 &
QPID=$!
wait_for 30 watching || { cat "$TMP/qemu.log"; fail "no agent watching k1"; }
APID=$(K --status --json k1 | "$JSON_GET" - vms.0.agent.pid) || fail "--status gives no agent pid"
cat "$TMP/qemu.log"
[ "$(readlink /proc/$QPID/exe)" = "$(readlink -f "$QEMU")" ] || fail "PID $QPID is not QEMU (exec in place)"

# QEMU runs what the policy chose: query-block (our own monitor) and the open flags.
"$QMP_CLI" -w -t 10000 "$TMP/test.sock" query-block > "$TMP/qb0.json" || fail "query-block"
kl_check_query_block "$TMP/qb0.json" vd0 "${chosen[vd0]}"
kl_check_query_block "$TMP/qb0.json" vd1 "${chosen[vd1]}"
for d in vd0:$TMP/a.img vd1:$TMP/b.img; do
	want=off
	case ${chosen[${d%%:*}]} in none | directsync) want=on ;; esac
	[ "$(odirect "${d#*:}")" = $want ] || fail "${d%%:*}: O_DIRECT is $(odirect "${d#*:}") in /proc/$QPID/fdinfo, want $want"
done

K --status > "$TMP/table" || fail "--status failed"
cat "$TMP/table"
grep -q "^VM k1: pid $QPID, running" "$TMP/table" || fail "--status does not show k1 with QEMU's PID"
K --status --json > "$TMP/s.json" || fail "--status --json failed"
"$H/state-json" "$TMP/s.json" || fail "--status --json does not parse"
"$H/state-qmp" "$TMP/test.sock" query-block > "$TMP/qb.json" || fail "query-block"
# Each disk's cache as QEMU reports it; --status must list both disks.
[ "$("$H/state-json" "$TMP/s.json" vms.length)" = 1 ] || fail "--status --json does not list exactly k1"
[ "$("$H/state-json" "$TMP/s.json" vms.0.disks.length)" = 2 ] || fail "--status --json does not list 2 disks: $(cat "$TMP/s.json")"
for i in 0 1; do
	matched=0
	id=$("$H/state-json" "$TMP/s.json" vms.0.disks.$i.id)
	cache=$("$H/state-json" "$TMP/s.json" vms.0.disks.$i.cache)
	for k in 0 1; do
		"$H/state-json" "$TMP/qb.json" $k.qdev | grep -q "/$id/" || continue
		matched=$((matched + 1))
		direct=$("$H/state-json" "$TMP/qb.json" $k.inserted.cache.direct)
		case $cache:$direct in
		none:true|directsync:true|writeback:false|writethrough:false|unsafe:false) ;;
		*) fail "disk $id: --status says cache=$cache, QEMU says direct=$direct" ;;
		esac
	done
	[ "$matched" = 1 ] || fail "disk $id of --status matches $matched query-block entries"
	[ "$cache" = "${chosen[$id]}" ] || fail "disk $id: --status says cache=$cache, the policy chose ${chosen[$id]}"
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
wait_for 30 gone "$APID" || fail "agent outlived QEMU by 30 s"
[ "$(K --status)" = "No VMs launched through kvm-launch are running." ] || fail "--status after exit"
echo PASS
