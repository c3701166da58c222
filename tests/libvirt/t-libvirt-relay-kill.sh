#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# No single point of failure under a real libvirtd: with the guest doing
# random I/O on vda throughout, SIGKILL each kvm-launch process of the VM in
# turn (the active relay, the standby, the agent), with a libvirtd restart
# in the middle.  After each: the domain is running, `virsh
# qemu-monitor-command` answers, and an `attach-disk --live` of a
# preallocated raw image gets the policy (cache.direct in
# query-named-block-nodes, O_DIRECT in /proc/PID/fdinfo, QEMU's io_uring fds).
# Run under flock /tmp/kl-libvirt.lock.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
klt_setup
D=$KLT_DIR
fallocate -l 64M "$D/rk-boot.img"
name=kl-t-relaykill
klt_domain "$name" --guest-cmd "report,randio:vda:4:900:rw" "file:$D/rk-boot.img:raw:target=vda"
klt_create "$name"
PID=$(klt_pid "$name")
kl_wait_serial "$D/$name.serial" '^KL disk vda ' 120 "$PID"
relays() { klt_relays "$name"; }
cleanup_fn 'for p in $(relays); do kill -9 $p 2>/dev/null; done'
# role active|standby: the standby is the active's child.
role() {
	local r rs
	rs=" $(relays | tr '\n' ' ') "
	for r in $rs; do
		case "$rs" in *" $(awk '{print $4}' "/proc/$r/stat") "*) [ "$1" = standby ] && echo "$r" ;; *) [ "$1" = active ] && echo "$r" ;; esac
	done
}
two_relays() { [ "$(relays | wc -w)" = 2 ] && [ -n "$(role active)" ] && [ -n "$(role standby)" ]; }
agent_pid() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["agent"]["pid"])' "$KLT_STATE/$name.json"; }
wait_for 20 two_relays || fail "no active and standby relay: $(relays)"

nodes() { "${VIRSH[@]}" qemu-monitor-command "$name" '{"execute":"query-named-block-nodes","arguments":{"flat":true}}'; }
direct_of() { # FILE -> cache.direct of its file node
	nodes | python3 -c 'import json,sys
for n in json.load(sys.stdin)["return"]:
    if n["file"] == sys.argv[1] and n["drv"] == "file":
        print(str(n["cache"]["direct"]).lower()); break' "$1"
}
# check LABEL TARGET: the domain runs, the monitor answers, a new disk gets the policy.
check() {
	local img="$D/rk-$2.img" st uring
	st=$("${VIRSH[@]}" domstate "$name" 2>&1)
	[ "$st" = running ] || fail "$1: domain $st"
	"${VIRSH[@]}" qemu-monitor-command "$name" '{"execute":"query-status"}' | grep -q '"running"' ||
		fail "$1: qemu-monitor-command does not answer"
	fallocate -l 16M "$img"
	"${VIRSH[@]}" attach-disk "$name" "$img" "$2" --driver qemu --subdriver raw --live > /dev/null ||
		fail "$1: attach-disk failed"
	[ "$(direct_of "$img")" = true ] || fail "$1: the attached disk has no cache.direct: $(nodes)"
	[ "$(direct_bit "$PID" "$img")" = 1 ] || fail "$1: QEMU's fd on $img has no O_DIRECT"
	uring=$(find "/proc/$PID/fd" -lname 'anon_inode:\[io_uring\]' 2>/dev/null | wc -l)
	[ "$uring" -gt 0 ] || fail "$1: no io_uring fd while the guest does I/O"
	echo "$1: domain running, monitor answers, $2 attached with cache.direct=true, O_DIRECT, io_uring fds $uring"
}

check "before" vdb
A=$(role active)
kill -9 "$A"
wait_for 10 two_relays || fail "no new standby after the active was killed: $(relays)"
[ "$(role active)" != "$A" ] || fail "the killed relay is still active"
check "active relay $A SIGKILLed" vdc

# libvirtd restarts: it reconnects through the surviving relays.
klt_restart_libvirtd
wait_for 20 sh -c "[ \"\$(${VIRSH[*]} domstate $name 2>/dev/null)\" = running ]" || fail "$name not running after libvirtd restart"
check "libvirtd restarted" vdd

S=$(role standby)
kill -9 "$S"
sleep 0.3; wait_for 10 two_relays || fail "no new standby: $(relays)"
[ "$(role standby)" != "$S" ] || fail "the killed standby is still listed"
check "standby $S SIGKILLed" vde

AG=$(agent_pid)
kill -9 "$AG"
wait_for 15 sh -c "p=\$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"agent\"][\"pid\"])' '$KLT_STATE/$name.json'); [ \"\$p\" != $AG ] && kill -0 \"\$p\"" ||
	fail "the agent was not started again"
"$KLT_BIN" --status "$name" | grep -q 'agent alive' || fail "--status: $("$KLT_BIN" --status "$name")"
check "agent $AG SIGKILLed (now $(agent_pid))" vdf
grep -c "takes over from" "$KLT_STATE/$name.relay.log" | grep -qx 1 || fail "expected one takeover: $(cat "$KLT_STATE/$name.relay.log")"

"${VIRSH[@]}" destroy "$name" > /dev/null || fail "destroy failed"
kl_wait_gone "$PID" 20 || fail "QEMU still running"
wait_for 10 sh -c "[ -z \"\$(for p in /proc/[0-9]*; do tr '\\0' ' ' 2>/dev/null < \$p/cmdline | grep -q -- '^kvm-launch --relay $KLT_STATE/$name\\.' && echo x; done)\" ]" ||
	fail "relays outlived QEMU"
echo "all relay kill checks under libvirt passed"
