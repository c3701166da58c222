#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The monitor relay under a real libvirtd (policy with monitor-relay = on):
# libvirt's inherited monitor listener (fd=N) stays with the relay, QEMU gets
# a private one; libvirt keeps control (domstate, qemu-monitor-command);
# `virsh attach-disk --live` of a preallocated raw image and a
# `virsh snapshot-create-as --disk-only` overlay run with the policy's
# O_DIRECT and aio (query-named-block-nodes, /proc/PID/fdinfo, the io_uring
# fd or libaio mapping after I/O) and --status lists them with their
# origin; a libvirtd restart reconnects through the relay (a fresh session);
# dump and save pass their fds through it, restore gets a new relay;
# `virsh destroy` leaves no relay behind.  Run under flock /tmp/kl-libvirt.lock.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
klt_setup
D=$KLT_DIR
# The shared test policy with the relay on; put back as it was at exit.
cleanup_fn klt_policy
{ echo "monitor-relay = on"; cat "$KLT_POLICY"; } > "$KLT_POLICY.new"
chmod 0644 "$KLT_POLICY.new"
mv -f "$KLT_POLICY.new" "$KLT_POLICY"
"$KLT_BIN" --check-policy "$KLT_POLICY" > /dev/null || fail "policy with monitor-relay does not validate"

truncate -s 64M "$D/rl-boot.img"
fallocate -l 64M "$D/rl-pre.img"
name=kl-t-relay
klt_domain "$name" --guest-cmd "report,sleep" "file:$D/rl-boot.img:raw:target=vda"
klt_create "$name"
PID=$(klt_pid "$name")
kl_wait_serial "$D/$name.serial" '^KL disk vda ' 120 "$PID"
# The relay processes (an active and its standby), on one line.
relays() { klt_relays "$name"; }
# None of the PIDs is a live process (a killed relay may stay a zombie until
# an init that does not reap reaps it).
all_gone() { local p; for p in "$@"; do [ -r "/proc/$p/stat" ] && [ "$(sed 's/^.*) //' "/proc/$p/stat" | cut -d' ' -f1)" != Z ] && return 1; done; return 0; }
RPID=$(relays)
[ -n "$RPID" ] || fail "no relay process for $name: $(grep kvm-launch "/var/log/libvirt/qemu/$name.log")"
cleanup_fn "kill -9 $RPID 2>/dev/null"
tr '\0' '\n' < "/proc/$PID/cmdline" | grep -A0 'id=charmonitor' | grep -q 'fd=[0-9]*,server=on' ||
	fail "QEMU's monitor is not the private fd: $(tr '\0' ' ' < "/proc/$PID/cmdline")"
echo "$name: QEMU $PID, relay $RPID: $(tr '\0' '\n' < "/proc/$PID/cmdline" | grep 'id=charmonitor')"
[ "$("${VIRSH[@]}" domstate "$name")" = running ] || fail "$name not running"

nodes() { "${VIRSH[@]}" qemu-monitor-command "$name" '{"execute":"query-named-block-nodes","arguments":{"flat":true}}'; }
node_of() { # FILE DRIVER -> node-name
	nodes | python3 -c 'import json,sys
for n in json.load(sys.stdin)["return"]:
    if n["file"] == sys.argv[1] and n["drv"] == sys.argv[2]:
        print(n["node-name"], str(n["cache"]["direct"]).lower()); break' "$1" "$2"
}
expect() { # FILE -> "aio cache" as the command line would get it
	"$KLT_BIN" --dry-run --json -- -blockdev "{\"driver\":\"file\",\"filename\":\"$1\",\"node-name\":\"x\"}" |
		python3 -c 'import json,sys; d=json.load(sys.stdin)["disks"][0]; print(d["aio"], d["cache"], d["rule"])'
}
# What the relay decided for the runtime disk of this origin: "aio cache rule".
decided() { # ORIGIN
	python3 - "$KLT_STATE/$name.json" "$1" <<'PY'
import json, sys
for d in json.load(open(sys.argv[1]))["disks"]:
    if d.get("origin") == sys.argv[2]:
        print(d["aio"], d["cache"], d["rule"]); break
PY
}
check_node() { # LABEL FILE DRIVER ORIGIN
	local node direct aio cache rule uring libaio
	read -r node direct <<< "$(node_of "$2" "$3")"
	[ -n "$node" ] || fail "$1: no $3 node on $2: $(nodes)"
	read -r aio cache rule <<< "$(decided "$4")"
	[ -n "$aio" ] || fail "$1: no runtime disk of origin $4 in the state entry"
	"${VIRSH[@]}" qemu-monitor-command --hmp "$name" "qemu-io $node \"read 0 64k\"" > /dev/null ||
		fail "$1: qemu-io on $node"
	uring=$(find "/proc/$PID/fd" -lname 'anon_inode:\[io_uring\]' 2>/dev/null | wc -l)
	libaio=$(grep -c ' /\[aio\]' "/proc/$PID/maps" || true)
	echo "$1: node $node direct=$direct O_DIRECT bit $(direct_bit "$PID" "$2") io_uring fds $uring libaio maps $libaio; policy: aio=$aio cache=$cache ($rule)"
	case $cache in none|directsync) [ "$direct" = true ] && [ "$(direct_bit "$PID" "$2")" = 1 ] || fail "$1: no O_DIRECT" ;; esac
	case $aio in
	io_uring) [ "$uring" -gt 0 ] || fail "$1: no io_uring fd" ;;
	native) [ "$libaio" -gt 0 ] || fail "$1: no libaio context" ;;
	esac
}

# Hot-plug of a preallocated raw image, as OpenStack attaches a volume.
"${VIRSH[@]}" attach-disk "$name" "$D/rl-pre.img" vdb --driver qemu --subdriver raw --live > /dev/null ||
	fail "attach-disk failed"
check_node attach "$D/rl-pre.img" file hot-plug
# The same decision as the image would get on a command line.
[ "$(decided hot-plug)" = "$(expect "$D/rl-pre.img")" ] ||
	fail "attach: relay decided '$(decided hot-plug)', the command line would give '$(expect "$D/rl-pre.img")'"
"$KLT_BIN" --status "$name" > "$D/status1" || fail "--status failed"
cat "$D/status1"
grep -q 'virtio-disk1 .*rl-pre.img' "$D/status1" || fail "--status does not list the hot-plugged disk"

# A disk-only external snapshot of vda.
"${VIRSH[@]}" snapshot-create-as "$name" s1 --disk-only --no-metadata --diskspec "vda,file=$D/rl-ov.qcow2" \
	--diskspec vdb,snapshot=no > /dev/null || fail "snapshot-create-as failed"
# libvirt creates the overlay itself (blockdev-add of the empty file, then
# blockdev-create): the storage node is judged as the empty file it is then.
check_node snapshot "$D/rl-ov.qcow2" file snapshot
"$KLT_BIN" --status "$name" > "$D/status2" || fail "--status failed"
grep -q 'virtio-disk0 .*rl-ov.qcow2' "$D/status2" || fail "--status does not show the overlay on vda: $(cat "$D/status2")"
echo "snapshot: --status shows vda on the overlay"

# libvirtd restarts: it reconnects to the monitor through the relay (a new session).
klt_restart_libvirtd
wait_for 20 sh -c "[ \"\$(${VIRSH[*]} domstate $name 2>/dev/null)\" = running ]" || fail "$name not running after libvirtd restart"
"${VIRSH[@]}" qemu-monitor-command "$name" '{"execute":"query-status"}' | grep -q running ||
	fail "no monitor after libvirtd restart"
[ "$(relays)" = "$RPID" ] || fail "the relay changed across the restart"
grep -c 'relay: client connected' "$KLT_STATE/$name.relay.log" | grep -qv '^1$' || fail "libvirtd did not reconnect through the relay"
echo "libvirtd restart: reconnected through relay $RPID ($(grep -c 'client connected' "$KLT_STATE/$name.relay.log") sessions)"

# fds through the relay: dump (getfd + dump-guest-memory fd:) and save
# (getfd + migrate fd:), then restore: a new QEMU gets a new relay.
"${VIRSH[@]}" dump "$name" "$D/rl.dump" --memory-only > /dev/null || fail "virsh dump failed"
[ -s "$D/rl.dump" ] || fail "virsh dump wrote nothing"
"${VIRSH[@]}" save "$name" "$D/rl.save" > /dev/null || fail "virsh save failed"
kl_wait_gone "$PID" 30 || fail "QEMU still running after save"
wait_for 10 all_gone $RPID || fail "the relay outlived the saved QEMU"
"${VIRSH[@]}" restore "$D/rl.save" > /dev/null || fail "virsh restore failed: $(tail -n 5 "/var/log/libvirt/qemu/$name.log")"
PID=$(klt_pid "$name")
RPID=$(relays)
[ -n "$RPID" ] || fail "no relay after restore"
cleanup_fn "kill -9 $RPID 2>/dev/null"
"${VIRSH[@]}" qemu-monitor-command "$name" '{"execute":"query-status"}' | grep -q running || fail "restored domain not running"
echo "dump ($(stat -c %s "$D/rl.dump") bytes), save and restore through the relay: ok (new relay $RPID)"

"${VIRSH[@]}" destroy "$name" > /dev/null || fail "destroy failed"
kl_wait_gone "$PID" 20 || fail "QEMU still running"
wait_for 10 all_gone $RPID || fail "the relay outlived QEMU"
echo "destroy: QEMU and relay gone"

# What kvm-launch(8) says when every kvm-launch process of a VM is killed at
# once (the relay's active and standby, and the agent): the manager's
# connection closes, libvirt sees its monitor end (EOF) and destroys the
# domain, with the reason "crashed".
klt_create "$name"
PID=$(klt_pid "$name")
RPID=$(relays)
[ -n "$RPID" ] || fail "no relay for the second start"
wait_for 10 sh -c "[ \$(echo $(relays) | wc -w) = 2 ]" || fail "no standby: $(relays)"
RPID=$(relays)
APID=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["agent"]["pid"])' "$KLT_STATE/$name.json")
LOG=/var/log/libvirt/qemu/$name.log
before=$(grep -c 'reason=crashed' "$LOG")
# kill(1) sends one signal after the other: a survivor may start a new partner (or agent) between
# two of them, so kill until no kvm-launch process of the VM is left.
vm_procs() { relays; pgrep -f -- "--agent $KLT_STATE/$name.json" | tr '\n' ' '; }
killed=
for _ in $(seq 100); do
	procs=$(vm_procs)
	[ -n "${procs// /}" ] || break
	kill -9 $procs 2>/dev/null
	killed="$killed $procs"
	sleep 0.05
done
[ -z "$(vm_procs | tr -d ' ')" ] || fail "kvm-launch processes of $name keep coming back: $(vm_procs)"
kl_wait_gone "$PID" 30 || fail "every kvm-launch process killed: QEMU still runs (kvm-launch(8) says libvirt destroys it; update the page)"
wait_for 10 sh -c "[ \$(grep -c 'reason=crashed' '$LOG') -gt $before ]" ||
	fail "no 'shutting down, reason=crashed' in $LOG: $(tail -n 3 "$LOG")"
echo "relays $RPID and agent $APID SIGKILLed (all killed:$killed): libvirt destroyed the domain: $(grep 'reason=crashed' "$LOG" | tail -n 1)"
echo "all libvirt relay checks passed"
