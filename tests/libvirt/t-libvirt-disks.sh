#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A real libvirtd starts domains whose <emulator> is the test installation of kvm-launch (policy found by its
# compiled-in path; tests/libvirt/lib.sh).  Domain kl-t-disks has four disks, each XML cache mode different from
# what the policy gives:
#   vda  raw file             XML cache=none io=native      policy writethrough/threads  guest: write through
#   vdb  qcow2 + raw backing  XML cache=writeback           policy none/native           guest: write back
#   vdc  loop block device    XML (default)                 policy directsync/native     guest: write through
#   hda  cdrom (raw file)     XML (default)                 untouched: byte-identical to `virsh domxml-to-native`
# Checked: the PID libvirt forked (/run/libvirt/qemu/NAME.pid) runs the real QEMU and is the one --status shows;
# /proc/PID/cmdline carries the policy's aio/cache on every node; `virsh qemu-monitor-command ... query-block`
# agrees; the guest sees the write cache per disk and does reads and writes on each; --status (table and JSON) lists
# the domain and its disks; kvm-launch's lines are in /var/log/libvirt/qemu/NAME.log; `virsh destroy` leaves no
# QEMU, agent, state file or --status entry.  Then domain kl-t-poweroff: the guest powers itself off, same cleanup.
. "$(dirname "$0")/../functions.sh"
. "$(dirname "$0")/lib.sh"
klt_setup
D=$KLT_DIR
T0=$(date +%s)

truncate -s 64M "$D/lv-raw.img" "$D/lv-base.raw" "$D/lv-loop.img" "$D/lv-raw2.img"
qemu-img create -q -f qcow2 -b "$D/lv-base.raw" -F raw "$D/lv-top.qcow2" 64M || fail "qemu-img create"
head -c 2M /dev/urandom >"$D/lv-cd.img"
kl_loop_setup "$D/lv-loop.img"

name=kl-t-disks
# device id, guest disk, cache, aio
expect=(
	"virtio-disk0 vda writethrough threads"
	"virtio-disk1 vdb none native"
	"virtio-disk2 vdc directsync native"
)
klt_domain "$name" --guest-cmd "report,randio:vda:4:1:rw,randio:vdb:4:1:rw,randio:vdc:4:1:rw,sleep" \
	"file:$D/lv-raw.img:raw:cache=none:io=native:target=vda" \
	"file:$D/lv-top.qcow2:qcow2:cache=writeback:target=vdb:backing=$D/lv-base.raw@raw" \
	"block:$KL_LOOP:raw:target=vdc" \
	"cdrom:$D/lv-cd.img"

# What libvirt itself would run (for the untouched cdrom).
"${VIRSH[@]}" domxml-to-native qemu-argv --xml "$D/$name.xml" >"$D/native.sh" || fail "virsh domxml-to-native failed"
eval "native=($(sed 's/\\$//' "$D/native.sh" | tr '\n' ' '))"
while [ ${#native[@]} -gt 0 ] && [[ ${native[0]} =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; do native=("${native[@]:1}"); done
[ "${native[0]}" = "$KLT_BIN" ] || fail "domxml-to-native: unexpected emulator ${native[0]}"

klt_create "$name"
PID=$(klt_pid "$name")
echo "$name started: pid $PID"
kl_wait_serial "$D/$name.serial" '^KL randio dev=vdc qd=4 ' 180 "$PID"
echo "$name: guest booted and did I/O on every disk ($(($(date +%s) - T0)) s since the test began)"
grep '^KL ' "$D/$name.serial"

klt_status_json "$D/status.json"
klt_check_qemu_pid "$name" "$D/status.json"
APID=$("$JSON_GET" "$D/status.json" "vms.[name=$name].agent.pid")
kl_check_agent_detached "$APID" "$PID"

# The real command line.
kl_args_load "$PID"
echo "The disk part of $name's command line, as QEMU runs it:"
for ((i = 0; i < ${#KL_ARGS[@]} - 1; i++)); do
	case ${KL_ARGS[i]} in
	-blockdev) echo "  ${KL_ARGS[i]} ${KL_ARGS[i + 1]}" ;;
	-device) case ${KL_ARGS[i + 1]} in *'"drive":'*) echo "  ${KL_ARGS[i]} ${KL_ARGS[i + 1]}" ;; esac ;;
	-chardev | -mon) case ${KL_ARGS[i + 1]} in *kvmlaunch*) echo "  ${KL_ARGS[i]} ${KL_ARGS[i + 1]}" ;; esac ;;
	esac
done
for e in "${expect[@]}"; do
	read -r id dev mode aio <<<"$e"
	kl_check_disk_cmdline "$id" "$mode" "$aio"
done
kl_disk_effective ide0-0-0
running_cd=$D_DESC
saved=("${KL_ARGS[@]}")
KL_ARGS=("${native[@]}")
kl_disk_effective ide0-0-0
native_cd=$D_DESC
KL_ARGS=("${saved[@]}")
[ -n "$native_cd" ] && [ "$running_cd" = "$native_cd" ] ||
	fail "the cdrom's arguments changed: libvirt gives '$native_cd', QEMU runs '$running_cd'"
echo "cmdline: cdrom ide0-0-0 untouched:$running_cd"
printf '%s\n' "${KL_ARGS[@]}" | grep -q '^chardev=kvmlaunch-query,mode=control$' || fail "no kvm-launch query monitor"
# Every -blockdev and disk -device libvirt would give is there, changed in nothing but cache/aio/write-cache, and
# QEMU runs no other: the reference is libvirt's own output for the same XML, not a count.  How many nodes that is
# depends on libvirt's version: 9.0 puts a "raw" format node above every raw image, 11.x does not (the device's
# drive is then the storage node).
disk_args() { # ARGV...: the number of -blockdev and disk -device arguments
	local n=0 j
	local -a a=("$@")
	for ((j = 0; j < ${#a[@]} - 1; j++)); do
		case ${a[j]} in
		-blockdev) n=$((n + 1)) ;;
		-device) case ${a[j + 1]} in *'"drive":'*) n=$((n + 1)) ;; esac ;;
		esac
	done
	echo "$n"
}
checked=0 devices=0 rawfmt=0
for ((i = 1; i < ${#native[@]} - 1; i++)); do
	case ${native[i]} in
	-blockdev) key=node-name ;;
	-device) case ${native[i + 1]} in *'"drive":'*) key=id devices=$((devices + 1)) ;; *) continue ;; esac ;;
	*) continue ;;
	esac
	[ "${native[i]}" = -blockdev ] && [ "$(kv "${native[i + 1]}" driver)" = raw ] && rawfmt=$((rawfmt + 1))
	v=$(kv "${native[i + 1]}" $key) || fail "no $key in ${native[i + 1]}"
	run=$(kl_find_opt "${native[i]}" $key "$v") || fail "QEMU runs without libvirt's ${native[i]} $key=$v"
	kl_check_only_cache_changed "${native[i + 1]}" "$run"
	checked=$((checked + 1))
done
[ "$devices" = 4 ] || fail "libvirt's command line has $devices disk devices, the XML has 4"
running=$(disk_args "${KL_ARGS[@]}")
[ "$running" = "$checked" ] ||
	fail "QEMU runs $running -blockdev/-device disk arguments, libvirt's command line has $checked"
echo "cmdline: all $checked -blockdev/-device disk arguments as libvirt gives them, but for cache/aio, and no other"
echo "cmdline: libvirt $(virsh -v) wrote $rawfmt raw format node(s) (9.0: one above each raw image; 11.x: none)"

# QEMU's own view, through libvirt's monitor.
klt_query_block "$name" "$D/qb.json"
for e in "${expect[@]}"; do
	read -r id dev mode aio <<<"$e"
	kl_check_query_block "$D/qb.json" "$id" "$mode"
done
kl_check_query_block "$D/qb.json" ide0-0-0 writeback
grep -q '/\[aio\]' "/proc/$PID/maps" || fail "aio=native on the command line, but QEMU has no libaio context"

# The guest's view.
for e in "${expect[@]}"; do
	read -r id dev mode aio <<<"$e"
	kl_check_guest_wc "$D/$name.serial" "$dev" "$mode"
done

# --status.
for e in "${expect[@]}"; do
	read -r id dev mode aio <<<"$e"
	sj() { "$JSON_GET" "$D/status.json" "vms.[name=$name].disks.[id=$id].$1"; }
	[ "$(sj cache)" = "$mode" ] && [ "$(sj cache_source)" = qemu ] ||
		fail "--status: $id cache $(sj cache) (from $(sj cache_source)), want $mode from QEMU"
	[ "$(sj aio)" = "$aio" ] || fail "--status: $id aio $(sj aio), want $aio"
	r=$(sj stats.rd_operations) && w=$(sj stats.wr_operations) || fail "--status: no I/O counters for $id"
	[ "$r" -gt 0 ] && [ "$w" -gt 0 ] || fail "$id: $r reads, $w writes: the guest should have done both"
	echo "status: $id cache=$mode aio=$aio reads=$r writes=$w"
done
"$KLT_BIN" --status "$name" >"$D/status.txt" || fail "--status $name failed"
cat "$D/status.txt"
grep -q "$name" "$D/status.txt" || fail "--status table does not name $name"
for e in "${expect[@]}"; do
	read -r id dev mode aio <<<"$e"
	grep -Eq "(^|[[:space:]])${id}[[:space:]].*[[:space:]]$mode([[:space:]]|$)" "$D/status.txt" ||
		fail "--status table: no row for $id with $mode"
done

# kvm-launch's lines in the domain log.
dlog=/var/log/libvirt/qemu/$name.log
grep '^kvm-launch:' "$dlog" | sed 's/^/domain log: /'
for e in "${expect[@]}"; do
	read -r id dev mode aio <<<"$e"
	grep -q "^kvm-launch: .*$id.*cache=$mode" "$dlog" || fail "$dlog: no kvm-launch line for $id cache=$mode"
done

# virsh destroy: QEMU, agent, state and entry all go.
"${VIRSH[@]}" destroy "$name" >/dev/null || fail "virsh destroy $name failed"
klt_wait_cleaned "$name" "$PID" "$APID"
klt_status_json "$D/after.json"
! "$JSON_GET" "$D/after.json" "vms.[name=$name]" >/dev/null || fail "--status still lists $name after virsh destroy"
echo "$name: after virsh destroy: no QEMU, no agent, no state, no --status entry"

# A guest that powers itself off.
name2=kl-t-poweroff
klt_domain "$name2" --guest-cmd "report,randio:vda:4:1:rw" "file:$D/lv-raw2.img:raw:target=vda"
klt_create "$name2"
PID2=$(klt_pid "$name2")
kl_wait_serial "$D/$name2.serial" '^KL disk vda ' 120 "$PID2"
klt_status_json "$D/status2.json"
klt_check_qemu_pid "$name2" "$D/status2.json"
APID2=$("$JSON_GET" "$D/status2.json" "vms.[name=$name2].agent.pid")
kl_check_guest_wc "$D/$name2.serial" vda writethrough
kl_wait_serial "$D/$name2.serial" '^KL done' 120 "$PID2"
grep -q '^KL done rc=0' "$D/$name2.serial" || fail "$name2: the guest's commands failed"
klt_wait_cleaned "$name2" "$PID2" "$APID2"
klt_status_json "$D/after2.json"
! "$JSON_GET" "$D/after2.json" "vms.[name=$name2]" >/dev/null || fail "--status still lists $name2 after its poweroff"
grep -q '^kvm-launch: ' "/var/log/libvirt/qemu/$name2.log" || fail "no kvm-launch line in $name2's domain log"
echo "$name2: the guest powered off: no QEMU, no agent, no state, no --status entry"

kl_no_sanitizer_reports "/var/log/libvirt/qemu/$name.log" "/var/log/libvirt/qemu/$name2.log"
klt_no_agents
echo "total $(($(date +%s) - T0)) s"
echo PASS
