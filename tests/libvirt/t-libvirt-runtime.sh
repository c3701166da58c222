#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Disks that change while the VM runs, under the real libvirtd, through the monitor relay (policy with
# monitor-relay = on), with the guest writing and checking a pattern on vda throughout (tests/guest/init rounds).
# For each operation it asks QEMU: query-named-block-nodes (cache.direct, cache.no-flush of the protocol node),
# the O_DIRECT bit of QEMU's fd in /proc/PID/fdinfo, and which kernel aio serves a qemu-io read of that node while
# the guest is paused (io_uring completion-queue tail growth, or a libaio context, not thread-pool workers); then
# `kvm-launch --status`.  Operations: attach-disk/detach-disk of a sparse raw file, a preallocated raw file, qcow2
# and a loop device; --set on a hot-plugged disk; checkpoint create; disk-only external snapshots with and without
# an overlay path; a libvirtd restart between them; checkpoint delete (libvirt reopens the nodes that hold the
# bitmap); qemu-monitor-command QMP and HMP; intermediate and active blockcommit with pivot; blockcopy with pivot;
# dump; save and restore; at the end the guest's pattern is checked on the host.  The table of results is printed
# at the end ("OP | node | libvirt sent | QEMU runs | --status").  Run under flock /tmp/kl-libvirt.lock.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
klt_setup
requires python3 losetup qemu-img fallocate
D=$KLT_DIR
FACTS="$KL_TOP/tests/libvirt/runtime-facts.py"
cleanup_fn klt_policy
{ echo "monitor-relay = on"; cat "$KLT_POLICY"; } > "$KLT_POLICY.new"
chmod 0644 "$KLT_POLICY.new"
mv -f "$KLT_POLICY.new" "$KLT_POLICY"
"$KLT_BIN" --check-policy "$KLT_POLICY" > /dev/null || fail "policy with monitor-relay does not validate"

qemu-img create -q -f qcow2 "$D/base.qcow2" 64M || fail "qemu-img create"
name=kl-t-runtime
SEED=7
MIB=8
klt_domain "$name" --guest-cmd "rounds:vda:$SEED:$MIB" "file:$D/base.qcow2:qcow2:target=vda"
klt_create "$name"
PID=$(klt_pid "$name")
SERIAL=$D/$name.serial
kl_wait_serial "$SERIAL" '^KL round 1 ok' 300 "$PID"
relays() { klt_relays "$name"; }
RPID=$(relays)
[ -n "$RPID" ] || fail "no relay process for $name"
cleanup_fn "kill -9 \$RPID 2>/dev/null"
RLOG=$KLT_STATE/$name.relay.log
echo "$name: QEMU $PID, relay $RPID, guest writing $MIB MiB rounds on vda"
TABLE=$D/table
: > "$TABLE"

qmp() { "${VIRSH[@]}" qemu-monitor-command "$name" "$1"; }
hmp() { "${VIRSH[@]}" qemu-monitor-command --hmp "$name" "$1"; }
rounds() { grep -c '^KL round .* ok' "$SERIAL"; }
guest_alive() { # LABEL: the guest finished at least one more round since the last call, and no error
	local n
	wait_for 120 sh -c "[ \$(grep -c '^KL round .* ok' '$SERIAL') -gt ${LAST_ROUNDS:-0} ]" ||
		fail "$1: the guest's I/O stalled (rounds stay at $(rounds)): $(tail -n 3 "$SERIAL")"
	grep -q '^KL error' "$SERIAL" && fail "$1: the guest reported: $(grep '^KL error' "$SERIAL")"
	n=$(rounds)
	LAST_ROUNDS=$n
}
# What libvirt sent for the node, from the relay's log line ("aio=... cache.direct=...").
sent_of() { # NODE
	local l
	l=$(grep "relay: blockdev-add $1: " "$RLOG" | tail -n 1)
	case $l in
	*"; sent "*) echo "${l##*; sent }" ;;
	*"forwarded as sent"*) echo "forwarded as sent" ;;
	*) echo "(command line or unchanged)" ;;
	esac
}
# check LABEL FILE: QEMU's node on FILE runs with what the state entry says the policy chose; one table row.
check() {
	local label=$1 file=$2 node direct noflush fmt aio cache rule origin od r0 t0 w0 r1 t1 w1 l1 used statusline
	qmp '{"execute":"query-named-block-nodes","arguments":{"flat":true}}' > "$D/nodes.json" || fail "$label: query-named-block-nodes"
	read -r node direct noflush fmt <<< "$(python3 "$FACTS" node "$D/nodes.json" "$file")"
	[ "$node" != - ] || fail "$label: QEMU has no protocol node on $file: $(cat "$D/nodes.json")"
	read -r aio cache rule origin <<< "$(python3 "$FACTS" state "$KLT_STATE/$name.json" "$file")"
	[ "$aio" != - ] || fail "$label: the state entry has no disk on $file: $(cat "$KLT_STATE/$name.json")"
	od=$(python3 "$FACTS" odirect "$PID" "$file")
	# Which aio serves this node: pause the guest (its vda I/O shares the ring), read through the node.
	"${VIRSH[@]}" suspend "$name" > /dev/null || fail "$label: suspend"
	read -r r0 t0 w0 _ <<< "$(python3 "$FACTS" aio "$PID")"
	hmp "qemu-io $node \"read 0 1M\"" > "$D/qemu-io.out" || fail "$label: qemu-io on $node"
	hmp "qemu-io $node \"read 4M 1M\"" >> "$D/qemu-io.out" || true
	read -r r1 t1 w1 l1 <<< "$(python3 "$FACTS" aio "$PID")"
	"${VIRSH[@]}" resume "$name" > /dev/null || fail "$label: resume"
	if [ "$t1" -gt "$t0" ]; then used="io_uring(+$((t1 - t0)))"; elif [ "$l1" -gt 0 ]; then used="libaio"; else used="threads"; fi
	case $cache in
	none | directsync) [ "$direct" = true ] && [ "$od" = 1 ] || fail "$label: policy cache=$cache, QEMU runs direct=$direct, fd O_DIRECT=$od" ;;
	*) [ "$direct" = false ] || fail "$label: policy cache=$cache, QEMU runs direct=$direct" ;;
	esac
	case $aio in
	io_uring) [ "$t1" -gt "$t0" ] || fail "$label: policy aio=io_uring, no io_uring completion for a read of $node (rings $r0->$r1, workers $w0->$w1)" ;;
	native) [ "$l1" -gt 0 ] || fail "$label: policy aio=native, QEMU has no libaio context" ;;
	esac
	"$KLT_BIN" --status "$name" > "$D/status" || fail "$label: --status failed"
	statusline=$(grep -F -- "$file" "$D/status" | head -n 1 | tr -s ' ')
	[ -n "$statusline" ] || fail "$label: --status does not list $file: $(cat "$D/status")"
	grep -F -A12 -- "$file" "$D/status" | grep -q "$origin" || [ "$origin" = cmdline ] || [ "$origin" = layer ] ||
		fail "$label: --status does not say the origin $origin: $(cat "$D/status")"
	printf '%s | %s | sent: %s | QEMU: direct=%s no-flush=%s O_DIRECT=%s aio=%s | policy %s/%s (%s, %s) | %s\n' \
		"$label" "$node" "$(sent_of "$node")" "$direct" "$noflush" "$od" "$used" "$aio" "$cache" "$rule" "$origin" \
		"$statusline" | tee -a "$TABLE"
}
gone() { # LABEL FILE: detached: neither QEMU nor --status has it
	local label=$1 file=$2
	qmp '{"execute":"query-named-block-nodes","arguments":{"flat":true}}' > "$D/nodes.json"
	[ "$(python3 "$FACTS" node "$D/nodes.json" "$file")" = "- - - -" ] || fail "$label: QEMU still has a node on $file"
	"$KLT_BIN" --status "$name" > "$D/status" || fail "$label: --status failed"
	grep -qF -- "$file" "$D/status" && fail "$label: --status still lists $file: $(cat "$D/status")"
	echo "$label | $file | gone from QEMU and --status" | tee -a "$TABLE"
}
detach() { # TARGET FILE
	"${VIRSH[@]}" detach-disk "$name" "$1" --live > /dev/null || fail "detach-disk $1"
	wait_for 60 sh -c "! ${VIRSH[*]} domblklist $name | grep -q ' $1 '" || fail "detach-disk $1: still listed"
	wait_for 20 sh -c "! grep -qF -- '$2' '$KLT_STATE/$name.json'" || true
	gone "detach $1" "$2"
}

guest_alive start
check "start vda (command line)" "$D/base.qcow2"

# ---- attach-disk / detach-disk ----
truncate -s 64M "$D/sparse.img"
fallocate -l 64M "$D/pre.img"
qemu-img create -q -f qcow2 "$D/vol.qcow2" 64M
truncate -s 64M "$D/loop.img"
LOOP=$(losetup -f --show "$D/loop.img") || fail "losetup"
cleanup_fn "losetup -d $LOOP 2>/dev/null"
"${VIRSH[@]}" attach-disk "$name" "$D/sparse.img" vdb --driver qemu --subdriver raw --live > /dev/null || fail "attach sparse"
check "attach sparse raw" "$D/sparse.img"
detach vdb "$D/sparse.img"
"${VIRSH[@]}" attach-disk "$name" "$D/pre.img" vdc --driver qemu --subdriver raw --live > /dev/null || fail "attach preallocated"
check "attach preallocated raw" "$D/pre.img"
# --set on the hot-plugged disk: off O_DIRECT and back (QEMU's node and fd follow).
"$KLT_BIN" --set "$name" "$D/pre.img" cache=writeback > "$D/set.out" 2>&1 || fail "--set cache=writeback on a hot-plugged disk: $(cat "$D/set.out")"
qmp '{"execute":"query-named-block-nodes","arguments":{"flat":true}}' > "$D/nodes.json"
read -r node direct _ <<< "$(python3 "$FACTS" node "$D/nodes.json" "$D/pre.img")"
[ "$direct" = false ] && [ "$(python3 "$FACTS" odirect "$PID" "$D/pre.img")" = 0 ] || fail "--set cache=writeback: QEMU runs direct=$direct"
"$KLT_BIN" --status "$name" | grep -F -- "$D/pre.img" | grep -q writeback || fail "--status does not show the --set mode"
echo "--set cache=writeback | $node | QEMU: direct=$direct O_DIRECT=0 | $("$KLT_BIN" --status "$name" | grep -F -- "$D/pre.img" | tr -s ' ')" | tee -a "$TABLE"
"$KLT_BIN" --set "$name" "$D/pre.img" cache=none > "$D/set.out" 2>&1 || fail "--set cache=none: $(cat "$D/set.out")"
check "--set cache=none again" "$D/pre.img"
detach vdc "$D/pre.img"
"${VIRSH[@]}" attach-disk "$name" "$D/vol.qcow2" vdd --driver qemu --subdriver qcow2 --live > /dev/null || fail "attach qcow2"
check "attach qcow2" "$D/vol.qcow2"
detach vdd "$D/vol.qcow2"
"${VIRSH[@]}" attach-disk "$name" "$LOOP" vde --driver qemu --subdriver raw --sourcetype block --live > /dev/null || fail "attach loop"
check "attach loop block device" "$LOOP"
detach vde "$LOOP"
guest_alive "after attach/detach"

# ---- checkpoint, snapshots, libvirtd restart ----
CHECKPOINTS=1
"${VIRSH[@]}" checkpoint-create-as "$name" cp1 > "$D/cp.out" 2>&1 || {
	echo "note: checkpoint-create-as refused for this transient domain: $(cat "$D/cp.out")"
	CHECKPOINTS=0
}
[ "$CHECKPOINTS" = 1 ] && check "checkpoint-create cp1" "$D/base.qcow2"
"${VIRSH[@]}" snapshot-create-as "$name" s1 --disk-only --no-metadata > /dev/null || fail "snapshot-create-as s1 (overlay path chosen by libvirt)"
S1=$("${VIRSH[@]}" domblklist "$name" | awk '$1 == "vda" {print $2}')
[ "$S1" != "$D/base.qcow2" ] && [ -f "$S1" ] || fail "snapshot s1: vda is still $S1"
check "snapshot (libvirt's overlay path)" "$S1"
guest_alive "after snapshot s1"

klt_restart_libvirtd
wait_for 30 sh -c "[ \"\$(${VIRSH[*]} domstate $name 2>/dev/null)\" = running ]" || fail "$name not running after libvirtd restart"
[ "$(relays)" = "$RPID" ] || fail "the relay changed across the libvirtd restart"
echo "libvirtd restart | relay $RPID kept, $(grep -c 'client connected' "$RLOG") sessions" | tee -a "$TABLE"

"${VIRSH[@]}" snapshot-create-as "$name" s2 --disk-only --no-metadata --diskspec "vda,file=$D/s2.qcow2" > /dev/null ||
	fail "snapshot-create-as s2 --diskspec"
check "snapshot (chosen overlay path)" "$D/s2.qcow2"
# --set on the disk whose active layer is a snapshot overlay: the whole chain is reopened.
"$KLT_BIN" --set "$name" virtio-disk0 cache=writeback > "$D/set.out" 2>&1 || fail "--set vda cache=writeback on the overlay: $(cat "$D/set.out")"
qmp '{"execute":"query-named-block-nodes","arguments":{"flat":true}}' > "$D/nodes.json"
read -r node direct _ <<< "$(python3 "$FACTS" node "$D/nodes.json" "$D/s2.qcow2")"
[ "$direct" = false ] && [ "$(python3 "$FACTS" odirect "$PID" "$D/s2.qcow2")" = 0 ] || fail "--set vda cache=writeback: s2 runs direct=$direct"
echo "--set vda cache=writeback (on s2) | $node | QEMU: direct=$direct O_DIRECT=0 | $("$KLT_BIN" --status "$name" | grep -F -- "$D/s2.qcow2" | head -n 1 | tr -s ' ')" | tee -a "$TABLE"
"$KLT_BIN" --set "$name" virtio-disk0 cache=none > "$D/set.out" 2>&1 || fail "--set vda cache=none: $(cat "$D/set.out")"
check "--set vda cache=none again (s2)" "$D/s2.qcow2"
guest_alive "after --set on the overlay"
"$KLT_BIN" --status "$name" > "$D/status"
grep -q "layer below: .*$S1" "$D/status" && grep -q "layer below: .*base.qcow2" "$D/status" ||
	fail "--status does not show the layers below s2: $(cat "$D/status")"
guest_alive "after snapshot s2"

if [ "$CHECKPOINTS" = 1 ]; then
	n0=$(grep -c 'blockdev-reopen' "$RLOG" || true)
	"${VIRSH[@]}" checkpoint-delete "$name" cp1 > "$D/cp.out" 2>&1 || fail "checkpoint-delete: $(cat "$D/cp.out")"
	n1=$(grep -c 'blockdev-reopen' "$RLOG" || true)
	echo "checkpoint-delete cp1 | relay kept kvm-launch's flags in $((n1 - n0)) reopened node(s)" | tee -a "$TABLE"
	check "after checkpoint-delete (base)" "$D/base.qcow2"
	check "after checkpoint-delete (s1)" "$S1"
	check "after checkpoint-delete (active s2)" "$D/s2.qcow2"
fi

# ---- monitor passthrough ----
qmp '{"execute":"query-status"}' | grep -q '"running"' || fail "QMP passthrough: query-status"
hmp 'info status' | grep -q running || fail "HMP passthrough: info status"
echo "qemu-monitor-command | QMP query-status and HMP info status answered through the relay" | tee -a "$TABLE"

# ---- blockcommit: intermediate (s1 into base), then active (s2 into base) with pivot ----
"${VIRSH[@]}" blockcommit "$name" vda --top "$S1" --base "$D/base.qcow2" --wait > /dev/null ||
	fail "intermediate blockcommit"
wait_for 20 sh -c "! grep -qF -- '$S1' '$KLT_STATE/$name.json'" || fail "intermediate commit: the state still lists $S1"
check "intermediate blockcommit (active s2)" "$D/s2.qcow2"
"${VIRSH[@]}" blockcommit "$name" vda --active --pivot --wait > /dev/null || fail "active blockcommit --pivot"
[ "$("${VIRSH[@]}" domblklist "$name" | awk '$1 == "vda" {print $2}')" = "$D/base.qcow2" ] || fail "active commit: vda is not on base"
check "active blockcommit --pivot (base)" "$D/base.qcow2"
guest_alive "after blockcommit"

# ---- blockcopy with pivot ----
"${VIRSH[@]}" blockcopy "$name" vda "$D/copy.qcow2" --format qcow2 --transient-job --pivot --wait > /dev/null ||
	fail "blockcopy --pivot"
[ "$("${VIRSH[@]}" domblklist "$name" | awk '$1 == "vda" {print $2}')" = "$D/copy.qcow2" ] || fail "blockcopy: vda is not on the copy"
check "blockcopy --pivot" "$D/copy.qcow2"
guest_alive "after blockcopy"

# ---- fds through the relay: dump, save, restore ----
"${VIRSH[@]}" dump "$name" "$D/rt.dump" --memory-only > /dev/null || fail "virsh dump"
[ -s "$D/rt.dump" ] || fail "virsh dump wrote nothing"
echo "virsh dump | $(stat -c %s "$D/rt.dump") bytes through the relay's fd passing" | tee -a "$TABLE"
BEFORE_SAVE=$(rounds)
"${VIRSH[@]}" save "$name" "$D/rt.save" > /dev/null || fail "virsh save"
kl_wait_gone "$PID" 30 || fail "QEMU still running after save"
"${VIRSH[@]}" restore "$D/rt.save" > /dev/null || fail "virsh restore: $(tail -n 5 "/var/log/libvirt/qemu/$name.log")"
PID=$(klt_pid "$name")
RPID=$(relays)
[ -n "$RPID" ] || fail "no relay after restore"
RLOG=$KLT_STATE/$name.relay.log
LAST_ROUNDS=$(rounds)
guest_alive "after restore"
check "save + restore (copy)" "$D/copy.qcow2"

# ---- the guest's data ----
"${VIRSH[@]}" destroy "$name" > /dev/null || fail "destroy"
kl_wait_gone "$PID" 20 || fail "QEMU still running"
qemu-img convert -f qcow2 -O raw "$D/copy.qcow2" "$D/final.raw" || fail "qemu-img convert"
"$KL_GUEST_HELPER" verify "$D/final.raw" "$SEED" "$MIB" > "$D/verify.out" || fail "data: $(cat "$D/verify.out")"
echo "data integrity | $((BEFORE_SAVE + $(rounds))) guest rounds (the serial log starts again at restore); pattern $SEED over $MIB MiB verified on the host: $(cat "$D/verify.out")" | tee -a "$TABLE"
echo "---- table ----"
cat "$TABLE"
